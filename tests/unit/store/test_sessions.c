/*
 * test_sessions.c: schema migration 2 (fresh and on top of a version-1
 * file) and the sessions table: ensure, get, list, patch, reset, delete,
 * add usage, and their input checks (store/sessions.c, store/migrate.c).
 */
#include <math.h>

#include "store_test.h"

struct fixture {
    struct tmpdir dir;
    char path[512];
    struct ch_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "sessions.db", f->path, sizeof(f->path));
    f->db = db_open_or_fail(f->path, false, true);
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

static void append_text(struct ch_db *db, const char *key, const char *sid, const char *text)
{
    struct ch_message_rec m = {0};
    char content[256];

    snprintf(content, sizeof(content), "[{\"type\":\"text\",\"text\":\"%s\"}]", text);
    m.session_key = (char *)key;
    m.session_id = (char *)sid;
    snprintf(m.role, sizeof(m.role), "user");
    m.content = content;
    m.created_ms = 1;
    assert_int_equal(ch_messages_append(db, &m, NULL), 0);
}

/* ---- migration ------------------------------------------------------ */

static void test_migration_fresh(void **state)
{
    struct fixture *f = *state;
    const char *objs[][2] = {
        {"table", "sessions"},         {"table", "messages"},         {"table", "runs"},
        {"table", "usage_daily"},      {"index", "sessions_updated"}, {"index", "messages_session_key"},
        {"index", "runs_status"},      {"index", "runs_session"},     {"index", "runs_created"},
        {"index", "runs_idempotency"},
    };
    char *v = NULL;
    size_t i;

    /* Later migrations build on version 2: a fresh db reaches the latest. */
    assert_true(ch_db_latest_version() >= 2);
    assert_int_equal(ch_db_schema_version(f->db), ch_db_latest_version());
    for (i = 0; i < CH_ARRAY_SIZE(objs); i++)
        if (!has_object(f->db, objs[i][0], objs[i][1]))
            fail_msg("missing %s %s", objs[i][0], objs[i][1]);
    assert_int_equal(ch_meta_get(f->db, "schema_version", &v), 0);
    assert_int_equal(atoi(v), ch_db_latest_version());
    ch_free(v);
}

/* The version-1 schema exactly as the first release shipped it (migration
 * steps are never edited, so this is what old files contain). */
static const char v1_sql[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,"
    " scopes INTEGER NOT NULL, rate_limit INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL DEFAULT 0,"
    " expires_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL DEFAULT 'cli');"
    "CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_ms = 0;"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,"
    " request_id TEXT NOT NULL DEFAULT '', token_name TEXT NOT NULL DEFAULT '',"
    " address TEXT NOT NULL DEFAULT '', method TEXT NOT NULL DEFAULT '',"
    " path TEXT NOT NULL DEFAULT '', status INTEGER NOT NULL DEFAULT 0,"
    " latency_us INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX audit_ts ON audit(ts_ms);"
    "INSERT INTO meta(key, value) VALUES ('created_ms', '123'), ('schema_version', '1');"
    "INSERT INTO tokens(name, hash, scopes, created_ms) VALUES ('old', 'abc', 1, 5);"
    "PRAGMA user_version = 1;";

static void test_migration_from_v1(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db;
    char path[512], *v = NULL;
    bool created = false;

    tmpdir_file(&f->dir, "v1.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    db_exec_or_fail(db, v1_sql);
    assert_int_equal(ch_db_schema_version(db), 1);
    assert_false(has_object(db, "table", "sessions"));
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    assert_true(has_object(db, "table", "sessions"));
    assert_true(has_object(db, "table", "usage_daily"));
    /* Version-1 data survives; created_ms is written only once. */
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM tokens WHERE name = 'old'"), 1);
    assert_int_equal(ch_meta_get(db, "created_ms", &v), 0);
    assert_string_equal(v, "123");
    ch_free(v);
    assert_int_equal(ch_meta_get(db, "schema_version", &v), 0);
    assert_int_equal(atoi(v), ch_db_latest_version());
    ch_free(v);
    /* And the new tables work. */
    assert_int_equal(ch_sessions_ensure(db, "agent:main:main", NULL, 10, NULL, &created), 0);
    assert_true(created);
    ch_db_close(db);

    /* A read-only opener of the migrated file is happy too. */
    db = db_open_or_fail(path, true, false);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    ch_db_close(db);
}

/* ---- sessions -------------------------------------------------------- */

/* Every field two session records hold, compared. */
static void assert_same_session(const struct ch_session_rec *x, const struct ch_session_rec *y)
{
#define SAME_STR(f) assert_true((x->f == NULL) == (y->f == NULL) && (!x->f || !strcmp(x->f, y->f)))
    SAME_STR(key);
    SAME_STR(session_id);
    SAME_STR(agent_id);
    SAME_STR(label);
    SAME_STR(display_name);
    SAME_STR(channel);
    SAME_STR(model_override);
    SAME_STR(thinking_level);
    SAME_STR(last_run_id);
    SAME_STR(origin);
    SAME_STR(extra);
#undef SAME_STR
    assert_int_equal(x->created_ms, y->created_ms);
    assert_int_equal(x->updated_ms, y->updated_ms);
    assert_memory_equal(&x->usage, &y->usage, sizeof(x->usage));
    assert_int_equal(x->total_tokens, y->total_tokens);
    assert_int_equal(x->context_tokens, y->context_tokens);
    assert_int_equal(x->compaction_count, y->compaction_count);
}

/* Inside a transaction (as in the writer's batch) a new session's record
 * is built without reading the row back: it must equal the row. */
static void test_ensure_in_transaction_matches_row(void **state)
{
    struct fixture *f = *state;
    struct ch_session_rec a, b;
    bool created = false;

    assert_int_equal(ch_db_begin(f->db), 0);
    assert_int_equal(ch_sessions_ensure(f->db, "conv-1", NULL, 1234, &a, &created), 0);
    assert_true(created);
    assert_int_equal(ch_sessions_get(f->db, "conv-1", &b), 0);
    assert_same_session(&a, &b);
    ch_session_rec_release(&a);
    ch_session_rec_release(&b);
    assert_int_equal(ch_sessions_ensure(f->db, "conv-2", "ops", 99, &a, &created), 0);
    assert_true(created);
    assert_int_equal(ch_sessions_get(f->db, "conv-2", &b), 0);
    assert_same_session(&a, &b);
    ch_session_rec_release(&b);
    /* Existing: read back, unchanged. */
    assert_int_equal(ch_sessions_ensure(f->db, "conv-2", NULL, 5000, &b, &created), 0);
    assert_false(created);
    assert_same_session(&a, &b);
    ch_session_rec_release(&a);
    ch_session_rec_release(&b);
    assert_int_equal(ch_db_commit(f->db), 0);
    assert_int_equal(ch_sessions_get(f->db, "conv-1", &a), 0);
    assert_int_equal(a.created_ms, 1234);
    ch_session_rec_release(&a);
}

static void test_ensure_and_get(void **state)
{
    struct fixture *f = *state;
    struct ch_session_rec a, b;
    bool created = false;

    assert_int_equal(ch_sessions_get(f->db, "agent:main:main", &a), CH_ENOTFOUND);
    assert_null(a.key);

    assert_int_equal(ch_sessions_ensure(f->db, "agent:main:main", NULL, 1000, &a, &created), 0);
    assert_true(created);
    assert_string_equal(a.key, "agent:main:main");
    assert_string_equal(a.agent_id, "main");
    assert_int_equal(strlen(a.session_id), 36);
    assert_int_equal(a.session_id[14], '7'); /* a v7 (time-ordered) uuid */
    assert_int_equal(a.created_ms, 1000);
    assert_int_equal(a.updated_ms, 1000);
    assert_null(a.label);
    assert_null(a.model_override);
    assert_int_equal(a.total_tokens, 0);

    /* Second use: same row, nothing changes (not even agent or time). */
    assert_int_equal(ch_sessions_ensure(f->db, "agent:main:main", "other", 2000, &b, &created), 0);
    assert_false(created);
    assert_string_equal(b.session_id, a.session_id);
    assert_string_equal(b.agent_id, "main");
    assert_int_equal(b.updated_ms, 1000);
    ch_session_rec_release(&b);

    assert_int_equal(ch_sessions_get(f->db, "agent:main:main", &b), 0);
    assert_string_equal(b.session_id, a.session_id);
    ch_session_rec_release(&b);
    ch_session_rec_release(&a);
    ch_session_rec_release(&a); /* idempotent */

    /* Free-form keys and an explicit agent; out and created optional. */
    assert_int_equal(ch_sessions_ensure(f->db, "auto-trader:openclaw:5f0c", "ops", 5, NULL, NULL), 0);
    assert_int_equal(ch_sessions_get(f->db, "auto-trader:openclaw:5f0c", &a), 0);
    assert_string_equal(a.agent_id, "ops");
    ch_session_rec_release(&a);
    /* Distinct keys get distinct session ids. */
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(DISTINCT session_id) FROM sessions"), 2);
}

static void test_key_checks(void **state)
{
    struct fixture *f = *state;
    struct ch_session_rec s;
    char key[CH_STORE_MAX_KEY_BYTES + 2];

    assert_int_equal(ch_sessions_ensure(f->db, NULL, NULL, 1, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_ensure(f->db, "", NULL, 1, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_ensure(f->db, "a\nb", NULL, 1, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_ensure(f->db, "a\x7f", NULL, 1, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_ensure(f->db, "k", "", 1, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_ensure(NULL, "k", NULL, 1, NULL, NULL), CH_EINVAL);
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0'; /* 513 bytes */
    assert_int_equal(ch_sessions_ensure(f->db, key, NULL, 1, NULL, NULL), CH_E_TOO_LARGE);
    assert_int_equal(ch_sessions_get(f->db, key, &s), CH_E_TOO_LARGE);
    key[CH_STORE_MAX_KEY_BYTES] = '\0'; /* exactly the cap */
    assert_int_equal(ch_sessions_ensure(f->db, key, NULL, 1, NULL, NULL), 0);
    assert_int_equal(ch_sessions_get(f->db, key, &s), 0);
    assert_int_equal(strlen(s.key), CH_STORE_MAX_KEY_BYTES);
    ch_session_rec_release(&s);
    assert_int_equal(ch_sessions_get(f->db, "k", NULL), CH_EINVAL);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    struct ch_session_query q = {0};
    struct ch_session_list l;
    char key[32];
    int i;

    for (i = 0; i < 25; i++) {
        snprintf(key, sizeof(key), "hook:%02d", i);
        assert_int_equal(ch_sessions_ensure(f->db, key, i % 5 == 0 ? "ops" : NULL, 1000 + i, NULL, NULL), 0);
    }
    q.limit = 10;
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_int_equal(l.total, 25);
    assert_int_equal(l.count, 10);
    assert_string_equal(l.items[0].key, "hook:24"); /* newest first */
    assert_string_equal(l.items[9].key, "hook:15");
    ch_session_list_release(&l);

    q.offset = 20;
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_int_equal(l.count, 5);
    assert_string_equal(l.items[4].key, "hook:00");
    ch_session_list_release(&l);

    q.offset = 100;
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(l.total, 25);
    ch_session_list_release(&l);

    /* Filters: agent, and recently updated. */
    q = (struct ch_session_query){.agent_id = "ops"};
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_int_equal(l.total, 5);
    assert_int_equal(l.count, 5);
    assert_string_equal(l.items[0].key, "hook:20");
    ch_session_list_release(&l);
    q = (struct ch_session_query){.updated_since_ms = 1020};
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_int_equal(l.total, 5);
    ch_session_list_release(&l);

    /* Updating a session moves it to the front. */
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:03", &(struct ch_usage){0}, -1, NULL, 5000), 0);
    q = (struct ch_session_query){.limit = 1};
    assert_int_equal(ch_sessions_list(f->db, &q, &l), 0);
    assert_string_equal(l.items[0].key, "hook:03");
    ch_session_list_release(&l);

    q.limit = CH_STORE_MAX_LIST + 1;
    assert_int_equal(ch_sessions_list(f->db, &q, &l), CH_E_TOO_LARGE);
    q.limit = 0;
    q.updated_since_ms = -1;
    assert_int_equal(ch_sessions_list(f->db, &q, &l), CH_EINVAL);
    assert_int_equal(ch_sessions_list(f->db, NULL, &l), CH_EINVAL);
}

static void test_patch(void **state)
{
    struct fixture *f = *state;
    struct ch_session_patch p = {0};
    struct ch_session_rec s;

    assert_int_equal(ch_sessions_ensure(f->db, "agent:main:main", NULL, 10, NULL, NULL), 0);
    p.set_model_override = true;
    p.model_override = "anthropic/claude-sonnet-4-5";
    p.set_label = true;
    p.label = "trading desk";
    p.set_origin = true;
    p.origin = "{\"channel\":\"telegram\",\"chatId\":1}";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 20, &s), 0);
    assert_string_equal(s.model_override, "anthropic/claude-sonnet-4-5");
    assert_string_equal(s.label, "trading desk");
    assert_string_equal(s.origin, "{\"channel\":\"telegram\",\"chatId\":1}");
    assert_int_equal(s.updated_ms, 20);
    ch_session_rec_release(&s);

    /* Only flagged fields change; NULL clears. */
    p = (struct ch_session_patch){
        .set_label = true, .label = NULL, .set_thinking_level = true, .thinking_level = "low"};
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 30, NULL), 0);
    assert_int_equal(ch_sessions_get(f->db, "agent:main:main", &s), 0);
    assert_null(s.label);
    assert_string_equal(s.thinking_level, "low");
    assert_string_equal(s.model_override, "anthropic/claude-sonnet-4-5");
    assert_non_null(s.origin);
    ch_session_rec_release(&s);

    /* Model override must be provider/model. */
    p = (struct ch_session_patch){.set_model_override = true};
    p.model_override = "gpt";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 40, &s), CH_EINVAL);
    assert_null(s.key);
    p.model_override = "/gpt";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 40, NULL), CH_EINVAL);
    p.model_override = "openai/";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 40, NULL), CH_EINVAL);
    p.model_override = "openrouter/anthropic/claude"; /* slashes in the model are fine */
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 40, NULL), 0);
    p.model_override = NULL;
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 40, &s), 0);
    assert_null(s.model_override);
    ch_session_rec_release(&s);

    /* JSON fields must be JSON; the failed patch changes nothing. */
    p = (struct ch_session_patch){.set_extra = true, .extra = "{not json"};
    p.set_label = true;
    p.label = "x";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 50, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_get(f->db, "agent:main:main", &s), 0);
    assert_null(s.label);
    assert_null(s.extra);
    assert_int_equal(s.updated_ms, 40);
    ch_session_rec_release(&s);

    p.extra = "{}";
    assert_int_equal(ch_sessions_patch(f->db, "nope", &p, 50, &s), CH_ENOTFOUND);
    assert_null(s.key);
    p.label = "tab\there";
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 50, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", NULL, 50, NULL), CH_EINVAL);
}

static void test_add_usage(void **state)
{
    struct fixture *f = *state;
    struct ch_usage u = {100, 20, 300, 40, 0.25};
    struct ch_session_rec s;

    assert_int_equal(ch_sessions_ensure(f->db, "hook:a", NULL, 1, NULL, NULL), 0);
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, 460, "run-1", 10), 0);
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, -1, NULL, 20), 0);
    assert_int_equal(ch_sessions_get(f->db, "hook:a", &s), 0);
    assert_int_equal(s.usage.input_tokens, 200);
    assert_int_equal(s.usage.output_tokens, 40);
    assert_int_equal(s.usage.cache_read_tokens, 600);
    assert_int_equal(s.usage.cache_write_tokens, 80);
    assert_int_equal(s.total_tokens, 920);
    assert_true(fabs(s.usage.cost_usd - 0.5) < 1e-9);
    assert_int_equal(s.context_tokens, 460); /* negative left it alone */
    assert_string_equal(s.last_run_id, "run-1");
    assert_int_equal(s.updated_ms, 20);
    ch_session_rec_release(&s);

    assert_int_equal(ch_sessions_add_usage(f->db, "hook:missing", &u, 1, NULL, 1), CH_ENOTFOUND);
    u.input_tokens = -1;
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, 1, NULL, 1), CH_EINVAL);
    u.input_tokens = 0;
    u.cost_usd = NAN;
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, 1, NULL, 1), CH_EINVAL);
    u.cost_usd = -0.1;
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, 1, NULL, 1), CH_EINVAL);
    u.cost_usd = 0;
    u.output_tokens = ((int64_t)1 << 40) + 1;
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", &u, 1, NULL, 1), CH_EINVAL);
    assert_int_equal(ch_sessions_add_usage(f->db, "hook:a", NULL, 1, NULL, 1), CH_EINVAL);
}

static void test_reset_keeps_old_transcript(void **state)
{
    struct fixture *f = *state;
    struct ch_session_patch p = {.set_label = true, .label = "keep me"};
    struct ch_usage u = {10, 10, 0, 0, 1.0};
    struct ch_session_rec a, b;
    char old_id[64];
    int64_t n = -1;

    assert_int_equal(ch_sessions_ensure(f->db, "agent:main:main", NULL, 1, &a, NULL), 0);
    snprintf(old_id, sizeof(old_id), "%s", a.session_id);
    ch_session_rec_release(&a);
    assert_int_equal(ch_sessions_patch(f->db, "agent:main:main", &p, 2, NULL), 0);
    append_text(f->db, "agent:main:main", old_id, "one");
    append_text(f->db, "agent:main:main", old_id, "two");
    assert_int_equal(ch_sessions_add_usage(f->db, "agent:main:main", &u, 20, "r1", 3), 0);

    /* A stale expected id is refused and changes nothing. */
    assert_int_equal(ch_sessions_reset(f->db, "agent:main:main", "not-the-id", 4, &b), CH_ESTATE);
    assert_null(b.key);
    assert_int_equal(ch_sessions_get(f->db, "agent:main:main", &b), 0);
    assert_string_equal(b.session_id, old_id);
    ch_session_rec_release(&b);

    assert_int_equal(ch_sessions_reset(f->db, "agent:main:main", old_id, 5, &b), 0);
    assert_string_not_equal(b.session_id, old_id);
    assert_int_equal(strlen(b.session_id), 36);
    assert_int_equal(b.session_id[14], '7'); /* time-ordered, as ensure's */
    assert_int_equal(b.total_tokens, 0);
    assert_int_equal(b.usage.input_tokens, 0);
    assert_int_equal(b.context_tokens, 0);
    assert_true(b.usage.cost_usd == 0);
    assert_null(b.last_run_id);
    assert_string_equal(b.label, "keep me");
    assert_int_equal(b.created_ms, 1);
    assert_int_equal(b.updated_ms, 5);

    /* The old transcript is still there under the old id. */
    assert_int_equal(ch_messages_count(f->db, old_id, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ch_messages_count(f->db, b.session_id, &n), 0);
    assert_int_equal(n, 0);
    /* And the new one starts at seq 1. */
    append_text(f->db, "agent:main:main", b.session_id, "fresh");
    assert_int_equal(db_query_int(f->db, "SELECT MAX(seq) FROM messages WHERE session_id ="
                                         " (SELECT session_id FROM sessions)"),
                     1);
    ch_session_rec_release(&b);

    /* Without an expected id, reset always works; unknown keys do not. */
    assert_int_equal(ch_sessions_reset(f->db, "agent:main:main", NULL, 6, NULL), 0);
    assert_int_equal(ch_sessions_reset(f->db, "hook:none", NULL, 6, &b), CH_ENOTFOUND);
    assert_null(b.key);
}

static void test_delete_removes_messages(void **state)
{
    struct fixture *f = *state;
    struct ch_session_rec a, other;
    bool existed = false;
    char first_id[64];

    assert_int_equal(ch_sessions_ensure(f->db, "hook:x", NULL, 1, &a, NULL), 0);
    assert_int_equal(ch_sessions_ensure(f->db, "hook:y", NULL, 1, &other, NULL), 0);
    snprintf(first_id, sizeof(first_id), "%s", a.session_id);
    append_text(f->db, "hook:x", a.session_id, "a");
    append_text(f->db, "hook:y", other.session_id, "b");
    ch_session_rec_release(&a);
    /* After a reset the key has two transcripts; delete takes both. */
    assert_int_equal(ch_sessions_reset(f->db, "hook:x", NULL, 2, &a), 0);
    append_text(f->db, "hook:x", a.session_id, "c");
    ch_session_rec_release(&a);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM messages"), 3);

    assert_int_equal(ch_sessions_delete(f->db, "hook:x", &existed), 0);
    assert_true(existed);
    assert_int_equal(ch_sessions_get(f->db, "hook:x", &a), CH_ENOTFOUND);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM messages WHERE session_key = 'hook:x'"), 0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM messages"), 1);

    assert_int_equal(ch_sessions_delete(f->db, "hook:x", &existed), 0);
    assert_false(existed);
    assert_int_equal(ch_sessions_delete(f->db, "hook:x", NULL), 0);
    assert_int_equal(ch_sessions_delete(f->db, "", &existed), CH_EINVAL);

    /* A message for a deleted (or never created) key is refused. */
    {
        struct ch_message_rec m = {.session_key = "hook:x", .session_id = first_id, .content = "[]", .created_ms = 1};

        snprintf(m.role, sizeof(m.role), "user");
        assert_int_equal(ch_messages_append(f->db, &m, NULL), CH_ENOTFOUND);
    }
    ch_session_rec_release(&other);
}

/* The first entry of a session ensure just made is seq 1 without a read
 * (messages.c); an id that already has entries is refused, unwritten. */
static void test_first_append_of_created_session(void **state)
{
    struct fixture *f = *state;
    struct ch_session_rec s;
    struct ch_message_rec m = {.content = "[]", .created_ms = 6};
    bool created = false;
    int64_t seq = 0, id = 0, n = 0;

    assert_int_equal(ch_sessions_ensure(f->db, "hook:a", NULL, 1, &s, &created), 0);
    assert_true(created);
    m.session_key = "hook:a";
    m.session_id = s.session_id;
    snprintf(m.role, sizeof(m.role), "user");
    assert_int_equal(ch_messages_append_first(f->db, &m, &seq, &id), 0);
    assert_int_equal(seq, 1);
    assert_true(id > 0);
    assert_int_equal(ch_messages_append_first(f->db, &m, &seq, &id), CH_EEXIST);
    assert_int_equal(ch_messages_count(f->db, s.session_id, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_messages_append_ids(f->db, &m, &seq, NULL), 0);
    assert_int_equal(seq, 2);
    m.session_key = "hook:none"; /* the foreign key still applies */
    m.session_id = "fresh";
    assert_int_equal(ch_messages_append_first(f->db, &m, &seq, NULL), CH_ENOTFOUND);
    ch_session_rec_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_append_of_created_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_in_transaction_matches_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_keeps_old_transcript, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_removes_messages, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
