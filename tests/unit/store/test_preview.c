/*
 * test_preview.c: sessions.preview (store/preview.c): text extraction from
 * string, block-array, object and tool-result content, tool calls as
 * "[tool: name]", compaction summaries, character (not byte) cuts, the
 * newest messages oldest first, a reset session, missing keys and bad
 * limits.
 */
#include "store_test.h"

struct fixture {
    struct tmpdir dir;
    char path[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "preview.db", f->path, sizeof(f->path));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

static void make_session(struct ch_db *db, const char *key, char sid[64])
{
    struct ch_session_rec s;

    assert_int_equal(ch_sessions_ensure(db, key, NULL, 1, &s, NULL), 0);
    snprintf(sid, 64, "%s", s.session_id);
    ch_session_rec_release(&s);
}

static int append(struct ch_db *db, const char *key, const char *sid, const char *role, const char *content)
{
    struct ch_message_rec m = {0};

    m.session_key = (char *)key;
    m.session_id = (char *)sid;
    snprintf(m.role, sizeof(m.role), "%s", role);
    m.content = (char *)content;
    m.created_ms = 1;
    return ch_messages_append(db, &m, NULL);
}

static void test_preview(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = db_open_or_fail(f->path, false, true);
    struct ch_preview_list p;
    char sid[64];

    assert_int_equal(ch_messages_preview(db, "hook:a", 5, 100, &p), CH_ENOTFOUND);
    assert_int_equal(p.count, 0);
    make_session(db, "hook:a", sid);
    assert_int_equal(ch_messages_preview(db, "hook:a", 5, 100, &p), 0);
    assert_int_equal(p.count, 0);
    ch_preview_list_release(&p);

    assert_int_equal(append(db, "hook:a", sid, "user", "\"plain text\""), 0);
    assert_int_equal(append(db, "hook:a", sid, "assistant",
                            "[{\"type\":\"text\",\"text\":\"line one\"},"
                            "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"web_fetch\",\"input\":{}},"
                            "{\"type\":\"text\",\"text\":\"line two\"}]"),
                     0);
    assert_int_equal(append(db, "hook:a", sid, "tool",
                            "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
                            "\"content\":[{\"type\":\"text\",\"text\":\"fetched\"},\"and more\"]}]"),
                     0);
    assert_int_equal(append(db, "hook:a", sid, "user", "[{\"type\":\"text\",\"text\":\"h\xc3\xa9llo\"}]"), 0);

    assert_int_equal(ch_messages_preview(db, "hook:a", 10, 1000, &p), 0);
    assert_int_equal(p.count, 4);
    assert_string_equal(p.items[0].role, "user");
    assert_string_equal(p.items[0].text, "plain text");
    assert_string_equal(p.items[1].role, "assistant");
    assert_string_equal(p.items[1].text, "line one\n[tool: web_fetch]\nline two");
    assert_string_equal(p.items[2].role, "tool");
    assert_string_equal(p.items[2].text, "fetched\nand more");
    assert_string_equal(p.items[3].text, "h\xc3\xa9llo");
    ch_preview_list_release(&p);
    ch_preview_list_release(&p); /* idempotent */

    /* The last two, oldest first; cut at characters, not bytes. */
    assert_int_equal(ch_messages_preview(db, "hook:a", 2, 2, &p), 0);
    assert_int_equal(p.count, 2);
    assert_string_equal(p.items[0].text, "fe");
    assert_string_equal(p.items[1].text, "h\xc3\xa9");
    ch_preview_list_release(&p);

    /* A reset session previews empty; the old transcript is not shown. */
    assert_int_equal(ch_sessions_reset(db, "hook:a", NULL, 2, NULL), 0);
    assert_int_equal(ch_messages_preview(db, "hook:a", 2, 20, &p), 0);
    assert_int_equal(p.count, 0);
    ch_preview_list_release(&p);

    assert_int_equal(ch_messages_preview(db, "hook:a", 0, 20, &p), CH_EINVAL);
    assert_int_equal(ch_messages_preview(db, "hook:a", 1001, 20, &p), CH_EINVAL);
    assert_int_equal(ch_messages_preview(db, "hook:a", 1, 0, &p), CH_EINVAL);
    assert_int_equal(ch_messages_preview(db, "", 1, 20, &p), CH_EINVAL);
    assert_int_equal(ch_messages_preview(db, "hook:a", 1, 20, NULL), CH_EINVAL);
    ch_db_close(db);
}

static void test_preview_compaction_and_odd_content(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = db_open_or_fail(f->path, false, true);
    struct ch_compaction c = {0};
    struct ch_preview_list p;
    char sid[64];

    make_session(db, "hook:c", sid);
    assert_int_equal(append(db, "hook:c", sid, "user", "[{\"type\":\"text\",\"text\":\"old\"}]"), 0);
    assert_int_equal(append(db, "hook:c", sid, "user", "[{\"type\":\"text\",\"text\":\"\"},1,null,[\"x\"]]"), 0);
    assert_int_equal(append(db, "hook:c", sid, "system", "{\"type\":\"text\",\"text\":\"obj\"}"), 0);
    assert_int_equal(append(db, "hook:c", sid, "assistant", "42"), 0);
    c.session_key = "hook:c";
    c.session_id = sid;
    c.first_kept_seq = 2;
    c.summary = "Earlier: the user said \"old\".";
    assert_int_equal(ch_messages_compact(db, &c, NULL, NULL), 0);

    assert_int_equal(ch_messages_preview(db, "hook:c", 10, 100, &p), 0);
    assert_int_equal(p.count, 4);
    assert_string_equal(p.items[0].role, "compaction");
    assert_string_equal(p.items[0].text, "Earlier: the user said \"old\".");
    assert_string_equal(p.items[1].text, ""); /* no text blocks: empty, not an error */
    assert_string_equal(p.items[2].text, "obj");
    assert_string_equal(p.items[3].text, "");
    ch_preview_list_release(&p);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_preview, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preview_compaction_and_odd_content, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
