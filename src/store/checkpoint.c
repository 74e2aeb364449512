/*
 * store/checkpoint.c: WAL checkpoints off the commit path.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses its
 * threshold, on the writer thread: that commit (and every job of its
 * batch, whose callers wait for it to answer) pays for copying ~1000
 * pages into the database file and syncing it, several milliseconds: the
 * p99 of an agent turn at concurrency 1.  Here the writer connection's WAL
 * hook only notes that the log is long, and a checkpointer thread with its
 * own connection runs a PASSIVE checkpoint, which never blocks the writer
 * (WAL lets commits append while earlier frames are copied back).  The
 * writer's close stays the last one, so it still checkpoints and removes
 * the WAL at shutdown.
 */
#include <string.h>

#include "store/internal.h"

/* SQLite's own default threshold (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT). */
#define CKPT_FRAMES 1000

struct ch_ckpt {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool wanted;                /* guarded by mu: the WAL passed CKPT_FRAMES */
    bool stopping;              /* guarded by mu */
    atomic_uint_fast64_t *runs; /* the store's counter (outlives this) */
    struct ch_db_opts opts;     /* path borrowed from the store */
};

/* Writer thread, after each commit: cheap, no SQLite call. */
static int on_wal(void *arg, sqlite3 *h, const char *name, int frames)
{
    struct ch_ckpt *k = arg;

    (void)h;
    (void)name;
    if (frames < CKPT_FRAMES)
        return SQLITE_OK;
    uv_mutex_lock(&k->mu);
    if (!k->wanted) {
        k->wanted = true;
        uv_cond_signal(&k->cond);
    }
    uv_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

static void ckpt_main(void *arg)
{
    struct ch_ckpt *k = arg;
    struct ch_db *db = NULL;
    struct ch_error err = {0};
    int log_frames, done_frames, src;

    uv_mutex_lock(&k->mu);
    for (;;) {
        while (!k->wanted && !k->stopping)
            uv_cond_wait(&k->cond, &k->mu);
        if (k->stopping)
            break;
        k->wanted = false; /* frames appended meanwhile ask again */
        uv_mutex_unlock(&k->mu);
        if (!db && ch_db_open(&k->opts, &db, &err) != 0) {
            ch_log_warn("store: checkpointer cannot open %s: %s; the WAL grows until the next start", k->opts.path,
                        err.msg);
            db = NULL;
        }
        if (db) {
            src = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
            if (src != SQLITE_OK && src != SQLITE_BUSY)
                ch_log_warn("store: WAL checkpoint: %s", sqlite3_errstr(src));
            atomic_fetch_add_explicit(k->runs, 1, memory_order_relaxed);
        }
        uv_mutex_lock(&k->mu);
    }
    uv_mutex_unlock(&k->mu);
    ch_db_close(db); /* not the last connection: no checkpoint here */
}

int ch_ckpt_start(struct ch_store *s, const struct ch_db_opts *writer_opts)
{
    struct ch_ckpt *k = ch_calloc(1, sizeof(*k));

    if (!k)
        return CH_ENOMEM;
    k->opts = *writer_opts;
    k->opts.migrate = false;
    k->runs = &s->checkpoints;
    if (uv_mutex_init(&k->mu) != 0)
        goto fail_mu;
    if (uv_cond_init(&k->cond) != 0)
        goto fail_cond;
    if (uv_thread_create(&k->thread, ckpt_main, k) != 0)
        goto fail_thread;
    /* Replaces the automatic checkpoint (a WAL hook and wal_autocheckpoint
     * are the same slot).  Set before the writer thread owns the handle. */
    sqlite3_wal_hook(s->wdb->h, on_wal, k);
    s->ckpt = k;
    return 0;
fail_thread:
    uv_cond_destroy(&k->cond);
fail_cond:
    uv_mutex_destroy(&k->mu);
fail_mu:
    ch_free(k);
    return CH_EIO;
}

void ch_ckpt_stop(struct ch_store *s)
{
    struct ch_ckpt *k = s->ckpt;

    if (!k)
        return;
    uv_mutex_lock(&k->mu);
    k->stopping = true;
    uv_cond_signal(&k->cond);
    uv_mutex_unlock(&k->mu);
    uv_thread_join(&k->thread);
    /* Back to SQLite's own checkpoints for the connection's last commits. */
    if (s->wdb)
        sqlite3_wal_autocheckpoint(s->wdb->h, CKPT_FRAMES);
    uv_cond_destroy(&k->cond);
    uv_mutex_destroy(&k->mu);
    ch_free(k);
    s->ckpt = NULL;
}
