/*
 * test_errors.c: failure classification and retry hints
 * (providers/errors.c): real error bodies of each provider by HTTP status,
 * transport failures, failing stop reasons, and Retry-After in all its
 * RFC 9110 forms plus retry-after-ms.
 */
#include "providers_test.h"

struct http_case {
    enum ch_llm_api api;
    int status;
    const char *body;
    enum ch_llm_err want;
    bool retryable;
    const char *msg_prefix;
    int64_t retry_after_ms;
};

static const struct http_case http_cases[] = {
    {CH_LLM_ANTHROPIC, 429,
     "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Number of "
     "requests has exceeded your rate limit\"}}",
     CH_LLM_ERR_RATE_LIMIT, true, "Number of requests", -1},
    {CH_LLM_ANTHROPIC, 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
     CH_LLM_ERR_UNKNOWN, true, "Overloaded", -1},
    {CH_LLM_ANTHROPIC, 401,
     "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid "
     "x-api-key\"}}",
     CH_LLM_ERR_AUTH, false, "invalid x-api-key", -1},
    {CH_LLM_ANTHROPIC, 403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}",
     CH_LLM_ERR_AUTH, false, "no", -1},
    {CH_LLM_ANTHROPIC, 400,
     "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is "
     "too long: 210000 tokens > 200000 maximum\"}}",
     CH_LLM_ERR_CONTEXT_LENGTH, false, "prompt is too long", -1},
    {CH_LLM_ANTHROPIC, 413,
     "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\",\"message\":\"Request "
     "exceeds the maximum allowed number of bytes.\"}}",
     CH_LLM_ERR_CONTEXT_LENGTH, false, "Request exceeds", -1},
    {CH_LLM_ANTHROPIC, 400,
     "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"messages: "
     "text content blocks must be non-empty\"}}",
     CH_LLM_ERR_UNKNOWN, false, "messages: text", -1},
    {CH_LLM_ANTHROPIC, 500,
     "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server "
     "error\"}}",
     CH_LLM_ERR_UNKNOWN, true, "Internal server error", -1},
    {CH_LLM_OPENAI, 429,
     "{\"error\":{\"message\":\"Rate limit reached for gpt-4o\",\"type\":\"requests\","
     "\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
     CH_LLM_ERR_RATE_LIMIT, true, "Rate limit reached", -1},
    {CH_LLM_OPENAI, 429,
     "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":"
     "\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}",
     CH_LLM_ERR_RATE_LIMIT, false, "You exceeded", -1},
    {CH_LLM_OPENAI, 400,
     "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\","
     "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":"
     "\"context_length_exceeded\"}}",
     CH_LLM_ERR_CONTEXT_LENGTH, false, "This model's", -1},
    {CH_LLM_OPENAI, 401,
     "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc.\",\"type\":"
     "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
     CH_LLM_ERR_AUTH, false, "Incorrect API key", -1},
    {CH_LLM_OPENAI, 400,
     "{\"error\":{\"message\":\"Your request was rejected by our safety system.\",\"type\":"
     "\"invalid_request_error\",\"code\":\"content_policy_violation\"}}",
     CH_LLM_ERR_REFUSAL, false, "Your request", -1},
    {CH_LLM_OPENAI, 404,
     "{\"error\":{\"message\":\"The model `gpt-9` does not exist\",\"type\":"
     "\"invalid_request_error\",\"code\":\"model_not_found\"}}",
     CH_LLM_ERR_UNKNOWN, false, "The model", -1},
    {CH_LLM_OPENAI, 503, "{\"error\":{\"message\":\"The server is overloaded\"}}", CH_LLM_ERR_UNKNOWN, true,
     "The server", -1},
    {CH_LLM_OPENAI, 404, "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}", CH_LLM_ERR_UNKNOWN,
     false, "model \"llama9\"", -1},
    {CH_LLM_GEMINI, 429,
     "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota.\",\"status\":"
     "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc."
     "QuotaFailure\"},{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
     "\"retryDelay\":\"37s\"}]}}",
     CH_LLM_ERR_RATE_LIMIT, true, "You exceeded", 37000},
    {CH_LLM_GEMINI, 429,
     "{\"error\":{\"code\":429,\"message\":\"q\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":"
     "[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"1.5s\"}]}}",
     CH_LLM_ERR_RATE_LIMIT, true, "q", 1500},
    {CH_LLM_GEMINI, 400,
     "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API "
     "key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
     "google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}",
     CH_LLM_ERR_AUTH, false, "API key not valid", -1},
    {CH_LLM_GEMINI, 400,
     "{\"error\":{\"code\":400,\"message\":\"The input token count (1200000) exceeds the "
     "maximum number of tokens allowed (1048576).\",\"status\":\"INVALID_ARGUMENT\"}}",
     CH_LLM_ERR_CONTEXT_LENGTH, false, "The input token count", -1},
    {CH_LLM_GEMINI, 403,
     "{\"error\":{\"code\":403,\"message\":\"Permission denied\",\"status\":"
     "\"PERMISSION_DENIED\"}}",
     CH_LLM_ERR_AUTH, false, "Permission denied", -1},
    {CH_LLM_GEMINI, 504,
     "{\"error\":{\"code\":504,\"message\":\"Deadline expired\",\"status\":"
     "\"DEADLINE_EXCEEDED\"}}",
     CH_LLM_ERR_TIMEOUT, true, "Deadline expired", -1},
    {CH_LLM_GEMINI, 503,
     "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":"
     "\"UNAVAILABLE\"}}",
     CH_LLM_ERR_UNKNOWN, true, "The model is overloaded", -1},
    {CH_LLM_OPENAI, 408, "", CH_LLM_ERR_TIMEOUT, true, "HTTP 408", -1},
    {CH_LLM_OPENAI, 502, "<html><body>Bad Gateway</body></html>", CH_LLM_ERR_UNKNOWN, true, "<html><body>Bad Gateway",
     -1},
    {CH_LLM_ANTHROPIC, 500, NULL, CH_LLM_ERR_UNKNOWN, true, "HTTP 500", -1},
    {CH_LLM_ANTHROPIC, 0, "Connection refused", CH_LLM_ERR_UNKNOWN, true, "Connection refused", -1},
    {CH_LLM_OPENAI, 402, "{\"error\":{\"message\":\"Insufficient credits\",\"code\":402}}", CH_LLM_ERR_AUTH, false,
     "Insufficient credits", -1},
};

static void test_classify_http(void **state)
{
    struct ch_llm_failure f;
    size_t i, blocks = ch_alloc_live_blocks();

    (void)state;
    for (i = 0; i < CH_ARRAY_SIZE(http_cases); i++) {
        const struct http_case *c = &http_cases[i];
        memset(&f, 0x5a, sizeof(f));
        ch_llm_classify_http(c->api, c->status, c->body, c->body ? strlen(c->body) : 0, &f);
        if (f.err != c->want || f.retryable != c->retryable ||
            strncmp(f.message, c->msg_prefix, strlen(c->msg_prefix)) != 0 || f.retry_after_ms != c->retry_after_ms)
            fail_msg("case %zu (HTTP %d): got %s retryable=%d retry=%lld '%s'", i, c->status, ch_llm_err_name(f.err),
                     f.retryable, (long long)f.retry_after_ms, f.message);
    }
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

/* A body that is not NUL-terminated, and one much longer than the message:
 * only body_len bytes are read, and the message is truncated, not overrun. */
static void test_classify_raw_bodies(void **state)
{
    struct ch_llm_failure f;
    char body[600];

    (void)state;
    memcpy(body, "oops!!!!", 8);
    ch_llm_classify_http(CH_LLM_OPENAI, 500, body, 4, &f);
    assert_string_equal(f.message, "oops");
    memset(body, 'x', sizeof(body));
    ch_llm_classify_http(CH_LLM_OPENAI, 500, body, sizeof(body), &f);
    assert_true(strlen(f.message) < sizeof(f.message));
    assert_true(f.retryable);
    /* A JSON message longer than the field is cut at its size. */
    {
        char big[700];
        int n = snprintf(big, sizeof(big), "{\"error\":{\"message\":\"%0500d\"}}", 7);
        ch_llm_classify_http(CH_LLM_OPENAI, 400, big, (size_t)n, &f);
        assert_int_equal(strlen(f.message), sizeof(f.message) - 1);
        assert_int_equal(f.err, CH_LLM_ERR_UNKNOWN);
    }
    /* JSON that is not an object is treated as text. */
    ch_llm_classify_http(CH_LLM_GEMINI, 429, "[1]", 3, &f);
    assert_int_equal(f.err, CH_LLM_ERR_RATE_LIMIT);
    assert_string_equal(f.message, "[1]");
}

static void test_classify_transport(void **state)
{
    struct ch_llm_failure f;

    (void)state;
    ch_llm_classify_transport(CH_ETIMEDOUT, "first byte timeout after 30000 ms", &f);
    assert_int_equal(f.err, CH_LLM_ERR_TIMEOUT);
    assert_true(f.retryable);
    assert_string_equal(f.message, "first byte timeout after 30000 ms");
    ch_llm_classify_transport(CH_EIO, NULL, &f);
    assert_int_equal(f.err, CH_LLM_ERR_UNKNOWN);
    assert_true(f.retryable);
    assert_string_equal(f.message, ch_strerror(CH_EIO));
    assert_int_equal(f.retry_after_ms, -1);
}

static void test_names_and_stops(void **state)
{
    static const char *const errs[] = {"rate_limit", "timeout", "context_length", "auth", "refusal", "unknown"};
    static const char *const stops[] = {"end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "error"};
    enum ch_llm_err e = CH_LLM_ERR_AUTH;
    int i;

    (void)state;
    for (i = 0; i < 6; i++) {
        assert_string_equal(ch_llm_err_name((enum ch_llm_err)i), errs[i]);
        assert_string_equal(ch_llm_stop_name((enum ch_llm_stop)i), stops[i]);
    }
    assert_string_equal(ch_llm_err_name((enum ch_llm_err)99), "unknown");
    assert_string_equal(ch_llm_stop_name((enum ch_llm_stop)99), "error");
    assert_false(ch_llm_stop_is_failure(CH_LLM_STOP_END_TURN, &e));
    assert_int_equal(e, CH_LLM_ERR_AUTH); /* untouched */
    assert_false(ch_llm_stop_is_failure(CH_LLM_STOP_TOOL_USE, NULL));
    assert_false(ch_llm_stop_is_failure(CH_LLM_STOP_MAX_TOKENS, NULL));
    assert_true(ch_llm_stop_is_failure(CH_LLM_STOP_REFUSAL, &e));
    assert_int_equal(e, CH_LLM_ERR_REFUSAL);
    assert_true(ch_llm_stop_is_failure(CH_LLM_STOP_ERROR, &e));
    assert_int_equal(e, CH_LLM_ERR_UNKNOWN);
    assert_true(ch_llm_stop_is_failure(CH_LLM_STOP_ERROR, NULL));
}

struct ra_case {
    const char *retry_after, *retry_after_ms;
    int rc;
    int64_t want;
};

/* 2015-10-21T07:28:00Z, the RFC 9110 example date. */
#define RA_DATE_MS 1445412480000LL

static void test_retry_after(void **state)
{
    static const struct ra_case cases[] = {
        {"120", NULL, 0, 120000},
        {"0", NULL, 0, 0},
        {"1.5", NULL, 0, 1500},
        {" 5 ", NULL, 0, 5000},
        {NULL, "250", 0, 250},
        {"10", "250", 0, 250},            /* the precise one wins */
        {"3", "abc", 0, 3000},            /* a bad ms header falls back */
        {"999999999", NULL, 0, 86400000}, /* capped at a day */
        {NULL, "1e3", CH_ENOTFOUND, 0},
        {"abc", NULL, CH_ENOTFOUND, 0},
        {"-5", NULL, CH_ENOTFOUND, 0},
        {"", NULL, CH_ENOTFOUND, 0},
        {".", NULL, CH_ENOTFOUND, 0},
        {NULL, NULL, CH_ENOTFOUND, 0},
        {"Wed, 21 Oct 2015 07:28:30 GMT", NULL, 0, 30000},
        {"Wednesday, 21-Oct-15 07:28:30 GMT", NULL, 0, 30000},
        {"Wed Oct 21 07:28:30 2015", NULL, 0, 30000},
        {" Wed, 21 Oct 2015 07:29:00 GMT ", NULL, 0, 60000},
        {"Wed, 21 Oct 2015 07:27:00 GMT", NULL, 0, 0}, /* past: now */
        {"Wed, 21 Oct 2016 07:28:00 GMT", NULL, 0, 86400000},
        {"Wed, 21 Foo 2015 07:28:00 GMT", NULL, CH_ENOTFOUND, 0},
        {"Wed, 21 Oct 2015 07:28:00 UTC", NULL, CH_ENOTFOUND, 0},
        {"Wed, 21 Oct 2015 07:28:00 GMT junk", NULL, CH_ENOTFOUND, 0},
        {"Wed, 32 Oct 2015 07:28:00 GMT", NULL, CH_ENOTFOUND, 0},
        {"Wed, 21 Oct 2015 25:28:00 GMT", NULL, CH_ENOTFOUND, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < CH_ARRAY_SIZE(cases); i++) {
        int64_t got = -7;
        int rc = ch_llm_retry_after(cases[i].retry_after, cases[i].retry_after_ms, RA_DATE_MS, &got);
        if (rc != cases[i].rc || (rc == 0 && got != cases[i].want))
            fail_msg("case %zu ('%s', '%s'): rc %d got %lld", i, cases[i].retry_after ? cases[i].retry_after : "(null)",
                     cases[i].retry_after_ms ? cases[i].retry_after_ms : "(null)", rc, (long long)got);
        if (rc)
            assert_int_equal(got, -7); /* output untouched on failure */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_http),      cmocka_unit_test(test_classify_raw_bodies),
        cmocka_unit_test(test_classify_transport), cmocka_unit_test(test_names_and_stops),
        cmocka_unit_test(test_retry_after),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
