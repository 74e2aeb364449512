/*
 * cmd_client.c: `chela health` and `chela status`, the two commands that
 * ask a running gateway over HTTP (GET /health, GET /health/detail).  The
 * URL is --url, else the one in DIR/gateway.json, else the default
 * listener; status authenticates with --token, $CHELA_TOKEN, or the
 * gateway's ephemeral localToken (ch_rest_target_resolve).  Each is one
 * blocking ch_rest_call with a 10 s deadline and a 1 MiB cap.
 */
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "cli/cli.h"

#define DEFAULT_URL "http://127.0.0.1:18789" /* for --help; rest_client.c has the same */
#define TIMEOUT_MS 10000L
#define MAX_RESPONSE (1024 * 1024)

/* GET path through rest_client.c with this file's deadline and cap. */
static int http_get(const struct ch_rest_target *t, const char *path, struct ch_rest_reply *r)
{
    ch_buf_init(&r->body, MAX_RESPONSE);
    r->timeout_ms = TIMEOUT_MS;
    return ch_rest_call(t, "GET", path, NULL, r);
}

static void print_transport_error(const char *url, const struct ch_rest_reply *r)
{
    if (r->reached)
        fprintf(stderr, "bad answer from the gateway at %s: %s\n", url, r->reason);
    else
        fprintf(stderr, "cannot reach the gateway at %s: %s\n", url, r->reason);
}

/* "12.3s", "4m 05s", "3h 02m", "2d 04h". */
static void format_uptime(int64_t ms, char *out, size_t cap)
{
    int64_t s = ms / 1000;

    if (ms < 60000)
        snprintf(out, cap, "%.1fs", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(out, cap, "%" PRId64 "m %02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%" PRId64 "h %02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(out, cap, "%" PRId64 "d %02" PRId64 "h", s / 86400, s % 86400 / 3600);
}

static void format_bytes(int64_t n, char *out, size_t cap)
{
    if (n < 1024)
        snprintf(out, cap, "%" PRId64 " B", n);
    else if (n < 1024 * 1024)
        snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(out, cap, "%.1f MiB", (double)n / (1024.0 * 1024.0));
}

/*
 * The server's error message from {"error","message"}, else the status.
 * Unlike ch_rest_server_message, the message alone: these lines predate
 * the REST commands and keep their wording.
 */
static void server_message(const struct ch_rest_reply *r, char *out, size_t cap)
{
    json_t *doc = r->body.data ? json_loads(r->body.data, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    const char *code = json_string_value(json_object_get(doc, "error"));

    if (msg)
        snprintf(out, cap, "%s", msg);
    else if (code)
        snprintf(out, cap, "%s", code);
    else
        snprintf(out, cap, "HTTP %ld", r->status);
    json_decref(doc);
}

/* Print the body verbatim, newline-terminated (the --json output). */
static void print_body(const struct ch_rest_reply *r)
{
    if (!r->body.len)
        return;
    fwrite(r->body.data, 1, r->body.len, stdout);
    if (r->body.data[r->body.len - 1] != '\n')
        putchar('\n');
}

#define URL_HELP "gateway URL (default: DIR/gateway.json, else " DEFAULT_URL ")"
#define JSON_HELP "print the gateway's JSON answer"
#define STATE_HELP "state directory (default $CHELA_HOME, else ~/.chela)"

/* Shared front half: parse, resolve.  Returns -1 to go on. */
static int client_begin(int argc, char **argv, struct ch_opt *opts, size_t n, const char *prog, const char *usage,
                        bool want_token, struct ch_rest_target *t)
{
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 2, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, usage, opts, n);
        return rc;
    }
    /* libcurl's global state is main.c's (ch_curlm_global_init). */
    rc = want_token ? ch_rest_target_resolve(prog, opts, n, t) : ch_rest_target_resolve_url(prog, opts, n, t);
    return rc ? rc : -1;
}

int ch_cmd_health(int argc, char **argv)
{
    static const char *prog = "chela health";
    struct ch_opt opts[] = {
        {"url", true, URL_HELP, NULL},
        {"token", true, NULL, NULL}, /* accepted and unused: /health needs none */
        {"json", false, JSON_HELP, NULL},
        {"state", true, STATE_HELP, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_reply r = {0};
    struct ch_rest_target t = {0};
    json_t *doc = NULL;
    const char *status, *version;
    char up[32];
    int rc;

    rc = client_begin(argc, argv, opts, n, prog, "chela health [--url URL] [--json] [--state DIR]", false, &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    if (http_get(&t, "/health", &r) != 0) {
        print_transport_error(t.url, &r);
        goto out;
    }
    if (ch_opt_get(opts, n, "json"))
        print_body(&r);
    doc = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
    status = json_string_value(json_object_get(doc, "status"));
    if (r.status != 200 || !status || strcmp(status, "live") != 0) {
        char msg[200];

        server_message(&r, msg, sizeof(msg));
        fprintf(stderr, "the gateway at %s is not live: %s\n", t.url,
                r.status == 200 ? "unexpected answer to GET /health" : msg);
        goto out;
    }
    if (!ch_opt_get(opts, n, "json")) {
        version = json_string_value(json_object_get(doc, "version"));
        format_uptime((int64_t)json_number_value(json_object_get(doc, "uptimeMs")), up, sizeof(up));
        printf("live (version %s, up %s)\n", version ? version : "unknown", up);
    }
    rc = CH_EXIT_OK;
out:
    json_decref(doc);
    ch_buf_release(&r.body);
    ch_rest_target_release(&t);
    return rc;
}

static int64_t jint(json_t *doc, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(doc, obj) : doc;

    /* json_number_value: a counter sent as a real still prints. */
    return (int64_t)json_number_value(json_object_get(o, key));
}

static double jnum(json_t *doc, const char *obj, const char *key)
{
    return json_number_value(json_object_get(json_object_get(doc, obj), key));
}

static const char *jstr(json_t *doc, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(doc, obj) : doc;
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "-";
}

static void print_status(const char *url, json_t *d)
{
    json_t *store = json_object_get(d, "store");
    char up[32], rss[32], anon[32], heap[32];

    format_uptime(jint(d, NULL, "uptimeMs"), up, sizeof(up));
    format_bytes(jint(d, "memory", "rssBytes"), rss, sizeof(rss));
    format_bytes(jint(d, "memory", "rssAnonBytes"), anon, sizeof(anon));
    format_bytes(jint(d, "memory", "heapBytes"), heap, sizeof(heap));
    printf("Gateway:      %s (pid %" PRId64 ")\n", url, jint(d, NULL, "pid"));
    printf("Version:      %s\n", jstr(d, NULL, "version"));
    printf("Uptime:       %s\n", up);
    printf("Connections:  %" PRId64 " open, %" PRId64 " total, %" PRId64 " rejected\n", jint(d, "connections", "open"),
           jint(d, "connections", "total"), jint(d, "connections", "rejected"));
    printf("Requests:     %" PRId64 "\n", jint(d, "requests", "total"));
    printf("Memory:       RSS %s (anon %s), heap %s\n", rss, anon, heap);
    printf("Event loop:   lag %.1f ms (max %.1f ms)\n", jnum(d, "eventLoop", "lagMs"),
           jnum(d, "eventLoop", "lagMaxMs"));
    printf("Store:        %s, schema %" PRId64 ", queue %" PRId64 "/%" PRId64 ", %" PRId64 " writes in %" PRId64
           " commits\n",
           json_is_true(json_object_get(store, "ok")) ? "ok" : "FAILING", jint(d, "store", "schemaVersion"),
           jint(d, "store", "writeQueueDepth"), jint(d, "store", "writeQueueMax"), jint(d, "store", "writes"),
           jint(d, "store", "commits"));
    printf("Database:     %s\n", jstr(d, "store", "path"));
    printf("Tokens:       %" PRId64 " live\n", jint(d, "tokens", "live"));
    printf("Config:       %s\n", jstr(d, NULL, "configPath"));
    printf("State dir:    %s\n", jstr(d, NULL, "stateDir"));
}

int ch_cmd_status(int argc, char **argv)
{
    static const char *prog = "chela status";
    struct ch_opt opts[] = {
        {"url", true, URL_HELP, NULL},
        {"token", true,
         "bearer token with the read scope (default: $CHELA_TOKEN, else the running gateway's local token)", NULL},
        {"json", false, JSON_HELP, NULL},
        {"state", true, STATE_HELP, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_reply r = {0};
    struct ch_rest_target t = {0};
    json_t *doc = NULL;
    char msg[200];
    int rc;

    rc = client_begin(argc, argv, opts, n, prog, "chela status [--url URL] [--token T] [--json] [--state DIR]", true,
                      &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    if (http_get(&t, "/health/detail", &r) != 0) {
        print_transport_error(t.url, &r);
        goto out;
    }
    if (r.status == 401 || r.status == 403) {
        server_message(&r, msg, sizeof(msg));
        fprintf(stderr, "%s: the gateway refused the request (HTTP %ld): %s%s\n", prog, r.status, msg,
                t.token ? "" : " (no token: pass --token or set CHELA_TOKEN)");
        goto out;
    }
    if (r.status != 200) {
        server_message(&r, msg, sizeof(msg));
        fprintf(stderr, "%s: GET /health/detail answered HTTP %ld: %s\n", prog, r.status, msg);
        goto out;
    }
    if (ch_opt_get(opts, n, "json")) {
        print_body(&r);
        rc = CH_EXIT_OK;
        goto out;
    }
    doc = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        fprintf(stderr, "%s: the gateway's answer is not a JSON object\n", prog);
        goto out;
    }
    print_status(t.url, doc);
    rc = CH_EXIT_OK;
out:
    json_decref(doc);
    ch_buf_release(&r.body);
    ch_rest_target_release(&t);
    return rc;
}
