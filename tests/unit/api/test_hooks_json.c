/*
 * Unit tests for the hook body fast path (src/api/hooks_json.c): whatever
 * it decodes must equal json_loadb(body, len, 0) value for value and key
 * order for key order, and whatever it declines (CH_AGAIN) goes to
 * jansson.  Fixed cases, byte-level mutations of seed 000's body, and
 * allocation failure; the raw "message" span equals its re-encoding.  Also the escaping of ch_buf_append_json_str and
 * the format of ch_uuid4, which the same hook path depends on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/hooks.h"

static const char *seed_body =
    "{\"message\": \"Analyze the following trading instrument and return a JSON result via HTTP callback.\\n\\n"
    "request_id: 00000001-0000-4000-8000-000000000001\\nsymbol: 005930\\nname: Samsung Electronics\\n"
    "USER_PROMPT:\\nMark \\\"overbought\\\" when RSI > 70 and keep {\\\"key\\\": \\\"value\\\"} pairs.\\n"
    "\\tCALLBACK:\\nPOST http://127.0.0.1:9/api/v1/openclaw/callback\\n"
    "RESPONSE_JSON_SCHEMA (example):\\n{\\\"request_id\\\": \\\"x\\\", \\\"reasons\\\": [\\\"...\\\"]}\\n\", "
    "\"name\": \"auto-trader:analysis\", \"sessionKey\": \"auto-trader:openclaw:00000001\", \"wakeMode\": \"now\"}";

/* The raw span of "message", when reported, is byte for byte what
 * ch_buf_append_json_str writes for the decoded value (the run's stored
 * request copies it instead of encoding the message again). */
static int raw_seen; /* spans reported, over the whole run */

static void check_raw(const char *text, size_t len, const json_t *fast)
{
    json_t *again = NULL;
    struct ch_str raw;
    const json_t *msg = json_object_get(fast, "message");
    struct ch_buf b;

    assert_int_equal(ch_hooks_json_object_raw(text, len, &again, "message", &raw), 0);
    assert_true(json_equal(again, fast));
    json_decref(again);
    if (!raw.p)
        return;
    raw_seen++;
    assert_true(json_is_string(msg));
    assert_true(raw.p >= text && raw.p + raw.len <= text + len);
    ch_buf_init(&b, 1 << 24);
    assert_int_equal(ch_buf_append_json_str(&b, json_string_value(msg), json_string_length(msg)), 0);
    if (b.len != raw.len || memcmp(b.data, raw.p, raw.len) != 0)
        fail_msg("raw span differs from the encoding: %.*s", (int)CH_MIN(raw.len, (size_t)200), raw.p);
    ch_buf_release(&b);
}

/* The fast path's answer for text: 0 and equal to jansson's, or CH_AGAIN.
 * Returns the fast path's rc. */
static int check_same(const char *text, size_t len)
{
    json_t *fast = NULL, *slow = json_loadb(text, len, 0, NULL);
    int rc = ch_hooks_json_object(text, len, &fast);

    if (rc == 0) {
        char *a, *b;
        assert_non_null(fast);
        if (!slow)
            fail_msg("fast path accepted what jansson refuses: %.*s", (int)CH_MIN(len, (size_t)200), text);
        assert_true(json_equal(fast, slow));
        a = json_dumps(fast, JSON_COMPACT | JSON_ENSURE_ASCII);
        b = json_dumps(slow, JSON_COMPACT | JSON_ENSURE_ASCII);
        assert_string_equal(a, b); /* key order too */
        ch_free(a);
        ch_free(b);
        check_raw(text, len, fast);
    } else {
        assert_int_equal(rc, CH_AGAIN);
        assert_null(fast);
    }
    json_decref(fast);
    json_decref(slow);
    return rc;
}

static void expect_fast(const char *text)
{
    if (check_same(text, strlen(text)) != 0)
        fail_msg("the fast path declined: %s", text);
}

/* Which message strings come back as a reusable span. */
static void test_message_raw_span(void **state)
{
    static const struct {
        const char *body;
        bool reused;
    } cases[] = {
        {"{\"message\": \"plain\"}", true},
        {"{\"message\": \"a\\n\\\"b\\\"\\t\\\\ c\"}", true},
        {"{\"message\": \"caf\xc3\xa9\"}", true},
        {"{\"message\": \"a\\/b\"}", false},                   /* written back as '/' */
        {"{\"message\": \"caf\\u00e9\"}", false},              /* written back as UTF-8 */
        {"{\"message\": \"x\\u001F\"}", false},                /* \u: never reused */
        {"{\"message\": 5}", false},                           /* not a string */
        {"{\"message\": \"a\\/\", \"message\": \"b\"}", true}, /* the last one counts */
        {"{\"message\": \"b\", \"message\": \"a\\/\"}", false},
        {"{\"name\": \"x\"}", false},
    };
    json_t *v;
    struct ch_str raw;

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(cases); i++) {
        check_same(cases[i].body, strlen(cases[i].body));
        assert_int_equal(ch_hooks_json_object_raw(cases[i].body, strlen(cases[i].body), &v, "message", &raw), 0);
        json_decref(v);
        if ((raw.p != NULL) != cases[i].reused)
            fail_msg("case %zu: span %s", i, raw.p ? "reported" : "not reported");
    }
    /* The seed body's message (newlines, quotes, tabs) is reused. */
    assert_int_equal(ch_hooks_json_object_raw(seed_body, strlen(seed_body), &v, "message", &raw), 0);
    assert_non_null(raw.p);
    json_decref(v);
    /* A body the fast path declines reports nothing. */
    assert_int_equal(ch_hooks_json_object_raw("[1]", 3, &v, "message", &raw), CH_AGAIN);
    assert_null(raw.p);
    assert_true(raw_seen > 0);
}

static void expect_declined(const char *text)
{
    json_t *v = NULL;

    assert_int_equal(ch_hooks_json_object(text, strlen(text), &v), CH_AGAIN);
    assert_null(v);
    check_same(text, strlen(text));
}

static void test_decodes_like_jansson(void **state)
{
    (void)state;
    expect_fast(seed_body);
    expect_fast("{}");
    expect_fast(" \t\r\n{ } \n");
    expect_fast("{\"a\":\"\"}");
    expect_fast("{\"\":1}");
    expect_fast("{\"a\":1,\"b\":-0,\"c\":-9223372036854775808,\"d\":9223372036854775807}");
    expect_fast("{\"t\":true,\"f\":false,\"n\":null}");
    expect_fast("{\"k\":\"\\u00e9\\u4e2d\\uD83D\\uDE00 \\\"\\\\\\/\\b\\f\\n\\r\\t\"}");
    expect_fast("{\"k\":\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"}");
    expect_fast("{\"dup\":1,\"x\":2,\"dup\":\"last wins\"}");
    expect_fast("{\"callback\":{\"url\":\"http://h/x\",\"headers\":{\"A\":\"b\"}},\"list\":[1,[2,{\"}\":\"]\"}]]}");
    expect_fast("{\"nested\":{\"s\":\"a \\\" } ] quote\"},\"after\":\"y\"}");
    expect_fast("{\"big\":{\"real\":1.5e300}}"); /* reals inside nested values: jansson's */
}

static void test_declines_the_rest(void **state)
{
    (void)state;
    /* Valid JSON that jansson decodes: left to it. */
    expect_declined("{\"r\":1.5}");
    expect_declined("{\"r\":1e3}");
    expect_declined("{\"big\":92233720368547758080}");
    /* Not an object, or not JSON: jansson words the error. */
    expect_declined("[1,2]");
    expect_declined("\"s\"");
    expect_declined("");
    expect_declined("{");
    expect_declined("{\"a\"}");
    expect_declined("{\"a\":}");
    expect_declined("{\"a\":1,}");
    expect_declined("{,}");
    expect_declined("{\"a\":01}");
    expect_declined("{\"a\":-}");
    expect_declined("{\"a\":tru}");
    expect_declined("{\"a\":truex}");
    expect_declined("{\"a\":1x}");
    expect_declined("{\"a\":1} x");
    expect_declined("{\"a\":1}{}");
    expect_declined("{'a':1}");
    expect_declined("{\"a\":\"\\u0000\"}");
    expect_declined("{\"a\":\"\\uD800\"}");
    expect_declined("{\"a\":\"\\uDC00\"}");
    expect_declined("{\"a\":\"\\uD800\\u0041\"}");
    expect_declined("{\"a\":\"\\x\"}");
    expect_declined("{\"a\":\"\\u12G4\"}");
    expect_declined("{\"a\":\"tab\there\"}");
    expect_declined("{\"a\":\"\xc0\xaf\"}");         /* overlong */
    expect_declined("{\"a\":\"\xed\xa0\x80\"}");     /* an encoded surrogate */
    expect_declined("{\"a\":\"\xf4\x90\x80\x80\"}"); /* past U+10FFFF */
    expect_declined("{\"a\":\"\xe4\xb8\"}");         /* truncated */
    expect_declined("{\"a\":\"\x80\"}");
    expect_declined("{\"a\":[1,2}");
    expect_declined("{\"a\":{\"b\":1]}");
    expect_declined("{\"a\":\"unterminated}");
}

static void test_nul_inside_the_body(void **state)
{
    static const char with_nul[] = "{\"a\":\"x\0y\"}";
    static const char after[] = "{\"a\":1}\0";
    json_t *v = NULL;

    (void)state;
    assert_int_equal(ch_hooks_json_object(with_nul, sizeof(with_nul) - 1, &v), CH_AGAIN);
    assert_int_equal(ch_hooks_json_object(after, sizeof(after) - 1, &v), CH_AGAIN);
    check_same(with_nul, sizeof(with_nul) - 1);
    check_same(after, sizeof(after) - 1);
}

static void test_deep_nesting_goes_to_jansson(void **state)
{
    char *deep = ch_malloc(8192);
    size_t n = 0;

    (void)state;
    assert_non_null(deep);
    n += (size_t)sprintf(deep + n, "{\"a\":");
    for (int i = 0; i < 3000; i++)
        deep[n++] = '[';
    for (int i = 0; i < 3000; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(check_same(deep, n), CH_AGAIN);
    ch_free(deep);
}

/* Every truncation and single-byte change of the seed body: the fast path
 * never disagrees with jansson. */
static void test_mutations_of_the_seed_body(void **state)
{
    static const char subst[] = {'"', '\\', '{', '}', '[', ']', ',', ':', 'u', '0', '\n', '\x80', '\xff', ' ', 'e'};
    size_t len = strlen(seed_body);
    char *t = ch_malloc(len + 1);

    (void)state;
    assert_non_null(t);
    for (size_t cut = 0; cut <= len; cut++)
        check_same(seed_body, cut);
    srand(4);
    for (int i = 0; i < 20000; i++) {
        memcpy(t, seed_body, len + 1);
        for (int k = 0, edits = 1 + rand() % 3; k < edits; k++)
            t[(size_t)rand() % len] = subst[(size_t)rand() % sizeof(subst)];
        check_same(t, len);
    }
    ch_free(t);
}

static void test_allocation_failure(void **state)
{
    (void)state;
    for (long n = 1; n < 200; n++) {
        json_t *v = NULL;
        int rc;
        ch_alloc_fail_after(n);
        rc = ch_hooks_json_object(seed_body, strlen(seed_body), &v);
        ch_alloc_fail_after(0);
        if (rc == 0) {
            json_decref(v);
            return;
        }
        assert_true(rc == CH_ENOMEM || rc == CH_AGAIN);
        assert_null(v);
    }
    fail_msg("the decode never succeeded");
}

/* ch_buf_append_json_str: escaped text decodes back to the input. */
static void test_json_str_round_trip(void **state)
{
    static const char *const cases[] = {"", "plain", "q\"b\\s/", "ctl\x01\x1f\b\f\n\r\t.", "caf\xc3\xa9", "\"", "\\"};
    char *long_text = ch_malloc(5001);

    (void)state;
    assert_non_null(long_text);
    for (int i = 0; i < 5000; i++)
        long_text[i] = "ab\"\\\n c\x01"[i % 8];
    long_text[5000] = '\0';
    for (size_t i = 0; i <= CH_ARRAY_SIZE(cases); i++) {
        const char *s = i < CH_ARRAY_SIZE(cases) ? cases[i] : long_text;
        struct ch_buf b;
        json_t *v;
        ch_buf_init(&b, 64 * 1024);
        assert_int_equal(ch_buf_append_str(&b, "["), 0);
        assert_int_equal(ch_buf_append_json_str(&b, s, strlen(s)), 0);
        assert_int_equal(ch_buf_append_str(&b, "]"), 0);
        v = json_loads(b.data, 0, NULL);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_array_get(v, 0)), s);
        json_decref(v);
        ch_buf_release(&b);
    }
    ch_free(long_text);
}

static void test_json_str_cap_leaves_buffer(void **state)
{
    struct ch_buf b;

    (void)state;
    ch_buf_init(&b, 12);
    assert_int_equal(ch_buf_append_str(&b, "ab"), 0);
    assert_int_equal(ch_buf_append_json_str(&b, "0123456789\n", 11), CH_E_TOO_LARGE);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    assert_int_equal(ch_buf_append_json_str(&b, "x\ty", 3), 0);
    assert_string_equal(b.data, "ab\"x\\ty\"");
    ch_buf_release(&b);
    /* Fits unescaped, not escaped: refused midway, buffer as it was. */
    ch_buf_init(&b, 20);
    assert_int_equal(ch_buf_append_str(&b, "ab"), 0);
    assert_int_equal(ch_buf_append_json_str(&b, "\x01\x01\x01", 3), CH_E_TOO_LARGE);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    assert_int_equal(ch_buf_append_json_str(&b, "\x01\x01", 2), 0);
    assert_string_equal(b.data, "ab\"\\u0001\\u0001\"");
    ch_buf_release(&b);
}

/* ch_uuid4 from its pool: well-formed version 4 and distinct. */
static void test_uuid4(void **state)
{
    char ids[200][37];

    (void)state;
    for (int i = 0; i < 200; i++) {
        ch_uuid4(ids[i]);
        assert_int_equal(strlen(ids[i]), 36);
        assert_true(ids[i][8] == '-' && ids[i][13] == '-' && ids[i][18] == '-' && ids[i][23] == '-');
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
        for (int k = 0; k < 36; k++)
            assert_non_null(strchr("0123456789abcdef-", ids[i][k]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes_like_jansson),       cmocka_unit_test(test_declines_the_rest),
        cmocka_unit_test(test_nul_inside_the_body),        cmocka_unit_test(test_deep_nesting_goes_to_jansson),
        cmocka_unit_test(test_mutations_of_the_seed_body), cmocka_unit_test(test_message_raw_span),
        cmocka_unit_test(test_allocation_failure),         cmocka_unit_test(test_json_str_round_trip),
        cmocka_unit_test(test_json_str_cap_leaves_buffer), cmocka_unit_test(test_uuid4),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
