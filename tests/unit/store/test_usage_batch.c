/*
 * test_usage_batch.c: ch_usage_add inside a writer batch notes its
 * addition, and the writer writes the batch's notes before COMMIT, one
 * upsert per row.  The rows must come out exactly as one upsert per call
 * (the synchronous path) writes them, cost bits included; a failed job's
 * notes go with it, and so do those of a lost transaction's jobs.
 */
#include "async_test.h"
#include "store/store_turns.h"

#define DAY_MS 1795330183047 /* 2026-11-22 */

struct add {
    const char *model;
    int64_t requests, input, output;
    double cost;
};

/* Jobs in one batch: adds[seq] (two adds when the model has a '+'), then
 * fail_with.  ROLLBACK through the raw handle when fail_with is CH_EIO. */
static const struct add adds[] = {
    {"m1", 1, 10, 5, 0.000105}, {"m1", 1, 7, 3, 0.1},     {"m2", 2, 1, 1, 0.3},
    {"m1+", 1, 3, 3, 0.7},      {"m1", 1, 100, 50, 0.05}, {"m3", 1, 4, 4, 1e-9},
};

static int add_one(struct ch_db *db, const struct add *a, const char *model)
{
    struct ch_usage u = {a->input, a->output, 0, 1, a->cost};

    return ch_usage_add(db, DAY_MS, "prov", model, a->requests, &u);
}

static int add_all(struct ch_db *db, const struct add *a)
{
    int rc;

    if (strchr(a->model, '+')) {
        if ((rc = add_one(db, a, "m1")) || (rc = add_one(db, a, "m2")))
            return rc;
        return add_one(db, a, "m1");
    }
    return add_one(db, a, a->model);
}

static int run_add(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;
    int rc = add_all(db, &adds[j->seq - 1]);

    if (rc == 0 && j->fail_with == CH_EIO)
        sqlite3_exec(ch_db_handle(db), "ROLLBACK", NULL, NULL, NULL);
    return rc ? rc : j->fail_with == CH_EIO ? 0 : j->fail_with;
}

static void submit_add(struct fixture *f, int seq, int fail_with, bool no_savepoint)
{
    struct tjob *j = job_new(f, run_add, seq);

    j->fail_with = fail_with;
    j->base.no_savepoint = no_savepoint;
    assert_int_equal(ch_store_write(f->store, &j->base), 0);
}

/* The row the first test finds on disk: its stored cost is the base. */
static void add_before(const char *path)
{
    struct ch_db *db = db_open_or_fail(path, false, true);

    assert_int_equal(add_one(db, &adds[4], "m1"), 0);
    ch_db_close(db);
}

/* The same additions, one upsert per call (no batch), on a second file. */
static void expect_rows(struct fixture *f, bool before, const bool *applied, size_t n)
{
    char path[600];
    struct ch_db *want, *got;
    sqlite3_stmt *a, *b;
    const char *sql = "SELECT day, provider, model, requests, input_tokens, output_tokens, cache_read_tokens,"
                      " cache_write_tokens, cost_usd FROM usage_daily ORDER BY model";
    int rows = 0, sa, sb;

    snprintf(path, sizeof(path), "%s.want", f->path);
    if (before)
        add_before(path);
    want = db_open_or_fail(path, false, true);
    for (size_t i = 0; i < n; i++)
        if (applied[i])
            assert_int_equal(add_all(want, &adds[i]), 0);
    got = db_open_or_fail(f->path, true, false);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(want), sql, -1, &a, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(got), sql, -1, &b, NULL), SQLITE_OK);
    while ((sa = sqlite3_step(a)) == SQLITE_ROW) {
        assert_int_equal(sqlite3_step(b), SQLITE_ROW);
        for (int c = 0; c < 3; c++)
            assert_string_equal(sqlite3_column_text(a, c), sqlite3_column_text(b, c));
        for (int c = 3; c < 8; c++)
            assert_int_equal(sqlite3_column_int64(a, c), sqlite3_column_int64(b, c));
        /* Bit for bit: the same double additions in the same order. */
        double ca = sqlite3_column_double(a, 8), cb = sqlite3_column_double(b, 8);
        assert_memory_equal(&ca, &cb, sizeof(ca));
        rows++;
    }
    assert_int_equal(sa, SQLITE_DONE);
    sb = sqlite3_step(b);
    assert_int_equal(sb, SQLITE_DONE);
    assert_true(rows > 0);
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    ch_db_close(got);
    ch_db_close(want);
}

static void test_batch_matches_one_upsert_per_call(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    const bool applied[] = {true, false, true, true, true, false};

    add_before(f->path);
    open_store(f, 16, 0);
    f->next_seq = 1;
    submit_blocker(f, -1);
    submit_add(f, 1, 0, false);
    submit_add(f, 2, CH_EINVAL, false); /* rolled back: its notes too */
    submit_add(f, 3, 0, false);
    submit_add(f, 4, 0, false);
    submit_add(f, 5, 0, true);
    submit_add(f, 6, CH_EINVAL, true); /* bare job failing: notes dropped */
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 7);
    assert_int_equal(f->done_ok, 5);
    assert_true(f->order_ok);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 2); /* the blocker alone, then the six */
    close_store(f);
    expect_rows(f, true, applied, CH_ARRAY_SIZE(applied));
}

static void test_lost_transaction_drops_its_notes(void **state)
{
    struct fixture *f = *state;
    const bool applied[] = {false, false, true};

    open_store(f, 16, 0);
    submit_blocker(f, -1);
    f->next_seq = 1;
    submit_add(f, 1, 0, false);      /* ran before the loss: fails */
    submit_add(f, 2, CH_EIO, false); /* ends the transaction */
    submit_add(f, 3, 0, false);      /* a fresh transaction */
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 4);
    assert_int_equal(f->done_ok, 2); /* the blocker and job 3 */
    assert_true(f->order_ok);
    close_store(f);
    expect_rows(f, false, applied, CH_ARRAY_SIZE(applied));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_matches_one_upsert_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_transaction_drops_its_notes, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
