/*
 * test_messages.c: transcripts (store/messages.c): seq
 * assignment (also many appends in one transaction and in one writer
 * batch on a real loop), input checks, newest-first and since-seq loads
 * under count and byte caps, compaction keeping first_kept_seq, and a
 * fail-allocation-N loop over every operation.
 */
#include <jansson.h>

#include "async_test.h"

static struct ch_db *open_db(struct fixture *f)
{
    return db_open_or_fail(f->path, false, true);
}

/* A session for key; its session id is copied to sid. */
static void make_session(struct ch_db *db, const char *key, char sid[64])
{
    struct ch_session_rec s;

    assert_int_equal(ch_sessions_ensure(db, key, NULL, 1, &s, NULL), 0);
    snprintf(sid, 64, "%s", s.session_id);
    ch_session_rec_release(&s);
}

static int append(struct ch_db *db, const char *key, const char *sid, const char *role, const char *content,
                  int64_t *seq)
{
    struct ch_message_rec m = {0};

    m.session_key = (char *)key;
    m.session_id = (char *)sid;
    snprintf(m.role, sizeof(m.role), "%s", role);
    m.content = (char *)content;
    m.model = "anthropic/claude";
    m.input_tokens = 3;
    m.output_tokens = 4;
    m.latency_ms = 5;
    m.created_ms = 6;
    m.run_id = "run-1";
    return ch_messages_append(db, &m, seq);
}

/* Append texts "m1".."mN"; content bytes are the same for all N <= 9. */
static void append_n(struct ch_db *db, const char *key, const char *sid, int n)
{
    char content[64];
    int i;

    for (i = 1; i <= n; i++) {
        snprintf(content, sizeof(content), "[{\"type\":\"text\",\"text\":\"m%d\"}]", i);
        assert_int_equal(append(db, key, sid, i % 2 ? "user" : "assistant", content, NULL), 0);
    }
}

/* ---- append ---------------------------------------------------------- */

static void test_append_assigns_seq(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_message_list l;
    char a[64], b[64];
    int64_t seq = 0, n = 0;

    make_session(db, "hook:a", a);
    make_session(db, "hook:b", b);
    assert_int_equal(append(db, "hook:a", a, "user", "[]", &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(append(db, "hook:b", b, "user", "\"plain\"", &seq), 0);
    assert_int_equal(seq, 1); /* seq is per session id */
    assert_int_equal(append(db, "hook:a", a, "assistant", "[{\"type\":\"text\",\"text\":\"hi\"}]", &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(append(db, "hook:a", a, "tool", "[]", NULL), 0);
    assert_int_equal(append(db, "hook:a", a, "system", "[]", &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(ch_messages_count(db, a, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ch_messages_count(db, "unknown", &n), 0);
    assert_int_equal(n, 0);

    /* Every field round-trips. */
    assert_int_equal(ch_messages_load_since(db, a, 2, 1, 1 << 20, &l), 0);
    assert_int_equal(l.count, 1);
    assert_true(l.truncated);
    assert_int_equal(l.items[0].seq, 2);
    assert_string_equal(l.items[0].role, "assistant");
    assert_string_equal(l.items[0].content, "[{\"type\":\"text\",\"text\":\"hi\"}]");
    assert_string_equal(l.items[0].model, "anthropic/claude");
    assert_string_equal(l.items[0].session_key, "hook:a");
    assert_string_equal(l.items[0].session_id, a);
    assert_string_equal(l.items[0].run_id, "run-1");
    assert_int_equal(l.items[0].input_tokens, 3);
    assert_int_equal(l.items[0].output_tokens, 4);
    assert_int_equal(l.items[0].latency_ms, 5);
    assert_int_equal(l.items[0].created_ms, 6);
    assert_true(l.items[0].id > 0);
    ch_message_list_release(&l);
    ch_db_close(db);
}

static void test_append_checks(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    char sid[64], *big;
    int64_t seq = 77, n = 0;

    make_session(db, "hook:a", sid);
    assert_int_equal(append(db, "hook:a", sid, "compaction", "[]", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", sid, "bogus", "[]", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", sid, "", "[]", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", sid, "user", "{not json", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", sid, "user", "", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", sid, "user", NULL, &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:a", NULL, "user", "[]", &seq), CH_EINVAL);
    assert_int_equal(append(db, "hook:nope", sid, "user", "[]", &seq), CH_ENOTFOUND);
    assert_int_equal(seq, 77); /* untouched on failure */

    /* Content: exactly the cap is fine, one byte more is not.  A JSON
     * string of 4 MiB - 2 characters plus its quotes. */
    big = malloc(CH_STORE_MAX_CONTENT_BYTES + 2);
    assert_non_null(big);
    memset(big, 'x', CH_STORE_MAX_CONTENT_BYTES + 1);
    big[0] = '"';
    big[CH_STORE_MAX_CONTENT_BYTES - 1] = '"';
    big[CH_STORE_MAX_CONTENT_BYTES] = '\0';
    assert_int_equal(append(db, "hook:a", sid, "user", big, &seq), 0);
    assert_int_equal(seq, 1);
    big[CH_STORE_MAX_CONTENT_BYTES - 1] = 'x';
    big[CH_STORE_MAX_CONTENT_BYTES] = '"';
    big[CH_STORE_MAX_CONTENT_BYTES + 1] = '\0';
    assert_int_equal(append(db, "hook:a", sid, "user", big, &seq), CH_E_TOO_LARGE);
    free(big);
    assert_int_equal(ch_messages_count(db, sid, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_messages_append(db, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_messages_count(db, sid, NULL), CH_EINVAL);
    ch_db_close(db);
}

static void test_many_appends_one_transaction(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    char a[64], b[64];
    int64_t seq;
    int i;

    make_session(db, "hook:a", a);
    make_session(db, "hook:b", b);
    assert_int_equal(ch_db_begin(db), 0);
    for (i = 1; i <= 2000; i++) {
        assert_int_equal(append(db, "hook:a", i % 3 ? a : b, "user", "[]", &seq), 0);
        assert_int_equal(seq, i % 3 ? i - i / 3 : i / 3);
    }
    assert_int_equal(ch_db_commit(db), 0);
    /* Dense: 1..N with no gaps and no duplicates, per session id. */
    assert_int_equal(db_query_int(db, "SELECT COUNT(DISTINCT seq) FROM messages"
                                      " GROUP BY session_id ORDER BY 1 DESC LIMIT 1"),
                     1334);
    assert_int_equal(db_query_int(db, "SELECT SUM(cnt = mx) FROM (SELECT COUNT(*) AS cnt,"
                                      " MAX(seq) AS mx FROM messages GROUP BY session_id)"),
                     2);
    ch_db_close(db);
}

/* ---- loads ------------------------------------------------------------ */

static void test_load_last_and_caps(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_message_list l;
    size_t each;
    char sid[64];

    make_session(db, "hook:a", sid);
    append_n(db, "hook:a", sid, 9);
    each = strlen("[{\"type\":\"text\",\"text\":\"m1\"}]");

    assert_int_equal(ch_messages_load_last(db, sid, 3, 1 << 20, &l), 0);
    assert_int_equal(l.count, 3);
    assert_true(l.truncated);
    assert_int_equal(l.items[0].seq, 7); /* newest three, oldest first */
    assert_int_equal(l.items[2].seq, 9);
    assert_string_equal(l.items[2].content, "[{\"type\":\"text\",\"text\":\"m9\"}]");
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_last(db, sid, 100, 1 << 20, &l), 0);
    assert_int_equal(l.count, 9);
    assert_false(l.truncated);
    assert_int_equal(l.items[0].seq, 1);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_last(db, sid, 9, 1 << 20, &l), 0);
    assert_int_equal(l.count, 9);
    assert_false(l.truncated); /* exactly all of them */
    ch_message_list_release(&l);

    /* Byte cap: room for two and a half messages keeps the newest two. */
    assert_int_equal(ch_messages_load_last(db, sid, 100, each * 2 + each / 2, &l), 0);
    assert_int_equal(l.count, 2);
    assert_true(l.truncated);
    assert_int_equal(l.items[0].seq, 8);
    assert_int_equal(l.items[1].seq, 9);
    ch_message_list_release(&l);
    assert_int_equal(ch_messages_load_last(db, sid, 100, each * 9, &l), 0);
    assert_int_equal(l.count, 9);
    assert_false(l.truncated);
    ch_message_list_release(&l);
    /* Strict: the newest alone does not fit, so nothing comes back. */
    assert_int_equal(ch_messages_load_last(db, sid, 100, each - 1, &l), 0);
    assert_int_equal(l.count, 0);
    assert_true(l.truncated);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_last(db, "no-such-id", 10, 100, &l), 0);
    assert_int_equal(l.count, 0);
    assert_false(l.truncated);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_last(db, sid, 0, 100, &l), CH_EINVAL);
    assert_int_equal(ch_messages_load_last(db, sid, CH_STORE_MAX_LIST + 1, 100, &l), CH_E_TOO_LARGE);
    assert_int_equal(ch_messages_load_last(db, sid, 10, (size_t)CH_STORE_MAX_LOAD_BYTES + 1, &l), CH_E_TOO_LARGE);
    assert_int_equal(ch_messages_load_last(db, NULL, 10, 100, &l), CH_EINVAL);
    assert_int_equal(ch_messages_load_last(db, sid, 10, 100, NULL), CH_EINVAL);
    ch_db_close(db);
}

/* Content i for test_load_fields_one_block: grows with i, so the load's
 * block moves while it fills. */
static void field_content(int i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "[{\"type\":\"text\",\"text\":\"");

    for (int j = 0; j < i * 50; j++)
        out[n++] = (char)('a' + (i + j) % 26);
    snprintf(out + n, cap - (size_t)n, "%d\"}]", i);
}

/* A load hands back every column, NULLs as NULL, and all of the rows'
 * strings in the list's one block (messages.c: loads run on the writer
 * and are freed on the loop). */
static void test_load_fields_one_block(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_message_rec m = {0};
    struct ch_message_list l;
    char sid[64], content[4096];
    size_t block = 0;

    make_session(db, "hook:fields", sid);
    for (int i = 0; i < 40; i++) {
        field_content(i, content, sizeof(content));
        memset(&m, 0, sizeof(m));
        m.session_key = "hook:fields";
        m.session_id = sid;
        snprintf(m.role, sizeof(m.role), "%s", i % 2 ? "assistant" : "user");
        m.content = content;
        m.model = i % 3 ? "openai/gpt" : NULL;
        m.run_id = i % 4 ? "run-x" : NULL;
        m.input_tokens = i;
        m.created_ms = 100 + i;
        assert_int_equal(ch_messages_append(db, &m, NULL), 0);
    }
    assert_int_equal(ch_messages_load_last(db, sid, 100, 1 << 20, &l), 0);
    assert_int_equal(l.count, 40);
    assert_non_null(l.text);
    for (size_t i = 0; i < l.count; i++) {
        const struct ch_message_rec *r = &l.items[i];
        const char *strs[] = {r->session_key, r->session_id, r->content, r->model, r->run_id};

        field_content((int)i, content, sizeof(content));
        assert_int_equal(r->seq, (int64_t)i + 1);
        assert_string_equal(r->session_key, "hook:fields");
        assert_string_equal(r->session_id, sid);
        assert_string_equal(r->role, i % 2 ? "assistant" : "user");
        assert_string_equal(r->content, content);
        if (i % 3)
            assert_string_equal(r->model, "openai/gpt");
        else
            assert_null(r->model);
        if (i % 4)
            assert_string_equal(r->run_id, "run-x");
        else
            assert_null(r->run_id);
        assert_int_equal(r->input_tokens, (int64_t)i);
        assert_int_equal(r->created_ms, 100 + (int64_t)i);
        for (size_t k = 0; k < 5; k++)
            if (strs[k])
                block += strlen(strs[k]) + 1;
    }
    /* Every string lies in the block, and the block is just those strings. */
    for (size_t i = 0; i < l.count; i++) {
        const struct ch_message_rec *r = &l.items[i];
        const char *strs[] = {r->session_key, r->session_id, r->content, r->model, r->run_id};
        for (size_t k = 0; k < 5; k++)
            if (strs[k])
                assert_true(strs[k] >= l.text && strs[k] + strlen(strs[k]) < l.text + block);
    }
    ch_message_list_release(&l);
    assert_null(l.items);
    assert_null(l.text);

    assert_int_equal(ch_messages_load_since(db, sid, 39, 10, 1 << 20, &l), 0);
    assert_int_equal(l.count, 2);
    assert_non_null(l.text);
    assert_int_equal(l.items[1].seq, 40);
    ch_message_list_release(&l);
    ch_db_close(db);
}

static void test_load_since(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_message_list l;
    size_t each = strlen("[{\"type\":\"text\",\"text\":\"m1\"}]");
    char sid[64];

    make_session(db, "hook:a", sid);
    append_n(db, "hook:a", sid, 9);
    assert_int_equal(ch_messages_load_since(db, sid, 5, 100, 1 << 20, &l), 0);
    assert_int_equal(l.count, 5);
    assert_false(l.truncated);
    assert_int_equal(l.items[0].seq, 5);
    assert_int_equal(l.items[4].seq, 9);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_since(db, sid, 5, 3, 1 << 20, &l), 0);
    assert_int_equal(l.count, 3);
    assert_true(l.truncated);
    assert_int_equal(l.items[2].seq, 7);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_since(db, sid, 1, 100, each * 4, &l), 0);
    assert_int_equal(l.count, 4); /* the oldest that fit */
    assert_true(l.truncated);
    assert_int_equal(l.items[3].seq, 4);
    ch_message_list_release(&l);

    assert_int_equal(ch_messages_load_since(db, sid, 10, 100, 1 << 20, &l), 0);
    assert_int_equal(l.count, 0);
    assert_false(l.truncated);
    ch_message_list_release(&l);
    ch_db_close(db);
}

/* ---- compaction -------------------------------------------------------- */

static void test_compaction(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_compaction c = {0};
    struct ch_message_list l;
    struct ch_session_rec s;
    json_t *root, *blk;
    int64_t seq = 0, replaced = 0, n = 0;
    char sid[64];

    make_session(db, "hook:a", sid);
    append_n(db, "hook:a", sid, 9);
    c.session_key = "hook:a";
    c.session_id = sid;
    c.first_kept_seq = 6;
    c.summary = "The user said \"m1\"..\"m5\".\nKeep going.";
    c.tokens_before = 150000;
    c.model = "anthropic/claude";
    c.output_tokens = 300;
    c.created_ms = 99;
    assert_int_equal(ch_messages_compact(db, &c, &seq, &replaced), 0);
    assert_int_equal(seq, 5);
    assert_int_equal(replaced, 5);
    assert_int_equal(ch_messages_count(db, sid, &n), 0);
    assert_int_equal(n, 5); /* compaction + 6..9 */

    /* The transcript reads summary, then the kept messages. */
    assert_int_equal(ch_messages_load_last(db, sid, 100, 1 << 20, &l), 0);
    assert_int_equal(l.count, 5);
    assert_string_equal(l.items[0].role, "compaction");
    assert_int_equal(l.items[0].seq, 5);
    assert_int_equal(l.items[0].created_ms, 99);
    assert_int_equal(l.items[0].output_tokens, 300);
    assert_int_equal(l.items[1].seq, 6);
    root = json_loads(l.items[0].content, 0, NULL);
    assert_true(json_is_array(root));
    blk = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(blk, "type")), "compaction");
    assert_string_equal(json_string_value(json_object_get(blk, "summary")), c.summary);
    assert_int_equal(json_integer_value(json_object_get(blk, "first_kept_seq")), 6);
    assert_int_equal(json_integer_value(json_object_get(blk, "tokens_before")), 150000);
    json_decref(root);
    ch_message_list_release(&l);

    assert_int_equal(ch_sessions_get(db, "hook:a", &s), 0);
    assert_int_equal(s.compaction_count, 1);
    ch_session_rec_release(&s);

    /* Appends continue after the last seq. */
    assert_int_equal(append(db, "hook:a", sid, "user", "[]", &seq), 0);
    assert_int_equal(seq, 10);

    /* Compacting again replaces the old summary too. */
    c.first_kept_seq = 8;
    assert_int_equal(ch_messages_compact(db, &c, &seq, &replaced), 0);
    assert_int_equal(seq, 7);
    assert_int_equal(replaced, 3); /* old compaction at 5, then 6 and 7 */
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM messages WHERE role = 'compaction'"), 1);

    /* Errors. */
    c.first_kept_seq = 4; /* already compacted past this */
    assert_int_equal(ch_messages_compact(db, &c, &seq, &replaced), CH_ESTATE);
    c.first_kept_seq = 1;
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_EINVAL);
    c.first_kept_seq = 12; /* last is 10 */
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_EINVAL);
    c.first_kept_seq = 11; /* everything: allowed */
    assert_int_equal(ch_messages_compact(db, &c, &seq, &replaced), 0);
    assert_int_equal(seq, 10);
    assert_int_equal(replaced, 4);
    assert_int_equal(ch_messages_count(db, sid, &n), 0);
    assert_int_equal(n, 1);
    c.session_id = "no-such-session";
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_ENOTFOUND);
    c.session_id = sid;
    c.session_key = "hook:other"; /* the transcript is not under this key */
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_ENOTFOUND);
    c.session_key = "hook:a";
    c.summary = "";
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_EINVAL);
    c.summary = NULL;
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_sessions_get(db, "hook:a", &s), 0);
    assert_int_equal(s.compaction_count, 3);
    ch_session_rec_release(&s);
    ch_db_close(db);
}

/* ---- through the async writer -------------------------------------------- */

struct turn_job {
    struct ch_store_job base;
    struct fixture *f;
    int idx;
    bool poison;                 /* second append has invalid JSON */
    struct ch_message_list list; /* read job output */
};

static int run_turn(struct ch_db *db, struct ch_store_job *job)
{
    struct turn_job *j = (struct turn_job *)job;
    struct ch_usage u = {10, 5, 0, 0, 0.01};
    struct ch_session_rec s;
    int rc;

    rc = ch_sessions_ensure(db, "agent:main:main", NULL, j->idx, &s, NULL);
    if (rc)
        return rc;
    rc = append(db, s.key, s.session_id, "user", "[{\"type\":\"text\",\"text\":\"q\"}]", NULL);
    if (rc == 0)
        rc = append(db, s.key, s.session_id, "assistant",
                    j->poison ? "[{broken" : "[{\"type\":\"text\",\"text\":\"a\"}]", NULL);
    if (rc == 0)
        rc = ch_sessions_add_usage(db, s.key, &u, 15, NULL, j->idx);
    ch_session_rec_release(&s);
    return rc;
}

static int run_load(struct ch_db *db, struct ch_store_job *job)
{
    struct turn_job *j = (struct turn_job *)job;
    struct ch_session_rec s;
    int rc = ch_sessions_get(db, "agent:main:main", &s);

    if (rc == 0)
        rc = ch_messages_load_last(db, s.session_id, CH_STORE_MAX_LIST, 1 << 24, &j->list);
    ch_session_rec_release(&s);
    return rc;
}

static int turn_rc[512];

static void on_turn_done(struct ch_store_job *job, int rc)
{
    struct turn_job *j = (struct turn_job *)job;

    j->f->done++;
    turn_rc[j->idx] = rc;
    if (rc == 0)
        j->f->done_ok++;
    if (j->list.count) {
        size_t i;
        bool dense = true;

        for (i = 0; i < j->list.count; i++)
            if (j->list.items[i].seq != (int64_t)i + 1 ||
                strcmp(j->list.items[i].role, i % 2 ? "assistant" : "user") != 0)
                dense = false;
        j->f->next_seq = dense ? (int)j->list.count : -1;
    }
    ch_message_list_release(&j->list);
    ch_free(j);
}

static struct turn_job *turn_new(struct fixture *f, ch_store_job_run_cb run, int idx)
{
    struct turn_job *j = ch_calloc(1, sizeof(*j));

    assert_non_null(j);
    j->base.run = run;
    j->base.done = on_turn_done;
    j->f = f;
    j->idx = idx;
    return j;
}

static void test_appends_in_group_commit(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_session_rec s;
    struct turn_job *j;
    struct ch_db *db;
    int i;

    open_store(f, 1000, 512);
    submit_blocker(f, -1); /* hold the writer so the turns queue up */
    for (i = 1; i <= 300; i++) {
        j = turn_new(f, run_turn, i);
        j->poison = i == 150;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 301);
    assert_int_equal(f->done_ok, 300); /* blocker + 299 turns */
    assert_int_equal(turn_rc[150], CH_EINVAL);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 2); /* the blocker's batch, then all turns */

    /* A pool read sees a dense transcript: the failed turn's first append
     * was rolled back with it and consumed no seq. */
    f->next_seq = 0;
    j = turn_new(f, run_load, 0);
    assert_int_equal(ch_store_read(f->store, &j->base), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(turn_rc[0], 0);
    assert_int_equal(f->next_seq, 598);
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(ch_sessions_get(db, "agent:main:main", &s), 0);
    assert_int_equal(s.usage.input_tokens, 2990);
    assert_int_equal(s.total_tokens, 299 * 15);
    assert_int_equal(s.updated_ms, 300);
    ch_session_rec_release(&s);
    ch_db_close(db);
}

/* ---- allocation failure ------------------------------------------------- */

/* One cycle of reads and writes on a fresh connection; returns how many
 * operations failed.  Whatever fails must fail cleanly. */
static int oom_cycle(const char *path, int iter)
{
    struct ch_db_opts o = {.path = path};
    struct ch_session_rec s = {0};
    struct ch_message_list ml;
    struct ch_preview_list pl;
    struct ch_run_list rl;
    struct ch_usage_list ul;
    struct ch_compaction c = {0};
    struct ch_db *db = NULL;
    char key[32], id[32];
    int failed = 0, rc;

    if (ch_db_open(&o, &db, NULL) != 0)
        return 1;
    /* Durability is not under test here; skipping fsyncs keeps 4000
     * open-work-close cycles fast. */
    if (sqlite3_exec(ch_db_handle(db), "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK) {
        ch_db_close(db);
        return 1;
    }
    snprintf(key, sizeof(key), "hook:%d", iter);
    snprintf(id, sizeof(id), "run-%d", iter);
#define OP(call)                                                                                                       \
    do {                                                                                                               \
        rc = (call);                                                                                                   \
        assert_true(rc <= 0);                                                                                          \
        failed += rc != 0;                                                                                             \
    } while (0)
    OP(ch_sessions_ensure(db, key, NULL, iter, &s, NULL));
    if (rc == 0) {
        OP(append(db, key, s.session_id, "user", "[{\"type\":\"text\",\"text\":\"x\"}]", NULL));
        OP(append(db, key, s.session_id, "assistant", "[{\"type\":\"text\",\"text\":\"y\"}]", NULL));
        c.session_key = key;
        c.session_id = s.session_id;
        c.first_kept_seq = 2;
        c.summary = "sum";
        OP(ch_messages_compact(db, &c, NULL, NULL));
        OP(ch_messages_load_last(db, s.session_id, 10, 1 << 20, &ml));
        ch_message_list_release(&ml);
    }
    ch_session_rec_release(&s);
    OP(ch_messages_preview(db, key, 5, 100, &pl));
    ch_preview_list_release(&pl);
    {
        struct ch_run_rec r = {.run_id = id,
                               .session_key = key,
                               .source = "cli",
                               .request = "{}",
                               .idempotency_key = id,
                               .created_ms = iter};

        OP(ch_runs_insert(db, &r, NULL, NULL));
    }
    OP(ch_runs_list_unfinished(db, 100, &rl));
    ch_run_list_release(&rl);
    OP(ch_usage_add(db, 1000, "p", "m", 1, &(struct ch_usage){1, 1, 0, 0, 0.1}));
    OP(ch_usage_query(db, NULL, NULL, CH_USAGE_BY_DAY_MODEL, &ul));
    ch_usage_list_release(&ul);
#undef OP
    ch_db_close(db);
    return failed;
}

static void test_alloc_failure(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    int n, clean_runs = 0;
    size_t before;

    ch_db_close(db); /* migrated file; warm SQLite's global state */
    oom_cycle(f->path, 0);
    /* Fail allocation 1, 2, ... of a whole cycle; stop after 50 cycles in
     * a row in which the injected failure no longer hit anything. */
    for (n = 1; n < 20000 && clean_runs < 50; n++) {
        before = ch_alloc_live_blocks();
        ch_alloc_fail_after(n);
        clean_runs = oom_cycle(f->path, n) == 0 ? clean_runs + 1 : 0;
        ch_alloc_fail_after(0);
        if (ch_alloc_live_blocks() != before)
            fail_msg("leak after failing allocation %d: %zu -> %zu blocks", n, before, ch_alloc_live_blocks());
    }
    assert_true(clean_runs == 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_assigns_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_appends_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_last_and_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_fields_one_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_in_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
