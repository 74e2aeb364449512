/*
 * test_run_result.c: the run outcome's result JSON, written directly
 * (ch_run_result_json), is byte for byte what json_pack + json_dumps
 * wrote (ch_run_result_json_jansson), for texts that need escaping, NULL
 * provider/model, odd costs and counts; invalid UTF-8 still fails.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/internal.h"

static void check_same(struct ch_run *r, int64_t dur)
{
    char *a = ch_run_result_json(r, dur), *b = ch_run_result_json_jansson(r, dur);

    if (!b) {
        assert_null(a);
        return;
    }
    assert_non_null(a);
    assert_string_equal(a, b);
    ch_free(a);
    ch_free(b);
}

static void set_text(struct ch_run *r, const char *t)
{
    ch_buf_release(&r->text);
    if (t)
        assert_int_equal(ch_buf_append_str(&r->text, t), 0);
}

static void test_matches_jansson(void **state)
{
    static const char *texts[] = {NULL,
                                  "",
                                  "ok",
                                  "quote \" backslash \\ slash / tab \t nl \n cr \r",
                                  "ctl \x01\x1f del \x7f",
                                  "utf8 h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
                                  "bad \xc3\x28 utf8"};
    static const double costs[] = {0, 1, 0.1, 1e-9, 123456.789, 1e300, -2.5, 3.0000000000000004};
    static const char *names[] = {NULL, "openai", "m\xc3\xa9", "bad\xff"};
    struct ch_run r;

    (void)state;
    memset(&r, 0, sizeof(r));
    ch_buf_init(&r.text, 1 << 20);
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        set_text(&r, texts[t]);
        for (size_t c = 0; c < sizeof(costs) / sizeof(costs[0]); c++) {
            for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
                r.status = c % 2 ? "ok" : "failed";
                r.cost_usd = costs[c];
                r.provider = (char *)names[n];
                r.model = (char *)names[(n + 1) % 4];
                r.usage.input_tokens = c * 1000003;
                r.usage.output_tokens = t;
                r.usage.cache_read_tokens = n;
                r.usage.cache_write_tokens = c ? 0 : 9007199254740993LL;
                r.tool_calls = (int)(t * c);
                check_same(&r, (int64_t)c * -7 + (int64_t)n * 123456789);
            }
        }
    }
    ch_buf_release(&r.text);
}

/* A run that stopped at client tool calls keeps them in its result. */
static void test_client_calls(void **state)
{
    struct ch_run r;
    json_t *res;
    char *a;

    (void)state;
    memset(&r, 0, sizeof(r));
    ch_buf_init(&r.text, 1 << 20);
    r.status = "ok";
    r.client_calls = json_loads("[{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"get_w\u00e9ather\","
                                "\"input\":{\"city\":\"Paris \\\"x\\\"\"}}]",
                                0, NULL);
    assert_non_null(r.client_calls);
    check_same(&r, 5);
    a = ch_run_result_json(&r, 5);
    res = json_loads(a, 0, NULL);
    assert_non_null(res);
    assert_true(json_equal(json_object_get(res, "clientToolCalls"), r.client_calls));
    json_decref(res);
    ch_free(a);
    json_decref(r.client_calls);
    r.client_calls = json_array(); /* empty: not written */
    a = ch_run_result_json(&r, 5);
    assert_null(strstr(a, "clientToolCalls"));
    ch_free(a);
    check_same(&r, 5);
    json_decref(r.client_calls);
    ch_buf_release(&r.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_jansson),
        cmocka_unit_test(test_client_calls),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
