/*
 * Unit tests for api/chat_render.c: the /api/v1/chat answer and the SSE
 * start and done events must be, byte for byte, what rest_chat.c's
 * json_pack + json_dumps(JSON_COMPACT) fallback writes for the same fields,
 * over random strings (escapes, control bytes, multi-byte UTF-8, NULL
 * optional fields), token counts, costs and latencies; what the renderer
 * declines (invalid UTF-8, NULL required fields) is left to json_pack.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/internal.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A random string: ASCII, quotes, backslashes, control bytes, UTF-8. */
static const char *rand_str(char *out, size_t cap)
{
    static const char *const parts[] = {"a",
                                        "Z",
                                        "0",
                                        " ",
                                        "\"",
                                        "\\",
                                        "/",
                                        "\n",
                                        "\t",
                                        "\x01",
                                        "\x1f",
                                        "\x7f",
                                        "\xc3\xa9",
                                        "\xed\x95\x9c",
                                        "\xf0\x9f\x98\x80",
                                        "{\"k\": [1]}",
                                        "msg"};
    size_t n = 0, parts_n = rnd(12);

    for (size_t i = 0; i < parts_n; i++) {
        const char *p = parts[rnd(sizeof(parts) / sizeof(parts[0]))];
        size_t l = strlen(p);
        if (n + l + 1 > cap)
            break;
        memcpy(out + n, p, l);
        n += l;
    }
    out[n] = '\0';
    return out;
}

static double rand_cost(void)
{
    static const double fixed[] = {0.0, 1.0, 0.1, 1e-9, 123456.789, 3.0e-5, 1e21, 0.30000000000000004};
    return rnd(3) ? fixed[rnd(8)] : (double)rnd(1000000) / (double)(1 + rnd(99999));
}

static void expect_bytes(const struct ch_buf *b, const char *prefix, json_t *o, const char *suffix)
{
    char *s = json_dumps(o, JSON_COMPACT);
    size_t pl = strlen(prefix), sl = strlen(s), xl = strlen(suffix);

    assert_non_null(s);
    if (b->len != pl + sl + xl || memcmp(b->data, prefix, pl) || memcmp(b->data + pl, s, sl) ||
        memcmp(b->data + pl + sl, suffix, xl))
        fail_msg("rendered:\n%.*s\njansson:\n%s%s%s", (int)b->len, b->data, prefix, s, suffix);
    free(s);
    json_decref(o);
}

static json_t *usage_of(const struct ch_llm_usage *u)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "inputTokens", (json_int_t)u->input_tokens, "outputTokens",
                     (json_int_t)u->output_tokens, "cacheReadTokens", (json_int_t)u->cache_read_tokens,
                     "cacheWriteTokens", (json_int_t)u->cache_write_tokens);
}

static void test_against_json_pack(void **state)
{
    struct ch_buf b;
    char run[40], conv[128], text[256], model[64], provider[64];

    (void)state;
    ch_buf_init(&b, 1 << 20);
    for (int i = 0; i < 20000; i++) {
        struct ch_agent_result res = {.status = "ok"};
        int64_t latency = rnd(4) ? (int64_t)rnd(100000) : (int64_t)rnd(10) * 1000000000LL;

        snprintf(run, sizeof(run), "%08x-0000-7000-8000-%012x", rnd(1u << 31), rnd(1u << 31));
        if (rnd(4) == 0)
            rand_str(run, 32); /* a caller's idempotency key */
        rand_str(conv, sizeof(conv));
        res.text = rnd(8) ? rand_str(text, sizeof(text)) : NULL;
        res.model = rnd(4) ? rand_str(model, sizeof(model)) : NULL;
        res.provider = rnd(4) ? rand_str(provider, sizeof(provider)) : NULL;
        res.usage.input_tokens = rnd(3) ? rnd(100000) : 0;
        res.usage.output_tokens = rnd(100000);
        res.usage.cache_read_tokens = rnd(2) ? rnd(1000) : 0;
        res.usage.cache_write_tokens = rnd(2) ? (int64_t)rnd(1u << 31) * 4096 : 0;
        res.cost_usd = rand_cost();

        assert_int_equal(ch_chat_render_answer(&b, run, conv, &res, latency), 0);
        expect_bytes(&b, "",
                     json_pack("{s:s+, s:s, s:s, s:s, s:s?, s:s?, s:o, s:f, s:I, s:s}", "id", "msg_", run,
                               "conversationId", conv, "role", "assistant", "content", res.text ? res.text : "",
                               "model", res.model, "provider", res.provider, "usage", usage_of(&res.usage), "costUsd",
                               res.cost_usd, "latency", (json_int_t)latency, "runId", run),
                     "");
        assert_int_equal(ch_chat_render_start(&b, conv, run), 0);
        expect_bytes(&b, "data: ", json_pack("{s:s, s:s, s:s}", "type", "start", "conversationId", conv, "runId", run),
                     "\n\n");
        assert_int_equal(ch_chat_render_done(&b, run, conv, &res, latency), 0);
        expect_bytes(&b, "data: ",
                     json_pack("{s:s, s:o, s:s?, s:s?, s:f, s:s, s:s, s:I}", "type", "done", "usage",
                               usage_of(&res.usage), "model", res.model, "provider", res.provider, "costUsd",
                               res.cost_usd, "runId", run, "conversationId", conv, "latency", (json_int_t)latency),
                     "\n\n");
    }
    ch_buf_release(&b);
}

/* What json_pack would refuse or jansson would write differently is not
 * rendered: the caller falls back to json_pack. */
static void test_declines(void **state)
{
    struct ch_agent_result res = {.status = "ok", .text = "hi", .model = "m", .provider = "p"};
    struct ch_buf b;

    (void)state;
    ch_buf_init(&b, 1 << 20);
    res.text = "bad \xff utf-8";
    assert_int_not_equal(ch_chat_render_answer(&b, "r", "c", &res, 1), 0);
    res.text = "hi";
    res.model = "\xc3";
    assert_int_not_equal(ch_chat_render_done(&b, "r", "c", &res, 1), 0);
    res.model = "m";
    assert_int_not_equal(ch_chat_render_start(&b, NULL, "r"), 0);
    assert_int_not_equal(ch_chat_render_start(&b, "c\xfe", "r"), 0);
    assert_int_not_equal(ch_chat_render_done(&b, NULL, "c", &res, 1), 0);
    assert_int_not_equal(ch_chat_render_answer(&b, NULL, "c", &res, 1), 0);
    /* An over-long run id is left to json_pack, not cut. */
    char longid[200];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_not_equal(ch_chat_render_answer(&b, longid, "c", &res, 1), 0);
    assert_int_equal(ch_chat_render_answer(&b, "r", "c", &res, 1), 0);
    ch_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_json_pack),
        cmocka_unit_test(test_declines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
