/*
 * test_retention.c: pruning of disposable sessions (store/retention.c):
 * only stale sessions whose key is disposable, never one with a run queued
 * or running, their transcripts with them, in batches, or only counted.
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
    tmpdir_file(&f->dir, "retention.db", path, sizeof(path));
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

/* A session updated at `at` with one message. */
static void session_at(struct ch_db *db, const char *key, int64_t at)
{
    struct ch_session_rec s;
    struct ch_message_rec m = {0};

    assert_int_equal(ch_sessions_ensure(db, key, "main", at, &s, NULL), 0);
    m.session_key = (char *)key;
    m.session_id = s.session_id;
    snprintf(m.role, sizeof(m.role), "user");
    m.content = "[{\"type\":\"text\",\"text\":\"hi\"}]";
    m.created_ms = at;
    assert_int_equal(ch_messages_append(db, &m, NULL), 0);
    ch_session_rec_release(&s);
}

static int64_t sessions_named(struct ch_db *db, const char *key)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM sessions WHERE key = '%s'", key);
    return db_query_int(db, sql);
}

static void test_only_stale_disposable_sessions_go(void **state)
{
    struct fixture *f = *state;
    struct ch_run_rec r = {0};
    struct ch_error e = {0};
    int64_t n = -1;

    session_at(f->db, "agent:main:hook:old-1", 100);
    session_at(f->db, "agent:main:hook:old-2", 110);
    session_at(f->db, "agent:main:hook:old-3", 120);
    session_at(f->db, "agent:main:openai:old-4", 130);
    session_at(f->db, "agent:main:hook:busy", 100); /* a run still queued on it */
    session_at(f->db, "agent:main:hook:new", 1000); /* recent */
    session_at(f->db, "agent:main:main", 100);      /* the main session */
    session_at(f->db, "agent:main:conv_x", 100);    /* a conversation */
    session_at(f->db, "agent:main:openai-user:bob", 100);
    r.run_id = "run-busy";
    r.session_key = "agent:main:hook:busy";
    r.source = "hook";
    r.request = "{}";
    r.created_ms = 100;
    assert_int_equal(ch_runs_insert(f->db, &r, NULL, &e), 0);

    /* warn mode counts and deletes nothing */
    assert_int_equal(ch_sessions_prune(f->db, 500, 0, true, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM sessions"), 9);
    /* batches, oldest first */
    assert_int_equal(ch_sessions_prune(f->db, 500, 3, false, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(sessions_named(f->db, "agent:main:openai:old-4"), 1);
    assert_int_equal(ch_sessions_prune(f->db, 500, 3, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_sessions_prune(f->db, 500, 3, false, &n), 0);
    assert_int_equal(n, 0);
    /* their messages went with them; the others' stayed */
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM messages WHERE session_key LIKE 'agent:main:hook:old%'"),
                     0);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM messages"), 5);
    assert_int_equal(sessions_named(f->db, "agent:main:hook:busy"), 1);
    assert_int_equal(sessions_named(f->db, "agent:main:main"), 1);
    /* once its run has ended, the busy one goes too */
    assert_int_equal(ch_runs_start(f->db, "run-busy", 150), 0);
    assert_int_equal(
        ch_runs_finish(f->db, "run-busy", &(struct ch_run_outcome){.status = CH_RUN_OK, .finished_ms = 160}), 0);
    assert_int_equal(ch_sessions_prune(f->db, 500, 0, false, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM sessions"), 4);
    assert_int_equal(ch_sessions_prune(NULL, 500, 0, false, &n), CH_EINVAL);
}

static void test_disposable_keys(void **state)
{
    (void)state;
    assert_true(ch_session_key_disposable("agent:main:hook:0b8f"));
    assert_true(ch_session_key_disposable("agent:ops:cron:nightly"));
    assert_true(ch_session_key_disposable("agent:main:subagent:x"));
    assert_true(ch_session_key_disposable("agent:main:acp:x"));
    assert_true(ch_session_key_disposable("agent:main:acp-bridge:x"));
    assert_true(ch_session_key_disposable("agent:main:node:x"));
    assert_true(ch_session_key_disposable("agent:main:heartbeat"));
    assert_true(ch_session_key_disposable("agent:main:telegram:1:heartbeat"));
    assert_true(ch_session_key_disposable("agent:main:x:heartbeat:y"));
    assert_true(ch_session_key_disposable("agent:main:openai:0b8f"));
    assert_true(ch_session_key_disposable("agent:main:openresponses:0b8f"));
    assert_true(ch_session_key_disposable("agent:main:explicit:model-run-1"));
    assert_true(ch_session_key_disposable("hook:bare"));
    assert_false(ch_session_key_disposable("agent:main:main"));
    assert_false(ch_session_key_disposable("global"));
    assert_false(ch_session_key_disposable("agent:main:conv_1"));
    assert_false(ch_session_key_disposable("agent:main:openai-user:bob"));
    assert_false(ch_session_key_disposable("agent:main:openresponses-user:bob"));
    assert_false(ch_session_key_disposable("agent:main:my:hook:notes")); /* only as the key's kind */
    assert_false(ch_session_key_disposable("agent:main:hook:"));
    assert_false(ch_session_key_disposable("agent::hook:x"));
    assert_false(ch_session_key_disposable("agent:main:heartbeats"));
    assert_false(ch_session_key_disposable(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_only_stale_disposable_sessions_go, setup, teardown),
        cmocka_unit_test(test_disposable_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
