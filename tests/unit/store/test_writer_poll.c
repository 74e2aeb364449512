/*
 * test_writer_poll.c: the store writer's busy polling (store/writer.c,
 * gateway.busyPollMicros) on a real uv loop: a loop that submits the next
 * write as soon as the previous one is done has it caught while the writer
 * polls (with two CPUs or more to run on; confined to one, the writer never
 * polls, as it would only keep the loop off its CPU), every write commits
 * in order, and close ends a polling writer at once.
 */
#include <sched.h>

#include "async_test.h"

#define WRITES 300

struct chain {
    struct fixture *f;
    int submitted;
};

static struct chain g_chain;

static void submit_next(struct chain *ch);

static void on_chain_done(struct ch_store_job *job, int rc)
{
    on_done(job, rc);
    if (g_chain.submitted < WRITES)
        submit_next(&g_chain);
}

static void submit_next(struct chain *ch)
{
    struct tjob *j = job_new(ch->f, run_audit, ch->submitted++);

    j->base.done = on_chain_done;
    assert_int_equal(ch_store_write(ch->f->store, &j->base), 0);
}

static int cpus(void)
{
    cpu_set_t set;

    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
}

/* Open a store polling for up to 20 ms and run WRITES writes through it,
 * one at a time, each submitted when the previous one is done. */
static void run_chain(struct fixture *f, struct ch_store_stats *st)
{
    struct ch_store_opts o = {.path = f->path, .max_write_queue = 100, .busy_poll_us = 20000};
    struct ch_error e = {0};

    if (ch_store_open(&f->loop, &o, &f->store, &e) != 0)
        fail_msg("ch_store_open: %s", e.msg);
    g_chain.f = f;
    g_chain.submitted = 0;
    submit_next(&g_chain);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, WRITES);
    assert_true(f->order_ok);
    ch_store_stats(f->store, st);
    assert_int_equal(st->writes_committed, WRITES);
}

static void test_next_write_caught_while_polling(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;

    run_chain(f, &st);
    if (cpus() >= 2) {
        assert_int_equal(st.writer_spin.max_ns, 20000u * 1000u);
        /* One write at a time, each submitted a loop round trip after the
         * last commit: far inside 20 ms, so the budget grows and most
         * waits end while the writer polls. */
        /* A machine busy with other work can take the writer's core
         * mid-poll: that time is not counted as polling, by design
         * (ch_spin_yielded), and can leave nothing counted, or no catch
         * (a poll that lost its core ends as taken, not as a hit). */
        assert_true(st.writer_spin.hits > 0 || st.writer_spin.taken > 0);
        if (st.writer_spin.taken == 0)
            assert_true(st.writer_spin.spin_ns > 0);
    } else {
        assert_int_equal(st.writer_spin.max_ns, 0);
        assert_int_equal(st.writer_spin.hits, 0);
    }
    /* The writer is polling (or asleep) now: close must end it at once. */
    close_store(f);
    {
        struct ch_db *db = db_open_or_fail(f->path, true, false);

        assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), WRITES);
        ch_db_close(db);
    }
}

static void test_one_cpu_never_polls(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    cpu_set_t all, one;

    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &all)) {
            CPU_SET(i, &one);
            break;
        }
    }
    /* The writer thread inherits the mask it is started with. */
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    run_chain(f, &st);
    assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
    assert_int_equal(st.writer_spin.max_ns, 0);
    assert_int_equal(st.writer_spin.hits + st.writer_spin.spin_ns, 0);
    close_store(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_next_write_caught_while_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_cpu_never_polls, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
