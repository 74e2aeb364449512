/*
 * run_delivery.c: the delivery state of a run (runs.delivery, issue #4
 * item 1: "track a run by id: ... delivery state").  The hooks surface
 * writes it when a hook run's result is handed to the outbox (or cannot
 * be), GET /api/v1/runs/:id shows it, and at start the hooks surface asks
 * for finished hook runs that have a callback but no delivery state: the
 * gateway stopped between the run's end and the callback's commit.
 */
#include <string.h>

#include "store/internal.h"

int ch_runs_set_delivery(struct ch_db *db, const char *run_id, const char *delivery_json)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(run_id, CH_STORE_MAX_ID_BYTES, true, false, "run id", NULL, NULL)) ||
        (rc =
             ch_store_check_text(delivery_json, CH_STORE_MAX_META_JSON_BYTES, false, true, "run delivery", NULL, NULL)))
        return rc;
    /* json(?2) fails on invalid JSON, which the column's CHECK would
     * refuse anyway: report it as the caller's CH_EINVAL. */
    rc = ch_db_prepare(db,
                       "UPDATE runs SET delivery = CASE WHEN ?2 IS NULL THEN NULL ELSE json(?2) END"
                       " WHERE run_id = ?1",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 2, delivery_json);
    rc = ch_store_step_done(st);
    if (rc == CH_EIO && delivery_json && sqlite3_errcode(db->h) == SQLITE_ERROR)
        rc = CH_EINVAL;
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = CH_ENOTFOUND;
    sqlite3_finalize(st);
    return rc;
}

int ch_runs_list_undelivered(struct ch_db *db, int64_t since_ms, int64_t before_ms, size_t limit,
                             struct ch_run_list *out)
{
    struct ch_run_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || limit == 0)
        return CH_EINVAL;
    if (limit > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    rc = ch_db_prepare(db,
                       "SELECT run_id FROM runs WHERE status NOT IN ('queued', 'running') AND delivery IS NULL"
                       " AND finished_ms >= ?1 AND finished_ms < ?2"
                       " AND json_valid(request) AND json_type(request, '$.meta.hook.callback') = 'object'"
                       " ORDER BY finished_ms, rowid LIMIT ?3",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, before_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        struct ch_run_rec rec = {0};

        if (!id)
            continue;
        rc = ch_runs_get(db, id, &rec);
        if (rc == CH_ENOTFOUND)
            continue;
        if (rc == 0 && (rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items))) != 0)
            ch_run_rec_release(&rec);
        if (rc)
            goto out;
        l.items[l.count++] = rec;
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_run_list_release(&l);
    else
        *out = l;
    return rc;
}
