/*
 * store/internal.h: private declarations shared by the store's .c files.
 *
 * Nothing outside src/store/ includes this.  It defines the two structs
 * store.h keeps opaque (struct ch_db, struct ch_store), the single SQLite
 * error mapping, the per-connection prepared-statement cache and the small
 * transaction helpers the synchronous functions use.
 */
#ifndef CH_STORE_INTERNAL_H
#define CH_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

/* ------------------------------------------------------------------ */
/* Connection (db.c)                                                    */
/* ------------------------------------------------------------------ */

/*
 * Slots in the per-connection statement cache.  A slot is prepared on its
 * first use with the SQL text its caller passes (the SQL lives next to the
 * code that uses it) and finalized by ch_db_close().  Only hot statements
 * get a slot: transaction control run once per job or batch, the audit
 * insert and the token touch.
 */
enum ch_db_stmt_id {
    CH_STMT_BEGIN_IMMEDIATE,
    CH_STMT_BEGIN_DEFERRED,
    CH_STMT_COMMIT,
    CH_STMT_ROLLBACK,
    CH_STMT_SP_ATOMIC,
    CH_STMT_SP_ATOMIC_RELEASE,
    CH_STMT_SP_ATOMIC_ROLLBACK,
    CH_STMT_SP_JOB,
    CH_STMT_SP_JOB_RELEASE,
    CH_STMT_SP_JOB_ROLLBACK,
    CH_STMT_DATA_VERSION,
    CH_STMT_AUDIT_INSERT,
    CH_STMT_AUDIT_INSERT16,
    CH_STMT_TOKEN_TOUCH,
    /* Per-turn statements of sessions.c, messages.c, runs.c, usage.c. */
    CH_STMT_SESSION_GET,
    CH_STMT_SESSION_INSERT,
    CH_STMT_SESSION_ADD_USAGE,
    CH_STMT_MESSAGE_APPEND,
    CH_STMT_MESSAGE_NEXT_SEQ,
    CH_STMT_MESSAGE_LOAD_LAST,
    CH_STMT_MESSAGE_FIRST,
    CH_STMT_MESSAGE_LAST,
    CH_STMT_RUN_INSERT,
    CH_STMT_RUN_IDEM_FIND,
    CH_STMT_RUN_START,
    CH_STMT_RUN_FINISH,
    CH_STMT_RUN_GET,
    CH_STMT_USAGE_ADD,
    CH_STMT_USAGE_COST,
    CH_STMT__COUNT
};

struct ch_db {
    sqlite3 *h; /* owned */
    char *path; /* owned copy, for messages */
    bool readonly;
    /* True while the writer thread holds a group transaction open on this
     * connection: ch_db_begin/commit/rollback then refuse (CH_ESTATE) so a
     * job body cannot end the batch that other jobs share. */
    bool in_batch;
    /* The writer's time slice (ch_db_yield_point): 0 never yields.  The
     * start of the current slice and the yields so far (writer thread). */
    uint64_t slice_ns, slice_start_ns, yields;
    sqlite3_stmt *cache[CH_STMT__COUNT]; /* owned; NULL until first use */
    /* In a batch, ch_usage_add only notes its addition here (in call
     * order); the writer drops a failed job's notes and writes the rest
     * before COMMIT, one upsert per (day, provider, model): every agent
     * turn adds to the same row, which each job would otherwise upsert and
     * journal again (usage.c). */
    struct ch_usage_note *usage_notes; /* owned */
    size_t usage_count, usage_cap;
};

/* wal_vfs.c: the VFS read-write connections open with, which writes a
 * WAL commit in one system call; NULL if it could not be registered (the
 * default VFS is then used).  The counts are process-wide. */
const char *ch_wal_vfs(void);
void ch_wal_vfs_stats(uint64_t *writes, uint64_t *gathered, uint64_t *dropped);

/* The one mapping from SQLite result codes (extended or primary) to CH_E*. */
int ch_db_err_code(int sqlite_rc);
/*
 * Map sqlite_rc, fill err (if non-NULL) with "<what>: <sqlite's message>"
 * and return the CH_E* code.  `what` is a short phrase ("insert token").
 */
int ch_db_fail(struct ch_db *db, int sqlite_rc, struct ch_error *err, const char *what);

/*
 * Return the cached statement for `id`, preparing `sql` on first use.  The
 * statement comes back reset with its bindings cleared; the caller must
 * sqlite3_reset() it when done so no read transaction stays open.
 */
int ch_db_stmt(struct ch_db *db, enum ch_db_stmt_id id, const char *sql, sqlite3_stmt **out);
/*
 * Between the steps of a writer batch (jobs, or a job's own long loop):
 * once the batch has run db->slice_ns since it began or last yielded, give
 * the core to any thread waiting for it (sched_yield).  A busy gateway's
 * batch of audit rows runs ~100 us; on a core it shares with the event
 * loop, Linux lets such a short burst finish before it runs the woken loop,
 * so every request arriving meanwhile waited for all of it (the p99 of the
 * OpenAI pass-through at concurrency 1, docs/performance.md).  Alone on a
 * core the yield returns at once.  No-op outside a batch.
 */
void ch_db_yield_point(struct ch_db *db);
/* Step a cached statement that returns no rows, then reset it. */
int ch_db_run_cached(struct ch_db *db, enum ch_db_stmt_id id, const char *sql);
/* Prepare an uncached statement; the caller finalizes it. */
int ch_db_prepare(struct ch_db *db, const char *sql, sqlite3_stmt **out);
/* sqlite3_exec for fixed SQL (migrations, pragmas); fills err on failure. */
int ch_db_exec(struct ch_db *db, const char *sql, struct ch_error *err, const char *what);
/* Reset every statement still mid-step (ends implicit read transactions). */
void ch_db_reset_busy(struct ch_db *db);
/* PRAGMA user_version as an int; negative CH_E* on failure. */
int ch_db_user_version(struct ch_db *db);

/*
 * Make a group of statements atomic.  Outside any transaction this is
 * BEGIN IMMEDIATE ... COMMIT (immediate, so a read-then-write cannot fail
 * with SQLITE_BUSY_SNAPSHOT halfway); inside one (a writer batch, or a
 * caller's ch_db_begin) it is a nested SAVEPOINT, so a failure undoes only
 * this call's statements.  _end commits/releases when rc == 0, otherwise
 * rolls back, and returns rc or the commit's own error.
 */
struct ch_db_atomic {
    bool own_txn; /* we issued BEGIN (else a SAVEPOINT) */
};
int ch_db_atomic_begin(struct ch_db *db, struct ch_db_atomic *a);
int ch_db_atomic_end(struct ch_db *db, struct ch_db_atomic *a, int rc);

/* usage.c: the batch's usage notes.  _mark before a job, _undo(mark) when
 * it failed (or _undo(0) when the transaction is lost), _flush before
 * COMMIT: 0, or the error that must fail the transaction's jobs. */
size_t ch_usage_notes_mark(struct ch_db *db);
void ch_usage_notes_undo(struct ch_db *db, size_t mark);
int ch_usage_notes_flush(struct ch_db *db);

/* ------------------------------------------------------------------ */
/* Migrations (migrate.c)                                               */
/* ------------------------------------------------------------------ */

/* Apply every pending step, one transaction each.  CH_EVERSION when the
 * file is newer than this binary; CH_EIO naming the failing step. */
int ch_db_migrate(struct ch_db *db, struct ch_error *err);
/* The same, stopping at version `target` (tests build old files with it). */
int ch_db_migrate_to(struct ch_db *db, int target, struct ch_error *err);
/* Fill err with the "schema version N is newer" message; returns CH_EVERSION. */
int ch_db_version_error(int found, struct ch_error *err);

/* ------------------------------------------------------------------ */
/* Async store (writer.c, reader.c)                                     */
/* ------------------------------------------------------------------ */

struct ch_store {
    uv_loop_t *loop;               /* borrowed: valid while the store is open */
    char *path;                    /* owned; immutable after open (pool threads read it) */
    struct ch_db_opts reader_opts; /* path borrowed from `path`; for pool connections */
    uint64_t gen;                  /* unique per store in this process (reader.c) */
    int schema_version;

    struct ch_db *wdb;    /* owned by the writer thread once it starts */
    struct ch_ckpt *ckpt; /* owned: the WAL checkpointer, or NULL (SQLite checkpoints) */
    uv_thread_t thread;
    /* writer -> loop: finished batches, writer exit.  An eventfd of the
     * store's own under a uv_poll_t, not a uv_async_t: libuv 1.44's async
     * callback spins (then sched_yield()s) when the loop wakes before the
     * sender's write(2) has returned, which it often does across cores. */
    uv_poll_t async;
    int async_fd;
    atomic_bool async_signalled; /* a write is in the eventfd the loop has not read */
    uv_idle_t wake;              /* loop: wakes a sleeping writer before the loop polls again */

    /* Everything below `mu` up to the counters is guarded by it. */
    uv_mutex_t mu;
    uv_cond_t cond;                       /* queue non-empty, stopping, reads_pending == 0 */
    struct ch_store_job *q_head, *q_tail; /* waiting writes, FIFO */
    size_t q_len;
    size_t q_max; /* opts.max_write_queue */
    size_t max_batch;
    struct ch_store_job *done_head, *done_tail; /* finished writes, FIFO */
    size_t reads_pending;                       /* queued or running reads (pool side) */
    atomic_size_t q_urgent_hint;                /* q_urgent, for a polling writer to read without mu */
    atomic_bool stop_hint;                      /* stopping, likewise */
    struct ch_spin spin;                        /* the writer's busy polling (writer thread only) */
    size_t q_urgent;                            /* queued jobs that are not lazy */
    uint64_t lazy_due_ns;                       /* uv_hrtime() by which queued lazy jobs run; 0: none */
    bool writer_waiting;                        /* the writer sleeps on `cond`: signal it */
    bool stopping;                              /* writer: drain then exit */
    bool writer_exited;

    /* Counters shared with the writer and pool threads. */
    atomic_uint_fast64_t writes_committed;
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t yields; /* ch_db_yield_point's, from wdb */
    atomic_uint_fast64_t write_errors;
    atomic_uint_fast64_t reads;
    atomic_uint_fast64_t checkpoints; /* by the checkpointer thread */

    /* Loop-thread-only state. */
    size_t writes_outstanding; /* submitted, done not yet called */
    size_t reads_inflight;     /* submitted, after-work not yet run */
    bool closing;              /* ch_store_close was called */
    bool joined;               /* writer thread joined */
    bool async_closing;        /* uv_close issued on `async` */
    bool wake_due;             /* `wake` is armed: the writer sleeps and jobs wait */
    int handles_open;          /* async and wake: the store is freed when both closed */
    void (*close_cb)(void *data);
    void *close_data;
};

/* reader.c: close every pool connection of store generation `gen`.  Called
 * on the writer thread once no read of that store can be running. */
void ch_store_readers_reap(uint64_t gen);

/* checkpoint.c: a thread that checkpoints the WAL when the writer's commits
 * made it long, instead of the commit doing it (the commit's callers would
 * wait).  Start before the writer thread owns s->wdb; without it (an
 * error) SQLite's automatic checkpoint stays.  Stop on the writer thread
 * before s->wdb closes. */
struct ch_ckpt;
int ch_ckpt_start(struct ch_store *s, const struct ch_db_opts *writer_opts);
void ch_ckpt_stop(struct ch_store *s);
/* reader.c: a fresh generation number for a new store. */
uint64_t ch_store_next_gen(void);
/* writer.c: finish closing once the writer is joined and reads are done. */
void ch_store_maybe_finish_close(struct ch_store *s);
/* store/writer_wait.c, writer thread, mu held: wait until there is a batch
 * to run (true) or the store is stopping with an empty queue (false). */
bool ch_writer_wait_for_work(struct ch_store *s);
/* CPUs this thread may run on (1 when unknown): the writer polls only with
 * two or more. */
int ch_writer_cpus(void);

/* ------------------------------------------------------------------ */
/* Helpers shared by sessions.c, messages.c, runs.c, usage.c            */
/* (defined in sessions.c; ch_store_check_text in json_check.c)        */
/* ------------------------------------------------------------------ */

/*
 * Check a text input against a cap: CH_EINVAL when it is required and
 * NULL or empty, or (unless `multiline`) contains control characters;
 * CH_E_TOO_LARGE past max_bytes.  NULL and not required is fine.  *len
 * (may be NULL) gets the length.  err (may be NULL) names `what`.
 */
int ch_store_check_text(const char *s, size_t max_bytes, bool required, bool multiline, const char *what, size_t *len,
                        struct ch_error *err);
/* Validate a usage record (counts in [0, 2^40], cost finite and >= 0). */
int ch_store_check_usage(const struct ch_usage *u);
/* Bind a C string (NULL binds SQL NULL).  SQLITE_STATIC: the caller keeps
 * s alive until the statement is reset. */
void ch_store_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* The messages columns every transcript reader selects, in this order;
 * ch_messages_row_fixed (messages_page.c) copies a row's role and
 * numbers, the readers their text columns as they keep them. */
#define CH_MESSAGE_COLS                                                                                                \
    "id, session_key, session_id, seq, role, content, model, input_tokens, output_tokens,"                             \
    " cache_read_tokens, cache_write_tokens, latency_ms, created_ms, run_id"
#define CH_MESSAGE_COL_CONTENT 5
void ch_messages_row_fixed(sqlite3_stmt *st, struct ch_message_rec *m);
/* messages.c: the transcript loads' argument check (out zeroed), and their
 * row collector: rows of a prepared CH_MESSAGE_COLS statement (asked for
 * max_count + 1) while they fit max_count and max_bytes, a row over
 * max_one without its content; strings in one block (l->text). */
int ch_messages_check_load(struct ch_db *db, const char *session_id, size_t max_count, size_t max_bytes,
                           struct ch_message_list *out);
int ch_messages_collect(sqlite3_stmt *st, size_t max_count, size_t max_bytes, size_t max_one,
                        struct ch_message_list *l);
/* Owned copy of a text column; SQL NULL gives NULL.  CH_ENOMEM. */
int ch_store_col_dup(sqlite3_stmt *st, int col, char **out);
/* Step a statement expected to finish without rows (it is left for the
 * caller to reset); CH_E* from the step. */
int ch_store_step_done(sqlite3_stmt *st);
/* For a step that should have returned a row and did not: CH_ENOTFOUND
 * for SQLITE_DONE, else the mapped error (never 0). */
int ch_store_row_err(int sqlite_rc);
/* json_check.c: true when s[0..n) is one RFC 8259 JSON text.  The store
 * checks runs.request/result and messages.content with it (schema v5 has
 * no json_valid CHECK on them); no allocation, nesting up to 2000. */
bool ch_store_json_valid(const char *s, size_t n);
/* Grow an array of `size`-byte items to hold one more, doubling from 16,
 * refusing past CH_STORE_MAX_LIST items with CH_E_TOO_LARGE. */
int ch_store_grow(void **items, size_t *cap, size_t count, size_t size);

#endif
