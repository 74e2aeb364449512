/* Unit tests for cli/args.c (the long-option parser) and cli/state.c (state
 * directory, config and database paths, DIR/gateway.json).  Parser error
 * messages are checked by capturing stderr into a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cli.h"

/* ---- stderr capture ---- */

static int saved_fd = -1;
static FILE *cap_file;
static char captured[4096];

static void capture_begin(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    assert_non_null(cap_file);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_true(dup2(fileno(cap_file), STDERR_FILENO) >= 0);
}

/* Returns what was written to stderr since capture_begin (borrowed). */
static const char *capture_end(void)
{
    size_t n;

    fflush(stderr);
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    rewind(cap_file);
    n = fread(captured, 1, sizeof(captured) - 1, cap_file);
    captured[n] = '\0';
    fclose(cap_file);
    return captured;
}

/* ---- parser ---- */

enum { O_NAME, O_SCOPE, O_JSON, O_STATE, O_HIDDEN, O_COUNT };

static void make_opts(struct ch_opt o[O_COUNT])
{
    o[O_NAME] = (struct ch_opt){"name", true, "token name", NULL};
    o[O_SCOPE] = (struct ch_opt){"scope", true, "scopes", NULL};
    o[O_JSON] = (struct ch_opt){"json", false, "print JSON", NULL};
    o[O_STATE] = (struct ch_opt){"state", true, "state directory", NULL};
    o[O_HIDDEN] = (struct ch_opt){"url", true, NULL, NULL};
}

/* Parse a NULL-terminated argv as main received it: "chela token create
 * ...", options from index 3. */
static int parse(struct ch_opt *o, const char **pos, size_t maxpos, size_t *npos, bool *help, char **argv)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    return ch_args_parse(argc, argv, 3, o, O_COUNT, pos, maxpos, npos, help);
}

static void test_values_and_flags(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *pos[4];
    size_t npos = 99;
    bool help = true;
    char *argv[] = {"chela",  "token",   "create", "--name", "ci", "--scope=chat,read",
                    "--json", "--state", "/tmp/s", NULL};
    (void)state;
    make_opts(o);
    assert_int_equal(parse(o, pos, 4, &npos, &help, argv), CH_EXIT_OK);
    assert_false(help);
    assert_int_equal(npos, 0);
    assert_string_equal(ch_opt_get(o, O_COUNT, "name"), "ci");
    assert_string_equal(ch_opt_get(o, O_COUNT, "scope"), "chat,read");
    assert_string_equal(ch_opt_get(o, O_COUNT, "json"), "1");
    assert_string_equal(ch_opt_get(o, O_COUNT, "state"), "/tmp/s");
    assert_null(ch_opt_get(o, O_COUNT, "url"));
    assert_null(ch_opt_get(o, O_COUNT, "nosuch"));
}

static void test_equals_edge_cases(void **state)
{
    struct ch_opt o[O_COUNT];
    size_t npos;
    bool help;
    /* An empty value, a value containing '=', a value that looks like an
     * option (only possible with '='), and the last repetition winning. */
    char *argv[] = {"chela",       "token", "create",   "--name=",        "--scope=a=b",
                    "--state=--x", "--url", "http://a", "--url=http://b", NULL};
    (void)state;
    make_opts(o);
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv), CH_EXIT_OK);
    assert_string_equal(ch_opt_get(o, O_COUNT, "name"), "");
    assert_string_equal(ch_opt_get(o, O_COUNT, "scope"), "a=b");
    assert_string_equal(ch_opt_get(o, O_COUNT, "state"), "--x");
    assert_string_equal(ch_opt_get(o, O_COUNT, "url"), "http://b");
}

static void test_values_reset_between_calls(void **state)
{
    struct ch_opt o[O_COUNT];
    size_t npos;
    bool help;
    char *first[] = {"chela", "token", "create", "--name", "a", "--json", NULL};
    char *second[] = {"chela", "token", "create", NULL};
    (void)state;
    make_opts(o);
    assert_int_equal(parse(o, NULL, 0, &npos, &help, first), CH_EXIT_OK);
    assert_non_null(ch_opt_get(o, O_COUNT, "json"));
    assert_int_equal(parse(o, NULL, 0, &npos, &help, second), CH_EXIT_OK);
    assert_null(ch_opt_get(o, O_COUNT, "name"));
    assert_null(ch_opt_get(o, O_COUNT, "json"));
}

static void test_positional_and_double_dash(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *pos[4];
    size_t npos;
    bool help;
    /* Positionals anywhere; after `--` even "--json" and "--help" are
     * positional; a lone "-" is positional. */
    char *argv[] = {"chela", "token", "create", "first", "--json", "-", "--", "--json", "--help", NULL};
    (void)state;
    make_opts(o);
    assert_int_equal(parse(o, pos, 4, &npos, &help, argv), CH_EXIT_OK);
    assert_false(help);
    assert_int_equal(npos, 4);
    assert_string_equal(pos[0], "first");
    assert_string_equal(pos[1], "-");
    assert_string_equal(pos[2], "--json");
    assert_string_equal(pos[3], "--help");
    assert_string_equal(ch_opt_get(o, O_COUNT, "json"), "1");
}

static void test_too_many_positionals(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *pos[1];
    const char *err;
    size_t npos;
    bool help;
    char *argv[] = {"chela", "token", "create", "a", "b", NULL};
    (void)state;
    make_opts(o);
    capture_begin();
    assert_int_equal(parse(o, pos, 1, &npos, &help, argv), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "chela token create: unexpected argument 'b'"));
    assert_non_null(strstr(err, "Try 'chela token create --help'."));
}

static void test_unknown_option(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *err;
    size_t npos;
    bool help;
    char *argv[] = {"chela", "token", "create", "--name", "x", "--foo", NULL};
    char *argv_eq[] = {"chela", "token", "create", "--foo=bar", NULL};
    char *argv_short[] = {"chela", "token", "create", "-x", NULL};
    char *argv_prefix[] = {"chela", "token", "create", "--nam", "x", NULL};
    (void)state;
    make_opts(o);
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "chela token create: unknown option --foo\n"));

    /* The value after '=' is not echoed as part of the option name. */
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv_eq), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "unknown option --foo\n"));
    assert_null(strstr(err, "bar"));

    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv_short), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "unknown option -x"));

    /* No prefix matching: abbreviations are unknown options. */
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv_prefix), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "unknown option --nam\n"));
}

static void test_missing_value(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *err;
    size_t npos;
    bool help;
    char *at_end[] = {"chela", "token", "create", "--name", NULL};
    char *before_opt[] = {"chela", "token", "create", "--name", "--json", NULL};
    (void)state;
    make_opts(o);
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, at_end), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "chela token create: --name needs a value"));

    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, before_opt), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "--name needs a value"));
}

static void test_flag_with_value(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *err;
    size_t npos;
    bool help;
    char *argv[] = {"chela", "token", "create", "--json=yes", NULL};
    (void)state;
    make_opts(o);
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, argv), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "--json does not take a value"));
}

static void test_help_wins(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *err;
    size_t npos;
    bool help;
    char *long_help[] = {"chela", "token", "create", "--name", "x", "--help", NULL};
    char *short_help[] = {"chela", "token", "create", "-h", NULL};
    char *with_error[] = {"chela", "token", "create", "--bogus", "--help", "--name", NULL};
    (void)state;
    make_opts(o);
    assert_int_equal(parse(o, NULL, 0, &npos, &help, long_help), CH_EXIT_OK);
    assert_true(help);
    assert_int_equal(parse(o, NULL, 0, &npos, &help, short_help), CH_EXIT_OK);
    assert_true(help);
    /* Help wins over an unknown option and a missing value, silently. */
    capture_begin();
    assert_int_equal(parse(o, NULL, 0, &npos, &help, with_error), CH_EXIT_OK);
    err = capture_end();
    assert_true(help);
    assert_string_equal(err, "");
}

static void test_prog_label_ignores_binary_name(void **state)
{
    struct ch_opt o[O_COUNT];
    const char *err;
    size_t npos;
    bool help;
    /* However the binary was invoked (a path, a renamed copy), messages
     * are labelled "chela <command>". */
    char *argv[] = {"/opt/bin/chela-dev", "gateway", "--port", NULL};
    struct ch_opt port[] = {{"port", true, "port", NULL}};
    (void)state;
    make_opts(o);
    capture_begin();
    assert_int_equal(ch_args_parse(3, argv, 2, port, 1, NULL, 0, &npos, &help), CH_EXIT_USAGE);
    err = capture_end();
    assert_non_null(strstr(err, "chela gateway: --port needs a value"));
}

static void test_usage_output(void **state)
{
    struct ch_opt o[O_COUNT];
    char text[2048];
    FILE *f = tmpfile();
    size_t n;
    (void)state;
    make_opts(o);
    assert_non_null(f);
    ch_args_usage(f, "chela token create --name N", o, O_COUNT);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_true(strncmp(text, "Usage: chela token create --name N\n", 35) == 0);
    assert_non_null(strstr(text, "--name VALUE"));
    assert_non_null(strstr(text, "token name"));
    assert_non_null(strstr(text, "--json "));
    assert_null(strstr(text, "--json VALUE"));
    assert_non_null(strstr(text, "-h, --help"));
    /* Options without help text are accepted but not listed. */
    assert_null(strstr(text, "--url"));
}

/* ---- state.c ---- */

static char tmpdir[256];

static int setup_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/chela-test-args-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_state_dir_precedence(void **state)
{
    char *d, cwd[1024], *want;
    (void)state;
    setenv("CHELA_HOME", "/srv/chela-home", 1);
    setenv("HOME", "/home/someone", 1);
    d = ch_cli_state_dir("/flag/dir/");
    assert_string_equal(d, "/flag/dir"); /* trailing slash dropped */
    ch_free(d);
    d = ch_cli_state_dir(NULL);
    assert_string_equal(d, "/srv/chela-home");
    ch_free(d);
    d = ch_cli_state_dir(""); /* empty flag is absent */
    assert_string_equal(d, "/srv/chela-home");
    ch_free(d);
    unsetenv("CHELA_HOME");
    d = ch_cli_state_dir(NULL);
    assert_string_equal(d, "/home/someone/.chela");
    ch_free(d);
    setenv("HOME", "/", 1);
    d = ch_cli_state_dir(NULL);
    assert_string_equal(d, "/.chela");
    ch_free(d);
    /* No HOME: the passwd entry still gives an absolute path. */
    unsetenv("HOME");
    d = ch_cli_state_dir(NULL);
    if (d) {
        assert_true(d[0] == '/');
        assert_non_null(strstr(d, "/.chela"));
    }
    ch_free(d);
    /* Relative flags become absolute against the cwd, not resolved. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    d = ch_cli_state_dir("rel/state");
    want = ch_sprintf("%s/rel/state", cwd);
    assert_string_equal(d, want);
    ch_free(d);
    ch_free(want);
    d = ch_cli_state_dir(".");
    assert_string_equal(d, cwd);
    ch_free(d);
}

static void test_config_and_db_paths(void **state)
{
    char *p;
    (void)state;
    p = ch_cli_config_path("/s", NULL);
    assert_string_equal(p, "/s/chela.json5");
    ch_free(p);
    p = ch_cli_config_path("/s", "/etc/chela.json5");
    assert_string_equal(p, "/etc/chela.json5");
    ch_free(p);
    assert_null(ch_cli_config_path(NULL, NULL));
    p = ch_cli_db_path("/s");
    assert_string_equal(p, "/s/chela.db");
    ch_free(p);
    assert_null(ch_cli_db_path(NULL));
}

static void test_local_gateway(void **state)
{
    char path[300], *url = (char *)1, *tok = (char *)1;
    FILE *f;
    (void)state;
    /* Absent: CH_ENOTFOUND and both outputs NULL. */
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), CH_ENOTFOUND);
    assert_null(url);
    assert_null(tok);
    assert_int_equal(ch_cli_local_gateway(NULL, &url, &tok), CH_ENOTFOUND);

    snprintf(path, sizeof(path), "%s/gateway.json", tmpdir);
    write_file(path, "{\"pid\":42,\"url\":\"http://127.0.0.1:5555\",\"port\":5555,"
                     "\"localToken\":\"oc_tok_abc\"}");
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), 0);
    assert_string_equal(url, "http://127.0.0.1:5555");
    assert_string_equal(tok, "oc_tok_abc");
    ch_free(url);
    ch_free(tok);
    /* Either output may be skipped. */
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, NULL), 0);
    assert_string_equal(url, "http://127.0.0.1:5555");
    ch_free(url);

    /* Missing, empty or mistyped members come back NULL. */
    write_file(path, "{\"url\":\"\",\"localToken\":7}");
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), 0);
    assert_null(url);
    assert_null(tok);

    /* Not JSON, not an object, duplicate keys: CH_EINVAL. */
    write_file(path, "{\"url\":");
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), CH_EINVAL);
    assert_null(url);
    write_file(path, "[1]");
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), CH_EINVAL);
    write_file(path, "{\"url\":\"a\",\"url\":\"b\"}");
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), CH_EINVAL);

    /* Over the 64 KiB cap: refused before parsing. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"url\":\"", f);
    for (int i = 0; i < 70 * 1024; i++)
        fputc('a', f);
    fputs("\"}", f);
    fclose(f);
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), CH_E_TOO_LARGE);
    assert_null(url);
    assert_null(tok);
    unlink(path);
}

static void test_local_gateway_alloc_failure(void **state)
{
    char path[300], *url, *tok;
    size_t blocks;
    int rc;
    (void)state;
    snprintf(path, sizeof(path), "%s/gateway.json", tmpdir);
    write_file(path, "{\"url\":\"http://127.0.0.1:1\",\"localToken\":\"oc_tok_x\"}");
    /* Fail allocation n = 1, 2, ...: every outcome must be clean (an error
     * with NULL outputs, or success) and leak nothing.  Content is checked
     * only without injection: jansson's lexer ignores a failed buffer
     * growth (lex_save), so a parse under failure can succeed with a
     * character missing. */
    for (long n = 1; n < 100; n++) {
        blocks = ch_alloc_live_blocks();
        ch_alloc_fail_after(n);
        rc = ch_cli_local_gateway(tmpdir, &url, &tok);
        ch_alloc_fail_after(0);
        if (rc != 0) {
            assert_true(rc == CH_ENOMEM || rc == CH_EINVAL);
            assert_null(url);
            assert_null(tok);
        }
        ch_free(url);
        ch_free(tok);
        assert_int_equal(ch_alloc_live_blocks(), blocks);
    }
    assert_int_equal(ch_cli_local_gateway(tmpdir, &url, &tok), 0);
    assert_string_equal(url, "http://127.0.0.1:1");
    assert_string_equal(tok, "oc_tok_x");
    ch_free(url);
    ch_free(tok);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_flags),
        cmocka_unit_test(test_equals_edge_cases),
        cmocka_unit_test(test_values_reset_between_calls),
        cmocka_unit_test(test_positional_and_double_dash),
        cmocka_unit_test(test_too_many_positionals),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_flag_with_value),
        cmocka_unit_test(test_help_wins),
        cmocka_unit_test(test_prog_label_ignores_binary_name),
        cmocka_unit_test(test_usage_output),
        cmocka_unit_test(test_state_dir_precedence),
        cmocka_unit_test(test_config_and_db_paths),
        cmocka_unit_test(test_local_gateway),
        cmocka_unit_test(test_local_gateway_alloc_failure),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
