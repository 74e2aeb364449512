/*
 * test_writer.c: the writer thread on a real uv loop (store/writer.c):
 * group commit of 10,000 writes, done order, a failing job isolated inside
 * its batch, a job without its own savepoint, a transaction lost mid-batch failing exactly the jobs it held,
 * SQLITE_BUSY retries, queue-full, close draining every write, lazy writes
 * (no wake-up; commit within CH_STORE_LAZY_MS or with the next batch), open errors,
 * and uv_loop_close() == 0 after every test.
 */
#include <sys/stat.h>

#include "async_test.h"

/* ---- tests ---------------------------------------------------------- */

static void test_ten_thousand_writes(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_db *db;
    int i;

    open_store(f, 20000, 0);
    for (i = 0; i < 10000; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    /* Run until every done callback fired: the async handle is referenced
     * while writes are outstanding, so uv_run returns only then. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 10000);
    assert_int_equal(f->done_ok, 10000);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.writes_committed, 10000);
    assert_int_equal(st.write_errors, 0);
    assert_int_equal(st.write_queue_depth, 0);
    assert_int_equal(st.write_queue_max, 20000);
    assert_true(st.open);
    assert_int_equal(st.schema_version, ch_db_latest_version());
    /* Group commit happened: far fewer transactions than writes. */
    assert_true(st.commits >= 1);
    assert_true(st.commits < st.writes_committed);
    assert_string_equal(ch_store_path(f->store), f->path);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), 10000);
    ch_db_close(db);
}

/* Commits that grow the WAL past 1000 frames do not checkpoint it
 * themselves: the checkpointer thread does, and the data stays whole. */
static void test_wal_checkpointed_off_the_commit_path(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_db *db;
    int i, waited;

    open_store(f, 100, 0);
    for (i = 0; i < 1500; i++) { /* one commit each: >= 1 WAL frame each */
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    }
    assert_int_equal(f->done_ok, 1500);
    for (waited = 0; waited < 200; waited++) { /* up to 2 s */
        ch_store_stats(f->store, &st);
        if (st.checkpoints > 0)
            break;
        uv_sleep(10);
    }
    assert_true(st.checkpoints > 0);
    assert_true(st.commits >= 1500);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), 1500);
    ch_db_close(db);
}

/* ~15 pages a commit (a 60 KB value under a new key): many WAL frames
 * quickly. */
static int run_bulk(struct ch_db *db, struct ch_store_job *job)
{
    static char big[60001];
    struct tjob *j = (struct tjob *)job;
    char key[32];

    if (!big[0])
        memset(big, 'x', sizeof(big) - 1);
    snprintf(key, sizeof(key), "bulk-%d", j->seq);
    return ch_meta_set(db, key, big);
}

/* A steady stream of commits, faster than any checkpoint here, still lets
 * the log start over: the writer finishes the checkpointer's passes, and
 * waits for one past 6,000 frames (~24 MB), so the WAL file stays near
 * that instead of growing with everything written (~60,000 frames,
 * ~240 MB: what the test measured before the writer's part existed). */
static void test_wal_bounded_under_steady_commits(void **state)
{
    struct fixture *f = *state;
    char wal[600];
    struct stat sb;
    int i;

    open_store(f, 100, 0);
    for (i = 0; i < 4000; i++) {
        struct tjob *j = job_new(f, run_bulk, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    }
    assert_int_equal(f->done_ok, 4000);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(wal, &sb), 0);
    /* The hard limit plus the commit that crossed it, and slack (a pass
     * that began just before the writer's checkpoint makes it retry). */
    assert_true(sb.st_size < (off_t)40 * 1024 * 1024);
    close_store(f);
}

static void test_batches_are_full(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    int i;

    /* With the writer held, 1000 queued jobs go in ceil(1000/100) commits. */
    open_store(f, 2000, 100);
    submit_blocker(f, 0);
    for (i = 1; i <= 1000; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    ch_store_stats(f->store, &st);
    assert_int_equal(st.write_queue_depth, 1000);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 1001);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 1 + 10);
    close_store(f);
}

static void test_failing_job_isolated(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_db *db;
    char *v = NULL;

    open_store(f, 16, 0);
    submit_blocker(f, 0);
    /* These three are queued while the writer is held: one batch. */
    submit_meta(f, "a", "1", 0, 1);
    submit_meta(f, "b", "2", CH_EINVAL, 2);
    submit_meta(f, "c", "3", 0, 3);
    {
        struct tjob *j = job_new(f, run_commit_inside, 4);

        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 5);
    assert_int_equal(f->done_ok, 4); /* all but b */
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.write_errors, 1);
    assert_int_equal(st.writes_committed, 4);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(ch_meta_get(db, "a", &v), 0);
    assert_string_equal(v, "1");
    ch_free(v);
    assert_int_equal(ch_meta_get(db, "b", &v), 0);
    assert_null(v); /* rolled back to its savepoint */
    assert_int_equal(ch_meta_get(db, "c", &v), 0);
    assert_string_equal(v, "3");
    ch_free(v);
    ch_db_close(db);
}

/* A job flagged no_savepoint runs bare; when its one INSERT fails, SQLite
 * undoes the statement alone and the rest of the batch still commits. */
static int run_insert_run(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;
    struct ch_run_rec r = {.run_id = j->key, .session_key = "s", .source = "api", .request = "{}", .created_ms = 1};

    return ch_runs_insert(db, &r, NULL, NULL);
}

static void test_job_without_savepoint(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_db *db;
    static const char *const ids[] = {"r1", "r1", "r2"};

    open_store(f, 16, 0);
    submit_blocker(f, 0);
    for (int i = 0; i < 3; i++) {
        struct tjob *j = job_new(f, run_insert_run, i + 1);

        snprintf(j->key, sizeof(j->key), "%s", ids[i]);
        j->base.no_savepoint = true;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 4);
    assert_int_equal(f->done_ok, 3); /* the second r1 failed */
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.write_errors, 1);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM runs"), 2);
    ch_db_close(db);
}

static void test_queue_full(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct tjob *extra;
    int i;

    open_store(f, 4, 0);
    submit_blocker(f, 0); /* taken off the queue: does not count */
    for (i = 1; i <= 4; i++)
        submit_meta(f, "k", "v", 0, i);
    extra = job_new(f, run_audit, -1);
    assert_int_equal(ch_store_write(f->store, &extra->base), CH_EBUSY);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.write_queue_depth, 4);
    assert_int_equal(st.write_queue_max, 4);
    /* Not taken: the caller still owns it and may try again later. */
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 5);
    assert_int_equal(ch_store_write(f->store, &extra->base), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 6);
    close_store(f);
}

static void on_done_check_closed(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;

    /* Every done runs before the close callback. */
    if (j->f->closed != 0)
        j->f->order_ok = false;
    on_done(job, rc);
}

static void test_close_drains(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct tjob *late;
    struct ch_db *db;
    int i;

    open_store(f, 5000, 64);
    for (i = 0; i < 3000; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        j->base.done = on_done_check_closed;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    /* A job with no done callback is freed by the store. */
    {
        struct tjob *j = job_new(f, run_audit, 3000);

        j->base.done = NULL;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    ch_store_close(f->store, on_closed, f);
    ch_store_stats(f->store, &st);
    assert_false(st.open);
    late = job_new(f, run_audit, -1);
    assert_int_equal(ch_store_write(f->store, &late->base), CH_ECLOSED);
    assert_int_equal(ch_store_read(f->store, &late->base), CH_ECLOSED);
    ch_free(late);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->done_ok, 3000);
    assert_true(f->order_ok);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), 3001);
    ch_db_close(db);
}

static void on_done_then_close(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;
    struct fixture *f = j->f;

    /* Closing from inside a completion: later completions still arrive. */
    if (j->seq == 0)
        ch_store_close(f->store, on_closed, f);
    on_done_check_closed(job, rc);
}

static void test_close_from_done(void **state)
{
    struct fixture *f = *state;
    int i;

    open_store(f, 100, 0);
    submit_blocker(f, -1);
    for (i = 0; i < 50; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        j->base.done = on_done_then_close;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->done_ok, 51);
    assert_true(f->order_ok);
}

static int run_kill_txn(struct ch_db *db, struct ch_store_job *job)
{
    /* Through the raw handle, as a buggy job (or SQLite after a disk-full
     * error) would: the batch's transaction is gone. */
    sqlite3_exec(ch_db_handle(db), "ROLLBACK", NULL, NULL, NULL);
    return 0;
}

static void on_done_expect(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;

    if (rc != j->rc)
        j->f->order_ok = false;
    on_done(job, rc);
}

static void test_lost_transaction_fails_its_jobs(void **state)
{
    struct fixture *f = *state;
    struct tjob *a, *x, *c;
    struct ch_db *db;
    char *v = NULL;

    open_store(f, 16, 0);
    submit_blocker(f, 0);
    a = job_new(f, run_meta_set, 1);
    snprintf(a->key, sizeof(a->key), "a");
    snprintf(a->value, sizeof(a->value), "1");
    x = job_new(f, run_kill_txn, 2);
    c = job_new(f, run_meta_set, 3);
    snprintf(c->key, sizeof(c->key), "c");
    snprintf(c->value, sizeof(c->value), "3");
    /* a ran before the loss: not committed, so it must not report 0. */
    a->rc = CH_EIO;
    x->rc = CH_EIO;
    c->rc = 0; /* a fresh transaction carries the rest of the batch */
    a->base.done = x->base.done = c->base.done = on_done_expect;
    assert_int_equal(ch_store_write(f->store, &a->base), 0);
    assert_int_equal(ch_store_write(f->store, &x->base), 0);
    assert_int_equal(ch_store_write(f->store, &c->base), 0);
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 4);
    assert_true(f->order_ok);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(ch_meta_get(db, "a", &v), 0);
    assert_null(v);
    assert_int_equal(ch_meta_get(db, "c", &v), 0);
    assert_string_equal(v, "3");
    ch_free(v);
    ch_db_close(db);
}

struct lock_holder {
    uv_timer_t timer;
    struct ch_db *db;
};

static void on_release_lock(uv_timer_t *t)
{
    struct lock_holder *h = ch_container_of(t, struct lock_holder, timer);

    assert_int_equal(ch_db_commit(h->db), 0);
    uv_close((uv_handle_t *)t, NULL);
}

/* Another connection holds the write lock for hold_ms; the store's busy
 * timeout is 20 ms.  One write must finish with expect_rc. */
static void busy_case(struct fixture *f, uint64_t hold_ms, int expect_rc)
{
    struct ch_store_opts o = {.path = f->path, .busy_timeout_ms = 20};
    struct lock_holder h;
    struct ch_store_stats st;
    struct ch_error e = {0};
    struct tjob *j;

    assert_int_equal(ch_store_open(&f->loop, &o, &f->store, &e), 0);
    h.db = db_open_or_fail(f->path, false, false);
    assert_int_equal(ch_db_begin(h.db), 0); /* BEGIN IMMEDIATE: the write lock */
    assert_int_equal(uv_timer_init(&f->loop, &h.timer), 0);
    assert_int_equal(uv_timer_start(&h.timer, on_release_lock, hold_ms, 0), 0);
    j = job_new(f, run_meta_set, 0);
    snprintf(j->key, sizeof(j->key), "k");
    snprintf(j->value, sizeof(j->value), "v");
    j->rc = expect_rc;
    j->base.done = on_done_expect;
    assert_int_equal(ch_store_write(f->store, &j->base), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 1);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.write_errors, expect_rc ? 1 : 0);
    ch_db_close(h.db);
    close_store(f);
}

static void test_busy_retried(void **state)
{
    /* Released after 100 ms: inside the writer's retries (about 430 ms). */
    busy_case(*state, 100, 0);
}

static void test_busy_gives_up(void **state)
{
    /* Held for 1 s: the writer gives up and reports CH_EBUSY. */
    busy_case(*state, 1000, CH_EBUSY);
}

static void test_idle_store_does_not_hold_loop(void **state)
{
    struct fixture *f = *state;

    open_store(f, 8, 0);
    /* Nothing pending: uv_run returns at once instead of hanging. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    close_store(f);
}

static void test_lazy_writes(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_db *db;
    uint64_t t0, waited_ms;
    int i;

    open_store(f, 100, 0);
    /* Alone, a lazy write still commits, after about CH_STORE_LAZY_MS. */
    t0 = uv_hrtime();
    assert_int_equal(ch_store_write_lazy(f->store, &job_new(f, run_audit, 0)->base), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    waited_ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(f->done_ok, 1);
    assert_true(waited_ms + 1 >= CH_STORE_LAZY_MS);
    assert_true(waited_ms < 5000);
    /* Queued behind a held writer, lazy and urgent jobs share one batch,
     * in submission order. */
    submit_blocker(f, 1);
    for (i = 2; i < 6; i++) {
        struct tjob *j = job_new(f, run_audit, i);

        assert_int_equal(i == 4 ? ch_store_write(f->store, &j->base) : ch_store_write_lazy(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done_ok, 6);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 3); /* the lone lazy job, the blocker, the rest */
    /* Close commits lazy jobs at once, without waiting out the delay. */
    for (i = 6; i < 10; i++)
        assert_int_equal(ch_store_write_lazy(f->store, &job_new(f, run_audit, i)->base), 0);
    close_store(f);
    assert_int_equal(f->done, 10);
    assert_int_equal(f->done_ok, 10);
    assert_true(f->order_ok);
    assert_int_equal(ch_store_write_lazy(NULL, NULL), CH_EINVAL);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), 9); /* all but the blocker */
    ch_db_close(db);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct ch_store_opts o = {0};
    struct ch_store *s = (struct ch_store *)1;
    struct ch_error e = {0};
    char path[512];

    tmpdir_file(&f->dir, "missing/dir/x.db", path, sizeof(path));
    o.path = path;
    assert_int_equal(ch_store_open(&f->loop, &o, &s, &e), CH_EIO);
    assert_null(s);
    assert_non_null(strstr(e.msg, "missing/dir"));
    o.path = ":memory:";
    assert_int_equal(ch_store_open(&f->loop, &o, &s, &e), CH_EINVAL);
    o.path = NULL;
    assert_int_equal(ch_store_open(&f->loop, &o, &s, &e), CH_EINVAL);
    assert_int_equal(ch_store_write(NULL, NULL), CH_EINVAL);
    ch_store_close(NULL, on_closed, f); /* NULL store: cb at once */
    assert_int_equal(f->closed, 1);
    f->closed = 0;

    open_store(f, 8, 0);
    {
        struct ch_store_job bad = {0}; /* no run */

        assert_int_equal(ch_store_write(f->store, &bad), CH_EINVAL);
        assert_int_equal(ch_store_read(f->store, &bad), CH_EINVAL);
    }
    close_store(f);

    /* A newer file is refused by the store too. */
    {
        struct ch_db *db = db_open_or_fail(f->path, false, true);
        char sql[64];

        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", ch_db_latest_version() + 1);
        db_exec_or_fail(db, sql);
        ch_db_close(db);
    }
    o.path = f->path;
    assert_int_equal(ch_store_open(&f->loop, &o, &s, &e), CH_EVERSION);
    assert_null(s);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ten_thousand_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpointed_off_the_commit_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_bounded_under_steady_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_are_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_without_savepoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_transaction_fails_its_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_store_does_not_hold_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
