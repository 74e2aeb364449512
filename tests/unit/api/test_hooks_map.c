/*
 * Unit tests for the hook mappings and their templates (src/api/hooks_map.c):
 * every placeholder kind ({{payload.x}}, bare paths, [N] and .N indexes,
 * {{headers.x}}, {{query.x}}, {{path}}, {{now}}), how each JSON type
 * renders, malformed and oversized templates, the output cap, allocation
 * failure, mapping selection by path and source, and the load-time
 * checks of hooks.mappings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "api/hooks.h"

#define NOW_MS 1700000000123LL /* 2023-11-14T22:13:20.123Z */

static const char *payload_text =
    "{\"repository\":{\"id\":77,\"full_name\":\"o/r\"},\"sender\":{\"login\":\"octo\"},"
    "\"commits\":[{\"id\":\"abc\"},{\"id\":\"def\"}],\"n\":3,\"pi\":2.5,\"ok\":true,\"no\":false,\"nil\":null,"
    "\"text\":\"line1\\nline2 \\\"q\\\" {{not.a.template}}\",\"source\":\"stripe\"}";

struct env {
    json_t *payload;
    struct ch_http_header headers[2];
    struct ch_http_req req;
    struct ch_hook_tpl_ctx ctx;
};

static int setup(void **state)
{
    struct env *e = ch_calloc(1, sizeof(*e));

    e->payload = json_loads(payload_text, 0, NULL);
    assert_non_null(e->payload);
    e->headers[0] = (struct ch_http_header){ch_str_from("X-GitHub-Event"), ch_str_from("push")};
    e->headers[1] = (struct ch_http_header){ch_str_from("Content-Type"), ch_str_from("application/json")};
    e->req.headers = e->headers;
    e->req.header_count = 2;
    e->req.query = ch_str_from("ref=refs%2Fheads%2Fmain&empty=&plus=a+b");
    e->ctx = (struct ch_hook_tpl_ctx){e->payload, &e->req, ch_str_from("github"), NOW_MS};
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    json_decref(e->payload);
    ch_free(e);
    return 0;
}

/* Render tpl and compare; the buffer is capped at cap bytes. */
static void expect_render(struct env *e, const char *tpl, const char *want)
{
    struct ch_buf b;

    ch_buf_init(&b, 1 << 20);
    assert_int_equal(ch_hooks_render(tpl, &e->ctx, &b), 0);
    assert_int_equal(ch_buf_append_char(&b, '\0'), 0);
    assert_string_equal(b.data, want);
    ch_buf_release(&b);
}

static void test_payload_paths(void **state)
{
    struct env *e = *state;

    expect_render(e, "no placeholders at all", "no placeholders at all");
    expect_render(e, "{{payload.repository.full_name}}", "o/r");
    expect_render(e, "{{repository.full_name}}", "o/r"); /* a bare path reads the payload */
    expect_render(e, "{{ payload.sender.login }}", "octo");
    expect_render(e, "{{payload.commits[1].id}}|{{payload.commits.0.id}}", "def|abc");
    expect_render(e, "{{payload.commits[9].id}}|{{payload.nope.deeper}}|{{payload.n.x}}", "||");
    expect_render(e, "{{payload.commits[x]}}|{{payload.commits[1}}|{{payload.sender[0]}}", "||");
    expect_render(e, "n={{payload.n}} pi={{payload.pi}} ok={{payload.ok}} no={{payload.no}} nil=[{{payload.nil}}]",
                  "n=3 pi=2.5 ok=true no=false nil=[]");
    expect_render(e, "{{payload.sender}}", "{\"login\":\"octo\"}");
    expect_render(e, "{{payload.commits}}", "[{\"id\":\"abc\"},{\"id\":\"def\"}]");
    /* a value is inserted once, never rendered again */
    expect_render(e, "{{payload.text}}", "line1\nline2 \"q\" {{not.a.template}}");
}

static void test_headers_query_path_now(void **state)
{
    struct env *e = *state;

    expect_render(e, "{{headers.x-github-event}}/{{headers.X-GITHUB-EVENT}}/{{headers.missing}}", "push/push/");
    expect_render(e, "{{query.ref}}|{{query.empty}}|{{query.missing}}|{{query.plus}}", "refs/heads/main|||a b");
    expect_render(e, "{{path}} at {{now}}", "github at 2023-11-14T22:13:20.123Z");
    e->ctx.req = NULL; /* no request: headers and query render empty */
    expect_render(e, "[{{headers.x-github-event}}][{{query.ref}}]", "[][]");
}

static void test_malformed_templates(void **state)
{
    struct env *e = *state;
    char big[700];

    expect_render(e, "a {{ b", "a {{ b");
    expect_render(e, "a {{}} b {{  }}", "a {{}} b {{  }}");
    expect_render(e, "x}}y{{", "x}}y{{");
    expect_render(e, "{{{payload.n}}}", "{{{payload.n}}}");
    expect_render(e, "{{payload.n}}{{payload.n}}", "33");
    expect_render(e, NULL, "");
    /* an expression over 512 bytes is copied as written */
    memset(big, 'a', sizeof(big));
    memcpy(big, "{{", 2);
    memcpy(big + sizeof(big) - 3, "}}", 3);
    expect_render(e, big, big);
}

static void test_deep_and_long_paths(void **state)
{
    struct env *e = *state;
    json_t *deep = json_object(), *cur = deep;
    struct ch_buf path;

    /* 40 levels of {"a": ...}: past the 32-segment cap the lookup is empty */
    ch_buf_init(&path, 4096);
    ch_buf_append_str(&path, "{{");
    for (int i = 0; i < 40; i++) {
        json_t *next = i == 39 ? json_string("leaf") : json_object();
        json_object_set_new(cur, "a", next);
        cur = next;
        ch_buf_append_str(&path, i ? ".a" : "a");
    }
    ch_buf_append_str(&path, "}}");
    ch_buf_append_char(&path, '\0');
    e->ctx.payload = deep;
    expect_render(e, path.data, "");
    /* four levels down: the other 36 as compact JSON */
    ch_buf_reset(&path);
    for (int i = 0; i < 36; i++)
        ch_buf_append_str(&path, "{\"a\":");
    ch_buf_append_str(&path, "\"leaf\"");
    for (int i = 0; i < 36; i++)
        ch_buf_append_char(&path, '}');
    ch_buf_append_char(&path, '\0');
    expect_render(e, "{{a.a.a.a}}", path.data);
    ch_buf_release(&path);
    json_decref(deep);
}

static void test_output_cap_and_alloc_failure(void **state)
{
    struct env *e = *state;
    struct ch_buf b;
    int rc;

    ch_buf_init(&b, 10);
    assert_int_equal(ch_hooks_render("{{payload.repository.full_name}} is longer than ten", &e->ctx, &b),
                     CH_E_TOO_LARGE);
    ch_buf_release(&b);
    /* Fail allocation n until the render succeeds: a clean error each time. */
    for (long n = 1; n < 200; n++) {
        ch_buf_init(&b, 1 << 16);
        ch_alloc_fail_after(n);
        rc = ch_hooks_render("{{payload.sender}} {{query.ref}} {{payload.commits}} {{now}}", &e->ctx, &b);
        ch_alloc_fail_after(0);
        ch_buf_release(&b);
        if (rc == 0)
            return;
        assert_int_equal(rc, CH_ENOMEM);
    }
    fail_msg("render never succeeded");
}

static void test_map_find(void **state)
{
    struct env *e = *state;
    json_t *maps = json_loads("[{\"id\":\"one\",\"match\":{\"path\":\"/github/\"}},"
                              "{\"id\":\"two\",\"match\":{\"path\":\"pay\",\"source\":\"stripe\"}},"
                              "{\"id\":\"three\",\"match\":{\"path\":\"pay\"}},"
                              "{\"id\":\"any\",\"match\":{\"source\":\"cron\"}}]",
                              0, NULL);
    json_t *other = json_pack("{s:s}", "source", "paypal"), *cron = json_pack("{s:s}", "source", "cron");
    const json_t *m;

    assert_non_null(maps);
    m = ch_hooks_map_find(maps, ch_str_from("github"), e->payload);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "one");
    m = ch_hooks_map_find(maps, ch_str_from("/github//"), e->payload);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "one");
    m = ch_hooks_map_find(maps, ch_str_from("pay"), e->payload); /* payload.source is "stripe" */
    assert_string_equal(json_string_value(json_object_get(m, "id")), "two");
    m = ch_hooks_map_find(maps, ch_str_from("pay"), other);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "three");
    m = ch_hooks_map_find(maps, ch_str_from("whatever"), cron);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "any");
    assert_null(ch_hooks_map_find(maps, ch_str_from("githubx"), e->payload));
    assert_null(ch_hooks_map_find(maps, ch_str_from("nothing"), other));
    json_decref(maps);
    json_decref(other);
    json_decref(cron);
}

static void check_maps(const char *maps_text, int want, const char *msg_part)
{
    json_t *maps = json_loads(maps_text, 0, NULL);
    struct ch_error err = {0};

    assert_non_null(maps);
    assert_int_equal(ch_hooks_map_check(maps, &err), want);
    if (msg_part)
        assert_non_null(strstr(err.msg, msg_part));
    json_decref(maps);
}

static void test_map_check(void **state)
{
    char *long_tpl;
    struct ch_buf b;

    (void)state;
    check_maps("[]", 0, NULL);
    check_maps("[{\"messageTemplate\":\"m\"},{\"action\":\"wake\",\"textTemplate\":\"t\"}]", 0, NULL);
    check_maps("[{\"action\":\"agent\"}]", CH_EINVAL, "[0]: messageTemplate is required");
    check_maps("[{\"messageTemplate\":\"m\"},{\"action\":\"wake\",\"messageTemplate\":\"m\"}]", CH_EINVAL,
               "[1]: textTemplate");
    check_maps("[{\"messageTemplate\":\"\"}]", CH_EINVAL, "must not be empty");
    check_maps("[{\"messageTemplate\":\"m\",\"transform\":{\"module\":\"x.js\"}}]", CH_EINVAL, "transform");
    check_maps("[{\"messageTemplate\":\"m\",\"action\":\"run\"}]", CH_EINVAL, "agent or wake");
    check_maps("[{\"messageTemplate\":\"m\",\"sessionKey\":7}]", CH_EINVAL, "sessionKey");
    check_maps("[\"not an object\"]", CH_EINVAL, "must be an object");
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":\"messages\"}]", 0, NULL);
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":null}]", 0, NULL);
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":\"a.b\"}]", CH_EINVAL, "[0].forEach");
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":\"a[0]\"}]", CH_EINVAL, "top-level payload key");
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":\"constructor\"}]", CH_EINVAL, "forEach");
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":7}]", CH_EINVAL, "forEach");
    check_maps("[{\"messageTemplate\":\"m\",\"forEach\":\"\"}]", CH_EINVAL, "forEach");
    ch_buf_init(&b, 1 << 20);
    ch_buf_append_str(&b, "[{\"messageTemplate\":\"");
    for (int i = 0; i < 70000; i++)
        ch_buf_append_char(&b, 'x');
    ch_buf_append_str(&b, "\"}]");
    long_tpl = ch_buf_detach(&b, NULL);
    check_maps(long_tpl, CH_EINVAL, "at most");
    ch_free(long_tpl);
    ch_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_payload_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_query_path_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_and_long_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_cap_and_alloc_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_find, setup, teardown),
        cmocka_unit_test(test_map_check),
    };

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
