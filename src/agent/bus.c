/*
 * bus.c: the in-process event bus.  Subscribers are called synchronously
 * on the loop thread, in subscription order, for the runs they asked
 * for.  A subscriber removed while the bus is delivering is only marked
 * and unlinked once delivery is over, so callbacks may unsubscribe
 * themselves (or others) safely.
 */
#include <string.h>

#include "agent/internal.h"

struct ch_agent_sub *ch_agent_subscribe(struct ch_agent *a, const char *run_id, ch_agent_event_cb cb, void *data)
{
    struct ch_agent_sub *s = ch_calloc(1, sizeof(*s)), **tail;

    if (!s)
        return NULL;
    if (run_id && !(s->run_id = ch_strdup(run_id))) {
        ch_free(s);
        return NULL;
    }
    s->agent = a;
    s->cb = cb;
    s->data = data;
    for (tail = &a->subs; *tail; tail = &(*tail)->next)
        ;
    *tail = s;
    return s;
}

static void sweep(struct ch_agent *a)
{
    struct ch_agent_sub **pp = &a->subs;

    while (*pp) {
        struct ch_agent_sub *s = *pp;
        if (s->dead) {
            *pp = s->next;
            ch_free(s->run_id);
            ch_free(s);
        } else {
            pp = &s->next;
        }
    }
    a->bus_dirty = false;
}

void ch_agent_unsubscribe(struct ch_agent_sub *s)
{
    struct ch_agent *a;

    if (!s)
        return;
    a = s->agent;
    s->dead = true;
    a->bus_dirty = true;
    if (a->bus_depth == 0)
        sweep(a);
}

void ch_bus_emit(struct ch_agent *a, struct ch_agent_event *ev)
{
    struct ch_agent_sub *s;

    a->bus_depth++;
    for (s = a->subs; s; s = s->next) {
        if (s->dead)
            continue;
        if (s->run_id && (!ev->run_id || strcmp(s->run_id, ev->run_id) != 0))
            continue;
        s->cb(ev, s->data);
    }
    if (--a->bus_depth == 0 && a->bus_dirty)
        sweep(a);
}

void ch_bus_release(struct ch_agent *a)
{
    for (struct ch_agent_sub *s = a->subs; s; s = s->next)
        s->dead = true;
    sweep(a);
}
