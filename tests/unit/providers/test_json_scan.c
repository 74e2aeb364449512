/*
 * test_json_scan.c: the non-allocating JSON scanner of the stream fast
 * path (json_scan.c).  Its contract is to accept a subset of what jansson
 * accepts and to read the same values out of it, so most checks are
 * differential: every document the scanner accepts must parse with
 * jansson, and the strings, integers and keys read both ways must agree.
 * Hand-written cases cover escapes, surrogates, UTF-8 edge cases, numbers,
 * duplicate keys, depth and token caps; a seeded mutation loop over a
 * real chunk covers the rest.
 */
#include "providers_test.h"

#include "providers/internal.h"

static struct llm_jtok toks[LLM_JSCAN_MAX_TOKENS];

static int scan(struct llm_jdoc *d, const char *s, size_t n)
{
    d->toks = toks;
    d->cap = CH_ARRAY_SIZE(toks);
    return llm_jscan(d, s, n);
}

/* Every string and integer token agrees with jansson's reading of the
 * same document, walked in parallel. */
static void same_value(const struct llm_jdoc *d, int ti, const json_t *j)
{
    const struct llm_jtok *t = &d->toks[ti];
    char buf[4096];
    int64_t v;

    switch (t->type) {
    case LLM_J_OBJ: {
        assert_true(json_is_object(j));
        /* Keys: the scanner's last duplicate is jansson's value. */
        for (uint32_t i = (uint32_t)ti + 1; i < t->end; i = d->toks[i + 1].end) {
            assert_true(d->toks[i].len < sizeof(buf));
            llm_jstr_decode(d, (int)i, buf);
            assert_non_null(json_object_get(j, buf));
            if (llm_jget(d, ti, buf) == (int)i + 1)
                same_value(d, (int)i + 1, json_object_get(j, buf));
        }
        assert_true(json_object_size(j) <= t->count);
        break;
    }
    case LLM_J_ARR: {
        size_t k = 0;
        assert_true(json_is_array(j));
        assert_int_equal(json_array_size(j), t->count);
        for (int c = llm_jnext(d, ti, -1); c >= 0; c = llm_jnext(d, ti, c))
            same_value(d, c, json_array_get(j, k++));
        break;
    }
    case LLM_J_STR:
        assert_true(json_is_string(j));
        assert_true(t->len < sizeof(buf));
        assert_int_equal(llm_jstr_decode(d, ti, buf), json_string_length(j));
        assert_memory_equal(buf, json_string_value(j), json_string_length(j));
        break;
    case LLM_J_NUM:
        if (llm_jint(d, ti, &v)) {
            assert_true(json_is_integer(j));
            assert_true(v == json_integer_value(j));
        } else {
            assert_true(json_is_real(j));
        }
        break;
    case LLM_J_TRUE: assert_true(json_is_true(j)); break;
    case LLM_J_FALSE: assert_true(json_is_false(j)); break;
    case LLM_J_NULL: assert_true(json_is_null(j)); break;
    default: fail_msg("token type %d", t->type);
    }
}

/* Scanner accepts: jansson must too, with the same values. */
static void accept(const char *s)
{
    struct llm_jdoc d;
    json_error_t je;
    json_t *j;

    if (scan(&d, s, strlen(s)) != 0)
        fail_msg("scanner refused: %s", s);
    j = json_loadb(s, strlen(s), 0, &je);
    if (!j)
        fail_msg("jansson refused what the scanner took: %s (%s)", s, je.text);
    same_value(&d, 0, j);
    /* For objects, every key jansson has is found by the scanner. */
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            int ti = llm_jget(&d, 0, k);
            assert_true(ti > 0);
            same_value(&d, ti, v);
        }
    }
    json_decref(j);
}

static void refuse(const char *s, size_t n)
{
    struct llm_jdoc d;

    if (scan(&d, s, n) == 0)
        fail_msg("scanner took: %.*s", (int)n, s);
}

static void test_accepts(void **state)
{
    (void)state;
    accept("{}");
    accept("[]");
    accept(" \t\r\n{ \"a\" : [ 1 , -2 , 0 , 3.5 , -0.25e-3 , 1E+2 , true , false , null ] } \n");
    accept("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
           "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
           "\"finish_reason\":null}],\"usage\":null}");
    accept("{\"s\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"}");
    accept("{\"u\":\"\\u00e9 \\u20AC \\ud83d\\ude00 \\u0001\"}");
    accept("{\"raw\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf\"}");
    accept("{\"k\":1,\"k\":\"last\"}");
    accept("{\"\\u006b\":\"escaped key\"}");
    accept("{\"big\":123456789012345678,\"neg\":-123456789012345678}");
    accept("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
}

static void test_refuses(void **state)
{
    (void)state;
    refuse("", 0);
    refuse("   ", 3);
    refuse("\"top-level string\"", 18);
    refuse("42", 2);
    refuse("{", 1);
    refuse("{\"a\":1,}", 8);
    refuse("[1,]", 4);
    refuse("{\"a\" 1}", 7);
    refuse("{a:1}", 5);
    refuse("{\"a\":01}", 8);
    refuse("{\"a\":1.}", 8);
    refuse("{\"a\":.5}", 8);
    refuse("{\"a\":-}", 7);
    refuse("{\"a\":1e}", 8);
    refuse("{\"a\":tru}", 9);
    refuse("{\"a\":truex}", 11);
    refuse("{\"a\":\"\\x\"}", 10);
    refuse("{\"a\":\"\\u12\"}", 12);
    refuse("{\"a\":\"\\u0000\"}", 14); /* jansson: NUL not allowed */
    refuse("{\"a\":\"\\ud800\"}", 14); /* lone high surrogate */
    refuse("{\"a\":\"\\udc00\"}", 14); /* lone low surrogate */
    refuse("{\"a\":\"\\ud800\\u0041\"}", 20);
    refuse("{\"a\":\"\t\"}", 9);                /* raw control character */
    refuse("{\"a\":\"\xc0\xaf\"}", 10);         /* overlong */
    refuse("{\"a\":\"\xed\xa0\x80\"}", 11);     /* encoded surrogate */
    refuse("{\"a\":\"\xf4\x90\x80\x80\"}", 12); /* past U+10FFFF */
    refuse("{\"a\":\"\xe2\x82\"}", 10);         /* truncated sequence */
    refuse("{\"a\":\"\x80\"}", 9);
    refuse("{\"a\":1234567890123456789}", 25); /* left to jansson's range check */
    refuse("{} {}", 5);
    refuse("{}x", 3);
    refuse("{\"a\":1}\0", 8);
    refuse("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 70); /* depth */
}

static void test_token_cap(void **state)
{
    struct ch_buf b;
    struct llm_jdoc d;

    (void)state;
    ch_buf_init(&b, 1 << 20);
    ch_buf_append_char(&b, '[');
    for (int i = 0; i < LLM_JSCAN_MAX_TOKENS; i++)
        ch_buf_append_str(&b, i ? ",1" : "1");
    ch_buf_append_char(&b, ']');
    assert_int_equal(scan(&d, b.data, b.len), CH_EINVAL); /* one token too many: jansson's job */
    b.len -= 3;
    ch_buf_append_char(&b, ']');
    assert_int_equal(scan(&d, b.data, b.len), 0);
    assert_int_equal(d.count, LLM_JSCAN_MAX_TOKENS);
    ch_buf_release(&b);
}

/* Mutations of a real chunk: whatever the scanner accepts, jansson
 * accepts with the same values; and it never reads out of bounds (ASan). */
static void test_mutations(void **state)
{
    static const char base[] =
        "{\"id\":\"c\",\"model\":\"m\\u00e9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\\"b\","
        "\"tool_calls\":[{\"index\":1,\"id\":\"t\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":-5}}";
    static const char alphabet[] = "{}[]\",:\\u0123456789abcdefnrtlsE+-. \xc3\xa9\x80";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t n = sizeof(base) - 1, accepted = 0;

    (void)state;
    for (int round = 0; round < 20000; round++) {
        char doc[sizeof(base) + 8];
        size_t len = n;
        struct llm_jdoc d;
        json_t *j;

        memcpy(doc, base, n);
        for (int k = 0; k < 1 + round % 3; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t pos = (size_t)(x >> 8) % len;
            char c = alphabet[(x >> 40) % (sizeof(alphabet) - 1)];
            switch ((x >> 60) % 3) {
            case 0: doc[pos] = c; break;
            case 1: memmove(doc + pos, doc + pos + 1, len - pos - 1), len--; break;
            default:
                if (len < sizeof(doc) - 1) {
                    memmove(doc + pos + 1, doc + pos, len - pos);
                    doc[pos] = c;
                    len++;
                }
            }
        }
        if (scan(&d, doc, len) != 0)
            continue;
        accepted++;
        j = json_loadb(doc, len, 0, NULL);
        if (!j)
            fail_msg("jansson refused what the scanner took: %.*s", (int)len, doc);
        same_value(&d, 0, j);
        json_decref(j);
    }
    assert_true(accepted > 100); /* the loop exercised acceptance too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_token_cap),
        cmocka_unit_test(test_mutations),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
