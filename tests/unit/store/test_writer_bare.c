/*
 * test_writer_bare.c: a job flagged no_savepoint runs without its own
 * SAVEPOINT.  When it fails before writing, the rest of the batch commits
 * (test_writer.c); when it fails after changing rows, nothing can undo it
 * alone, so the batch's transaction is rolled back and every job run in
 * it fails, and the jobs after it commit in a fresh transaction: a failed
 * job still leaves nothing behind, and done(0) still means committed.
 */
#include "async_test.h"

static void on_done_rc(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;

    if (rc != j->rc)
        j->f->order_ok = false;
    on_done(job, rc);
}

static struct tjob *meta_job(struct fixture *f, const char *key, int fail_with, bool bare, int expect_rc, int seq)
{
    struct tjob *j = job_new(f, run_meta_set, seq);

    snprintf(j->key, sizeof(j->key), "%s", key);
    snprintf(j->value, sizeof(j->value), "v-%s", key);
    j->fail_with = fail_with;
    j->base.no_savepoint = bare;
    j->rc = expect_rc;
    j->base.done = on_done_rc;
    assert_int_equal(ch_store_write(f->store, &j->base), 0);
    return j;
}

static void expect_meta(const char *path, const char *key, bool present)
{
    struct ch_db *db = db_open_or_fail(path, true, false);
    char *v = NULL;

    assert_int_equal(ch_meta_get(db, key, &v), 0);
    if (present)
        assert_non_null(v);
    else
        assert_null(v);
    ch_free(v);
    ch_db_close(db);
}

static void test_bare_job_failing_after_write(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;

    open_store(f, 16, 0);
    submit_blocker(f, 0);
    meta_job(f, "a", 0, false, CH_EIO, 1);           /* ran in the lost transaction */
    meta_job(f, "b", CH_EINVAL, true, CH_EINVAL, 2); /* wrote, then failed, bare */
    meta_job(f, "c", 0, true, 0, 3);                 /* a fresh transaction */
    meta_job(f, "d", CH_EINVAL, false, CH_EINVAL, 4);
    meta_job(f, "e", 0, false, 0, 5);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 6);
    assert_int_equal(f->done_ok, 3); /* the blocker, c, e */
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.write_errors, 3);
    close_store(f);
    expect_meta(f->path, "a", false);
    expect_meta(f->path, "b", false);
    expect_meta(f->path, "c", true);
    expect_meta(f->path, "d", false); /* its savepoint */
    expect_meta(f->path, "e", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bare_job_failing_after_write, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
