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
    const char *name;  /* "port" for --port */
    bool takes_value;  /* --port 80 / --port=80; false: a flag */
    const char *help;  /* one line */
    const char *value; /* out: the value, "1" for a set flag, NULL if absent */
};
/*
 * Parse argv[from..] against opts; positional arguments are collected in
 * pos (borrowed pointers into argv, at most maxpos).  `--help`/`-h` sets
 * *want_help.  Unknown option or missing value: message on stderr,
 * returns CH_EXIT_USAGE.
 */
int ch_args_parse(int argc, char **argv, int from, struct ch_opt *opts, size_t nopts, const char **pos, size_t maxpos,
                  size_t *npos, bool *want_help);
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
int ch_cmd_gateway(int argc, char **argv); /* cmd_gateway.c */
int ch_cmd_token(int argc, char **argv);   /* cmd_token.c */
int ch_cmd_health(int argc, char **argv);  /* cmd_client.c */
int ch_cmd_status(int argc, char **argv);  /* cmd_client.c */
int ch_cmd_config(int argc, char **argv);  /* cmd_config.c */

/* ---- rest_client.c: what the REST client commands share ---- */
#include <jansson.h>

/* Largest JSON answer a client command reads (a session with 200 messages). */
#define CH_REST_MAX_RESPONSE (16 * 1024 * 1024)

struct ch_rest_target {
    char *url;   /* owned, no trailing slash */
    char *token; /* owned secret, may be NULL */
};
/*
 * Where to send and which credential, from the parsed options "url",
 * "token" and "state" (absent ones are fine): --url, else DIR/gateway.json,
 * else http://127.0.0.1:18789; --token, else $CHELA_TOKEN, else the running
 * gateway's localToken unless --url points elsewhere.  Returns an exit
 * code, having printed why on stderr; t is filled only on CH_EXIT_OK.
 */
int ch_rest_target_resolve(const char *prog, const struct ch_opt *opts, size_t nopts, struct ch_rest_target *t);
/*
 * The same for an endpoint that needs no credential (`chela health`):
 * t->token stays NULL; --token, $CHELA_TOKEN and the local token are
 * neither read nor checked.
 */
int ch_rest_target_resolve_url(const char *prog, const struct ch_opt *opts, size_t nopts, struct ch_rest_target *t);
void ch_rest_target_release(struct ch_rest_target *t);
/* Percent-encode one path segment (':' kept).  Owned; NULL on OOM. */
char *ch_rest_escape(const char *s);

struct ch_rest_reply {
    long status;        /* HTTP status, 0 when no response */
    struct ch_buf body; /* capped; set up by ch_rest_call when max is 0 */
    char reason[256];   /* why there is no (usable) response */
    bool reached;       /* connected, but the answer was unusable */
    long timeout_ms;    /* in: whole-request deadline for ch_rest_call, 0 for 30 s */
};
/*
 * One blocking request (30 s deadline unless r->timeout_ms, no proxy, no
 * redirects) with an optional JSON body; a bodiless POST sends
 * Content-Length: 0.  Returns 0 when an HTTP response arrived (any
 * status), CH_EIO with r->reason.  The caller releases r->body.
 */
int ch_rest_call(const struct ch_rest_target *t, const char *method, const char *path, const char *body,
                 struct ch_rest_reply *r);
/*
 * ch_rest_call for a 2xx JSON object: *out (owned) on CH_EXIT_OK; else a
 * line on stderr naming prog, the request and the gateway's message, and
 * CH_EXIT_RUNTIME.
 */
int ch_rest_json(const char *prog, const struct ch_rest_target *t, const char *method, const char *path,
                 const char *body, json_t **out);
/* Lower-level pieces for streaming callers (cmd_agent.c).  ch_rest_easy_new
 * returns a CURL * with URL, headers, method and body set (no timeout, no
 * write callback), or NULL (out of memory, or libcurl could not be loaded:
 * call ch_curl_load first to learn why); *headers_out (a curl_slist *) is
 * freed by the caller with curl_slist_free_all after the transfer. */
void *ch_rest_easy_new(const struct ch_rest_target *t, const char *method, const char *path, const char *body,
                       const char *accept, void **headers_out);
void ch_rest_describe_failure(void *curl, int code, const char *errbuf, struct ch_rest_reply *r);
/* "message (code)" from a {"error","message"} body, else "HTTP <status>". */
void ch_rest_server_message(const struct ch_rest_reply *r, char *out, size_t cap);
void ch_rest_print_json(json_t *doc); /* indented, newline-terminated, on stdout */
const char *ch_rest_str(const json_t *o, const char *key, const char *dflt);
int64_t ch_rest_int(const json_t *o, const char *key);
/*
 * The opening of every `chela <noun> <verb>` REST command: parse options
 * from argv[3], print usage for --help, require exactly `need` positional
 * arguments, resolve the target.  Returns -1 to go on, else the exit code.
 */
int ch_rest_begin(int argc, char **argv, struct ch_opt *opts, size_t n, const char *prog, const char *usage,
                  const char **pos, size_t maxpos, size_t need, struct ch_rest_target *t);
/* "2026-11-21T10:30:00.123Z" -> "2026-11-21 10:30:00" ("-" for NULL). */
void ch_rest_short_time(const char *iso, char *out, size_t cap);

int ch_cmd_agent(int argc, char **argv);      /* cmd_agent.c */
int ch_cmd_sessions(int argc, char **argv);   /* cmd_sessions.c */
int ch_cmd_models(int argc, char **argv);     /* cmd_sessions.c */
int ch_cmd_runs(int argc, char **argv);       /* cmd_sessions.c */
int ch_cmd_deliveries(int argc, char **argv); /* cmd_deliveries.c */
int ch_cmd_devices(int argc, char **argv);    /* cmd_devices.c */

#endif
