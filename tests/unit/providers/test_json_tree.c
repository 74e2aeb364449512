/*
 * test_json_tree.c: ch_llm_json_loadb (json_tree.c) gives what
 * json_loadb(p, n, flags, err) gives, with flags 0 and
 * JSON_REJECT_DUPLICATES: the same tree (compared by json_equal and by
 * the bytes json_dumps writes, so key order and duplicate keys count),
 * the same error record on success (api.c prints its line and column),
 * and for text it declines or that is malformed, the same failure.
 * Fixed cases, then a seeded mutation loop over a request body.
 */
#include "providers_test.h"

#include "providers/providers.h"

static void same_flags(const char *p, size_t n, size_t flags)
{
    json_error_t e1, e2;
    json_t *a, *b;

    memset(&e1, 0x5a, sizeof(e1));
    memset(&e2, 0x5a, sizeof(e2));
    a = ch_llm_json_loadb(p, n, flags, &e1);
    b = json_loadb(p, n, flags, &e2);
    assert_string_equal(e1.text, e2.text);
    assert_string_equal(e1.source, e2.source);
    assert_int_equal(e1.line, e2.line);
    assert_int_equal(e1.column, e2.column);
    assert_int_equal(e1.position, e2.position);
    if (!b) {
        assert_null(a);
        return;
    }
    assert_non_null(a);
    assert_true(json_equal(a, b));
    char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY), *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(da, db);
    ch_free(da);
    ch_free(db);
    json_decref(a);
    json_decref(b);
}

static void same(const char *p, size_t n)
{
    same_flags(p, n, 0);
    same_flags(p, n, JSON_REJECT_DUPLICATES);
}

static void same_s(const char *s)
{
    same(s, strlen(s));
}

static const char body[] =
    "{\"model\":\"f/fake-model\",\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Say \\\"hi\\\" \\u00e9\\ud83d\\ude00 \\n\\t\\/ caf\xc3\xa9\"}],"
    "\"max_tokens\":16,\"temperature\":0.7,\"top_p\":1e-3,\"stream\":true,\"stop\":null,"
    "\"stream_options\":{\"include_usage\":false},\"n\":-0,\"x\":[[],{},[1,2.5,-3e+2]],\"model\":\"dup\"}";

static void test_fixed(void **state)
{
    static const char *cases[] = {
        "{}",
        "[]",
        " {\"a\" : 1 } ",
        "[1,2,3]",
        "{\"a\":{\"b\":{\"c\":[true,false,null]}}}",
        "{\"a\":1,\"b\":2,\"a\":3}",
        "{\"a\":{\"b\":1,\"b\":2}}",
        "[{\"k\\u00e9\":1,\"k\xc3\xa9\":2}]",
        "{\"k\\u00e9y\":\"v\"}",
        "[123456789012345678]",
        "[1234567890123456789]",
        "[1e400]",
        "[-1e400]",
        "[1e-400]",
        "[0.1,1.0,1E5,-0.0]",
        "[\"\\u0000\"]",
        "{\"a\\u0000\":1}",
        "[01]",
        "[1.]",
        "[.5]",
        "{\"a\":1,}",
        "[1,]",
        "{'a':1}",
        "[\"\xff\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\\ud800\"]",
        "\"str\"",
        "1",
        "",
        "   ",
        "{\"a\":1} x",
        "{\"a\":1}{",
        "[tru]",
        "[nul]",
        "[\"a\x01\"]",
        "[\"\\x\"]",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(cases); i++)
        same_s(cases[i]);
    same_s(body);
    same("[1]\0", 4); /* a NUL past the value */
}

/* Many values: past the token array, jansson parses. */
static void test_many_tokens(void **state)
{
    struct ch_buf b;

    (void)state;
    ch_buf_init(&b, 1 << 20);
    assert_int_equal(ch_buf_append_char(&b, '['), 0);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(ch_buf_appendf(&b, "%s{\"i\":%d}", i ? "," : "", i), 0);
    assert_int_equal(ch_buf_append_char(&b, ']'), 0);
    same(b.data, 0); /* empty */
    same(b.data, b.len);
    same(b.data, 100); /* cut */
    ch_buf_release(&b);
}

/* Seeded mutations of the body: bytes replaced, dropped and duplicated. */
static void test_mutations(void **state)
{
    static const char alphabet[] = "{}[]:,\"\\/ ue0123456789.-+Etrfaln\x01\x80\xc3\xa9";
    char buf[sizeof(body) + 8];
    unsigned x = 7;

    (void)state;
    for (int k = 0; k < 20000; k++) {
        size_t n = sizeof(body) - 1;
        memcpy(buf, body, n);
        for (int m = 0; m < 1 + k % 3; m++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % n;
            x = x * 1103515245u + 12345u;
            switch ((x >> 12) % 3) {
            case 0: buf[at] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)]; break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default:
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    n++;
                }
                break;
            }
        }
        same(buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_many_tokens),
        cmocka_unit_test(test_mutations),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
