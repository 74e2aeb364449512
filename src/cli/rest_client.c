/*
 * rest_client.c: what the gateway client commands (`chela health`,
 * `status`, `agent`, `sessions`, `models`, `runs`, `deliveries`) share:
 * finding the gateway and a credential (--url, --token, $CHELA_TOKEN,
 * DIR/gateway.json and its localToken, which never goes to another
 * --url), one blocking JSON request over libcurl's easy interface with
 * a deadline, a response cap and no proxy, and the error lines every
 * command prints.
 */
#include <ctype.h>
#include <string.h>

#include "cli/cli.h"
#include "net/curl_dl.h"

#define DEFAULT_URL "http://127.0.0.1:18789"
#define MAX_URL 2048
#define MAX_TOKEN 4096
#define CALL_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L

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

static bool same_url(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && !strncmp(a, b, la);
}

/* want_token false: t->token stays NULL and no credential is read or checked. */
static int resolve(const char *prog, const struct ch_opt *opts, size_t nopts, bool want_token, struct ch_rest_target *t)
{
    const char *url_flag = ch_opt_get(opts, nopts, "url"), *token_flag = ch_opt_get(opts, nopts, "token");
    char *dir = NULL, *gw_url = NULL, *gw_token = NULL;
    const char *url, *env;
    size_t len;
    int rc = CH_EXIT_RUNTIME;

    memset(t, 0, sizeof(*t));
    dir = ch_cli_state_dir(ch_opt_get(opts, nopts, "state"));
    if (!dir) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
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
    if (rc)
        ch_rest_target_release(t);
    ch_free(dir);
    ch_free(gw_url);
    ch_free_secret(gw_token);
    return rc;
}

int ch_rest_target_resolve(const char *prog, const struct ch_opt *opts, size_t nopts, struct ch_rest_target *t)
{
    return resolve(prog, opts, nopts, true, t);
}

int ch_rest_target_resolve_url(const char *prog, const struct ch_opt *opts, size_t nopts, struct ch_rest_target *t)
{
    return resolve(prog, opts, nopts, false, t);
}

void ch_rest_target_release(struct ch_rest_target *t)
{
    ch_free(t->url);
    ch_free_secret(t->token);
    t->url = t->token = NULL;
}

char *ch_rest_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = ch_malloc(3 * n + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* RFC 3986 unreserved characters, plus ':' (legal in a segment
         * and common in session keys, so paths stay readable in logs). */
        if (isalnum(c) || strchr("-._~:", c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct ch_rest_reply *r = ud;

    return ch_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

void ch_rest_describe_failure(void *curl, int code, const char *errbuf, struct ch_rest_reply *r)
{
    CURLcode cc = (CURLcode)code;
    long os_errno = 0;

    if (cc == CURLE_WRITE_ERROR) {
        r->reached = true;
        snprintf(r->reason, sizeof(r->reason), "response larger than %zu bytes", r->body.max);
        return;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        if (r->timeout_ms)
            snprintf(r->reason, sizeof(r->reason), "no answer within %ld s", r->timeout_ms / 1000);
        else
            snprintf(r->reason, sizeof(r->reason), "no answer in time");
        return;
    }
    curl_easy_getinfo((CURL *)curl, CURLINFO_OS_ERRNO, &os_errno);
    if (cc == CURLE_COULDNT_CONNECT && os_errno)
        snprintf(r->reason, sizeof(r->reason), "%s", strerror((int)os_errno));
    else
        snprintf(r->reason, sizeof(r->reason), "%s", errbuf && errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (isupper((unsigned char)r->reason[0]) && !isupper((unsigned char)r->reason[1]))
        r->reason[0] = (char)tolower((unsigned char)r->reason[0]);
}

/* Append one header line; false (the list unchanged) on failure. */
static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *tmp = line ? curl_slist_append(*list, line) : NULL;

    if (!tmp)
        return false;
    *list = tmp;
    return true;
}

void *ch_rest_easy_new(const struct ch_rest_target *t, const char *method, const char *path, const char *body,
                       const char *accept, void **headers_out)
{
    struct curl_slist *hdrs = NULL;
    char *url, *auth = NULL, acc[64];
    CURL *h;
    bool ok;

    if (ch_curl_load(NULL) != 0)
        return NULL; /* callers that can say why called ch_curl_load first */
    url = ch_sprintf("%s%s", t->url, path);
    h = curl_easy_init();
    ok = url && h;

    snprintf(acc, sizeof(acc), "Accept: %s", accept ? accept : "application/json");
    if (ok && t->token) {
        auth = ch_sprintf("Authorization: Bearer %s", t->token);
        ok = add_header(&hdrs, auth);
    }
    if (ok && body)
        ok = add_header(&hdrs, "Content-Type: application/json");
    if (ok)
        ok = add_header(&hdrs, acc);
    if (ok) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        /* A local admin credential must never go through a proxy. */
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "chela-cli/" CH_VERSION);
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        }
        /* After POSTFIELDS, which would otherwise make it a POST. */
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (!strcmp(method, "POST") && !body) {
            /* A POST with no body still needs Content-Length: 0 (411 otherwise). */
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
    }
    ch_free_secret(auth);
    ch_free(url);
    if (!ok) {
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        return NULL;
    }
    *headers_out = hdrs;
    return h;
}

int ch_rest_call(const struct ch_rest_target *t, const char *method, const char *path, const char *body,
                 struct ch_rest_reply *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct ch_error cerr = {0};
    void *hdrs = NULL;
    CURL *h;
    CURLcode cc;

    r->status = 0;
    r->reached = false;
    if (!r->body.max)
        ch_buf_init(&r->body, CH_REST_MAX_RESPONSE);
    if (ch_curl_load(&cerr) != 0) {
        snprintf(r->reason, sizeof(r->reason), "%s", cerr.msg);
        return CH_EIO;
    }
    snprintf(r->reason, sizeof(r->reason), "out of memory");
    h = ch_rest_easy_new(t, method, path, body, NULL, &hdrs);
    if (!h)
        return CH_EIO;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms ? r->timeout_ms : CALL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    else
        ch_rest_describe_failure(h, cc, errbuf, r);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return cc == CURLE_OK ? 0 : CH_EIO;
}

void ch_rest_server_message(const struct ch_rest_reply *r, char *out, size_t cap)
{
    json_t *doc = r->body.data ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    const char *code = json_string_value(json_object_get(doc, "error"));

    if (msg && code)
        snprintf(out, cap, "%s (%s)", msg, code);
    else if (msg || code)
        snprintf(out, cap, "%s", msg ? msg : code);
    else
        snprintf(out, cap, "HTTP %ld", r->status);
    json_decref(doc);
}

int ch_rest_json(const char *prog, const struct ch_rest_target *t, const char *method, const char *path,
                 const char *body, json_t **out)
{
    struct ch_rest_reply r = {0};
    json_t *doc = NULL;
    char msg[600];
    int rc = CH_EXIT_RUNTIME;

    *out = NULL;
    if (ch_rest_call(t, method, path, body, &r) != 0) {
        fprintf(stderr, "%s: %s the gateway at %s: %s\n", prog, r.reached ? "bad answer from" : "cannot reach", t->url,
                r.reason);
        goto out;
    }
    if (r.status < 200 || r.status > 299) {
        ch_rest_server_message(&r, msg, sizeof(msg));
        fprintf(stderr, "%s: %s %s answered HTTP %ld: %s%s\n", prog, method, path, r.status, msg,
                (r.status == 401 || r.status == 403) && !t->token ? " (no token: pass --token or set CHELA_TOKEN)"
                                                                  : "");
        goto out;
    }
    doc = r.body.data ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    if (!json_is_object(doc)) {
        fprintf(stderr, "%s: the gateway's answer to %s %s is not a JSON object\n", prog, method, path);
        goto out;
    }
    *out = doc;
    doc = NULL;
    rc = CH_EXIT_OK;
out:
    json_decref(doc);
    ch_buf_release(&r.body);
    return rc;
}

void ch_rest_print_json(json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s) {
        fputs(s, stdout);
        putchar('\n');
        ch_free(s);
    }
}

const char *ch_rest_str(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : dflt;
}

int64_t ch_rest_int(const json_t *o, const char *key)
{
    return (int64_t)json_number_value(json_object_get(o, key));
}

int ch_rest_begin(int argc, char **argv, struct ch_opt *opts, size_t n, const char *prog, const char *usage,
                  const char **pos, size_t maxpos, size_t need, struct ch_rest_target *t)
{
    size_t npos;
    bool help;
    int rc = ch_args_parse(argc, argv, 3, opts, n, pos, maxpos, &npos, &help);

    if (rc || help) {
        if (help)
            ch_args_usage(stdout, usage, opts, n);
        return rc;
    }
    if (npos != need) {
        fprintf(stderr, "%s: %s\nUsage: %s\n", prog, need ? "expected exactly one argument" : "unexpected argument",
                usage);
        return CH_EXIT_USAGE;
    }
    rc = ch_rest_target_resolve(prog, opts, n, t);
    return rc ? rc : -1;
}

void ch_rest_short_time(const char *iso, char *out, size_t cap)
{
    if (!iso || strlen(iso) < 19)
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.10s %.8s", iso, iso + 11);
}
