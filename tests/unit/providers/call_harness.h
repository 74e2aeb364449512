/*
 * call_harness.h: the fixture shared by the LLM call tests: a real uv
 * loop, a curl manager, the fake upstream (fake_upstream.h), a client
 * built from a config that points providers at it, and a recorder that
 * renders every event one line each so tests compare whole streams.
 *
 * Providers in the config (all on the fake's port):
 *   a  anthropic-messages   /a      keys key-a, key-b   priced 3/15/0.3/3.75
 *   b  openai-completions   /b/v1   key key-o           gpt-4o (built-in price)
 *   g  google-generative-ai /g      key key-g
 *   s  anthropic-messages   /s      one key "only"
 * Default chain a/claude-sonnet-4-20250514 then b/gpt-4o; 2 retries with
 * a 1 ms base delay; breaker after 3 failures for 300 ms.  Jitter is
 * pinned to 0 so the only waits are the ones a test asks for.
 */
#ifndef CH_CALL_HARNESS_H
#define CH_CALL_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Each test file uses a different subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "fake_upstream.h"
#include "providers/client.h"

struct fx {
    uv_loop_t loop;
    struct ch_curlm *m;
    struct ch_llm_client *c;
    struct fu fu;
    size_t live_bytes;
    int m_closed;
    const char *const *env;
};

struct rec {
    int done;
    struct ch_llm_call *call;
    char log[8192]; /* one line per event */
    int text_events;
    bool abort_on_text; /* abort at the first TEXT_DELTA */
    /* Copies of the result (the original dies with the call). */
    int rc;
    enum ch_llm_err err;
    char message[256];
    char provider[64], model[128], ref[256], reported[128];
    json_t *msg; /* deep copy of message_json, or NULL */
    struct ch_llm_usage usage;
    enum ch_llm_stop stop;
    double cost;
    struct ch_llm_attempt attempts[CH_LLM_MAX_ATTEMPTS]; /* .ref is dangling: use refs */
    char refs[CH_LLM_MAX_ATTEMPTS][CH_LLM_MAX_REF_BYTES];
    size_t nattempts;
    uint32_t fallbacks;
    uint64_t latency_ms, first_token_ms;
};

static const char *const empty_env[] = {NULL};

static uint64_t zero_rand(void *data)
{
    (void)data;
    return 0;
}

static void logf_(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct rec *r, const char *fmt, ...)
{
    size_t n = strlen(r->log);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
    va_end(ap);
}

static void on_event(const struct ch_llm_event *ev, void *data)
{
    struct rec *r = data;
    char *in;

    switch (ev->type) {
    case CH_LLM_EV_TEXT_DELTA:
        logf_(r, "text %.*s\n", (int)ev->text.len, ev->text.p);
        r->text_events++;
        if (r->abort_on_text)
            ch_llm_call_abort(r->call);
        break;
    case CH_LLM_EV_TOOL_START: logf_(r, "tool_start %d %s %s\n", ev->index, ev->tool_id, ev->tool_name); break;
    case CH_LLM_EV_TOOL_ARGS_DELTA: logf_(r, "tool_args %d %.*s\n", ev->index, (int)ev->text.len, ev->text.p); break;
    case CH_LLM_EV_TOOL_END:
        in = json_dumps(ev->tool_input, JSON_COMPACT | JSON_SORT_KEYS);
        logf_(r, "tool_end %d %s %s\n", ev->index, ev->tool_name, in ? in : "-");
        ch_free(in);
        break;
    case CH_LLM_EV_USAGE:
        logf_(r, "usage %llu %llu\n", (unsigned long long)ev->usage.input_tokens,
              (unsigned long long)ev->usage.output_tokens);
        break;
    case CH_LLM_EV_STOP: logf_(r, "stop %s\n", ch_llm_stop_name(ev->stop)); break;
    case CH_LLM_EV_ERROR:
        logf_(r, "error %s\n", ev->message); /* must never be forwarded */
        break;
    }
}

static void on_done(struct ch_llm_call *call, const struct ch_llm_result *res, void *data)
{
    struct rec *r = data;

    r->done++;
    r->rc = res->rc;
    r->err = res->err;
    snprintf(r->message, sizeof(r->message), "%s", res->message);
    snprintf(r->provider, sizeof(r->provider), "%s", res->provider);
    snprintf(r->model, sizeof(r->model), "%s", res->model);
    snprintf(r->ref, sizeof(r->ref), "%s", res->ref);
    snprintf(r->reported, sizeof(r->reported), "%s", res->reported_model);
    json_decref(r->msg);
    r->msg = res->message_json ? json_deep_copy(res->message_json) : NULL;
    r->usage = res->usage;
    r->stop = res->stop;
    r->cost = res->cost_usd;
    r->nattempts = res->attempt_count;
    memcpy(r->attempts, res->attempts, res->attempt_count * sizeof(*res->attempts));
    for (size_t i = 0; i < res->attempt_count; i++) {
        snprintf(r->refs[i], sizeof(r->refs[i]), "%s", res->attempts[i].ref);
        r->attempts[i].ref = NULL;
    }
    r->fallbacks = res->fallbacks;
    r->latency_ms = res->latency_ms;
    r->first_token_ms = res->first_token_ms;
    ch_llm_call_free(call);
}

static void rec_release(struct rec *r)
{
    json_decref(r->msg);
    r->msg = NULL;
}

static char *config_json(int port)
{
    static const char *fmt =
        "{\"models\": {\"providers\": {"
        " \"a\": {\"api\": \"anthropic-messages\", \"baseUrl\": \"http://127.0.0.1:%d/a\","
        "   \"apiKeys\": [\"key-a\", \"key-b\"], \"models\": [{\"id\": \"claude-sonnet-4-20250514\","
        "   \"pricing\": {\"input\": 3, \"output\": 15, \"cacheRead\": 0.3, \"cacheWrite\": 3.75}}]},"
        " \"b\": {\"api\": \"openai-completions\", \"baseUrl\": \"http://127.0.0.1:%d/b/v1\","
        "   \"apiKey\": \"key-o\", \"models\": [{\"id\": \"gpt-4o\"}]},"
        " \"g\": {\"api\": \"google-generative-ai\", \"baseUrl\": \"http://127.0.0.1:%d/g\","
        "   \"apiKey\": \"key-g\"},"
        " \"s\": {\"api\": \"anthropic-messages\", \"baseUrl\": \"http://127.0.0.1:%d/s\","
        "   \"apiKey\": \"only\"}},"
        " \"retry\": {\"count\": 2, \"baseDelayMs\": 1, \"maxDelayMs\": 20},"
        " \"circuitBreaker\": {\"failureThreshold\": 3, \"cooldownMs\": 300},"
        " \"timeouts\": {\"firstByteMs\": 5000, \"idleMs\": 5000, \"callMs\": 20000}},"
        " \"agents\": {\"defaults\": {\"model\": {\"primary\": \"a/claude-sonnet-4-20250514\","
        "   \"fallbacks\": [\"b/gpt-4o\"]}}}}";
    char *s = malloc(4096);

    snprintf(s, 4096, fmt, port, port, port, port);
    return s;
}

static struct ch_config *make_config(const char *json)
{
    struct ch_config *c = calloc(1, sizeof(*c));

    c->root = json_loads(json, 0, NULL);
    assert_non_null(c->root);
    return c;
}

static void free_config(struct ch_config *c)
{
    json_decref(c->root);
    free(c);
}

/* A client for `json` (NULL: the harness config). */
static void fx_client(struct fx *fx, const char *json)
{
    struct ch_llm_client_opts o = {.rand = zero_rand, .env = empty_env};
    char *own = json ? NULL : config_json(fx->fu.port);
    struct ch_config *cfg = make_config(json ? json : own);
    struct ch_error err = {0};

    if (ch_llm_client_new(&fx->loop, fx->m, cfg, &o, &fx->c, &err))
        fail_msg("client: %s", err.msg);
    free_config(cfg);
    free(own);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    fx->live_bytes = ch_alloc_live_bytes();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fu_start(&fx->fu);
    assert_int_equal(ch_curlm_new(&fx->loop, NULL, &fx->m), 0);
    fx_client(fx, NULL);
    *state = fx;
    return 0;
}

static void on_m_closed(void *data)
{
    ((struct fx *)data)->m_closed++;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    ch_llm_client_free(fx->c);
    ch_curlm_close(fx->m, on_m_closed, fx);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(fx->m_closed, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    fu_stop(&fx->fu);
    assert_int_equal(ch_alloc_live_bytes(), fx->live_bytes);
    free(fx);
    return 0;
}

/* When non-zero, run_call fails the n-th allocation made inside
 * ch_llm_call_start (which resolves the chain, builds the first request
 * and submits it).  Disarmed when start returns: libcurl's own transfer
 * code under allocation failure is test_curlm's business, and it is not
 * robust there (stalls, and a SIGFPE seen in 7.88). */
static long g_fail_after;

/* Run one call to completion.  opts may be NULL (the default chain). */
static void run_call(struct fx *fx, const struct ch_llm_call_opts *opts, struct rec *r)
{
    struct ch_llm_call_opts o = opts ? *opts : (struct ch_llm_call_opts){0};
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "Hi");
    int rc;

    memset(r->log, 0, sizeof(r->log));
    r->done = 0;
    r->text_events = 0;
    o.messages = msgs;
    o.on_event = on_event;
    o.on_done = on_done;
    o.data = r;
    assert_non_null(msgs);
    ch_alloc_fail_after(g_fail_after);
    rc = ch_llm_call_start(fx->c, &o, &r->call);
    ch_alloc_fail_after(0);
    if (rc == CH_ENOMEM && g_fail_after) {
        json_decref(msgs);
        r->rc = rc;
        return;
    }
    assert_int_equal(rc, 0);
    json_decref(msgs);            /* the call holds its own reference */
    assert_int_equal(r->done, 0); /* never inside start */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r->done, 1);
}

static void expect_log(const struct rec *r, const char *want)
{
    if (strcmp(r->log, want) != 0)
        fail_msg("events:\n%s\nexpected:\n%s", r->log, want);
}

static struct fu_resp sse(const char *body)
{
    return (struct fu_resp){.status = 200, .body = body, .mode = FU_SSE, .delay_ms = 2};
}

static struct fu_resp http(int status, const char *headers, const char *body)
{
    return (struct fu_resp){.status = status, .headers = headers, .body = body, .mode = FU_WHOLE};
}

/* Byte offset just past the n-th occurrence of needle in s. */
static size_t after_nth(const char *s, const char *needle, int n)
{
    const char *p = s;

    while (n-- > 0) {
        p = strstr(p, needle);
        assert_non_null(p);
        p += strlen(needle);
    }
    return (size_t)(p - s);
}

#endif
