/*
 * test_db.c: opening, pragmas, migrations, version refusal, open errors,
 * transactions, data_version across connections, read-only connections and
 * the meta table (store/db.c, store/migrate.c, store/meta.c).
 */
#include <sys/stat.h>

#include "store_test.h"

static int setup(void **state)
{
    struct tmpdir *t = malloc(sizeof(*t));

    tmpdir_make(t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmpdir *t = *state;

    tmpdir_remove(t);
    free(t);
    return 0;
}

static bool has_object(struct ch_db *db, const char *type, const char *name)
{
    sqlite3_stmt *st;
    bool found;

    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), "SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

static void test_migrate_fresh(void **state)
{
    struct tmpdir *t = *state;
    char path[512], *v = NULL;
    struct ch_db *db;
    sqlite3_stmt *st;

    tmpdir_file(t, "state.db", path, sizeof(path));
    db = db_open_or_fail(path, false, true);
    assert_true(ch_db_latest_version() >= 1);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());

    assert_true(has_object(db, "table", "meta"));
    assert_true(has_object(db, "table", "tokens"));
    assert_true(has_object(db, "table", "audit"));
    assert_true(has_object(db, "index", "tokens_live_name"));
    assert_true(has_object(db, "index", "audit_ts"));

    /* Pragmas as promised: WAL, NORMAL, foreign keys. */
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(db_query_int(db, "PRAGMA synchronous"), 1);
    assert_int_equal(db_query_int(db, "PRAGMA foreign_keys"), 1);
    assert_true(db_query_int(db, "PRAGMA busy_timeout") == 5000);

    /* Bookkeeping rows. */
    assert_int_equal(ch_meta_get(db, "created_version", &v), 0);
    assert_string_equal(v, CH_VERSION);
    ch_free(v);
    assert_int_equal(ch_meta_get(db, "created_ms", &v), 0);
    assert_non_null(v);
    assert_true(atoll(v) > 0);
    ch_free(v);
    ch_db_close(db);
}

static void test_sync_full_and_timeout(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db_opts o = {.sync_full = true, .busy_timeout_ms = 1234, .migrate = true};
    struct ch_error e = {0};
    struct ch_db *db = NULL;
    char path[512];

    tmpdir_file(t, "full.db", path, sizeof(path));
    o.path = path;
    assert_int_equal(ch_db_open(&o, &db, &e), 0);
    assert_int_equal(db_query_int(db, "PRAGMA synchronous"), 2);
    assert_int_equal(db_query_int(db, "PRAGMA busy_timeout"), 1234);
    ch_db_close(db);
}

/* A connection's commits never checkpoint (the WAL-reset bug, store/db.c):
 * 1,200 pages committed leave the database file at its schema's size and
 * the log holding them, until the last connection closes. */
static void test_commits_never_checkpoint(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db *db;
    struct stat db_st, wal_st;
    char path[512], wal[520];

    tmpdir_file(t, "nockpt.db", path, sizeof(path));
    snprintf(wal, sizeof(wal), "%s-wal", path);
    db = db_open_or_fail(path, false, true);
    assert_int_equal(db_query_int(db, "PRAGMA wal_autocheckpoint"), 0);
    assert_int_equal(sqlite3_exec(ch_db_handle(db), "CREATE TABLE big(b BLOB)", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 12; i++) /* 12 commits of 100 pages, past SQLite's 1,000-frame default */
        assert_int_equal(sqlite3_exec(ch_db_handle(db),
                                      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
                                      "INSERT INTO big SELECT zeroblob(3900) FROM n",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_equal(stat(path, &db_st), 0);
    assert_int_equal(stat(wal, &wal_st), 0);
    assert_true(db_st.st_size < 200 * 4096);   /* nothing copied back */
    assert_true(wal_st.st_size > 1200 * 4096); /* every page still in the log */
    ch_db_close(db);
    assert_int_equal(stat(path, &db_st), 0);
    assert_true(db_st.st_size > 1200 * 4096); /* the last close checkpointed */
    assert_int_not_equal(stat(wal, &wal_st), 0);
}

static void test_reopen_is_noop(void **state)
{
    struct tmpdir *t = *state;
    char path[512], *created1 = NULL, *created2 = NULL, *mark = NULL;
    struct ch_db *db;

    tmpdir_file(t, "state.db", path, sizeof(path));
    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_meta_get(db, "created_ms", &created1), 0);
    assert_int_equal(ch_meta_set(db, "marker", "kept"), 0);
    db_exec_or_fail(db, "INSERT INTO audit(ts_ms, method, path, status)"
                        " VALUES (1, 'GET', '/', 200)");
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    assert_int_equal(ch_meta_get(db, "created_ms", &created2), 0);
    assert_string_equal(created1, created2);
    assert_int_equal(ch_meta_get(db, "marker", &mark), 0);
    assert_string_equal(mark, "kept");
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM audit"), 1);
    ch_db_close(db);
    ch_free(created1);
    ch_free(created2);
    ch_free(mark);
}

static void test_newer_schema_refused(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db_opts o = {.migrate = true};
    struct ch_error e = {0};
    struct ch_db *db;
    char path[512], sql[64], expect[200];
    int newer = ch_db_latest_version() + 1;

    tmpdir_file(t, "state.db", path, sizeof(path));
    db = db_open_or_fail(path, false, true);
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", newer);
    db_exec_or_fail(db, sql);
    ch_db_close(db);

    snprintf(expect, sizeof(expect),
             "database schema version %d is newer than this chela (knows up to %d); "
             "upgrade chela or use another --state directory",
             newer, ch_db_latest_version());
    o.path = path;
    db = (struct ch_db *)1;
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EVERSION);
    assert_null(db);
    assert_int_equal(e.code, CH_EVERSION);
    assert_string_equal(e.msg, expect);

    /* Refused without migrating too, and read-only. */
    o.migrate = false;
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EVERSION);
    o.readonly = true;
    memset(&e, 0, sizeof(e));
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EVERSION);
    assert_string_equal(e.msg, expect);
    assert_null(db);
}

static void test_older_schema_migrates(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db *db;
    char path[512];

    /* A file some other tool created (version 0, unrelated table). */
    tmpdir_file(t, "old.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_schema_version(db), 0);
    db_exec_or_fail(db, "CREATE TABLE other(x)");
    ch_db_close(db);
    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    assert_true(has_object(db, "table", "other"));
    ch_db_close(db);
}

static void test_migration_failure_rolls_back(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db_opts o = {.migrate = true};
    struct ch_error e = {0};
    struct ch_db *db;
    char path[512];

    /* A table in the way makes step 1 fail: nothing of it may remain. */
    tmpdir_file(t, "clash.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    db_exec_or_fail(db, "CREATE TABLE audit(x)");
    ch_db_close(db);
    o.path = path;
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EIO);
    assert_null(db);
    assert_non_null(strstr(e.msg, "migration 1"));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_schema_version(db), 0);
    assert_false(has_object(db, "table", "meta"));
    assert_false(has_object(db, "table", "tokens"));
    ch_db_close(db);
}

static void test_open_errors(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db_opts o = {0};
    struct ch_error e = {0};
    struct ch_db *db = NULL;
    char path[512];
    FILE *f;

    /* A directory that does not exist. */
    tmpdir_file(t, "no/such/dir/state.db", path, sizeof(path));
    o.path = path;
    o.migrate = true;
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EIO);
    assert_null(db);
    assert_int_equal(e.code, CH_EIO);
    assert_non_null(strstr(e.msg, "no/such/dir"));
    assert_non_null(strstr(e.msg, "unable to open"));

    /* A read-only open of a missing file. */
    tmpdir_file(t, "missing.db", path, sizeof(path));
    o = (struct ch_db_opts){.path = path, .readonly = true};
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EIO);
    assert_non_null(strstr(e.msg, "missing.db"));

    /* A file that is not a database. */
    tmpdir_file(t, "garbage.db", path, sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not sqlite ", f);
    fclose(f);
    o = (struct ch_db_opts){.path = path, .migrate = true};
    memset(&e, 0, sizeof(e));
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EIO);
    assert_non_null(strstr(e.msg, "garbage.db"));

    /* A directory in place of the file. */
    tmpdir_file(t, "adir", path, sizeof(path));
    assert_int_equal(mkdir(path, 0700), 0);
    o = (struct ch_db_opts){.path = path, .migrate = true};
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EIO);
    assert_non_null(strstr(e.msg, "adir"));

    /* Bad arguments. */
    assert_int_equal(ch_db_open(NULL, &db, &e), CH_EINVAL);
    o = (struct ch_db_opts){.path = ""};
    assert_int_equal(ch_db_open(&o, &db, &e), CH_EINVAL);
    tmpdir_file(t, "x.db", path, sizeof(path));
    o = (struct ch_db_opts){.path = path, .readonly = true, .migrate = true};
    assert_int_equal(ch_db_open(&o, &db, NULL), CH_EINVAL);
    assert_null(db);
}

static void test_memory_db(void **state)
{
    struct ch_db *db = db_open_or_fail(":memory:", false, true);

    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    assert_int_equal(ch_meta_set(db, "k", "v"), 0);
    ch_db_close(db);
    ch_db_close(NULL); /* NULL-safe */
}

static void test_transactions(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db *db;
    char path[512], *v = NULL;

    tmpdir_file(t, "tx.db", path, sizeof(path));
    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_begin(db), 0);
    assert_int_equal(ch_meta_set(db, "a", "1"), 0);
    assert_int_equal(ch_db_rollback(db), 0);
    assert_int_equal(ch_meta_get(db, "a", &v), 0);
    assert_null(v);

    assert_int_equal(ch_db_begin(db), 0);
    assert_int_equal(ch_db_begin(db), CH_ESTATE); /* no nesting */
    assert_int_equal(ch_meta_set(db, "a", "2"), 0);
    assert_int_equal(ch_db_commit(db), 0);
    assert_int_equal(ch_meta_get(db, "a", &v), 0);
    assert_string_equal(v, "2");
    ch_free(v);
    assert_int_equal(ch_db_commit(db), CH_ESTATE); /* nothing open */
    assert_int_equal(ch_db_rollback(db), CH_ESTATE);
    ch_db_close(db);
}

static void test_data_version_two_connections(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db *a, *b;
    int64_t v1, v2, v3;
    char path[512];

    tmpdir_file(t, "dv.db", path, sizeof(path));
    a = db_open_or_fail(path, false, true);
    b = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_data_version(a, &v1), 0);
    /* a's own commit does not move a's data_version... */
    assert_int_equal(ch_meta_set(a, "x", "1"), 0);
    assert_int_equal(ch_db_data_version(a, &v2), 0);
    assert_true(v2 == v1);
    /* ...another connection's commit does. */
    assert_int_equal(ch_meta_set(b, "x", "2"), 0);
    assert_int_equal(ch_db_data_version(a, &v3), 0);
    assert_true(v3 != v2);
    ch_db_close(b);
    ch_db_close(a);
}

static void test_readonly(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db *rw, *ro;
    char path[512], *v = NULL;
    sqlite3_stmt *st;

    tmpdir_file(t, "ro.db", path, sizeof(path));
    rw = db_open_or_fail(path, false, true);
    assert_int_equal(ch_meta_set(rw, "k", "v1"), 0);
    ro = db_open_or_fail(path, true, false);
    assert_int_equal(ch_meta_get(ro, "k", &v), 0);
    assert_string_equal(v, "v1");
    ch_free(v);
    assert_int_equal(ch_meta_set(ro, "k", "v2"), CH_EPERM);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(ro), "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* A read transaction on a reader works (deferred BEGIN). */
    assert_int_equal(ch_db_begin(ro), 0);
    assert_int_equal(ch_db_commit(ro), 0);
    /* The reader sees the writer's later commit. */
    assert_int_equal(ch_meta_set(rw, "k", "v3"), 0);
    assert_int_equal(ch_meta_get(ro, "k", &v), 0);
    assert_string_equal(v, "v3");
    ch_free(v);
    ch_db_close(ro);
    ch_db_close(rw);
}

static void test_meta(void **state)
{
    struct tmpdir *t = *state;
    char path[512], key[200], *v = (char *)1, *big;
    struct ch_db *db;

    tmpdir_file(t, "meta.db", path, sizeof(path));
    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_meta_get(db, "absent", &v), 0);
    assert_null(v);
    assert_int_equal(ch_meta_set(db, "k", "one"), 0);
    assert_int_equal(ch_meta_set(db, "k", "two"), 0);
    assert_int_equal(ch_meta_get(db, "k", &v), 0);
    assert_string_equal(v, "two");
    ch_free(v);
    assert_int_equal(ch_meta_set(db, "empty", ""), 0);
    assert_int_equal(ch_meta_get(db, "empty", &v), 0);
    assert_string_equal(v, "");
    ch_free(v);

    /* Limits and bad input. */
    assert_int_equal(ch_meta_set(db, "", "x"), CH_EINVAL);
    assert_int_equal(ch_meta_set(db, "k", NULL), CH_EINVAL);
    assert_int_equal(ch_meta_get(db, NULL, &v), CH_EINVAL);
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(ch_meta_set(db, key, "x"), CH_EINVAL);
    key[128] = '\0';
    assert_int_equal(ch_meta_set(db, key, "x"), 0);
    big = ch_malloc(64 * 1024 + 2);
    memset(big, 'v', 64 * 1024 + 1);
    big[64 * 1024 + 1] = '\0';
    assert_int_equal(ch_meta_set(db, "big", big), CH_E_TOO_LARGE);
    big[64 * 1024] = '\0';
    assert_int_equal(ch_meta_set(db, "big", big), 0);
    ch_free(big);
    ch_db_close(db);
}

static void test_alloc_failure_open(void **state)
{
    struct tmpdir *t = *state;
    struct ch_db_opts o = {.migrate = true};
    struct ch_error e;
    struct ch_db *db = NULL;
    size_t before;
    char path[512];
    long n;
    int rc;

    /* Fail allocation 1, 2, ... until the open succeeds: every failure
     * must be a clean error that leaves nothing allocated. */
    tmpdir_file(t, "oom.db", path, sizeof(path));
    o.path = path;
    db = db_open_or_fail(path, false, true); /* warm SQLite's global state */
    ch_db_close(db);
    for (n = 1; n < 5000; n++) {
        before = ch_alloc_live_blocks();
        ch_alloc_fail_after(n);
        rc = ch_db_open(&o, &db, &e);
        ch_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_null(db);
        assert_true(rc == CH_ENOMEM || rc == CH_EIO);
        assert_int_equal(ch_alloc_live_blocks(), before);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_full_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commits_never_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_schema_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_version_two_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_open, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
