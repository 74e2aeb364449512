/*
 * test_call.c: LLM calls over the network against the fake upstream
 * (fake_upstream.h) on a real uv loop: streamed text with events in
 * order, a tool call, each provider's wire format and key header, cost
 * from the pricing table, a 429 on key A moving to key B (the server
 * records which key it saw), 401 disabling a key, 5xx retried then
 * served, Retry-After honoured on a single key, context_length skipping
 * retries, the primary failing after its retries and the fallback model
 * serving, key cooldowns surviving a reload, and the client's stats.
 * Failure paths (breaker, abort, timeouts, broken streams) are in
 * test_call_fail.c.
 */
#include <math.h>

#include "net/curl_dl.h"
#include "call_harness.h"

static const char *const a_text_log = "usage 25 1\n"
                                      "text Hello\n"
                                      "text , world! \xc3\xa9\xe2\x82\xac\n"
                                      "usage 25 15\n"
                                      "stop end_turn\n";

static const char *rate_body =
    "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}";
static const char *auth_body = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid "
                               "x-api-key\"}}";
static const char *busy_body =
    "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";

static void test_stream_text(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct rec r = {0};
    struct fu_req q;
    struct ch_llm_stats st;

    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, a_text_log);
    assert_int_equal(r.stop, CH_LLM_STOP_END_TURN);
    assert_string_equal(r.provider, "a");
    assert_string_equal(r.model, "claude-sonnet-4-20250514");
    assert_string_equal(r.ref, "a/claude-sonnet-4-20250514");
    assert_string_equal(r.reported, "claude-sonnet-4-20250514");
    assert_string_equal(r.message, "");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(r.msg, "content"), 0), "text")),
        "Hello, world! \xc3\xa9\xe2\x82\xac");
    assert_int_equal(r.usage.input_tokens, 25);
    assert_int_equal(r.usage.output_tokens, 15);
    /* 25 in at $3/M plus 15 out at $15/M. */
    assert_true(fabs(r.cost - (25 * 3.0 + 15 * 15.0) / 1e6) < 1e-12);
    assert_int_equal(r.nattempts, 1);
    assert_int_equal(r.attempts[0].key_index, 0);
    assert_true(r.attempts[0].sent);
    assert_int_equal(r.attempts[0].http_status, 200);
    assert_int_equal(r.fallbacks, 0);
    assert_true(r.latency_ms >= r.first_token_ms);
    assert_int_equal(fu_count(&fx->fu), 1);
    q = fu_get(&fx->fu, 0);
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/a/v1/messages");
    assert_string_equal(q.key, "key-a");
    assert_non_null(strstr(q.body, "\"stream\":true"));
    assert_non_null(strstr(q.body, "\"model\":\"claude-sonnet-4-20250514\""));
    assert_non_null(strstr(q.body, "\"max_tokens\":4096"));
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.calls_ok, 1);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.tokens.output_tokens, 15);
    assert_true(fabs(st.cost_usd - r.cost) < 1e-12);
    assert_int_equal(st.in_flight, 0);
    rec_release(&r);
    free(body);
}

static void test_tool_call(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/tool-use/input");
    struct ch_llm_call_opts o = {.max_tokens = 100, .temperature = 0.5, .has_temperature = true, .system = "be brief"};
    struct rec r = {0};
    json_t *blk;

    fu_push(&fx->fu, sse(body));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, "usage 472 2\n"
                   "text Let me check the weather.\n"
                   "tool_start 0 toolu_01T1x1fJ34qAmk2tNTrN7Up6 get_weather\n"
                   "tool_args 0 {\"location\": \"San Fra\n"
                   "tool_args 0 ncisco, CA\", \"unit\": \"fah\n"
                   "tool_args 0 renheit\"}\n"
                   "tool_end 0 get_weather {\"location\":\"San Francisco, CA\",\"unit\":"
                   "\"fahrenheit\"}\n"
                   "usage 472 89\n"
                   "stop tool_use\n");
    assert_int_equal(r.stop, CH_LLM_STOP_TOOL_USE);
    blk = json_array_get(json_object_get(r.msg, "content"), 1);
    assert_string_equal(json_string_value(json_object_get(blk, "type")), "tool_use");
    assert_string_equal(json_string_value(json_object_get(json_object_get(blk, "input"), "unit")), "fahrenheit");
    assert_non_null(strstr(fu_get(&fx->fu, 0).body, "\"max_tokens\":100"));
    assert_non_null(strstr(fu_get(&fx->fu, 0).body, "\"temperature\":0.5"));
    assert_non_null(strstr(fu_get(&fx->fu, 0).body, "be brief"));
    rec_release(&r);
    free(body);
}

static void test_wire_formats(void **state)
{
    struct fx *fx = *state;
    char *ob = fu_data("providers/openai/text-basic/input");
    char *gb = fu_data("providers/gemini/text-basic/input");
    struct ch_llm_call_opts o = {.model = "b/gpt-4o"};
    struct rec r = {0};
    struct fu_req q;

    fu_push(&fx->fu, sse(ob));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, "text Hello\ntext  there! \xc3\xa9\xe2\x82\xac\nusage 19 10\nstop end_turn\n");
    q = fu_get(&fx->fu, 0);
    assert_string_equal(q.path, "/b/v1/chat/completions");
    assert_string_equal(q.key, "Bearer key-o");
    assert_string_equal(r.reported, "gpt-4o-2024-08-06");
    /* gpt-4o's built-in price: $2.5/M in, $10/M out. */
    assert_true(fabs(r.cost - (19 * 2.5 + 10 * 10.0) / 1e6) < 1e-12);
    rec_release(&r);

    o.model = "g"; /* a provider id alone: its first (here well-known) model */
    fu_push(&fx->fu, sse(gb));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, "text The quick\nusage 8 0\ntext  brown fox \xc3\xa9\xe2\x82\xac\n"
                   "text  jumps.\nusage 8 12\nstop end_turn\n");
    q = fu_get(&fx->fu, 1);
    assert_string_equal(q.path, "/g/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_string_equal(q.key, "key-g");
    assert_string_equal(r.model, "gemini-2.5-flash");
    rec_release(&r);
    free(ob);
    free(gb);
}

/* whole_body: an OpenAI upstream is asked for one JSON body (and read
 * through the decoder's JSON path); one that streams anyway is read as a
 * stream; other APIs still stream. */
static void test_whole_body(void **state)
{
    struct fx *fx = *state;
    char *jb = fu_data("providers/openai/json-text/input");
    char *ob = fu_data("providers/openai/text-basic/input");
    char *ab = fu_data("providers/anthropic/text-basic/input");
    struct ch_llm_call_opts o = {.model = "b/gpt-4o", .whole_body = true};
    struct rec r = {0};
    struct fu_req q;

    fu_push(&fx->fu, http(200, NULL, jb));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.stop, CH_LLM_STOP_END_TURN);
    assert_true(r.usage.output_tokens > 0);
    assert_true(strstr(r.log, "text ") != NULL && strstr(r.log, "stop end_turn") != NULL);
    q = fu_get(&fx->fu, 0);
    assert_null(strstr(q.body, "\"stream\""));
    assert_null(strstr(q.body, "stream_options"));
    rec_release(&r);

    fu_push(&fx->fu, sse(ob)); /* a server that streams whatever it is asked */
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, "text Hello\ntext  there! \xc3\xa9\xe2\x82\xac\nusage 19 10\nstop end_turn\n");
    rec_release(&r);

    o.model = NULL; /* the default chain: Anthropic, which keeps streaming */
    fu_push(&fx->fu, sse(ab));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(fu_get(&fx->fu, 2).body, "\"stream\":true"));
    rec_release(&r);
    free(jb);
    free(ob);
    free(ab);
}

/* Seed 000: a 429 on one key must not stall calls while another is free. */
static void test_429_moves_to_other_key(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct rec r = {0};
    struct ch_llm_stats st;
    json_t *sj, *k0;
    char *dump;

    fu_push(&fx->fu, http(429, "retry-after: 30\r\n", rate_body));
    fu_push(&fx->fu, sse(body));
    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, a_text_log);
    assert_int_equal(r.nattempts, 2);
    assert_int_equal(r.attempts[0].key_index, 0);
    assert_int_equal(r.attempts[0].http_status, 429);
    assert_int_equal(r.attempts[0].err, CH_LLM_ERR_RATE_LIMIT);
    assert_int_equal(r.attempts[1].key_index, 1);
    assert_int_equal(r.attempts[1].rc, 0);
    assert_string_equal(fu_get(&fx->fu, 0).key, "key-a");
    assert_string_equal(fu_get(&fx->fu, 1).key, "key-b");
    /* Key A cools down for the 30 s the server asked: the next call uses B. */
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nattempts, 1);
    assert_string_equal(fu_get(&fx->fu, 2).key, "key-b");
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.key_rotations, 1);
    assert_int_equal(st.retries, 0);
    sj = ch_llm_client_stats_json(fx->c);
    k0 = json_array_get(json_object_get(json_object_get(sj, "keys"), "a"), 0);
    assert_string_equal(json_string_value(json_object_get(k0, "state")), "cooling");
    assert_true(json_integer_value(json_object_get(k0, "retryInMs")) > 25000);
    dump = json_dumps(sj, 0);
    assert_non_null(dump);
    assert_null(strstr(dump, "key-a")); /* keys are never shown */
    assert_null(strstr(dump, "key-b"));
    ch_free(dump);
    json_decref(sj);
    rec_release(&r);
    free(body);
}

static void test_401_disables_key(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct rec r = {0};
    size_t i;

    fu_push(&fx->fu, http(401, NULL, auth_body));
    for (i = 0; i < 3; i++)
        fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.attempts[0].err, CH_LLM_ERR_AUTH);
    assert_string_equal(fu_get(&fx->fu, 1).key, "key-b");
    /* Key A stays out for ten minutes: every later call uses B. */
    run_call(fx, NULL, &r);
    run_call(fx, NULL, &r);
    assert_string_equal(fu_get(&fx->fu, 2).key, "key-b");
    assert_string_equal(fu_get(&fx->fu, 3).key, "key-b");
    rec_release(&r);
    free(body);
}

static void test_5xx_retried(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct rec r = {0};
    struct ch_llm_stats st;

    fu_push(&fx->fu, http(500, NULL, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}"));
    fu_push(&fx->fu, http(503, NULL, busy_body));
    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    expect_log(&r, a_text_log);
    assert_int_equal(r.nattempts, 3);
    assert_int_equal(r.attempts[0].http_status, 500);
    assert_int_equal(r.attempts[1].http_status, 503);
    assert_int_equal(r.attempts[2].http_status, 200);
    assert_string_equal(r.provider, "a");
    assert_int_equal(r.fallbacks, 0);
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.attempts, 3);
    rec_release(&r);
    free(body);
}

static void test_retry_after_single_key(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    const char *none[] = {NULL};
    struct ch_llm_call_opts o = {.model = "s", .fallbacks = none, .fallback_count = 0};
    struct rec r = {0};

    fu_push(&fx->fu, http(429, "retry-after-ms: 150\r\nretry-after: 1\r\n", rate_body));
    fu_push(&fx->fu, sse(body));
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nattempts, 2);
    assert_int_equal(r.attempts[0].key_index, 0);
    assert_int_equal(r.attempts[1].key_index, 0);
    assert_true(r.latency_ms >= 150); /* retry-after-ms wins over Retry-After */
    assert_true(r.latency_ms < 1000);
    assert_string_equal(fu_get(&fx->fu, 1).key, "only");
    rec_release(&r);
    free(body);
}

static void test_fallback_after_retries(void **state)
{
    struct fx *fx = *state;
    char *ob = fu_data("providers/openai/text-basic/input");
    struct rec r = {0};
    struct ch_llm_stats st;
    size_t i;

    for (i = 0; i < 3; i++) /* the first try and its two retries */
        fu_push(&fx->fu, http(503, NULL, busy_body));
    fu_push(&fx->fu, sse(ob));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.provider, "b");
    assert_string_equal(r.model, "gpt-4o");
    assert_int_equal(r.fallbacks, 1);
    assert_int_equal(r.nattempts, 4);
    assert_string_equal(r.refs[2], "a/claude-sonnet-4-20250514");
    assert_string_equal(r.refs[3], "b/gpt-4o");
    for (i = 0; i < 3; i++)
        assert_string_equal(fu_get(&fx->fu, i).path, "/a/v1/messages");
    assert_string_equal(fu_get(&fx->fu, 3).path, "/b/v1/chat/completions");
    expect_log(&r, "text Hello\ntext  there! \xc3\xa9\xe2\x82\xac\nusage 19 10\nstop end_turn\n");
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.fallbacks, 1);
    assert_int_equal(st.retries, 2);
    rec_release(&r);
    free(ob);
}

static void test_context_length_skips_retries(void **state)
{
    struct fx *fx = *state;
    char *ob = fu_data("providers/openai/text-basic/input");
    struct rec r = {0};

    fu_push(&fx->fu, http(400, NULL,
                          "{\"type\":\"error\",\"error\":{\"type\":"
                          "\"invalid_request_error\",\"message\":\"prompt is too long: 210000 "
                          "tokens > 200000 maximum\"}}"));
    fu_push(&fx->fu, sse(ob));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nattempts, 2);
    assert_int_equal(r.attempts[0].err, CH_LLM_ERR_CONTEXT_LENGTH);
    assert_string_equal(r.provider, "b");
    rec_release(&r);
    free(ob);
}

static void test_everything_fails(void **state)
{
    struct fx *fx = *state;
    struct rec r = {0};
    struct ch_llm_stats st;
    size_t i;

    /* Key A, then key B at once, then (both cooling 30 s, longer than a
     * backoff) the fallback, whose wait would pass the call's deadline. */
    for (i = 0; i < 3; i++)
        fu_push(&fx->fu, http(429, "retry-after: 30\r\n", rate_body));
    run_call(fx, NULL, &r);
    assert_int_equal(fu_count(&fx->fu), 3);
    assert_int_equal(r.nattempts, 3);
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.err, CH_LLM_ERR_RATE_LIMIT);
    assert_int_equal(r.stop, CH_LLM_STOP_ERROR);
    assert_null(r.msg);
    assert_string_equal(r.provider, "b"); /* the last model tried */
    assert_int_equal(r.fallbacks, 1);
    assert_non_null(strstr(r.message, "HTTP 429"));
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.calls_failed, 1);
    assert_int_equal(st.failures[CH_LLM_ERR_RATE_LIMIT], 1);
    rec_release(&r);
}

static void test_reload_keeps_cooldowns(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    char *json = config_json(fx->fu.port);
    struct ch_config *cfg = make_config(json);
    struct ch_config *bad = make_config("{\"models\": {\"retry\": {\"count\": -1}}}");
    struct ch_error err = {0};
    struct rec r = {0};

    fu_push(&fx->fu, http(429, "retry-after: 60\r\n", rate_body));
    fu_push(&fx->fu, sse(body));
    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(ch_llm_client_reload(fx->c, bad, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "models.retry.count"));
    assert_int_equal(ch_llm_client_reload(fx->c, cfg, &err), 0);
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(fu_get(&fx->fu, 2).key, "key-b"); /* A still cools down */
    free_config(cfg);
    free_config(bad);
    free(json);
    rec_release(&r);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_moves_to_other_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_disables_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5xx_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_single_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_after_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_length_skips_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_everything_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_cooldowns, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    /* OpenSSL's random generator allocates on first use (the client seeds
     * its jitter from it): do that before any test measures memory. */
    ch_random_bytes(&(uint64_t){0}, sizeof(uint64_t));
    ch_log_setup(getenv("CH_TEST_LOG") ? CH_LOG_DEBUG : CH_LOG_OFF, CH_LOG_TEXT);
    if (ch_curlm_global_init() != 0)
        return 1;
    /* libcurl is loaded at first use; load it here so its global state
     * (curl's and OpenSSL's, on our allocator) predates every test's
     * memory baseline. */
    if (ch_curl_load(NULL) != 0)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ch_curlm_global_cleanup();
    return rc;
}
