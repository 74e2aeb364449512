/*
 * cmd_agent.c: `chela agent -m "message" [--session KEY] [--model REF]
 * [--json]`, one agent turn through the running gateway (issue #3 item 8).
 * It posts to /api/v1/chat/stream and prints each text delta the moment
 * its SSE event arrives (stdout flushed per delta), then a final newline.
 * Exit 0 when the run ended ok, 1 when it failed (class and message on
 * stderr) or the gateway could not be used, 2 on usage errors (ours, or a
 * 400 from the gateway about the request).  Interrupting the command
 * closes the connection, which aborts the run on the gateway.
 */
#include <string.h>

#include "cli/cli.h"
#include "net/curl_dl.h"

#define MAX_EVENT (32u << 20)      /* one SSE event's data */
#define MAX_TEXT (64u << 20)       /* the reply kept for --json */
#define MAX_ERROR_BODY (64u << 10) /* a non-2xx answer */
/* The gateway sends a keepalive comment every 15 s: a minute of silence
 * means the connection is dead. */
#define STALL_SECONDS 60L

struct stream {
    CURL *h;
    long status; /* 0 until the head arrived */
    bool json_mode;
    struct ch_buf line;           /* the current, unterminated line */
    struct ch_buf data;           /* data: lines of the current event */
    struct ch_buf text;           /* the reply (--json) */
    struct ch_buf err_body;       /* a non-2xx body */
    json_t *start, *done, *error; /* owned: the lifecycle events */
    bool wrote_text;              /* something went to stdout */
    char last_char;               /* last byte written to stdout */
    bool bad_event;               /* an event was not JSON */
};

static void dispatch(struct stream *s)
{
    json_t *ev = json_loadb(s->data.data ? s->data.data : "", s->data.len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));

    ch_buf_reset(&s->data);
    if (!type) {
        s->bad_event = true;
        json_decref(ev);
        return;
    }
    if (!strcmp(type, "delta")) {
        const json_t *c = json_object_get(ev, "content");
        const char *p = json_string_value(c);
        size_t n = json_string_length(c);
        if (p && n) {
            if (s->json_mode) {
                ch_buf_append(&s->text, p, n);
            } else {
                fwrite(p, 1, n, stdout);
                fflush(stdout);
                s->wrote_text = true;
                s->last_char = p[n - 1];
            }
        }
    } else if (!strcmp(type, "start") && !s->start) {
        s->start = json_incref(ev);
    } else if (!strcmp(type, "done") && !s->done) {
        s->done = json_incref(ev);
    } else if (!strcmp(type, "error") && !s->error) {
        s->error = json_incref(ev);
    }
    json_decref(ev);
}

/* One complete line of the event stream (CR stripped). */
static void on_line(struct stream *s, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n == 0) {
        if (s->data.len)
            dispatch(s);
        return;
    }
    if (p[0] == ':')
        return; /* a comment: the keepalive */
    if (n >= 5 && !memcmp(p, "data:", 5)) {
        p += 5, n -= 5;
        if (n && p[0] == ' ')
            p++, n--;
        if (s->data.len)
            ch_buf_append_char(&s->data, '\n');
        ch_buf_append(&s->data, p, n);
    }
    /* event:, id:, retry: carry nothing this client needs. */
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct stream *s = ud;
    size_t n = size * nmemb, start = 0;

    if (!s->status)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200)
        return ch_buf_append(&s->err_body, p, n) == 0 ? n : 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (s->line.len) {
            if (ch_buf_append(&s->line, p + start, i - start) != 0)
                return 0;
            on_line(s, s->line.data, s->line.len);
            ch_buf_reset(&s->line);
        } else {
            on_line(s, p + start, i - start);
        }
        start = i + 1;
    }
    /* Returning short fails the transfer: an event over the cap. */
    return ch_buf_append(&s->line, p + start, n - start) == 0 ? n : 0;
}

static void print_json_result(struct stream *s, const char *status)
{
    json_t *fin = s->done ? s->done : s->error;
    const char *conv = json_string_value(json_object_get(s->start, "conversationId"));
    char key[CH_SESSION_KEY_MAX + 1];
    json_t *o;

    /* The answer echoes the conversation id; the session key is the
     * gateway's canonical form of it (`s1` -> agent:main:s1). */
    if (!conv || ch_session_key_canon(conv, strlen(conv), key, sizeof(key)) != 0)
        key[0] = '\0';
    o = json_pack("{s:s#, s:O?, s:s?, s:s, s:O?, s:O?, s:O?}", "text", s->text.data ? s->text.data : "",
                  (int)s->text.len, "runId", json_object_get(s->start, "runId"), "sessionKey", key[0] ? key : NULL,
                  "status", status, "usage", json_object_get(fin, "usage"), "model", json_object_get(fin, "model"),
                  "costUsd", json_object_get(fin, "costUsd"));

    if (o && s->error) {
        json_object_set(o, "errorClass", json_object_get(s->error, "error"));
        json_object_set(o, "error", json_object_get(s->error, "message"));
    }
    if (o) {
        char *txt = json_dumps(o, JSON_COMPACT);
        if (txt) {
            puts(txt);
            ch_free(txt);
        }
    }
    json_decref(o);
}

/* The outcome once the transfer is over: exit code, lines printed. */
static int finish(struct stream *s, const char *prog, CURLcode cc, const char *errbuf, const char *url)
{
    char msg[600];

    if (s->data.len) /* a last event without its blank line */
        dispatch(s);
    if (s->status && s->status != 200) {
        struct ch_rest_reply r = {.status = s->status, .body = s->err_body};
        ch_rest_server_message(&r, msg, sizeof(msg));
        fprintf(stderr, "%s: the gateway refused the request (HTTP %ld): %s\n", prog, s->status, msg);
        return s->status == 400 ? CH_EXIT_USAGE : CH_EXIT_RUNTIME;
    }
    if (s->wrote_text && s->last_char != '\n')
        putchar('\n');
    if (s->done) {
        if (s->json_mode)
            print_json_result(s, "ok");
        return CH_EXIT_OK;
    }
    if (s->error) {
        fprintf(stderr, "%s: run %s failed: %s: %s\n", prog, ch_rest_str(s->error, "runId", "-"),
                ch_rest_str(s->error, "error", "unknown"), ch_rest_str(s->error, "message", "no message"));
        if (s->json_mode)
            print_json_result(s, ch_rest_str(s->error, "status", "error"));
        return CH_EXIT_RUNTIME;
    }
    if (cc != CURLE_OK) {
        struct ch_rest_reply r = {0};
        ch_rest_describe_failure(s->h, cc, errbuf, &r);
        if (cc == CURLE_WRITE_ERROR)
            snprintf(r.reason, sizeof(r.reason), "an event larger than %u bytes", MAX_EVENT);
        fprintf(stderr, "%s: %s the gateway at %s: %s\n", prog, s->status ? "lost the stream from" : "cannot reach",
                url, r.reason);
    } else {
        fprintf(stderr, "%s: the stream ended before the run finished%s\n", prog,
                s->bad_event ? " (it carried an event that is not JSON)" : "");
    }
    if (s->json_mode)
        print_json_result(s, "error");
    return CH_EXIT_RUNTIME;
}

/* `-m` is the one short option (OpenClaw's spelling); the shared parser
 * takes long ones only, so it is rewritten before parsing. */
static char **rewrite_short(int argc, char **argv)
{
    char **v = ch_calloc((size_t)argc + 1, sizeof(*v));

    if (!v)
        return NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            for (; i < argc; i++)
                v[i] = argv[i];
        if (i >= argc)
            break;
        v[i] = !strcmp(argv[i], "-m") ? "--message" : argv[i];
    }
    return v;
}

int ch_cmd_agent(int argc, char **argv)
{
    static const char *prog = "chela agent";
    static const char *usage = "chela agent -m MESSAGE [--session KEY] [--model provider/model] [--json] "
                               "[--url URL] [--token T] [--state DIR]";
    struct ch_opt opts[] = {
        {"message", true, "the message (also -m); sent to the model byte for byte", NULL},
        {"session", true, "session key (conversation id); default: a new conversation", NULL},
        {"model", true, "model for this turn: provider/model or an alias", NULL},
        {"json", false, "print one JSON object at the end (text, runId, usage, model, status)", NULL},
        {"url", true, "gateway URL (default: DIR/gateway.json, else http://127.0.0.1:18789)", NULL},
        {"token", true, "bearer token with the chat scope (default: $CHELA_TOKEN, else the local token)", NULL},
        {"state", true, "state directory (default $CHELA_HOME, else ~/.chela)", NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct stream s = {0};
    struct ch_rest_target t = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct ch_error cerr = {0};
    char **args = rewrite_short(argc, argv);
    const char *message, *session;
    char key[CH_SESSION_KEY_MAX + 1];
    void *hdrs = NULL;
    json_t *body = NULL;
    char *text = NULL;
    size_t npos;
    bool help;
    CURLcode cc;
    int rc;

    if (!args) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return CH_EXIT_RUNTIME;
    }
    rc = ch_args_parse(argc, args, 2, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, usage, opts, n);
        goto out;
    }
    rc = CH_EXIT_USAGE;
    message = ch_opt_get(opts, n, "message");
    if (!message || !*message) {
        fprintf(stderr, "%s: a message is required: -m \"...\"\nUsage: %s\n", prog, usage);
        goto out;
    }
    if ((rc = ch_rest_target_resolve(prog, opts, n, &t)) != 0)
        goto out;
    session = ch_opt_get(opts, n, "session");
    /* Checked here as the gateway will (a malformed agent key is a usage
     * error); sent as given, since the gateway keeps agent: ids for admin
     * tokens and canonicalizes the rest itself. */
    if (session && ch_session_key_canon(session, strlen(session), key, sizeof(key)) != 0) {
        fprintf(stderr, "%s: malformed session key \"%s\"\n", prog, session);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    rc = CH_EXIT_RUNTIME;
    body = json_pack("{s:s, s:s?, s:s?}", "message", message, "conversationId", session, "model",
                     ch_opt_get(opts, n, "model"));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!text) {
        fprintf(stderr, "%s: the message is not valid UTF-8 text\n", prog);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    if (ch_curl_load(&cerr) != 0) {
        fprintf(stderr, "%s: %s\n", prog, cerr.msg);
        goto out;
    }
    s.h = ch_rest_easy_new(&t, "POST", "/api/v1/chat/stream", text, "text/event-stream", &hdrs);
    if (!s.h) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    s.json_mode = ch_opt_get(opts, n, "json") != NULL;
    ch_buf_init(&s.line, MAX_EVENT);
    ch_buf_init(&s.data, MAX_EVENT);
    ch_buf_init(&s.text, MAX_TEXT);
    ch_buf_init(&s.err_body, MAX_ERROR_BODY);
    curl_easy_setopt(s.h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
    /* No total deadline: a run may take minutes; stalls end it instead. */
    curl_easy_setopt(s.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(s.h, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
    cc = curl_easy_perform(s.h);
    if (!s.status)
        curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &s.status);
    rc = finish(&s, prog, cc, errbuf, t.url);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(s.h);
    ch_buf_release(&s.line);
    ch_buf_release(&s.data);
    ch_buf_release(&s.text);
    ch_buf_release(&s.err_body);
    json_decref(s.start);
    json_decref(s.done);
    json_decref(s.error);
    json_decref(body);
    ch_free(text);
    ch_free(args);
    ch_rest_target_release(&t);
    return rc;
}
