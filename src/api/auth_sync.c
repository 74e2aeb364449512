/*
 * auth_sync.c: the token cache's link to the store, run from the 1 Hz
 * tick.  A pool job re-reads the tokens table (a few rows; far cheaper
 * than touching SQLite per request) so tokens created or revoked by the
 * CLI in another process take effect within a second; dirty last-used
 * times go back in one batched write on the writer thread.
 */
#include <string.h>

#include "api/internal.h"

struct refresh_job {
    struct ch_store_job job;
    struct ch_api *api;
    struct ch_token_list list;
};

static int refresh_run(struct ch_db *db, struct ch_store_job *job)
{
    struct refresh_job *rj = (struct refresh_job *)job;
    return ch_tokens_list(db, false, &rj->list);
}

static void refresh_done(struct ch_store_job *job, int rc)
{
    struct refresh_job *rj = (struct refresh_job *)job;
    struct ch_api *a = rj->api;

    a->auth.refresh_inflight = false;
    if (rc == 0 && !a->stopped)
        ch_auth_replace_db(a, &rj->list);
    else if (rc != 0 && rc != CH_ECANCELED)
        ch_log_warn("auth: token refresh failed: %s", ch_strerror(rc));
    ch_token_list_release(&rj->list);
    ch_free(rj);
}

struct touch_job {
    struct ch_store_job job;
    struct ch_api *api;
    size_t n;
    char (*hashes)[65];
    int64_t *when;
};

static int touch_run(struct ch_db *db, struct ch_store_job *job)
{
    struct touch_job *tj = (struct touch_job *)job;
    return ch_tokens_touch(db, (const char(*)[65])tj->hashes, tj->when, tj->n);
}

static void touch_done(struct ch_store_job *job, int rc)
{
    struct touch_job *tj = (struct touch_job *)job;
    if (rc == 0 || rc == CH_ECANCELED)
        tj->api->auth.touch_inflight = false;
    else {
        tj->api->auth.touch_inflight = false;
        ch_log_warn("auth: last-used update failed: %s", ch_strerror(rc));
    }
    ch_free(tj->hashes);
    ch_free(tj->when);
    ch_free(tj);
}

static void flush_touches(struct ch_api *a)
{
    struct ch_map_entry *me;
    struct touch_job *tj;
    size_t it = 0, n = 0;

    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL)
        n += ((struct ch_auth_entry *)me->value)->dirty;
    if (n == 0 || a->auth.touch_inflight)
        return;
    tj = ch_calloc(1, sizeof(*tj));
    if (!tj)
        return;
    tj->hashes = ch_calloc(n, sizeof(*tj->hashes));
    tj->when = ch_calloc(n, sizeof(*tj->when));
    if (!tj->hashes || !tj->when)
        goto fail;
    it = 0;
    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL && tj->n < n) {
        struct ch_auth_entry *e = me->value;
        if (!e->dirty)
            continue;
        memcpy(tj->hashes[tj->n], e->hash_hex, 65);
        tj->when[tj->n++] = e->last_used_ms;
    }
    tj->api = a;
    tj->job.run = touch_run;
    tj->job.done = touch_done;
    if (ch_store_write(a->store, &tj->job) != 0)
        goto fail; /* queue full: try again next second */
    it = 0;
    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL)
        ((struct ch_auth_entry *)me->value)->dirty = false;
    a->auth.touch_inflight = true;
    return;
fail:
    ch_free(tj->hashes);
    ch_free(tj->when);
    ch_free(tj);
}

void ch_auth_tick(struct ch_api *a)
{
    struct refresh_job *rj;

    ch_auth_sweep(a, ch_now_ms());
    if (!a->store)
        return;
    flush_touches(a);
    if (a->auth.refresh_inflight || a->stopped)
        return;
    rj = ch_calloc(1, sizeof(*rj));
    if (!rj)
        return;
    rj->api = a;
    rj->job.run = refresh_run;
    rj->job.done = refresh_done;
    a->auth.refresh_inflight = true;
    if (ch_store_read(a->store, &rj->job) != 0) {
        a->auth.refresh_inflight = false;
        ch_free(rj);
    }
}
