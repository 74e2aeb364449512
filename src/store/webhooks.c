/*
 * store/webhooks.c: the `webhooks` table, outgoing event webhooks created
 * over REST (POST /api/v1/webhooks).  Configured webhooks
 * (api.webhooks.outgoing[]) are never stored; the api reads them from the
 * configuration each time it emits.  The table is small by design: at
 * most CH_STORE_MAX_WEBHOOKS rows, so every emit may read all of it.
 */
#include <string.h>

#include "store/internal.h"

#define MAX_EVENTS_JSON_BYTES 4096
#define MAX_DESCRIPTION_BYTES 256

void ch_webhook_rec_release(struct ch_webhook_rec *w)
{
    if (!w)
        return;
    ch_free(w->id);
    ch_free(w->url);
    ch_free_secret(w->secret);
    ch_free(w->events);
    ch_free_secret(w->headers);
    ch_free(w->description);
    memset(w, 0, sizeof(*w));
}

void ch_webhook_list_release(struct ch_webhook_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        ch_webhook_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

static int check_insert(const struct ch_webhook_rec *w, struct ch_error *err)
{
    int rc;

    if ((rc = ch_store_check_text(w->id, CH_STORE_MAX_ID_BYTES, true, false, "webhook id", NULL, err)) ||
        (rc = ch_store_check_text(w->url, CH_STORE_MAX_URL_BYTES, true, false, "url", NULL, err)) ||
        (rc = ch_store_check_text(w->secret, CH_STORE_MAX_SECRET_BYTES, true, false, "secret", NULL, err)) ||
        (rc = ch_store_check_text(w->events, MAX_EVENTS_JSON_BYTES, true, true, "events", NULL, err)) ||
        (rc = ch_store_check_text(w->headers, CH_STORE_MAX_HEADERS_JSON_BYTES, false, true, "headers", NULL, err)) ||
        (rc = ch_store_check_text(w->description, MAX_DESCRIPTION_BYTES, false, false, "description", NULL, err)))
        /* A field over its cap is bad input (400 over REST); CH_E_TOO_LARGE
         * is kept for the table's row cap, which is a conflict (409). */
        return rc == CH_E_TOO_LARGE ? CH_EINVAL : rc;
    if (w->max_attempts < 1 || w->max_attempts > CH_STORE_MAX_DELIVERY_ATTEMPTS || w->backoff_ms < 0)
        return ch_error_set(err, CH_EINVAL, "retry settings out of range");
    return 0;
}

int ch_webhooks_insert(struct ch_db *db, const struct ch_webhook_rec *w, struct ch_error *err)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (!db || !w)
        return ch_error_set(err, CH_EINVAL, "no webhook given");
    if ((rc = check_insert(w, err)))
        return rc;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    /* The cap is checked inside the transaction, so two creates racing
     * cannot both pass it. */
    if ((rc = ch_db_prepare(db, "SELECT count(*) FROM webhooks", &st)))
        goto out;
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
        goto out;
    }
    if (sqlite3_column_int64(st, 0) >= CH_STORE_MAX_WEBHOOKS) {
        rc = ch_error_set(err, CH_E_TOO_LARGE, "at most %d webhooks can be created; delete one first",
                          CH_STORE_MAX_WEBHOOKS);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = ch_db_prepare(db,
                       "INSERT INTO webhooks(id, url, secret, events, headers, description, max_attempts,"
                       " backoff_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, w->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, w->secret, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, w->events, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 5, w->headers);
    ch_store_bind_text(st, 6, w->description);
    sqlite3_bind_int64(st, 7, w->max_attempts);
    sqlite3_bind_int64(st, 8, w->backoff_ms);
    sqlite3_bind_int64(st, 9, w->created_ms);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = 0;
    else if (src == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = ch_error_set(err, CH_EEXIST, "webhook '%s' already exists", w->id);
    else
        rc = ch_db_fail(db, src, err, "insert webhook"); /* CHECK: events or headers not JSON */
out:
    sqlite3_finalize(st);
    return ch_db_atomic_end(db, &a, rc);
}

int ch_webhooks_list(struct ch_db *db, bool with_secrets, struct ch_webhook_list *out)
{
    struct ch_webhook_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    rc = ch_db_prepare(db,
                       with_secrets ? "SELECT id, url, secret, events, headers, description, max_attempts,"
                                      " backoff_ms, created_ms FROM webhooks ORDER BY created_ms, rowid"
                                    : "SELECT id, url, NULL, events, headers, description, max_attempts,"
                                      " backoff_ms, created_ms FROM webhooks ORDER BY created_ms, rowid",
                       &st);
    if (rc)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct ch_webhook_rec *w;

        if ((rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items))))
            goto out;
        w = &l.items[l.count];
        memset(w, 0, sizeof(*w));
        l.count++;
        if ((rc = ch_store_col_dup(st, 0, &w->id)) || (rc = ch_store_col_dup(st, 1, &w->url)) ||
            (rc = ch_store_col_dup(st, 2, &w->secret)) || (rc = ch_store_col_dup(st, 3, &w->events)) ||
            (rc = ch_store_col_dup(st, 4, &w->headers)) || (rc = ch_store_col_dup(st, 5, &w->description)))
            goto out;
        if (!w->id || !w->url || !w->events) {
            rc = CH_EIO;
            goto out;
        }
        w->max_attempts = sqlite3_column_int64(st, 6);
        w->backoff_ms = sqlite3_column_int64(st, 7);
        w->created_ms = sqlite3_column_int64(st, 8);
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_webhook_list_release(&l);
    else
        *out = l;
    return rc;
}

int ch_webhooks_delete(struct ch_db *db, const char *id)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(id, CH_STORE_MAX_ID_BYTES, true, false, "webhook id", NULL, NULL)))
        return rc;
    if ((rc = ch_db_prepare(db, "DELETE FROM webhooks WHERE id = ?1", &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = CH_ENOTFOUND;
    return rc;
}
