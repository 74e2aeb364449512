/*
 * async_test.h: the fixture shared by the async store tests (test_writer.c,
 * test_reader.c): a temp directory, a real uv loop checked with
 * uv_loop_close() == 0 on teardown, counting done callbacks, and job bodies
 * for writes, reads and a blocker that holds the writer on a semaphore.
 */
#ifndef CH_STORE_ASYNC_TEST_H
#define CH_STORE_ASYNC_TEST_H

#include "store_test.h"

struct fixture {
    struct tmpdir dir;
    char path[512];
    uv_loop_t loop;
    struct ch_store *store;
    int closed; /* close callbacks seen */
    int done;   /* done callbacks seen */
    int done_ok;
    int next_seq; /* expected seq of the next done */
    bool order_ok;
    uv_sem_t started, release;
};

struct tjob {
    struct ch_store_job base;
    struct fixture *f;
    int seq;
    int fail_with; /* run returns this after writing */
    char key[32];
    char value[32];
    char *read_back; /* owned: read jobs put the value here */
    int rc;
};

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "store.db", f->path, sizeof(f->path));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_sem_init(&f->started, 0), 0);
    assert_int_equal(uv_sem_init(&f->release, 0), 0);
    f->order_ok = true;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_sem_destroy(&f->started);
    uv_sem_destroy(&f->release);
    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

static inline void open_store(struct fixture *f, size_t max_queue, size_t max_batch)
{
    struct ch_store_opts o = {.path = f->path, .max_write_queue = max_queue, .max_batch = max_batch};
    struct ch_error e = {0};

    if (ch_store_open(&f->loop, &o, &f->store, &e) != 0)
        fail_msg("ch_store_open: %s", e.msg);
}

static inline void on_closed(void *data)
{
    struct fixture *f = data;

    f->closed++;
}

static inline void close_store(struct fixture *f)
{
    ch_store_close(f->store, on_closed, f);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    f->store = NULL;
}

/* ---- job bodies ---------------------------------------------------- */

static inline int run_meta_set(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;
    int rc = ch_meta_set(db, j->key, j->value);

    return rc ? rc : j->fail_with;
}

static inline int run_audit(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;
    struct ch_audit_rec r = {.ts_ms = j->seq, .status = 200};

    snprintf(r.method, sizeof(r.method), "GET");
    snprintf(r.path, sizeof(r.path), "/%d", j->seq);
    return ch_audit_insert(db, &r, 1);
}

static inline int run_blocker(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;

    uv_sem_post(&j->f->started);
    uv_sem_wait(&j->f->release);
    return 0;
}

static inline int run_meta_get(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;

    return ch_meta_get(db, j->key, &j->read_back);
}

static inline int run_count_audit(struct ch_db *db, struct ch_store_job *job)
{
    struct tjob *j = (struct tjob *)job;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(ch_db_handle(db), "SELECT COUNT(*) FROM audit", -1, &st, NULL);

    if (rc != SQLITE_OK)
        return CH_EIO;
    rc = sqlite3_step(st) == SQLITE_ROW ? 0 : CH_EIO;
    j->seq = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static inline int run_commit_inside(struct ch_db *db, struct ch_store_job *job)
{
    /* A job must not end the shared batch transaction. */
    return ch_db_commit(db) == CH_ESTATE && ch_db_begin(db) == CH_ESTATE ? 0 : CH_EIO;
}

static inline void on_done(struct ch_store_job *job, int rc)
{
    struct tjob *j = (struct tjob *)job;
    struct fixture *f = j->f;

    f->done++;
    if (rc == 0)
        f->done_ok++;
    if (j->seq >= 0) {
        if (j->seq != f->next_seq)
            f->order_ok = false;
        f->next_seq++;
    }
    ch_free(j->read_back);
    ch_free(j);
}

static inline struct tjob *job_new(struct fixture *f, ch_store_job_run_cb run, int seq)
{
    struct tjob *j = ch_calloc(1, sizeof(*j));

    assert_non_null(j);
    j->base.run = run;
    j->base.done = on_done;
    j->f = f;
    j->seq = seq;
    return j;
}

static inline void submit_meta(struct fixture *f, const char *key, const char *value, int fail_with, int seq)
{
    struct tjob *j = job_new(f, run_meta_set, seq);

    snprintf(j->key, sizeof(j->key), "%s", key);
    snprintf(j->value, sizeof(j->value), "%s", value);
    j->fail_with = fail_with;
    assert_int_equal(ch_store_write(f->store, &j->base), 0);
}

/* Queue a blocker and wait until the writer is inside it. */
static inline void submit_blocker(struct fixture *f, int seq)
{
    struct tjob *j = job_new(f, run_blocker, seq);

    assert_int_equal(ch_store_write(f->store, &j->base), 0);
    ch_store_kick(f->store); /* the loop is not running: wake the writer here */
    uv_sem_wait(&f->started);
}

#endif
