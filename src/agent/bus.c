/*
 * bus.c: the in-process event bus.  Subscribers are called synchronously
 * on the loop thread: those for every run first, then those for the
 * event's run, each group in subscription order.  Run subscribers are
 * kept per run id (a map of short lists), so an event costs one lookup
 * whatever the number of runs in flight; with one list for all, every
 * event compared its run id with every subscriber's (87 strcmp per event
 * at 64 concurrent chats, 3% of the loop's instructions).  A subscriber
 * removed while the bus is delivering is only marked, and unlinked once
 * delivery is over, so callbacks may unsubscribe themselves (or others)
 * safely.
 */
#include <string.h>

#include "agent/internal.h"

struct ch_agent_sub *ch_agent_subscribe(struct ch_agent *a, const char *run_id, ch_agent_event_cb cb, void *data)
{
    struct ch_agent_sub *s = ch_calloc(1, sizeof(*s)), *head, *t;

    if (!s)
        return NULL;
    s->agent = a;
    s->cb = cb;
    s->data = data;
    if (!run_id) {
        if (a->subs_tail)
            a->subs_tail->next = s;
        else
            a->subs = s;
        a->subs_tail = s;
        return s;
    }
    if (!(s->run_id = ch_strdup(run_id))) {
        ch_free(s);
        return NULL;
    }
    head = ch_map_get(&a->run_subs, run_id, strlen(run_id));
    if (head) {
        for (t = head; t->next; t = t->next)
            ;
        t->next = s;
    } else if (ch_map_set(&a->run_subs, run_id, strlen(run_id), s, NULL) != 0) {
        ch_free(s->run_id);
        ch_free(s);
        return NULL;
    }
    return s;
}

static void unlink_sub(struct ch_agent *a, struct ch_agent_sub *s)
{
    struct ch_agent_sub *head, **pp, *prev = NULL;

    if (s->run_id) {
        size_t n = strlen(s->run_id);

        head = ch_map_get(&a->run_subs, s->run_id, n);
        if (head == s) { /* the map holds the list's head: move it on */
            if (s->next)
                (void)ch_map_set(&a->run_subs, s->run_id, n, s->next, NULL); /* replaces: cannot fail */
            else
                ch_map_del(&a->run_subs, s->run_id, n);
        } else {
            for (pp = &head; *pp && *pp != s; pp = &(*pp)->next)
                ;
            if (*pp)
                *pp = s->next;
        }
    } else {
        for (pp = &a->subs; *pp && *pp != s; pp = &(*pp)->next)
            prev = *pp;
        if (*pp)
            *pp = s->next;
        if (a->subs_tail == s)
            a->subs_tail = prev;
    }
    ch_free(s->run_id);
    ch_free(s);
}

void ch_agent_unsubscribe(struct ch_agent_sub *s)
{
    struct ch_agent *a;

    if (!s || s->dead)
        return;
    a = s->agent;
    if (a->bus_depth == 0) {
        unlink_sub(a, s);
        return;
    }
    s->dead = true;
    s->next_dead = a->dead_subs;
    a->dead_subs = s;
}

static void deliver(struct ch_agent_sub *s, struct ch_agent_event *ev)
{
    for (; s; s = s->next) {
        if (!s->dead)
            s->cb(ev, s->data);
    }
}

void ch_bus_emit(struct ch_agent *a, struct ch_agent_event *ev)
{
    a->bus_depth++;
    deliver(a->subs, ev);
    if (ev->run_id)
        deliver(ch_map_get(&a->run_subs, ev->run_id, strlen(ev->run_id)), ev);
    if (--a->bus_depth == 0) {
        while (a->dead_subs) {
            struct ch_agent_sub *s = a->dead_subs;

            a->dead_subs = s->next_dead;
            unlink_sub(a, s);
        }
    }
}

static void free_list(struct ch_agent_sub *s)
{
    while (s) {
        struct ch_agent_sub *next = s->next;

        ch_free(s->run_id);
        ch_free(s);
        s = next;
    }
}

void ch_bus_release(struct ch_agent *a)
{
    struct ch_map_entry *e;
    size_t it = 0;

    free_list(a->subs);
    a->subs = a->subs_tail = NULL;
    while ((e = ch_map_next(&a->run_subs, &it)))
        free_list(e->value);
    ch_map_release(&a->run_subs);
    ch_map_init(&a->run_subs);
    a->dead_subs = NULL;
}
