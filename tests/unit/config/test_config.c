/*
 * test_config.c: loading, strict validation, defaults, environment
 * substitution and overrides, getters, limits, redaction, and the check
 * that docs/configuration.md matches the schema.
 *
 * `test_config --write-docs` regenerates docs/configuration.md (until the
 * CLI's `chela config schema --markdown` exists).  Run from the repo root.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/internal.h" /* custom schemas for row types no key uses yet */

#define DOCS "docs/configuration.md"
#define KITCHEN "tests/unit/data/json5/ok-kitchen-sink/input"
#define CASES "tests/unit/data/config"

static char tmpdir[64];

static void clear_env(void)
{
    static const char *const names[] = { "CHELA_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN",
                                         "CHELA_GATEWAY_PASSWORD", "OPENCLAW_GATEWAY_PASSWORD",
                                         "CHELA_GATEWAY_PORT", "OPENCLAW_GATEWAY_PORT" };

    for (size_t k = 0; k < CH_ARRAY_SIZE(names); k++)
        unsetenv(names[k]);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct ch_buf b;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    ch_buf_init(&b, 8u << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(ch_buf_append(&b, chunk, n), 0);
    fclose(f);
    assert_int_equal(ch_buf_append(&b, "", 0), 0);
    return ch_buf_detach(&b, len);
}

/* Write text to <tmpdir>/name; returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text, size_t len)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

/* Validate text; returns the error count and keeps the messages in *e. */
static size_t validate(const char *text, struct ch_config_errors *e)
{
    int rc;

    memset(e, 0, sizeof(*e));
    rc = ch_config_validate_text(text, strlen(text), e);
    assert_true(rc == 0 || rc == CH_EINVAL);
    assert_int_equal(rc == 0, e->count == 0);
    return e->count;
}

static void print_errors(const struct ch_config_errors *e)
{
    for (size_t k = 0; k < e->count; k++)
        printf("    %s\n", e->msgs[k]);
}

/* One error exactly equal to msg. */
static void expect_one(const char *text, const char *msg)
{
    struct ch_config_errors e;

    if (validate(text, &e) != 1 || strcmp(e.msgs[0], msg)) {
        printf("  text: %s\n  want: %s\n  got:\n", text, msg);
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
}

/* Every message in want[] appears, in order, and nothing else. */
static void expect_all(const char *text, const char *const *want, size_t n)
{
    struct ch_config_errors e;
    bool same = validate(text, &e) == n;

    for (size_t k = 0; same && k < n; k++)
        same = strstr(e.msgs[k], want[k]) != NULL;
    if (!same) {
        printf("  text: %s\n  got:\n", text);
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
}

static void expect_valid(const char *text)
{
    expect_all(text, NULL, 0);
}

static void test_defaults_without_file(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    const json_t *v;

    (void)state;
    assert_int_equal(ch_config_load(NULL, &c, &e), 0);
    assert_false(c->file_exists);
    assert_null(c->path);
    assert_null(c->raw);
    assert_int_equal(json_object_size(c->file), 0);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 18789);
    assert_string_equal(ch_config_str(c, "gateway.bind", NULL), "loopback");
    assert_string_equal(ch_config_str(c, "gateway.mode", NULL), "local");
    assert_string_equal(ch_config_str(c, "gateway.auth.mode", NULL), "token");
    assert_null(ch_config_get(c, "gateway.auth.token"));
    assert_int_equal(ch_config_int(c, "gateway.auth.rateLimit.maxAttempts", 0), 10);
    assert_int_equal(ch_config_int(c, "gateway.auth.rateLimit.windowMs", 0), 60000);
    assert_int_equal(ch_config_int(c, "gateway.auth.rateLimit.lockoutMs", 0), 300000);
    assert_false(ch_config_bool(c, "gateway.http.endpoints.chatCompletions.enabled", true));
    assert_false(ch_config_bool(c, "gateway.http.endpoints.responses.enabled", true));
    assert_true(ch_config_bool(c, "api.enabled", false));
    assert_true(ch_config_bool(c, "api.auth.enabled", false));
    assert_int_equal(json_array_size(ch_config_get(c, "api.auth.tokens")), 0);
    assert_int_equal(ch_config_int(c, "api.rateLimit.perToken.maxRequests", 0), 60);
    assert_int_equal(ch_config_int(c, "api.rateLimit.global.maxRequests", 7), 0);
    v = ch_config_get(c, "api.security.cors.methods");
    assert_int_equal(json_array_size(v), 3);
    assert_string_equal(json_string_value(json_array_get(v, 2)), "DELETE");
    assert_int_equal(json_array_size(ch_config_get(c, "api.security.cors.headers")), 4);
    assert_int_equal(ch_config_int(c, "api.security.cors.maxAgeSeconds", 0), 600);
    assert_int_equal(ch_config_size(c, "api.security.maxBodySize", 0), 1024 * 1024);
    assert_string_equal(ch_config_str(c, "log.level", NULL), "info");
    assert_string_equal(ch_config_str(c, "log.format", NULL), "text");
    assert_true(ch_config_bool(c, "log.access", false));
    assert_string_equal(ch_config_str(c, "store.sync", NULL), "normal");
    assert_int_equal(ch_config_int(c, "store.busyTimeoutMs", 0), 5000);
    assert_int_equal(ch_config_int(c, "store.auditRetentionDays", 0), 30);
    assert_false(ch_config_bool(c, "metrics.public", true));
    /* Every core limit is present with its default. */
    for (int k = 0; k < CH_LIMIT__COUNT; k++) {
        const struct ch_limit_def *d = ch_limit_def_get((enum ch_limit_id)k);
        char key[96];

        snprintf(key, sizeof(key), "limits.%s", d->name);
        assert_int_equal(ch_config_int(c, key, -1), d->def);
    }
    ch_config_free(c);
    ch_config_free(NULL);
}

/* The defaults themselves pass validation (a typo in a row's default
 * would otherwise only surface at run time). */
static void test_defaults_are_valid(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    char *text;

    (void)state;
    assert_int_equal(ch_config_load(NULL, &c, &e), 0);
    text = json_dumps(c->root, JSON_COMPACT);
    assert_non_null(text);
    expect_valid(text);
    ch_free(text);
    ch_config_free(c);
}

static void test_missing_file_gives_defaults(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };

    (void)state;
    assert_int_equal(ch_config_load("no/such/chela.json5", &c, &e), 0);
    assert_false(c->file_exists);
    assert_non_null(c->path);
    assert_true(c->path[0] == '/');
    assert_non_null(strstr(c->path, "no/such/chela.json5"));
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 18789);
    ch_config_free(c);
}

static void test_load_file(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    const char *path = write_tmp("kitchen.json5", "", 0);
    size_t len;
    char *text = slurp(KITCHEN, &len);

    (void)state;
    assert_non_null(text);
    path = write_tmp("kitchen.json5", text, len);
    assert_int_equal(ch_config_load(path, &c, &e), 0);
    assert_true(c->file_exists);
    assert_string_equal(c->raw, text);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 18789); /* written as hex */
    assert_string_equal(ch_config_str(c, "gateway.auth.token", NULL), "tok-AB");
    assert_string_equal(ch_config_str(c, "api.auth.tokens.0.token", NULL), "ci-token");
    assert_int_equal(ch_config_int(c, "api.auth.tokens.0.rateLimit", 0), 120);
    assert_int_equal(ch_config_size(c, "api.security.maxBodySize", 0), 2 * 1024 * 1024);
    assert_string_equal(ch_config_str(c, "log.level", NULL), "debug");
    assert_string_equal(ch_config_str(c, "log.format", NULL), "text"); /* default beside it */
    /* x- keys are kept, not validated. */
    assert_true(ch_config_real(c, "x-notes.ratio", 0) == 0.5);
    /* `file` holds only what the file said. */
    assert_null(json_object_get(json_object_get(c->file, "log"), "format"));
    ch_config_free(c);
    ch_free(text);
}

static void test_defaults_inside_arrays(void **state)
{
    static const char text[] = "{api: {auth: {tokens: [{name: 'a', token: 't1'},"
                               " {name: 'b', token: 't2', scope: ['admin'], rateLimit: 5}]}}}";
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    const json_t *scope;

    (void)state;
    assert_int_equal(ch_config_load(write_tmp("arr.json5", text, strlen(text)), &c, &e), 0);
    scope = ch_config_get(c, "api.auth.tokens.0.scope");
    assert_int_equal(json_array_size(scope), 3);
    assert_string_equal(json_string_value(json_array_get(scope, 0)), "chat");
    assert_int_equal(ch_config_int(c, "api.auth.tokens.0.rateLimit", -1), 0);
    scope = ch_config_get(c, "api.auth.tokens.1.scope");
    assert_int_equal(json_array_size(scope), 1);
    assert_int_equal(ch_config_int(c, "api.auth.tokens.1.rateLimit", -1), 5);
    assert_null(ch_config_get(c, "api.auth.tokens.2"));
    ch_config_free(c);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_one("{gateway: {foo: 1}}", "unknown key 'gateway.foo' (line 1:12)");
    expect_one("{gateway: {auth: {rateLimit: {\n  maxAttempts: 3, burst: 2}}}}",
               "unknown key 'gateway.auth.rateLimit.burst' (line 2:19)");
    expect_one("{api: {auth: {tokens: [{name: 'a', token: 'b'}, {name: 'c', token: 'd', "
               "colour: 1}]}}}",
               "unknown key 'api.auth.tokens[1].colour' (line 1:73)");
    expect_one("{nope: {deep: 1}}", "unknown key 'nope' (line 1:2)");
    expect_one("{limits: {maxWidgets: 1}}", "unknown key 'limits.maxWidgets' (line 1:11)");
    /* Keys that spell schema syntax cannot sneak in. */
    expect_one("{gateway: {'auth.mode': 'none'}}", "unknown key 'gateway.auth.mode' (line 1:12)");
    expect_one("{'gateway.port': 1}", "unknown key 'gateway.port' (line 1:2)");
    expect_one("{api: {auth: {'tokens[]': 1}}}", "unknown key 'api.auth.tokens[]' (line 1:15)");
    /* A key that only matches a prefix of a row is not a row. */
    expect_one("{gateway: {por: 1}}", "unknown key 'gateway.por' (line 1:12)");
}

static void test_extension_keys_allowed(void **state)
{
    (void)state;
    expect_valid("{$schema: 'https://x', 'x-top': {anything: [1, {}]},"
                 " gateway: {'x-note': 1, auth: {'x-deep': true}},"
                 " api: {auth: {tokens: [{name: 'a', token: 'b', 'x-owner': 'ops'}]}}}");
    /* $schema is allowed anywhere, but "$schemas" is not. */
    expect_one("{log: {$schema: 1, $schemas: 2}}", "unknown key 'log.$schemas' (line 1:20)");
    /* "x" alone and "X-" are not extension keys. */
    expect_one("{x: 1}", "unknown key 'x' (line 1:2)");
    expect_one("{'X-a': 1}", "unknown key 'X-a' (line 1:2)");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_one("{\n  gateway: {\n    port: '18789'}}",
               "gateway.port: expected integer, got string (line 3:11)");
    expect_one("{gateway: {port: 1.5}}", "gateway.port: expected integer, got number (line 1:18)");
    expect_one("{gateway: 7}", "gateway: expected object, got integer (line 1:11)");
    expect_one("{log: {access: 'yes'}}", "log.access: expected boolean, got string (line 1:16)");
    expect_one("{log: {access: null}}", "log.access: expected boolean, got null (line 1:16)");
    expect_one("{gateway: {bind: false}}", "gateway.bind: expected string, got boolean (line 1:18)");
    expect_one("{api: {security: {allowedIPs: '10.0.0.0/8'}}}",
               "api.security.allowedIPs: expected array of strings, got string (line 1:31)");
    expect_one("{api: {security: {allowedIPs: ['::1', 8]}}}",
               "api.security.allowedIPs[1]: expected string, got integer (line 1:39)");
    expect_one("{api: {auth: {tokens: {name: 'a'}}}}",
               "api.auth.tokens: expected array of objects, got object (line 1:23)");
    expect_one("{api: {auth: {tokens: [true]}}}",
               "api.auth.tokens[0]: expected object, got boolean (line 1:24)");
    expect_one("{api: {security: {maxBodySize: true}}}",
               "api.security.maxBodySize: expected size (\"1MB\" or an integer), got boolean "
               "(line 1:32)");
    expect_one("{log: {level: 3}}",
               "log.level: expected string (one of: debug, info, warn, error), got integer "
               "(line 1:15)");
    expect_one("[1]", "top level: expected object, got array (line 1:1)");
    /* A secret of the wrong type never shows its value. */
    expect_one("{gateway: {auth: {token: 12345}}}",
               "gateway.auth.token: expected string, got integer (line 1:26)");
}

static void test_ranges_and_enums(void **state)
{
    (void)state;
    expect_one("{gateway: {port: 65536}}",
               "gateway.port: 65536 is out of range [0, 65535] (line 1:18)");
    expect_one("{gateway: {port: -1}}", "gateway.port: -1 is out of range [0, 65535] (line 1:18)");
    expect_valid("{gateway: {port: 0}}");
    expect_valid("{gateway: {port: 65535}}");
    expect_one("{limits: {maxHeaders: 7}}",
               "limits.maxHeaders: 7 is out of range [8, 1000] (line 1:23)");
    expect_one("{limits: {headTimeoutMs: 99}}",
               "limits.headTimeoutMs: 99 is out of range [100, 600000] ms (line 1:26)");
    expect_one("{log: {level: 'verbose'}}",
               "log.level: 'verbose' is not allowed (allowed: debug, info, warn, error) "
               "(line 1:15)");
    expect_one("{gateway: {auth: {mode: 'Token'}}}",
               "gateway.auth.mode: 'Token' is not allowed (allowed: token, password, none) "
               "(line 1:25)");
    expect_one("{gateway: {mode: 'remote'}}",
               "gateway.mode: 'remote' is not allowed (allowed: local) (line 1:18)");
    expect_one("{api: {auth: {tokens: [{name: 'a', token: 'b', scope: ['chat', 'root']}]}}}",
               "api.auth.tokens[0].scope[1]: 'root' is not allowed (allowed: chat, send, read, "
               "admin) (line 1:64)");
    expect_one("{api: {security: {cors: {methods: ['GET', 'get']}}}}",
               "api.security.cors.methods[1]: 'get' is not allowed (allowed: GET, HEAD, POST, "
               "PUT, PATCH, DELETE, OPTIONS) (line 1:43)");
    expect_valid("{log: {level: 'error', format: 'json'}, store: {sync: 'full'}}");
}

static void test_sizes(void **state)
{
    (void)state;
    expect_valid("{api: {security: {maxBodySize: '512KB'}}, limits: {maxHeadBytes: '64KB',"
                 " maxBodyBytes: 2097152}}");
    expect_one("{api: {security: {maxBodySize: '1XB'}}}",
               "api.security.maxBodySize: '1XB' is not a size (write e.g. 512KB, 1MB, 2GB or "
               "bytes) (line 1:32)");
    expect_one("{api: {security: {maxBodySize: '2GB'}}}",
               "api.security.maxBodySize: 2147483648 is out of range [1024, 1073741824] bytes "
               "(line 1:32)");
    expect_one("{limits: {maxHeadBytes: 512}}",
               "limits.maxHeadBytes: 512 is out of range [1024, 1048576] bytes (line 1:25)");
}

static void test_required_fields(void **state)
{
    static const char *const want[] = {
        "api.auth.tokens[0].token: required key missing (line 1:24)",
        "api.auth.tokens[1].name: required key missing (line 1:37)",
        "api.auth.tokens[2].name: must not be empty (line 1:65)",
        "api.auth.tokens[2].token: must not be empty (line 1:76)",
    };

    (void)state;
    expect_all("{api: {auth: {tokens: [{name: 'a'}, {token: 'secret-1'}, {name: '', token: ''}]}}}",
               want, CH_ARRAY_SIZE(want));
}

static void test_all_errors_at_once(void **state)
{
    static const char text[] = "// several mistakes, all reported\n"
                               "{\n"
                               "  gateway: { port: 'x', prot: 1, bind: 'moon' },\n"
                               "  log: { level: 'loud', access: 1 },\n"
                               "  api: { security: { allowedIPs: ['10.0.0.0/33'] } },\n"
                               "  extra: true,\n"
                               "}\n";
    static const char *const want[] = {
        "gateway.port: expected integer, got string (line 3:20)",
        "unknown key 'gateway.prot' (line 3:25)",
        "gateway.bind: 'moon' is not loopback, lan, localhost or an IP address (line 3:40)",
        "log.level: 'loud' is not allowed",
        "log.access: expected boolean, got integer (line 4:33)",
        "api.security.allowedIPs[0]: '10.0.0.0/33': prefix length must be 0..32 (line 5:35)",
        "unknown key 'extra' (line 6:3)",
    };

    (void)state;
    expect_all(text, want, CH_ARRAY_SIZE(want));
}

static void test_cidr(void **state)
{
    static const char *const good[] = { "10.0.0.0/8", "192.168.1.1", "0.0.0.0/0", "::1",
                                        "::/0", "fe80::/10", "2001:db8::1/128",
                                        "::ffff:10.0.0.1/96", "127.0.0.1/32" };
    static const char *const bad[] = { "10.0.0.0/33", "::1/129", "10.0.0/8", "10.0.0.0/",
                                       "10.0.0.0/-1", "10.0.0.0/8x", "", "localhost",
                                       "/8", "10.0.0.0/8/8", "fe80::1%eth0", "1.2.3.4 /8",
                                       "10.0.0.0/+8", "10.0.0.256" };
    char text[256];

    (void)state;
    for (size_t k = 0; k < CH_ARRAY_SIZE(good); k++) {
        snprintf(text, sizeof(text), "{api: {security: {allowedIPs: ['%s']}}}", good[k]);
        expect_valid(text);
    }
    for (size_t k = 0; k < CH_ARRAY_SIZE(bad); k++) {
        struct ch_config_errors e;

        snprintf(text, sizeof(text), "{api: {security: {allowedIPs: ['%s']}}}", bad[k]);
        if (validate(text, &e) != 1 || !strstr(e.msgs[0], "api.security.allowedIPs[0]: ")) {
            printf("  CIDR '%s' should be refused\n", bad[k]);
            print_errors(&e);
            fail();
        }
        ch_config_errors_release(&e);
    }
}

static void test_bind_and_origins(void **state)
{
    static const char *const good_bind[] = { "loopback", "lan", "localhost", "0.0.0.0", "::",
                                             "192.168.1.10", "::1" };
    static const char *const bad_bind[] = { "tailnet", "1.2.3", "", "LOOPBACK", "[::1]" };
    static const char *const good_origin[] = { "http://localhost:5173", "https://example.com",
                                               "https://[::1]:8443", "http://127.0.0.1" };
    static const char *const bad_origin[] = { "example.com", "https://example.com/",
                                              "https://example.com/app", "ftp://x", "http://",
                                              "http://a:0", "http://a:99999", "*",
                                              "https://a b", "http://a:80x" };
    char text[256];
    struct ch_config_errors e;

    (void)state;
    for (size_t k = 0; k < CH_ARRAY_SIZE(good_bind); k++) {
        snprintf(text, sizeof(text), "{gateway: {bind: '%s'}}", good_bind[k]);
        expect_valid(text);
    }
    for (size_t k = 0; k < CH_ARRAY_SIZE(bad_bind); k++) {
        snprintf(text, sizeof(text), "{gateway: {bind: '%s'}}", bad_bind[k]);
        assert_int_equal(validate(text, &e), 1);
        ch_config_errors_release(&e);
    }
    for (size_t k = 0; k < CH_ARRAY_SIZE(good_origin); k++) {
        snprintf(text, sizeof(text), "{gateway: {controlUi: {allowedOrigins: ['%s']}}}",
                 good_origin[k]);
        expect_valid(text);
    }
    for (size_t k = 0; k < CH_ARRAY_SIZE(bad_origin); k++) {
        snprintf(text, sizeof(text), "{gateway: {controlUi: {allowedOrigins: ['%s']}}}",
                 bad_origin[k]);
        if (validate(text, &e) != 1) {
            printf("  origin '%s' should be refused\n", bad_origin[k]);
            fail();
        }
        ch_config_errors_release(&e);
    }
    /* CORS origins may be "*"; header names must be tokens. */
    expect_valid("{api: {security: {cors: {enabled: true, origins: ['*', 'https://a.b']}}}}");
    expect_one("{api: {security: {cors: {headers: ['X Bad']}}}}",
               "api.security.cors.headers[0]: 'X Bad' is not a valid header name (line 1:36)");
}

static void test_env_substitution(void **state)
{
    static const char text[] = "{gateway: {auth: {token: '${CH_CFG_TOKEN}',"
                               " password: '${CH_CFG_PW:-pw-default}'}}}";
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    const char *path = write_tmp("env.json5", text, strlen(text));

    (void)state;
    setenv("CH_CFG_TOKEN", "from-env", 1);
    unsetenv("CH_CFG_PW");
    assert_int_equal(ch_config_load(path, &c, &e), 0);
    assert_string_equal(ch_config_str(c, "gateway.auth.token", NULL), "from-env");
    assert_string_equal(ch_config_str(c, "gateway.auth.password", NULL), "pw-default");
    /* The raw text keeps the reference; `file` has the substituted value. */
    assert_non_null(strstr(c->raw, "${CH_CFG_TOKEN}"));
    ch_config_free(c);
    setenv("CH_CFG_PW", "pw-env", 1);
    assert_int_equal(ch_config_load(path, &c, &e), 0);
    assert_string_equal(ch_config_str(c, "gateway.auth.password", NULL), "pw-env");
    ch_config_free(c);
    /* Unset without a default: an error naming the variable, no config. */
    unsetenv("CH_CFG_TOKEN");
    assert_int_equal(ch_config_load(path, &c, &e), CH_EINVAL);
    assert_null(c);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.msgs[0], "line 1, column 26: environment variable 'CH_CFG_TOKEN' "
                                      "is not set"));
    ch_config_errors_release(&e);
    unsetenv("CH_CFG_PW");
}

static void test_env_overrides(void **state)
{
    static const char text[] = "{gateway: {port: 1234, auth: {token: 'file-token'}}}";
    const char *path = write_tmp("ovr.json5", text, strlen(text));
    struct ch_config *c;
    struct ch_config_errors e = { 0 };

    (void)state;
    clear_env();
    setenv("OPENCLAW_GATEWAY_PORT", "4000", 1);
    setenv("OPENCLAW_GATEWAY_TOKEN", "oc-token", 1);
    setenv("OPENCLAW_GATEWAY_PASSWORD", "oc-pass", 1);
    assert_int_equal(ch_config_load(path, &c, &e), 0);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 4000);
    assert_string_equal(ch_config_str(c, "gateway.auth.token", NULL), "oc-token");
    assert_string_equal(ch_config_str(c, "gateway.auth.password", NULL), "oc-pass");
    /* The file view is untouched. */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c->file, "gateway"),
                                                        "port")), 1234);
    ch_config_free(c);
    /* CHELA_ wins over OPENCLAW_; an empty CHELA_ counts as unset. */
    setenv("CHELA_GATEWAY_PORT", "5000", 1);
    setenv("CHELA_GATEWAY_TOKEN", "", 1);
    assert_int_equal(ch_config_load(path, &c, &e), 0);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 5000);
    assert_string_equal(ch_config_str(c, "gateway.auth.token", NULL), "oc-token");
    ch_config_free(c);
    /* Also without a file. */
    assert_int_equal(ch_config_load(NULL, &c, &e), 0);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 5000);
    ch_config_free(c);
    /* Bad values are errors, not silently ignored. */
    setenv("CHELA_GATEWAY_PORT", "http", 1);
    assert_int_equal(ch_config_load(path, &c, &e), CH_EINVAL);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.msgs[0],
                        "CHELA_GATEWAY_PORT: expected an integer in [0, 65535], got 'http'");
    ch_config_errors_release(&e);
    setenv("CHELA_GATEWAY_PORT", "65536", 1);
    assert_int_equal(ch_config_load(path, &c, &e), CH_EINVAL);
    ch_config_errors_release(&e);
    setenv("CHELA_GATEWAY_PORT", "-1", 1);
    assert_int_equal(ch_config_load(path, &c, &e), CH_EINVAL);
    ch_config_errors_release(&e);
    unsetenv("CHELA_GATEWAY_PORT");
    setenv("CHELA_GATEWAY_TOKEN", "caf\xe9", 1);
    assert_int_equal(ch_config_load(path, &c, &e), CH_EINVAL);
    assert_string_equal(e.msgs[0], "CHELA_GATEWAY_TOKEN: value is not valid UTF-8");
    ch_config_errors_release(&e);
    clear_env();
}

static void test_redaction(void **state)
{
    static const char text[] = "{gateway: {auth: {token: 'gw-secret', password: 'pw-secret'}},"
                               " api: {auth: {tokens: [{name: 'ci', token: 'api-secret'}]}}}";
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    json_t *r;
    char *dump;

    (void)state;
    clear_env();
    assert_int_equal(ch_config_load(write_tmp("red.json5", text, strlen(text)), &c, &e), 0);
    r = ch_config_redacted(c);
    assert_non_null(r);
    dump = json_dumps(r, JSON_COMPACT);
    assert_null(strstr(dump, "secret"));
    assert_non_null(strstr(dump, "\"token\":\"__OPENCLAW_REDACTED__\""));
    assert_non_null(strstr(dump, "\"password\":\"__OPENCLAW_REDACTED__\""));
    assert_non_null(strstr(dump, "\"name\":\"ci\""));
    assert_non_null(strstr(dump, "\"port\":18789"));
    ch_free(dump);
    json_decref(r);
    /* The config itself keeps the real values. */
    assert_string_equal(ch_config_str(c, "api.auth.tokens.0.token", NULL), "api-secret");
    ch_config_free(c);
    /* No secret set: nothing to redact, nothing invented. */
    assert_int_equal(ch_config_load(NULL, &c, &e), 0);
    r = ch_config_redacted(c);
    assert_null(json_object_get(json_object_get(json_object_get(r, "gateway"), "auth"),
                                "token"));
    json_decref(r);
    ch_config_free(c);
    assert_null(ch_config_redacted(NULL));
}

static void test_limits(void **state)
{
    static const char text[] = "{limits: {maxHeadBytes: '64KB', maxConnections: 10},"
                               " api: {security: {maxBodySize: '2MB'}}}";
    static const char both[] = "{limits: {maxBodyBytes: 4096}, api: {security: {maxBodySize: "
                               "'2MB'}}}";
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    struct ch_limits l;

    (void)state;
    assert_int_equal(ch_config_load(write_tmp("lim.json5", text, strlen(text)), &c, &e), 0);
    ch_config_limits(c, &l);
    assert_int_equal(l.v[CH_LIMIT_MAX_HEAD_BYTES], 65536);
    assert_int_equal(l.v[CH_LIMIT_MAX_CONNECTIONS], 10);
    assert_int_equal(l.v[CH_LIMIT_MAX_BODY_BYTES], 2 * 1024 * 1024);
    assert_int_equal(l.v[CH_LIMIT_MAX_HEADERS], ch_limit_def_get(CH_LIMIT_MAX_HEADERS)->def);
    ch_config_free(c);
    /* limits.maxBodyBytes, when given, wins over api.security.maxBodySize. */
    assert_int_equal(ch_config_load(write_tmp("lim2.json5", both, strlen(both)), &c, &e), 0);
    ch_config_limits(c, &l);
    assert_int_equal(l.v[CH_LIMIT_MAX_BODY_BYTES], 4096);
    ch_config_free(c);
}

static void test_getters(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };

    (void)state;
    assert_int_equal(ch_config_load(NULL, &c, &e), 0);
    /* Wrong type or absent: the fallback. */
    assert_int_equal(ch_config_int(c, "gateway.bind", 7), 7);
    assert_int_equal(ch_config_int(c, "gateway.nope", 8), 8);
    assert_int_equal(ch_config_int(c, "gateway.port.deeper", 9), 9);
    assert_string_equal(ch_config_str(c, "gateway.port", "fb"), "fb");
    assert_true(ch_config_bool(c, "log.level", true));
    assert_true(ch_config_real(c, "gateway.port", 0) == 18789.0);
    assert_true(ch_config_real(c, "gateway.bind", 2.5) == 2.5);
    assert_int_equal(ch_config_size(c, "gateway.port", 0), 18789);
    assert_int_equal(ch_config_size(c, "gateway.bind", 3), 3);
    assert_null(ch_config_get(c, "gateway..port"));
    assert_null(ch_config_get(c, "api.security.cors.methods.x"));
    assert_string_equal(json_string_value(ch_config_get(c, "api.security.cors.methods.1")),
                        "POST");
    assert_null(ch_config_get(NULL, "gateway"));
    assert_null(ch_config_get(c, NULL));
    assert_int_equal(ch_config_int(NULL, "gateway.port", 5), 5);
    ch_config_free(c);
}

static void test_syntax_error(void **state)
{
    static const char text[] = "{\n  gateway: { port: 1 \n  log: {} }\n";
    struct ch_config *c;
    struct ch_config_errors e = { 0 };

    (void)state;
    assert_int_equal(ch_config_load(write_tmp("syn.json5", text, strlen(text)), &c, &e),
                     CH_EINVAL);
    assert_null(c);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.msgs[0], "line 3, column 3: expected ',' or '}' after object member, "
                                   "got 'l'");
    ch_config_errors_release(&e);
}

static void test_file_errors(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = { 0 };
    size_t n = CH_JSON5_MAX_INPUT + 1;
    char *big = ch_malloc(n);

    (void)state;
    /* A directory is not a config file. */
    assert_int_equal(ch_config_load(tmpdir, &c, &e), CH_EIO);
    assert_null(c);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.msgs[0], "is not a regular file"));
    ch_config_errors_release(&e);
    /* Over the cap. */
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    assert_int_equal(ch_config_load(write_tmp("big.json5", big, n), &c, &e), CH_EINVAL);
    assert_non_null(strstr(e.msgs[0], "larger than 4 MiB"));
    ch_config_errors_release(&e);
    ch_free(big);
    /* Unreadable (root reads anything, so only checked for other users). */
    if (geteuid() != 0) {
        const char *path = write_tmp("secret.json5", "{}", 2);

        chmod(path, 0);
        assert_int_equal(ch_config_load(path, &c, &e), CH_EIO);
        assert_non_null(strstr(e.msgs[0], "cannot open"));
        ch_config_errors_release(&e);
    }
    /* An empty file is a syntax error, not silently defaults. */
    assert_int_equal(ch_config_load(write_tmp("empty.json5", "", 0), &c, &e), CH_EINVAL);
    assert_non_null(strstr(e.msgs[0], "empty document"));
    ch_config_errors_release(&e);
}

static void test_error_cap(void **state)
{
    struct ch_buf b;
    struct ch_config_errors e;

    (void)state;
    ch_buf_init(&b, 1 << 20);
    assert_int_equal(ch_buf_append_str(&b, "{"), 0);
    for (int k = 0; k < 500; k++)
        assert_int_equal(ch_buf_appendf(&b, "k%d: %d,\n", k, k), 0);
    assert_int_equal(ch_buf_append_str(&b, "}"), 0);
    assert_int_equal(validate(b.data, &e), 101);
    assert_string_equal(e.msgs[0], "unknown key 'k0' (line 1:2)");
    assert_string_equal(e.msgs[100], "too many errors; stopped after 100");
    ch_config_errors_release(&e);
    ch_buf_release(&b);
}

/* Fail allocation N for N = 1, 2, ...: a clean CH_ENOMEM, nothing leaked. */
static void test_allocation_failures(void **state)
{
    size_t len, live;
    char *text = slurp(KITCHEN, &len);
    const char *path;
    struct ch_config *c = NULL;
    struct ch_config_errors e = { 0 };
    json_t *r;
    long n;
    int rc = -1;

    (void)state;
    clear_env();
    setenv("CHELA_GATEWAY_PORT", "4321", 1); /* exercise the overrides too */
    path = write_tmp("oom.json5", text, len);
    live = ch_alloc_live_blocks();
    for (n = 1; n < 100000; n++) {
        ch_alloc_fail_after(n);
        rc = ch_config_load(path, &c, &e);
        ch_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, CH_ENOMEM);
        assert_null(c);
        ch_config_errors_release(&e);
        assert_int_equal(ch_alloc_live_blocks(), live);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 20);
    assert_int_equal(ch_config_int(c, "gateway.port", 0), 4321);
    /* The redacted copy: NULL on failure, no leak. */
    for (n = 1; n < 100000; n++) {
        size_t before = ch_alloc_live_blocks();

        ch_alloc_fail_after(n);
        r = ch_config_redacted(c);
        ch_alloc_fail_after(0);
        if (r)
            break;
        assert_int_equal(ch_alloc_live_blocks(), before);
    }
    assert_non_null(r);
    json_decref(r);
    ch_config_free(c);
    /* And validation alone, with errors to record. */
    for (n = 1; n < 100000; n++) {
        static const char bad[] = "{gateway: {port: 'x', foo: 1}, log: {level: 'loud'}}";

        ch_alloc_fail_after(n);
        rc = ch_config_validate_text(bad, strlen(bad), &e);
        ch_alloc_fail_after(0);
        ch_config_errors_release(&e);
        if (rc == CH_EINVAL)
            break;
        assert_int_equal(rc, CH_ENOMEM);
        assert_int_equal(ch_alloc_live_blocks(), live);
    }
    assert_int_equal(rc, CH_EINVAL);
    unsetenv("CHELA_GATEWAY_PORT");
    ch_free(text);
}

/* tests/unit/data/config/<case>/{input,expect}: expect lists the messages
 * in order, one per line (empty for a valid file). */
static void check_config_case(const char *name)
{
    char path[512], *input, *expect, *line, *save = NULL;
    struct ch_config_errors e;
    size_t len, m = 0;

    snprintf(path, sizeof(path), CASES "/%s/input", name);
    input = slurp(path, &len);
    snprintf(path, sizeof(path), CASES "/%s/expect", name);
    expect = slurp(path, &len);
    assert_non_null(input);
    assert_non_null(expect);
    validate(input, &e);
    for (line = strtok_r(expect, "\n", &save); line; line = strtok_r(NULL, "\n", &save), m++) {
        if (m >= e.count || strcmp(e.msgs[m], line)) {
            printf("  %s: message %zu\n    want %s\n    got  %s\n", name, m, line,
                   m < e.count ? e.msgs[m] : "(none)");
            fail();
        }
    }
    if (m != e.count) {
        printf("  %s: %zu unexpected messages\n", name, e.count - m);
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
    ch_free(input);
    ch_free(expect);
}

static void test_config_case_directories(void **state)
{
    DIR *d = opendir(CASES);
    struct dirent *ent;
    size_t n = 0;

    (void)state;
    assert_non_null(d);
    while ((ent = readdir(d)))
        if (ent->d_name[0] != '.') {
            check_config_case(ent->d_name);
            n++;
        }
    closedir(d);
    assert_true(n >= 3);
}

/*
 * Row types that later keys will use (maps, numbers, durations), checked
 * against a schema built here: validation, defaults inside map values and
 * redaction of a secret inside them.
 */
static void test_map_number_duration_rows(void **state)
{
    static const struct cfg_row rows[] = {
        { "models.providers", CFG_MAP, NULL, 0, 0, NULL, NULL, 0, "Providers.", NULL },
        { "models.providers.*.baseUrl", CFG_STRING, NULL, 0, 0, NULL, cfg_check_origin,
          CFG_REQUIRED, "Base URL.", NULL },
        { "models.providers.*.apiKey", CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET, "Key.",
          NULL },
        { "models.providers.*.timeout", CFG_DURATION, "\"30s\"", 1000, 600000, NULL, NULL, 0,
          "Timeout.", "ms" },
        { "agents.temperature", CFG_NUMBER, "0.5", 0, 2, NULL, NULL, 0, "Temperature.", NULL },
        { "free", CFG_MAP, NULL, 0, 0, NULL, NULL, 0, "Anything goes below.", NULL },
    };
    static const char bad[] =
        "{models: {providers: {\n"
        "  ok: {baseUrl: 'https://api.example.com', apiKey: 'sk-1', timeout: '2m'},\n"
        "  bad: {timeout: '5x', extra: 1},\n"
        "  slow: {baseUrl: 'http://a', timeout: '1h'},\n"
        "  'x-lit': 3}},\n"
        " agents: {temperature: 2.5}, free: {anything: [1, {deep: true}]}}";
    static const char *const want[] = {
        "models.providers.bad.baseUrl: required key missing (line 3:8)",
        "models.providers.bad.timeout: '5x' is not a duration",
        "unknown key 'models.providers.bad.extra' (line 3:24)",
        "models.providers.slow.timeout: 3600000 is out of range [1000, 600000] ms (line 4:40)",
        "models.providers.x-lit: expected object, got integer (line 5:12)",
        "agents.temperature: 2.5 is out of range [0, 2] (line 6:24)",
    };
    static const char good[] = "{models: {providers: {a: {baseUrl: 'http://x', apiKey: 'k'},"
                               " b: {baseUrl: 'http://y', timeout: 5000}}},"
                               " agents: {temperature: 1}}";
    struct cfg_schema s = { .rows = (struct cfg_row *)rows, .count = CH_ARRAY_SIZE(rows) };
    struct ch_config_errors e = { 0 };
    struct ch_json5_doc doc;
    struct ch_error err;
    size_t k;
    char *dump;

    (void)state;
    assert_int_equal(ch_json5_parse(bad, strlen(bad), false, &doc, &err), 0);
    assert_int_equal(cfg_validate(&s, doc.root, &doc, &e), CH_EINVAL);
    for (k = 0; k < e.count && k < CH_ARRAY_SIZE(want); k++)
        if (!strstr(e.msgs[k], want[k]))
            break;
    if (k != CH_ARRAY_SIZE(want) || e.count != k) {
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
    ch_json5_doc_release(&doc);

    /* A duration must be a string: 5000 is refused. */
    assert_int_equal(ch_json5_parse(good, strlen(good), false, &doc, &err), 0);
    assert_int_equal(cfg_validate(&s, doc.root, &doc, &e), CH_EINVAL);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.msgs[0], "models.providers.b.timeout: expected duration, got "
                                      "integer"));
    ch_config_errors_release(&e);
    json_object_del(json_object_get(json_object_get(json_object_get(doc.root, "models"),
                                                    "providers"), "b"), "timeout");
    assert_int_equal(cfg_validate(&s, doc.root, &doc, &e), 0);
    /* Defaults reach into map values; the secret inside one is redacted. */
    assert_int_equal(cfg_fill_defaults(&s, doc.root), 0);
    assert_int_equal(cfg_redact(&s, doc.root), 0);
    dump = json_dumps(doc.root, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(dump, "{\"agents\":{\"temperature\":1},\"models\":{\"providers\":{"
                              "\"a\":{\"apiKey\":\"__OPENCLAW_REDACTED__\",\"baseUrl\":"
                              "\"http://x\",\"timeout\":\"30s\"},\"b\":{\"baseUrl\":"
                              "\"http://y\",\"timeout\":\"30s\"}}}}");
    ch_free(dump);
    ch_json5_doc_release(&doc);
    /* An empty document gets the number default; the maps stay absent. */
    doc.root = json_object();
    assert_int_equal(cfg_fill_defaults(&s, doc.root), 0);
    dump = json_dumps(doc.root, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(dump, "{\"agents\":{\"temperature\":0.5}}");
    ch_free(dump);
    json_decref(doc.root);
}

static void test_docs_current(void **state)
{
    struct ch_buf b;
    size_t len;
    char *disk = slurp(DOCS, &len);

    (void)state;
    ch_buf_init(&b, 1 << 20);
    assert_int_equal(ch_config_schema_markdown(&b), 0);
    if (!disk || len != b.len || memcmp(disk, b.data, len)) {
        printf("  %s is %s. Regenerate it from the repository root with\n"
               "    chela config schema --markdown > %s\n"
               "  or\n"
               "    make MODE=debug build/debug/unit/config/test_config && "
               "build/debug/unit/config/test_config --write-docs\n",
               DOCS, disk ? "out of date" : "missing", DOCS);
        fail();
    }
    /* Every key appears in the reference. */
    assert_non_null(strstr(b.data, "| `gateway.port` |"));
    assert_non_null(strstr(b.data, "| `limits.maxConnections` |"));
    assert_non_null(strstr(b.data, "`OPENCLAW_GATEWAY_TOKEN`"));
    assert_non_null(strstr(b.data, "${NAME:-fallback}"));
    ch_buf_release(&b);
    ch_free(disk);
}

static int write_docs(void)
{
    struct ch_buf b;
    FILE *f;
    int rc;

    ch_buf_init(&b, 1 << 20);
    rc = ch_config_schema_markdown(&b);
    if (rc == 0 && (f = fopen(DOCS, "wb"))) {
        rc = fwrite(b.data, 1, b.len, f) == b.len ? 0 : CH_EIO;
        rc = fclose(f) ? CH_EIO : rc;
    } else if (rc == 0) {
        rc = CH_EIO;
    }
    ch_buf_release(&b);
    fprintf(stderr, "%s: %s\n", DOCS, rc ? ch_strerror(rc) : "written");
    return rc ? 1 : 0;
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/chela-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_file),
        cmocka_unit_test(test_defaults_are_valid),
        cmocka_unit_test(test_missing_file_gives_defaults),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_defaults_inside_arrays),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_extension_keys_allowed),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges_and_enums),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_bind_and_origins),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_config_case_directories),
        cmocka_unit_test(test_map_number_duration_rows),
        cmocka_unit_test(test_docs_current),
    };

    ch_alloc_install();
    if (argc > 1 && !strcmp(argv[1], "--write-docs"))
        return write_docs();
    clear_env();
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
