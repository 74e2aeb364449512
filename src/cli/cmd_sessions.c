/*
 * cmd_sessions.c: `chela sessions list|show KEY|reset KEY|delete KEY` and
 * `chela models list` (issue #3 item 8), clients of the running gateway's
 * /api/v1/sessions and /api/v1/models.  `sessions list --json` rows carry
 * exactly key, model, inputTokens, outputTokens, totalTokens,
 * contextTokens, estimatedCostUsd and updatedAt, whatever else the REST
 * rows grow; `show`, `reset`, `delete` and `models list --json` print the
 * gateway's answer as it is.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"

#define PAGE 1000 /* the REST maximum per request */
#define DEFAULT_LIST_LIMIT 1000
#define MAX_LIST_LIMIT 100000

#define COMMON_OPTS                                                                                                    \
    {"json", false, "print JSON", NULL},                                                                               \
        {"url", true, "gateway URL (default: DIR/gateway.json, else http://127.0.0.1:18789)", NULL},                   \
        {"token", true, "bearer token (default: $CHELA_TOKEN, else the running gateway's local token)", NULL},         \
    {                                                                                                                  \
        "state", true, "state directory (default $CHELA_HOME, else ~/.chela)", NULL                                    \
    }

/* Parse a subcommand's options (argv[3..]) and resolve the target. */
static int parse_limit(const char *prog, const char *v, size_t dflt, size_t *out)
{
    uint64_t n;

    *out = dflt;
    if (!v)
        return 0;
    if (ch_str_to_u64(ch_str_from(v), MAX_LIST_LIMIT, &n) != 0 || n == 0) {
        fprintf(stderr, "%s: --limit must be an integer from 1 to %d\n", prog, MAX_LIST_LIMIT);
        return CH_EXIT_USAGE;
    }
    *out = (size_t)n;
    return 0;
}

/* ---- sessions list ---- */

static const char *const LIST_KEYS[] = {"key",         "model",         "inputTokens",      "outputTokens",
                                        "totalTokens", "contextTokens", "estimatedCostUsd", "updatedAt"};

/* Fetch up to limit rows, following nextCursor; rows appended to out. */
static int fetch_sessions(const char *prog, const struct ch_rest_target *t, size_t limit, json_t *out)
{
    char path[128], cursor[32] = "";
    json_t *doc, *rows, *row;
    size_t i;
    int rc;

    while (json_array_size(out) < limit) {
        size_t want = CH_MIN((size_t)PAGE, limit - json_array_size(out));
        snprintf(path, sizeof(path), "/api/v1/sessions?limit=%zu%s%s", want, cursor[0] ? "&cursor=" : "", cursor);
        if ((rc = ch_rest_json(prog, t, "GET", path, NULL, &doc)) != 0)
            return rc;
        rows = json_object_get(doc, "sessions");
        json_array_foreach(rows, i, row)
        {
            json_t *slim = json_object();
            for (size_t k = 0; slim && k < CH_ARRAY_SIZE(LIST_KEYS); k++) {
                json_t *v = json_object_get(row, LIST_KEYS[k]);
                json_object_set(slim, LIST_KEYS[k], v ? v : json_null());
            }
            json_array_append_new(out, slim);
        }
        /* A cursor is opaque, but never longer than an offset. */
        if (!json_is_string(json_object_get(doc, "nextCursor")) || !json_array_size(rows) ||
            json_string_length(json_object_get(doc, "nextCursor")) >= sizeof(cursor)) {
            json_decref(doc);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(json_object_get(doc, "nextCursor")));
        json_decref(doc);
    }
    return CH_EXIT_OK;
}

static void print_sessions(json_t *rows)
{
    size_t i, kw = 3, mw = 5;
    json_t *row;
    char upd[32];

    json_array_foreach(rows, i, row)
    {
        kw = CH_MAX(kw, strlen(ch_rest_str(row, "key", "")));
        mw = CH_MAX(mw, strlen(ch_rest_str(row, "model", "-")));
    }
    kw = CH_MIN(kw, (size_t)60);
    mw = CH_MIN(mw, (size_t)40);
    printf("%-*s  %-*s  %10s  %10s  %10s  %10s  %10s  %s\n", (int)kw, "KEY", (int)mw, "MODEL", "IN", "OUT", "TOTAL",
           "CONTEXT", "COST-USD", "UPDATED");
    json_array_foreach(rows, i, row)
    {
        ch_rest_short_time(ch_rest_str(row, "updatedAt", NULL), upd, sizeof(upd));
        printf("%-*.*s  %-*.*s  %10" PRId64 "  %10" PRId64 "  %10" PRId64 "  %10" PRId64 "  %10.4f  %s\n", (int)kw,
               (int)kw, ch_rest_str(row, "key", ""), (int)mw, (int)mw, ch_rest_str(row, "model", "-"),
               ch_rest_int(row, "inputTokens"), ch_rest_int(row, "outputTokens"), ch_rest_int(row, "totalTokens"),
               ch_rest_int(row, "contextTokens"), json_number_value(json_object_get(row, "estimatedCostUsd")), upd);
    }
    if (!json_array_size(rows))
        printf("(no sessions)\n");
}

static int sessions_list(int argc, char **argv)
{
    static const char *prog = "chela sessions list";
    static const char *usage = "chela sessions list [--limit N] [--json] [--url URL] [--token T] [--state DIR]";
    struct ch_opt opts[] = {{"limit", true, "most rows to list (default 1000)", NULL}, COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    json_t *rows = NULL;
    size_t limit;
    int rc = ch_rest_begin(argc, argv, opts, n, prog, usage, NULL, 0, 0, &t);

    if (rc >= 0)
        return rc;
    if ((rc = parse_limit(prog, ch_opt_get(opts, n, "limit"), DEFAULT_LIST_LIMIT, &limit)) != 0)
        goto out;
    rows = json_array();
    if (!rows) {
        rc = CH_EXIT_RUNTIME;
        goto out;
    }
    if ((rc = fetch_sessions(prog, &t, limit, rows)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json")) {
        json_t *doc = json_pack("{s:I, s:O}", "count", (json_int_t)json_array_size(rows), "sessions", rows);
        ch_rest_print_json(doc);
        json_decref(doc);
    } else {
        print_sessions(rows);
    }
out:
    json_decref(rows);
    ch_rest_target_release(&t);
    return rc;
}

/* ---- sessions show | reset | delete ---- */

static void print_session(json_t *s)
{
    json_t *msgs = json_object_get(s, "messages"), *m;
    char created[32], updated[32], when[32];
    size_t i;

    ch_rest_short_time(ch_rest_str(s, "createdAt", NULL), created, sizeof(created));
    ch_rest_short_time(ch_rest_str(s, "updatedAt", NULL), updated, sizeof(updated));
    printf("Session:     %s\n", ch_rest_str(s, "key", "-"));
    printf("Session id:  %s\n", ch_rest_str(s, "sessionId", "-"));
    printf("Model:       %s\n", ch_rest_str(s, "model", "-"));
    if (json_is_string(json_object_get(s, "label")))
        printf("Label:       %s\n", ch_rest_str(s, "label", ""));
    printf("Tokens:      %" PRId64 " in, %" PRId64 " out, %" PRId64 " total, context %" PRId64 "\n",
           ch_rest_int(s, "inputTokens"), ch_rest_int(s, "outputTokens"), ch_rest_int(s, "totalTokens"),
           ch_rest_int(s, "contextTokens"));
    printf("Cost:        $%.4f\n", json_number_value(json_object_get(s, "estimatedCostUsd")));
    printf("Created:     %s\nUpdated:     %s\n", created, updated);
    printf("Messages:    %zu%s\n", json_array_size(msgs),
           json_is_true(json_object_get(s, "truncated")) ? " (newest only)" : "");
    json_array_foreach(msgs, i, m)
    {
        ch_rest_short_time(ch_rest_str(m, "createdAt", NULL), when, sizeof(when));
        printf("\n[%" PRId64 "] %s  %s\n%s\n", ch_rest_int(m, "seq"), ch_rest_str(m, "role", "?"), when,
               ch_rest_str(m, "content", ""));
    }
}

/* show, reset and delete: one request on /api/v1/sessions/<KEY>... */
static int sessions_one(int argc, char **argv, const char *verb)
{
    char prog[64], usage[160], *key = NULL, *path = NULL, canon[CH_SESSION_KEY_MAX + 1];
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    const char *pos[1];
    json_t *doc = NULL;
    bool json;
    int rc;

    snprintf(prog, sizeof(prog), "chela sessions %s", verb);
    snprintf(usage, sizeof(usage), "chela sessions %s KEY [--json] [--url URL] [--token T] [--state DIR]", verb);
    rc = ch_rest_begin(argc, argv, opts, n, prog, usage, pos, 1, 1, &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    json = ch_opt_get(opts, n, "json") != NULL;
    /* The gateway's key for it (`S1` is agent:main:s1), as OpenClaw's CLI
     * resolves one; a malformed agent key is a usage error. */
    if (ch_session_key_canon(pos[0], strlen(pos[0]), canon, sizeof(canon)) != 0) {
        fprintf(stderr, "%s: malformed session key \"%s\"\n", prog, pos[0]);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    if (!(key = ch_rest_escape(canon)) ||
        !(path = ch_sprintf("/api/v1/sessions/%s%s", key, !strcmp(verb, "reset") ? "/reset" : ""))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (!strcmp(verb, "show"))
        rc = ch_rest_json(prog, &t, "GET", path, NULL, &doc);
    else if (!strcmp(verb, "reset"))
        rc = ch_rest_json(prog, &t, "POST", path, NULL, &doc);
    else
        rc = ch_rest_json(prog, &t, "DELETE", path, NULL, &doc);
    if (rc)
        goto out;
    if (json)
        ch_rest_print_json(doc);
    if (!strcmp(verb, "show")) {
        if (!json)
            print_session(doc);
    } else if (!strcmp(verb, "reset")) {
        if (!json)
            printf("Reset %s (new session id %s)\n", pos[0], ch_rest_str(doc, "sessionId", "-"));
    } else if (json_is_true(json_object_get(doc, "deleted"))) {
        if (!json)
            printf("Deleted %s\n", pos[0]);
    } else {
        fprintf(stderr, "%s: no session '%s'\n", prog, pos[0]);
        rc = CH_EXIT_RUNTIME;
    }
out:
    json_decref(doc);
    ch_free(key);
    ch_free(path);
    ch_rest_target_release(&t);
    return rc;
}

static void sessions_usage(FILE *f)
{
    fprintf(f, "Usage: chela sessions <list|show KEY|reset KEY|delete KEY> [options]\n\n"
               "  list         sessions, most recently updated first\n"
               "  show KEY     one session and its newest messages\n"
               "  reset KEY    start a new transcript under KEY (admin)\n"
               "  delete KEY   delete KEY and its transcript (admin)\n\n"
               "Run 'chela sessions <subcommand> --help' for its options.\n");
}

int ch_cmd_sessions(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub || sub[0] == '-') {
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        sessions_usage(help ? stdout : stderr);
        return help ? CH_EXIT_OK : CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "list"))
        return sessions_list(argc, argv);
    if (!strcmp(sub, "show") || !strcmp(sub, "reset") || !strcmp(sub, "delete"))
        return sessions_one(argc, argv, sub);
    fprintf(stderr, "chela sessions: unknown subcommand '%s'\n", sub);
    sessions_usage(stderr);
    return CH_EXIT_USAGE;
}

/* ---- models list ---- */

static void print_models(json_t *doc)
{
    json_t *models = json_object_get(doc, "models"), *m, *aliases;
    size_t i, w = 5;

    json_array_foreach(models, i, m) w = CH_MAX(w, strlen(ch_rest_str(m, "id", "")));
    w = CH_MIN(w, (size_t)60);
    printf("%-*s  %10s  %10s  %9s  %9s  %s\n", (int)w, "MODEL", "CONTEXT", "MAX-OUT", "IN-$/M", "OUT-$/M", "TAGS");
    json_array_foreach(models, i, m)
    {
        json_t *pr = json_object_get(m, "pricing"), *a;
        char tags[256] = "";
        size_t k, len;

        if (json_is_true(json_object_get(m, "isDefault")))
            snprintf(tags, sizeof(tags), "default");
        else if (json_is_true(json_object_get(m, "isFallback")))
            snprintf(tags, sizeof(tags), "fallback");
        aliases = json_object_get(m, "aliases");
        json_array_foreach(aliases, k, a)
        {
            len = strlen(tags);
            if (json_is_string(a) && len + 1 < sizeof(tags))
                snprintf(tags + len, sizeof(tags) - len, "%salias:%s", len ? "," : "", json_string_value(a));
        }
        printf("%-*.*s  %10" PRId64 "  %10" PRId64 "  %9.2f  %9.2f  %s\n", (int)w, (int)w, ch_rest_str(m, "id", ""),
               ch_rest_int(m, "contextWindow"), ch_rest_int(m, "maxTokens"),
               json_number_value(json_object_get(pr, "input")), json_number_value(json_object_get(pr, "output")),
               tags[0] ? tags : "-");
    }
    if (!json_array_size(models))
        printf("(no models: configure models.providers or set an API key variable)\n");
}

int ch_cmd_models(int argc, char **argv)
{
    static const char *prog = "chela models list";
    static const char *usage = "chela models list [--json] [--url URL] [--token T] [--state DIR]";
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    const char *sub = argc > 2 ? argv[2] : NULL;
    json_t *doc = NULL;
    int rc;

    if (!sub || strcmp(sub, "list") != 0) {
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        if (sub && !help)
            fprintf(stderr, "chela models: unknown subcommand '%s'\n", sub);
        fprintf(help ? stdout : stderr, "Usage: %s\n", usage);
        return help ? CH_EXIT_OK : CH_EXIT_USAGE;
    }
    rc = ch_rest_begin(argc, argv, opts, n, prog, usage, NULL, 0, 0, &t);
    if (rc >= 0)
        return rc;
    rc = ch_rest_json(prog, &t, "GET", "/api/v1/models", NULL, &doc);
    if (rc == 0) {
        if (ch_opt_get(opts, n, "json"))
            ch_rest_print_json(doc);
        else
            print_models(doc);
    }
    json_decref(doc);
    ch_rest_target_release(&t);
    return rc;
}

/* ---- runs list | show ID | abort ID ---- */

static void print_runs(json_t *doc)
{
    json_t *runs = json_object_get(doc, "runs"), *r, *u;
    char created[32], dur[24];
    size_t i;

    printf("%-36s  %-8s  %-6s  %-28s  %-24s  %-19s  %9s  %s\n", "RUN", "STATUS", "SOURCE", "SESSION", "MODEL",
           "CREATED", "DURATION", "TOKENS");
    json_array_foreach(runs, i, r)
    {
        u = json_object_get(r, "usage");
        ch_rest_short_time(ch_rest_str(r, "createdAt", NULL), created, sizeof(created));
        if (json_is_number(json_object_get(r, "durationMs")))
            snprintf(dur, sizeof(dur), "%.1fs", (double)ch_rest_int(r, "durationMs") / 1000.0);
        else
            snprintf(dur, sizeof(dur), "-");
        printf("%-36.36s  %-8s  %-6.6s  %-28.28s  %-24.24s  %-19s  %9s  %" PRId64 "/%" PRId64 "\n",
               ch_rest_str(r, "runId", ""), ch_rest_str(r, "status", "?"), ch_rest_str(r, "source", "-"),
               ch_rest_str(r, "sessionKey", "-"), ch_rest_str(r, "model", "-"), created, dur,
               ch_rest_int(u, "inputTokens"), ch_rest_int(u, "outputTokens"));
    }
    if (!json_array_size(runs))
        printf("(no runs)\n");
}

static void print_run(json_t *r)
{
    json_t *u = json_object_get(r, "usage");
    char t1[32], t2[32], t3[32];

    ch_rest_short_time(ch_rest_str(r, "createdAt", NULL), t1, sizeof(t1));
    ch_rest_short_time(ch_rest_str(r, "startedAt", NULL), t2, sizeof(t2));
    ch_rest_short_time(ch_rest_str(r, "finishedAt", NULL), t3, sizeof(t3));
    printf("Run:         %s\n", ch_rest_str(r, "runId", "-"));
    printf("Status:      %s%s\n", ch_rest_str(r, "status", "?"),
           json_is_true(json_object_get(r, "live")) ? " (live)" : "");
    printf("Session:     %s\n", ch_rest_str(r, "sessionKey", "-"));
    printf("Source:      %s\n", ch_rest_str(r, "source", "-"));
    if (json_is_string(json_object_get(r, "channel")))
        printf("Channel:     %s\n", ch_rest_str(r, "channel", ""));
    printf("Model:       %s%s%s\n", ch_rest_str(r, "provider", ""),
           json_is_string(json_object_get(r, "provider")) ? "/" : "", ch_rest_str(r, "model", "-"));
    printf("Created:     %s\nStarted:     %s\nFinished:    %s\n", t1, t2, t3);
    if (json_is_number(json_object_get(r, "durationMs")))
        printf("Duration:    %" PRId64 " ms\n", ch_rest_int(r, "durationMs"));
    printf("Tokens:      %" PRId64 " in, %" PRId64 " out\n", ch_rest_int(u, "inputTokens"),
           ch_rest_int(u, "outputTokens"));
    printf("Cost:        $%.6f\n", json_number_value(json_object_get(r, "costUsd")));
    if (json_is_string(json_object_get(r, "error")))
        printf("Error:       %s: %s\n", ch_rest_str(r, "errorClass", "unknown"), ch_rest_str(r, "error", ""));
    if (json_is_string(json_object_get(json_object_get(r, "result"), "text")))
        printf("\n%s\n", ch_rest_str(json_object_get(r, "result"), "text", ""));
}

static int runs_list(int argc, char **argv)
{
    static const char *prog = "chela runs list";
    static const char *usage = "chela runs list [--status S] [--session KEY] [--limit N] [--json] [--url URL] "
                               "[--token T] [--state DIR]";
    struct ch_opt opts[] = {
        {"status", true, "only runs in this status: queued, running, ok, error, aborted, timeout", NULL},
        {"session", true, "only runs of this session key", NULL},
        {"limit", true, "most rows (1-1000, default 50)", NULL},
        COMMON_OPTS,
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    struct ch_buf path;
    const char *st = NULL, *sk = NULL;
    char *esc = NULL, canon[CH_SESSION_KEY_MAX + 1];
    json_t *doc = NULL;
    size_t limit;
    int rc = ch_rest_begin(argc, argv, opts, n, prog, usage, NULL, 0, 0, &t);

    if (rc >= 0)
        return rc;
    ch_buf_init(&path, 4096);
    if ((rc = parse_limit(prog, ch_opt_get(opts, n, "limit"), 50, &limit)) != 0)
        goto out;
    if (limit > 1000) {
        fprintf(stderr, "%s: --limit must be at most 1000\n", prog);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    rc = CH_EXIT_RUNTIME;
    ch_buf_appendf(&path, "/api/v1/runs?limit=%zu", limit);
    if ((st = ch_opt_get(opts, n, "status")) != NULL) {
        if (!(esc = ch_rest_escape(st)) || ch_buf_appendf(&path, "&status=%s", esc) != 0)
            goto oom;
        ch_free(esc);
        esc = NULL;
    }
    if ((sk = ch_opt_get(opts, n, "session")) != NULL) {
        if (ch_session_key_canon(sk, strlen(sk), canon, sizeof(canon)) != 0) {
            fprintf(stderr, "%s: malformed session key \"%s\"\n", prog, sk);
            rc = CH_EXIT_USAGE;
            goto out;
        }
        if (!(esc = ch_rest_escape(canon)) || ch_buf_appendf(&path, "&sessionKey=%s", esc) != 0)
            goto oom;
    }
    if ((rc = ch_rest_json(prog, &t, "GET", path.data, NULL, &doc)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json"))
        ch_rest_print_json(doc);
    else
        print_runs(doc);
    goto out;
oom:
    fprintf(stderr, "%s: the filter is too long\n", prog);
    rc = CH_EXIT_USAGE;
out:
    ch_free(esc);
    ch_buf_release(&path);
    json_decref(doc);
    ch_rest_target_release(&t);
    return rc;
}

/* show and abort: one run by id. */
static int runs_one(int argc, char **argv, const char *verb)
{
    char prog[64], usage[160], *id = NULL, *path = NULL;
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    bool is_show = !strcmp(verb, "show");
    const char *pos[1];
    json_t *doc = NULL;
    int rc;

    snprintf(prog, sizeof(prog), "chela runs %s", verb);
    snprintf(usage, sizeof(usage), "chela runs %s RUN-ID [--json] [--url URL] [--token T] [--state DIR]", verb);
    rc = ch_rest_begin(argc, argv, opts, n, prog, usage, pos, 1, 1, &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    if (!(id = ch_rest_escape(pos[0])) || !(path = ch_sprintf("/api/v1/runs/%s%s", id, is_show ? "" : "/abort"))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if ((rc = ch_rest_json(prog, &t, is_show ? "GET" : "POST", path, NULL, &doc)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json"))
        ch_rest_print_json(doc);
    else if (is_show)
        print_run(doc);
    else if (json_is_true(json_object_get(doc, "aborted")))
        printf("Aborting %s\n", pos[0]);
    else
        printf("Run %s is not live (status %s); nothing to abort\n", pos[0], ch_rest_str(doc, "status", "?"));
out:
    json_decref(doc);
    ch_free(id);
    ch_free(path);
    ch_rest_target_release(&t);
    return rc;
}

int ch_cmd_runs(int argc, char **argv)
{
    static const char *usage = "Usage: chela runs <list|show RUN-ID|abort RUN-ID> [options]\n\n"
                               "  list           runs, newest first (--status, --session, --limit)\n"
                               "  show RUN-ID    one run: status, timings, usage, result text\n"
                               "  abort RUN-ID   abort a queued or running run\n\n"
                               "Run 'chela runs <subcommand> --help' for its options.\n";
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub || sub[0] == '-') {
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? CH_EXIT_OK : CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "list"))
        return runs_list(argc, argv);
    if (!strcmp(sub, "show") || !strcmp(sub, "abort"))
        return runs_one(argc, argv, sub);
    fprintf(stderr, "chela runs: unknown subcommand '%s'\n", sub);
    fputs(usage, stderr);
    return CH_EXIT_USAGE;
}
