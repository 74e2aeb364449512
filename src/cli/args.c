/*
 * args.c: the long-option parser every `chela` subcommand uses.
 *
 * Accepted forms: `--name value`, `--name=value`, `--flag`, positional
 * arguments anywhere, and `--` ending option parsing.  `--help`/`-h`
 * anywhere before `--` wins over every other problem, so `chela token
 * create --bogus --help` still prints help.  Errors name the command
 * ("chela token create: unknown option --foo"); the command words are
 * argv[1..from-1] (every command gets argv exactly as main received it).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* Longer command prefixes are truncated: they only label messages. */
#define PROG_MAX 128

/* "chela token create" from the command words before `from`; argv[0]
 * (the binary, maybe a path or a renamed copy) is always "chela". */
static void format_prog(char *out, size_t cap, int argc, char **argv, int from)
{
    size_t len;

    snprintf(out, cap, "chela");
    for (int i = 0; i < from && i < argc; i++) {
        if (i == 0)
            continue;
        len = strlen(out);
        if (len + 1 < cap)
            snprintf(out + len, cap - len, " %s", argv[i]);
    }
}

static struct ch_opt *find_opt(struct ch_opt *opts, size_t nopts, const char *name, size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int ch_args_parse(int argc, char **argv, int from, struct ch_opt *opts, size_t nopts, const char **pos, size_t maxpos,
                  size_t *npos, bool *want_help)
{
    char prog[PROG_MAX];
    bool ended = false;
    int i;

    *npos = 0;
    *want_help = false;
    for (size_t k = 0; k < nopts; k++)
        opts[k].value = NULL;
    format_prog(prog, sizeof(prog), argc, argv, from);

    /* Pre-scan so help wins over errors anywhere on the line. */
    for (i = from; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i])) {
            *want_help = true;
            return CH_EXIT_OK;
        }

    for (i = from; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        struct ch_opt *o;
        size_t namelen;

        if (ended || a[0] != '-' || !strcmp(a, "-")) {
            /* A lone "-" is a conventional positional (stdin). */
            if (*npos >= maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
                goto usage;
            }
            pos[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            ended = true;
            continue;
        }
        if (a[1] != '-') {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            goto usage;
        }
        eq = strchr(a + 2, '=');
        namelen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        o = find_opt(opts, nopts, a + 2, namelen);
        if (!o) {
            fprintf(stderr, "%s: unknown option %.*s\n", prog, (int)(namelen + 2), a);
            goto usage;
        }
        if (!o->takes_value) {
            if (eq) {
                fprintf(stderr, "%s: --%s does not take a value\n", prog, o->name);
                goto usage;
            }
            o->value = "1";
            continue;
        }
        if (eq) {
            o->value = eq + 1;
            continue;
        }
        /* A following option is not taken as the value: `--name --json`
         * is almost always a forgotten value.  `--name=--x` still works. */
        if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)) {
            fprintf(stderr, "%s: --%s needs a value\n", prog, o->name);
            goto usage;
        }
        o->value = argv[++i];
    }
    return CH_EXIT_OK;
usage:
    fprintf(stderr, "Try '%s --help'.\n", prog);
    return CH_EXIT_USAGE;
}

void ch_args_usage(FILE *f, const char *usage_line, const struct ch_opt *opts, size_t nopts)
{
    size_t width = strlen("-h, --help");

    /* Options whose help is NULL are accepted but not listed (e.g. --url
     * on commands that ignore it, so scripts can pass one set of flags). */
    for (size_t i = 0; i < nopts; i++) {
        size_t w = strlen(opts[i].name) + 2 + (opts[i].takes_value ? strlen(" VALUE") : 0);
        if (opts[i].help && w > width)
            width = w;
    }
    fprintf(f, "Usage: %s\n", usage_line);
    fprintf(f, "\nOptions:\n");
    for (size_t i = 0; i < nopts; i++) {
        char left[96];

        if (!opts[i].help)
            continue;
        snprintf(left, sizeof(left), "--%s%s", opts[i].name, opts[i].takes_value ? " VALUE" : "");
        fprintf(f, "  %-*s  %s\n", (int)width, left, opts[i].help);
    }
    fprintf(f, "  %-*s  %s\n", (int)width, "-h, --help", "show this help and exit");
}

const char *ch_opt_get(const struct ch_opt *opts, size_t nopts, const char *name)
{
    for (size_t i = 0; i < nopts; i++)
        if (!strcmp(opts[i].name, name))
            return opts[i].value;
    return NULL;
}
