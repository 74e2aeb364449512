/* Unit tests for the loop's busy polling (net/loop.c, gateway.busyPollMicros)
 * on a real uv loop with a peer thread: answers that come back soon are
 * caught while the loop polls; answers slower than the maximum turn the
 * polling off; a timer still fires while the loop polls; a loop whose core
 * another thread takes stops polling; 0 never polls; a
 * loop kept busy stops polling (saturation); and every handle closes
 * (uv_loop_close()==0). */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/net.h"

#define ROUNDS 200

struct ctx {
    struct ch_net net;
    uv_poll_t answers;
    uv_timer_t timer;
    int to_peer[2], from_peer[2];
    long peer_delay_ns; /* the peer answers this long after each ping */
    long work_ns;       /* the loop works this long on each answer */
    int rounds;
    int timer_runs;
    bool closed;
};

static void *peer_main(void *arg)
{
    struct ctx *c = arg;
    struct timespec ts = {0, c->peer_delay_ns};
    char b;

    while (read(c->to_peer[0], &b, 1) == 1) {
        nanosleep(&ts, NULL);
        if (write(c->from_peer[1], &b, 1) != 1)
            break;
    }
    return NULL;
}

static void ping(struct ctx *c)
{
    assert_int_equal(write(c->to_peer[1], "x", 1), 1);
}

static void on_answer(uv_poll_t *p, int status, int events)
{
    struct ctx *c = p->data;
    char b;

    (void)events;
    assert_int_equal(status, 0);
    assert_int_equal(read(c->from_peer[0], &b, 1), 1);
    if (c->work_ns) {
        uint64_t until = uv_hrtime() + (uint64_t)c->work_ns;
        while (uv_hrtime() < until)
            ; /* the loop's own work on this answer */
    }
    if (++c->rounds < ROUNDS)
        ping(c);
    else
        uv_poll_stop(p);
}

static void on_timer(uv_timer_t *t)
{
    ((struct ctx *)t->data)->timer_runs++;
}

static void on_net_closed(void *data)
{
    ((struct ctx *)data)->closed = true;
}

/* ROUNDS ping-pongs with the peer under a poll maximum of max_us. */
static void run_rounds(struct ctx *c, uint64_t max_us, long peer_delay_ns, long work_ns, uint64_t (*cpu)(void))
{
    uv_loop_t loop;
    pthread_t peer;

    memset(c, 0, sizeof(*c));
    c->peer_delay_ns = peer_delay_ns;
    c->work_ns = work_ns;
    assert_int_equal(pipe(c->to_peer), 0);
    assert_int_equal(pipe(c->from_peer), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ch_net_init(&c->net, &loop), 0);
    ch_net_busy_poll(&c->net, max_us);
    if (cpu)
        c->net.cpu_ns = cpu;
    assert_int_equal(uv_poll_init(&loop, &c->answers, c->from_peer[0]), 0);
    c->answers.data = c;
    assert_int_equal(uv_poll_start(&c->answers, UV_READABLE, on_answer), 0);
    /* A 1 ms timer, unref'd: it must keep firing while the loop polls. */
    assert_int_equal(uv_timer_init(&loop, &c->timer), 0);
    c->timer.data = c;
    assert_int_equal(uv_timer_start(&c->timer, on_timer, 1, 1), 0);
    uv_unref((uv_handle_t *)&c->timer);
    assert_int_equal(pthread_create(&peer, NULL, peer_main, c), 0);
    ping(c);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the poll handle stops */
    assert_int_equal(c->rounds, ROUNDS);
    close(c->to_peer[1]); /* the peer's read ends */
    assert_int_equal(pthread_join(peer, NULL), 0);
    uv_close((uv_handle_t *)&c->answers, NULL);
    uv_close((uv_handle_t *)&c->timer, NULL);
    ch_net_close(&c->net, on_net_closed, c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(c->closed);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(c->to_peer[0]);
    close(c->from_peer[0]);
    close(c->from_peer[1]);
}

static void test_quick_answers_are_caught(void **state)
{
    struct ctx c;

    (void)state;
    /* The peer answers after ~50 us; a 20 ms maximum covers any wake-up
     * delay a loaded machine adds, so the budget grows and waits end while
     * the loop polls. */
    run_rounds(&c, 20000, 50000, 0, NULL);
    assert_true(c.net.spin.grows >= 1);
    /* Unless other work on the machine took the loop's core while it
     * polled, which stops polling by design (test_core_taken_stops_polling). */
    if (c.net.spin.taken == 0) {
        assert_true(c.net.spin.hits > 0);
        assert_true(c.net.spin.spin_ns > 0);
    }
    assert_true(c.timer_runs > 0); /* ROUNDS x 50 us outlasts 1 ms */
}

static void test_slow_answers_stop_polling(void **state)
{
    struct ctx c;

    (void)state;
    /* Every answer takes 2 ms, longer than the 100 us maximum: nearly every
     * wait outlasts it and shrinks the budget, few end within it.  Not
     * "the budget ends at 0" (it did until a loaded run failed): a wait can
     * end at once where the loop started it late, with the answer already
     * there, and the last such one leaves a small budget.  Nor a bound on
     * the polling time: it is wall-clock time, and beside CPU hogs one poll
     * yields the core for whole time slices (5-10 ms in total per run with
     * two hogs, over 1-3 polling waits), while the counts stay the same. */
    run_rounds(&c, 100, 2000000, 0, NULL);
    assert_true(c.net.spin.shrinks > ROUNDS);
    assert_true(c.net.spin.grows * 20 < c.net.spin.shrinks);
    assert_true(c.timer_runs > 0);
}

static atomic_bool hog_stop;

static void *hog(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&hog_stop, memory_order_relaxed))
        ;
    return NULL;
}

static void test_core_taken_stops_polling(void **state)
{
    cpu_set_t all, one;
    pthread_t h;
    struct ctx c;
    uint64_t t0, elapsed;
    int cpu = 0;

    (void)state;
    /* The loop (this thread, and the peer it starts) share one core with a
     * thread that never sleeps: a poll's yield hands it a time slice, so
     * the loop stops polling and sleeps until its answers wake it, and the
     * slices it lost are not counted as polling. */
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    while (!CPU_ISSET(cpu, &all))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
    atomic_store(&hog_stop, false);
    assert_int_equal(pthread_create(&h, NULL, hog, NULL), 0); /* inherits the one core */
    t0 = uv_hrtime();
    run_rounds(&c, 20000, 50000, 0, NULL);
    elapsed = uv_hrtime() - t0;
    atomic_store(&hog_stop, true);
    assert_int_equal(pthread_join(h, NULL), 0);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(all), &all), 0);
    assert_true(c.net.spin.taken > 0);
    assert_true(c.net.spin.spin_ns * 4 < elapsed);
}

static void test_zero_never_polls(void **state)
{
    struct ctx c;

    (void)state;
    run_rounds(&c, 0, 50000, 0, NULL);
    assert_int_equal(c.net.spin.hits + c.net.spin.grows + c.net.spin.shrinks, 0);
    assert_int_equal(c.net.spin.spin_ns, 0);
}

/* A CPU clock that runs with the wall clock: a loop on the CPU all the time. */
static uint64_t always_busy(void)
{
    return uv_hrtime();
}

static void test_busy_loop_stops_polling(void **state)
{
    struct ctx c;

    (void)state;
    /* The loop works 400 us on each 50 us answer, for ROUNDS x 450 us (90
     * ms, nine windows), on a CPU clock that says it never leaves the CPU
     * (the real one says less when other work on the machine takes its
     * core): saturated, so waits after the first window are not polled. */
    run_rounds(&c, 20000, 50000, 400000, always_busy);
    assert_true(c.net.spin.skipped > 0);
    assert_true(c.net.spin.spin_ns < 20 * 1000000u); /* no more than the first window's */
    /* A quiet loop, on its real clock, polls again and publishes that. */
    run_rounds(&c, 20000, 50000, 0, NULL);
    assert_int_equal(c.net.spin.skipped, 0);
    assert_false(ch_spin_process_saturated());
    assert_true(c.net.spin.hits > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_answers_are_caught), cmocka_unit_test(test_slow_answers_stop_polling),
        cmocka_unit_test(test_core_taken_stops_polling), cmocka_unit_test(test_zero_never_polls),
        cmocka_unit_test(test_busy_loop_stops_polling),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
