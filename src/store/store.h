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
    const char *path;        /* file path; ":memory:" allowed for tests */
    bool sync_full;          /* PRAGMA synchronous=FULL (default NORMAL) */
    int busy_timeout_ms;     /* default 5000 */
    bool readonly;
    bool migrate;            /* apply migrations (the gateway, the CLI) */
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
int ch_db_schema_version(struct ch_db *db);   /* user_version */
int ch_db_latest_version(void);               /* what this binary migrates to */
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
    char *name;            /* owned, unique among live tokens */
    char hash_hex[65];     /* SHA-256 of the secret, lowercase hex */
    unsigned scopes;
    int64_t rate_limit_rpm; /* 0 = use api.rateLimit.perToken */
    int64_t created_ms;
    int64_t last_used_ms;  /* 0 = never */
    int64_t expires_ms;    /* 0 = never */
    int64_t revoked_ms;    /* 0 = live */
    char *source;          /* owned: "cli", "bootstrap", ... */
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
    char path[256];        /* truncated; never the query string */
    int status;
    int64_t latency_us;
};

int ch_audit_insert(struct ch_db *db, const struct ch_audit_rec *recs, size_t n);
/* Delete rows older than cutoff; returns rows removed in *removed. */
int ch_audit_prune(struct ch_db *db, int64_t cutoff_ms, int64_t *removed);

/* ------------------------------------------------------------------ */
/* Asynchronous store for the gateway (store/writer.c, store/reader.c)  */
/* ------------------------------------------------------------------ */

struct ch_store;
struct ch_store_job;

/*
 * A job's body runs on the writer thread (inside the group transaction)
 * or on a pool thread; it must touch only its own fields and `db`.
 * `done` runs later on the loop thread with the body's return code (or
 * CH_ECANCELED when the store closed first) and must free the job.
 */
typedef int (*ch_store_job_run_cb)(struct ch_db *db, struct ch_store_job *job);
typedef void (*ch_store_job_done_cb)(struct ch_store_job *job, int rc);

struct ch_store_job {
    ch_store_job_run_cb run;
    ch_store_job_done_cb done;   /* may be NULL: then the store frees the job with ch_free */
    void *data;                  /* caller's */
    /* private */
    struct ch_store_job *next;
    int rc;
    uv_work_t work;
    struct ch_store *store;
};

struct ch_store_opts {
    const char *path;
    bool sync_full;
    int busy_timeout_ms;
    size_t max_write_queue;      /* limits.storeWriteQueue */
    size_t max_batch;            /* jobs per group commit; default 512 */
};

/*
 * Open (migrating, synchronously: this happens before the loop runs) and
 * start the writer thread.  Errors as ch_db_open.
 */
int ch_store_open(uv_loop_t *loop, const struct ch_store_opts *o, struct ch_store **out, struct ch_error *err);
/*
 * Queue a write.  CH_EBUSY when the queue is full (the job is NOT taken:
 * the caller still owns it and must answer its client, e.g. 503).
 * Durable means: `done` with rc 0 runs only after the commit returned.
 */
int ch_store_write(struct ch_store *s, struct ch_store_job *job);
/* Run a read on the thread pool.  Never fails to queue. */
int ch_store_read(struct ch_store *s, struct ch_store_job *job);
/*
 * Stop taking jobs, drain the queue (every queued write commits), join the
 * writer, close connections, then call cb on the loop thread.
 */
void ch_store_close(struct ch_store *s, void (*cb)(void *data), void *data);

struct ch_store_stats {
    size_t write_queue_depth;
    size_t write_queue_max;
    uint64_t writes_committed;
    uint64_t commits;             /* transactions; writes/commits = batch size */
    uint64_t write_errors;
    uint64_t reads;
    bool open;
    int schema_version;
};
void ch_store_stats(struct ch_store *s, struct ch_store_stats *out);
const char *ch_store_path(struct ch_store *s);

#endif
