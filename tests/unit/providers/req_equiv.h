/*
 * req_equiv.h: random but reproducible neutral conversations for the
 * request-builder equivalence tests (test_req_equiv_<api>.c).  Each test
 * file includes the previous builder of its API (ref/<api>_req_*.inc,
 * renamed) and checks that the current builder sends the same bytes on
 * every history: text with quotes, backslashes, control characters,
 * U+0000, non-ASCII and emoji; empty texts; tool calls with nested
 * inputs, numbers and reals; tool results with and without content and
 * error flags; string contents; system prompts, tools, temperature.
 */
#ifndef CH_REQ_EQUIV_H
#define CH_REQ_EQUIV_H

#include "providers_test.h"

#include "providers/internal.h"

/* The helpers the tree builders used (request.c before the direct
 * writers), for the reference builders only. */
__attribute__((unused)) static json_t *llm_blocks(const json_t *message)
{
    json_t *content = json_object_get(message, "content");

    if (json_is_string(content))
        return json_pack("[{s:s, s:O}]", "type", "text", "text", content);
    return json_incref(content);
}

struct dump_ctx {
    struct ch_buf b;
    int rc; /* the append that failed */
};

static int dump_capped(const char *p, size_t n, void *data)
{
    struct dump_ctx *d = data;

    d->rc = ch_buf_append(&d->b, p, n);
    return d->rc ? -1 : 0;
}

__attribute__((unused)) static int llm_set_body_take(struct ch_llm_http *out, json_t *body, struct ch_error *err)
{
    struct dump_ctx d = {.rc = CH_ENOMEM};
    int rc = CH_ENOMEM;

    /* One pass into a buffer capped at the body limit: an oversized
     * conversation stops at the cap rather than being measured first. */
    ch_buf_init(&d.b, CH_LLM_MAX_BODY_BYTES);
    if (!body || ch_buf_reserve(&d.b, 1024))
        goto out;
    if (json_dump_callback(body, dump_capped, &d, JSON_COMPACT) != 0) {
        if (d.rc == CH_E_TOO_LARGE)
            rc = ch_error_set(err, CH_E_TOO_LARGE, "request body exceeds the %u cap", CH_LLM_MAX_BODY_BYTES);
        goto out;
    }
    out->body_len = d.b.len;
    out->body = ch_buf_detach(&d.b, NULL);
    rc = out->body ? 0 : CH_ENOMEM;
out:
    ch_buf_release(&d.b);
    json_decref(body);
    return rc;
}

static uint64_t eq_rng = 0x9e3779b97f4a7c15ULL;

static unsigned eq_rand(unsigned n)
{
    eq_rng ^= eq_rng << 13;
    eq_rng ^= eq_rng >> 7;
    eq_rng ^= eq_rng << 17;
    return (unsigned)(eq_rng % n);
}

static const char *const eq_texts[] = {
    "",
    "hello",
    "say \"hi\" \\ back",
    "line\nbreak\ttab\rcr",
    "ctl \b \f \x01 \x1f end",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
    "slash / and <tag> & \x7f",
    "a longer text that goes on for a while so that the buffer grows past its first reservation "
    "a longer text that goes on for a while so that the buffer grows past its first reservation",
};

static json_t *eq_text_json(void)
{
    /* One in eight texts carries an embedded U+0000 (json_stringn). */
    if (eq_rand(8) == 0)
        return json_stringn("nul\0after", 9);
    return json_string(eq_texts[eq_rand(CH_ARRAY_SIZE(eq_texts))]);
}

static json_t *eq_input(void)
{
    switch (eq_rand(4)) {
    case 0: return json_object();
    case 1: return json_pack("{s:s, s:i}", "q", eq_texts[eq_rand(CH_ARRAY_SIZE(eq_texts))], "n", (int)eq_rand(1000));
    case 2:
        return json_pack("{s:f, s:[i, s, b, n], s:{s:s}}", "x", 0.1 * eq_rand(100), "arr", 1, "two", 1, "deep", "k",
                         "\xc3\xa9\n");
    default: return NULL; /* no input at all */
    }
}

static json_t *eq_block(bool assistant, int *ncall)
{
    json_t *b;
    unsigned k = eq_rand(3);

    if (k == 0 || (k == 2 && assistant && *ncall == 0 && eq_rand(2)))
        return json_pack("{s:s, s:o}", "type", "text", "text", eq_text_json());
    if (assistant) {
        json_t *in = eq_input();
        char id[32];
        snprintf(id, sizeof(id), "call_%d", (*ncall)++);
        b = json_pack("{s:s, s:s, s:s}", "type", "tool_use", "id", id, "name", eq_rand(2) ? "get_time" : "fetch");
        if (in)
            json_object_set_new(b, "input", in);
        return b;
    }
    b = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", "call_0");
    if (eq_rand(4))
        json_object_set_new(b, "content", eq_text_json());
    if (eq_rand(3) == 0)
        json_object_set_new(b, "is_error", json_boolean(eq_rand(2)));
    return b;
}

/* n messages, alternating roles from user, varied contents. */
static json_t *eq_history(size_t n)
{
    json_t *msgs = json_array();

    for (size_t i = 0; i < n; i++) {
        bool assistant = i % 2 == 1;
        json_t *content;
        int ncall = 0;
        if (eq_rand(5) == 0) {
            content = eq_text_json();
        } else {
            unsigned nb = eq_rand(4); /* 0..3 blocks; 0: an empty message */
            content = json_array();
            for (unsigned j = 0; j < nb; j++)
                json_array_append_new(content, eq_block(assistant, &ncall));
        }
        json_array_append_new(msgs,
                              json_pack("{s:s, s:o}", "role", assistant ? "assistant" : "user", "content", content));
    }
    return msgs;
}

static json_t *eq_new_tools(void)
{
    return json_pack("[{s:s, s:s, s:{s:s, s:{s:{s:s}}}}, {s:s}]", "name", "get_time", "description", "the \"time\"",
                     "input_schema", "type", "object", "properties", "tz", "type", "string", "name", "fetch");
}

/* A few long-lived tool arrays (the memo hits on them) and sometimes a
 * fresh one (a miss, whose address the memo's reference keeps unique). */
static json_t *eq_fixed_tools[3];

static json_t *eq_tools(void)
{
    unsigned k = eq_rand(4);

    if (k == 3)
        return eq_new_tools();
    if (!eq_fixed_tools[k]) {
        eq_fixed_tools[k] = eq_new_tools();
        json_array_append_new(eq_fixed_tools[k], json_pack("{s:s, s:s}", "name", k ? "v1" : "v0", "description", "x"));
    }
    return json_incref(eq_fixed_tools[k]);
}

typedef int (*eq_build_fn)(const struct ch_llm_request *, struct ch_llm_http *, struct ch_error *);

/* Build with the current builder (through ch_llm_build_request, which
 * validates first) and the reference; both must succeed or fail alike
 * and agree on every byte of the body, the URL and the headers. */
static void eq_compare(enum ch_llm_api api, eq_build_fn ref, size_t rounds)
{
    static const char *const systems[] = {NULL, "", "You are \"helpful\".\n\xe2\x9c\x93 \b"};
    size_t built = 0, blocks = ch_alloc_live_blocks();
    struct llm_tools_memo memo = {0};

    for (size_t round = 0; round < rounds; round++) {
        json_t *msgs = eq_history(1 + eq_rand(40)), *tools = eq_rand(2) ? eq_tools() : NULL;
        struct ch_llm_request r = {
            .model = eq_rand(2) ? "claude-x" : "m\xc3\xa9/\"q\"",
            .api_key = "sk-test",
            .system = systems[eq_rand(CH_ARRAY_SIZE(systems))],
            .messages = msgs,
            .tools = tools,
            .max_tokens = 1 + eq_rand(100000),
            .has_temperature = eq_rand(2),
            .temperature = 0.05 * eq_rand(30),
            .stream = eq_rand(2),
            .want_prompt_cache = eq_rand(2),
            .want_max_completion_tokens = eq_rand(2),
            .tools_memo = eq_rand(4) ? &memo : NULL,
        };
        struct ch_llm_http got = {0}, want = {.method = "POST"};
        struct ch_error e1 = {0}, e2 = {0};
        /* The shared check runs before either builder: a history it
         * refuses never reaches them. */
        bool valid = llm_check_messages(msgs, &e2) == 0;
        int rc1 = ch_llm_build_request(api, &r, &got, &e1);
        int rc2 = valid ? ref(&r, &want, &e2) : rc1;

        if (rc1 != rc2 || (rc1 && valid && strcmp(e1.msg, e2.msg) != 0))
            fail_msg("round %zu: rc %d (%s) vs reference %d (%s)", round, rc1, e1.msg, rc2, e2.msg);
        if (rc1 == 0) {
            built++;
            assert_int_equal(got.body_len, want.body_len);
            if (memcmp(got.body, want.body, got.body_len) != 0)
                fail_msg("round %zu: bodies differ:\n%s\n%s", round, got.body, want.body);
            assert_string_equal(got.url, want.url);
            assert_int_equal(got.header_count, want.header_count);
            for (size_t i = 0; i < got.header_count; i++) {
                assert_string_equal(got.headers[i].name, want.headers[i].name);
                assert_string_equal(got.headers[i].value, want.headers[i].value);
            }
        }
        ch_llm_http_release(&got);
        ch_llm_http_release(&want);
        json_decref(msgs);
        json_decref(tools);
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(eq_fixed_tools); i++) {
        json_decref(eq_fixed_tools[i]);
        eq_fixed_tools[i] = NULL;
    }
    llm_tools_memo_release(&memo);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
    /* Many histories build: the comparison is not vacuous. */
    assert_true(built > rounds / 10);
}

#endif
