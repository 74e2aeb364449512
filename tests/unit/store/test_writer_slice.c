/*
 * test_writer_slice.c: the store writer's time slice (store.writerSliceMicros,
 * ch_db_yield_point) on a real uv loop.  A batch that runs longer than its
 * slice gives up its core between jobs and between the 16-row steps of an
 * audit job, and still commits every row in order; a slice of 0 never
 * yields.  How long a request waits behind a batch is a benchmark's
 * question (bench/openai_proxy.sh), not a test's: these check that the
 * yields happen where they should and change nothing that is written.
 */
#include "async_test.h"

#define JOBS 1000
#define BIG_ROWS 4096

static void open_sliced(struct fixture *f, unsigned slice_us)
{
    struct ch_store_opts o = {.path = f->path, .max_write_queue = 4 * JOBS, .slice_us = slice_us};
    struct ch_error e = {0};

    if (ch_store_open(&f->loop, &o, &f->store, &e) != 0)
        fail_msg("ch_store_open: %s", e.msg);
}

/* JOBS one-row audit jobs queued behind a blocker, so they run as one
 * batch once it is released; returns the store's yield count. */
static uint64_t run_many_jobs(struct fixture *f, unsigned slice_us)
{
    struct ch_store_stats st;

    open_sliced(f, slice_us);
    submit_blocker(f, 0);
    for (int i = 1; i <= JOBS; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, JOBS + 1);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.writes_committed, JOBS + 1);
    close_store(f);
    {
        struct ch_db *db = db_open_or_fail(f->path, true, false);

        assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), JOBS);
        /* Row i was written by job i: the yields reordered nothing. */
        assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit WHERE path = '/' || ts_ms"), JOBS);
        ch_db_close(db);
    }
    return st.yields;
}

static void test_batch_yields_between_jobs(void **state)
{
    /* 1 us: every job runs longer than the slice. */
    assert_true(run_many_jobs(*state, 1) > 0);
}

static void test_zero_never_yields(void **state)
{
    assert_int_equal(run_many_jobs(*state, 0), 0);
}

static int run_big_audit(struct ch_db *db, struct ch_store_job *job)
{
    struct ch_audit_rec *recs = calloc(BIG_ROWS, sizeof(*recs));
    int rc;

    (void)job;
    if (!recs) /* no cmocka assert on the writer thread: the done count fails the test */
        return CH_ENOMEM;
    for (int i = 0; i < BIG_ROWS; i++) {
        recs[i].ts_ms = i;
        recs[i].status = 200;
        snprintf(recs[i].method, sizeof(recs[i].method), "POST");
        snprintf(recs[i].path, sizeof(recs[i].path), "/big/%d", i);
    }
    rc = ch_audit_insert(db, recs, BIG_ROWS);
    free(recs);
    return rc;
}

/* One job, so no yield between jobs: more than the one before the commit
 * means the audit insert yielded between its steps. */
static void test_audit_job_yields_between_steps(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct tjob *j;

    open_sliced(f, 1);
    j = job_new(f, run_big_audit, 0);
    assert_int_equal(ch_store_write(f->store, &j->base), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 1);
    ch_store_stats(f->store, &st);
    assert_true(st.yields > 1);
    close_store(f);
    {
        struct ch_db *db = db_open_or_fail(f->path, true, false);

        assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), BIG_ROWS);
        assert_int_equal(db_query_int(db, "SELECT MAX(ts_ms) FROM audit WHERE path = '/big/' || ts_ms"), BIG_ROWS - 1);
        ch_db_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_yields_between_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_never_yields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_job_yields_between_steps, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
