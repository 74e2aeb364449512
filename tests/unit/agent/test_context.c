/* Unit tests for agent/context.c: transcript rows to provider-neutral
 * messages, token estimates, and where compaction cuts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "agent/internal.h"

static void add_row(struct ch_message_list *l, const char *role, const char *content, int64_t seq)
{
    struct ch_message_rec *m;
    l->items = ch_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    m = &l->items[l->count++];
    memset(m, 0, sizeof(*m));
    snprintf(m->role, sizeof(m->role), "%s", role);
    m->content = ch_strdup(content);
    m->seq = seq;
}

static const char *role_at(const json_t *msgs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(msgs, i), "role"));
}

static void test_roles_and_merging(void **state)
{
    struct ch_message_list l = {0};
    int64_t *seqs;
    size_t ns;
    json_t *m;
    (void)state;
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"hi\"}]", 1);
    add_row(&l, "assistant", "[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"current_time\",\"input\":{}}]", 2);
    add_row(&l, "tool", "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"now\"}]", 3);
    add_row(&l, "assistant", "[{\"type\":\"text\",\"text\":\"it is now\"}]", 4);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"a\"}]", 5);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"b\"}]", 6); /* merged with the previous */
    add_row(&l, "system", "[{\"type\":\"text\",\"text\":\"ignored\"}]", 7);
    add_row(&l, "user", "not json", 8); /* skipped, not fatal */
    m = ch_context_from_transcript(&l, &seqs, &ns);
    assert_non_null(m);
    assert_int_equal(json_array_size(m), 5);
    assert_int_equal(ns, 5);
    assert_string_equal(role_at(m, 0), "user");
    assert_string_equal(role_at(m, 1), "assistant");
    assert_string_equal(role_at(m, 2), "user"); /* tool results travel as a user turn */
    assert_string_equal(role_at(m, 3), "assistant");
    assert_string_equal(role_at(m, 4), "user");
    assert_int_equal(json_array_size(json_object_get(json_array_get(m, 4), "content")), 2);
    assert_int_equal(seqs[2], 3);
    assert_int_equal(seqs[4], 5);
    json_decref(m);
    ch_free(seqs);
    ch_message_list_release(&l);
}

static void test_compaction_row_and_leading_assistant(void **state)
{
    struct ch_message_list l = {0};
    int64_t *seqs;
    size_t ns;
    json_t *m;
    const char *text;
    (void)state;
    add_row(&l, "assistant", "[{\"type\":\"text\",\"text\":\"orphan\"}]", 3);
    add_row(&l, "compaction", "[{\"type\":\"compaction\",\"summary\":\"they met\",\"first_kept_seq\":5}]", 4);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"next\"}]", 5);
    m = ch_context_from_transcript(&l, &seqs, &ns);
    /* the leading assistant turn is dropped; the summary and the user turn merge */
    assert_int_equal(json_array_size(m), 1);
    text =
        json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(m, 0), "content"), 0), "text"));
    assert_non_null(strstr(text, "they met"));
    assert_int_equal(seqs[0], 4);
    json_decref(m);
    ch_free(seqs);
    ch_message_list_release(&l);
}

static void test_dangling_tool_call_gets_a_result(void **state)
{
    struct ch_message_list l = {0};
    int64_t *seqs;
    size_t ns;
    json_t *m, *c;
    (void)state;
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"loop\"}]", 1);
    add_row(&l, "assistant", "[{\"type\":\"tool_use\",\"id\":\"t9\",\"name\":\"x\",\"input\":{}}]", 2);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"next run\"}]", 3); /* the run stopped before the result */
    m = ch_context_from_transcript(&l, &seqs, &ns);
    assert_int_equal(json_array_size(m), 3);
    c = json_object_get(json_array_get(m, 2), "content");
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "type")), "tool_result");
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "tool_use_id")), "t9");
    assert_true(json_is_true(json_object_get(json_array_get(c, 0), "is_error")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "text")), "next run");
    json_decref(m);
    ch_free(seqs);
    ch_message_list_release(&l);
}

static void test_estimate_and_split(void **state)
{
    struct ch_agent a = {0};
    json_t *msgs = json_array();
    char big[4001];
    (void)state;
    memset(big, 'x', 4000);
    big[4000] = '\0';
    for (int i = 0; i < 10; i++) {
        json_array_append_new(msgs, json_pack("{s:s, s:[{s:s, s:s}]}", "role", i % 2 ? "assistant" : "user", "content",
                                              "type", "text", "text", big));
    }
    assert_true(ch_context_estimate_tokens("sys", msgs, NULL) >= 10000);
    a.compaction_keep = 4;
    /* keep the newest 4 turns, cut lands on a user turn */
    assert_int_equal(ch_context_compaction_split(&a, msgs, 1000), 6);
    a.compaction_keep = 20;
    assert_int_equal(ch_context_compaction_split(&a, msgs, 1000), -1);
    json_decref(msgs);
}

static void test_split_never_between_call_and_result(void **state)
{
    struct ch_agent a = {.compaction_keep = 2};
    json_t *msgs = json_array();
    (void)state;
    json_array_append_new(msgs,
                          json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type", "text", "text", "q"));
    json_array_append_new(msgs, json_pack("{s:s, s:[{s:s, s:s, s:s, s:{}}]}", "role", "assistant", "content", "type",
                                          "tool_use", "id", "t", "name", "x", "input"));
    json_array_append_new(msgs, json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "role", "user", "content", "type",
                                          "tool_result", "tool_use_id", "t", "content", "r"));
    json_array_append_new(
        msgs, json_pack("{s:s, s:[{s:s, s:s}]}", "role", "assistant", "content", "type", "text", "text", "a"));
    /* newest 2 kept would cut at index 2, a tool result: it moves back to 0, which is no cut */
    assert_int_equal(ch_context_compaction_split(&a, msgs, 10), -1);
    json_decref(msgs);
}

static void test_transcript_text_cap(void **state)
{
    json_t *msgs =
        json_pack("[{s:s, s:[{s:s, s:s}]}, {s:s, s:[{s:s, s:s}]}]", "role", "user", "content", "type", "text", "text",
                  "hello there", "role", "assistant", "content", "type", "text", "text", "general kenobi");
    char *t = ch_context_transcript_text(msgs, 2, 4096);
    (void)state;
    assert_non_null(strstr(t, "user: hello there"));
    assert_non_null(strstr(t, "assistant: general kenobi"));
    ch_free(t);
    t = ch_context_transcript_text(msgs, 1, 4096);
    assert_null(strstr(t, "kenobi"));
    ch_free(t);
    t = ch_context_transcript_text(msgs, 2, 10);
    assert_true(strlen(t) <= 10);
    ch_free(t);
    json_decref(msgs);
}

/* The user message's tree is built from the message, and its stored text
 * taken as its compact size: both must be what parsing the stored text
 * back and encoding it again (the former path) gives, byte for byte. */
static void check_user_content(const char *msg)
{
    char *text = ch_context_user_content(msg), *dumped;
    json_t *built = ch_context_user_content_json(msg), *parsed;
    json_error_t jerr;

    assert_non_null(text);
    assert_non_null(built);
    parsed = json_loads(text, 0, &jerr);
    assert_non_null(parsed);
    assert_true(json_equal(parsed, built));
    assert_int_equal(json_dumpb(parsed, NULL, 0, JSON_COMPACT), strlen(text));
    assert_int_equal(json_dumpb(built, NULL, 0, JSON_COMPACT), strlen(text));
    dumped = json_dumps(built, JSON_COMPACT);
    assert_string_equal(dumped, text);
    ch_free(dumped); /* jansson allocates with ch_malloc */
    json_decref(parsed);
    json_decref(built);
    ch_free(text);
}

static void test_user_content_tree_matches_stored_text(void **state)
{
    static const char *const fixed[] = {
        "hi",
        "\"quoted\" \\ back/slash",
        "tab\there\r\nnew\bline\fform",
        "\x01\x02\x1f\x7f end",
        "caf\xc3\xa9 \xe2\x80\xa8 \xe2\x80\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbf",
        "</script>",
        " ",
    };
    char big[2300], ctl[40];
    unsigned x = 12345;
    (void)state;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        check_user_content(fixed[i]);
    for (int c = 1; c < 32; c++) {
        snprintf(ctl, sizeof(ctl), "a%cb", c);
        check_user_content(ctl);
    }
    /* A hook-sized message of plain text, escapes and multi-byte runs. */
    for (int round = 0; round < 50; round++) {
        size_t n = 0;
        while (n < sizeof(big) - 8) {
            x = x * 1103515245u + 12345u;
            switch ((x >> 16) % 8) {
            case 0: big[n++] = "\"\\\n\t\r\b\f\x01"[(x >> 8) % 8]; break;
            case 1: memcpy(big + n, "\xc3\xa9", 2), n += 2; break;
            case 2: memcpy(big + n, "\xe2\x82\xac", 3), n += 3; break;
            case 3: memcpy(big + n, "\xf0\x9f\x98\x80", 4), n += 4; break;
            default: big[n++] = (char)(0x20 + (x >> 8) % 95);
            }
        }
        big[n] = 0;
        check_user_content(big);
    }
    /* Not UTF-8: no tree, as the stored text would not parse either. */
    assert_null(ch_context_user_content_json("bad \xc3("));
    {
        char *text = ch_context_user_content("bad \xc3(");
        json_error_t jerr;
        assert_null(json_loads(text, 0, &jerr));
        ch_free(text);
    }
}

/* ch_persist_content_text writes a lone ASCII text block itself: every
 * tree must come out as json_dumps writes it (NULL where it refuses). */
static void check_content_text(json_t *content /* stolen */)
{
    char *want = json_dumps(content, JSON_COMPACT), *got = ch_persist_content_text(content);

    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
    ch_free(want);
    ch_free(got);
    json_decref(content);
}

static void test_content_text_matches_json_dumps(void **state)
{
    static const char nul_text[] = "before\0after", nul_type[] = "text\0x";
    char big[3000];
    unsigned x = 99;
    json_t *o;
    (void)state;

    check_content_text(json_pack("[{s:s, s:s}]", "type", "text", "text", "plain"));
    check_content_text(json_pack("[{s:s, s:s}]", "type", "text", "text", ""));
    check_content_text(json_pack("[{s:s, s:s}]", "type", "text", "text", "\"q\" \\ / \t\r\n\b\f \x01\x1f\x7f"));
    check_content_text(json_pack("[{s:s, s:s#}]", "type", "text", "text", nul_text, (int)sizeof(nul_text) - 1));
    check_content_text(json_pack("[{s:s, s:s}]", "type", "text", "text", "caf\xc3\xa9 \xf0\x9f\x98\x80"));
    check_content_text(json_pack("[{s:s, s:s}]", "text", "swapped", "type", "text"));
    check_content_text(json_pack("[{s:s, s:s, s:i}]", "type", "text", "text", "extra", "n", 1));
    check_content_text(json_pack("[{s:s, s:s}]", "type", "tool_use", "text", "other type"));
    check_content_text(json_pack("[{s:s#, s:s}]", "type", nul_type, (int)sizeof(nul_type) - 1, "text", "t"));
    check_content_text(json_pack("[{s:s, s:i}]", "type", "text", "text", 5));
    check_content_text(json_pack("[{s:s, s:s}, {s:s, s:s}]", "type", "text", "text", "a", "type", "text", "text", "b"));
    check_content_text(json_pack("[{s:s, s:{s:s}}]", "type", "tool_result", "content", "k", "v"));
    check_content_text(json_array());
    check_content_text(json_pack("{s:s}", "type", "text"));
    o = json_object();
    json_object_setn_new(o, "type", 4, json_string("text"));
    json_object_setn_new(o, "text\0z", 6, json_string("key with a NUL"));
    check_content_text(json_pack("[o]", o));
    check_content_text(json_pack("[{s:s, s:o}]", "type", "text", "text", json_stringn_nocheck("bad \xc3(", 6)));
    for (int round = 0; round < 50; round++) {
        size_t n = 0;
        while (n < sizeof(big) - 1) {
            x = x * 1103515245u + 12345u;
            big[n++] = (x >> 16) % 4 == 0 ? "\"\\\n\t\r\b\f\x01\x7f/"[(x >> 8) % 10] : (char)(0x20 + (x >> 8) % 95);
        }
        big[n] = 0;
        check_content_text(json_pack("[{s:s, s:s}]", "type", "text", "text", big));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_and_merging),
        cmocka_unit_test(test_compaction_row_and_leading_assistant),
        cmocka_unit_test(test_dangling_tool_call_gets_a_result),
        cmocka_unit_test(test_estimate_and_split),
        cmocka_unit_test(test_split_never_between_call_and_result),
        cmocka_unit_test(test_transcript_text_cap),
        cmocka_unit_test(test_user_content_tree_matches_stored_text),
        cmocka_unit_test(test_content_text_matches_json_dumps),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
