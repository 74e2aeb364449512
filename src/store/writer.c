/*
 * store/writer.c: the async store's lifecycle and its single writer thread.
 *
 * The loop thread queues write jobs into a bounded FIFO (mutex + condvar).
 * The writer thread takes up to max_batch of them, runs them inside ONE
 * BEGIN IMMEDIATE ... COMMIT (group commit: one WAL append and, with
 * synchronous=FULL, one fsync for the whole batch), each job between a
 * SAVEPOINT and its RELEASE so a failing job is rolled back alone.  The
 * finished batch goes back to the loop through an eventfd under a uv_poll_t
 * whose callback calls each job's `done` in submission order.  The loop
 * wakes a sleeping writer once per loop iteration (an idle handle), so one
 * poll's requests make one batch; lazy jobs (audit rows) ride with the next
 * batch or wait at most CH_STORE_LAZY_MS.  Close drains the queue, reaps
 * the pool's read connections, joins the thread and closes the async
 * handle.  See docs/internals/store.md.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store/internal.h"

#define DEFAULT_MAX_BATCH 512
/* SQLite's busy handler already waited busy_timeout_ms before a BUSY comes
 * back; these retries cover the cases it does not wait for (WAL recovery by
 * another process, a lock held across our whole timeout). */
#define BEGIN_RETRIES 3
#define COMMIT_RETRIES 5

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

/* ---- Writer thread ---- */

static int begin_batch(struct ch_db *db)
{
    int attempt, rc;

    for (attempt = 0;; attempt++) {
        rc = ch_db_run_cached(db, CH_STMT_BEGIN_IMMEDIATE, sql_begin);
        if (rc != CH_EBUSY || attempt == BEGIN_RETRIES)
            return rc;
        ch_log_warn("store: writer: '%s' is locked by another process, retry %d/%d", db->path, attempt + 1,
                    BEGIN_RETRIES);
        uv_sleep(50u << attempt); /* 50, 100, 200 ms */
    }
}

static int commit_batch(struct ch_db *db)
{
    int attempt, rc;

    /* First the usage the batch's jobs noted, one write per row (usage.c):
     * failing it fails the jobs as a failed COMMIT does. */
    rc = ch_usage_notes_flush(db);
    for (attempt = 0; rc == 0; attempt++) {
        /* A COMMIT that fails with BUSY leaves the transaction open and may
         * simply be retried (sqlite.org/lang_transaction.html). */
        rc = ch_db_run_cached(db, CH_STMT_COMMIT, sql_commit);
        if (rc != CH_EBUSY || attempt == COMMIT_RETRIES)
            break;
        uv_sleep(10u << attempt);
        rc = 0;
    }
    if (rc) {
        ch_log_error("store: writer: commit on '%s' failed: %s", db->path, sqlite3_errmsg(db->h));
        if (!sqlite3_get_autocommit(db->h))
            ch_db_run_cached(db, CH_STMT_ROLLBACK, sql_rollback);
    }
    return rc;
}

/* Jobs in [from, to) that still report success were not committed after
 * all: their transaction is gone.  Give them `rc`. */
static void fail_range(struct ch_store_job *from, struct ch_store_job *to, int rc)
{
    for (; from && from != to; from = from->next)
        if (from->rc == 0)
            from->rc = rc;
}

/* SQLite rolled the whole transaction back inside a job (disk full, I/O
 * error, out of memory) or the job ended it through the raw handle. */
static int txn_lost(struct ch_db *db, const char *why)
{
    ch_log_error("store: writer: batch transaction on '%s' ended inside a job: %s", db->path,
                 why                                   ? why
                 : sqlite3_errcode(db->h) != SQLITE_OK ? sqlite3_errmsg(db->h)
                                                       : "the job ended it");
    return sqlite3_errcode(db->h) == SQLITE_FULL ? CH_ENOSPC : CH_EIO;
}

/* Run one job between SAVEPOINT and RELEASE (or bare, if it asked).  Returns 0 while the batch
 * transaction is intact, or the error that ended it (the caller rolls it back). */
static int run_job(struct ch_db *db, struct ch_store_job *job)
{
    size_t notes = ch_usage_notes_mark(db);
    int64_t changes = sqlite3_total_changes64(db->h);
    int rc = job->no_savepoint ? 0 : ch_db_run_cached(db, CH_STMT_SP_JOB, "SAVEPOINT ch_job");

    if (rc) {
        job->rc = rc;
        return sqlite3_get_autocommit(db->h) ? rc : 0;
    }
    job->rc = job->run(db, job);
    ch_db_reset_busy(db);
    if (job->rc != 0)
        ch_usage_notes_undo(db, notes); /* with the rest of the job */
    if (sqlite3_get_autocommit(db->h))
        return txn_lost(db, NULL);
    /* A bare job must fail before it writes; one that changed rows first
     * cannot be undone alone: the whole transaction goes (store.h). */
    if (job->no_savepoint)
        return job->rc && sqlite3_total_changes64(db->h) != changes ? txn_lost(db, "a bare job failed after writing")
                                                                    : 0;
    if (job->rc != 0) {
        rc = ch_db_run_cached(db, CH_STMT_SP_JOB_ROLLBACK, "ROLLBACK TO ch_job");
        if (rc)
            return rc;
    }
    /* RELEASE after ROLLBACK TO too: ROLLBACK TO keeps the savepoint open. */
    return ch_db_run_cached(db, CH_STMT_SP_JOB_RELEASE, "RELEASE ch_job");
}

/*
 * Run a batch (a NULL-terminated list) as one group commit.  When the
 * transaction breaks mid-batch, the jobs since it began are failed and a new
 * transaction starts for the rest, so `done(rc == 0)` always means
 * committed.
 */
static void run_batch(struct ch_store *s, struct ch_store_job *head)
{
    struct ch_db *db = s->wdb;
    struct ch_store_job *job, *seg = NULL; /* seg: first job of the open transaction */
    uint64_t ok = 0, failed = 0, commits = 0;
    int rc;

    db->in_batch = true;
    db->slice_start_ns = ch_mono_ns();
    for (job = head; job; job = job->next) {
        if (job != head)
            ch_db_yield_point(db);
        if (!seg) {
            rc = begin_batch(db);
            if (rc) {
                ch_log_error("store: writer: cannot begin a transaction on '%s': %s", db->path, sqlite3_errmsg(db->h));
                fail_range(job, NULL, rc);
                break;
            }
            seg = job;
        }
        rc = run_job(db, job);
        if (rc) {
            ch_usage_notes_undo(db, 0); /* the jobs that made them failed */
            if (!sqlite3_get_autocommit(db->h))
                ch_db_run_cached(db, CH_STMT_ROLLBACK, sql_rollback);
            if (job->rc == 0)
                job->rc = rc;
            fail_range(seg, job, rc);
            seg = NULL;
        }
    }
    ch_db_yield_point(db); /* the commit is a burst of its own */
    db->in_batch = false;
    if (seg) {
        rc = commit_batch(db);
        if (rc)
            fail_range(seg, NULL, rc);
        else
            commits++;
    }
    ch_usage_notes_undo(db, 0); /* none outlives its batch */
    for (job = head; job; job = job->next) {
        if (job->rc == 0)
            ok++;
        else
            failed++;
    }
    atomic_fetch_add_explicit(&s->writes_committed, ok, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->write_errors, failed, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->commits, commits, memory_order_relaxed);
    atomic_store_explicit(&s->yields, db->yields, memory_order_relaxed);
}

/* Unlink up to max_batch jobs from the queue head.  Called with mu held. */
static struct ch_store_job *take_batch(struct ch_store *s)
{
    struct ch_store_job *head = s->q_head, *last = head;
    size_t n = 1, urgent = !head->is_lazy;

    while (n < s->max_batch && last->next) {
        last = last->next;
        urgent += !last->is_lazy;
        n++;
    }
    s->q_head = last->next;
    if (!s->q_head) {
        s->q_tail = NULL;
        s->lazy_due_ns = 0; /* every lazy job is in this batch */
    }
    last->next = NULL;
    s->q_len -= n;
    s->q_urgent -= urgent;
    atomic_store_explicit(&s->q_urgent_hint, s->q_urgent, memory_order_relaxed);
    return head;
}

/* Writer thread: tell the loop that batches finished (or that the thread
 * is ending).  One write until the loop has read it: coalesced. */
static void signal_loop(struct ch_store *s)
{
    uint64_t one = 1;
    ssize_t n;

    if (atomic_exchange_explicit(&s->async_signalled, true, memory_order_acq_rel))
        return;
    do
        n = write(s->async_fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, so the loop is woken anyway. */
}

static void writer_main(void *arg)
{
    struct ch_store *s = arg;
    struct ch_store_job *batch, *tail;

    ch_thread_set_name("chela-writer");
    uv_mutex_lock(&s->mu);
    while (ch_writer_wait_for_work(s)) {
        batch = take_batch(s);
        uv_mutex_unlock(&s->mu);

        run_batch(s, batch);

        for (tail = batch; tail->next; tail = tail->next)
            ;
        uv_mutex_lock(&s->mu);
        if (s->done_tail)
            s->done_tail->next = batch;
        else
            s->done_head = batch;
        s->done_tail = tail;
        uv_mutex_unlock(&s->mu);
        signal_loop(s);
        uv_mutex_lock(&s->mu);
    }
    /* Closing: wait until no read can be using a pool connection, then
     * close them here (they are idle, and the loop thread must not touch
     * SQLite), and last our own connection, which checkpoints the WAL. */
    while (s->reads_pending > 0)
        uv_cond_wait(&s->cond, &s->mu);
    uv_mutex_unlock(&s->mu);

    ch_store_readers_reap(s->gen);
    ch_ckpt_stop(s);
    ch_db_close(s->wdb);
    s->wdb = NULL;

    uv_mutex_lock(&s->mu);
    s->writer_exited = true;
    uv_mutex_unlock(&s->mu);
    signal_loop(s);
}

/* ---- Loop side ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct ch_store *s = h->data;
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;

    if (h == (uv_handle_t *)&s->async)
        close(s->async_fd); /* the writer has exited: nobody writes it */
    if (--s->handles_open > 0)
        return;
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    ch_free(s->path);
    ch_free(s);
    if (cb)
        cb(data);
}

void ch_store_maybe_finish_close(struct ch_store *s)
{
    if (!s->closing || !s->joined || s->reads_inflight > 0 || s->async_closing)
        return;
    s->async_closing = true;
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
    uv_close((uv_handle_t *)&s->async, on_handle_closed);
}

/* The idle phase of the loop iteration after jobs were queued for a
 * sleeping writer: one wake-up for all of them (see queue_write).  An
 * armed idle handle also makes the loop's next poll return at once, so a
 * job queued in any phase wakes the writer before the loop can sleep. */
static void wake_writer(struct ch_store *s)
{
    s->wake_due = false;
    uv_idle_stop(&s->wake);
    uv_mutex_lock(&s->mu);
    if (s->writer_waiting)
        uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

static void on_wake(uv_idle_t *h)
{
    wake_writer(h->data);
}

void ch_store_kick(struct ch_store *s)
{
    if (s && s->wake_due)
        wake_writer(s);
}

static void on_async(uv_poll_t *a, int status, int events)
{
    struct ch_store *s = ch_container_of(a, struct ch_store, async);
    struct ch_store_job *job, *next;
    uint64_t v;
    bool exited;

    (void)status; /* an eventfd does not fail; look at the lists anyway */
    (void)events;
    if (read(s->async_fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR)
        ch_log_warn("store: reading the writer's eventfd: %s", strerror(errno));
    /* Before taking the lists: a batch appended after this writes again. */
    atomic_store_explicit(&s->async_signalled, false, memory_order_release);
    uv_mutex_lock(&s->mu);
    job = s->done_head;
    s->done_head = s->done_tail = NULL;
    exited = s->writer_exited; /* set after the last batch was appended */
    uv_mutex_unlock(&s->mu);

    for (; job; job = next) {
        next = job->next; /* done frees the job */
        job->next = NULL;
        s->writes_outstanding--;
        if (job->done)
            job->done(job, job->rc);
        else
            ch_free(job);
    }
    /* An idle store must not keep the loop alive; a busy or closing one must. */
    if (s->writes_outstanding == 0 && !s->closing)
        uv_unref((uv_handle_t *)&s->async);
    if (exited && !s->joined) {
        uv_thread_join(&s->thread); /* returns at once: the thread is ending */
        s->joined = true;
    }
    ch_store_maybe_finish_close(s);
}

static void on_open_failed_closed(uv_handle_t *h)
{
    struct ch_store *s = h->data;

    if (h == (uv_handle_t *)&s->async)
        close(s->async_fd);
    if (--s->handles_open > 0)
        return;
    ch_free(s->path);
    ch_free(s);
}

int ch_store_open(uv_loop_t *loop, const struct ch_store_opts *o, struct ch_store **out, struct ch_error *err)
{
    struct ch_store *s = NULL;
    struct ch_db_opts dbo;
    bool have_mu = false, have_cond = false;
    int rc = CH_EINVAL, uvrc;

    if (!loop || !o || !o->path || !o->path[0]) {
        ch_error_set(err, rc, "store path is empty");
        goto out;
    }
    if (strcmp(o->path, ":memory:") == 0) {
        /* Pool readers open their own connections: they need a file. */
        ch_error_set(err, rc, "the async store needs a file path, not :memory:");
        goto out;
    }
    rc = CH_ENOMEM;
    s = ch_calloc(1, sizeof(*s));
    if (!s || !(s->path = ch_strdup(o->path)))
        goto out;
    s->loop = loop;
    s->q_max = o->max_write_queue > 0 ? o->max_write_queue : (size_t)ch_limit_def_get(CH_LIMIT_STORE_WRITE_QUEUE)->def;
    s->max_batch = o->max_batch > 0 ? o->max_batch : DEFAULT_MAX_BATCH;
    ch_spin_init(&s->spin, ch_writer_cpus() >= 2 ? (uint64_t)o->busy_poll_us * 1000u : 0);
    atomic_init(&s->writes_committed, 0);
    atomic_init(&s->commits, 0);
    atomic_init(&s->yields, 0);
    atomic_init(&s->write_errors, 0);
    atomic_init(&s->reads, 0);
    atomic_init(&s->checkpoints, 0);

    dbo = (struct ch_db_opts){
        .path = s->path, .sync_full = o->sync_full, .busy_timeout_ms = o->busy_timeout_ms, .migrate = true};
    rc = ch_db_open(&dbo, &s->wdb, err);
    if (rc)
        goto out;
    s->schema_version = ch_db_schema_version(s->wdb);
    s->wdb->slice_ns = (uint64_t)o->slice_us * 1000u;
    s->reader_opts = (struct ch_db_opts){.path = s->path, .busy_timeout_ms = o->busy_timeout_ms, .readonly = true};
    s->gen = ch_store_next_gen();

    rc = CH_EIO;
    if ((uvrc = uv_mutex_init(&s->mu)) != 0)
        goto uv_fail;
    have_mu = true;
    if ((uvrc = uv_cond_init(&s->cond)) != 0)
        goto uv_fail;
    have_cond = true;
    s->async_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->async_fd < 0) {
        uvrc = uv_translate_sys_error(errno);
        goto uv_fail;
    }
    atomic_init(&s->async_signalled, false);
    if ((uvrc = uv_poll_init(loop, &s->async, s->async_fd)) != 0) {
        close(s->async_fd); /* a failed init leaves no handle to close */
        goto uv_fail;
    }
    uv_unref((uv_handle_t *)&s->async);
    s->async.data = s;
    uv_idle_init(loop, &s->wake); /* cannot fail */
    uv_unref((uv_handle_t *)&s->wake);
    s->wake.data = s;
    s->handles_open = 2;
    uvrc = uv_poll_start(&s->async, UV_READABLE, on_async);
    if (uvrc == 0) {
        if (ch_ckpt_start(s, &dbo) != 0) {
            ch_log_warn("store: no checkpointer thread; commits checkpoint the WAL themselves");
            sqlite3_wal_autocheckpoint(s->wdb->h, 1000); /* SQLite's default, off in ch_db_open */
        }
        uvrc = uv_thread_create(&s->thread, writer_main, s);
    }
    if (uvrc != 0) {
        /* The handles are live: they can only be freed in close cbs. */
        ch_error_set(err, rc, "cannot start the store writer thread: %s", uv_strerror(uvrc));
        ch_ckpt_stop(s);
        ch_db_close(s->wdb);
        uv_cond_destroy(&s->cond);
        uv_mutex_destroy(&s->mu);
        uv_close((uv_handle_t *)&s->wake, on_open_failed_closed);
        uv_close((uv_handle_t *)&s->async, on_open_failed_closed);
        s = NULL;
        goto out;
    }
    rc = 0;
    goto out;
uv_fail:
    ch_error_set(err, rc, "store setup failed: %s", uv_strerror(uvrc));
out:
    if (rc && s) {
        if (have_cond)
            uv_cond_destroy(&s->cond);
        if (have_mu)
            uv_mutex_destroy(&s->mu);
        ch_db_close(s->wdb);
        ch_free(s->path);
        ch_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

static int queue_write(struct ch_store *s, struct ch_store_job *job, bool lazy)
{
    bool wake, sleeping;

    if (!s || !job || !job->run)
        return CH_EINVAL;
    if (s->closing)
        return CH_ECLOSED;
    uv_mutex_lock(&s->mu);
    if (s->q_len >= s->q_max) {
        uv_mutex_unlock(&s->mu);
        return CH_EBUSY; /* not taken: the caller still owns job */
    }
    job->next = NULL;
    job->rc = 0;
    job->store = s;
    job->is_lazy = lazy;
    if (s->q_tail)
        s->q_tail->next = job;
    else
        s->q_head = job;
    s->q_tail = job;
    s->q_len++;
    if (lazy) {
        /* The first lazy job sets the deadline; a sleeping writer must
         * re-arm its wait for it, later ones change nothing. */
        wake = s->lazy_due_ns == 0;
        if (wake)
            s->lazy_due_ns = uv_hrtime() + (uint64_t)CH_STORE_LAZY_MS * 1000000u;
    } else {
        wake = s->q_urgent++ == 0;
        atomic_store_explicit(&s->q_urgent_hint, s->q_urgent, memory_order_release);
    }
    sleeping = s->writer_waiting;
    uv_mutex_unlock(&s->mu);
    /* A busy writer looks at the queue again before it sleeps: only a
     * sleeping one needs the (futex) wake-up, and not at once: the loop
     * wakes it in its next idle phase, so the jobs of one loop iteration
     * (all the requests one poll returned) make one batch, not a batch of
     * one followed by the rest. */
    if (wake && sleeping && !s->wake_due) {
        s->wake_due = true;
        uv_idle_start(&s->wake, on_wake);
    }
    if (s->writes_outstanding++ == 0)
        uv_ref((uv_handle_t *)&s->async);
    return 0;
}

int ch_store_write(struct ch_store *s, struct ch_store_job *job)
{
    return queue_write(s, job, false);
}

int ch_store_write_lazy(struct ch_store *s, struct ch_store_job *job)
{
    return queue_write(s, job, true);
}

void ch_store_close(struct ch_store *s, void (*cb)(void *data), void *data)
{
    if (!s) {
        if (cb)
            cb(data);
        return;
    }
    if (s->closing) {
        ch_log_warn("store: close of '%s' requested twice; ignoring the second", s->path);
        return;
    }
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    /* Keep the loop alive until the writer drained and the handle closed. */
    uv_ref((uv_handle_t *)&s->async);
    uv_mutex_lock(&s->mu);
    s->stopping = true;
    atomic_store_explicit(&s->stop_hint, true, memory_order_relaxed);
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

void ch_store_stats(struct ch_store *s, struct ch_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    uv_mutex_lock(&s->mu);
    out->write_queue_depth = s->q_len;
    out->writer_spin = s->spin;
    uv_mutex_unlock(&s->mu);
    out->write_queue_max = s->q_max;
    out->writes_committed = atomic_load_explicit(&s->writes_committed, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->commits, memory_order_relaxed);
    out->yields = atomic_load_explicit(&s->yields, memory_order_relaxed);
    out->write_errors = atomic_load_explicit(&s->write_errors, memory_order_relaxed);
    out->reads = atomic_load_explicit(&s->reads, memory_order_relaxed);
    ch_wal_vfs_stats(&out->wal_writes, &out->wal_pieces, &out->wal_dropped);
    out->checkpoints = atomic_load_explicit(&s->checkpoints, memory_order_relaxed);
    out->open = !s->closing;
    out->schema_version = s->schema_version;
}

const char *ch_store_path(struct ch_store *s)
{
    return s ? s->path : NULL;
}
