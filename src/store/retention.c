/*
 * store/retention.c: what the gateway deletes as it ages (api/retention.c
 * schedules it): audit rows, finished runs and disposable sessions.  Each
 * call removes one bounded batch, selected through an index on its age,
 * so a first pass over years of rows is many short writer jobs and not
 * one long write lock that stalls every hook behind it.
 */
#include "store/internal.h"

/* Run a DELETE (or a SELECT count) with ?1 the cut-off and ?2 the limit;
 * *n gets the rows changed (or counted). */
static int exec_batch(struct ch_db *db, const char *sql, int64_t cutoff_ms, int64_t limit, bool count, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (n)
        *n = 0;
    if (!db || limit < 0)
        return CH_EINVAL;
    if ((rc = ch_db_prepare(db, sql, &st)))
        return rc;
    sqlite3_bind_int64(st, 1, cutoff_ms);
    sqlite3_bind_int64(st, 2, limit ? limit : -1); /* SQLite: a negative LIMIT is none */
    if (count) {
        src = sqlite3_step(st);
        rc = src == SQLITE_ROW ? 0 : ch_db_err_code(src);
        if (rc == 0 && n)
            *n = sqlite3_column_int64(st, 0);
    } else {
        rc = ch_store_step_done(st);
        if (rc == 0 && n)
            *n = (int64_t)sqlite3_changes64(db->h);
    }
    sqlite3_finalize(st);
    return rc;
}

int ch_audit_prune(struct ch_db *db, int64_t cutoff_ms, int64_t limit, int64_t *removed)
{
    return exec_batch(db,
                      "DELETE FROM audit WHERE id IN"
                      " (SELECT id FROM audit WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                      cutoff_ms, limit, false, removed);
}

int ch_runs_prune(struct ch_db *db, int64_t before_ms, int64_t limit, int64_t *removed)
{
    /* runs_created bounds the scan; a run finishes after it is created,
     * so one created after the cut-off cannot qualify. */
    return exec_batch(db,
                      "DELETE FROM runs WHERE rowid IN"
                      " (SELECT rowid FROM runs WHERE created_ms < ?1 AND finished_ms < ?1"
                      " AND status IN ('ok', 'error', 'aborted', 'timeout') ORDER BY created_ms LIMIT ?2)",
                      before_ms, limit, false, removed);
}

/* sessions_updated bounds the scan; chela_session_disposable is
 * ch_session_key_disposable (db.c). */
#define STALE_SESSIONS                                                                                                 \
    " FROM sessions s WHERE s.updated_ms < ?1 AND chela_session_disposable(s.key)"                                     \
    " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_key = s.key AND r.status IN ('queued', 'running'))"

int ch_sessions_prune(struct ch_db *db, int64_t before_ms, int64_t limit, bool count_only, int64_t *removed)
{
    if (count_only)
        return exec_batch(db, "SELECT count(*) FROM (SELECT 1" STALE_SESSIONS " LIMIT ?2)", before_ms, limit, true,
                          removed);
    /* The messages go with them: ON DELETE CASCADE. */
    return exec_batch(
        db, "DELETE FROM sessions WHERE key IN (SELECT s.key" STALE_SESSIONS " ORDER BY s.updated_ms LIMIT ?2)",
        before_ms, limit, false, removed);
}
