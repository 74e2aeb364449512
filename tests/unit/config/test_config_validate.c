/*
 * test_config_validate.c: strict validation against the schema: unknown
 * keys with their full path, extension keys, wrong types, ranges, enums,
 * sizes, required keys, CIDR/bind/origin checks, every error at once, the
 * error cap, the tests/unit/data/config case directories, and the row
 * types (map, number, duration) that no key uses yet.  Run from the repo
 * root.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/internal.h" /* custom schemas for row types no key uses yet */
#include "config_test.h"

#define CASES "tests/unit/data/config"

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
    expect_one("{\n  gateway: {\n    port: '18789'}}", "gateway.port: expected integer, got string (line 3:11)");
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
    expect_one("{api: {auth: {tokens: [true]}}}", "api.auth.tokens[0]: expected object, got boolean (line 1:24)");
    expect_one("{api: {security: {maxBodySize: true}}}",
               "api.security.maxBodySize: expected size (\"1MB\" or an integer), got boolean "
               "(line 1:32)");
    expect_one("{log: {level: 3}}", "log.level: expected string (one of: debug, info, warn, error), got integer "
                                    "(line 1:15)");
    expect_one("[1]", "top level: expected object, got array (line 1:1)");
    /* A secret of the wrong type never shows its value. */
    expect_one("{gateway: {auth: {token: 12345}}}", "gateway.auth.token: expected string, got integer (line 1:26)");
}

static void test_ranges_and_enums(void **state)
{
    (void)state;
    expect_one("{gateway: {port: 65536}}", "gateway.port: 65536 is out of range [0, 65535] (line 1:18)");
    expect_one("{gateway: {port: -1}}", "gateway.port: -1 is out of range [0, 65535] (line 1:18)");
    expect_one("{gateway: {port: 9223372036854775807}}",
               "gateway.port: 9223372036854775807 is out of range [0, 65535] (line 1:18)");
    expect_valid("{gateway: {port: 0}}");
    expect_valid("{gateway: {port: 65535}}");
    expect_one("{limits: {maxHeaders: 7}}", "limits.maxHeaders: 7 is out of range [8, 1000] (line 1:23)");
    expect_one("{limits: {headTimeoutMs: 99}}",
               "limits.headTimeoutMs: 99 is out of range [100, 600000] ms (line 1:26)");
    expect_one("{log: {level: 'verbose'}}", "log.level: 'verbose' is not allowed (allowed: debug, info, warn, error) "
                                            "(line 1:15)");
    expect_one("{gateway: {auth: {mode: 'Token'}}}",
               "gateway.auth.mode: 'Token' is not allowed (allowed: token, password, none) "
               "(line 1:25)");
    expect_one("{gateway: {mode: 'remote'}}", "gateway.mode: 'remote' is not allowed (allowed: local) (line 1:18)");
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
    expect_all("{api: {auth: {tokens: [{name: 'a'}, {token: 'secret-1'}, {name: '', token: ''}]}}}", want,
               CH_ARRAY_SIZE(want));
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
    static const char *const good[] = {"10.0.0.0/8", "192.168.1.1",     "0.0.0.0/0",          "::1",         "::/0",
                                       "fe80::/10",  "2001:db8::1/128", "::ffff:10.0.0.1/96", "127.0.0.1/32"};
    static const char *const bad[] = {"10.0.0.0/33",  "::1/129",    "10.0.0/8",    "10.0.0.0/", "10.0.0.0/-1",
                                      "10.0.0.0/8x",  "",           "localhost",   "/8",        "10.0.0.0/8/8",
                                      "fe80::1%eth0", "1.2.3.4 /8", "10.0.0.0/+8", "10.0.0.256"};
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
    static const char *const good_bind[] = {"loopback", "lan", "localhost", "0.0.0.0", "::", "192.168.1.10", "::1"};
    static const char *const bad_bind[] = {"tailnet", "1.2.3", "", "LOOPBACK", "[::1]"};
    static const char *const good_origin[] = {"http://localhost:5173", "https://example.com", "https://[::1]:8443",
                                              "http://127.0.0.1"};
    static const char *const bad_origin[] = {
        "example.com", "https://example.com/", "https://example.com/app", "ftp://x",
        "http://",     "http://a:0",           "http://a:99999",          "*",
        "https://a b", "http://a:80x"};
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
        snprintf(text, sizeof(text), "{gateway: {controlUi: {allowedOrigins: ['%s']}}}", good_origin[k]);
        expect_valid(text);
    }
    for (size_t k = 0; k < CH_ARRAY_SIZE(bad_origin); k++) {
        snprintf(text, sizeof(text), "{gateway: {controlUi: {allowedOrigins: ['%s']}}}", bad_origin[k]);
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
            printf("  %s: message %zu\n    want %s\n    got  %s\n", name, m, line, m < e.count ? e.msgs[m] : "(none)");
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
        {"models.providers", CFG_MAP, NULL, 0, 0, NULL, NULL, 0, "Providers.", NULL},
        {"models.providers.*.baseUrl", CFG_STRING, NULL, 0, 0, NULL, cfg_check_origin, CFG_REQUIRED, "Base URL.", NULL},
        {"models.providers.*.apiKey", CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET, "Key.", NULL},
        {"models.providers.*.timeout", CFG_DURATION, "\"30s\"", 1000, 600000, NULL, NULL, 0, "Timeout.", "ms"},
        {"agents.temperature", CFG_NUMBER, "0.5", 0, 2, NULL, NULL, 0, "Temperature.", NULL},
        {"free", CFG_MAP, NULL, 0, 0, NULL, NULL, 0, "Anything goes below.", NULL},
    };
    static const char bad[] = "{models: {providers: {\n"
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
    struct cfg_schema s = {.rows = (struct cfg_row *)rows, .count = CH_ARRAY_SIZE(rows)};
    struct ch_config_errors e = {0};
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
    json_object_del(json_object_get(json_object_get(json_object_get(doc.root, "models"), "providers"), "b"), "timeout");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_extension_keys_allowed),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges_and_enums),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_bind_and_origins),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_config_case_directories),
        cmocka_unit_test(test_map_number_duration_rows),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
