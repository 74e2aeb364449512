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
 *
 * Two things keep that cheap and the log bounded under a steady stream of
 * commits.  The hook asks again only after another CKPT_FRAMES frames:
 * asking whenever the log is longer than 1000 frames (SQLite's rule) ran a
 * checkpoint, two fdatasyncs and all, after nearly every commit once the
 * log was long, because commits arriving during a checkpoint keep it from
 * ever being wholly copied back.  And for the same reason the log never
 * starts over on its own while commits keep coming (SQLite restarts it
 * only when a write begins with every frame copied back): once it is past
 * CKPT_LIMIT frames, the checkpointer's pass leaves the writer a note, and
 * the writer copies back what that pass missed itself, after its next
 * commit, when nothing can append: a few hundred frames at most, and the
 * write after it starts the log over.
 */
#include <string.h>

#include "store/internal.h"

/* A pass per this many new frames.  Smaller passes (each pair of fsyncs
 * for fewer pages) traded a little throughput for a lower p99 of the
 * commits they run beside: measured at concurrency 1 and 64 with passes of
 * 100, 250 and 1000 frames (docs/internals/store.md). */
#define CKPT_FRAMES 250
/* Past this (~12 MB of log), the writer finishes the checkpointer's pass
 * so that the log starts over.  Each finish blocks the writer for the
 * pass's two fdatasyncs (~1.5 ms each here), and at a steady rate they
 * come once per CKPT_LIMIT frames: with SQLite's own threshold (1,000
 * frames) that was ~33 a second at 10,000 agent turns/s (~3.5 frames a
 * turn), a tenth of the writer's time spent waiting on the disk. */
#define CKPT_LIMIT 3000
/* Past this (~24 MB), commits outrun the checkpointer: the writer waits
 * for its pass and finishes it (what SQLite's own checkpoint in the commit
 * would cost, only rarer), so the log stays bounded at any rate. */
#define CKPT_HARD (2 * CKPT_LIMIT)

struct ch_ckpt {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    uv_cond_t idle;             /* signalled when a pass ends */
    bool busy;                  /* guarded by mu: a pass is running */
    bool wanted;                /* guarded by mu: CKPT_FRAMES new frames since the last ask */
    bool stopping;              /* guarded by mu */
    atomic_bool finish;         /* set by the checkpointer: the writer copies back the rest */
    int next_at;                /* writer thread only: the log length that asks again */
    int last_frames;            /* writer thread only: the log length after the last commit */
    atomic_uint_fast64_t *runs; /* the store's counter (outlives this) */
    struct ch_db_opts opts;     /* path borrowed from the store */
};

/* Writer thread: let a running pass end. */
static void wait_for_pass(struct ch_ckpt *k)
{
    uv_mutex_lock(&k->mu);
    while (k->busy)
        uv_cond_wait(&k->idle, &k->mu);
    uv_mutex_unlock(&k->mu);
}

/* Writer thread, after each commit: cheap, no SQLite call unless the
 * checkpointer asked the writer to finish a pass or the log is too long. */
static int on_wal(void *arg, sqlite3 *h, const char *name, int frames)
{
    struct ch_ckpt *k = arg;
    int log_frames, done_frames, rc;
    bool finish;

    if (frames < k->last_frames) /* the log started over */
        k->next_at = CKPT_FRAMES;
    k->last_frames = frames;
    if (frames >= CKPT_HARD)
        wait_for_pass(k);
    finish = atomic_exchange_explicit(&k->finish, false, memory_order_acquire);
    if (finish || frames >= CKPT_HARD) {
        /* PASSIVE: a reader's snapshot stops it short rather than waiting;
         * BUSY if a pass began meanwhile; either way it is asked again. */
        rc = sqlite3_wal_checkpoint_v2(h, name, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            ch_log_warn("store: WAL checkpoint on the writer: %s", sqlite3_errstr(rc));
        atomic_fetch_add_explicit(k->runs, 1, memory_order_relaxed);
        return SQLITE_OK;
    }
    if (frames < k->next_at)
        return SQLITE_OK;
    k->next_at = frames + CKPT_FRAMES;
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

    ch_thread_set_name("chela-ckpt");
    uv_mutex_lock(&k->mu);
    for (;;) {
        while (!k->wanted && !k->stopping)
            uv_cond_wait(&k->cond, &k->mu);
        if (k->stopping)
            break;
        k->wanted = false; /* frames appended meanwhile ask again */
        /* The writer has yet to finish the last pass: a pass now would only
         * keep its checkpoint from getting the lock. */
        if (atomic_load_explicit(&k->finish, memory_order_acquire))
            continue;
        k->busy = true;
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
            else if (src == SQLITE_OK && log_frames >= CKPT_LIMIT)
                atomic_store_explicit(&k->finish, true, memory_order_release);
            atomic_fetch_add_explicit(k->runs, 1, memory_order_relaxed);
        }
        uv_mutex_lock(&k->mu);
        k->busy = false;
        uv_cond_broadcast(&k->idle);
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
    k->next_at = CKPT_FRAMES;
    atomic_init(&k->finish, false);
    if (uv_mutex_init(&k->mu) != 0)
        goto fail_mu;
    if (uv_cond_init(&k->cond) != 0)
        goto fail_cond;
    if (uv_cond_init(&k->idle) != 0)
        goto fail_idle;
    if (uv_thread_create(&k->thread, ckpt_main, k) != 0)
        goto fail_thread;
    /* Replaces the automatic checkpoint (a WAL hook and wal_autocheckpoint
     * are the same slot).  Set before the writer thread owns the handle. */
    sqlite3_wal_hook(s->wdb->h, on_wal, k);
    s->ckpt = k;
    return 0;
fail_thread:
    uv_cond_destroy(&k->idle);
fail_idle:
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
        sqlite3_wal_autocheckpoint(s->wdb->h, 1000); /* its default */
    uv_cond_destroy(&k->idle);
    uv_cond_destroy(&k->cond);
    uv_mutex_destroy(&k->mu);
    ch_free(k);
    s->ckpt = NULL;
}
