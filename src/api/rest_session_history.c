/*
 * rest_session_history.c: GET /sessions/:key/history, OpenClaw v4's HTTP
 * read of a session's transcript (read scope, its `chat.history`).
 *
 * The key names a session in OpenClaw's canonical form (`s1` reads
 * `agent:main:s1`), and sessionKey is that form, the reference's
 * target.canonicalKey; a 404 names the key as sent.
 *
 * JSON: {sessionKey, items, messages, hasMore, truncated, nextCursor?};
 * items and messages are the same list, oldest first, each message as
 * chat.history gives it plus `__openclaw: {id, seq}`.  `limit` (a positive
 * integer; more than 1000 is 1000) keeps the newest; `cursor` (`N` or
 * `seq:N`, from nextCursor) pages back to the messages before seq N.  The
 * answer is sized to leave half of limits.writeQueueHardBytes free (over
 * the cap the connection would be dropped unanswered): a page keeps the
 * newest messages that fit (truncated, hasMore and nextCursor say so), and
 * a message too large for any page comes as OpenClaw's placeholder (its
 * __openclaw.truncated set), so paging with nextCursor reaches every one.
 * An unknown session is 404 {ok: false, error: {type: "not_found",
 * message}}; a bad key, limit or cursor 400 in that shape.
 *
 * With `Accept: text/event-stream` the answer is a stream, as in OpenClaw:
 * `retry: 1000`, an `event: history` with the same object, another one
 * whenever a run of the session starts or ends (its messages are stored by
 * then), and a `: keepalive` comment every 15 s, until the client leaves.
 */
#include <string.h>

#include "api/internal.h"
#include "api/oc_internal.h"

#define HISTORY_MAX 1000
/* Room for all but the lists: the key (escaped, at most 6 bytes a byte),
 * the flags, nextCursor and the SSE framing. */
#define ENVELOPE_BYTES (8u << 10)
#define KEEPALIVE_MS 15000

struct hist {
    int refs;                 /* handler, load job, subscription, timer */
    struct ch_api *api;       /* borrowed */
    struct ch_http_req *req;  /* ref held until freed */
    struct ch_agent_sub *sub; /* stream only */
    uv_timer_t keepalive;
    bool timer_on, stream, began, closed, loading, dirty;
    size_t limit;                         /* 0: HISTORY_MAX */
    int64_t cursor;                       /* 0: none */
    size_t room;                          /* bytes of message JSON per list (set on the loop) */
    char key[CH_STORE_MAX_KEY_BYTES + 1]; /* canonical: looked up and answered */
    char raw[CH_STORE_MAX_KEY_BYTES + 1]; /* as sent, trimmed: named by the 404 */
};

struct hist_job {
    struct ch_store_job job;
    struct hist *h;
    char *text; /* the answer, rendered on the reader thread (a stream's
                   SSE event, framing included); NULL: no such session */
    size_t len;
};

static void hist_unref(struct hist *h)
{
    if (--h->refs > 0)
        return;
    ch_http_req_unref(h->req);
    ch_free(h);
}

static void timer_closed(uv_handle_t *t)
{
    hist_unref(t->data);
}

static void detach(struct hist *h)
{
    if (h->sub) {
        ch_agent_unsubscribe(h->sub);
        h->sub = NULL;
        hist_unref(h);
    }
    if (h->timer_on) {
        h->timer_on = false;
        uv_timer_stop(&h->keepalive);
        uv_close((uv_handle_t *)&h->keepalive, timer_closed);
    }
}

static void on_close(struct ch_http_req *r, void *data)
{
    struct hist *h = data;

    (void)r;
    if (h->closed)
        return;
    h->closed = true;
    h->refs++;
    detach(h);
    hist_unref(h);
}

static void send_text(struct hist *h, const char *p, size_t n)
{
    if (!h->closed && ch_http_stream_write(h->req, p, n) != 0)
        on_close(h->req, h);
}

static void on_keepalive(uv_timer_t *t)
{
    send_text(t->data, ": keepalive\n\n", 13);
}

/* ---- the read (store reader thread) ---- */

static int load(struct ch_db *db, struct ch_store_job *job)
{
    struct hist_job *j = (struct hist_job *)job;
    struct hist *h = j->h;
    size_t limit = h->limit ? h->limit : HISTORY_MAX, content = CH_MIN(h->room, (size_t)CH_OC_HISTORY_BYTES);
    struct ch_session_rec s = {0};
    struct ch_message_list ml = {0};
    json_t *msgs = NULL, *answer = NULL;
    char *dump = NULL;
    struct ch_api_fit pi;
    bool more;
    int rc = ch_sessions_get(db, h->key, &s);

    if (rc == CH_ENOTFOUND)
        return 0;
    /* The newest rows below the cursor that fit: every row is in some
     * page, whatever the sizes (seqs may have gaps below a compaction). */
    if (!rc)
        rc = ch_messages_load_before(db, s.session_id, h->cursor ? h->cursor : INT64_MAX, limit, content, content, &ml);
    /* Each list within h->room, so both fit (ch_api_fit_messages). */
    if (!rc && !(msgs = ch_api_fit_messages(&ml, h->room, true, ch_oc_history_message, &pi)))
        rc = CH_ENOMEM;
    if (!rc) {
        /* More below what was sent, and truncated when the byte room (not
         * `limit`) cut the page short or a placeholder stands in. */
        more = pi.first && (ml.truncated || pi.cut);
        answer = json_pack("{s:s, s:O, s:O, s:b, s:b}", "sessionKey", h->key, "items", msgs, "messages", msgs,
                           "hasMore", more, "truncated", pi.cut || pi.omitted || (ml.truncated && ml.count < limit));
        if (answer && more)
            json_object_set_new(answer, "nextCursor", json_sprintf("%lld", (long long)pi.first));
        /* Encoded here, off the loop: a page can be megabytes. */
        dump = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
        j->text = dump && h->stream ? ch_sprintf("event: history\ndata: %s\n\n", dump) : dump;
        if (j->text == dump)
            dump = NULL;
        rc = j->text ? 0 : CH_ENOMEM;
        j->len = j->text ? strlen(j->text) : 0;
    }
    ch_free(dump);
    json_decref(answer);
    json_decref(msgs);
    ch_message_list_release(&ml);
    ch_session_rec_release(&s);
    return rc;
}

static void reload(struct hist *h);

static void begin_stream(struct hist *h)
{
    h->began = true;
    ch_http_add_header(h->req, "Cache-Control", "no-cache");
    ch_http_add_header(h->req, "X-Accel-Buffering", "no");
    if (ch_http_stream_begin(h->req, 200, "text/event-stream; charset=utf-8") != 0) {
        on_close(h->req, h);
        return;
    }
    send_text(h, "retry: 1000\n\n", 13);
    if (h->closed)
        return;
    uv_timer_init(h->api->net->loop, &h->keepalive);
    h->keepalive.data = h;
    h->timer_on = true;
    h->refs++; /* dropped in timer_closed */
    uv_timer_start(&h->keepalive, on_keepalive, KEEPALIVE_MS, KEEPALIVE_MS);
}

static void loaded(struct ch_store_job *job, int rc)
{
    struct hist_job *j = (struct hist_job *)job;
    struct hist *h = j->h;
    char msg[CH_STORE_MAX_KEY_BYTES + 40];

    h->loading = false;
    if (h->closed || ch_http_req_is_closed(h->req)) {
    } else if (rc && !h->began) {
        ch_api_oc_error(h->req, 503, "unavailable", "reading the session failed; retry shortly");
    } else if (!rc && !j->text && !h->began) {
        snprintf(msg, sizeof(msg), "Session not found: %s", h->raw);
        ch_api_oc_error(h->req, 404, "not_found", msg);
    } else if (!rc && !j->text) {
        /* Deleted while streamed: the stream ends, and the request with it.
         * Marked closed so that no reload (a run event may have set dirty)
         * writes after the end: on a kept-alive connection r is then the
         * next request's. */
        detach(h);
        h->closed = true;
        ch_http_stream_end(h->req);
    } else if (!h->stream) {
        ch_http_respond(h->req, 200, "application/json", j->text, j->len);
    } else if (!rc) {
        if (!h->began)
            begin_stream(h);
        send_text(h, j->text, j->len);
    }
    if (!h->began && h->stream && h->sub && (rc || !j->text))
        detach(h); /* answered with an error: no stream to feed */
    ch_free(j->text);
    ch_free(j);
    if (h->dirty && !h->closed && h->began) {
        h->dirty = false;
        reload(h);
    }
    hist_unref(h);
}

static void reload(struct hist *h)
{
    struct hist_job *j = ch_calloc(1, sizeof(*j));

    if (!j || (j->h = h, j->job.run = load, j->job.done = loaded, ch_store_read(h->api->store, &j->job) != 0)) {
        ch_free(j);
        if (!h->began)
            ch_api_oc_error(h->req, 503, "unavailable", "the store cannot take the request now; retry shortly");
        return;
    }
    h->loading = true;
    h->refs++;
}

/* A run of this session started (its user message is stored) or ended. */
static void on_run(const struct ch_agent_event *ev, void *data)
{
    struct hist *h = data;

    if ((ev->type != CH_AGENT_EV_START && ev->type != CH_AGENT_EV_END) || h->closed || strcmp(ev->session_key, h->key))
        return;
    if (h->loading || !h->began)
        h->dirty = true;
    else
        reload(h);
}

/* A limit: "12", or a digit string past 1000 (clamped, as OpenClaw); 0
 * if bad. */
static int64_t positive(const char *v, int64_t cap)
{
    int64_t n = 0;
    size_t i = 0;

    for (; v[i] >= '0' && v[i] <= '9'; i++)
        n = n > (cap - (v[i] - '0')) / 10 ? cap : n * 10 + (v[i] - '0');
    return v[i] || !i ? 0 : n;
}

/* A cursor: "N" or "seq:N", a seq (1..INT64_MAX, never clamped: a cursor
 * past every seq is a cursor this gateway did not give); 0 if bad. */
static int64_t seq_cursor(const char *v)
{
    uint64_t n;

    if (!strncmp(v, "seq:", 4))
        v += 4;
    if (ch_str_to_u64(ch_str_from(v), INT64_MAX, &n) != 0)
        return 0;
    return (int64_t)n;
}

/* Bytes of message JSON per list: the answer (both lists, the envelope,
 * SSE framing) stays within half of the write queue's hard cap, which
 * leaves room for what is still queued before it (a stream's last event)
 * instead of closing the connection unanswered. */
static size_t list_room(const struct ch_api *a)
{
    int64_t hard = a->limits ? a->limits->v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] : 4 << 20;
    size_t half = (size_t)CH_MAX(hard, 0) / 2;

    return half > 2 * ENVELOPE_BYTES ? (half - ENVELOPE_BYTES) / 2 : half / 4;
}

void ch_rest_sessions_history(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const struct ch_str *accept = ch_http_req_header(r, "accept");
    char v[40];
    struct hist *h;
    int rc;

    if (!ch_api_oc_agent_ok(r))
        return;
    if (!(h = ch_calloc(1, sizeof(*h)))) {
        ch_api_oc_error(r, 500, "internal", "out of memory");
        return;
    }
    h->refs = 1;
    h->api = a;
    h->req = r;
    ch_http_req_ref(r);
    if (!ch_api_oc_session_key(r, h->raw, sizeof(h->raw), h->key, sizeof(h->key)))
        goto out;
    h->room = list_room(a);
    rc = ch_http_req_query(r, "limit", v, sizeof(v));
    if (rc != CH_ENOTFOUND && (rc || !(h->limit = (size_t)positive(v, HISTORY_MAX)))) {
        ch_api_oc_error(r, 400, "invalid_request", "limit must be a positive integer");
        goto out;
    }
    rc = ch_http_req_query(r, "cursor", v, sizeof(v));
    if (rc != CH_ENOTFOUND && (rc || !(h->cursor = seq_cursor(v)))) {
        ch_api_oc_error(r, 400, "invalid_request", "cursor must be a positive integer");
        goto out;
    }
    h->stream = accept && memmem(accept->p, accept->len, "text/event-stream", 17);
    if (h->stream) {
        /* Subscribed before the first read: a run ending in between is
         * not missed (it marks the stream dirty). */
        if (!a->agent || !(h->sub = ch_agent_subscribe(a->agent, NULL, on_run, h))) {
            ch_api_oc_error(r, 503, "unavailable", "the agent is not running");
            goto out;
        }
        h->refs++;
        ch_http_req_on_close(r, on_close, h);
    }
    reload(h);
    if (!h->loading)
        detach(h);
out:
    hist_unref(h);
}
