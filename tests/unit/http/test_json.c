/*
 * Unit tests for http/json.c: ch_http_json_dump writes exactly the bytes
 * json_dumps(v, JSON_COMPACT) writes (fixed documents, every escape,
 * UTF-8, integers at their limits, reals, key order, empty containers,
 * random documents), declines what it leaves to jansson (scalars, invalid
 * UTF-8, deep nesting), leaves the buffer as it was on failure, and
 * survives allocation failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/internal.h"

static void expect_same(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT);
    struct ch_buf b;

    assert_non_null(want);
    ch_buf_init(&b, 1 << 20);
    assert_int_equal(ch_buf_append_str(&b, ">"), 0);
    assert_int_equal(ch_http_json_dump(v, &b), 0);
    assert_string_equal(b.data + 1, want);
    assert_int_equal(b.len, strlen(want) + 1);
    ch_buf_release(&b);
    ch_free(want);
}

static void expect_text(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

    assert_non_null(v);
    expect_same(v);
    json_decref(v);
}

static void test_fixed_documents(void **state)
{
    (void)state;
    expect_text("{}");
    expect_text("[]");
    expect_text("{\"ok\":true,\"runId\":\"3f1c0d4e-0000-4000-8000-000000000001\"}");
    expect_text("{\"a\":[1,-2,0,9223372036854775807,-9223372036854775808],\"b\":{\"c\":null,\"d\":false}}");
    expect_text("{\"r\":[0.5,1.0,-2.25,1e300,3.0e-5,123456789.125,0.1]}");
    expect_text("{\"s\":\"q\\\" b\\\\ / \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f\"}");
    expect_text("{\"u\":\"caf\\u00e9 \\u4e2d \\ud83d\\ude00\",\"k\\u00e9y\":1}");
    expect_text("{\"z\":1,\"a\":2,\"m\":3}"); /* insertion order, not sorted */
    expect_text("[[[[[]]]],{\"x\":[{}]}]");
    expect_text("{\"long\":\"0123456789abcdef0123456789abcdef0123456789abcdef\\n0123456789abcdef\"}");
}

static void test_nul_in_strings_and_keys(void **state)
{
    json_t *o = json_object();

    (void)state;
    json_object_set_new(o, "s", json_stringn("a\0b", 3));
    json_object_setn_new(o, "k\0y", 3, json_integer(1));
    expect_same(o);
    json_decref(o);
}

/* Random documents of every type. */
static json_t *random_value(int depth)
{
    static const char *const words[] = {"", "plain", "q\"", "b\\", "\n\t", "\x01", "caf\xc3\xa9", "\xf0\x9f\x98\x80",
                                        "/"};
    int k = rand() % (depth > 4 ? 6 : 8);
    json_t *v;

    switch (k) {
    case 0: return json_string(words[(size_t)rand() % CH_ARRAY_SIZE(words)]);
    case 1: return json_integer((json_int_t)rand() * (rand() % 2 ? -1 : 1));
    case 2: return json_real((double)rand() / 7.0);
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6:
        v = json_object();
        for (int i = rand() % 5; i > 0; i--) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", rand() % 10);
            json_object_set_new(v, key, random_value(depth + 1));
        }
        return v;
    default:
        v = json_array();
        for (int i = rand() % 5; i > 0; i--)
            json_array_append_new(v, random_value(depth + 1));
        return v;
    }
}

static void test_random_documents(void **state)
{
    (void)state;
    srand(7);
    for (int i = 0; i < 2000; i++) {
        json_t *v = json_array();
        json_array_append_new(v, random_value(0));
        expect_same(v);
        json_decref(v);
    }
}

static void test_declines(void **state)
{
    json_t *scalar = json_integer(1), *bad = json_object(), *deep = json_array(), *cur = deep;
    struct ch_buf b;

    (void)state;
    ch_buf_init(&b, 4096);
    assert_int_equal(ch_buf_append_str(&b, "pre"), 0);
    assert_int_equal(ch_http_json_dump(scalar, &b), CH_AGAIN);
    json_object_set_new(bad, "ok", json_string("fine"));
    json_object_set_new(bad, "s", json_stringn_nocheck("\xff", 1)); /* jansson refuses to encode it */
    assert_int_equal(ch_http_json_dump(bad, &b), CH_AGAIN);
    for (int i = 0; i < 600; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(ch_http_json_dump(deep, &b), CH_AGAIN);
    assert_string_equal(b.data, "pre");
    assert_int_equal(b.len, 3);
    ch_buf_release(&b);
    json_decref(scalar);
    json_decref(bad);
    json_decref(deep);
}

static void test_cap_leaves_buffer(void **state)
{
    json_t *v = json_pack("{s:s, s:i}", "a", "0123456789012345678901234567890123456789", "b", 1);
    struct ch_buf b;

    (void)state;
    ch_buf_init(&b, 40);
    assert_int_equal(ch_buf_append_str(&b, "pre"), 0);
    assert_int_equal(ch_http_json_dump(v, &b), CH_E_TOO_LARGE);
    assert_string_equal(b.data, "pre");
    assert_int_equal(b.len, 3);
    ch_buf_release(&b);
    json_decref(v);
}

static void test_alloc_failures(void **state)
{
    json_t *v = json_loads("{\"a\":[1,2,{\"b\":\"caf\\u00e9\\n\"}],\"r\":0.5,\"c\":\"xyz\"}", 0, NULL);

    (void)state;
    assert_non_null(v);
    for (long n = 1; n < 100; n++) {
        struct ch_buf b;
        int rc;
        ch_buf_init(&b, 4096);
        ch_alloc_fail_after(n);
        rc = ch_http_json_dump(v, &b);
        ch_alloc_fail_after(0);
        ch_buf_release(&b);
        if (rc == 0) {
            json_decref(v);
            return;
        }
        assert_true(rc == CH_ENOMEM || rc == CH_AGAIN);
    }
    fail_msg("the dump never succeeded");
}

/* ch_http_json_real against json_dumpb of the same real: special values,
 * exponents both ways, integral values, and a seeded sweep of bit patterns. */
static void test_reals(void **state)
{
    static const double fixed[] = {0.0,
                                   -0.0,
                                   1.0,
                                   -1.0,
                                   0.5,
                                   0.1,
                                   1e-9,
                                   1e-300,
                                   5e-324,
                                   1e300,
                                   1.7976931348623157e308,
                                   123456789012345678.0,
                                   1e16,
                                   1e17,
                                   1e22,
                                   3.0000000000000004,
                                   2.5e-5,
                                   -7.25e+21};
    unsigned long long x = 0x9e3779b97f4a7c15ULL;

    (void)state;
    for (size_t i = 0; i < 20000; i++) {
        double d;
        char want[64];
        json_t *j;
        size_t n;
        struct ch_buf b;

        if (i < sizeof(fixed) / sizeof(fixed[0])) {
            d = fixed[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(&d, &x, sizeof(d));
            if (i % 3 == 0)
                d = (double)(x % 100000) / 1000.0; /* prices and costs */
        }
        ch_buf_init(&b, 4096);
        j = json_real(d);
        if (!j) { /* NaN or infinity: jansson has none, nor do we */
            assert_int_equal(ch_http_json_real(&b, d), CH_AGAIN);
            ch_buf_release(&b);
            continue;
        }
        n = json_dumpb(j, want, sizeof(want) - 1, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_true(n > 0 && n < sizeof(want));
        want[n] = '\0';
        assert_int_equal(ch_http_json_real(&b, d), 0);
        assert_string_equal(b.data, want);
        ch_buf_reset(&b); /* again: the repeated value comes from the cache */
        assert_int_equal(ch_http_json_real(&b, d), 0);
        assert_string_equal(b.data, want);
        json_decref(j);
        ch_buf_release(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_documents),
        cmocka_unit_test(test_nul_in_strings_and_keys),
        cmocka_unit_test(test_random_documents),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_cap_leaves_buffer),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_reals),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
