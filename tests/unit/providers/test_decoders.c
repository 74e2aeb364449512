/*
 * test_decoders.c: the response decoders (providers/decoder.c and
 * <api>_stream.c) on recorded-style provider bodies.
 *
 * Case directories tests/unit/data/providers/<api>/<case>/ hold `input`
 * (the raw HTTP body: SSE, or JSON when the case name starts with "json-")
 * and `expect`: one line per event, then "--", the final message JSON
 * (sorted keys) and a result line.  Every case is decoded whole, split in
 * two at every byte boundary, and one byte at a time, with identical
 * output; and under allocation failure at every step (clean error, no
 * leak).  A missing expect file is written as expect.new for review.
 */
#include "providers_test.h"

#define DATA_DIR "tests/unit/data/providers"

static const char *const api_dirs[CH_LLM_API__COUNT] = {
    [CH_LLM_ANTHROPIC] = "anthropic",
    [CH_LLM_OPENAI] = "openai",
    [CH_LLM_GEMINI] = "gemini",
};

static void on_event(const struct ch_llm_event *ev, void *data)
{
    struct tout *o = data;
    char *s;

    switch (ev->type) {
    case CH_LLM_EV_TEXT_DELTA:
        tout_add(o, "text \"", 6);
        tout_esc(o, ev->text.p, ev->text.len);
        tout_add(o, "\"\n", 2);
        break;
    case CH_LLM_EV_TOOL_START:
        tout_printf(o, "tool_start %d id=%s name=%s\n", ev->index, ev->tool_id, ev->tool_name);
        break;
    case CH_LLM_EV_TOOL_ARGS_DELTA:
        tout_printf(o, "tool_args %d \"", ev->index);
        tout_esc(o, ev->text.p, ev->text.len);
        tout_add(o, "\"\n", 2);
        break;
    case CH_LLM_EV_TOOL_END:
        tout_printf(o, "tool_end %d id=%s name=%s ", ev->index, ev->tool_id, ev->tool_name);
        if (ev->tool_input) {
            assert_null(ev->tool_error);
            assert_true(json_is_object(ev->tool_input));
            /* The dump allocates too: under fault injection it may fail. */
            s = json_dumps(ev->tool_input, JSON_COMPACT | JSON_SORT_KEYS);
            tout_printf(o, "input=%.900s\n", s ? s : "(dump failed)");
            ch_free(s);
        } else {
            assert_non_null(ev->tool_error);
            tout_add(o, "error=\"", 7);
            tout_esc(o, ev->tool_error, strlen(ev->tool_error));
            tout_add(o, "\"\n", 2);
        }
        break;
    case CH_LLM_EV_USAGE:
        tout_printf(o, "usage in=%llu out=%llu cache_read=%llu cache_write=%llu\n",
                    (unsigned long long)ev->usage.input_tokens, (unsigned long long)ev->usage.output_tokens,
                    (unsigned long long)ev->usage.cache_read_tokens, (unsigned long long)ev->usage.cache_write_tokens);
        break;
    case CH_LLM_EV_STOP: tout_printf(o, "stop %s raw=%s\n", ch_llm_stop_name(ev->stop), ev->raw_stop); break;
    case CH_LLM_EV_ERROR:
        tout_printf(o, "error %s retryable=%d \"", ch_llm_err_name(ev->err), ev->retryable);
        tout_esc(o, ev->message, strlen(ev->message));
        tout_add(o, "\"\n", 2);
        break;
    }
}

/* Decode `in` fed in the chunks given by the cut points; render all. */
static char *decode(enum ch_llm_api api, bool stream, const char *in, size_t len, const size_t *cuts, size_t ncuts,
                    int *rc_out)
{
    struct ch_llm_decoder *d = NULL;
    struct tout o = {0};
    size_t i, from = 0;
    int rc, frc;
    char *s;

    rc = ch_llm_decoder_new(&d, api, stream, on_event, &o);
    if (rc) {
        assert_int_equal(rc, CH_ENOMEM);
        assert_null(d);
        *rc_out = rc;
        tout_add(&o, "new failed\n", 11);
        return o.p;
    }
    for (i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        rc = ch_llm_decoder_feed(d, in + from, to - from);
        from = to;
        if (rc)
            break;
    }
    frc = ch_llm_decoder_finish(d);
    if (rc)
        assert_int_equal(frc, rc); /* the terminal error sticks */
    /* finish() is idempotent and emits nothing more. */
    {
        size_t before = o.len;
        assert_int_equal(ch_llm_decoder_finish(d), frc);
        assert_int_equal(ch_llm_decoder_feed(d, "data: {}\n\n", 10), frc);
        assert_int_equal(o.len, before);
    }
    tout_add(&o, "--\n", 3);
    if (ch_llm_decoder_message(d)) {
        s = json_dumps(ch_llm_decoder_message(d), JSON_COMPACT | JSON_SORT_KEYS);
        if (s) {
            tout_printf(&o, "message %.900s\n", s);
            ch_free(s);
        } else {
            tout_add(&o, "message dump failed\n", 20);
        }
    } else {
        tout_add(&o, "message null\n", 13);
    }
    tout_printf(&o, "result rc=%s stop=%s model=%s\n", trc_name(frc), ch_llm_stop_name(ch_llm_decoder_stop(d)),
                ch_llm_decoder_model(d));
    ch_llm_decoder_free(d);
    *rc_out = frc;
    return o.p;
}

static bool run_case(enum ch_llm_api api, const char *name)
{
    char path[512], *in, *want, *got, what[600];
    bool stream = strncmp(name, "json-", 5) != 0;
    size_t len = 0, cut, i, *cuts;
    int rc;

    snprintf(path, sizeof(path), "%s/%s/%s/input", DATA_DIR, api_dirs[api], name);
    in = tfile_read(path, &len);
    if (!in)
        fail_msg("case %s/%s has no input", api_dirs[api], name);
    snprintf(path, sizeof(path), "%s/%s/%s/expect", DATA_DIR, api_dirs[api], name);
    want = tfile_read(path, NULL);
    got = decode(api, stream, in, len, NULL, 0, &rc);
    if (!want) {
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s/%s/expect.new", DATA_DIR, api_dirs[api], name);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
        print_error("case %s/%s: no expect; wrote %s for review\n", api_dirs[api], name, path);
        free(got);
        free(in);
        return false;
    }
    snprintf(what, sizeof(what), "%s/%s whole", api_dirs[api], name);
    texpect_eq(what, got, want);
    free(got);

    for (cut = 0; cut <= len; cut++) {
        got = decode(api, stream, in, len, &cut, 1, &rc);
        snprintf(what, sizeof(what), "%s/%s split at %zu", api_dirs[api], name, cut);
        texpect_eq(what, got, want);
        free(got);
    }
    cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (i = 0; i < len; i++)
        cuts[i] = i;
    got = decode(api, stream, in, len, cuts, len, &rc);
    snprintf(what, sizeof(what), "%s/%s byte by byte", api_dirs[api], name);
    texpect_eq(what, got, want);
    free(got);
    free(cuts);
    free(in);
    free(want);
    return true;
}

static void run_api(enum ch_llm_api api)
{
    char dir[256];
    size_t n, i, blocks = ch_alloc_live_blocks();
    char **names;
    bool all = true;

    snprintf(dir, sizeof(dir), "%s/%s", DATA_DIR, api_dirs[api]);
    names = tdir_list(dir, &n);
    assert_true(n >= 12);
    for (i = 0; i < n; i++)
        all &= run_case(api, names[i]);
    tnames_free(names, n);
    if (!all)
        fail_msg("%s: some cases have no expect file", api_dirs[api]);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

static void test_anthropic(void **state)
{
    (void)state;
    run_api(CH_LLM_ANTHROPIC);
}

static void test_openai(void **state)
{
    (void)state;
    run_api(CH_LLM_OPENAI);
}

static void test_gemini(void **state)
{
    (void)state;
    run_api(CH_LLM_GEMINI);
}

/* Fail allocation N for N = 1, 2, ... until the case decodes as expected:
 * every run must end cleanly (the renderer asserts event invariants) and
 * give back every block. */
static void alloc_loop(enum ch_llm_api api, const char *name)
{
    char path[512], *in, *want, *got;
    bool stream = strncmp(name, "json-", 5) != 0, ok = false;
    size_t len = 0, blocks = ch_alloc_live_blocks();
    long n;
    int rc;

    snprintf(path, sizeof(path), "%s/%s/%s/input", DATA_DIR, api_dirs[api], name);
    in = tfile_read(path, &len);
    assert_non_null(in);
    snprintf(path, sizeof(path), "%s/%s/%s/expect", DATA_DIR, api_dirs[api], name);
    want = tfile_read(path, NULL);
    assert_non_null(want);
    for (n = 1; n < 20000 && !ok; n++) {
        ch_alloc_fail_after(n);
        got = decode(api, stream, in, len, NULL, 0, &rc);
        ch_alloc_fail_after(0);
        ok = strcmp(got, want) == 0;
        /* What is checked is that every run ends (no crash: the renderer
         * asserts the event invariants), and gives every block back.  The
         * output itself cannot be required exact: jansson 2.14's lexer
         * ignores a failed buffer growth and drops a byte of a string
         * ("promptTokenCout"), and reports other failures as syntax errors. */
        free(got);
        assert_int_equal(ch_alloc_live_blocks(), blocks);
    }
    assert_true(ok);
    free(in);
    free(want);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    alloc_loop(CH_LLM_ANTHROPIC, "tool-use");
    alloc_loop(CH_LLM_ANTHROPIC, "json-tool");
    alloc_loop(CH_LLM_OPENAI, "parallel-tools");
    alloc_loop(CH_LLM_OPENAI, "json-tools");
    alloc_loop(CH_LLM_GEMINI, "function-call");
    alloc_loop(CH_LLM_GEMINI, "json-function-call");
}

/* The accessors before finish, and an unknown API kind. */
static void test_api_edges(void **state)
{
    static const char body[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                               "\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    struct ch_llm_decoder *d = (void *)1;

    (void)state;
    assert_int_equal(ch_llm_decoder_new(&d, CH_LLM_API__COUNT, true, NULL, NULL), CH_EINVAL);
    assert_null(d);
    assert_int_equal(ch_llm_decoder_new(&d, CH_LLM_OPENAI, true, NULL, NULL), 0);
    assert_null(ch_llm_decoder_message(d));
    assert_string_equal(ch_llm_decoder_model(d), "");
    assert_int_equal(ch_llm_decoder_usage(d)->input_tokens, 0);
    /* No callback: events are dropped, results still accumulate. */
    assert_int_equal(ch_llm_decoder_feed(d, body, sizeof(body) - 1), 0);
    assert_int_equal(ch_llm_decoder_finish(d), 0);
    assert_int_equal(ch_llm_decoder_stop(d), CH_LLM_STOP_END_TURN);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(ch_llm_decoder_message(d), "content"), 0), "text")),
                        "hi");
    ch_llm_decoder_free(d);
    ch_llm_decoder_free(NULL);
}

/* A JSON body over the 16 MiB cap fails clean without being parsed. */
static void test_body_cap(void **state)
{
    struct ch_llm_decoder *d;
    struct tout o = {0};
    char *chunk = malloc(1 << 20);
    int i, rc = 0;

    (void)state;
    assert_non_null(chunk);
    memset(chunk, ' ', 1 << 20);
    assert_int_equal(ch_llm_decoder_new(&d, CH_LLM_ANTHROPIC, false, on_event, &o), 0);
    for (i = 0; i < 17 && !rc; i++)
        rc = ch_llm_decoder_feed(d, chunk, 1 << 20);
    assert_int_equal(rc, CH_E_TOO_LARGE);
    assert_int_equal(ch_llm_decoder_finish(d), CH_E_TOO_LARGE);
    assert_string_equal(o.p, "error unknown retryable=0 \"response body exceeds its size cap\"\n");
    ch_llm_decoder_free(d);
    tout_free(&o);
    free(chunk);
}

/* More tool calls than CH_LLM_MAX_TOOL_CALLS is refused, not grown. */
static void test_tool_call_cap(void **state)
{
    struct ch_llm_decoder *d;
    struct tout o = {0};
    char ev[256];
    int i, rc = 0;

    (void)state;
    assert_int_equal(ch_llm_decoder_new(&d, CH_LLM_GEMINI, true, NULL, NULL), 0);
    for (i = 0; i <= CH_LLM_MAX_TOOL_CALLS && !rc; i++) {
        snprintf(ev, sizeof(ev),
                 "data: {\"candidates\":[{\"content\":{\"parts\":"
                 "[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]}}]}\n\n");
        rc = ch_llm_decoder_feed(d, ev, strlen(ev));
    }
    assert_int_equal(rc, CH_E_TOO_LARGE);
    assert_int_equal(i, CH_LLM_MAX_TOOL_CALLS + 1);
    assert_int_equal(ch_llm_decoder_finish(d), CH_E_TOO_LARGE);
    assert_int_equal(json_array_size(json_object_get(ch_llm_decoder_message(d), "content")), CH_LLM_MAX_TOOL_CALLS);
    ch_llm_decoder_free(d);
    tout_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic),     cmocka_unit_test(test_openai),    cmocka_unit_test(test_gemini),
        cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_api_edges), cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_tool_call_cap),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
