/*
 * cmd_client.c: `chela health` and `chela status`, the two commands that
 * ask a running gateway over HTTP (GET /health, GET /health/detail).  The
 * URL is --url, else the one in DIR/gateway.json, else the default
 * listener; status authenticates with --token, $CHELA_TOKEN, or the
 * gateway's ephemeral localToken.  libcurl's easy interface is enough
 * here: one blocking request, a 10 s deadline, no proxy, a 1 MiB cap.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "cli/cli.h"

#define DEFAULT_URL "http://127.0.0.1:18789"
#define TIMEOUT_MS 10000L
#define MAX_RESPONSE (1024 * 1024)
#define MAX_URL 2048
/* Far above any chela or OpenClaw token; bounds the header line. */
#define MAX_TOKEN 4096

struct reply {
    long status;        /* HTTP status, 0 when no response */
    struct ch_buf body; /* capped at MAX_RESPONSE */
    char reason[256];   /* why there is no response */
    bool reached;       /* connected, but the answer was unusable */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;

    /* Returning short makes curl fail the transfer with a write error. */
    return ch_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

/* Lowercase the first letter of a system or curl message, for one line
 * that reads "cannot reach ...: connection refused". */
static void lower_first(char *s)
{
    if (s[0] && isupper((unsigned char)s[0]) && !isupper((unsigned char)s[1]))
        s[0] = (char)tolower((unsigned char)s[0]);
}

static void describe_failure(CURL *h, CURLcode cc, const char *errbuf, struct reply *r)
{
    long os_errno = 0;

    if (cc == CURLE_WRITE_ERROR) {
        r->reached = true;
        snprintf(r->reason, sizeof(r->reason), "response larger than %d bytes", MAX_RESPONSE);
        return;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(r->reason, sizeof(r->reason), "no answer within %ld s", TIMEOUT_MS / 1000);
        return;
    }
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    if (cc == CURLE_COULDNT_CONNECT && os_errno)
        snprintf(r->reason, sizeof(r->reason), "%s", strerror((int)os_errno));
    else
        snprintf(r->reason, sizeof(r->reason), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    lower_first(r->reason);
}

/*
 * GET base+path.  Fills r; returns 0 when an HTTP response arrived (any
 * status), CH_EIO with r->reason otherwise.
 */
static int http_get(const char *base, const char *path, const char *token, struct reply *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL, *tmp;
    char *url = NULL, *auth = NULL;
    CURL *h = NULL;
    CURLcode cc;
    int rc = CH_EIO;

    snprintf(r->reason, sizeof(r->reason), "out of memory");
    url = ch_sprintf("%s%s", base, path);
    h = curl_easy_init();
    if (!url || !h)
        goto out;
    if (token) {
        auth = ch_sprintf("Authorization: Bearer %s", token);
        if (!auth || !(tmp = curl_slist_append(hdrs, auth)))
            goto out;
        hdrs = tmp;
    }
    if (!(tmp = curl_slist_append(hdrs, "Accept: application/json")))
        goto out;
    hdrs = tmp;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A local admin credential must never go through a proxy. */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "chela-cli/" CH_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        describe_failure(h, cc, errbuf, r);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    rc = 0;
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    ch_free_secret(auth);
    ch_free(url);
    return rc;
}

/* Resolved target of a client command. */
struct target {
    char *url;   /* owned, no trailing slash */
    char *token; /* owned secret, may be NULL */
};

static bool sane_token(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > MAX_TOKEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Equal up to trailing slashes. */
static bool same_url(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && !strncmp(a, b, la);
}

static int resolve_target(const char *prog, const char *url_flag, const char *token_flag, const char *state_flag,
                          bool want_token, struct target *t)
{
    char *dir = NULL, *gw_url = NULL, *gw_token = NULL;
    const char *url, *env;
    size_t len;
    int rc = CH_EXIT_RUNTIME;

    dir = ch_cli_state_dir(state_flag);
    /* gateway.json is optional: absent or unreadable means "use defaults". */
    (void)ch_cli_local_gateway(dir, &gw_url, want_token ? &gw_token : NULL);
    url = url_flag ? url_flag : gw_url ? gw_url : DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "%s: the URL must start with http:// or https://, got '%.100s'\n", prog, url);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    len = strlen(url);
    if (len > MAX_URL) {
        fprintf(stderr, "%s: the URL is longer than %d bytes\n", prog, MAX_URL);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    while (len > 0 && url[len - 1] == '/')
        len--;
    t->url = ch_strndup(url, len);
    if (want_token) {
        env = getenv("CHELA_TOKEN");
        if (token_flag && *token_flag)
            t->token = ch_strdup(token_flag);
        else if (env && *env)
            t->token = ch_strdup(env);
        else if (!url_flag || (gw_url && same_url(url_flag, gw_url)))
            t->token = gw_token, gw_token = NULL;
        /* else: the local admin token never goes to another --url. */
    }
    if (!t->url) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (t->token && !sane_token(t->token)) {
        /* It goes into a header line: CR/LF would inject headers. */
        fprintf(stderr, "%s: the token must be 1-%d printable characters without spaces\n", prog, MAX_TOKEN);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    rc = CH_EXIT_OK;
out:
    if (rc) {
        ch_free(t->url);
        ch_free_secret(t->token);
        t->url = t->token = NULL;
    }
    ch_free(dir);
    ch_free(gw_url);
    ch_free_secret(gw_token);
    return rc;
}

static void print_transport_error(const char *url, const struct reply *r)
{
    if (r->reached)
        fprintf(stderr, "bad answer from the gateway at %s: %s\n", url, r->reason);
    else
        fprintf(stderr, "cannot reach the gateway at %s: %s\n", url, r->reason);
}

static void target_release(struct target *t)
{
    ch_free(t->url);
    ch_free_secret(t->token);
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

/* The server's error message from {"error","message"}, else the status. */
static void server_message(const struct reply *r, char *out, size_t cap)
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
static void print_body(const struct reply *r)
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

/* Shared front half: parse, resolve, init curl.  Returns -1 to go on. */
static int client_begin(int argc, char **argv, struct ch_opt *opts, size_t n, const char *prog, const char *usage,
                        bool want_token, struct target *t)
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
    rc = resolve_target(prog, ch_opt_get(opts, n, "url"), ch_opt_get(opts, n, "token"), ch_opt_get(opts, n, "state"),
                        want_token, t);
    if (rc)
        return rc;
    /* libcurl allocates through the one allocator too (STYLE.md 8.3). */
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, ch_malloc, ch_free, ch_realloc, ch_strdup, ch_calloc) != CURLE_OK) {
        fprintf(stderr, "%s: cannot initialise libcurl\n", prog);
        target_release(t);
        return CH_EXIT_RUNTIME;
    }
    return -1;
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
    struct reply r = {0};
    struct target t = {0};
    json_t *doc = NULL;
    const char *status, *version;
    char up[32];
    int rc;

    rc = client_begin(argc, argv, opts, n, prog, "chela health [--url URL] [--json] [--state DIR]", false, &t);
    if (rc >= 0)
        return rc;
    ch_buf_init(&r.body, MAX_RESPONSE);
    rc = CH_EXIT_RUNTIME;
    if (http_get(t.url, "/health", NULL, &r) != 0) {
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
    target_release(&t);
    curl_global_cleanup();
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
    struct reply r = {0};
    struct target t = {0};
    json_t *doc = NULL;
    char msg[200];
    int rc;

    rc = client_begin(argc, argv, opts, n, prog, "chela status [--url URL] [--token T] [--json] [--state DIR]", true,
                      &t);
    if (rc >= 0)
        return rc;
    ch_buf_init(&r.body, MAX_RESPONSE);
    rc = CH_EXIT_RUNTIME;
    if (http_get(t.url, "/health/detail", t.token, &r) != 0) {
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
    target_release(&t);
    curl_global_cleanup();
    return rc;
}
