/*
 * test_request.c: the request builders (providers/request.c, <api>_req.c).
 *
 * Case directories tests/unit/data/providers/requests/<case>/ hold one
 * neutral `request.json` and, per API, `<api>.json`: either the expected
 * {method, url, headers: [[name, value, secret]...], body} (compared with
 * json_equal, so key order does not matter but every field does) or
 * {error: "<text the error message must contain>"}.  The C tests cover
 * header injection, URL checks, the body cap, the key never reaching the
 * URL, and allocation failure at every step.
 */
#include "providers_test.h"

#define REQ_DIR "tests/unit/data/providers/requests"

static const char *const api_files[CH_LLM_API__COUNT] = {
    [CH_LLM_ANTHROPIC] = "anthropic",
    [CH_LLM_OPENAI] = "openai",
    [CH_LLM_GEMINI] = "gemini",
};

/* Fill r from the case's request.json (borrowing from j). */
static void request_from(json_t *j, struct ch_llm_request *r)
{
    memset(r, 0, sizeof(*r));
    r->base_url = json_string_value(json_object_get(j, "base_url"));
    r->api_key = json_string_value(json_object_get(j, "api_key"));
    r->headers = json_object_get(j, "headers");
    r->model = json_string_value(json_object_get(j, "model"));
    r->system = json_string_value(json_object_get(j, "system"));
    r->messages = json_object_get(j, "messages");
    r->tools = json_object_get(j, "tools");
    r->max_tokens = json_integer_value(json_object_get(j, "max_tokens"));
    r->has_temperature = json_object_get(j, "temperature") != NULL;
    r->temperature = json_number_value(json_object_get(j, "temperature"));
    r->stream = json_is_true(json_object_get(j, "stream"));
    r->want_prompt_cache = json_is_true(json_object_get(j, "want_prompt_cache"));
    r->sampling = json_object_get(j, "sampling");
}

/* The built request as JSON, in the expected files' shape. */
static json_t *http_to_json(const struct ch_llm_http *h)
{
    json_t *headers = json_array(), *body;
    size_t i;

    for (i = 0; i < h->header_count; i++)
        json_array_append_new(headers,
                              json_pack("[s, s, b]", h->headers[i].name, h->headers[i].value, h->headers[i].is_secret));
    body = json_loadb(h->body, h->body_len, 0, NULL);
    assert_non_null(body);
    assert_int_equal(strlen(h->body), h->body_len);
    return json_pack("{s:s, s:s, s:o, s:o}", "method", h->method, "url", h->url, "headers", headers, "body", body);
}

static void run_case(const char *name)
{
    char path[512];
    json_error_t je;
    json_t *req_j, *want, *got;
    struct ch_llm_request r;
    struct ch_llm_http h;
    struct ch_error e;
    int api, rc;

    snprintf(path, sizeof(path), "%s/%s/request.json", REQ_DIR, name);
    req_j = json_load_file(path, 0, &je);
    if (!req_j)
        fail_msg("%s: %s", path, je.text);
    request_from(req_j, &r);
    for (api = 0; api < CH_LLM_API__COUNT; api++) {
        snprintf(path, sizeof(path), "%s/%s/%s.json", REQ_DIR, name, api_files[api]);
        want = json_load_file(path, 0, &je);
        if (!want)
            fail_msg("%s: %s", path, je.text);
        memset(&e, 0, sizeof(e));
        rc = ch_llm_build_request((enum ch_llm_api)api, &r, &h, &e);
        if (json_object_get(want, "error")) {
            if (rc != CH_EINVAL || !strstr(e.msg, json_string_value(json_object_get(want, "error"))))
                fail_msg("%s/%s: want error '%s', got rc %d '%s'", name, api_files[api],
                         json_string_value(json_object_get(want, "error")), rc, e.msg);
            assert_null(h.url); /* left zeroed on failure */
            assert_null(h.body);
        } else {
            if (rc)
                fail_msg("%s/%s: rc %d: %s", name, api_files[api], rc, e.msg);
            /* The key is a header, never part of the URL. */
            if (r.api_key && r.api_key[0])
                assert_null(strstr(h.url, r.api_key));
            got = http_to_json(&h);
            if (!json_equal(got, want)) {
                char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
                char *w = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
                print_error("--- got ---\n%s\n--- want ---\n%s\n", g, w);
                ch_free(g);
                ch_free(w);
                fail_msg("%s/%s: built request differs", name, api_files[api]);
            }
            json_decref(got);
        }
        ch_llm_http_release(&h);
        json_decref(want);
    }
    json_decref(req_j);
}

static void test_cases(void **state)
{
    size_t n, i, blocks = ch_alloc_live_blocks();
    char **names = tdir_list(REQ_DIR, &n);

    (void)state;
    assert_true(n >= 10);
    for (i = 0; i < n; i++)
        run_case(names[i]);
    tnames_free(names, n);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

/* A minimal valid request, for the edge tests to spoil. */
static json_t *simple_messages(void)
{
    return json_pack("[{s:s, s:s}]", "role", "user", "content", "hi");
}

static int build_with(enum ch_llm_api api, struct ch_llm_request *r, struct ch_error *e)
{
    struct ch_llm_http h;
    int rc = ch_llm_build_request(api, r, &h, e);

    ch_llm_http_release(&h);
    return rc;
}

static void test_refusals(void **state)
{
    json_t *msgs = simple_messages(), *hdr;
    struct ch_llm_request r = {.model = "m", .api_key = "k", .max_tokens = 5};
    struct ch_error e;
    int api;

    (void)state;
    r.messages = msgs;
    for (api = 0; api < CH_LLM_API__COUNT; api++) {
        struct ch_llm_request b = r;

        assert_int_equal(build_with(api, &b, &e), 0);
        b.api_key = "sk-\r\nX-Injected: 1";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b = r;
        b.base_url = "ftp://host";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        assert_non_null(strstr(e.msg, "baseUrl"));
        b.base_url = "https://host/path?key=secret";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b.base_url = "https://ho st";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b = r;
        b.max_tokens = 0;
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b = r;
        b.model = "";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b.model = "m\n";
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b = r;
        b.messages = NULL;
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        b.messages = json_array();
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        json_decref((json_t *)b.messages);
        b = r;
        hdr = json_pack("{s:s}", "x-ok", "v\r\nInjected: 1");
        b.headers = hdr;
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        json_decref(hdr);
        hdr = json_pack("{s:s}", "bad:name", "v");
        b.headers = hdr;
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        json_decref(hdr);
        hdr = json_pack("{s:i}", "x-num", 1);
        b.headers = hdr;
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        json_decref(hdr);
        b.headers = NULL;
        b.tools = json_pack("[{s:i}]", "name", 1);
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        assert_non_null(strstr(e.msg, "tools[0]"));
        json_decref((json_t *)b.tools);
        b.tools = json_pack("{}");
        assert_int_equal(build_with(api, &b, &e), CH_EINVAL);
        json_decref((json_t *)b.tools);
    }
    assert_int_equal(build_with(CH_LLM_API__COUNT, &r, &e), CH_EINVAL);
    json_decref(msgs);
}

/* A conversation whose body would pass 16 MiB is refused before sending. */
static void test_body_cap(void **state)
{
    size_t n = CH_LLM_MAX_BODY_BYTES + 10;
    char *big = malloc(n + 1);
    json_t *msgs;
    struct ch_llm_request r = {.model = "m", .api_key = "k", .max_tokens = 5};
    struct ch_error e;
    int api, rc;

    (void)state;
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", big);
    assert_non_null(msgs);
    r.messages = msgs;
    for (api = 0; api < CH_LLM_API__COUNT; api++) {
        rc = build_with(api, &r, &e);
        if (rc != CH_E_TOO_LARGE)
            fail_msg("api %d: rc %d: %s", api, rc, e.msg);
        assert_non_null(strstr(e.msg, "exceeds"));
    }
    json_decref(msgs);
    free(big);
}

static void test_api_names(void **state)
{
    enum ch_llm_api a;
    int i;

    (void)state;
    for (i = 0; i < CH_LLM_API__COUNT; i++) {
        assert_int_equal(ch_llm_api_parse(ch_llm_api_name(i), &a), 0);
        assert_int_equal(a, i);
        assert_non_null(strstr(ch_llm_api_default_base_url(i), "https://"));
    }
    assert_string_equal(ch_llm_api_name(CH_LLM_ANTHROPIC), "anthropic-messages");
    assert_string_equal(ch_llm_api_name(CH_LLM_OPENAI), "openai-completions");
    assert_string_equal(ch_llm_api_name(CH_LLM_GEMINI), "google-generative-ai");
    assert_int_equal(ch_llm_api_parse("openai", &a), CH_EINVAL);
    assert_int_equal(ch_llm_api_parse(NULL, &a), CH_EINVAL);
    assert_string_equal(ch_llm_api_name(CH_LLM_API__COUNT), "unknown");
    assert_null(ch_llm_api_default_base_url(CH_LLM_API__COUNT));
}

/* OpenAI's reasoning models take the limit as max_completion_tokens; the
 * other APIs ignore the flag. */
static void test_max_completion_tokens(void **state)
{
    json_t *msgs = simple_messages(), *body;
    struct ch_llm_request r = {.model = "o3", .api_key = "k", .max_tokens = 77};
    struct ch_llm_http h;
    struct ch_error e;

    (void)state;
    r.messages = msgs;
    r.want_max_completion_tokens = true;
    assert_int_equal(ch_llm_build_request(CH_LLM_OPENAI, &r, &h, &e), 0);
    body = json_loads(h.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(body, "max_completion_tokens")), 77);
    assert_null(json_object_get(body, "max_tokens"));
    json_decref(body);
    ch_llm_http_release(&h);
    assert_int_equal(ch_llm_build_request(CH_LLM_ANTHROPIC, &r, &h, &e), 0);
    assert_non_null(strstr(h.body, "\"max_tokens\":77"));
    ch_llm_http_release(&h);
    json_decref(msgs);
}

/* Release is NULL-safe and idempotent. */
static void test_release(void **state)
{
    struct ch_llm_http h = {0};

    (void)state;
    ch_llm_http_release(NULL);
    ch_llm_http_release(&h);
    ch_llm_http_release(&h);
}

static void test_alloc_failure(void **state)
{
    char path[512];
    json_t *req_j, *samp_j;
    struct ch_llm_request r;
    struct ch_llm_http h;
    size_t blocks;
    int api, rc;
    long n;

    (void)state;
    snprintf(path, sizeof(path), "%s/multi-turn-tools/request.json", REQ_DIR);
    req_j = json_load_file(path, 0, NULL);
    assert_non_null(req_j);
    request_from(req_j, &r);
    r.want_prompt_cache = true;
    r.stream = true;
    snprintf(path, sizeof(path), "%s/sampling/request.json", REQ_DIR);
    samp_j = json_load_file(path, 0, NULL);
    assert_non_null(samp_j);
    r.sampling = json_object_get(samp_j, "sampling"); /* every mapping too */
    blocks = ch_alloc_live_blocks();
    for (api = 0; api < CH_LLM_API__COUNT; api++) {
        rc = CH_ENOMEM;
        for (n = 1; n < 5000 && rc; n++) {
            struct ch_error e = {0};
            ch_alloc_fail_after(n);
            rc = ch_llm_build_request(api, &r, &h, &e);
            ch_alloc_fail_after(0);
            assert_true(rc == 0 || rc == CH_ENOMEM);
            if (rc) {
                assert_null(h.url);
                assert_null(h.headers);
                assert_non_null(strstr(e.msg, "out of memory"));
            }
            ch_llm_http_release(&h);
            assert_int_equal(ch_alloc_live_blocks(), blocks);
        }
        assert_int_equal(rc, 0);
    }
    json_decref(req_j);
    json_decref(samp_j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_api_names),
        cmocka_unit_test(test_max_completion_tokens),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_alloc_failure),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
