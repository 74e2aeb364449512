/*
 * outbox_send.c: one HTTP attempt of a claimed delivery, and recording
 * its result.  An attempt is SENDING from the claim until its outcome is
 * committed: DONE (2xx), DEAD (a permanent refusal, or the budget used
 * up) or PENDING again at now + backoff (at least Retry-After on 429 and
 * 503).  Only after that commit does the slot free, so a row's next
 * attempt can never start before its last one is on disk.
 *
 * Headers of every attempt: Content-Type, the stored headers, then
 * X-OpenClaw-Delivery (the receiver's idempotency key), X-OpenClaw-Event
 * (webhooks), X-OpenClaw-Attempt, and with a secret the four signature
 * headers of outbox_policy.c, signed afresh each time.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/outbox_int.h"

struct ch_outbox_attempt {
    struct ch_outbox *ob;           /* ref held */
    struct ch_delivery_rec rec;     /* owned; the body is lent to curl */
    struct ch_curlm_req *req;       /* borrowed: valid until on_done */
    struct ch_outbox_attempt *next; /* ob->attempts list while req is live */
    struct ch_buf snippet;          /* first bytes of the receiver's answer */
    int64_t retry_after_ms;         /* -1: none given */
};

/* A committed-or-to-commit outcome; also the stalled list's node. */
struct ch_outbox_finish {
    struct ch_store_job job;
    struct ch_outbox *ob;          /* ref held */
    struct ch_outbox_finish *next; /* ob->stalled */
    char *id;                      /* owned */
    struct ch_delivery_outcome o;  /* last_error points at `error` */
    char *error;                   /* owned */
    bool counted;                  /* holds an in-flight slot */
};

static void unlink_attempt(struct ch_outbox_attempt *at)
{
    struct ch_outbox_attempt **pp;

    for (pp = &at->ob->attempts; *pp; pp = &(*pp)->next)
        if (*pp == at) {
            *pp = at->next;
            break;
        }
    at->next = NULL;
}

static void attempt_free(struct ch_outbox_attempt *at)
{
    struct ch_outbox *ob = at->ob;

    ch_delivery_rec_release(&at->rec);
    ch_buf_release(&at->snippet);
    ch_free(at);
    ch_outbox_unref(ob);
}

/* ---- committing outcomes ---- */

static int finish_run(struct ch_db *db, struct ch_store_job *job)
{
    struct ch_outbox_finish *f = (struct ch_outbox_finish *)job;
    /* A release (stop) is a PENDING outcome without an attempt. */
    return ch_deliveries_finish(db, f->id, &f->o);
}

static void finish_free(struct ch_outbox_finish *f)
{
    ch_free(f->id);
    ch_free(f->error);
    ch_free(f);
}

static void finish_done(struct ch_store_job *job, int rc)
{
    struct ch_outbox_finish *f = (struct ch_outbox_finish *)job;
    struct ch_outbox *ob = f->ob;

    if (rc && rc != CH_ESTATE)
        ch_log_error("outbox: recording delivery %s failed: %s; it is retried after the next start", f->id,
                     ch_strerror(rc));
    if (f->counted) {
        ob->in_flight--;
        if (rc == 0 && f->o.status == CH_DELIVERY_PENDING)
            ch_outbox_due_at(ob, f->o.next_attempt_ms);
        if (ob->want_claim)
            ch_outbox_kick(ob);
    }
    finish_free(f);
    ch_outbox_unref(ob);
}

static void finish_submit(struct ch_outbox_finish *f)
{
    struct ch_outbox *ob = f->ob;

    f->job.run = finish_run;
    f->job.done = finish_done;
    if (ch_store_write(ob->api->store, &f->job) == 0)
        return;
    if (ob->stopping) {
        /* The row stays `sending`; the next start puts it back to pending. */
        if (f->counted)
            ob->in_flight--;
        finish_free(f);
        ch_outbox_unref(ob);
        return;
    }
    /* The store's queue is full: keep the outcome (and the slot) until
     * the timer tries again. */
    f->next = ob->stalled;
    ob->stalled = f;
    ch_outbox_due_at(ob, ch_now_ms() + CH_OUTBOX_STORE_RETRY_MS);
}

void ch_outbox_finish_stalled(struct ch_outbox *ob)
{
    struct ch_outbox_finish *f = ob->stalled;

    ob->stalled = NULL;
    while (f) {
        struct ch_outbox_finish *next = f->next;
        f->next = NULL;
        finish_submit(f);
        f = next;
    }
}

/* Queue outcome o for row id; takes error (may be NULL). */
static void record(struct ch_outbox *ob, const char *id, const struct ch_delivery_outcome *o, char *error, bool counted)
{
    struct ch_outbox_finish *f = ch_calloc(1, sizeof(*f));

    if (!f || !(f->id = ch_strdup(id))) {
        ch_log_error("outbox: out of memory recording delivery %s; it is retried after the next start", id);
        ch_free(f);
        ch_free(error);
        if (counted)
            ob->in_flight--;
        return;
    }
    f->ob = ob;
    ch_outbox_ref(ob);
    f->o = *o;
    f->error = error;
    f->o.last_error = error;
    f->counted = counted;
    finish_submit(f);
}

void ch_outbox_release(struct ch_outbox *ob, const char *id)
{
    struct ch_delivery_outcome o = {.status = CH_DELIVERY_PENDING, .now_ms = ch_now_ms()};

    o.next_attempt_ms = o.now_ms;
    o.last_error = NULL;
    /* Not counted: the claim that handed it out did not take a slot. */
    record(ob, id, &o, ch_strdup("attempt interrupted by shutdown"), false);
}

/* ---- one attempt ---- */

static int on_headers(struct ch_curlm_req *req, const struct ch_curlm_head *head, void *data)
{
    struct ch_outbox_attempt *at = data;

    (void)req;
    if (head->status == 429 || head->status == 503)
        at->retry_after_ms = ch_outbox_retry_after_ms(ch_curlm_head_get(head, "retry-after"), ch_now_ms());
    return 0;
}

static int on_data(struct ch_curlm_req *req, const char *p, size_t len, void *data)
{
    struct ch_outbox_attempt *at = data;
    size_t room = CH_OUTBOX_SNIPPET_BYTES - at->snippet.len;

    (void)req;
    if (room)
        ch_buf_append(&at->snippet, p, CH_MIN(room, len));
    return 0; /* the rest is read and dropped, up to the response cap */
}

static void on_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct ch_outbox_attempt *at = data;
    struct ch_outbox *ob = at->ob;
    struct ch_delivery_rec *d = &at->rec;
    struct ch_delivery_outcome o = {0};
    long status = res->head ? res->status : 0;
    enum ch_outbox_verdict v;
    int64_t used, wait;
    uint32_t jitter = 0;
    char where[160], *error = NULL, *snippet = NULL;
    int cls;

    (void)req;
    at->req = NULL;
    unlink_attempt(at);
    o.now_ms = ch_now_ms();
    if (res->rc == CH_ECANCELED && ob->stopping) {
        /* Aborted by stop: not an attempt; back to pending, due now. */
        o.status = CH_DELIVERY_PENDING;
        o.next_attempt_ms = o.now_ms;
        record(ob, d->id, &o, ch_strdup("attempt interrupted by shutdown"), true);
        attempt_free(at);
        return;
    }
    ch_url_for_log(d->url, where, sizeof(where));
    v = ch_outbox_classify(res->rc, status);
    cls = status >= 200 && status < 600 ? (int)(status / 100) - 2 : 4;
    ob->stats.attempts++;
    ob->stats.attempt_class[cls < 0 ? 4 : cls]++;
    o.attempted = true;
    o.last_status = status;
    /* The cap cuts bytes, not characters, and receivers send any bytes:
     * last_error must stay a valid JSON string or REST would drop it. */
    if (status > 0 && v != CH_OUTBOX_DONE && at->snippet.len)
        snippet = ch_outbox_snippet_text(at->snippet.data, at->snippet.len);
    if (status > 0 && v != CH_OUTBOX_DONE)
        error = ch_sprintf("HTTP %ld%s%s", status, snippet && *snippet ? ": " : "", snippet ? snippet : "");
    else if (status <= 0)
        error = ch_sprintf("%s%s%s", res->rc == CH_ETIMEDOUT ? ch_curlm_timeout_name(res->timeout) : "",
                           res->rc == CH_ETIMEDOUT ? " timeout: " : "",
                           res->msg && *res->msg ? res->msg : ch_strerror(res->rc));
    ch_free(snippet);
    used = d->attempts + 1 - d->retry_base; /* attempts of this budget, this one included */
    if (v == CH_OUTBOX_DONE) {
        o.status = CH_DELIVERY_DONE;
        ob->stats.done++;
        ch_log_info("outbox: delivery %s to %s: HTTP %ld after %lld attempt(s)", d->id, where, status,
                    (long long)(d->attempts + 1));
    } else if (v == CH_OUTBOX_PERMANENT || used >= d->max_attempts) {
        char *e = ch_sprintf(
            "%s%s", v == CH_OUTBOX_PERMANENT ? "permanent: " : "gave up after the last attempt: ", error ? error : "");
        ch_free(error);
        error = e;
        o.status = CH_DELIVERY_DEAD;
        ob->stats.dead++;
        ch_log_warn("outbox: delivery %s to %s is dead after %lld attempt(s): %s", d->id, where,
                    (long long)(d->attempts + 1), error ? error : "?");
    } else {
        ch_random_bytes(&jitter, sizeof(jitter));
        wait = ch_outbox_backoff_ms(d->backoff_ms, used, jitter);
        if (at->retry_after_ms > wait)
            wait = at->retry_after_ms;
        o.status = CH_DELIVERY_PENDING;
        o.next_attempt_ms = o.now_ms + wait;
        ob->stats.retried++;
        ch_log_info("outbox: delivery %s to %s failed (%s); attempt %lld of %lld in %lld ms", d->id, where,
                    error ? error : "?", (long long)(used + 1), (long long)d->max_attempts, (long long)wait);
    }
    record(ob, d->id, &o, error, true);
    attempt_free(at);
}

/* Give up on a claimed row without an HTTP attempt (bad stored input). */
static void fail_now(struct ch_outbox_attempt *at, char *error)
{
    struct ch_delivery_outcome o = {.status = CH_DELIVERY_DEAD, .now_ms = ch_now_ms()};
    char where[160];

    ch_url_for_log(at->rec.url, where, sizeof(where));
    ch_log_warn("outbox: delivery %s to %s is dead: %s", at->rec.id, where, error ? error : "?");
    at->ob->stats.dead++;
    record(at->ob, at->rec.id, &o, error, true);
    attempt_free(at);
}

#define MAX_SENT_HEADERS (CH_OUTBOX_MAX_HEADERS + 10)

void ch_outbox_attempt_start(struct ch_outbox *ob, struct ch_delivery_rec *rec)
{
    struct ch_curlm_header hs[MAX_SENT_HEADERS];
    struct ch_curlm_request r = {0};
    struct ch_outbox_attempt *at;
    struct ch_outbox_sig sig;
    struct ch_error err = {0};
    json_t *extra = NULL, *v;
    char attempt[24];
    const char *k;
    size_t n = 0;
    int rc;

    at = ch_calloc(1, sizeof(*at));
    if (!at) {
        struct ch_delivery_outcome o = {.status = CH_DELIVERY_PENDING, .now_ms = ch_now_ms()};
        o.next_attempt_ms = o.now_ms + CH_OUTBOX_STORE_RETRY_MS;
        record(ob, rec->id, &o, ch_strdup("out of memory"), true);
        ch_delivery_rec_release(rec);
        return;
    }
    at->ob = ob;
    ch_outbox_ref(ob);
    at->rec = *rec; /* take the contents */
    memset(rec, 0, sizeof(*rec));
    at->retry_after_ms = -1;
    ch_buf_init(&at->snippet, CH_OUTBOX_SNIPPET_BYTES);
    if (ch_outbox_is_json_type(at->rec.content_type)) {
        json_error_t jerr;
        json_t *body = json_loadb(at->rec.body ? at->rec.body : "", at->rec.body_len, JSON_DECODE_ANY, &jerr);
        if (!body) {
            fail_now(at, ch_sprintf("invalid_json: the body is not valid JSON (%s)", jerr.text));
            return;
        }
        json_decref(body);
    }
    hs[n++] = (struct ch_curlm_header){"Content-Type", at->rec.content_type};
    if (at->rec.headers && !(extra = json_loads(at->rec.headers, 0, NULL))) {
        fail_now(at, ch_strdup("stored headers are not valid JSON"));
        return;
    }
    json_object_foreach(extra, k, v)
    {
        if (n >= CH_OUTBOX_MAX_HEADERS + 1 || !json_is_string(v))
            break;
        /* Rows queued before enqueue and fan-out moved a Content-Type
         * header into content_type still carry it here: it replaces the
         * type, as it does for new rows, so it is sent once. */
        if (!strcasecmp(k, "content-type"))
            hs[0].value = json_string_value(v);
        else
            hs[n++] = (struct ch_curlm_header){k, json_string_value(v)};
    }
    hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Delivery", at->rec.id};
    if (at->rec.event)
        hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Event", at->rec.event};
    snprintf(attempt, sizeof(attempt), "%lld", (long long)(at->rec.attempts + 1));
    hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Attempt", attempt};
    if (at->rec.secret) {
        if (ch_outbox_sign(at->rec.secret, strlen(at->rec.secret), at->rec.body, at->rec.body_len, ch_now_ms() / 1000,
                           &sig) != 0) {
            json_decref(extra);
            fail_now(at, ch_strdup("cannot sign the body (out of memory)"));
            return;
        }
        hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Signature", sig.hex};
        hs[n++] = (struct ch_curlm_header){"X-Signature-256", sig.sha256};
        hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Timestamp", sig.timestamp};
        hs[n++] = (struct ch_curlm_header){"X-OpenClaw-Signature-V2", sig.v2};
    }
    r.method = "POST";
    r.url = at->rec.url;
    r.headers = hs;
    r.header_count = n;
    r.body = at->rec.body;
    r.body_len = at->rec.body_len;
    r.body_mode = CH_CURLM_BODY_BORROW; /* at->rec outlives on_done */
    /* Read per attempt: a reload applies to the next one. */
    r.connect_timeout_ms =
        (uint64_t)ch_config_int(at->ob->api->cfg, "api.outbox.connectTimeoutMs", CH_OUTBOX_CONNECT_TIMEOUT_MS);
    r.total_timeout_ms = (uint64_t)ch_config_int(at->ob->api->cfg, "api.outbox.timeoutMs", CH_OUTBOX_TOTAL_TIMEOUT_MS);
    r.first_byte_timeout_ms = r.idle_timeout_ms = r.total_timeout_ms;
    r.max_body_bytes = CH_OUTBOX_MAX_RESPONSE_BYTES;
    r.max_header_bytes = CH_OUTBOX_MAX_RESPONSE_BYTES;
    r.max_redirects = 0; /* a redirect is answered, not followed: see classify */
    r.on_headers = on_headers;
    r.on_data = on_data;
    r.on_done = on_done;
    r.data = at;
    /* curlm copies headers at submit, so the signature and the JSON
     * strings may go right after. */
    rc = ch_curlm_submit(ob->curlm, &r, &at->req, &err);
    ch_wipe(&sig, sizeof(sig));
    json_decref(extra);
    if (rc == 0) {
        at->next = ob->attempts;
        ob->attempts = at;
        return;
    }
    if (rc == CH_EINVAL) {
        fail_now(at, ch_sprintf("invalid request: %s", err.msg[0] ? err.msg : "rejected"));
        return;
    }
    /* Closing manager or no memory: not an attempt; leave it pending. */
    {
        struct ch_delivery_outcome o = {.status = CH_DELIVERY_PENDING, .now_ms = ch_now_ms()};
        o.next_attempt_ms = o.now_ms + CH_OUTBOX_STORE_RETRY_MS;
        record(ob, at->rec.id, &o, ch_sprintf("not attempted: %s", ch_strerror(rc)), true);
        attempt_free(at);
    }
}

void ch_outbox_attempts_abort(struct ch_outbox *ob)
{
    /* on_done (with CH_ECANCELED) fires on a later turn and unlinks each. */
    for (struct ch_outbox_attempt *at = ob->attempts; at; at = at->next)
        if (at->req)
            ch_curlm_abort(at->req);
}
