/*
 * store/runs_recover.c: the bulk transitions of the `runs` table that
 * happen at start and in housekeeping (split from runs.c to keep files
 * small): running runs go back to queued for replay, or fail with a
 * reason (pruning is in retention.c).
 */
#include "store/internal.h"

#define MAX_ERROR_CLASS_BYTES 32

/* Run a fixed UPDATE/DELETE with up to three optional parameters and
 * report the rows changed. */
static int exec_count(struct ch_db *db, const char *sql, const char *t1, const char *t2, int64_t i3, int64_t *count)
{
    sqlite3_stmt *st = NULL;
    int rc = ch_db_prepare(db, sql, &st);

    if (rc)
        return rc;
    ch_store_bind_text(st, 1, t1);
    ch_store_bind_text(st, 2, t2);
    sqlite3_bind_int64(st, 3, i3);
    rc = ch_store_step_done(st);
    if (rc == 0 && count)
        *count = sqlite3_changes(db->h);
    sqlite3_finalize(st);
    return rc;
}

int ch_runs_requeue_running(struct ch_db *db, int64_t *count)
{
    if (!db)
        return CH_EINVAL;
    /* ?1..?3 unused: exec_count's binds fail harmlessly with SQLITE_RANGE. */
    /* `<> 'ok'`: runs_status holds only such runs (schema v6). */
    return exec_count(db, "UPDATE runs SET status = 'queued' WHERE status = 'running' AND status <> 'ok'", NULL, NULL,
                      0, count);
}

int ch_runs_fail_running(struct ch_db *db, const char *reason, const char *error_class, int64_t now_ms, int64_t *count)
{
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(reason, CH_STORE_MAX_ERROR_BYTES, true, true, "reason", NULL, NULL)) ||
        (rc = ch_store_check_text(error_class, MAX_ERROR_CLASS_BYTES, false, false, "error class", NULL, NULL)))
        return rc;
    return exec_count(db,
                      "UPDATE runs SET status = 'error', error = ?1, error_class = ?2,"
                      " finished_ms = ?3 WHERE status = 'running' AND status <> 'ok'",
                      reason, error_class, now_ms, count);
}
