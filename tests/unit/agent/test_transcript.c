/* Unit tests for agent/transcript.c (the transcript cache) and the parts of
 * context.c and run_llm.c it feeds: histories built from cached rows, their
 * size known without encoding them, shared content never changed, the LRU
 * bounded by bytes, the 400-row window and the seq-gap check. */
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

static struct ch_tc_entry *entry_of(struct ch_message_list *l, const char *key)
{
    struct ch_message_bounds b = {0};
    struct ch_tc_entry *e = ch_tc_entry_new(key, "sid");

    assert_non_null(e);
    if (l->count) {
        b.first_seq = l->items[0].seq;
        b.last_seq = l->items[l->count - 1].seq;
    }
    assert_int_equal(ch_tc_entry_fill(e, l, &b), 0);
    return e;
}

/* Build the history from e and check the size it reports is exact. */
static json_t *history_checked(struct ch_tc_entry *e)
{
    int64_t *seqs;
    size_t ns, bytes;
    json_t *m = ch_context_from_rows(e->rows, e->count, &seqs, &ns, &bytes);

    assert_non_null(m);
    assert_int_equal(bytes, ch_context_json_size(m));
    ch_free(seqs);
    return m;
}

static void test_sizes_exact(void **state)
{
    struct ch_message_list l = {0}, l2 = {0}, l3 = {0}, l4 = {0};
    struct ch_tc_entry *e;
    (void)state;
    /* stored texts as the agent writes them: jansson's compact encoding */
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"h\u00c3\u00a9 / \\\"q\\\"\"}]", 1);
    add_row(&l, "assistant", "[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"x\",\"input\":{\"a\":1}}]", 2);
    add_row(&l, "tool", "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"now\"}]", 3);
    add_row(&l, "user", "[]", 4); /* an empty array merges into nothing */
    add_row(&l, "user", "\"bare string\"", 5);
    add_row(&l, "system", "[{\"type\":\"text\",\"text\":\"ignored\"}]", 6);
    add_row(&l, "assistant", "[{\"type\":\"text\",\"text\":\"ok\"}]", 7);
    add_row(&l, "user", "not json", 8);
    e = entry_of(&l, "a");
    json_decref(history_checked(e));
    ch_tc_entry_unref(e);

    /* compaction row, leading assistant dropped */
    add_row(&l2, "assistant", "[{\"type\":\"text\",\"text\":\"orphan\"}]", 3);
    add_row(&l2, "compaction", "[{\"type\":\"compaction\",\"summary\":\"they met\",\"first_kept_seq\":5}]", 4);
    add_row(&l2, "user", "[{\"type\":\"text\",\"text\":\"next\"}]", 5);
    e = entry_of(&l2, "b");
    json_decref(history_checked(e));
    ch_tc_entry_unref(e);

    /* a dangling tool call gets a result (the size is measured then) */
    add_row(&l3, "user", "[{\"type\":\"text\",\"text\":\"loop\"}]", 1);
    add_row(&l3, "assistant", "[{\"type\":\"tool_use\",\"id\":\"t9\",\"name\":\"x\",\"input\":{}}]", 2);
    e = entry_of(&l3, "c");
    json_decref(history_checked(e));
    ch_tc_entry_unref(e);

    /* nothing at all */
    e = entry_of(&l4, "d");
    json_decref(history_checked(e));
    ch_tc_entry_unref(e);

    ch_message_list_release(&l);
    ch_message_list_release(&l2);
    ch_message_list_release(&l3);
}

static void test_shared_content_unchanged(void **state)
{
    struct ch_message_list l = {0};
    struct ch_tc_entry *e;
    json_t *m1, *m2;
    (void)state;
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"a\"}]", 1);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"b\"}]", 2);
    add_row(&l, "assistant", "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"x\",\"input\":{}}]", 3);
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"c\"}]", 4); /* gets the missing tool_result */
    e = entry_of(&l, "k");
    m1 = history_checked(e);
    m2 = history_checked(e); /* built again from the same rows: same result */
    assert_true(json_equal(m1, m2));
    assert_int_equal(json_array_size(json_object_get(json_array_get(m1, 0), "content")), 2);
    /* the rows still hold one block each */
    for (size_t i = 0; i < e->count; i++)
        assert_int_equal(json_array_size(e->rows[i].content), 1);
    json_decref(m1);
    json_decref(m2);
    ch_tc_entry_unref(e);
    ch_message_list_release(&l);
}

static void test_lru_by_bytes(void **state)
{
    struct ch_message_list l = {0};
    struct ch_tcache c;
    struct ch_tc_entry *e[4];
    char key[8];
    size_t one;
    (void)state;
    add_row(&l, "user", "[{\"type\":\"text\",\"text\":\"hello\"}]", 1);
    e[0] = entry_of(&l, "k0");
    one = e[0]->cost;
    ch_tc_entry_unref(e[0]);

    ch_tcache_init(&c, 3 * one + one / 2); /* room for three */
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        e[i] = entry_of(&l, key);
        ch_tcache_put(&c, e[i]);
        if (i == 2)
            assert_ptr_equal(ch_tcache_get(&c, "k0"), e[0]); /* k0 now most recent */
    }
    assert_true(c.bytes <= c.max_bytes);
    assert_ptr_equal(ch_tcache_get(&c, "k0"), e[0]);
    assert_null(ch_tcache_get(&c, "k1")); /* least recently used: evicted */
    assert_ptr_equal(ch_tcache_get(&c, "k3"), e[3]);
    /* an evicted entry still held by its user stays valid */
    assert_int_equal(e[1]->count, 1);
    ch_tcache_drop(&c, e[3]);
    assert_null(ch_tcache_get(&c, "k3"));
    ch_tcache_set_max(&c, 0); /* disabled: everything goes */
    assert_int_equal(c.bytes, 0);
    assert_null(ch_tcache_get(&c, "k0"));
    ch_tcache_put(&c, e[0]);
    assert_null(ch_tcache_get(&c, "k0"));
    for (int i = 0; i < 4; i++)
        ch_tc_entry_unref(e[i]);
    ch_tcache_release(&c);
    ch_message_list_release(&l);
}

static void test_window_and_gaps(void **state)
{
    struct ch_message_list l = {0};
    struct ch_tcache c;
    struct ch_tc_entry *e;
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text", "x");
    size_t before;
    (void)state;
    ch_tcache_init(&c, 64 << 20);
    e = entry_of(&l, "w");
    ch_tcache_put(&c, e);
    for (int64_t s = 1; s <= CH_TRANSCRIPT_MAX_ROWS + 50; s++)
        assert_int_equal(ch_tc_entry_append(e, s, 100 + s, s % 2 ? "user" : "assistant", content, 30, 0), 0);
    assert_int_equal(e->count, CH_TRANSCRIPT_MAX_ROWS);
    assert_int_equal(e->rows[0].seq, 51);     /* what ch_messages_load_last(400) gives */
    assert_int_equal(e->bounds.first_seq, 1); /* the store's ends, not the window's */
    assert_int_equal(e->bounds.last_seq, CH_TRANSCRIPT_MAX_ROWS + 50);
    assert_int_equal(c.bytes, e->cost);
    before = e->count;
    /* Another writer got a row in: the next seq does not follow. */
    assert_int_equal(ch_tc_entry_append(e, CH_TRANSCRIPT_MAX_ROWS + 52, 1, "user", content, 30, 0), CH_ESTATE);
    assert_int_equal(e->count, before);
    ch_tc_entry_unref(e);
    ch_tcache_release(&c);
    json_decref(content);
}

static void test_history_append_bytes(void **state)
{
    struct ch_run r = {0};
    json_t *c = json_pack("[{s:s, s:s}]", "type", "text", "text", "r\u00e9ponse");
    size_t cb = ch_context_json_size(c);
    (void)state;
    r.history = json_array();
    r.hist_bytes = ch_context_json_size(r.history);
    ch_run_history_append(&r, json_pack("{s:s, s:O}", "role", "assistant", "content", c), "assistant", cb);
    assert_int_equal(r.hist_bytes, ch_context_json_size(r.history));
    ch_run_history_append(&r, json_pack("{s:s, s:O}", "role", "user", "content", c), "user", cb);
    assert_int_equal(r.hist_bytes, ch_context_json_size(r.history));
    ch_run_history_append(&r, json_pack("{s:s, s:O}", "role", "user", "content", c), "user", 0); /* unknown: measured */
    assert_int_equal(r.hist_bytes, ch_context_json_size(r.history));
    assert_int_equal(ch_context_estimate_bytes(3, r.hist_bytes, 0), ch_context_estimate_tokens("sys", r.history, NULL));
    json_decref(r.history);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_exact),          cmocka_unit_test(test_shared_content_unchanged),
        cmocka_unit_test(test_lru_by_bytes),         cmocka_unit_test(test_window_and_gaps),
        cmocka_unit_test(test_history_append_bytes),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
