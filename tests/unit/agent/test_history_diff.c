/* Differential test of ch_context_from_rows: the history built from the
 * rows' shared message objects must be byte for byte the one the earlier
 * builder made (a new {role, content} object per row per turn, kept
 * below as old_from_rows), with the same seqs and size, for many random
 * transcripts (every role, compaction entries, assistant-first, dangling
 * tool calls, merges, unreadable rows); and neither building nor growing
 * a history may change what the cache holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "agent/internal.h"

/* ---- the builder as it was before rows kept their message ---- */

/* How often each path was taken, so the test proves it covered them. */
static unsigned cov_merge, cov_drop, cov_extend, cov_insert;

static bool old_has_result_for(const json_t *content, const char *id)
{
    const json_t *blk;
    size_t i;

    json_array_foreach(content, i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        const char *rid = json_string_value(json_object_get(blk, "tool_use_id"));
        if (t && !strcmp(t, "tool_result") && rid && !strcmp(rid, id))
            return true;
    }
    return false;
}

static bool old_close_dangling(json_t *msgs)
{
    bool changed = false;

    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i), *next, *blk, *missing;
        size_t j;

        if (strcmp(json_string_value(json_object_get(m, "role")), "assistant"))
            continue;
        next = json_array_get(msgs, i + 1);
        missing = json_array();
        json_array_foreach(json_object_get(m, "content"), j, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "type"));
            const char *id = json_string_value(json_object_get(blk, "id"));
            if (!t || strcmp(t, "tool_use") || !id)
                continue;
            if (next && old_has_result_for(json_object_get(next, "content"), id))
                continue;
            json_array_append_new(missing,
                                  json_pack("{s:s, s:s, s:s, s:b}", "type", "tool_result", "tool_use_id", id, "content",
                                            "not run: the earlier run stopped before this tool "
                                            "call completed",
                                            "is_error", 1));
        }
        if (json_array_size(missing) == 0) {
            json_decref(missing);
            continue;
        }
        changed = true;
        if (next && !strcmp(json_string_value(json_object_get(next, "role")), "user")) {
            cov_extend++;
            json_array_extend(missing, json_object_get(next, "content"));
            json_object_set_new(next, "content", missing);
        } else {
            cov_insert++;
            json_array_insert_new(msgs, i + 1, json_pack("{s:s, s:o}", "role", "user", "content", missing));
        }
    }
    return changed;
}

static size_t old_merged_bytes(size_t a, size_t b)
{
    if (a <= 2)
        return b;
    if (b <= 2)
        return a;
    return a + b - 1;
}

static json_t *old_from_rows(const struct ch_tc_row *rows, size_t n, int64_t **seqs_out, size_t *nseqs,
                             size_t *json_bytes)
{
    json_t *msgs = json_array(), *user = json_string("user"), *assistant = json_string("assistant");
    json_t *last = NULL;
    bool last_shared = false;
    int64_t *seqs = ch_calloc(n + 1, sizeof(*seqs));
    size_t *sizes = ch_calloc(n + 1, sizeof(*sizes));
    size_t ns = 0, total;

    for (size_t i = 0; i < n; i++) {
        const struct ch_tc_row *m = &rows[i];
        const char *role;

        if (!m->content)
            continue;
        if (!strcmp(m->role, "assistant"))
            role = "assistant";
        else if (!strcmp(m->role, "compaction") || !strcmp(m->role, "user") || !strcmp(m->role, "tool"))
            role = "user";
        else
            continue;
        if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
            json_t *lc = json_object_get(last, "content");
            if (last_shared) {
                lc = json_copy(lc);
                json_object_set_new(last, "content", lc);
                last_shared = false;
            }
            json_array_extend(lc, m->content);
            cov_merge++;
            sizes[ns - 1] = old_merged_bytes(sizes[ns - 1], m->json_bytes);
            continue;
        }
        last = json_object();
        json_array_append_new(msgs, last);
        json_object_set_nocheck(last, "role", role[0] == 'a' ? assistant : user);
        json_object_set_nocheck(last, "content", m->content);
        last_shared = true;
        seqs[ns] = m->seq;
        sizes[ns] = m->json_bytes;
        ns++;
    }
    while (json_array_size(msgs)) {
        json_t *first = json_array_get(msgs, 0);
        json_t *c0 = json_array_get(json_object_get(first, "content"), 0);
        const char *t = json_string_value(json_object_get(c0, "type"));
        if (strcmp(json_string_value(json_object_get(first, "role")), "assistant") && !(t && !strcmp(t, "tool_result")))
            break;
        json_array_remove(msgs, 0);
        cov_drop++;
        memmove(seqs, seqs + 1, (ns - 1) * sizeof(*seqs));
        memmove(sizes, sizes + 1, (ns - 1) * sizeof(*sizes));
        ns--;
    }
    if (old_close_dangling(msgs)) {
        total = ch_context_json_size(msgs);
    } else {
        total = 2 + (ns ? ns - 1 : 0);
        for (size_t i = 0; i < ns; i++)
            total +=
                ch_context_message_bytes(json_string_value(json_object_get(json_array_get(msgs, i), "role")), sizes[i]);
    }
    ch_free(sizes);
    json_decref(user);
    json_decref(assistant);
    *seqs_out = seqs;
    *nseqs = ns;
    *json_bytes = total;
    return msgs;
}

/* ---- random transcripts ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* As jansson's compact encoder writes them: the cache takes a stored
 * array's text as its encoding (its size is the text's). */
static const char *const texts[] = {"hi", "h\u00e9 \\\"q\\\" / \\n\\t", "", "a longer line of text, with commas"};

/* A stored row's text: what the agent writes, and what it may find. */
static char *row_text(const char *role, int64_t seq)
{
    const char *t = texts[pick(4)];
    unsigned id = pick(4); /* few ids, so results sometimes match calls */

    if (!strcmp(role, "compaction"))
        return ch_sprintf("[{\"type\":\"compaction\",\"summary\":\"%s\",\"first_kept_seq\":%lld}]", t, (long long)seq);
    switch (pick(12)) {
    case 0: return ch_strdup("not json");
    case 1: return ch_strdup("[]");
    case 2: return ch_sprintf("\"bare %s\"", t);
    case 3: return ch_strdup("{\"not\":\"an array\"}");
    case 4:
    case 5: return ch_sprintf("[{\"type\":\"tool_use\",\"id\":\"t%u\",\"name\":\"x\",\"input\":{\"a\":%u}}]", id, id);
    case 6:
        return ch_sprintf("[{\"type\":\"text\",\"text\":\"%s\"},{\"type\":\"tool_use\",\"id\":\"t%u\",\"name\":\"x\","
                          "\"input\":{}},{\"type\":\"tool_use\",\"id\":\"u%u\",\"name\":\"y\",\"input\":{}}]",
                          t, id, id);
    case 7: return ch_strdup("[{\"type\":\"tool_use\",\"name\":\"no id\",\"input\":{}}]");
    case 8:
    case 9: return ch_sprintf("[{\"type\":\"tool_result\",\"tool_use_id\":\"t%u\",\"content\":\"%s\"}]", id, t);
    default: return ch_sprintf("[{\"type\":\"text\",\"text\":\"%s\"}]", t);
    }
}

static const char *const roles[] = {"user", "assistant", "tool", "user", "assistant", "system", "compaction"};

static void add_row(struct ch_message_list *l, int64_t seq)
{
    struct ch_message_rec *m;

    l->items = ch_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    m = &l->items[l->count++];
    memset(m, 0, sizeof(*m));
    snprintf(m->role, sizeof(m->role), "%s", roles[pick(7)]);
    m->content = row_text(m->role, seq);
    m->seq = seq;
}

/* What the cache holds, to compare after the histories are done with. */
static char **snapshot(const struct ch_tc_entry *e)
{
    char **s = ch_calloc(2 * e->count + 1, sizeof(*s));

    for (size_t i = 0; i < e->count; i++) {
        s[2 * i] = e->rows[i].msg ? json_dumps(e->rows[i].msg, JSON_COMPACT) : NULL;
        s[2 * i + 1] = e->rows[i].content ? json_dumps(e->rows[i].content, JSON_COMPACT) : NULL;
    }
    return s;
}

static void snapshot_check(const struct ch_tc_entry *e, char **s)
{
    for (size_t i = 0; i < e->count; i++) {
        char *m = e->rows[i].msg ? json_dumps(e->rows[i].msg, JSON_COMPACT) : NULL;
        char *c = e->rows[i].content ? json_dumps(e->rows[i].content, JSON_COMPACT) : NULL;
        assert_true((m == NULL) == (s[2 * i] == NULL));
        assert_true((c == NULL) == (s[2 * i + 1] == NULL));
        if (m)
            assert_string_equal(m, s[2 * i]);
        if (c)
            assert_string_equal(c, s[2 * i + 1]);
        if (e->rows[i].msg) /* the message holds the row's own content */
            assert_ptr_equal(json_object_get(e->rows[i].msg, "content"), e->rows[i].content);
        ch_free(m);
        ch_free(c);
        ch_free(s[2 * i]);
        ch_free(s[2 * i + 1]);
    }
    ch_free(s);
}

static void compare_one(struct ch_tc_entry *e)
{
    int64_t *s_old, *s_new;
    size_t n_old, n_new, b_old, b_new;
    char **snap = snapshot(e), *d_old, *d_new;
    json_t *h_old = old_from_rows(e->rows, e->count, &s_old, &n_old, &b_old);
    json_t *h_new = ch_context_from_rows(e->rows, e->count, &s_new, &n_new, &b_new);
    struct ch_run r = {0};
    json_t *c;

    assert_non_null(h_new);
    d_old = json_dumps(h_old, JSON_COMPACT);
    d_new = json_dumps(h_new, JSON_COMPACT);
    assert_string_equal(d_new, d_old); /* the bytes a provider is given */
    assert_true(json_equal(h_new, h_old));
    assert_int_equal(n_new, n_old);
    assert_memory_equal(s_new, s_old, n_old * sizeof(*s_old));
    assert_int_equal(b_new, b_old);
    assert_int_equal(b_new, ch_context_json_size(h_new));

    /* The run grows its history (replies, tool results) and may compact it. */
    r.history = h_new;
    r.hist_bytes = b_new;
    c = json_pack("[{s:s, s:s}]", "type", "text", "text", "reply");
    ch_run_history_append(&r, json_pack("{s:s, s:O}", "role", "assistant", "content", c), "assistant",
                          ch_context_json_size(c));
    ch_run_history_append(&r, json_pack("{s:s, s:O}", "role", "user", "content", c), "user", 0);
    assert_int_equal(r.hist_bytes, ch_context_json_size(r.history));
    if (json_array_size(r.history) > 2)
        json_array_remove(r.history, 0);
    json_decref(c);
    snapshot_check(e, snap);

    /* Built again from the same rows: the same history as at first. */
    json_decref(r.history);
    ch_free(s_new);
    h_new = ch_context_from_rows(e->rows, e->count, &s_new, &n_new, &b_new);
    ch_free(d_new);
    d_new = json_dumps(h_new, JSON_COMPACT);
    assert_string_equal(d_new, d_old);

    ch_free(d_old);
    ch_free(d_new);
    ch_free(s_old);
    ch_free(s_new);
    json_decref(h_old);
    json_decref(h_new);
}

static void test_random_transcripts(void **state)
{
    (void)state;
    for (int round = 0; round < 3000; round++) {
        struct ch_message_list l = {0};
        struct ch_message_bounds b = {0};
        struct ch_tc_entry *e = ch_tc_entry_new("k", "sid");
        size_t n = pick(40), more = pick(4);
        int64_t seq = 1 + pick(5);

        for (size_t i = 0; i < n; i++)
            add_row(&l, seq++);
        if (n) {
            b.first_seq = l.items[0].seq;
            b.last_seq = l.items[n - 1].seq;
        }
        assert_int_equal(ch_tc_entry_fill(e, &l, &b), 0);
        compare_one(e);
        /* rows that arrive later, the way the agent appends them */
        for (size_t i = 0; i < more; i++) {
            const char *role = roles[pick(5)];
            char *text = row_text("user", seq);
            json_error_t jerr;
            json_t *content = json_loads(text, 0, &jerr);
            bool array = json_is_array(content);
            if (array) { /* the agent appends only arrays */
                assert_int_equal(ch_tc_entry_append(e, seq, seq, role, content, strlen(text), 0), 0);
                seq++;
            }
            json_decref(content);
            ch_free(text);
        }
        compare_one(e);
        ch_tc_entry_unref(e);
        ch_message_list_release(&l);
    }
    print_message("merges %u, openers dropped %u, results added to a turn %u, turns inserted %u\n", cov_merge, cov_drop,
                  cov_extend, cov_insert);
    assert_true(cov_merge > 100 && cov_drop > 100 && cov_extend > 100 && cov_insert > 100);
}

/* Rows of one text block skip jansson's parser: the tree must be the
 * parser's, and what the parser refuses must stay unreadable. */
static void test_text_rows_parse(void **state)
{
    static const char *const bits[] = {"a",
                                       " ",
                                       "\"",
                                       "\\",
                                       "\\n",
                                       "\\u00e9",
                                       "\\ud83d\\ude00",
                                       "\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x98\x80",
                                       "\x7f",
                                       "\x01",
                                       "\t",
                                       "\xc3",
                                       "\xff",
                                       "\xed\xa0\x80",
                                       "}]",
                                       "\"}]"};
    static const char *const heads[] = {"[{\"type\":\"text\",\"text\":\"", "[{\"type\": \"text\", \"text\": \"",
                                        "[{\"text\":\"", "[{\"type\":\"text\",\"text\":\"x\"},{\"text\":\""};
    static const char *const tails[] = {"\"}]", "\"} ]", "\"}", "\"}]x", "\",\"k\":1}]"};
    unsigned fast = 0, unreadable = 0;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        struct ch_message_list l = {0};
        struct ch_message_bounds b = {0};
        struct ch_tc_entry *e = ch_tc_entry_new("k", "sid");
        char text[512];
        size_t len;
        json_error_t jerr;
        json_t *want;

        len = (size_t)snprintf(text, sizeof(text), "%s", pick(4) ? heads[0] : heads[pick(4)]);
        for (unsigned k = pick(12); k; k--)
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", bits[pick(18)]);
        snprintf(text + len, sizeof(text) - len, "%s", pick(4) ? tails[0] : tails[pick(5)]);
        l.items = ch_calloc(1, sizeof(*l.items));
        l.count = 1;
        snprintf(l.items[0].role, sizeof(l.items[0].role), "%s", roles[pick(3)]);
        l.items[0].content = ch_strdup(text);
        l.items[0].seq = 1;
        assert_int_equal(ch_tc_entry_fill(e, &l, &b), 0);
        want = json_loads(text, 0, &jerr);
        if (!json_is_array(want)) {
            assert_null(e->rows[0].content);
            unreadable++;
        } else {
            char *d_want = json_dumps(want, JSON_COMPACT), *d_got;
            assert_non_null(e->rows[0].content);
            d_got = json_dumps(e->rows[0].content, JSON_COMPACT);
            assert_string_equal(d_got, d_want);
            assert_true(json_equal(e->rows[0].content, want));
            assert_int_equal(e->rows[0].json_bytes, strlen(text));
            fast += !strcmp(d_want, text);
            ch_free(d_want);
            ch_free(d_got);
        }
        json_decref(want);
        ch_tc_entry_unref(e);
        ch_message_list_release(&l);
    }
    print_message("rows in their compact form %u, unreadable %u\n", fast, unreadable);
    assert_true(fast > 1000 && unreadable > 1000);
}

/* ROW_OVERHEAD counts a row's message object: check what it costs. */
static void test_message_cost(void **state)
{
    json_t *role = json_string("user"), *content = json_array();
    size_t before = ch_alloc_live_bytes(), cost;
    json_t *msg = json_object();
    (void)state;
    json_object_set_nocheck(msg, "role", role);
    json_object_set_nocheck(msg, "content", content);
    cost = ch_alloc_live_bytes() - before;
    print_message("a row's message object: %zu bytes\n", cost);
    assert_true(cost <= 336);
    json_decref(msg);
    json_decref(role);
    json_decref(content);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_transcripts),
        cmocka_unit_test(test_text_rows_parse),
        cmocka_unit_test(test_message_cost),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
