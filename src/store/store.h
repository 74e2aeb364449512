/*
 * store.h: durable state behind one interface (SQLite today; a PostgreSQL
 * backend later must fit behind the same calls).
 *
 * Two ways in:
 *  - synchronous functions taking a `struct ch_db *` (the CLI, startup, and
 *    the bodies of async jobs), and
 *  - asynchronous jobs for the gateway, which never calls SQLite on the
 *    event-loop thread: writes go to ONE writer thread through a bounded
 *    queue and are group-committed (many jobs, one transaction, one fsync);
 *    reads run on the libuv thread pool, each pool thread with its own
 *    read-only connection.  Completion callbacks run on the loop thread.
 *
 * Layer: core <- store (plus libuv for the async part).
 */
#ifndef CH_STORE_H
#define CH_STORE_H

#include <uv.h>

#include "core/core.h"

/* ------------------------------------------------------------------ */
/* Synchronous database handle (store/db.c)                             */
/* ------------------------------------------------------------------ */

struct ch_db; /* one sqlite3 connection, owned by one thread */

struct ch_db_opts {
    const char *path;    /* file path; ":memory:" allowed for tests */
    bool sync_full;      /* PRAGMA synchronous=FULL (default NORMAL) */
    int busy_timeout_ms; /* default 5000 */
    bool readonly;
    bool migrate; /* apply migrations (the gateway, the CLI) */
};

/*
 * Open with WAL, the chosen synchronous level, the busy timeout and
 * foreign keys; with `migrate`, apply pending migrations in one
 * transaction each.  A database whose schema version is newer than this
 * binary knows is refused with CH_EVERSION and a message naming both
 * versions.  An unopenable file gives CH_EIO with SQLite's reason.
 */
int ch_db_open(const struct ch_db_opts *o, struct ch_db **out, struct ch_error *err);
void ch_db_close(struct ch_db *db);
int ch_db_schema_version(struct ch_db *db); /* user_version */
int ch_db_latest_version(void);             /* what this binary migrates to */
/* PRAGMA data_version: changes when another connection commits. */
int ch_db_data_version(struct ch_db *db, int64_t *out);
int ch_db_begin(struct ch_db *db);
int ch_db_commit(struct ch_db *db);
int ch_db_rollback(struct ch_db *db);
/* The raw handle for store-internal modules (sessions.c, runs.c, ...). */
void *ch_db_handle(struct ch_db *db);

/* meta key/value (store/meta.c) */
int ch_meta_get(struct ch_db *db, const char *key, char **out /* owned, NULL if absent */);
int ch_meta_set(struct ch_db *db, const char *key, const char *value);

/* ------------------------------------------------------------------ */
/* Tokens (store/tokens.c)                                              */
/* ------------------------------------------------------------------ */

enum {
    CH_SCOPE_CHAT = 1 << 0,
    CH_SCOPE_SEND = 1 << 1,
    CH_SCOPE_READ = 1 << 2,
    CH_SCOPE_ADMIN = 1 << 3, /* implies all */
};

/* "chat,send" -> mask; CH_EINVAL naming the unknown scope. */
int ch_scopes_parse(const char *csv, unsigned *mask, struct ch_error *err);
/* mask -> "chat,send,read,admin" order; out >= 32 bytes. */
void ch_scopes_format(unsigned mask, char *out, size_t outcap);

struct ch_token_rec {
    int64_t id;
    char *name;        /* owned, unique among live tokens */
    char hash_hex[65]; /* SHA-256 of the secret, lowercase hex */
    unsigned scopes;
    int64_t rate_limit_rpm; /* 0 = use api.rateLimit.perToken */
    int64_t created_ms;
    int64_t last_used_ms; /* 0 = never */
    int64_t expires_ms;   /* 0 = never */
    int64_t revoked_ms;   /* 0 = live */
    char *source;         /* owned: "cli", "bootstrap", ... */
};
void ch_token_rec_release(struct ch_token_rec *t);

struct ch_token_list {
    struct ch_token_rec *items; /* owned */
    size_t count;
};
void ch_token_list_release(struct ch_token_list *l);

/* Insert; CH_EEXIST when a live token already has that name. */
int ch_tokens_insert(struct ch_db *db, const struct ch_token_rec *t, struct ch_error *err);
/* All tokens; with include_revoked=false only live (unrevoked) ones. */
int ch_tokens_list(struct ch_db *db, bool include_revoked, struct ch_token_list *out);
/* Revoke by name or by secret (hashed here); CH_ENOTFOUND if no live match. */
int ch_tokens_revoke(struct ch_db *db, const char *name_or_secret, int64_t now_ms);
/* Batched last-used update: set last_used_ms for each hash. */
int ch_tokens_touch(struct ch_db *db, const char (*hashes)[65], const int64_t *when_ms, size_t n);
int64_t ch_tokens_count_live(struct ch_db *db);

/* ------------------------------------------------------------------ */
/* Audit (store/audit.c)                                                */
/* ------------------------------------------------------------------ */

struct ch_audit_rec {
    int64_t ts_ms;
    char request_id[40];
    char token_name[64];
    char address[48];
    char method[12];
    char path[256]; /* truncated; never the query string */
    int status;
    int64_t latency_us;
};

int ch_audit_insert(struct ch_db *db, const struct ch_audit_rec *recs, size_t n);

/*
 * Retention (store/retention.c).  Each removes at most `limit` rows (0: no
 * limit) older than the cut-off and says how many in *removed (may be
 * NULL), so the gateway prunes in batches that leave the writer to other
 * jobs in between.
 */
/* Audit rows with ts_ms < cutoff_ms. */
int ch_audit_prune(struct ch_db *db, int64_t cutoff_ms, int64_t limit, int64_t *removed);
/* Finished runs (ok, error, aborted, timeout) created and finished before
 * before_ms; their idempotency keys go with them. */
int ch_runs_prune(struct ch_db *db, int64_t before_ms, int64_t limit, int64_t *removed);
/* Disposable sessions (ch_session_key_disposable: one per hook run, cron
 * job, stateless /v1 call...) not updated since before_ms and with no run
 * queued or running, with their transcripts.  count_only: count them (up
 * to limit), remove nothing. */
int ch_sessions_prune(struct ch_db *db, int64_t before_ms, int64_t limit, bool count_only, int64_t *removed);

/* ------------------------------------------------------------------ */
/* Asynchronous store for the gateway (store/writer.c, store/reader.c)  */
/* ------------------------------------------------------------------ */

struct ch_store;
struct ch_store_job;

/*
 * A job's body runs on the writer thread (inside the group transaction,
 * between its own SAVEPOINT and RELEASE) or on a pool thread (read-only
 * connection); it must touch only its own fields and `db`, return 0 or a
 * negative CH_E*, and never end the transaction (ch_db_begin/commit/
 * rollback return CH_ESTATE inside a batch).  A failing write is rolled
 * back alone; the rest of its batch still commits.
 * `done` runs later on the loop thread, in submission order for writes,
 * with the body's return code, or the commit's error when the batch could
 * not commit, or CH_ECANCELED if a read's `work` was uv_cancel()ed.  Close
 * drains: a write accepted before ch_store_close always runs.  `done`
 * must free the job.
 */
typedef int (*ch_store_job_run_cb)(struct ch_db *db, struct ch_store_job *job);
typedef void (*ch_store_job_done_cb)(struct ch_store_job *job, int rc);

struct ch_store_job {
    ch_store_job_run_cb run;
    ch_store_job_done_cb done; /* may be NULL: then the store frees the job with ch_free */
    void *data;                /* caller's */
    /* Set when `run` writes nothing if it fails (a single statement, which
     * SQLite undoes by itself, or checks before writes): the writer then
     * runs it without its own SAVEPOINT ... RELEASE pair (two statements,
     * and a copy of every page the job touches).  A bare job that fails
     * after changing rows cannot be undone alone: the batch's transaction
     * is rolled back and every job run in it fails, as when it is lost. */
    bool no_savepoint;
    /* private */
    struct ch_store_job *next;
    int rc;
    uv_work_t work;
    struct ch_store *store;
    bool is_lazy; /* queued by ch_store_write_lazy */
};

struct ch_store_opts {
    const char *path;
    bool sync_full;
    int busy_timeout_ms;
    size_t max_write_queue; /* limits.storeWriteQueue */
    size_t max_batch;       /* jobs per group commit; default 512 */
    unsigned busy_poll_us;  /* gateway.busyPollMicros: the writer polls for
                             * its next job this long at most before it
                             * sleeps; only with >= 2 CPUs to run on */
    unsigned slice_us;      /* store.writerSliceMicros: a batch yields its
                             * core after running this long; 0 never */
};

/*
 * Open (migrating, synchronously: this happens before the loop runs) and
 * start the writer thread.  Errors as ch_db_open.
 */
int ch_store_open(uv_loop_t *loop, const struct ch_store_opts *o, struct ch_store **out, struct ch_error *err);
/*
 * Queue a write.  CH_EBUSY when the queue is full (the job is NOT taken:
 * the caller still owns it and must answer its client, e.g. 503);
 * CH_ECLOSED after ch_store_close and CH_EINVAL without `run` (not taken
 * either).  Loop thread only.
 * Durable means: `done` with rc 0 runs only after the commit returned.
 * A sleeping writer is woken in the loop's next idle phase (before the
 * loop can sleep), so the jobs of one loop iteration commit together; a
 * caller that blocks the loop thread on the writer calls ch_store_kick.
 */
int ch_store_write(struct ch_store *s, struct ch_store_job *job);
/* Wake a sleeping writer now for the jobs queued so far (the loop does it
 * by itself before it polls again).  NULL is fine. */
void ch_store_kick(struct ch_store *s);
/*
 * As ch_store_write, for a write nobody waits on (audit rows): the writer
 * is not woken for it.  It commits with the next batch, or at the latest
 * CH_STORE_LAZY_MS after it was queued, and at close like any write.  A
 * crash can lose what was queued within that window.
 */
#define CH_STORE_LAZY_MS 5
int ch_store_write_lazy(struct ch_store *s, struct ch_store_job *job);
/* Run a read on the thread pool.  Never fails to queue while the store is
 * open (CH_ECLOSED after ch_store_close, CH_EINVAL without `run`).  Loop
 * thread only. */
int ch_store_read(struct ch_store *s, struct ch_store_job *job);
/*
 * Stop taking jobs, drain the queue (every queued write commits), wait for
 * running reads, close the pool threads' connections of this store and the
 * writer's (on the writer thread), join the writer, deliver every pending
 * `done`, close the async handle, free the store, then call cb on the loop
 * thread.  NULL s calls cb at once.  A second call is ignored.
 */
void ch_store_close(struct ch_store *s, void (*cb)(void *data), void *data);

struct ch_store_stats {
    size_t write_queue_depth;
    size_t write_queue_max;
    uint64_t writes_committed;
    uint64_t commits; /* transactions; writes/commits = batch size */
    uint64_t yields;  /* times the writer gave up its core mid-batch (slice_us) */
    uint64_t write_errors;
    uint64_t reads;
    uint64_t checkpoints;       /* WAL checkpoints run by the checkpointer thread */
    struct ch_spin writer_spin; /* the writer's busy polling (core/spin.c) */
    uint64_t wal_writes;        /* write() calls that wrote gathered WAL pieces */
    uint64_t wal_pieces;        /* SQLite's WAL writes gathered (wal_vfs.c) */
    uint64_t wal_dropped;       /* gatherings of rolled-back frames dropped */
    bool open;
    int schema_version;
};
void ch_store_stats(struct ch_store *s, struct ch_store_stats *out);
const char *ch_store_path(struct ch_store *s);

/* Sessions, transcripts, runs and usage: store/store_turns.h. */
#include "store/store_turns.h"

/* ------------------------------------------------------------------ */
/* Outbound deliveries and REST webhooks (store/deliveries.c,          */
/* store/webhooks.c; schema version 3; issue #4 items 2 and 3)          */
/* ------------------------------------------------------------------ */

/*
 * The durable outbox: one row per HTTP POST chela owes someone (a hook
 * run's callback, an event webhook).  The engine in src/api/outbox*.c
 * drives the state machine; every transition is one guarded UPDATE:
 *   pending -> sending              (claimed for an attempt)
 *   sending -> done | dead          (2xx; permanent failure or attempts used up)
 *   sending -> pending              (retry later, or an attempt cut short by
 *                                    shutdown; at start every `sending` row)
 *   dead | pending -> pending       (manual retry: due now, a fresh budget)
 * attempts counts HTTP attempts over the row's life; the automatic budget
 * is attempts - retry_base < max_attempts, and a manual retry sets
 * retry_base = attempts.  The same rules as above apply (caps, CH_EINVAL
 * for control characters, CH_ENOTFOUND for a missing row).
 */
#define CH_STORE_MAX_URL_BYTES 2048
#define CH_STORE_MAX_DELIVERY_BODY_BYTES (5 * 1024 * 1024) /* a 4 MiB run result plus its envelope */
#define CH_STORE_MAX_HEADERS_JSON_BYTES (16 * 1024)
#define CH_STORE_MAX_SECRET_BYTES 512
#define CH_STORE_MAX_DELIVERY_ATTEMPTS 100
#define CH_STORE_MAX_WEBHOOKS 100 /* REST-managed webhooks */

enum ch_delivery_status {
    CH_DELIVERY_PENDING,
    CH_DELIVERY_SENDING,
    CH_DELIVERY_DONE,
    CH_DELIVERY_DEAD,
};
const char *ch_delivery_status_name(enum ch_delivery_status s);               /* "pending", ... */
int ch_delivery_status_parse(const char *name, enum ch_delivery_status *out); /* CH_EINVAL */

struct ch_delivery_rec {
    char *id;           /* owned: uuid, 1..CH_STORE_MAX_ID_BYTES */
    char *kind;         /* owned: "callback" or "webhook" */
    char *run_id;       /* owned or NULL: the run it reports */
    char *event;        /* owned or NULL: webhook event name */
    char *webhook_id;   /* owned or NULL: which webhook ("cfg:<n>" or a REST id) */
    char *url;          /* owned: http(s) URL, at most CH_STORE_MAX_URL_BYTES */
    char *headers;      /* owned or NULL: JSON object of extra header strings */
    char *body;         /* owned: body_len bytes plus a NUL (listings: NULL) */
    size_t body_len;    /* also set by listings */
    char *content_type; /* owned */
    char *secret;       /* owned or NULL (listings: NULL); wiped when released */
    bool has_secret;    /* set by every read */
    enum ch_delivery_status status;
    int64_t attempts;     /* HTTP attempts made, over the row's life */
    int64_t max_attempts; /* automatic attempts per budget, 1..CH_STORE_MAX_DELIVERY_ATTEMPTS */
    int64_t retry_base;   /* attempts when the current budget began */
    int64_t backoff_ms;   /* first retry delay (doubling) */
    int64_t next_attempt_ms;
    int64_t last_status; /* HTTP status of the last attempt, 0: none */
    char *last_error;    /* owned or NULL */
    int64_t created_ms, updated_ms, delivered_ms;
};
void ch_delivery_rec_release(struct ch_delivery_rec *d);

struct ch_delivery_list {
    struct ch_delivery_rec *items; /* owned */
    size_t count;
    int64_t total; /* rows matching the filter (ch_deliveries_list only) */
};
void ch_delivery_list_release(struct ch_delivery_list *l);

/*
 * Insert a delivery as given (status, attempts and times included, so a
 * caller may insert it already dead, e.g. `invalid_json`).  Required: id,
 * kind, url, body (body_len bytes, may hold any byte), content_type,
 * max_attempts >= 1, backoff_ms >= 0; headers must be a JSON object.
 * A delivery that reports a run is unique per (kind, run_id, event, url,
 * secret): inserting it again gives CH_EEXIST and *existing_id (may be
 * NULL) an owned copy of the first one's id, so callers can re-enqueue
 * after a crash without sending twice.
 */
int ch_deliveries_insert(struct ch_db *db, const struct ch_delivery_rec *d, char **existing_id, struct ch_error *err);
/* One delivery with its body and secret. */
int ch_deliveries_get(struct ch_db *db, const char *id, struct ch_delivery_rec *out);

struct ch_delivery_query {
    size_t limit; /* 1..CH_STORE_MAX_LIST; 0 means 50 */
    size_t offset;
    int status;         /* an enum ch_delivery_status, or -1 for any */
    const char *run_id; /* NULL: any */
};
/* Newest first, without bodies and secrets (body_len and has_secret set). */
int ch_deliveries_list(struct ch_db *db, const struct ch_delivery_query *q, struct ch_delivery_list *out);
/* Rows per status, indexed by enum ch_delivery_status. */
int ch_deliveries_count(struct ch_db *db, int64_t counts[4]);

/*
 * Claim up to max (1..CH_STORE_MAX_LIST) pending rows due at now_ms
 * (next_attempt_ms <= now_ms, earliest first): they become `sending` and
 * come back with bodies and secrets.  *next_due_ms gets the earliest
 * next_attempt_ms of the rows still pending afterwards, 0 when none.
 * Atomic: a row is never handed out twice.
 */
int ch_deliveries_claim(struct ch_db *db, int64_t now_ms, size_t max, struct ch_delivery_list *out,
                        int64_t *next_due_ms);

/* The result of one attempt of a `sending` row. */
struct ch_delivery_outcome {
    enum ch_delivery_status status; /* PENDING (retry at next_attempt_ms), DONE or DEAD */
    bool attempted;                 /* an HTTP attempt was made: attempts + 1 */
    int64_t last_status;            /* HTTP status, 0: none */
    const char *last_error;         /* NULL clears; cut to CH_STORE_MAX_ERROR_BYTES */
    int64_t next_attempt_ms;        /* PENDING */
    int64_t now_ms;                 /* updated_ms, and delivered_ms for DONE */
};
/* Record it; CH_ESTATE when the row is not `sending` (e.g. retried). */
int ch_deliveries_finish(struct ch_db *db, const char *id, const struct ch_delivery_outcome *o);
/* At start: every `sending` row back to `pending` (its attempt was cut
 * short; at least once means it is sent again).  *count may be NULL. */
int ch_deliveries_requeue_sending(struct ch_db *db, int64_t now_ms, int64_t *count);
/*
 * Manual retry: a dead row gets a fresh budget (retry_base = attempts) and
 * a pending one is made due now; both become pending with next_attempt_ms
 * = now_ms.  CH_ESTATE for done and sending rows.  out (may be NULL) gets
 * the row after the change (without body and secret).
 */
int ch_deliveries_retry(struct ch_db *db, const char *id, int64_t now_ms, struct ch_delivery_rec *out);
/* Delete done rows with updated_ms < done_before_ms and dead rows with
 * updated_ms < dead_before_ms (0: keep).  *removed may be NULL. */
int ch_deliveries_prune(struct ch_db *db, int64_t done_before_ms, int64_t dead_before_ms, int64_t *removed);

/* A webhook created over REST (the configured ones live in the config). */
struct ch_webhook_rec {
    char *id;          /* owned: "wh_<uuid>" */
    char *url;         /* owned */
    char *secret;      /* owned; NULL in listings without secrets; wiped when released */
    char *events;      /* owned: JSON array of event names; [] = every event */
    char *headers;     /* owned or NULL: JSON object of header strings */
    char *description; /* owned or NULL */
    int64_t max_attempts, backoff_ms, created_ms;
};
void ch_webhook_rec_release(struct ch_webhook_rec *w);
struct ch_webhook_list {
    struct ch_webhook_rec *items; /* owned, oldest first */
    size_t count;
};
void ch_webhook_list_release(struct ch_webhook_list *l);
/* Insert; CH_EEXIST for a taken id, CH_E_TOO_LARGE past CH_STORE_MAX_WEBHOOKS. */
int ch_webhooks_insert(struct ch_db *db, const struct ch_webhook_rec *w, struct ch_error *err);
/* Every webhook, oldest first; secrets only when with_secrets. */
int ch_webhooks_list(struct ch_db *db, bool with_secrets, struct ch_webhook_list *out);
/* CH_ENOTFOUND when no webhook has that id. */
int ch_webhooks_delete(struct ch_db *db, const char *id);

/* ------------------------------------------------------------------ */
/* OpenClaw devices: paired devices, their tokens, pairing requests      */
/* (store/devices.c; schema version 4, ties and sources since 7; #5)     */
/* ------------------------------------------------------------------ */

/*
 * The gateway keeps these tables in memory (src/api/oc_pairing.c) and
 * writes each change through; these calls are its load and its writes.
 * Roles and scopes are comma-separated names ("operator",
 * "operator.read,operator.write").  A device token is never stored: only
 * its SHA-256 (ch_device_token_hash), compared in constant time.
 */
#define CH_STORE_MAX_DEVICES 1000           /* paired devices */
#define CH_STORE_MAX_DEVICE_REQUESTS 256    /* pending pairing requests */
#define CH_STORE_MAX_DEVICE_FIELD_BYTES 256 /* display fields, roles, scopes */
#define CH_STORE_MAX_PUBKEY_BYTES 1024      /* base64url or PEM */
#define CH_DEVICE_MAX_TOKENS 3              /* one per role: operator, node, worker */

struct ch_device_token {
    char role[16];                                            /* "operator", "node" or "worker" */
    char hash_hex[65];                                        /* SHA-256 of the token, lowercase hex */
    char *scopes;                                             /* owned: comma-separated, may be "" */
    int64_t created_ms, rotated_ms, revoked_ms, last_used_ms; /* 0: never */
    /* The API token (tokens.id) a silent pairing minted this token with:
     * it works only while that one is live, within its scopes.  0: none
     * (an operator's approval, a shared secret, rows before version 7). */
    int64_t api_token_id;
};

struct ch_device_rec {
    char *device_id;  /* owned: lowercase hex SHA-256 of the raw public key */
    char *public_key; /* owned: as the device sent it */
    char *display_name, *platform, *device_family, *client_id, *client_mode, *remote_ip; /* owned or NULL */
    char *roles;                                                                         /* owned: approved roles */
    char *scopes;       /* owned: approved operator scopes */
    char *approved_via; /* owned: "silent" (loopback auto-approval) or "manual" */
    int64_t created_ms, approved_ms, last_seen_ms;
    struct ch_device_token tokens[CH_DEVICE_MAX_TOKENS];
    size_t token_count;
};
void ch_device_rec_release(struct ch_device_rec *d);
/* Deep copy into *out (released on failure); CH_ENOMEM. */
int ch_device_rec_copy(struct ch_device_rec *out, const struct ch_device_rec *d);

struct ch_device_list {
    struct ch_device_rec *items; /* owned, oldest approval first */
    size_t count;
};
void ch_device_list_release(struct ch_device_list *l);

struct ch_device_request_rec {
    char *request_id; /* owned: uuid */
    char *device_id, *public_key;
    char *display_name, *platform, *device_family, *client_id, *client_mode, *remote_ip; /* owned or NULL */
    char *role;     /* owned: the role the connect asked for */
    char *roles;    /* owned: every role asked for (merged) */
    char *scopes;   /* owned: every scope asked for (merged) */
    bool is_repair; /* the device is already paired (role or scope upgrade) */
    int64_t created_ms;
    /* Owned or NULL: who asked ("token:<id>", "addr:<address or /64>"),
     * so one source's requests cannot push out another's. */
    char *source;
};
void ch_device_request_rec_release(struct ch_device_request_rec *r);
int ch_device_request_rec_copy(struct ch_device_request_rec *out, const struct ch_device_request_rec *r);

struct ch_device_request_list {
    struct ch_device_request_rec *items; /* owned, oldest first */
    size_t count;
};
void ch_device_request_list_release(struct ch_device_request_list *l);

/* SHA-256 hex of a device token. */
void ch_device_token_hash(const char *token, char out[65]);
/* The token is t's (constant time on the hash); revocation is the caller's. */
bool ch_device_token_matches(const struct ch_device_token *t, const char *token);

/* Every paired device with its tokens. */
int ch_devices_list(struct ch_db *db, struct ch_device_list *out);
/*
 * Insert or update a device and replace its tokens with d's.  CH_EINVAL
 * (missing id or key, control characters, a bad token row), CH_E_TOO_LARGE
 * (a field over its cap, or a new device past CH_STORE_MAX_DEVICES).
 */
int ch_devices_put(struct ch_db *db, const struct ch_device_rec *d, struct ch_error *err);
/* Delete a device, its tokens and its pending requests; CH_ENOTFOUND. */
int ch_devices_delete(struct ch_db *db, const char *device_id);

/* Requests created at or after not_before_ms, oldest first. */
int ch_device_requests_list(struct ch_db *db, int64_t not_before_ms, struct ch_device_request_list *out);
/* Insert or replace one request; CH_E_TOO_LARGE past the cap. */
int ch_device_requests_put(struct ch_db *db, const struct ch_device_request_rec *r, struct ch_error *err);
/* CH_ENOTFOUND when no request has that id. */
int ch_device_requests_delete(struct ch_db *db, const char *request_id);
/* Delete requests created before before_ms; *removed may be NULL. */
int ch_device_requests_prune(struct ch_db *db, int64_t before_ms, int64_t *removed);

#endif
