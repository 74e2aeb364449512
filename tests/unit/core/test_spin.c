/* Unit tests for core/spin.c, the busy-poll budget policy: it starts at 0,
 * a wait that ended within the maximum grows it (a quarter of the maximum,
 * then doubling up to it), a wait caught while polling changes nothing, a
 * wait that outlasted the maximum halves it down to 0, and a maximum of 0
 * never polls; a yield that lost the core pauses polling for a window.
 * The threads that use it are tested on real loops in
 * tests/unit/net/test_busy_poll.c and tests/unit/store/test_writer_poll.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "core/core.h"

#define US 1000u
#define MS 1000000ull

static void test_grows_to_the_maximum(void **state)
{
    struct ch_spin sp;

    (void)state;
    ch_spin_init(&sp, 200 * US);
    assert_int_equal(sp.budget_ns, 0);
    assert_int_equal(ch_spin_grow_start(&sp), 50 * US);
    ch_spin_learn(&sp, 30 * US); /* slept 30 us: worth polling */
    assert_int_equal(sp.budget_ns, 50 * US);
    ch_spin_learn(&sp, 30 * US); /* caught while polling */
    assert_int_equal(sp.budget_ns, 50 * US);
    assert_int_equal(sp.hits, 1);
    ch_spin_learn(&sp, 80 * US);
    assert_int_equal(sp.budget_ns, 100 * US);
    ch_spin_learn(&sp, 150 * US);
    assert_int_equal(sp.budget_ns, 200 * US);
    ch_spin_learn(&sp, 200 * US); /* exactly the budget: caught */
    assert_int_equal(sp.budget_ns, 200 * US);
    assert_int_equal(sp.grows, 3);
    assert_int_equal(sp.hits, 2);
    assert_int_equal(sp.shrinks, 0);
}

static void test_long_waits_stop_the_polling(void **state)
{
    struct ch_spin sp;

    (void)state;
    ch_spin_init(&sp, 200 * US);
    sp.budget_ns = 200 * US;
    ch_spin_learn(&sp, UINT64_MAX); /* an LLM answering in seconds */
    assert_int_equal(sp.budget_ns, 100 * US);
    ch_spin_learn(&sp, 201 * US);
    assert_int_equal(sp.budget_ns, 50 * US);
    ch_spin_learn(&sp, UINT64_MAX); /* below the start: off */
    assert_int_equal(sp.budget_ns, 0);
    ch_spin_learn(&sp, UINT64_MAX);
    assert_int_equal(sp.budget_ns, 0);
    assert_int_equal(sp.shrinks, 4);
    /* One short wait turns it back on. */
    ch_spin_learn(&sp, 10 * US);
    assert_int_equal(sp.budget_ns, 50 * US);
}

static void test_zero_never_polls(void **state)
{
    struct ch_spin sp;

    (void)state;
    ch_spin_init(&sp, 0);
    ch_spin_learn(&sp, 1);
    ch_spin_learn(&sp, UINT64_MAX);
    assert_int_equal(sp.budget_ns, 0);
    assert_int_equal(sp.hits + sp.grows + sp.shrinks, 0);
}

/* The budget stays within [0, max] whatever the waits. */
static void test_bounded_over_random_waits(void **state)
{
    struct ch_spin sp;
    uint64_t x = 88172645463325252ull;

    (void)state;
    ch_spin_init(&sp, 500 * US);
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ch_spin_learn(&sp, x % 4 == 0 ? UINT64_MAX : x % (700 * US));
        assert_true(sp.budget_ns <= 500 * US);
        assert_true(sp.budget_ns == 0 || sp.budget_ns >= 125 * US);
    }
    assert_int_equal(sp.hits + sp.grows + sp.shrinks, 100000);
}

/* The thread's CPU time, as the test sets it. */
static uint64_t fake_cpu;
static uint64_t cpu_now(void)
{
    return fake_cpu;
}

/* A thread busy more than 70% of a 10 ms window (CPU time less polling) is
 * saturated: it does not poll, and with publish set no thread of the
 * process does, until a window under the limit; the budget is kept. */
static void test_saturation_stops_polling(void **state)
{
    struct ch_spin loop, writer;
    uint64_t t = 1000 * MS;

    (void)state;
    ch_spin_init(&loop, 500 * US);
    ch_spin_init(&writer, 500 * US);
    loop.publish = true;
    loop.budget_ns = writer.budget_ns = 250 * US;
    fake_cpu = 77 * MS;
    ch_spin_note(&loop, t, cpu_now); /* opens the first window */
    assert_int_equal(ch_spin_budget(&loop), 250 * US);
    /* 10 ms with 8 ms of CPU: saturated. */
    for (int i = 0; i < 100; i++) {
        fake_cpu += 80 * US;
        ch_spin_note(&loop, t += 100 * US, cpu_now);
    }
    assert_true(loop.saturated);
    assert_true(ch_spin_process_saturated());
    assert_int_equal(ch_spin_budget(&loop), 0);
    assert_int_equal(ch_spin_budget(&writer), 0);
    assert_int_equal(loop.skipped, 1);
    assert_int_equal(writer.skipped, 1);
    assert_int_equal(loop.budget_ns, 250 * US);
    /* 9 ms of CPU of which 5 ms polling: 40% busy, polling again. */
    loop.spin_ns += 5 * MS;
    fake_cpu += 9 * MS;
    ch_spin_note(&loop, t += 10 * MS, cpu_now);
    assert_false(loop.saturated);
    assert_false(ch_spin_process_saturated());
    assert_int_equal(ch_spin_budget(&loop), 250 * US);
    assert_int_equal(ch_spin_budget(&writer), 250 * US);
    /* Within a window nothing is decided (and the clock is not read). */
    fake_cpu += 9 * MS;
    ch_spin_note(&loop, t += 5 * MS, cpu_now);
    assert_false(loop.saturated);
    /* A thread that does not publish decides only for itself. */
    ch_spin_note(&writer, t, cpu_now);
    fake_cpu += 9500 * US;
    ch_spin_note(&writer, t += 10 * MS, cpu_now);
    assert_true(writer.saturated);
    assert_false(ch_spin_process_saturated());
    assert_int_equal(ch_spin_budget(&writer), 0);
    assert_int_equal(ch_spin_budget(&loop), 250 * US);
    /* A long idle stretch ends a window far under the limit. */
    ch_spin_note(&loop, t += 5000 * MS, cpu_now);
    assert_false(loop.saturated);
}

/* A yield that came back after another thread's time slice ends polling
 * for a window; a short one (a quick runner on the core) changes nothing. */
static void test_core_taken_pauses_polling(void **state)
{
    struct ch_spin sp;
    struct timespec ts = {0, 11 * 1000 * 1000}; /* past CH_SPIN_WINDOW_NS */

    (void)state;
    ch_spin_init(&sp, 500 * US);
    ch_spin_learn(&sp, 100 * US); /* grows to a quarter of the maximum */
    assert_int_equal(ch_spin_budget(&sp), 125 * US);
    assert_false(ch_spin_yielded(&sp, 20 * US));
    assert_false(ch_spin_yielded(&sp, CH_SPIN_TAKEN_NS));
    assert_int_equal(sp.taken, 0);
    assert_int_equal(ch_spin_budget(&sp), 125 * US);
    assert_true(ch_spin_yielded(&sp, 3 * MS));
    assert_int_equal(sp.taken, 1);
    assert_int_equal(ch_spin_budget(&sp), 0);
    assert_int_equal(ch_spin_budget(&sp), 0);
    assert_int_equal(sp.budget_ns, 125 * US); /* what was learnt is kept */
    assert_int_equal(sp.skipped, 0);          /* counted in `taken`, not as saturation */
    nanosleep(&ts, NULL);
    assert_int_equal(ch_spin_budget(&sp), 125 * US);
    assert_int_equal(sp.taken_until_ns, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_to_the_maximum),     cmocka_unit_test(test_long_waits_stop_the_polling),
        cmocka_unit_test(test_zero_never_polls),         cmocka_unit_test(test_bounded_over_random_waits),
        cmocka_unit_test(test_saturation_stops_polling), cmocka_unit_test(test_core_taken_pauses_polling),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
