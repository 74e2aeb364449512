/*
 * test_bus.c: the agent's event bus (agent/bus.c) on its own: subscribers
 * to every run are called first, then the event's run's, each in
 * subscription order; an event reaches no other run's subscribers (1,000
 * runs at once); a callback may unsubscribe itself or another subscriber,
 * or subscribe a new one, during delivery; an event without a run id
 * reaches only the subscribers to every run; release frees everything
 * (the suite runs under ASan's leak checker).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/internal.h"

#define RUNS 1000

struct rec {
    char log[256];
    int calls;
    struct ch_agent *a;
    struct ch_agent_sub *self, *victim; /* unsubscribed on the first call */
    struct ch_agent_sub *added;         /* subscribed on the first call */
    const char *tag;
    bool subscribe_more;
};

static struct ch_agent *agent_new(void)
{
    struct ch_agent *a = ch_calloc(1, sizeof(*a));

    assert_non_null(a);
    ch_map_init(&a->run_subs);
    return a;
}

static void agent_free(struct ch_agent *a)
{
    ch_bus_release(a);
    ch_free(a);
}

static void on_ev(const struct ch_agent_event *ev, void *data)
{
    struct rec *r = data;
    size_t n = strlen(r->log);

    (void)ev;
    snprintf(r->log + n, sizeof(r->log) - n, "%s,", r->tag);
    r->calls++;
}

static void emit(struct ch_agent *a, const char *run_id)
{
    struct ch_agent_event ev = {.type = CH_AGENT_EV_START, .run_id = run_id};

    ch_bus_emit(a, &ev);
}

static void test_order_and_routing(void **state)
{
    struct ch_agent *a = agent_new();
    struct rec g1 = {.tag = "g1"}, g2 = {.tag = "g2"}, r1 = {.tag = "r1"}, r2 = {.tag = "r2"}, o = {.tag = "o"};
    struct rec *all[] = {&g1, &g2, &r1, &r2, &o};

    (void)state;
    /* Subscribed interleaved: a run subscriber before a global one. */
    assert_non_null(ch_agent_subscribe(a, "run-a", on_ev, &r1));
    assert_non_null(ch_agent_subscribe(a, NULL, on_ev, &g1));
    assert_non_null(ch_agent_subscribe(a, "run-b", on_ev, &o));
    assert_non_null(ch_agent_subscribe(a, "run-a", on_ev, &r2));
    assert_non_null(ch_agent_subscribe(a, NULL, on_ev, &g2));
    for (size_t i = 0; i < CH_ARRAY_SIZE(all); i++)
        all[i]->log[0] = '\0';
    emit(a, "run-a");
    for (size_t i = 0; i < CH_ARRAY_SIZE(all); i++)
        assert_int_equal(all[i]->calls, all[i] == &o ? 0 : 1);
    emit(a, NULL); /* no run: the subscribers to every run only */
    assert_int_equal(g1.calls, 2);
    assert_int_equal(r1.calls, 1);
    emit(a, "run-c"); /* nobody's run */
    assert_int_equal(g2.calls, 3);
    assert_int_equal(o.calls, 0);
    agent_free(a);
}

/* One shared log shows the order across subscribers. */
static char g_log[256];

static void on_ev_shared(const struct ch_agent_event *ev, void *data)
{
    size_t n = strlen(g_log);

    (void)ev;
    snprintf(g_log + n, sizeof(g_log) - n, "%s,", ((struct rec *)data)->tag);
}

static void test_globals_first_then_run_in_order(void **state)
{
    struct ch_agent *a = agent_new();
    struct rec r1 = {.tag = "r1"}, g1 = {.tag = "g1"}, r2 = {.tag = "r2"}, g2 = {.tag = "g2"};

    (void)state;
    ch_agent_subscribe(a, "x", on_ev_shared, &r1);
    ch_agent_subscribe(a, NULL, on_ev_shared, &g1);
    ch_agent_subscribe(a, "x", on_ev_shared, &r2);
    ch_agent_subscribe(a, NULL, on_ev_shared, &g2);
    g_log[0] = '\0';
    emit(a, "x");
    assert_string_equal(g_log, "g1,g2,r1,r2,");
    agent_free(a);
}

static void on_ev_unsub(const struct ch_agent_event *ev, void *data)
{
    struct rec *r = data;

    on_ev_shared(ev, data);
    if (r->calls++ == 0) {
        if (r->victim)
            ch_agent_unsubscribe(r->victim);
        if (r->self)
            ch_agent_unsubscribe(r->self);
        if (r->subscribe_more)
            assert_non_null(r->added = ch_agent_subscribe(r->a, "x", on_ev_shared, r));
    }
}

static void test_changes_during_delivery(void **state)
{
    struct ch_agent *a = agent_new();
    struct rec first = {.tag = "first", .a = a}, second = {.tag = "second"}, third = {.tag = "third", .a = a};

    (void)state;
    /* first unsubscribes itself and second; third subscribes itself again. */
    first.self = ch_agent_subscribe(a, "x", on_ev_unsub, &first);
    second.self = NULL;
    first.victim = ch_agent_subscribe(a, "x", on_ev_shared, &second);
    third.self = ch_agent_subscribe(a, "x", on_ev_unsub, &third);
    third.subscribe_more = true;
    g_log[0] = '\0';
    emit(a, "x");
    /* second was marked before its turn; third's new subscription was
     * appended and is reached in the same delivery. */
    assert_string_equal(g_log, "first,third,third,");
    g_log[0] = '\0';
    emit(a, "x");
    assert_string_equal(g_log, "third,"); /* only the re-subscription is left */
    /* Outside delivery a subscriber is unlinked at once, and the run's
     * list goes with its last one. */
    assert_non_null(ch_map_get(&a->run_subs, "x", 1));
    ch_agent_unsubscribe(third.added);
    assert_null(ch_map_get(&a->run_subs, "x", 1));
    g_log[0] = '\0';
    emit(a, "x");
    assert_string_equal(g_log, "");
    agent_free(a);
}

static void test_many_runs(void **state)
{
    struct ch_agent *a = agent_new();
    static struct rec recs[RUNS];
    static struct ch_agent_sub *subs[RUNS];
    char id[32];

    (void)state;
    for (int i = 0; i < RUNS; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        recs[i].tag = "r";
        recs[i].log[0] = '\0';
        recs[i].calls = 0;
        assert_non_null(subs[i] = ch_agent_subscribe(a, id, on_ev, &recs[i]));
    }
    for (int i = 0; i < RUNS; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        emit(a, id);
        if (i % 2)
            emit(a, id);
    }
    for (int i = 0; i < RUNS; i++)
        assert_int_equal(recs[i].calls, i % 2 ? 2 : 1);
    for (int i = 0; i < RUNS; i += 2)
        ch_agent_unsubscribe(subs[i]);
    assert_int_equal(a->run_subs.count, RUNS / 2);
    for (int i = 0; i < RUNS; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        emit(a, id);
    }
    for (int i = 0; i < RUNS; i++)
        assert_int_equal(recs[i].calls, i % 2 ? 3 : 1);
    agent_free(a); /* frees the odd half */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_routing),
        cmocka_unit_test(test_globals_first_then_run_in_order),
        cmocka_unit_test(test_changes_during_delivery),
        cmocka_unit_test(test_many_runs),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
