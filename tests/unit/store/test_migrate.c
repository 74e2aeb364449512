/*
 * test_migrate.c: schema step 5 (store/migrate.c), which rebuilds runs,
 * messages and deliveries without `IN (...)` and json_valid CHECKs: a
 * version-4 file with rows migrates with every row, rowid and index
 * kept, the remaining constraints still refuse bad rows, no insert or
 * status change needs an ephemeral table, and the store's own JSON check
 * (json_check.c) stands in for the dropped json_valid.  Step 6 makes
 * runs_status partial (no ok runs): the rows stay, and the queries that
 * need the index still use it.  Step 8 moves stored session keys to
 * their canonical form.
 */
#include "store_test.h"

#include "store/internal.h"

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

static int64_t query_int(struct ch_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static bool exec_ok(struct ch_db *db, const char *sql)
{
    return sqlite3_exec(ch_db_handle(db), sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Count OpenEphemeral in the program SQLite compiles for `sql`. */
static int ephemeral_ops(struct ch_db *db, const char *sql)
{
    char explain[1024];
    sqlite3_stmt *st;
    int n = 0;

    snprintf(explain, sizeof(explain), "EXPLAIN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), explain, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        if (strcmp((const char *)sqlite3_column_text(st, 1), "OpenEphemeral") == 0)
            n++;
    sqlite3_finalize(st);
    return n;
}

static const char v4_rows[] =
    "INSERT INTO sessions(key, session_id, created_ms, updated_ms) VALUES ('agent:main:s:a', 'sid-a', 1, 2);"
    "INSERT INTO messages(id, session_key, session_id, seq, role, content, created_ms, run_id)"
    " VALUES (7, 'agent:main:s:a', 'sid-a', 1, 'user', '[{\"type\":\"text\",\"text\":\"hi\"}]', 10, 'r1'),"
    "        (9, 'agent:main:s:a', 'sid-a', 2, 'assistant', '\"ok\"', 11, 'r1');"
    "INSERT INTO runs(run_id, session_key, source, status, request, result, created_ms, idempotency_key,"
    " input_tokens, cost_usd, delivery)"
    " VALUES ('r1', 'agent:main:s:a', 'hook', 'ok', '{\"message\":\"hi\"}', '{\"text\":\"ok\"}', 5, 'idem-1', 3, 0.5,"
    "         '{\"channel\":\"x\"}'),"
    "        ('r2', 'agent:main:s:a', 'rest', 'queued', '{}', NULL, 6, NULL, 0, 0, NULL);"
    "INSERT INTO deliveries(id, kind, run_id, url, body, content_type, status, max_attempts, backoff_ms,"
    " next_attempt_ms, created_ms, updated_ms, dedupe_key)"
    " VALUES ('d1', 'callback', 'r1', 'http://x/', x'00ff', 'application/json', 'pending', 3, 10, 20, 1, 1,"
    "         'run:r1');";

static void test_v4_file_migrates(void **state)
{
    struct tmpdir *t = *state;
    struct ch_error e = {0};
    struct ch_db *db;
    char path[512];

    tmpdir_file(t, "v4.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_migrate_to(db, 4, &e), 0);
    assert_int_equal(ch_db_schema_version(db), 4);
    db_exec_or_fail(db, v4_rows);
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_true(ch_db_latest_version() >= 5);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    /* Every row, with its rowid and values. */
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM messages"), 2);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM deliveries"), 1);
    assert_int_equal(query_int(db, "SELECT id FROM messages WHERE seq = 2"), 9);
    assert_int_equal(query_int(db, "SELECT input_tokens FROM runs WHERE run_id = 'r1' AND status = 'ok'"
                                   " AND request = '{\"message\":\"hi\"}' AND result = '{\"text\":\"ok\"}'"
                                   " AND cost_usd = 0.5 AND delivery = '{\"channel\":\"x\"}'"),
                     3);
    assert_int_equal(query_int(db, "SELECT length(body) FROM deliveries WHERE id = 'd1' AND dedupe_key = 'run:r1'"), 2);
    /* Every index again, used by the queries that need them. */
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN"
                                   " ('runs_status', 'runs_session', 'runs_created', 'runs_idempotency',"
                                   "  'messages_session_key', 'deliveries_due', 'deliveries_created',"
                                   "  'deliveries_run', 'deliveries_dedupe')"),
                     9);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v5'"), 0);
    /* Constraints that remain: status and role lists, NOT NULL, UNIQUE,
     * foreign keys, json_valid on the small JSON columns. */
    assert_false(exec_ok(db, "UPDATE runs SET status = 'bogus' WHERE run_id = 'r2'"));
    assert_true(exec_ok(db, "UPDATE runs SET status = 'running' WHERE run_id = 'r2'"));
    assert_false(exec_ok(db, "INSERT INTO runs(run_id, session_key, source, request, created_ms, idempotency_key)"
                             " VALUES ('r3', 'agent:main:s:a', 'hook', '{}', 1, 'idem-1')"));
    assert_false(exec_ok(db, "UPDATE runs SET delivery = 'not json' WHERE run_id = 'r2'"));
    assert_false(exec_ok(db, "INSERT INTO messages(session_key, session_id, seq, role, content, created_ms)"
                             " VALUES ('agent:main:s:a', 'sid-a', 3, 'robot', '[]', 1)"));
    assert_false(exec_ok(db, "INSERT INTO messages(session_key, session_id, seq, role, content, created_ms)"
                             " VALUES ('agent:main:s:nobody', 'sid-b', 1, 'user', '[]', 1)"));
    assert_false(exec_ok(db, "INSERT INTO messages(session_key, session_id, seq, role, content, created_ms)"
                             " VALUES ('agent:main:s:a', 'sid-a', 2, 'user', '[]', 1)"));
    assert_false(exec_ok(db, "UPDATE deliveries SET status = 'lost'"));
    assert_false(exec_ok(db, "UPDATE deliveries SET kind = 'pigeon'"));
    /* The cascade from sessions still reaches messages. */
    assert_true(exec_ok(db, "DELETE FROM sessions WHERE key = 'agent:main:s:a'"));
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM messages"), 0);
    /* The point of the step: no ephemeral index on the hot writes. */
    assert_int_equal(ephemeral_ops(db, "INSERT INTO runs(run_id, session_key, source, status, request, created_ms)"
                                       " VALUES ('a', 'b', 'c', 'queued', '{}', 1)"),
                     0);
    assert_int_equal(ephemeral_ops(db, "UPDATE runs SET status = 'ok', result = '{}' WHERE run_id = 'a'"), 0);
    assert_int_equal(ephemeral_ops(db, "INSERT INTO messages(session_key, session_id, seq, role, content,"
                                       " created_ms) VALUES ('a', 'b', 1, 'user', '[]', 1)"),
                     0);
    ch_db_close(db);
}

/* The plan SQLite picks for `sql` mentions `index` (EXPLAIN QUERY PLAN). */
static bool plan_uses(struct ch_db *db, const char *sql, const char *index)
{
    char explain[1024];
    sqlite3_stmt *st;
    bool found = false;

    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), explain, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(st, 3), index))
            found = true;
    sqlite3_finalize(st);
    return found;
}

static void test_v5_file_migrates_to_partial_runs_status(void **state)
{
    struct tmpdir *t = *state;
    struct ch_error e = {0};
    struct ch_db *db;
    struct ch_run_list l = {0};
    struct ch_run_query q = {.status = CH_RUN_OK};
    char path[512], sql[256];
    static const char *const statuses[] = {"ok", "ok", "error", "running", "queued", "ok", "timeout"};

    tmpdir_file(t, "v5.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_migrate_to(db, 5, &e), 0);
    for (size_t i = 0; i < CH_ARRAY_SIZE(statuses); i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO runs(run_id, session_key, source, status, request, created_ms)"
                 " VALUES ('r%zu', 's', 'api', '%s', '{}', %zu)",
                 i, statuses[i], 100 + i);
        db_exec_or_fail(db, sql);
    }
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_true(ch_db_latest_version() >= 6);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM runs"), 7);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs_status'"
                                   " AND sql LIKE '%WHERE status <> ''ok''%'"),
                     1);
    /* The index holds the four runs that are not ok, and serves these. */
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM runs INDEXED BY runs_status WHERE status <> 'ok'"), 4);
    assert_true(plan_uses(db,
                          "SELECT run_id FROM runs WHERE status IN ('queued', 'running') AND status <> 'ok'"
                          " ORDER BY created_ms, rowid",
                          "runs_status"));
    assert_true(
        plan_uses(db, "UPDATE runs SET status = 'queued' WHERE status = 'running' AND status <> 'ok'", "runs_status"));
    assert_true(plan_uses(db, "SELECT COUNT(*) FROM runs WHERE status = ?1 AND status <> 'ok'", "runs_status"));
    assert_true(plan_uses(db, "SELECT run_id FROM runs WHERE status = 'ok' ORDER BY created_ms DESC, rowid DESC",
                          "runs_created"));
    /* Through the store: ok counted as all minus the rest, unfinished. */
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 3);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].run_id, "r5");
    ch_run_list_release(&l);
    q.status = CH_RUN_ERROR;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 1);
    assert_string_equal(l.items[0].run_id, "r2");
    ch_run_list_release(&l);
    assert_int_equal(ch_runs_list_unfinished(db, 10, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].run_id, "r3");
    assert_string_equal(l.items[1].run_id, "r4");
    ch_run_list_release(&l);
    ch_db_close(db);
}

static const char *query_text(struct ch_db *db, const char *sql, char *buf, size_t cap)
{
    sqlite3_stmt *st;

    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    buf[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

/* Step 8: stored keys move to OpenClaw's canonical form with their
 * transcripts and runs; a key whose canonical form is taken, or that has
 * none, moves under legacy:; a queued run without a session row moves too. */
static void test_v7_keys_become_canonical(void **state)
{
    struct tmpdir *t = *state;
    struct ch_error e = {0};
    struct ch_db *db;
    char path[512], buf[600];
    static const char *const keys[] = {"main", "agent:main:main", "S1", "hook:Abc", "agent:main", "SIGNAL:GROUP:AbC"};

    tmpdir_file(t, "v7.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_migrate_to(db, 7, &e), 0);
    for (size_t i = 0; i < CH_ARRAY_SIZE(keys); i++) {
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO sessions(key, session_id, created_ms, updated_ms) VALUES ('%s', 'sid%zu', 1, 1);"
                 "INSERT INTO messages(session_key, session_id, seq, role, content, created_ms)"
                 " VALUES ('%s', 'sid%zu', 1, 'user', '\"m%zu\"', 1);"
                 "INSERT INTO runs(run_id, session_key, source, status, request, created_ms)"
                 " VALUES ('run%zu', '%s', 'rest', 'ok', '{}', 1);",
                 keys[i], i, keys[i], i, i, i, keys[i]);
        assert_true(exec_ok(db, sql));
    }
    assert_true(exec_ok(db, "INSERT INTO runs(run_id, session_key, source, status, request, created_ms)"
                            " VALUES ('queued', 'Later', 'hook', 'queued', '{}', 2)"));
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    /* moved, with the transcript and the run */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:s1' AND session_id = 'sid2'"),
                     1);
    assert_string_equal(
        query_text(db, "SELECT content FROM messages WHERE session_key = 'agent:main:s1'", buf, sizeof(buf)), "\"m2\"");
    assert_string_equal(query_text(db, "SELECT session_key FROM runs WHERE run_id = 'run2'", buf, sizeof(buf)),
                        "agent:main:s1");
    assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:hook:abc'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:signal:group:AbC'"), 1);
    /* taken: `main` moves beside agent:main:main as legacy:main, each
     * session with its own transcript and runs */
    assert_int_equal(
        query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:main' AND session_id = 'sid1'"), 1);
    assert_int_equal(
        query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:legacy:main' AND session_id = 'sid0'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM messages WHERE session_key = 'agent:main:legacy:main'"), 1);
    assert_string_equal(query_text(db, "SELECT session_key FROM runs WHERE run_id = 'run0'", buf, sizeof(buf)),
                        "agent:main:legacy:main");
    assert_string_equal(query_text(db, "SELECT session_key FROM runs WHERE run_id = 'run1'", buf, sizeof(buf)),
                        "agent:main:main");
    /* malformed: under legacy: too */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE key = 'agent:main:legacy:agent:main'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sessions WHERE key NOT LIKE 'agent:main:%'"), 0);
    /* a run with no session row */
    assert_string_equal(query_text(db, "SELECT session_key FROM runs WHERE run_id = 'queued'", buf, sizeof(buf)),
                        "agent:main:later");
    assert_int_equal(query_int(db, "SELECT count(*) FROM messages"), (int64_t)CH_ARRAY_SIZE(keys));
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    ch_db_close(db);
}

static void test_json_check(void **state)
{
    static const char *good[] = {
        "{}",
        "[]",
        " {\"a\": [1, -2.5e+3, 0, true, false, null, \"x\\u00e9\\n\"]} ",
        "\"s\"",
        "0",
        "-0.1E9",
        "[[[[]]]]",
        "{\"a\":{\"b\":{}},\"c\":[{}]}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        /* Long strings: the scan goes eight bytes at a time. */
        "\"abcdefghijklmnopqrstuvwxyz0123456789\"",
        "[\"abcdefghijk\\\"lmnop\\\\qrstuvwxyz\\u0041\"]",
        "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xe2\x82\xac\xe2\x82\xac caf\xc3\xa9 \xf0\x9f\x98\x80\xf0\x9f\x98\x80\"",
        "{\"aaaaaaaaaaaaaaaa\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
    };
    static const char *bad[] = {
        "",
        " ",
        "{not json",
        "not json",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{1:2}",
        "[1 2]",
        "01",
        "1.",
        "-",
        ".5",
        "1e",
        "tru",
        "nul",
        "\"abc",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"a\tb\"",
        "{} {}",
        "[}",
        "{]",
        "'a'",
        "\"abcdefghijklmnopqrs\ntuvwxyz\"",
        "\"abcdefghijklmnopqrstuvwxyz\\q0123456789\"",
        "\"abcdefghijklmnopqrstuvwxyz0123456789",
        "\"abcdefghijklmnop\x1f\"",
        "\"abcdefghijklmnopqrstuvw\\\"",
    };
    char deep[4100];
    size_t i;

    (void)state;
    for (i = 0; i < CH_ARRAY_SIZE(good); i++)
        if (!ch_store_json_valid(good[i], strlen(good[i])))
            fail_msg("rejected %s", good[i]);
    for (i = 0; i < CH_ARRAY_SIZE(bad); i++)
        if (ch_store_json_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted %s", bad[i]);
    /* A NUL inside a counted string is not JSON; nor is a NULL pointer. */
    assert_false(ch_store_json_valid("\"a\0b\"", 5));
    assert_false(ch_store_json_valid(NULL, 0));
    /* Nesting: 2000 levels pass, 2001 do not. */
    memset(deep, '[', 2000);
    memset(deep + 2000, ']', 2000);
    assert_true(ch_store_json_valid(deep, 4000));
    memset(deep, '[', 2001);
    memset(deep + 2001, ']', 2001);
    assert_false(ch_store_json_valid(deep, 4002));
}

/* Reference for a JSON string literal, a byte at a time. */
static bool ref_string(const char *s, size_t n)
{
    size_t i = 1;

    if (n < 2 || s[0] != '"')
        return false;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i == n - 1;
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (++i >= n)
            return false;
        if (s[i] == 'u') {
            for (int k = 1; k <= 4; k++)
                if (i + k >= n || !strchr("0123456789abcdefABCDEF", s[i + k]) || !s[i + k])
                    return false;
            i += 4;
        } else if (!s[i] || !strchr("\"\\/bfnrt", s[i])) {
            return false;
        }
    }
    return false;
}

/* The string scanner (16 bytes at a time where it can, then 8, then one)
 * against the reference on random strings of every length up to 80 built
 * from the bytes that matter: quote, backslash, escape letters, controls,
 * DEL, high bytes, NUL. */
static void test_json_check_strings_random(void **state)
{
    static const char alphabet[] = "a \"\\nu0F\x01\x1f\x7f\x80\xff/t";
    char buf[96];
    unsigned seed = 12345;
    int valid = 0;

    (void)state;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = (size_t)(iter % 81), n = len + 2;
        buf[0] = '"';
        for (size_t i = 1; i <= len; i++) {
            seed = seed * 1103515245u + 12345u;
            /* Mostly plain letters, so the wide paths get long runs. */
            buf[i] = (seed >> 16) % 4 ? 'a' : alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
        }
        buf[len + 1] = '"';
        if (ch_store_json_valid(buf, n) != ref_string(buf, n))
            fail_msg("disagree on %zu bytes (iteration %d)", n, iter);
        valid += ref_string(buf, n);
    }
    assert_true(valid > 1000 && valid < 199000); /* both answers were exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v4_file_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v5_file_migrates_to_partial_runs_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v7_keys_become_canonical, setup, teardown),
        cmocka_unit_test(test_json_check),
        cmocka_unit_test(test_json_check_strings_random),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
