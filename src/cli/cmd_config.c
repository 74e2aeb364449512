/*
 * cmd_config.c: `chela config validate|get|schema`.  All three go through
 * the config layer, so the CLI reports exactly what the gateway would
 * accept: validate prints every problem at once (each prefixed by the
 * file), get prints the effective value after defaults and environment
 * overrides with secrets redacted, schema prints the generated reference
 * (docs/configuration.md).
 */
#include <jansson.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

/* Dotted paths longer than this cannot name a schema key. */
#define MAX_DOTTED 512
/* The generated reference is tens of KiB; the cap only guards a runaway. */
#define MAX_MARKDOWN (4 * 1024 * 1024)

#define STATE_HELP "state directory (default $CHELA_HOME, else ~/.chela)"
#define CONFIG_HELP "config file (default DIR/chela.json5)"

static void config_usage(FILE *f)
{
    fprintf(f, "Usage: chela config <validate|get|schema> [options]\n\n"
               "  validate [--config PATH]     check the config file, print every problem\n"
               "  get <dotted.path>            print the effective value as JSON\n"
               "  schema --markdown            print the configuration reference\n\n"
               "Run 'chela config <subcommand> --help' for details.\n");
}

/*
 * Resolve the config path and load it.  On failure prints every message
 * (prefixed by the path) and returns CH_EXIT_USAGE; *path is owned by the
 * caller either way.
 */
static int load(const char *prog, struct ch_opt *opts, size_t n, char **path, struct ch_config **cfg)
{
    struct ch_config_errors errs = {0};
    char *dir = ch_cli_state_dir(ch_opt_get(opts, n, "state"));
    int rc;

    *path = ch_cli_config_path(dir, ch_opt_get(opts, n, "config"));
    ch_free(dir);
    if (!*path) {
        fprintf(stderr, "%s: cannot find the config: set HOME or CHELA_HOME, or pass --config\n", prog);
        return CH_EXIT_USAGE;
    }
    rc = ch_config_load(*path, cfg, &errs);
    if (rc) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s: %s\n", *path, errs.msgs[i]);
        if (errs.count == 0)
            fprintf(stderr, "%s: %s\n", *path, ch_strerror(rc));
        *cfg = NULL;
    }
    ch_config_errors_release(&errs);
    /* An unreadable file counts as a configuration error too (contract:
     * "else every error on stderr, exit 2"). */
    return rc ? CH_EXIT_USAGE : CH_EXIT_OK;
}

static int config_validate(int argc, char **argv)
{
    struct ch_opt opts[] = {
        {"config", true, CONFIG_HELP, NULL},
        {"state", true, STATE_HELP, NULL},
        /* Accepted and ignored, as on every client command (contract). */
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_config *cfg = NULL;
    char *path = NULL;
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, "chela config validate [--config PATH] [--state DIR]", opts, n);
        return rc;
    }
    /* Load even when the file is missing: environment overrides such as
     * CHELA_GATEWAY_PORT are validated too. */
    rc = load("chela config validate", opts, n, &path, &cfg);
    if (rc == CH_EXIT_OK) {
        if (cfg->file_exists)
            printf("config OK: %s\n", path);
        else
            printf("no config file at %s; embedded defaults apply\n", path);
    }
    ch_config_free(cfg);
    ch_free(path);
    return rc;
}

/*
 * Walk a dotted path ("gateway.auth.mode"; array elements by index,
 * "api.auth.tokens.0.name") through v.  Borrowed result, NULL if absent.
 */
static json_t *walk(json_t *v, const char *dotted)
{
    char buf[MAX_DOTTED + 1];
    char *seg, *save = NULL;
    size_t len = strlen(dotted);

    if (len == 0 || len > MAX_DOTTED || dotted[0] == '.' || dotted[len - 1] == '.' || strstr(dotted, ".."))
        return NULL;
    memcpy(buf, dotted, len + 1);
    for (seg = strtok_r(buf, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save)) {
        if (json_is_object(v)) {
            v = json_object_get(v, seg);
        } else if (json_is_array(v)) {
            uint64_t idx;

            if (ch_str_to_u64(ch_str_from(seg), SIZE_MAX, &idx) != 0)
                return NULL;
            v = json_array_get(v, (size_t)idx);
        } else {
            return NULL;
        }
    }
    return v;
}

static int config_get(int argc, char **argv)
{
    static const char *prog = "chela config get";
    struct ch_opt opts[] = {
        {"config", true, CONFIG_HELP, NULL},
        {"state", true, STATE_HELP, NULL},
        /* Accepted and ignored, as on every client command (contract). */
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_config *cfg = NULL;
    json_t *red = NULL, *v;
    const char *pos[1];
    char *path = NULL, *text = NULL;
    size_t npos, flags;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, pos, 1, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, "chela config get <dotted.path> [--config PATH] [--state DIR]", opts, n);
        return rc;
    }
    if (npos != 1) {
        fprintf(stderr, "%s: give one dotted key path, e.g. gateway.port\n", prog);
        return CH_EXIT_USAGE;
    }
    rc = load(prog, opts, n, &path, &cfg);
    if (rc)
        goto out;
    rc = CH_EXIT_RUNTIME;
    /* Always the redacted copy: this output lands in terminals and logs. */
    red = ch_config_redacted(cfg);
    if (!red) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    v = walk(red, pos[0]);
    if (!v) {
        fprintf(stderr, "%s: no such config key: %.*s\n", prog, MAX_DOTTED, pos[0]);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    /* Objects and arrays indented for reading; scalars compact.  15
     * digits keeps 0.1 printing as 0.1 rather than 0.10000000000000001. */
    flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);
    if (json_is_object(v) || json_is_array(v))
        flags |= JSON_INDENT(2);
    text = json_dumps(v, flags);
    if (!text) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    printf("%s\n", text);
    rc = CH_EXIT_OK;
out:
    ch_free(text);
    json_decref(red);
    ch_config_free(cfg);
    ch_free(path);
    return rc;
}

static int config_schema(int argc, char **argv)
{
    /* Markdown is the only format; --markdown is accepted for clarity
     * and so a future --json can sit next to it. */
    struct ch_opt opts[] = {
        {"markdown", false, "print the reference as markdown (the default)", NULL},
        {"state", true, NULL, NULL},
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_buf out;
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, "chela config schema --markdown", opts, n);
        return rc;
    }
    ch_buf_init(&out, MAX_MARKDOWN);
    rc = ch_config_schema_markdown(&out);
    if (rc) {
        fprintf(stderr, "chela config schema: %s\n", ch_strerror(rc));
        ch_buf_release(&out);
        return CH_EXIT_RUNTIME;
    }
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    ch_buf_release(&out);
    return CH_EXIT_OK;
}

int ch_cmd_config(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub) {
        config_usage(stderr);
        return CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        config_usage(stdout);
        return CH_EXIT_OK;
    }
    if (!strcmp(sub, "validate"))
        return config_validate(argc, argv);
    if (!strcmp(sub, "get"))
        return config_get(argc, argv);
    if (!strcmp(sub, "schema"))
        return config_schema(argc, argv);
    fprintf(stderr, "chela config: unknown subcommand '%s'\n\n", sub);
    config_usage(stderr);
    return CH_EXIT_USAGE;
}
