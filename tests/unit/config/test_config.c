/*
 * test_config.c: loading, defaults, environment substitution and
 * overrides, getters, limits, redaction, file errors, allocation failure,
 * and the check that docs/configuration.md matches the schema (strict
 * validation is in test_config_validate.c).
 *
 * `test_config --write-docs` regenerates docs/configuration.md (until the
 * CLI's `chela config schema --markdown` exists).  Run from the repo root.
 */
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
#include "config_test.h"

#define DOCS "docs/configuration.md"
#define KITCHEN "tests/unit/data/json5/ok-kitchen-sink/input"

static char tmpdir[64];

static void clear_env(void)
{
    static const char *const names[] = {"CHELA_GATEWAY_TOKEN",       "OPENCLAW_GATEWAY_TOKEN", "CHELA_GATEWAY_PASSWORD",
                                        "OPENCLAW_GATEWAY_PASSWORD", "CHELA_GATEWAY_PORT",     "OPENCLAW_GATEWAY_PORT"};

    for (size_t k = 0; k < CH_ARRAY_SIZE(names); k++)
        unsetenv(names[k]);
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

static void test_defaults_without_file(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = {0};
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
    struct ch_config_errors e = {0};
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
    struct ch_config_errors e = {0};

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
    struct ch_config_errors e = {0};
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
    struct ch_config_errors e = {0};
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

static void test_env_substitution(void **state)
{
    static const char text[] = "{gateway: {auth: {token: '${CH_CFG_TOKEN}',"
                               " password: '${CH_CFG_PW:-pw-default}'}}}";
    struct ch_config *c;
    struct ch_config_errors e = {0};
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
    struct ch_config_errors e = {0};

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
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c->file, "gateway"), "port")), 1234);
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
    assert_string_equal(e.msgs[0], "CHELA_GATEWAY_PORT: expected an integer in [0, 65535], got 'http'");
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
    struct ch_config_errors e = {0};
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
    assert_null(json_object_get(json_object_get(json_object_get(r, "gateway"), "auth"), "token"));
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
    struct ch_config_errors e = {0};
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
    struct ch_config_errors e = {0};

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
    assert_string_equal(json_string_value(ch_config_get(c, "api.security.cors.methods.1")), "POST");
    assert_null(ch_config_get(NULL, "gateway"));
    assert_null(ch_config_get(c, NULL));
    assert_int_equal(ch_config_int(NULL, "gateway.port", 5), 5);
    ch_config_free(c);
}

static void test_syntax_error(void **state)
{
    static const char text[] = "{\n  gateway: { port: 1 \n  log: {} }\n";
    struct ch_config *c;
    struct ch_config_errors e = {0};

    (void)state;
    assert_int_equal(ch_config_load(write_tmp("syn.json5", text, strlen(text)), &c, &e), CH_EINVAL);
    assert_null(c);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.msgs[0], "line 3, column 3: expected ',' or '}' after object member, "
                                   "got 'l'");
    ch_config_errors_release(&e);
}

static void test_file_errors(void **state)
{
    struct ch_config *c;
    struct ch_config_errors e = {0};
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

/* Fail allocation N for N = 1, 2, ...: a clean CH_ENOMEM, nothing leaked. */
static void test_allocation_failures(void **state)
{
    size_t len, live;
    char *text = slurp(KITCHEN, &len);
    const char *path;
    struct ch_config *c = NULL;
    struct ch_config_errors e = {0};
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
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_docs_current),
    };

    ch_alloc_install();
    if (argc > 1 && !strcmp(argv[1], "--write-docs"))
        return write_docs();
    clear_env();
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
