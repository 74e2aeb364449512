/*
 * test_reader.c: reads on the libuv pool (store/reader.c): a read issued
 * from a write's done callback sees the commit, every pool thread's
 * connection is closed with its store (LeakSanitizer checks), and stores
 * opened one after another or side by side in one process never share a
 * pool connection.
 */
#include "async_test.h"

static void on_read_done(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;

    j->f->done++;
    if (rc == 0 && j->read_back && strcmp(j->read_back, j->value) == 0)
        j->f->done_ok++;
    ch_free(j->read_back);
    ch_free(j);
}

static void on_write_then_read(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;
    struct tjob *r = job_new(j->f, run_meta_get, -1);

    assert_int_equal(rc, 0);
    /* done(rc == 0) means committed: a read issued now must see it. */
    snprintf(r->key, sizeof(r->key), "%s", j->key);
    snprintf(r->value, sizeof(r->value), "%s", j->value);
    r->base.done = on_read_done;
    assert_int_equal(ch_store_read(j->f->store, &r->base), 0);
    ch_free(j);
}

static void test_reads_see_committed_writes(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    int i;

    open_store(f, 1000, 0);
    for (i = 0; i < 200; i++) {
        struct tjob *j = job_new(f, run_meta_set, -1);

        snprintf(j->key, sizeof(j->key), "key%d", i);
        snprintf(j->value, sizeof(j->value), "value%d", i);
        j->base.done = on_write_then_read;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 200);
    assert_int_equal(f->done_ok, 200);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.reads, 200);
    close_store(f);
}

static void on_count_done(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;

    j->f->done++;
    if (rc == 0)
        j->f->done_ok += j->seq;
    ch_free(j);
}

static void read_counts(struct fixture *f, struct ch_store *s, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        struct tjob *j = job_new(f, run_count_audit, -1);

        j->base.done = on_count_done;
        assert_int_equal(ch_store_read(s, &j->base), 0);
    }
}

static void test_stores_in_sequence_and_together(void **state)
{
    struct fixture *f = *state;
    struct ch_store_opts o = {0};
    struct ch_store *other = NULL;
    struct ch_error e = {0};
    char path2[512];
    int i, closed_before;

    /* Store 1: rows, reads on every pool thread, close. */
    open_store(f, 100, 0);
    for (i = 0; i < 3; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    read_counts(f, f->store, 64);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 3 + 64 * 3);
    close_store(f);

    /* Store 2 (new file, same process): pool threads must not reuse store
     * 1's connections.  Store 3 open at the same time, reads interleaved. */
    f->done = f->done_ok = 0;
    f->closed = 0;
    tmpdir_file(&f->dir, "store2.db", f->path, sizeof(f->path));
    open_store(f, 100, 0);
    tmpdir_file(&f->dir, "store3.db", path2, sizeof(path2));
    o.path = path2;
    assert_int_equal(ch_store_open(&f->loop, &o, &other, &e), 0);
    {
        struct tjob *j = job_new(f, run_audit, -1);

        assert_int_equal(ch_store_write(other, &j->base), 0);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    f->done = f->done_ok = 0;
    for (i = 0; i < 20; i++) {
        read_counts(f, f->store, 3); /* store2 has 0 rows */
        read_counts(f, other, 3);    /* store3 has 1 row */
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 120);
    assert_int_equal(f->done_ok, 60);
    closed_before = f->closed;
    ch_store_close(other, on_closed, f);
    ch_store_close(f->store, on_closed, f);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, closed_before + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_see_committed_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stores_in_sequence_and_together, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
