/*
 * test_audit.c: batched audit inserts (all or nothing, bounded fields, no
 * query strings) and pruning by age (store/audit.c).
 */
#include "store_test.h"

struct fixture {
    struct tmpdir dir;
    struct ch_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[512];

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "audit.db", path, sizeof(path));
    f->db = db_open_or_fail(path, false, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    ch_db_close(f->db);
    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

static void fill(struct ch_audit_rec *r, int64_t ts, int i)
{
    memset(r, 0, sizeof(*r));
    r->ts_ms = ts;
    snprintf(r->request_id, sizeof(r->request_id), "req-%d", i);
    snprintf(r->token_name, sizeof(r->token_name), "tok");
    snprintf(r->address, sizeof(r->address), "127.0.0.1");
    snprintf(r->method, sizeof(r->method), "POST");
    snprintf(r->path, sizeof(r->path), "/v1/chat/%d", i);
    r->status = 200;
    r->latency_us = 1000 + i;
}

static void test_insert_batch(void **state)
{
    struct fixture *f = *state;
    struct ch_audit_rec recs[300];
    sqlite3_stmt *st;
    int i;

    for (i = 0; i < 300; i++)
        fill(&recs[i], 1000 + i, i);
    assert_int_equal(ch_audit_insert(f->db, recs, 300), 0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 300);
    assert_int_equal(db_query_int(f->db, "SELECT MAX(latency_us) FROM audit"), 1299);
    /* 16 rows a step, then one a step: every row in order, each its own. */
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit WHERE id = ts_ms - 999"
                                         " AND latency_us = ts_ms AND path = '/v1/chat/' || (ts_ms - 1000)"),
                     300);

    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(f->db),
                                        "SELECT request_id, token_name, address, method, path,"
                                        " status FROM audit WHERE ts_ms = 1007",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "req-7");
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "tok");
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "127.0.0.1");
    assert_string_equal((const char *)sqlite3_column_text(st, 3), "POST");
    assert_string_equal((const char *)sqlite3_column_text(st, 4), "/v1/chat/7");
    assert_int_equal(sqlite3_column_int(st, 5), 200);
    sqlite3_finalize(st);

    assert_int_equal(ch_audit_insert(f->db, NULL, 0), 0);
    assert_int_equal(ch_audit_insert(f->db, NULL, 3), CH_EINVAL);
}

static void test_fields_bounded(void **state)
{
    struct fixture *f = *state;
    struct ch_audit_rec r;

    /* No NUL anywhere: every field is read only up to its size. */
    memset(&r, 'x', sizeof(r));
    r.ts_ms = 5;
    r.status = 404;
    r.latency_us = 1;
    assert_int_equal(ch_audit_insert(f->db, &r, 1), 0);
    assert_int_equal(db_query_int(f->db, "SELECT length(request_id) FROM audit"), sizeof(r.request_id));
    assert_int_equal(db_query_int(f->db, "SELECT length(method) FROM audit"), sizeof(r.method));
    assert_int_equal(db_query_int(f->db, "SELECT length(path) FROM audit"), sizeof(r.path));

    /* A query string never reaches the table. */
    fill(&r, 6, 1);
    snprintf(r.path, sizeof(r.path), "/hooks/x?token=oc_tok_secret");
    assert_int_equal(ch_audit_insert(f->db, &r, 1), 0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit WHERE path = '/hooks/x'"), 1);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit WHERE path LIKE '%secret%'"), 0);
}

static void test_insert_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct ch_audit_rec recs[10];
    int i;

    /* A trigger makes the 6th row fail: none of the batch may remain. */
    db_exec_or_fail(f->db, "CREATE TRIGGER no_teapot BEFORE INSERT ON audit WHEN NEW.status = 418"
                           " BEGIN SELECT RAISE(ABORT, 'teapot'); END");
    for (i = 0; i < 10; i++)
        fill(&recs[i], 100 + i, i);
    recs[5].status = 418;
    assert_int_not_equal(ch_audit_insert(f->db, recs, 10), 0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 0);
    recs[5].status = 200;
    assert_int_equal(ch_audit_insert(f->db, recs, 10), 0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 10);
    /* The same when the failing row is inside a 16-row step. */
    {
        struct ch_audit_rec many[40];

        for (i = 0; i < 40; i++)
            fill(&many[i], 200 + i, i);
        many[20].status = 418;
        assert_int_not_equal(ch_audit_insert(f->db, many, 40), 0);
        assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 10);
        many[20].status = 200;
        snprintf(many[17].path, sizeof(many[17].path), "/hooks/x?token=oc_tok_secret");
        assert_int_equal(ch_audit_insert(f->db, many, 40), 0);
        assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 50);
        assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit WHERE path = '/hooks/x' AND ts_ms = 217"), 1);
    }
}

static void test_prune(void **state)
{
    struct fixture *f = *state;
    struct ch_audit_rec recs[100];
    int64_t removed = -1;
    int i;

    for (i = 0; i < 100; i++)
        fill(&recs[i], 1000 + i * 10, i); /* 1000 .. 1990 */
    assert_int_equal(ch_audit_insert(f->db, recs, 100), 0);
    /* In batches, oldest first: 20, then 20, then the last 10 below 1500. */
    assert_int_equal(ch_audit_prune(f->db, 1500, 20, &removed), 0);
    assert_int_equal(removed, 20);
    assert_int_equal(db_query_int(f->db, "SELECT MIN(ts_ms) FROM audit"), 1200);
    assert_int_equal(ch_audit_prune(f->db, 1500, 20, &removed), 0);
    assert_int_equal(removed, 20);
    assert_int_equal(ch_audit_prune(f->db, 1500, 20, &removed), 0);
    assert_int_equal(removed, 10);
    assert_int_equal(db_query_int(f->db, "SELECT MIN(ts_ms) FROM audit"), 1500);
    assert_int_equal(ch_audit_prune(f->db, 1500, 0, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(ch_audit_prune(f->db, INT64_MAX, 0, NULL), 0); /* 0: no limit */
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 0);
    assert_int_equal(ch_audit_prune(NULL, 0, 0, &removed), CH_EINVAL);
    assert_int_equal(ch_audit_prune(f->db, 0, -1, &removed), CH_EINVAL);
}

static void test_insert_while_caller_iterates(void **state)
{
    struct fixture *f = *state;
    struct ch_audit_rec r;
    sqlite3_stmt *st;
    int rows = 0;

    /* A caller stepping its own SELECT may insert audit rows per row: the
     * store must not reset the caller's statement under it. */
    db_exec_or_fail(f->db, "CREATE TABLE src(x); INSERT INTO src VALUES (1), (2), (3), (4), (5)");
    assert_int_equal(ch_db_begin(f->db), 0);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(f->db), "SELECT x FROM src ORDER BY x", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        fill(&r, sqlite3_column_int(st, 0), rows++);
        assert_int_equal(ch_audit_insert(f->db, &r, 1), 0);
        assert_true(rows <= 5);
    }
    sqlite3_finalize(st);
    assert_int_equal(ch_db_commit(f->db), 0);
    assert_int_equal(rows, 5);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM audit"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_while_caller_iterates, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
