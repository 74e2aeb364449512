/* Unit tests for net/loop.c on a real uv loop: flush hooks run before the
 * loop sleeps, ch_net_want_flush keeps a loop alive for queued work and
 * skips one sleep when called from a hook, hooks can unregister, the
 * 1 Hz tick runs and measures lag, RSS parsing, and every handle closes
 * (uv_loop_close()==0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/net.h"

struct ctx {
    struct ch_net net;
    int queued;  /* work "queued" for the flush hook */
    int flushed; /* items the hook saw */
    int hook_runs;
    int again; /* the hook re-queues itself this many times */
    uint64_t first_ms, second_ms;
    int ticks;
    bool closed;
};

static void on_net_closed(void *data)
{
    ((struct ctx *)data)->closed = true;
}

static void finish(uv_loop_t *loop, struct ctx *c)
{
    ch_net_close(&c->net, on_net_closed, c);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_true(c->closed);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void flush_hook(void *data)
{
    struct ctx *c = data;

    c->hook_runs++;
    if (c->hook_runs == 1)
        c->first_ms = ch_mono_ms();
    if (c->hook_runs == 2)
        c->second_ms = ch_mono_ms();
    c->flushed += c->queued;
    c->queued = 0;
    if (c->again > 0) {
        c->again--;
        c->queued++;
        ch_net_want_flush(&c->net);
    }
}

static void on_timer_queue(uv_timer_t *t)
{
    struct ctx *c = t->data;

    c->queued++;
    ch_net_want_flush(&c->net);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_flush_after_timer(void **state)
{
    uv_loop_t loop;
    uv_timer_t t;
    struct ctx c;

    (void)state;
    memset(&c, 0, sizeof(c));
    uv_loop_init(&loop);
    assert_int_equal(ch_net_init(&c.net, &loop), 0);
    assert_int_equal(ch_net_on_flush(&c.net, flush_hook, &c), 0);
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_timer_start(&t, on_timer_queue, 5, 0);
    /* The net handles alone do not keep the loop running. */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.flushed, 1);
    assert_int_equal(c.queued, 0);
    finish(&loop, &c);
}

static void on_async(uv_async_t *a)
{
    struct ctx *c = a->data;

    /* The last live handle goes away with work still queued. */
    uv_close((uv_handle_t *)a, NULL);
    c->queued++;
    ch_net_want_flush(&c->net);
}

static void test_want_flush_keeps_loop_alive(void **state)
{
    uv_loop_t loop;
    uv_async_t a;
    struct ctx c;

    (void)state;
    memset(&c, 0, sizeof(c));
    uv_loop_init(&loop);
    ch_net_init(&c.net, &loop);
    ch_net_on_flush(&c.net, flush_hook, &c);
    uv_async_init(&loop, &a, on_async);
    a.data = &c;
    uv_async_send(&a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.flushed, 1);
    finish(&loop, &c);
}

static void on_long_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

static void test_requeue_from_hook_skips_sleep(void **state)
{
    uv_loop_t loop;
    uv_timer_t t;
    struct ctx c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.again = 1;
    uv_loop_init(&loop);
    ch_net_init(&c.net, &loop);
    ch_net_on_flush(&c.net, flush_hook, &c);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_long_timer, 400, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* The re-queued item ran on the very next iteration, not after the
     * 400 ms the poll would otherwise have slept. */
    assert_true(c.hook_runs >= 2);
    assert_int_equal(c.flushed, 1);
    assert_true(c.second_ms - c.first_ms < 200);
    finish(&loop, &c);
}

static void self_removing_hook(void *data)
{
    struct ctx *c = data;

    c->hook_runs++;
    ch_net_off_flush(&c->net, self_removing_hook, c);
}

static void noop_hook(void *data)
{
    (void)data;
}

static void test_hook_registration(void **state)
{
    uv_loop_t loop;
    uv_timer_t t;
    struct ctx c;
    int dummy[CH_NET_MAX_HOOKS];

    (void)state;
    memset(&c, 0, sizeof(c));
    uv_loop_init(&loop);
    ch_net_init(&c.net, &loop);
    assert_int_equal(ch_net_on_flush(&c.net, self_removing_hook, &c), 0);
    for (int i = 1; i < CH_NET_MAX_HOOKS; i++)
        assert_int_equal(ch_net_on_flush(&c.net, noop_hook, &dummy[i]), 0);
    assert_int_equal(ch_net_on_flush(&c.net, noop_hook, &dummy[0]), CH_E_TOO_LARGE);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_long_timer, 30, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.hook_runs, 1);
    /* Its slot is free again. */
    assert_int_equal(ch_net_on_flush(&c.net, noop_hook, &dummy[0]), 0);
    ch_net_off_tick(&c.net, noop_hook, NULL); /* absent: no-op */
    finish(&loop, &c);
}

static void tick_hook(void *data)
{
    ((struct ctx *)data)->ticks++;
}

static void on_block(uv_timer_t *t)
{
    /* Hold the loop past the tick's due time: that is loop lag. */
    usleep(400 * 1000);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_tick_and_lag(void **state)
{
    uv_loop_t loop;
    uv_timer_t block, keep;
    struct ctx c;

    (void)state;
    memset(&c, 0, sizeof(c));
    uv_loop_init(&loop);
    ch_net_init(&c.net, &loop);
    assert_int_equal(ch_net_on_tick(&c.net, tick_hook, &c), 0);
    uv_timer_init(&loop, &block);
    uv_timer_start(&block, on_block, 850, 0);
    uv_timer_init(&loop, &keep);
    uv_timer_start(&keep, on_long_timer, 1500, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.ticks, 1);
    assert_true(c.net.lag_ms >= 150);
    assert_true(c.net.lag_ms < 1000);
    assert_true(c.net.lag_max_ms >= c.net.lag_ms);
    assert_true(ch_net_uptime_ms(&c.net) >= 1400);
    finish(&loop, &c);
}

static void test_rss(void **state)
{
    uint64_t rss, anon;

    (void)state;
    ch_net_rss(&rss, &anon);
    assert_true(rss > 0);
    assert_true(anon > 0);
    assert_true(anon <= rss);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flush_after_timer),
        cmocka_unit_test(test_want_flush_keeps_loop_alive),
        cmocka_unit_test(test_requeue_from_hook_skips_sleep),
        cmocka_unit_test(test_hook_registration),
        cmocka_unit_test(test_tick_and_lag),
        cmocka_unit_test(test_rss),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
