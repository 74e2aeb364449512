/*
 * test_bounds.c: what the agent's transcript cache relies on in the store:
 * ch_messages_append_ids (seq and id of the new row, inside and outside a
 * transaction), ch_messages_bounds moving on every kind of change (append,
 * compaction, reset, delete), and ch_runs_insert of a run already running.
 */
#include <jansson.h>

#include "async_test.h"

static int append(struct ch_db *db, const char *key, const char *sid, const char *role, int64_t *seq, int64_t *id)
{
    struct ch_message_rec m = {0};

    m.session_key = (char *)key;
    m.session_id = (char *)sid;
    snprintf(m.role, sizeof(m.role), "%s", role);
    m.content = "[{\"type\":\"text\",\"text\":\"x\"}]";
    m.created_ms = 1;
    return ch_messages_append_ids(db, &m, seq, id);
}

static void session(struct ch_db *db, const char *key, char sid[64])
{
    struct ch_session_rec s;

    assert_int_equal(ch_sessions_ensure(db, key, NULL, 1, &s, NULL), 0);
    snprintf(sid, 64, "%s", s.session_id);
    ch_session_rec_release(&s);
}

static void test_append_ids_and_bounds(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = db_open_or_fail(f->path, false, true);
    struct ch_message_bounds b0, b1, b2;
    int64_t seq = 0, id = 0, id1 = 0;
    char sid[64], sid2[64];

    session(db, "k", sid);
    session(db, "other", sid2);
    assert_int_equal(ch_messages_bounds(db, sid, &b0), 0);
    assert_int_equal(b0.last_seq, 0); /* empty transcript: all zero */
    assert_int_equal(b0.first_id, 0);

    assert_int_equal(append(db, "k", sid, "user", &seq, &id1), 0);
    assert_int_equal(seq, 1);
    assert_true(id1 > 0);
    assert_int_equal(append(db, "other", sid2, "user", &seq, &id), 0);
    assert_int_equal(seq, 1);             /* per session */
    assert_int_equal(ch_db_begin(db), 0); /* inside a transaction too */
    assert_int_equal(append(db, "k", sid, "assistant", &seq, &id), 0);
    assert_int_equal(ch_db_commit(db), 0);
    assert_int_equal(seq, 2);
    assert_true(id > id1);

    assert_int_equal(ch_messages_bounds(db, sid, &b1), 0);
    assert_int_equal(b1.first_seq, 1);
    assert_int_equal(b1.first_id, id1);
    assert_int_equal(b1.last_seq, 2);
    assert_int_equal(b1.last_id, id);
    assert_string_equal(b1.last_role, "assistant");
    assert_false(ch_message_bounds_equal(&b0, &b1));
    assert_int_equal(ch_messages_bounds(db, sid, &b2), 0);
    assert_true(ch_message_bounds_equal(&b1, &b2));

    /* A session that does not exist: refused, the bounds do not move. */
    assert_int_equal(append(db, "nope", sid, "user", &seq, &id), CH_ENOTFOUND);
    assert_int_equal(ch_messages_bounds(db, sid, &b2), 0);
    assert_true(ch_message_bounds_equal(&b1, &b2));
    assert_int_equal(ch_messages_bounds(db, "", &b2), CH_EINVAL);
    ch_db_close(db);
}

static void test_bounds_move_on_compaction_reset_delete(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = db_open_or_fail(f->path, false, true);
    struct ch_compaction c = {0};
    struct ch_message_bounds before, after;
    struct ch_session_rec s;
    char sid[64];
    bool existed = false;

    session(db, "k", sid);
    for (int i = 0; i < 4; i++)
        assert_int_equal(append(db, "k", sid, i % 2 ? "assistant" : "user", NULL, NULL), 0);
    assert_int_equal(ch_messages_bounds(db, sid, &before), 0);

    /* Compaction keeping everything after seq 2: the first row changes. */
    c.session_key = "k";
    c.session_id = sid;
    c.first_kept_seq = 3;
    c.summary = "s";
    c.created_ms = 2;
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), 0);
    assert_int_equal(ch_messages_bounds(db, sid, &after), 0);
    assert_false(ch_message_bounds_equal(&before, &after));
    assert_int_equal(after.first_seq, 2);
    assert_int_equal(after.last_seq, 4);

    /* Compacting everything: same seqs at both ends, a fresh row. */
    before = after;
    c.first_kept_seq = 5;
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), 0);
    assert_int_equal(ch_messages_bounds(db, sid, &after), 0);
    assert_false(ch_message_bounds_equal(&before, &after));
    assert_string_equal(after.last_role, "compaction");

    /* A reset gives the key a new session id; a delete removes it all. */
    assert_int_equal(ch_sessions_reset(db, "k", NULL, 3, &s), 0);
    assert_string_not_equal(s.session_id, sid);
    ch_session_rec_release(&s);
    assert_int_equal(ch_sessions_delete(db, "k", &existed), 0);
    assert_true(existed);
    assert_int_equal(ch_messages_bounds(db, sid, &after), 0);
    assert_int_equal(after.last_seq, 0);
    ch_db_close(db);
}

static void test_insert_running(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = db_open_or_fail(f->path, false, true);
    struct ch_run_rec r = {0}, got;
    struct ch_error err = {0};

    r.run_id = "r1";
    r.session_key = "k";
    r.source = "api";
    r.request = "{\"message\":\"hi\"}";
    r.created_ms = 10;
    r.status = CH_RUN_RUNNING;
    r.started_ms = 11;
    assert_int_equal(ch_runs_insert(db, &r, NULL, &err), 0);
    assert_int_equal(ch_runs_get(db, "r1", &got), 0);
    assert_int_equal(got.status, CH_RUN_RUNNING);
    assert_int_equal(got.started_ms, 11);
    assert_int_equal(got.attempts, 1);
    ch_run_rec_release(&got);
    /* Already running: ch_runs_start refuses, as for a started run. */
    assert_int_equal(ch_runs_start(db, "r1", 12), CH_ESTATE);

    r.run_id = "r2";
    r.status = CH_RUN_OK; /* anything but running is inserted queued */
    assert_int_equal(ch_runs_insert(db, &r, NULL, &err), 0);
    assert_int_equal(ch_runs_get(db, "r2", &got), 0);
    assert_int_equal(got.status, CH_RUN_QUEUED);
    assert_int_equal(got.started_ms, 0);
    assert_int_equal(got.attempts, 0);
    ch_run_rec_release(&got);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_ids_and_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_move_on_compaction_reset_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_running, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
