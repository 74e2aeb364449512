/*
 * cli.h: private interface of the command-line layer (src/cli/).  The
 * `chela` binary is one main() dispatching to subcommands; each lives in
 * its own cmd_*.c and returns the process exit code: 0 ok, 1 runtime
 * error, 2 usage or configuration error.
 */
#ifndef CH_CLI_H
#define CH_CLI_H

#include <stdio.h>

#include "core/core.h"

enum { CH_EXIT_OK = 0, CH_EXIT_RUNTIME = 1, CH_EXIT_USAGE = 2 };

/* ---- args.c: a small long-option parser ---- */
struct ch_opt {
    const char *name;     /* "port" for --port */
    bool takes_value;     /* --port 80 / --port=80; false: a flag */
    const char *help;     /* one line */
    const char *value;    /* out: the value, "1" for a set flag, NULL if absent */
};
/*
 * Parse argv[from..] against opts; positional arguments are collected in
 * pos (borrowed pointers into argv, at most maxpos).  `--help`/`-h` sets
 * *want_help.  Unknown option or missing value: message on stderr,
 * returns CH_EXIT_USAGE.
 */
int ch_args_parse(int argc, char **argv, int from, struct ch_opt *opts, size_t nopts,
                  const char **pos, size_t maxpos, size_t *npos, bool *want_help);
void ch_args_usage(FILE *f, const char *usage_line, const struct ch_opt *opts, size_t nopts);
const char *ch_opt_get(const struct ch_opt *opts, size_t nopts, const char *name);

/* ---- state.c: where things live ---- */
/*
 * State directory: `--state DIR` > $CHELA_HOME > ~/.chela.  Returns an
 * owned absolute path (not created).
 */
char *ch_cli_state_dir(const char *flag);
/* Config path: `--config PATH` > DIR/chela.json5.  Owned. */
char *ch_cli_config_path(const char *state_dir, const char *flag);
/* DIR/chela.db.  Owned. */
char *ch_cli_db_path(const char *state_dir);
/*
 * Read DIR/gateway.json written by a running gateway: url and localToken
 * (owned outputs; either may be NULL).  CH_ENOTFOUND when absent.
 */
int ch_cli_local_gateway(const char *state_dir, char **url, char **token);

/* ---- subcommands ---- */
int ch_cmd_gateway(int argc, char **argv);   /* cmd_gateway.c */
int ch_cmd_token(int argc, char **argv);     /* cmd_token.c */
int ch_cmd_health(int argc, char **argv);    /* cmd_client.c */
int ch_cmd_status(int argc, char **argv);    /* cmd_client.c */
int ch_cmd_config(int argc, char **argv);    /* cmd_config.c */

#endif
