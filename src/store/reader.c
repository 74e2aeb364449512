/*
 * store/reader.c: reads on the libuv thread pool.
 *
 * Each pool thread lazily opens one read-only connection per store and
 * keeps it in thread-local storage, so a connection is only ever used by
 * the thread that opened it.  Pool threads never exit, so every connection
 * is also listed in a process-wide registry tagged with its store's
 * generation (a number unique to each ch_store_open).  When a store closes,
 * its writer thread waits until no read is running and closes that
 * generation's connections (they are idle; see docs/internals/store.md).
 * A thread that later finds a stale generation in its TLS looks the
 * connection up in the registry: still listed means it is ours to close;
 * gone means its store closed it and the TLS pointer is simply forgotten.
 */
#include <stdlib.h>

#include "store/internal.h"

struct reader_conn {
    uint64_t id;      /* unique: TLS refers to entries by id, never by address */
    uint64_t gen;     /* store generation it was opened for */
    struct ch_db *db; /* owned */
    struct reader_conn *next;
};

static uv_once_t reg_once = UV_ONCE_INIT;
static uv_mutex_t reg_mu;
static struct reader_conn *reg_head; /* guarded by reg_mu */
static uint64_t reg_next_id;         /* guarded by reg_mu */
static atomic_uint_fast64_t gen_counter;

/* Valid only while the store of generation tl_gen is open. */
static _Thread_local struct ch_db *tl_db;
static _Thread_local uint64_t tl_gen;
static _Thread_local uint64_t tl_id;

static void reg_init(void)
{
    if (uv_mutex_init(&reg_mu) != 0)
        abort(); /* as libuv does when a mutex cannot exist */
}

uint64_t ch_store_next_gen(void)
{
    return atomic_fetch_add(&gen_counter, 1) + 1;
}

/* Unlink the entry with `id` (or every entry of `gen` when id == 0). */
static struct reader_conn *reg_unlink(uint64_t id, uint64_t gen)
{
    struct reader_conn **pp, *c, *out = NULL;

    uv_once(&reg_once, reg_init);
    uv_mutex_lock(&reg_mu);
    for (pp = &reg_head; (c = *pp) != NULL;) {
        if (id ? c->id == id : c->gen == gen) {
            *pp = c->next;
            c->next = out;
            out = c;
            if (id)
                break;
        } else {
            pp = &c->next;
        }
    }
    uv_mutex_unlock(&reg_mu);
    return out;
}

static void conns_close(struct reader_conn *c)
{
    struct reader_conn *next;

    for (; c; c = next) {
        next = c->next;
        ch_db_close(c->db);
        ch_free(c);
    }
}

void ch_store_readers_reap(uint64_t gen)
{
    conns_close(reg_unlink(0, gen));
}

/* This thread's connection for store s, opened on first use. */
static int reader_get(struct ch_store *s, struct ch_db **out)
{
    struct reader_conn *c;
    struct ch_error e = {0};
    struct ch_db *db;
    int rc;

    if (tl_db && tl_gen != s->gen) {
        /* A connection for another store: close it if that store has not
         * already (it is idle: this thread is the only one using it). */
        conns_close(reg_unlink(tl_id, 0));
        tl_db = NULL;
    }
    if (tl_db) {
        *out = tl_db;
        return 0;
    }
    /* The first read on this libuv pool thread (which tools' work shares). */
    ch_thread_set_name("chela-pool");
    rc = ch_db_open(&s->reader_opts, &db, &e);
    if (rc) {
        ch_log_warn("store: pool reader: %s", e.msg);
        return rc;
    }
    c = ch_calloc(1, sizeof(*c));
    if (!c) {
        ch_db_close(db);
        return CH_ENOMEM;
    }
    c->gen = s->gen;
    c->db = db;
    uv_once(&reg_once, reg_init);
    uv_mutex_lock(&reg_mu);
    c->id = ++reg_next_id;
    c->next = reg_head;
    reg_head = c;
    uv_mutex_unlock(&reg_mu);
    tl_db = db;
    tl_gen = s->gen;
    tl_id = c->id;
    *out = db;
    return 0;
}

static void reads_pending_dec(struct ch_store *s)
{
    uv_mutex_lock(&s->mu);
    /* The writer waits for zero at close before reaping connections. */
    if (--s->reads_pending == 0)
        uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

static void read_work(uv_work_t *w)
{
    struct ch_store_job *job = ch_container_of(w, struct ch_store_job, work);
    struct ch_store *s = job->store;
    struct ch_db *db;
    int rc;

    rc = reader_get(s, &db);
    if (rc == 0) {
        rc = job->run(db, job);
        /* A statement left mid-step or a transaction left open would pin
         * an old WAL snapshot for every later read on this thread. */
        ch_db_reset_busy(db);
        if (!sqlite3_get_autocommit(db->h)) {
            ch_log_warn("store: read job left a transaction open on '%s'; rolling back", db->path);
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    job->rc = rc;
    atomic_fetch_add_explicit(&s->reads, 1, memory_order_relaxed);
    reads_pending_dec(s); /* last touch of the connection and of s */
}

static void read_after(uv_work_t *w, int status)
{
    struct ch_store_job *job = ch_container_of(w, struct ch_store_job, work);
    struct ch_store *s = job->store;
    int rc = job->rc;

    if (status == UV_ECANCELED) {
        /* Someone uv_cancel()ed job->work: read_work never ran. */
        reads_pending_dec(s);
        rc = CH_ECANCELED;
    }
    s->reads_inflight--;
    if (job->done)
        job->done(job, rc);
    else
        ch_free(job);
    ch_store_maybe_finish_close(s);
}

int ch_store_read(struct ch_store *s, struct ch_store_job *job)
{
    int uvrc;

    if (!s || !job || !job->run)
        return CH_EINVAL;
    if (s->closing)
        return CH_ECLOSED;
    job->store = s;
    job->rc = 0;
    job->next = NULL;
    uv_mutex_lock(&s->mu);
    s->reads_pending++;
    uv_mutex_unlock(&s->mu);
    uvrc = uv_queue_work(s->loop, &job->work, read_work, read_after);
    if (uvrc != 0) {
        reads_pending_dec(s);
        ch_log_error("store: cannot queue a read: %s", uv_strerror(uvrc));
        return CH_EIO;
    }
    s->reads_inflight++;
    return 0;
}
