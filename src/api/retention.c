/*
 * api/retention.c: the gateway's data ages out.  At start and then hourly
 * a pass deletes audit rows past store.auditRetentionDays, finished runs
 * past store.runRetentionDays, and the disposable sessions (one per hook
 * run, stateless /v1 call, cron job...) untouched for
 * session.maintenance.pruneAfter, with their transcripts.  Without it a
 * gateway that takes a hook a minute grows by a session, a run and a few
 * audit rows a minute, forever.
 *
 * Each step is a chain of bounded store jobs (store/retention.c), one
 * batch at a time, so a first pass over months of rows interleaves with
 * the hooks and runs writing meanwhile instead of holding the writer.
 * Settings are read at each pass, so a reload applies to the next one.
 */
#include <string.h>

#include "api/internal.h"

#define PASS_EVERY_MS 3600000 /* hourly, like the outbox's prune */
#define BATCH 2000            /* rows per job: a few ms of writer time */
#define DAY_MS 86400000LL

enum { STEP_AUDIT, STEP_RUNS, STEP_SESSIONS, STEP_DONE };
static const char *const step_name[] = {"audit rows", "runs", "sessions"};

struct prune_job {
    struct ch_store_job job;
    struct ch_api *a;
    int step;
    int64_t cutoff_ms;
    bool count_only; /* session.maintenance.mode warn */
    int64_t n;
};

static void next_step(struct ch_api *a, int step);

static int prune_run(struct ch_db *db, struct ch_store_job *job)
{
    struct prune_job *j = (struct prune_job *)job;

    switch (j->step) {
    case STEP_AUDIT: return ch_audit_prune(db, j->cutoff_ms, BATCH, &j->n);
    case STEP_RUNS: return ch_runs_prune(db, j->cutoff_ms, BATCH, &j->n);
    default: return ch_sessions_prune(db, j->cutoff_ms, j->count_only ? 0 : BATCH, j->count_only, &j->n);
    }
}

static void prune_done(struct ch_store_job *job, int rc)
{
    struct prune_job *j = (struct prune_job *)job;
    struct ch_api *a = j->a;
    struct ch_retention *rt = &a->retention;
    int step = j->step;
    bool more = rc == 0 && !j->count_only && j->n >= BATCH;

    if (rc) /* the next pass tries again; a full disk is no reason to stop the others */
        ch_log_warn("retention: pruning %s failed: %s", step_name[step], ch_strerror(rc));
    else if (j->count_only && j->n > 0)
        ch_log_info("retention: %lld stale disposable session(s) would be deleted (session.maintenance.mode warn)",
                    (long long)j->n);
    else {
        rt->removed[step] += j->n;
        rt->total[step] += j->n;
    }
    ch_free(j);
    if (a->stopped) {
        rt->step = STEP_DONE;
        return;
    }
    next_step(a, more ? step : step + 1);
}

/* The cut-off of a step, or 0 when its setting keeps everything. */
static int64_t cutoff(const struct ch_api *a, int step, int64_t now, bool *count_only)
{
    int64_t days, ms;

    *count_only = false;
    switch (step) {
    case STEP_AUDIT: days = ch_config_int(a->cfg, "store.auditRetentionDays", 30); break;
    case STEP_RUNS: days = ch_config_int(a->cfg, "store.runRetentionDays", 30); break;
    default:
        ms = ch_config_duration_ms(a->cfg, "session.maintenance.pruneAfter", 30 * DAY_MS);
        *count_only = !strcmp(ch_config_str(a->cfg, "session.maintenance.mode", "enforce"), "warn");
        return ms > 0 ? now - ms : 0;
    }
    return days > 0 ? now - days * DAY_MS : 0;
}

static void next_step(struct ch_api *a, int step)
{
    struct ch_retention *rt = &a->retention;
    int64_t now = ch_now_ms(), cut = 0;
    struct prune_job *j;
    bool count_only = false;

    while (step < STEP_DONE && (cut = cutoff(a, step, now, &count_only)) <= 0)
        step++;
    rt->step = step;
    if (step == STEP_DONE) {
        if (rt->removed[STEP_AUDIT] || rt->removed[STEP_RUNS] || rt->removed[STEP_SESSIONS])
            ch_log_info("retention: deleted %lld audit row(s), %lld run(s), %lld session(s)",
                        (long long)rt->removed[STEP_AUDIT], (long long)rt->removed[STEP_RUNS],
                        (long long)rt->removed[STEP_SESSIONS]);
        return;
    }
    if (!(j = ch_calloc(1, sizeof(*j)))) {
        rt->step = STEP_DONE; /* the next pass tries again */
        return;
    }
    j->a = a;
    j->step = step;
    j->cutoff_ms = cut;
    j->count_only = count_only;
    j->job.run = prune_run;
    j->job.done = prune_done;
    j->job.no_savepoint = true; /* one statement each */
    if (ch_store_write(a->store, &j->job) != 0) {
        ch_free(j);
        rt->step = STEP_DONE; /* the write queue is full: next pass */
    }
}

void ch_retention_tick(struct ch_api *a)
{
    struct ch_retention *rt = &a->retention;
    int64_t now = ch_now_ms();

    if (!a->store || a->stopped || (rt->next_ms && now < rt->next_ms))
        return;
    if (rt->next_ms && rt->step != STEP_DONE)
        return; /* the last pass is still going (an hour of batches: a huge backlog) */
    rt->next_ms = now + PASS_EVERY_MS;
    memset(rt->removed, 0, sizeof(rt->removed));
    next_step(a, STEP_AUDIT);
}
