/*
 * test_registry.c: the registry and call lifecycle (tools/registry.c) and
 * current_time (time_tool.c) on a real uv loop.  Definitions offered,
 * unknown tools and invalid input as error results, callbacks never inside
 * start or abort and exactly once, deadlines stopping a tool's work,
 * aborts, closing with calls in flight, result caps and UTF-8 repair,
 * registration errors, allocation failures.
 */
#include "net/curl_dl.h"
#include "tools_loop.h"

/* ------------------------------------------------------------------ */
/* A scriptable test tool                                               */
/* ------------------------------------------------------------------ */

enum slow_mode { SLOW_HANG, SLOW_TWICE, SLOW_FAIL, SLOW_BIG, SLOW_LATE };

struct slow {
    uv_timer_t timer; /* replies after an abort, like a transfer */
    struct ch_tool_call *call;
    enum slow_mode mode;
    int aborts, starts;
};

static void on_slow_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_slow_timer(uv_timer_t *t)
{
    struct slow *s = t->data;

    ch_tool_call_reply(s->call, false, "late text the registry replaces", 31, json_string("dropped"));
    s->call = NULL;
}

static int slow_start(struct ch_tool_call *call, const json_t *input)
{
    struct slow *s = ch_tool_call_spec_data(call);
    char big[5000];

    (void)input;
    s->starts++;
    s->call = call;
    switch (s->mode) {
    case SLOW_TWICE:
        ch_tool_call_reply(call, false, "first", 5, json_true());
        ch_tool_call_reply(call, true, "second", 6, json_false());
        return 0;
    case SLOW_FAIL: return CH_EIO;
    case SLOW_BIG:
        /* Invalid UTF-8 throughout, and longer than the 1 KiB cap. */
        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = i % 3 == 0 ? (char)0xff : 'a';
        ch_tool_call_reply(call, false, big, sizeof(big), NULL);
        return 0;
    case SLOW_LATE: ch_tool_call_reply(call, false, "ok", 2, NULL); return CH_EIO; /* ignored: the reply came first */
    default: return 0; /* SLOW_HANG: only an abort ends it */
    }
}

static void slow_abort(struct ch_tool_call *call)
{
    struct slow *s = ch_tool_call_spec_data(call);

    assert_ptr_equal(call, s->call);
    s->aborts++;
    uv_timer_start(&s->timer, on_slow_timer, 5, 0);
}

static const char slow_schema[] = "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":"
                                  "\"integer\"}},\"additionalProperties\":false}";

static void add_slow(struct fx *fx, struct slow *s, enum slow_mode mode)
{
    struct ch_tool_spec spec = {
        .name = "slow",
        .description = "a test tool",
        .input_schema = slow_schema,
        .start = slow_start,
        .abort = slow_abort,
        .data = s,
        .max_result_bytes = 1024,
    };
    struct ch_error err = {0};

    memset(s, 0, sizeof(*s));
    s->mode = mode;
    uv_timer_init(&fx->loop, &s->timer);
    s->timer.data = s;
    if (ch_tools_register(fx->t, &spec, &err))
        fail_msg("register: %s", err.msg);
}

static void close_slow(struct slow *s)
{
    uv_close((uv_handle_t *)&s->timer, on_slow_closed);
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

static bool defs_have(const json_t *defs, const char *name)
{
    size_t i;
    json_t *d;

    json_array_foreach(defs, i, d)
    {
        if (!strcmp(json_string_value(json_object_get(d, "name")), name)) {
            assert_true(json_string_length(json_object_get(d, "description")) > 10);
            assert_string_equal(json_string_value(json_object_get(json_object_get(d, "input_schema"), "type")),
                                "object");
            return true;
        }
    }
    return false;
}

static void test_definitions(void **state)
{
    const char *hosts[] = {"127.0.0.1"};
    struct ch_tools_opts o = {.http_allow_hosts = hosts, .http_allow_count = 1};
    struct fx fx;
    struct got g = {0};

    (void)state;
    fx_open(&fx, NULL);
    assert_int_equal(json_array_size(ch_tools_definitions(fx.t)), 2);
    assert_true(defs_have(ch_tools_definitions(fx.t), "current_time"));
    assert_true(defs_have(ch_tools_definitions(fx.t), "web_fetch"));
    /* Empty allowHosts: http_request is not offered... */
    assert_false(defs_have(ch_tools_definitions(fx.t), "http_request"));
    assert_true(ch_tools_has(fx.t, "http_request"));
    assert_int_equal(ch_tools_timeout_ms(fx.t), 30000);
    /* ...and a model calling it anyway learns which setting to change. */
    call_tool(&fx, "http_request", "{\"url\":\"http://127.0.0.1:8000/api/v1/openclaw/callback\"}", 0, &g);
    assert_true(g.is_error);
    assert_true(g.refused); /* the caller's error, not a failure */
    expect_has(&g, "tools.http.allowHosts");
    expect_has(&g, "the list is empty");
    got_release(&g);
    fx_close(&fx);

    fx_open(&fx, &o);
    assert_int_equal(json_array_size(ch_tools_definitions(fx.t)), 3);
    assert_true(defs_have(ch_tools_definitions(fx.t), "http_request"));
    fx_close(&fx);

    o.no_web_fetch = true;
    o.timeout_ms = 5000;
    fx_open(&fx, &o);
    assert_false(defs_have(ch_tools_definitions(fx.t), "web_fetch"));
    assert_false(ch_tools_has(fx.t, "web_fetch"));
    assert_int_equal(ch_tools_timeout_ms(fx.t), 5000);
    fx_close(&fx);
}

static void test_unknown_and_invalid(void **state)
{
    struct fx fx;
    struct got g = {0};

    (void)state;
    fx_open(&fx, NULL);
    call_tool(&fx, "shell_exec", "{}", 0, &g);
    assert_true(g.is_error);
    assert_true(g.refused);
    assert_string_equal(g.content, "unknown tool \"shell_exec\"; available tools: current_time, "
                                   "web_fetch");
    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":5}", 0, &g);
    assert_true(g.refused);
    assert_string_equal(g.content, "invalid input for tool current_time: input.timezone: "
                                   "expected string, got integer. Fix the arguments to match "
                                   "the tool's input_schema and call it again.");
    g.calls = 0;
    call_tool(&fx, "current_time", "{\"tz\":\"UTC\"}", 0, &g);
    expect_has(&g, "input: unexpected property \"tz\" (allowed: timezone)");
    g.calls = 0;
    call_tool(&fx, "current_time", NULL, 0, &g);
    expect_has(&g, "input: expected a value, got nothing");
    g.calls = 0;
    call_tool(&fx, "web_fetch", "{\"url\":\"\"}", 0, &g);
    expect_has(&g, "input.url: must be at least 1 character long");
    /* Bad calls of the API itself fire no callback. */
    assert_int_equal(ch_tool_call_start(fx.t, "current_time", NULL, 0, NULL, NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_tool_call_start(fx.t, NULL, NULL, 0, on_got, &g, NULL), CH_EINVAL);
    got_release(&g);
    fx_close(&fx);
}

static void test_current_time(void **state)
{
    struct ch_tools_opts o = {.tz_dir = "/nonexistent/zoneinfo"};
    struct fx fx;
    struct got g = {0};
    int64_t before = ch_now_ms(), ms;

    (void)state;
    fx_open(&fx, NULL);
    call_tool(&fx, "current_time", "{}", 0, &g);
    assert_false(g.is_error);
    assert_false(g.refused);
    expect_has(&g, "UTC: 20");
    expect_has(&g, "Unix time (ms): ");
    ms = json_integer_value(json_object_get(g.json, "unixMs"));
    assert_true(ms >= before && ms <= ch_now_ms());
    assert_non_null(strstr(json_string_value(json_object_get(g.json, "utc")), "Z"));
    assert_null(json_object_get(g.json, "local"));

    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":\"Asia/Seoul\"}", 0, &g);
    assert_false(g.is_error);
    expect_has(&g, "Local time in Asia/Seoul: ");
    expect_has(&g, "+09:00");
    expect_has(&g, "KST");
    assert_int_equal(json_integer_value(json_object_get(g.json, "utcOffsetSeconds")), 32400);
    assert_false(json_is_true(json_object_get(g.json, "isDst")));
    /* The local and UTC clocks agree: local - 9 h == UTC. */
    {
        const char *utc = json_string_value(json_object_get(g.json, "utc"));
        const char *loc = json_string_value(json_object_get(g.json, "local"));
        struct tm a = {0}, b = {0};
        assert_non_null(strptime(utc, "%Y-%m-%dT%H:%M:%S", &a));
        assert_non_null(strptime(loc, "%Y-%m-%dT%H:%M:%S", &b));
        assert_int_equal((long)(timegm(&b) - timegm(&a)), 9 * 3600);
        assert_int_equal(strlen(utc), 24); /* 2025-03-01T10:00:00.123Z */
    }

    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":\"Mars/Olympus_Mons\"}", 0, &g);
    assert_true(g.is_error);
    expect_has(&g, "unknown time zone \"Mars/Olympus_Mons\"");
    assert_true(g.refused); /* found out in the thread pool, still the input's fault */
    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":\"../../etc/passwd\"}", 0, &g);
    assert_true(g.is_error);
    expect_has(&g, "is not an IANA zone name");
    assert_true(g.refused);
    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":\"zone.tab\"}", 0, &g); /* not TZif */
    expect_has(&g, "unknown time zone");
    fx_close(&fx);

    fx_open(&fx, &o);
    g.calls = 0;
    call_tool(&fx, "current_time", "{\"timezone\":\"UTC\"}", 0, &g);
    expect_has(&g, "unknown time zone \"UTC\"");
    got_release(&g);
    fx_close(&fx);
}

static void test_deadline_and_abort(void **state)
{
    struct fx fx;
    struct slow s;
    struct got g = {0}, g2 = {0};
    struct ch_tool_call *call;
    json_t *in;

    (void)state;
    fx_open(&fx, NULL);
    add_slow(&fx, &s, SLOW_HANG);
    /* The deadline aborts the tool; its late reply is replaced. */
    call_tool(&fx, "slow", "{}", 50, &g);
    assert_int_equal(s.aborts, 1);
    assert_true(g.is_error);
    assert_true(g.timed_out);
    assert_false(g.aborted);
    assert_null(g.json);
    assert_string_equal(g.content, "tool slow timed out after 50 ms and was stopped (limit: "
                                   "TOOL_TIMEOUT / tools.timeoutSeconds)");
    assert_true(g.duration_ms >= 50);

    /* Abort: the callback comes later, once, marked aborted. */
    in = json_object();
    g2.in_start = true;
    assert_int_equal(ch_tool_call_start(fx.t, "slow", in, 0, on_got, &g2, &call), 0);
    json_decref(in); /* borrowed only during start */
    ch_tool_call_abort(call);
    ch_tool_call_abort(call); /* a no-op */
    g2.in_start = false;
    assert_int_equal(g2.calls, 0);
    run_until(&fx, &g2.calls, 1);
    assert_int_equal(s.aborts, 2);
    assert_true(g2.aborted);
    assert_false(g2.timed_out);
    assert_string_equal(g2.content, "tool slow was aborted before it finished");
    close_slow(&s);
    got_release(&g);
    got_release(&g2);
    fx_close(&fx);
}

static void test_reply_rules(void **state)
{
    struct fx fx;
    struct slow s;
    struct got g = {0};
    size_t fffd = 0;

    (void)state;
    fx_open(&fx, NULL);
    add_slow(&fx, &s, SLOW_TWICE);
    call_tool(&fx, "slow", "{\"x\":1}", 0, &g);
    assert_false(g.is_error); /* the first reply counts */
    assert_string_equal(g.content, "first");
    assert_true(json_is_true(g.json));
    s.mode = SLOW_FAIL;
    g.calls = 0;
    call_tool(&fx, "slow", "{}", 0, &g);
    assert_true(g.is_error);
    assert_string_equal(g.content, "tool slow failed: i/o error");
    s.mode = SLOW_LATE;
    g.calls = 0;
    call_tool(&fx, "slow", "{}", 0, &g);
    assert_false(g.is_error);
    assert_string_equal(g.content, "ok");
    /* Invalid UTF-8 is repaired and the 1 KiB cap holds, with a marker. */
    s.mode = SLOW_BIG;
    g.calls = 0;
    call_tool(&fx, "slow", "{}", 0, &g);
    assert_non_null(strstr(g.content, "\n[truncated: 5000 bytes, the first "));
    assert_true(strstr(g.content, "\n[truncated") - g.content <= 1024);
    for (const char *p = g.content; (p = strstr(p, "\xef\xbf\xbd")) != NULL; p += 3)
        fffd++;
    assert_true(fffd > 200);
    assert_int_equal(s.aborts, 0);
    close_slow(&s);
    got_release(&g);
    fx_close(&fx);
}

static struct fx *chain_fx;
static struct got chain_second;

static void on_chain(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    on_got(call, res, data);
    /* A callback may start the next call (the agent's next tool). */
    assert_int_equal(ch_tool_call_start(chain_fx->t, "current_time", NULL, 0, on_got, &chain_second, NULL), 0);
}

static void on_close_inside(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    on_got(call, res, data);
    ch_tools_close(chain_fx->t, on_fx_closed, chain_fx);
    chain_fx->t = NULL;
}

static void test_close_and_chain(void **state)
{
    struct fx fx;
    struct slow s;
    struct got g = {0}, g2 = {0};
    json_t *in;

    (void)state;
    fx_open(&fx, NULL);
    in = json_object();
    chain_fx = &fx;
    memset(&chain_second, 0, sizeof(chain_second));
    assert_int_equal(ch_tool_call_start(fx.t, "nope", in, 0, on_chain, &g, NULL), 0);
    run_until(&fx, &chain_second.calls, 1);
    assert_true(g.is_error);
    assert_true(chain_second.is_error);
    expect_has(&chain_second, "expected a value");
    got_release(&chain_second);

    /* Closing with a call in flight: it reports aborted, then the close. */
    add_slow(&fx, &s, SLOW_HANG);
    g.calls = 0;
    assert_int_equal(ch_tool_call_start(fx.t, "slow", in, 0, on_got, &g, NULL), 0);
    assert_int_equal(ch_tool_call_start(fx.t, "current_time", in, 0, on_close_inside, &g2, NULL), 0);
    run_until(&fx, &fx.closed, 1);
    assert_int_equal(g.calls, 1);
    assert_true(g.aborted);
    assert_int_equal(g2.calls, 1);
    assert_false(g2.is_error);
    close_slow(&s);
    json_decref(in);
    got_release(&g);
    got_release(&g2);
    fx.closed = 0;
    fx_close(&fx); /* t is NULL: only the manager and server remain */
}

static void test_close_refuses_new_calls(void **state)
{
    struct fx fx;
    struct got g = {0};
    struct ch_tools *t;

    (void)state;
    fx_open(&fx, NULL);
    t = fx.t;
    ch_tools_close(t, on_fx_closed, &fx);
    assert_int_equal(fx.closed, 0); /* never inside close */
    assert_int_equal(ch_tool_call_start(t, "current_time", NULL, 0, on_got, &g, NULL), CH_ECLOSED);
    ch_tools_close(t, on_fx_closed, &fx); /* twice: ignored */
    run_until(&fx, &fx.closed, 1);
    fx.t = NULL;
    fx.closed = 0;
    fx_close(&fx);
}

static int nop_start(struct ch_tool_call *c, const json_t *in)
{
    (void)in;
    ch_tool_call_reply(c, false, "", 0, NULL);
    return 0;
}

static void nop_abort(struct ch_tool_call *c)
{
    (void)c;
}

static void expect_register(struct fx *fx, const struct ch_tool_spec *spec, int want_rc, const char *want_msg)
{
    struct ch_error err = {0};

    assert_int_equal(ch_tools_register(fx->t, spec, &err), want_rc);
    if (want_msg && !strstr(err.msg, want_msg))
        fail_msg("register %s: \"%s\" lacks \"%s\"", spec->name ? spec->name : "(null)", err.msg, want_msg);
}

static void test_register_errors(void **state)
{
    struct ch_tool_spec ok = {.name = "t_ok",
                              .description = "d",
                              .start = nop_start,
                              .abort = nop_abort,
                              .input_schema = "{\"type\":\"object\"}"};
    struct ch_tool_spec bad;
    struct fx fx;
    char name[16];

    (void)state;
    fx_open(&fx, NULL);
    expect_register(&fx, &ok, 0, NULL);
    expect_register(&fx, &ok, CH_EEXIST, "already registered");
    bad = ok, bad.name = "has space";
    expect_register(&fx, &bad, CH_EINVAL, "needs a name");
    bad = ok, bad.name = "";
    expect_register(&fx, &bad, CH_EINVAL, "needs a name");
    bad = ok, bad.name = "x", bad.abort = NULL;
    expect_register(&fx, &bad, CH_EINVAL, "abort");
    bad = ok, bad.name = "x", bad.input_schema = "{not json";
    expect_register(&fx, &bad, CH_EINVAL, "input schema is not JSON");
    bad = ok, bad.name = "x", bad.input_schema = "{\"type\":\"string\"}";
    expect_register(&fx, &bad, CH_EINVAL, "must have type \"object\"");
    bad = ok, bad.name = "x",
    bad.input_schema = "{\"type\":\"object\",\"properties\":{\"a\":"
                       "{\"type\":\"string\",\"pattern\":\"x\"}}}";
    expect_register(&fx, &bad, CH_EINVAL, "schema.properties.a: keyword \"pattern\"");
    assert_false(ch_tools_has(fx.t, "x"));
    /* Up to CH_TOOLS_MAX_TOOLS: 4 built-ins (fetch_image hidden) + t_ok so far. */
    for (int i = 0; i < CH_TOOLS_MAX_TOOLS - 5; i++) {
        snprintf(name, sizeof(name), "t_%d", i);
        bad = ok, bad.name = name;
        expect_register(&fx, &bad, 0, NULL);
    }
    bad = ok, bad.name = "one_more";
    expect_register(&fx, &bad, CH_E_TOO_LARGE, "more than 64 tools");
    assert_int_equal(json_array_size(ch_tools_definitions(fx.t)), CH_TOOLS_MAX_TOOLS - 2);
    /* internal: not offered, unknown to callers, but its name is taken */
    assert_false(ch_tools_has(fx.t, "fetch_image"));
    fx_close(&fx);
    fx_open(&fx, NULL);
    bad = ok, bad.name = "fetch_image";
    expect_register(&fx, &bad, CH_EEXIST, "fetch_image");
    fx_close(&fx);
}

static void test_bad_options(void **state)
{
    const char *bad[] = {"ok.test", "*"};
    struct ch_tools_opts o = {.http_allow_hosts = bad, .http_allow_count = 2};
    struct ch_error err = {0};
    struct ch_tools *t = (struct ch_tools *)1;
    uv_loop_t loop;
    struct ch_curlm *m;
    size_t live = ch_alloc_live_bytes();

    (void)state;
    uv_loop_init(&loop);
    assert_int_equal(ch_curlm_new(&loop, NULL, &m), 0);
    assert_int_equal(ch_tools_new(&loop, m, &o, &t, &err), CH_EINVAL);
    assert_string_equal(err.msg, "tools.http.allowHosts[1]: \"*\" would allow every host; list "
                                 "the hosts (or \"*.domain\")");
    o = (struct ch_tools_opts){.fetch_allow_hosts = bad + 1, .fetch_allow_count = 1};
    assert_int_equal(ch_tools_new(&loop, m, &o, &t, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "tools.web.fetch.allowHosts[0]"));
    assert_int_equal(ch_tools_new(&loop, NULL, NULL, &t, &err), CH_EINVAL);
    assert_ptr_equal(t, (struct ch_tools *)1); /* untouched on failure */
    /* Allocation failure at every step: a clean error and no leak. */
    for (long n = 1;; n++) {
        int rc;
        ch_alloc_fail_after(n);
        rc = ch_tools_new(&loop, m, NULL, &t, &err);
        ch_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_true(rc == CH_ENOMEM || rc == CH_EINVAL);
        assert_true(n < 5000);
    }
    ch_tools_close(t, NULL, NULL);
    ch_curlm_close(m, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(ch_alloc_live_bytes(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions),
        cmocka_unit_test(test_unknown_and_invalid),
        cmocka_unit_test(test_current_time),
        cmocka_unit_test(test_deadline_and_abort),
        cmocka_unit_test(test_reply_rules),
        cmocka_unit_test(test_close_and_chain),
        cmocka_unit_test(test_close_refuses_new_calls),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_bad_options),
    };
    int rc;

    ch_alloc_install();
    if (ch_curlm_global_init() != 0)
        return 1;
    /* libcurl is loaded at first use; load it here so its global state
     * (curl's and OpenSSL's, on our allocator) predates every test's
     * memory baseline. */
    if (ch_curl_load(NULL) != 0)
        return 1;
    warm_thread_pool();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ch_curlm_global_cleanup();
    return rc;
}
