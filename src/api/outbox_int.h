/*
 * outbox_int.h: private to the durable outbox and the event webhooks
 * (outbox.c, outbox_send.c, outbox_policy.c, webhooks.c, webhooks_runs.c,
 * rest_deliveries.c).  The contract other api files use is in internal.h
 * (ch_outbox_enqueue, ch_webhooks_emit); the mechanism is described in
 * docs/internals/outbox.md.
 *
 * Everything here runs on the loop thread except the store job bodies.
 */
#ifndef CH_API_OUTBOX_INT_H
#define CH_API_OUTBOX_INT_H

#include "api/internal.h"
#include "net/curlm.h"

/* Engine limits (docs/internals/outbox.md, "Limits"). */
#define CH_OUTBOX_MAX_IN_FLIGHT 16               /* attempts from claim to their result's commit */
#define CH_OUTBOX_CONNECT_TIMEOUT_MS 10000       /* api.outbox.connectTimeoutMs's default */
#define CH_OUTBOX_TOTAL_TIMEOUT_MS 30000         /* api.outbox.timeoutMs's default */
#define CH_OUTBOX_MAX_RESPONSE_BYTES (64 * 1024) /* a receiver's answer is read up to this */
#define CH_OUTBOX_MAX_DELAY_MS 3600000LL         /* cap on one backoff wait and on Retry-After */
#define CH_OUTBOX_DEFAULT_MAX_ATTEMPTS 3         /* retry.maxAttempts */
#define CH_OUTBOX_DEFAULT_BACKOFF_MS 5000        /* retry.backoffMs */
#define CH_OUTBOX_MAX_HEADERS 32                 /* caller-supplied headers per delivery */
#define CH_OUTBOX_SNIPPET_BYTES 200              /* of a refusing receiver's body, kept in last_error */
#define CH_OUTBOX_STORE_RETRY_MS 200             /* the store queue was full: try again after this */
#define CH_OUTBOX_KEEP_DONE_MS (7 * 86400000LL)  /* done rows are pruned after a week */
#define CH_OUTBOX_KEEP_DEAD_MS (30 * 86400000LL) /* dead rows after a month */

/* ------------------------------------------------------------------ */
/* outbox_policy.c: the I/O-free rules (tests/unit/api/test_signing.c)  */
/* ------------------------------------------------------------------ */

/*
 * The signature headers of one attempt, all lowercase hex:
 *   X-OpenClaw-Signature:    hex                    HMAC-SHA256(secret, body)   (seed 004)
 *   X-Signature-256:         sha256=hex             the same MAC                (seed 002)
 *   X-OpenClaw-Timestamp:    unix seconds
 *   X-OpenClaw-Signature-V2: v1=hex                 HMAC-SHA256(secret, "<ts>.<body>")
 */
struct ch_outbox_sig {
    char hex[65];
    char sha256[72];
    char timestamp[24];
    char v2[68];
};
/* Sign body (len bytes, any content) with secret at unix_s.  Never fails
 * for inputs within the store's caps; CH_ENOMEM otherwise. */
int ch_outbox_sign(const char *secret, size_t secret_len, const void *body, size_t len, int64_t unix_s,
                   struct ch_outbox_sig *out);

enum ch_outbox_verdict {
    CH_OUTBOX_DONE,      /* 2xx: delivered */
    CH_OUTBOX_RETRY,     /* 5xx, 408, 429, timeouts and transport errors */
    CH_OUTBOX_PERMANENT, /* any other status: retrying cannot help */
};
/*
 * Classify one attempt from its curlm result code and the final status
 * (0: no response head arrived).  A head decides even when the transfer
 * failed afterwards (a 2xx whose body overflowed our cap is delivered).
 */
enum ch_outbox_verdict ch_outbox_classify(int rc, long status);
/*
 * Wait before the next attempt after `attempt` attempts of the current
 * budget (1 = the first failed): backoff_ms * 2^(attempt-1), plus up to
 * 10% jitter taken from jitter (any 32-bit random value), capped at
 * CH_OUTBOX_MAX_DELAY_MS.  Never negative.
 */
int64_t ch_outbox_backoff_ms(int64_t backoff_ms, int64_t attempt, uint32_t jitter);
/*
 * A Retry-After value (delta seconds, or an IMF-fixdate) as milliseconds
 * from now_ms, capped at CH_OUTBOX_MAX_DELAY_MS; -1 when absent or
 * malformed.  A date in the past gives 0.
 */
int64_t ch_outbox_retry_after_ms(struct ch_str value, int64_t now_ms);
/* http:// or https:// with a host, no spaces or control bytes, at most
 * CH_STORE_MAX_URL_BYTES.  CH_EINVAL with err. */
int ch_outbox_check_url(const char *url, struct ch_error *err);
/*
 * A caller-supplied header: the name an RFC 9110 token, the value free of
 * control bytes (tab allowed), and not one chela sets itself (Host,
 * Content-Length, Transfer-Encoding, Connection, Expect, X-Signature-256,
 * X-OpenClaw-*).  Content-Type is allowed (it replaces content_type).
 */
int ch_outbox_check_header(const char *name, const char *value, struct ch_error *err);
/*
 * A caller's headers object (NULL or null: none): an object of at most
 * CH_OUTBOX_MAX_HEADERS strings, each passing ch_outbox_check_header, whose
 * compact JSON fits the store's CH_STORE_MAX_HEADERS_JSON_BYTES.  CH_EINVAL
 * with err naming the limit.
 */
int ch_outbox_check_headers(const json_t *h, struct ch_error *err);
/*
 * Check h as above and split it for a delivery row: *out the headers to
 * store (compact JSON, NULL when none is left), and a Content-Type among
 * them replaces *ctype (borrowed from h), so it is sent once.
 */
int ch_outbox_split_headers(const json_t *h, char **out, const char **ctype, struct ch_error *err);
/*
 * The first bytes of a receiver's answer as text for last_error: control
 * bytes become spaces, bytes that are not UTF-8 become U+FFFD, and a
 * sequence cut by the snippet's end is dropped, so the result is always
 * valid UTF-8 (json_string() accepts it).  Owned; NULL on no memory.
 */
char *ch_outbox_snippet_text(const char *p, size_t len);
/* application/json or any +json type (case-insensitive). */
bool ch_outbox_is_json_type(const char *content_type);

/* ------------------------------------------------------------------ */
/* The engine (outbox.c, outbox_send.c)                                 */
/* ------------------------------------------------------------------ */

struct ch_outbox_attempt;
struct ch_outbox_refusal;
struct ch_outbox_finish;

struct ch_outbox_stats {
    uint64_t enqueued;         /* rows committed by ch_outbox_enqueue */
    uint64_t deduplicated;     /* enqueues answered with an existing row */
    uint64_t refused;          /* enqueues refused (bad input, store full, stopping) */
    uint64_t attempts;         /* HTTP attempts made */
    uint64_t attempt_class[5]; /* by result: 2xx, 3xx, 4xx, 5xx, no response */
    uint64_t done, retried, dead;
    uint64_t manual_retries;
    uint64_t events_emitted; /* webhook events that had at least one subscriber */
};

struct ch_outbox {
    struct ch_api *api;     /* borrowed: the api owns us through a->outbox */
    struct ch_curlm *curlm; /* borrowed: outlives our stop */
    uv_timer_t timer;       /* the next due delivery; unref'd */
    uv_timer_t defer;       /* 0 ms: refusals reported on a later loop turn */
    int64_t timer_due_ms;   /* wall clock timer is armed for; 0: idle */
    int refs;               /* "running" + open handles + store jobs + attempts */
    size_t in_flight;       /* claimed rows whose result is not committed yet */
    bool claiming;          /* a claim job is queued */
    bool want_claim;        /* due work may be waiting for a slot or the claim */
    bool stopping;
    struct ch_outbox_attempt *attempts; /* live HTTP attempts (for abort at stop) */
    struct ch_outbox_refusal *refusals; /* enqueues to answer on the next turn */
    struct ch_outbox_finish *stalled;   /* results the store could not take yet */
    struct ch_agent_sub *sub;           /* webhooks.c: every run's events */
    unsigned rest_mask;                 /* events some REST webhook wants; ~0u until loaded */
    uint64_t rest_gen;                  /* REST creates/deletes queued so far (webhooks.c) */
    unsigned rest_writes;               /* of those, not done yet */
    int64_t prune_next_ms;
    struct ch_outbox_stats stats;
};

void ch_outbox_ref(struct ch_outbox *ob);
/* Drop a reference; the last one (after stop) frees ob and clears a->outbox. */
void ch_outbox_unref(struct ch_outbox *ob);
/* Due work may exist now: claim rows if a slot and no claim is in flight. */
void ch_outbox_kick(struct ch_outbox *ob);
/* A row became due at due_ms (wall clock): arm the timer if that is sooner. */
void ch_outbox_due_at(struct ch_outbox *ob, int64_t due_ms);

/* outbox_send.c: one attempt of a claimed row (takes rec's contents). */
void ch_outbox_attempt_start(struct ch_outbox *ob, struct ch_delivery_rec *rec);
/* Abort every live attempt (stop): each goes back to pending. */
void ch_outbox_attempts_abort(struct ch_outbox *ob);
/* Resubmit results the store queue refused (from the timer). */
void ch_outbox_finish_stalled(struct ch_outbox *ob);
/* A claimed row that will not be attempted now (stopping): back to pending. */
void ch_outbox_release(struct ch_outbox *ob, const char *id);

/* webhooks_runs.c: subscribe to every run's events / unsubscribe. */
int ch_webhooks_start(struct ch_outbox *ob);
void ch_webhooks_stop(struct ch_outbox *ob);

/* webhooks.c */
/* Read the REST webhooks' event mask (a store read; start-up). */
int ch_webhooks_load_rest(struct ch_outbox *ob);
/* Bit of an event name (one of the ten), 0 for any other name. */
unsigned ch_webhooks_event_bit(const char *event);
/* Events a JSON array of names selects; an empty or missing array is every event. */
unsigned ch_webhooks_events_mask(const json_t *events);
/* Events the configured (api.webhooks.outgoing[]) or REST webhooks want. */
unsigned ch_webhooks_wanted(struct ch_api *a);
/*
 * The REST mask is fed by table snapshots of two kinds (docs/internals/
 * outbox.md, "Event webhooks").  Writer snapshots (create, delete, fan-out)
 * complete in commit order and are exact.  A read on the pool may have
 * been taken before a create committed and finish after it, so it may
 * only add bits unless no create or delete was queued during its life:
 * take a token before queueing the read, hand it back with the result.
 */
uint64_t ch_webhooks_read_token(const struct ch_outbox *ob);
void ch_webhooks_read_apply(struct ch_outbox *ob, uint64_t token, const struct ch_webhook_list *l);
/* A REST create or delete was queued on the writer / is done (l: the
 * table right after it, NULL when it failed). */
void ch_webhooks_write_begin(struct ch_outbox *ob);
void ch_webhooks_write_end(struct ch_outbox *ob, const struct ch_webhook_list *l);
/*
 * The first entry of api.webhooks.outgoing[] that could never be queued
 * (bad URL, or headers over the limits of ch_outbox_check_headers):
 * CH_EINVAL with err naming it.  Logged as an error at start; the entry is
 * skipped (with a warning) at every emit.
 */
int ch_webhooks_check_config(const struct ch_config *cfg, struct ch_error *err);
/* All ten event names, for validation messages ("message.received, ..."). */
const char *ch_webhooks_event_names(void);
#define CH_WEBHOOKS_ALL_EVENTS 0x3ffu

#endif
