/*
 * test_json5.c: the JSON5 parser.  Case directories under
 * tests/unit/data/json5/<case>/{input,expect}: `expect` is either the
 * compact, key-sorted JSON of the result, or "error LINE COL" and a
 * message substring on the next line.  Around them: every prefix of a
 * sample (no crash, clean error), byte mutations, the allocation-failure
 * loop, caps, and the position table.  Run from the repository root.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "config_test.h"

#define CASES "tests/unit/data/json5"
#define SAMPLE CASES "/ok-kitchen-sink/input"
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

static void set_case_env(void)
{
    setenv("CH_J5_NAME", "world", 1);
    setenv("CH_J5_EMPTY", "", 1);
    unsetenv("CH_J5_UNSET");
}

/* Run one case; returns 0 when it passes, printing why it did not. */
static int run_case(const char *name)
{
    char path[512], *input, *expect, *got = NULL, *nl;
    size_t in_len, ex_len;
    struct ch_json5_doc doc;
    struct ch_error err;
    int rc, fails = 0, line, col;

    snprintf(path, sizeof(path), CASES "/%s/input", name);
    input = slurp(path, &in_len);
    snprintf(path, sizeof(path), CASES "/%s/expect", name);
    expect = slurp(path, &ex_len);
    if (!input || !expect) {
        printf("  %s: missing input or expect\n", name);
        fails = 1;
        goto out;
    }
    while (ex_len && (expect[ex_len - 1] == '\n' || expect[ex_len - 1] == '\r'))
        expect[--ex_len] = '\0';
    rc = ch_json5_parse(input, in_len, true, &doc, &err);
    if (!strncmp(expect, "error ", 6)) {
        nl = strchr(expect, '\n');
        if (sscanf(expect + 6, "%d %d", &line, &col) != 2 || !nl) {
            printf("  %s: malformed expect\n", name);
            fails = 1;
        } else if (rc != CH_EINVAL) {
            printf("  %s: expected an error, got rc=%d\n", name, rc);
            fails = 1;
        } else if (err.line != line || err.column != col || !strstr(err.msg, nl + 1) || err.code != CH_EINVAL ||
                   doc.root || doc.pos) {
            printf("  %s: expected %d:%d '%s', got %d:%d '%s'\n", name, line, col, nl + 1, err.line, err.column,
                   err.msg);
            fails = 1;
        }
    } else if (rc != 0) {
        printf("  %s: unexpected error %s\n", name, err.msg);
        fails = 1;
    } else {
        got = json_dumps(doc.root, DUMP_FLAGS);
        if (!got || strcmp(got, expect)) {
            printf("  %s:\n    expected %s\n    got      %s\n", name, expect, got ? got : "?");
            fails = 1;
        }
        ch_json5_doc_release(&doc);
    }
out:
    ch_free(got);
    ch_free(input);
    ch_free(expect);
    return fails;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_case_directories(void **state)
{
    DIR *d = opendir(CASES);
    struct dirent *e;
    char *names[512];
    size_t n = 0, ok = 0, bad = 0;
    int fails = 0;
    size_t live = ch_alloc_live_blocks();

    (void)state;
    assert_non_null(d);
    set_case_env();
    while ((e = readdir(d)) && n < CH_ARRAY_SIZE(names))
        if (e->d_name[0] != '.')
            names[n++] = ch_strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t k = 0; k < n; k++) {
        fails += run_case(names[k]);
        if (!strncmp(names[k], "ok-", 3))
            ok++;
        else
            bad++;
        ch_free(names[k]);
    }
    printf("  %zu cases (%zu valid, %zu invalid), %d failed\n", n, ok, bad, fails);
    assert_true(n >= 40);
    assert_true(ok >= 20 && bad >= 20);
    assert_int_equal(fails, 0);
    assert_int_equal(ch_alloc_live_blocks(), live);
}

/* Every prefix of the sample: a clean result or a positioned error. */
static void test_every_truncation(void **state)
{
    size_t len, live = ch_alloc_live_blocks(), errors = 0;
    char *text = slurp(SAMPLE, &len);
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    assert_non_null(text);
    set_case_env();
    for (size_t n = 0; n <= len; n++) {
        char *copy = ch_malloc(n ? n : 1); /* exact size so ASan sees overreads */
        int rc;

        assert_non_null(copy);
        memcpy(copy, text, n);
        rc = ch_json5_parse(copy, n, true, &doc, &err);
        if (rc == 0) {
            ch_json5_doc_release(&doc);
        } else {
            assert_int_equal(rc, CH_EINVAL);
            assert_true(err.line >= 1 && err.column >= 1);
            assert_true(err.offset <= n);
            assert_non_null(strstr(err.msg, "line "));
            errors++;
        }
        ch_free(copy);
    }
    /* Only the full text (and the prefix before its trailing newline) parse. */
    assert_true(errors >= len - 1);
    ch_free(text);
    assert_int_equal(ch_alloc_live_blocks(), live);
}

/* Each byte replaced by troublesome ones: never a crash or a leak. */
static void test_byte_mutations(void **state)
{
    static const unsigned char subs[] = {0x00, '"', '\'', '{', ']', ',', '\\', 0xFF, 0xE2, '/', '*', '\n'};
    size_t len, live = ch_alloc_live_blocks();
    char *text = slurp(SAMPLE, &len);
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    assert_non_null(text);
    set_case_env();
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subs); k++) {
            char *copy = ch_malloc(len);
            int rc;

            memcpy(copy, text, len);
            copy[i] = (char)subs[k];
            rc = ch_json5_parse(copy, len, true, &doc, &err);
            assert_true(rc == 0 || rc == CH_EINVAL);
            if (rc == 0)
                ch_json5_doc_release(&doc);
            ch_free(copy);
        }
    }
    ch_free(text);
    assert_int_equal(ch_alloc_live_blocks(), live);
}

/* Fail allocation 1, 2, 3... until the parse succeeds: each failure is a
 * clean CH_ENOMEM that leaves nothing allocated. */
static void test_allocation_failures(void **state)
{
    size_t len, live;
    char *text = slurp(SAMPLE, &len);
    struct ch_json5_doc doc;
    struct ch_error err;
    long n;
    int rc = -1;

    (void)state;
    assert_non_null(text);
    set_case_env();
    live = ch_alloc_live_blocks();
    for (n = 1; n < 100000; n++) {
        ch_alloc_fail_after(n);
        rc = ch_json5_parse(text, len, true, &doc, &err);
        ch_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, CH_ENOMEM);
        assert_int_equal(err.code, CH_ENOMEM);
        assert_null(doc.root);
        assert_int_equal(ch_alloc_live_blocks(), live);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 10); /* the loop really exercised failures */
    ch_json5_doc_release(&doc);
    ch_free(text);
}

static void test_positions(void **state)
{
    static const char text[] = "{\n"
                               "  a: 1,\n"
                               "  'b': [true, null,\n"
                               "        'x'],\n"
                               "  c: { d: false },\n"
                               "}";
    struct ch_json5_doc doc;
    struct ch_error err;
    json_t *b, *c;
    int line, col;

    (void)state;
    assert_int_equal(ch_json5_parse(text, strlen(text), false, &doc, &err), 0);
    ch_json5_doc_pos(&doc, doc.root, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    ch_json5_doc_pos(&doc, json_object_get(doc.root, "a"), &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 6);
    ch_json5_doc_key_pos(&doc, doc.root, "b", &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 3);
    b = json_object_get(doc.root, "b");
    ch_json5_doc_pos(&doc, b, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 8);
    /* true/null are shared singletons: by value they are unknown... */
    ch_json5_doc_pos(&doc, json_array_get(b, 0), &line, &col);
    assert_int_equal(line, 0);
    /* ...but through the parent they are found. */
    ch_json5_doc_child_pos(&doc, b, NULL, 1, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 15);
    ch_json5_doc_child_pos(&doc, b, NULL, 2, &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 9);
    c = json_object_get(doc.root, "c");
    ch_json5_doc_child_pos(&doc, c, "d", 0, &line, &col);
    assert_int_equal(line, 5);
    assert_int_equal(col, 11);
    ch_json5_doc_key_pos(&doc, c, "d", &line, &col);
    assert_int_equal(line, 5);
    assert_int_equal(col, 8);
    /* Unknown lookups give 0:0. */
    ch_json5_doc_child_pos(&doc, c, "zz", 0, &line, &col);
    assert_int_equal(line, 0);
    ch_json5_doc_child_pos(&doc, b, NULL, 3, &line, &col);
    assert_int_equal(line, 0);
    ch_json5_doc_key_pos(&doc, b, NULL, &line, &col);
    assert_int_equal(line, 0);
    ch_json5_doc_pos(NULL, doc.root, &line, &col);
    assert_int_equal(col, 0);
    /* The table owns its key names: editing the tree leaves lookups safe. */
    assert_int_equal(json_object_del(doc.root, "b"), 0);
    assert_int_equal(json_object_del(doc.root, "a"), 0);
    ch_json5_doc_key_pos(&doc, c, "d", &line, &col);
    assert_int_equal(line, 5);
    ch_json5_doc_key_pos(&doc, doc.root, "c", &line, &col);
    assert_int_equal(line, 5);
    assert_int_equal(col, 3);
    ch_json5_doc_release(&doc);
    ch_json5_doc_release(&doc); /* idempotent */
    ch_json5_doc_release(NULL);
}

static void test_input_cap(void **state)
{
    size_t n = CH_JSON5_MAX_INPUT;
    char *big = ch_malloc(n + 1);
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    assert_non_null(big);
    /* Exactly at the cap: one long string parses. */
    memset(big, 'a', n + 1);
    big[0] = '"';
    big[n - 1] = '"';
    assert_int_equal(ch_json5_parse(big, n, false, &doc, &err), 0);
    assert_int_equal(json_string_length(doc.root), n - 2);
    ch_json5_doc_release(&doc);
    /* One byte more is refused before any work. */
    big[n] = ' ';
    assert_int_equal(ch_json5_parse(big, n + 1, false, &doc, &err), CH_E_TOO_LARGE);
    assert_int_equal(err.code, CH_E_TOO_LARGE);
    assert_non_null(strstr(err.msg, "4 MiB"));
    assert_null(doc.root);
    ch_free(big);
}

static void test_depth_cap_objects(void **state)
{
    struct ch_buf b;
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    for (int depth = 63; depth <= 66; depth++) {
        ch_buf_init(&b, 4096);
        for (int k = 0; k < depth; k++)
            assert_int_equal(ch_buf_append_str(&b, "{a:"), 0);
        assert_int_equal(ch_buf_append_str(&b, "1"), 0);
        for (int k = 0; k < depth; k++)
            assert_int_equal(ch_buf_append_str(&b, "}"), 0);
        if (depth <= CH_JSON5_MAX_DEPTH) {
            assert_int_equal(ch_json5_parse(b.data, b.len, false, &doc, &err), 0);
            ch_json5_doc_release(&doc);
        } else {
            assert_int_equal(ch_json5_parse(b.data, b.len, false, &doc, &err), CH_EINVAL);
            assert_non_null(strstr(err.msg, "nesting deeper than 64"));
            assert_int_equal(err.column, 3 * 64 + 1);
        }
        ch_buf_release(&b);
    }
}

/* Many references to a large variable hit the substitution cap. */
static void test_substitution_cap(void **state)
{
    size_t vlen = 1u << 20;
    char *val = ch_malloc(vlen + 1);
    struct ch_buf b;
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    memset(val, 'v', vlen);
    val[vlen] = '\0';
    setenv("CH_J5_BIG", val, 1);
    ch_buf_init(&b, 4096);
    assert_int_equal(ch_buf_append_str(&b, "["), 0);
    for (int k = 0; k < 17; k++)
        assert_int_equal(ch_buf_append_str(&b, "'${CH_J5_BIG}',"), 0);
    assert_int_equal(ch_buf_append_str(&b, "]"), 0);
    assert_int_equal(ch_json5_parse(b.data, b.len, true, &doc, &err), CH_E_TOO_LARGE);
    assert_non_null(strstr(err.msg, "more than 16 MiB"));
    /* Without substitution the same text is just strings. */
    assert_int_equal(ch_json5_parse(b.data, b.len, false, &doc, &err), 0);
    assert_string_equal(json_string_value(json_array_get(doc.root, 0)), "${CH_J5_BIG}");
    ch_json5_doc_release(&doc);
    /* Fifteen fit. */
    ch_buf_reset(&b);
    assert_int_equal(ch_buf_append_str(&b, "["), 0);
    for (int k = 0; k < 15; k++)
        assert_int_equal(ch_buf_append_str(&b, "'${CH_J5_BIG}',"), 0);
    assert_int_equal(ch_buf_append_str(&b, "]"), 0);
    assert_int_equal(ch_json5_parse(b.data, b.len, true, &doc, &err), 0);
    assert_int_equal(json_string_length(json_array_get(doc.root, 14)), vlen);
    ch_json5_doc_release(&doc);
    ch_buf_release(&b);
    unsetenv("CH_J5_BIG");
    ch_free(val);
}

static void test_env_value_not_utf8(void **state)
{
    static const char text[] = "'${CH_J5_LATIN1}'";
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    setenv("CH_J5_LATIN1", "caf\xe9", 1);
    assert_int_equal(ch_json5_parse(text, strlen(text), true, &doc, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "not valid UTF-8"));
    unsetenv("CH_J5_LATIN1");
}

static void test_null_and_empty(void **state)
{
    struct ch_json5_doc doc;
    struct ch_error err;

    (void)state;
    assert_int_equal(ch_json5_parse(NULL, 0, false, &doc, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "empty document"));
    /* err may be NULL. */
    assert_int_equal(ch_json5_parse("[", 1, false, &doc, NULL), CH_EINVAL);
    assert_null(doc.root);
    /* Length is honoured: the text need not be NUL-terminated. */
    assert_int_equal(ch_json5_parse("[1]garbage", 3, false, &doc, &err), 0);
    assert_int_equal(json_array_size(doc.root), 1);
    ch_json5_doc_release(&doc);
}

/* A long flat array: positions stay correct and lookups stay fast. */
static void test_many_values(void **state)
{
    const size_t count = 200000;
    struct ch_buf b;
    struct ch_json5_doc doc;
    struct ch_error err;
    int line, col;

    (void)state;
    ch_buf_init(&b, 4u << 20);
    assert_int_equal(ch_buf_append_str(&b, "["), 0);
    for (size_t k = 0; k < count; k++)
        assert_int_equal(ch_buf_append_str(&b, k % 10 == 9 ? "7,\n" : "7,"), 0);
    assert_int_equal(ch_buf_append_str(&b, "]"), 0);
    assert_int_equal(ch_json5_parse(b.data, b.len, false, &doc, &err), 0);
    assert_int_equal(json_array_size(doc.root), count);
    for (size_t k = 0; k < count; k += 997) {
        ch_json5_doc_pos(&doc, json_array_get(doc.root, k), &line, &col);
        assert_int_equal(line, (int)(k / 10) + 1);
        assert_int_equal(col, (int)(k % 10) * 2 + 1 + (k < 10));
        ch_json5_doc_child_pos(&doc, doc.root, NULL, k, &line, &col);
        assert_int_equal(line, (int)(k / 10) + 1);
    }
    ch_json5_doc_release(&doc);
    ch_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_directories),   cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_byte_mutations),     cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_positions),          cmocka_unit_test(test_input_cap),
        cmocka_unit_test(test_depth_cap_objects),  cmocka_unit_test(test_substitution_cap),
        cmocka_unit_test(test_env_value_not_utf8), cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_many_values),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
