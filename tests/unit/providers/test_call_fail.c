/*
 * test_call_fail.c: how LLM calls fail, against the fake upstream: the
 * circuit breaker opening after N failures, failing fast (also as the only
 * model) and closing after a half-open probe; abort mid-stream and during
 * a backoff wait; a call freed in flight; abort_all; the total timeout
 * and the first-byte timeout; a stream dropped after deltas (reported,
 * not retried) and before any event (retried, the caller sees one clean
 * stream); a provider error inside the stream; nothing configured.
 * Shares its fixture with test_call.c (call_harness.h).
 */
#include "net/curl_dl.h"
#include "call_harness.h"

static const char *busy_body =
    "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The breaker of the endpoint whose URL ends in suffix. */
static json_t *find_breaker(json_t *stats, const char *suffix)
{
    json_t *b;
    size_t i, n = strlen(suffix);

    json_array_foreach(json_object_get(stats, "breakers"), i, b)
    {
        const char *e = json_string_value(json_object_get(b, "endpoint"));
        if (strlen(e) >= n && strcmp(e + strlen(e) - n, suffix) == 0)
            return b;
    }
    fail_msg("no breaker for %s", suffix);
    return NULL;
}

static void test_breaker(void **state)
{
    struct fx *fx = *state;
    char *ab = fu_data("providers/anthropic/text-basic/input");
    char *ob = fu_data("providers/openai/text-basic/input");
    const char *none[] = {NULL};
    struct ch_llm_call_opts only_a = {.model = "a", .fallbacks = none};
    struct rec r = {0};
    struct ch_llm_stats st;
    json_t *sj, *b;
    size_t i, n;

    /* Three 503s (the try and two retries) open a's breaker; b serves. */
    for (i = 0; i < 3; i++)
        fu_push(&fx->fu, http(503, NULL, busy_body));
    fu_push(&fx->fu, sse(ob));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.provider, "b");
    sj = ch_llm_client_stats_json(fx->c);
    b = find_breaker(sj, "/a");
    assert_string_equal(json_string_value(json_object_get(b, "state")), "open");
    json_decref(sj);

    /* Open, and the only model: fail fast without a request. */
    n = fu_count(&fx->fu);
    run_call(fx, &only_a, &r);
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.err, CH_LLM_ERR_UNKNOWN);
    assert_string_equal(r.message, "circuit open for a (retry in 1 s)");
    assert_int_equal(r.nattempts, 1);
    assert_false(r.attempts[0].sent);
    assert_int_equal(fu_count(&fx->fu), n);

    /* Open, with a fallback: straight to it. */
    fu_push(&fx->fu, sse(ob));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.provider, "b");
    assert_int_equal(r.nattempts, 2);
    assert_false(r.attempts[0].sent);
    assert_int_equal(fu_count(&fx->fu), n + 1);
    assert_string_equal(fu_get(&fx->fu, n).path, "/b/v1/chat/completions");

    /* After the cooldown (300 ms) one probe goes to a; it succeeds. */
    sleep_ms(350);
    fu_push(&fx->fu, sse(ab));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.provider, "a");
    sj = ch_llm_client_stats_json(fx->c);
    b = find_breaker(sj, "/a");
    assert_string_equal(json_string_value(json_object_get(b, "state")), "closed");
    assert_string_equal(json_string_value(json_object_get(find_breaker(sj, "/b/v1"), "state")), "closed");
    assert_int_equal(json_integer_value(json_object_get(b, "opened")), 1);
    json_decref(sj);
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.breaker_rejections, 2);
    assert_int_equal(st.calls, 4);
    assert_int_equal(st.calls_failed, 1);
    rec_release(&r);
    free(ab);
    free(ob);
}

static void test_probe_failure_reopens(void **state)
{
    struct fx *fx = *state;
    const char *none[] = {NULL};
    struct ch_llm_call_opts only_a = {.model = "a", .fallbacks = none};
    struct rec r = {0};
    size_t i;

    for (i = 0; i < 4; i++)
        fu_push(&fx->fu, http(500, NULL, busy_body));
    run_call(fx, &only_a, &r); /* three failures: open */
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.nattempts, 3);
    sleep_ms(350);
    /* The probe fails: open again at once, so its retry fails fast. */
    run_call(fx, &only_a, &r);
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.nattempts, 2);
    assert_true(r.attempts[0].sent);
    assert_int_equal(r.attempts[0].http_status, 500);
    assert_false(r.attempts[1].sent);
    assert_non_null(strstr(r.message, "circuit open for a"));
    assert_int_equal(fu_count(&fx->fu), 4);
    run_call(fx, &only_a, &r);
    assert_non_null(strstr(r.message, "circuit open for a"));
    assert_int_equal(fu_count(&fx->fu), 4);
    rec_release(&r);
}

static void test_abort_mid_stream(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct fu_resp s = sse(body);
    struct rec r = {.abort_on_text = true};

    s.mode = FU_STALL; /* up to the first delta, then silence */
    s.cut = after_nth(body, "\n\n", 4);
    fu_push(&fx->fu, s);
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, CH_ECANCELED);
    expect_log(&r, "usage 25 1\ntext Hello\n"); /* nothing after the abort */
    assert_true(r.latency_ms < 2000);
    assert_int_equal(r.nattempts, 1);
    rec_release(&r);
    free(body);
}

static void on_done_abort_timer(uv_timer_t *t)
{
    ch_llm_call_abort(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_abort_while_waiting(void **state)
{
    struct fx *fx = *state;
    const char *none[] = {NULL};
    struct ch_llm_call_opts o = {.model = "s", .fallbacks = none, .on_event = on_event, .on_done = on_done};
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "Hi");
    struct rec r = {0};
    uv_timer_t t;

    /* A single key told to wait 10 s: the call waits; abort it at 100 ms. */
    fu_push(&fx->fu, http(429, "retry-after: 10\r\n", "{}"));
    o.messages = msgs;
    o.data = &r;
    assert_int_equal(ch_llm_call_start(fx->c, &o, &r.call), 0);
    json_decref(msgs);
    uv_timer_init(&fx->loop, &t);
    t.data = r.call;
    uv_update_time(&fx->loop);
    uv_timer_start(&t, on_done_abort_timer, 100, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.rc, CH_ECANCELED);
    assert_true(r.latency_ms >= 100 && r.latency_ms < 2000);
    assert_int_equal(fu_count(&fx->fu), 1);
    rec_release(&r);
}

static void test_free_in_flight_and_abort_all(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct fu_resp s = sse(body);
    struct ch_llm_call_opts o = {.on_done = on_done};
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "Hi");
    struct rec r1 = {0}, r2 = {0};
    struct ch_llm_call *c1;
    struct ch_llm_stats st;

    s.mode = FU_STALL;
    fu_push(&fx->fu, s);
    fu_push(&fx->fu, s);
    o.messages = msgs;
    o.data = &r1;
    assert_int_equal(ch_llm_call_start(fx->c, &o, &c1), 0);
    o.data = &r2;
    assert_int_equal(ch_llm_call_start(fx->c, &o, &r2.call), 0);
    json_decref(msgs);
    /* Let both requests reach the server. */
    while (fu_count(&fx->fu) < 2)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.in_flight, 2);
    ch_llm_call_free(c1); /* silently: its on_done never fires */
    ch_llm_client_abort_all(fx->c);
    assert_int_equal(r2.done, 0); /* never inside abort */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r1.done, 0);
    assert_int_equal(r2.done, 1);
    assert_int_equal(r2.rc, CH_ECANCELED);
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.calls_aborted, 1);
    rec_release(&r2);
    free(body);
}

static void test_total_timeout(void **state)
{
    struct fx *fx = *state;
    struct ch_llm_call_opts o = {.timeout_ms = 200};
    struct rec r = {0};
    struct ch_llm_stats st;

    fu_push(&fx->fu, (struct fu_resp){.status = 200, .mode = FU_STALL});
    run_call(fx, &o, &r);
    assert_int_equal(r.rc, CH_ETIMEDOUT);
    assert_int_equal(r.err, CH_LLM_ERR_TIMEOUT);
    assert_non_null(strstr(r.message, "timed out"));
    assert_true(r.latency_ms >= 200 && r.latency_ms < 2000);
    assert_int_equal(r.nattempts, 1);
    ch_llm_client_stats(fx->c, &st);
    assert_int_equal(st.failures[CH_LLM_ERR_TIMEOUT], 1);
    rec_release(&r);
}

static void test_first_byte_timeout_retried(void **state)
{
    struct fx *fx = *state;
    char *json = config_json(fx->fu.port), *p;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct rec r = {0};

    /* Same config with a 150 ms first-byte timeout. */
    p = strstr(json, "\"firstByteMs\": 5000");
    memcpy(p, "\"firstByteMs\": 150 ", 19);
    ch_llm_client_free(fx->c);
    fx_client(fx, json);
    fu_push(&fx->fu, (struct fu_resp){.status = 200, .body = body, .mode = FU_SLOW_HEAD, .delay_ms = 1000});
    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nattempts, 2);
    assert_int_equal(r.attempts[0].err, CH_LLM_ERR_TIMEOUT);
    assert_int_equal(r.attempts[0].rc, CH_ETIMEDOUT);
    expect_log(&r, "usage 25 1\ntext Hello\ntext , world! \xc3\xa9\xe2\x82\xac\n"
                   "usage 25 15\nstop end_turn\n");
    rec_release(&r);
    free(json);
    free(body);
}

static void test_drop_after_deltas(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct fu_resp s = sse(body);
    struct rec r = {0};

    s.mode = FU_DROP;
    s.cut = after_nth(body, "\n\n", 4); /* message_start .. the first delta */
    fu_push(&fx->fu, s);
    fu_push(&fx->fu, sse(body)); /* must not be used */
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.nattempts, 1);
    assert_int_equal(fu_count(&fx->fu), 1);
    expect_log(&r, "usage 25 1\ntext Hello\n");
    /* What arrived is in the partial message. */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(r.msg, "content"), 0), "text")), "Hello");
    assert_int_equal(r.stop, CH_LLM_STOP_ERROR);
    rec_release(&r);
    free(body);
}

static void test_drop_before_events_retried(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    struct fu_resp s = sse(body);
    struct rec r = {0};

    s.mode = FU_DROP;
    s.cut = after_nth(body, "\n\n", 2); /* message_start (usage only) */
    fu_push(&fx->fu, s);
    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.nattempts, 2);
    /* The first attempt's usage was held back, so the caller sees one stream. */
    expect_log(&r, "usage 25 1\ntext Hello\ntext , world! \xc3\xa9\xe2\x82\xac\n"
                   "usage 25 15\nstop end_turn\n");
    rec_release(&r);
    free(body);
}

static void test_error_inside_stream(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/error-overloaded/input");
    struct rec r = {0};

    fu_push(&fx->fu, sse(body));
    run_call(fx, NULL, &r);
    /* "Partial" reached the caller: reported, not retried or replaced. */
    assert_int_equal(r.rc, CH_EIO);
    assert_int_equal(r.nattempts, 1);
    assert_string_equal(r.message, "Overloaded");
    expect_log(&r, "usage 25 1\ntext Partial\n");
    rec_release(&r);
    free(body);
}

static void test_nothing_configured(void **state)
{
    struct fx *fx = *state;
    struct rec r = {0};
    struct ch_llm_call_opts bad = {0};
    struct ch_llm_call *c = NULL;

    ch_llm_client_free(fx->c);
    fx_client(fx, "{}");
    run_call(fx, NULL, &r);
    assert_int_equal(r.rc, CH_ENOTFOUND);
    assert_non_null(strstr(r.message, "no LLM provider is configured"));
    assert_int_equal(r.nattempts, 0);
    assert_string_equal(r.provider, "");
    /* Unusable options fail start itself, and nothing fires. */
    assert_int_equal(ch_llm_call_start(fx->c, &bad, &c), CH_EINVAL);
    assert_int_equal(ch_llm_call_start(NULL, &bad, &c), CH_ECLOSED);
    assert_null(c);
    rec_release(&r);
}

/* Fail allocation N of client creation, then of starting a call (chain,
 * request, decoder, submit), for N = 1, 2, ...: every outcome is a clean
 * result (never a crash, never a second on_done), and teardown finds
 * nothing leaked. */
static void test_alloc_failures(void **state)
{
    struct fx *fx = *state;
    char *body = fu_data("providers/anthropic/text-basic/input");
    char *json = config_json(fx->fu.port);
    struct ch_config *cfg = make_config(json);
    struct ch_llm_client_opts co = {.rand = zero_rand, .env = empty_env};
    const char *none[] = {NULL};
    struct ch_llm_call_opts o = {.model = "s", .fallbacks = none};
    struct ch_llm_client *c2;
    struct rec r = {0};
    size_t live = ch_alloc_live_bytes();
    int ok = 0, rc = CH_ENOMEM;
    long n;

    for (n = 1; rc; n++) {
        c2 = NULL;
        ch_alloc_fail_after(n);
        rc = ch_llm_client_new(&fx->loop, fx->m, cfg, &co, &c2, NULL);
        ch_alloc_fail_after(0);
        if (rc) {
            assert_int_equal(rc, CH_ENOMEM);
            assert_null(c2);
            assert_int_equal(ch_alloc_live_bytes(), live);
        }
    }
    ch_llm_client_free(c2);
    assert_int_equal(ch_alloc_live_bytes(), live);

    for (n = 1; n <= 200; n++) {
        if (!fu_pending(&fx->fu)) /* the script holds at most FU_MAX entries */
            fu_push(&fx->fu, sse(body));
        g_fail_after = n;
        run_call(fx, &o, &r);
        g_fail_after = 0;
        ok += r.rc == 0;
        if (r.rc != 0 && r.rc != CH_ENOMEM && r.rc != CH_EIO && r.rc != CH_ETIMEDOUT)
            fail_msg("n=%ld: rc %d (%s)", n, r.rc, r.message);
        rec_release(&r);
    }
    if (!fu_pending(&fx->fu))
        fu_push(&fx->fu, sse(body));
    run_call(fx, &o, &r);
    if (r.rc)
        fail_msg("after the loop: %d %s", r.rc, r.message);
    assert_true(ok > 0);
    rec_release(&r);
    free_config(cfg);
    free(json);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_failure_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight_and_abort_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_after_deltas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_before_events_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_inside_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_random_bytes(&(uint64_t){0}, sizeof(uint64_t)); /* see test_call.c */
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
