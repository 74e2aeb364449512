/*
 * store/deliveries.c: the `deliveries` table, the durable outbox behind
 * callbacks and event webhooks (issue #4 items 2 and 3).
 *
 * State machine (store.h): pending -> sending -> done | dead | pending,
 * with every transition one UPDATE guarded by the current status, so two
 * paths racing on a row (an attempt finishing, a manual retry) cannot
 * both win.  A claim hands rows out as `sending` inside one transaction,
 * so a row is never attempted twice at once.  See docs/internals/outbox.md.
 */
#include <string.h>

#include "store/internal.h"

#define DEFAULT_LIST_LIMIT 50
#define MAX_KIND_BYTES 16
#define MAX_EVENT_BYTES 64
#define MAX_CONTENT_TYPE_BYTES 256

static const char *const status_names[] = {
    [CH_DELIVERY_PENDING] = "pending",
    [CH_DELIVERY_SENDING] = "sending",
    [CH_DELIVERY_DONE] = "done",
    [CH_DELIVERY_DEAD] = "dead",
};

const char *ch_delivery_status_name(enum ch_delivery_status s)
{
    return (unsigned)s < CH_ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

int ch_delivery_status_parse(const char *name, enum ch_delivery_status *out)
{
    for (size_t i = 0; name && i < CH_ARRAY_SIZE(status_names); i++)
        if (!strcmp(name, status_names[i])) {
            *out = (enum ch_delivery_status)i;
            return 0;
        }
    return CH_EINVAL;
}

void ch_delivery_rec_release(struct ch_delivery_rec *d)
{
    if (!d)
        return;
    ch_free(d->id);
    ch_free(d->kind);
    ch_free(d->run_id);
    ch_free(d->event);
    ch_free(d->webhook_id);
    ch_free(d->url);
    ch_free_secret(d->headers); /* may hold an Authorization value */
    ch_free(d->body);
    ch_free(d->content_type);
    ch_free_secret(d->secret);
    ch_free(d->last_error);
    memset(d, 0, sizeof(*d));
}

void ch_delivery_list_release(struct ch_delivery_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        ch_delivery_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Column lists; the light one leaves body and secret out (listings). */
#define COLS_HEAD "id, kind, run_id, event, webhook_id, url, headers, "
#define COLS_TAIL                                                                                                      \
    " content_type, status, attempts, max_attempts, retry_base, backoff_ms, next_attempt_ms, last_status,"             \
    " last_error, created_ms, updated_ms, delivered_ms, length(body), secret IS NOT NULL"
#define COLS COLS_HEAD "body, secret," COLS_TAIL
#define COLS_LIGHT COLS_HEAD "NULL, NULL," COLS_TAIL

static int row_to_rec(sqlite3_stmt *st, struct ch_delivery_rec *d)
{
    const void *blob;
    int rc;

    memset(d, 0, sizeof(*d));
    if ((rc = ch_store_col_dup(st, 0, &d->id)) || (rc = ch_store_col_dup(st, 1, &d->kind)) ||
        (rc = ch_store_col_dup(st, 2, &d->run_id)) || (rc = ch_store_col_dup(st, 3, &d->event)) ||
        (rc = ch_store_col_dup(st, 4, &d->webhook_id)) || (rc = ch_store_col_dup(st, 5, &d->url)) ||
        (rc = ch_store_col_dup(st, 6, &d->headers)) || (rc = ch_store_col_dup(st, 8, &d->secret)) ||
        (rc = ch_store_col_dup(st, 9, &d->content_type)) || (rc = ch_store_col_dup(st, 17, &d->last_error)))
        goto fail;
    if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
        /* The body is a BLOB: copy its exact bytes, NUL added for callers
         * that treat JSON bodies as strings. */
        int n = sqlite3_column_bytes(st, 7);
        blob = sqlite3_column_blob(st, 7);
        rc = CH_ENOMEM;
        if (!(d->body = ch_malloc((size_t)n + 1)))
            goto fail;
        if (n > 0)
            memcpy(d->body, blob, (size_t)n);
        d->body[n] = '\0';
    }
    rc = CH_EIO; /* NOT NULL columns and a status the CHECK allows */
    if (!d->id || !d->kind || !d->url || !d->content_type ||
        ch_delivery_status_parse((const char *)sqlite3_column_text(st, 10), &d->status))
        goto fail;
    d->attempts = sqlite3_column_int64(st, 11);
    d->max_attempts = sqlite3_column_int64(st, 12);
    d->retry_base = sqlite3_column_int64(st, 13);
    d->backoff_ms = sqlite3_column_int64(st, 14);
    d->next_attempt_ms = sqlite3_column_int64(st, 15);
    d->last_status = sqlite3_column_int64(st, 16);
    d->created_ms = sqlite3_column_int64(st, 18);
    d->updated_ms = sqlite3_column_int64(st, 19);
    d->delivered_ms = sqlite3_column_int64(st, 20);
    d->body_len = (size_t)sqlite3_column_int64(st, 21);
    d->has_secret = sqlite3_column_int(st, 22) != 0;
    return 0;
fail:
    ch_delivery_rec_release(d);
    return rc;
}

/* Step st to the end, appending each row to l. */
static int collect(sqlite3_stmt *st, struct ch_delivery_list *l)
{
    size_t cap = 0;
    int rc, src;

    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = ch_store_grow((void **)&l->items, &cap, l->count, sizeof(*l->items))))
            return rc;
        if ((rc = row_to_rec(st, &l->items[l->count])))
            return rc;
        l->count++;
    }
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

static int check_id(const char *id)
{
    return ch_store_check_text(id, CH_STORE_MAX_ID_BYTES, true, false, "delivery id", NULL, NULL);
}

static int check_insert(const struct ch_delivery_rec *d, struct ch_error *err)
{
    int rc;

    if ((rc = check_id(d->id)) ||
        (rc = ch_store_check_text(d->kind, MAX_KIND_BYTES, true, false, "delivery kind", NULL, err)) ||
        (rc = ch_store_check_text(d->run_id, CH_STORE_MAX_ID_BYTES, false, false, "run id", NULL, err)) ||
        (rc = ch_store_check_text(d->event, MAX_EVENT_BYTES, false, false, "event", NULL, err)) ||
        (rc = ch_store_check_text(d->webhook_id, CH_STORE_MAX_ID_BYTES, false, false, "webhook id", NULL, err)) ||
        (rc = ch_store_check_text(d->url, CH_STORE_MAX_URL_BYTES, true, false, "url", NULL, err)) ||
        (rc = ch_store_check_text(d->headers, CH_STORE_MAX_HEADERS_JSON_BYTES, false, true, "headers", NULL, err)) ||
        (rc = ch_store_check_text(d->content_type, MAX_CONTENT_TYPE_BYTES, true, false, "content type", NULL, err)) ||
        (rc = ch_store_check_text(d->secret, CH_STORE_MAX_SECRET_BYTES, false, false, "secret", NULL, err)) ||
        (rc = ch_store_check_text(d->last_error, CH_STORE_MAX_ERROR_BYTES, false, true, "last error", NULL, err)))
        return rc;
    if (d->body_len > CH_STORE_MAX_DELIVERY_BODY_BYTES)
        return ch_error_set(err, CH_E_TOO_LARGE, "delivery body is larger than %d bytes",
                            CH_STORE_MAX_DELIVERY_BODY_BYTES);
    if (!d->body && d->body_len)
        return ch_error_set(err, CH_EINVAL, "delivery body is missing");
    if (d->max_attempts < 1 || d->max_attempts > CH_STORE_MAX_DELIVERY_ATTEMPTS || d->backoff_ms < 0 ||
        d->attempts < 0 || d->retry_base < 0 || d->retry_base > d->attempts)
        return ch_error_set(err, CH_EINVAL, "delivery attempts or backoff out of range");
    if (strcmp(d->kind, "callback") && strcmp(d->kind, "webhook"))
        return ch_error_set(err, CH_EINVAL, "delivery kind must be callback or webhook");
    if ((unsigned)d->status > CH_DELIVERY_DEAD)
        return ch_error_set(err, CH_EINVAL, "bad delivery status");
    return 0;
}

/* SHA-256 over the fields that make a run's delivery the same one; the
 * NUL separators keep ("ab","c") and ("a","bc") apart. */
static void dedupe_key(const struct ch_delivery_rec *d, char out[65])
{
    const char *parts[] = {d->kind, d->run_id, d->event ? d->event : "", d->url, d->secret ? d->secret : ""};
    struct ch_buf b;

    ch_buf_init(&b, 4 * CH_STORE_MAX_URL_BYTES);
    for (size_t i = 0; i < CH_ARRAY_SIZE(parts); i++)
        ch_buf_append(&b, parts[i], strlen(parts[i]) + 1);
    ch_sha256_hex(b.data ? b.data : "", b.len, out);
    ch_wipe(b.data, b.len);
    ch_buf_release(&b);
}

static int find_dedupe(struct ch_db *db, const char *key, char **out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = ch_db_prepare(db, "SELECT id FROM deliveries WHERE dedupe_key = ?1", &st)))
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? ch_store_col_dup(st, 0, out) : ch_store_row_err(src);
    sqlite3_finalize(st);
    if (rc == 0 && !*out)
        rc = CH_EIO;
    return rc;
}

int ch_deliveries_insert(struct ch_db *db, const struct ch_delivery_rec *d, char **existing_id, struct ch_error *err)
{
    sqlite3_stmt *st = NULL;
    char key[65], *existing = NULL;
    int rc, src;

    if (existing_id)
        *existing_id = NULL;
    if (!db || !d)
        return ch_error_set(err, CH_EINVAL, "no delivery given");
    if ((rc = check_insert(d, err)))
        return rc;
    if (d->run_id)
        dedupe_key(d, key);
    rc = ch_db_prepare(db,
                       "INSERT INTO deliveries(id, kind, run_id, event, webhook_id, url, headers, body,"
                       " content_type, secret, status, attempts, max_attempts, retry_base, backoff_ms,"
                       " next_attempt_ms, last_status, last_error, created_ms, updated_ms, delivered_ms,"
                       " dedupe_key)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
                       " ?18, ?19, ?20, ?21, ?22)",
                       &st);
    if (rc)
        return ch_error_set(err, rc, "prepare delivery insert");
    sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->kind, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 3, d->run_id);
    ch_store_bind_text(st, 4, d->event);
    ch_store_bind_text(st, 5, d->webhook_id);
    sqlite3_bind_text(st, 6, d->url, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 7, d->headers);
    /* A zero-length blob, not NULL: the column is NOT NULL. */
    sqlite3_bind_blob(st, 8, d->body ? d->body : "", (int)d->body_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, d->content_type, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 10, d->secret);
    sqlite3_bind_text(st, 11, ch_delivery_status_name(d->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, d->attempts);
    sqlite3_bind_int64(st, 13, d->max_attempts);
    sqlite3_bind_int64(st, 14, d->retry_base);
    sqlite3_bind_int64(st, 15, d->backoff_ms);
    sqlite3_bind_int64(st, 16, d->next_attempt_ms);
    sqlite3_bind_int64(st, 17, d->last_status);
    ch_store_bind_text(st, 18, d->last_error);
    sqlite3_bind_int64(st, 19, d->created_ms);
    sqlite3_bind_int64(st, 20, d->updated_ms ? d->updated_ms : d->created_ms);
    sqlite3_bind_int64(st, 21, d->delivered_ms);
    if (d->run_id)
        sqlite3_bind_text(st, 22, key, 64, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 22);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_DONE)
        return 0;
    if (src == SQLITE_CONSTRAINT_PRIMARYKEY)
        return ch_error_set(err, CH_EEXIST, "delivery '%s' already exists", d->id);
    if (src == SQLITE_CONSTRAINT_UNIQUE && d->run_id) {
        rc = find_dedupe(db, key, &existing);
        if (rc == 0 && existing_id)
            *existing_id = existing;
        else
            ch_free(existing);
        return ch_error_set(err, rc == 0 ? CH_EEXIST : rc, "the run's delivery to this url already exists");
    }
    return ch_db_fail(db, src, err, "insert delivery");
}

int ch_deliveries_get(struct ch_db *db, const char *id, struct ch_delivery_rec *out)
{
    struct ch_delivery_rec d = {0};
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_id(id)))
        return rc;
    if ((rc = ch_db_prepare(db, "SELECT " COLS " FROM deliveries WHERE id = ?1", &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? row_to_rec(st, &d) : ch_store_row_err(src);
    sqlite3_finalize(st);
    if (rc == 0)
        *out = d;
    return rc;
}

/* The light row of id (no body, no secret). */
static int get_light(struct ch_db *db, const char *id, struct ch_delivery_rec *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = ch_db_prepare(db, "SELECT " COLS_LIGHT " FROM deliveries WHERE id = ?1", &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? row_to_rec(st, out) : ch_store_row_err(src);
    sqlite3_finalize(st);
    return rc;
}

int ch_deliveries_list(struct ch_db *db, const struct ch_delivery_query *q, struct ch_delivery_list *out)
{
    /* [by status][by run]; ?1 status, ?2 run, ?3 limit, ?4 offset. */
    static const char *const where[2][2] = {
        {"", " WHERE run_id = ?2"},
        {" WHERE status = ?1", " WHERE status = ?1 AND run_id = ?2"},
    };
    struct ch_delivery_list l = {0};
    sqlite3_stmt *st = NULL;
    char sql[512];
    size_t limit;
    int rc, src, bs, br;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !q || !out || q->status < -1 || q->status > CH_DELIVERY_DEAD)
        return CH_EINVAL;
    limit = q->limit ? q->limit : DEFAULT_LIST_LIMIT;
    if (limit > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    if ((rc = ch_store_check_text(q->run_id, CH_STORE_MAX_ID_BYTES, false, false, "run id", NULL, NULL)))
        return rc;
    bs = q->status >= 0;
    br = q->run_id != NULL;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries%s", where[bs][br]);
    if ((rc = ch_db_prepare(db, sql, &st)))
        goto out;
    if (bs)
        sqlite3_bind_text(st, 1, ch_delivery_status_name((enum ch_delivery_status)q->status), -1, SQLITE_STATIC);
    ch_store_bind_text(st, 2, q->run_id);
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
        goto out;
    }
    l.total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    /* Newest first; rowid breaks ties inside one millisecond. */
    snprintf(sql, sizeof(sql),
             "SELECT " COLS_LIGHT " FROM deliveries%s ORDER BY created_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4",
             where[bs][br]);
    if ((rc = ch_db_prepare(db, sql, &st)))
        goto out;
    if (bs)
        sqlite3_bind_text(st, 1, ch_delivery_status_name((enum ch_delivery_status)q->status), -1, SQLITE_STATIC);
    ch_store_bind_text(st, 2, q->run_id);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)CH_MIN(q->offset, (size_t)INT64_MAX));
    rc = collect(st, &l);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_delivery_list_release(&l);
    else
        *out = l;
    return rc;
}

int ch_deliveries_count(struct ch_db *db, int64_t counts[4])
{
    sqlite3_stmt *st = NULL;
    enum ch_delivery_status s;
    int rc, src;

    if (!db || !counts)
        return CH_EINVAL;
    memset(counts, 0, 4 * sizeof(*counts));
    if ((rc = ch_db_prepare(db, "SELECT status, count(*) FROM deliveries GROUP BY status", &st)))
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        if (ch_delivery_status_parse((const char *)sqlite3_column_text(st, 0), &s) == 0)
            counts[s] = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

int ch_deliveries_claim(struct ch_db *db, int64_t now_ms, size_t max, struct ch_delivery_list *out,
                        int64_t *next_due_ms)
{
    struct ch_delivery_list l = {0};
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int64_t next = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || !next_due_ms || max == 0)
        return CH_EINVAL;
    if (max > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    /* One statement picks and marks the rows, so a row is handed out once. */
    rc = ch_db_prepare(db,
                       "UPDATE deliveries SET status = 'sending', updated_ms = ?1"
                       " WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending'"
                       "  AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, created_ms LIMIT ?2)"
                       " RETURNING " COLS,
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    rc = collect(st, &l);
    sqlite3_finalize(st);
    st = NULL;
    if (rc)
        goto out;
    if ((rc = ch_db_prepare(db, "SELECT min(next_attempt_ms) FROM deliveries WHERE status = 'pending'", &st)))
        goto out;
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
        goto out;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        next = CH_MAX(sqlite3_column_int64(st, 0), 1); /* 0 means "none" */
out:
    sqlite3_finalize(st);
    rc = ch_db_atomic_end(db, &a, rc);
    if (rc) {
        ch_delivery_list_release(&l);
        return rc;
    }
    *out = l;
    *next_due_ms = next;
    return 0;
}

int ch_deliveries_finish(struct ch_db *db, const char *id, const struct ch_delivery_outcome *o)
{
    sqlite3_stmt *st = NULL;
    size_t elen = 0;
    int rc;

    if (!db || !o || o->status == CH_DELIVERY_SENDING || (unsigned)o->status > CH_DELIVERY_DEAD)
        return CH_EINVAL;
    if ((rc = check_id(id)))
        return rc;
    if (o->last_error) {
        /* Receivers' answers are free text: cut, never refuse. */
        elen = strnlen(o->last_error, CH_STORE_MAX_ERROR_BYTES + 1);
        if (elen > CH_STORE_MAX_ERROR_BYTES) {
            elen = CH_STORE_MAX_ERROR_BYTES;
            while (elen > 0 && ((unsigned char)o->last_error[elen] & 0xc0) == 0x80)
                elen--; /* do not split a UTF-8 sequence */
        }
    }
    rc = ch_db_prepare(db,
                       "UPDATE deliveries SET status = ?2, attempts = attempts + ?3, last_status = ?4,"
                       " last_error = ?5, next_attempt_ms = ?6, updated_ms = ?7,"
                       " delivered_ms = CASE WHEN ?2 = 'done' THEN ?7 ELSE delivered_ms END"
                       " WHERE id = ?1 AND status = 'sending'",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ch_delivery_status_name(o->status), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, o->attempted ? 1 : 0);
    sqlite3_bind_int64(st, 4, o->last_status);
    if (o->last_error)
        sqlite3_bind_text(st, 5, o->last_error, (int)elen, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, o->status == CH_DELIVERY_PENDING ? o->next_attempt_ms : 0);
    sqlite3_bind_int64(st, 7, o->now_ms);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0) {
        struct ch_delivery_rec d = {0};
        rc = get_light(db, id, &d);
        ch_delivery_rec_release(&d);
        if (rc == 0)
            rc = CH_ESTATE;
    }
    return rc;
}

/* Run one UPDATE/DELETE with up to two int64 parameters; *changed gets the
 * number of rows it touched (may be NULL). */
static int exec_counted(struct ch_db *db, const char *sql, int64_t p1, int64_t p2, int64_t *changed)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = ch_db_prepare(db, sql, &st)))
        return rc;
    sqlite3_bind_int64(st, 1, p1);
    sqlite3_bind_int64(st, 2, p2);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc == 0 && changed)
        *changed = sqlite3_changes(db->h);
    return rc;
}

int ch_deliveries_requeue_sending(struct ch_db *db, int64_t now_ms, int64_t *count)
{
    if (count)
        *count = 0;
    if (!db)
        return CH_EINVAL;
    /* next_attempt_ms stays: it was due when claimed, so it is due now. */
    return exec_counted(db, "UPDATE deliveries SET status = 'pending', updated_ms = ?1 WHERE status = 'sending'",
                        now_ms, 0, count);
}

int ch_deliveries_retry(struct ch_db *db, const char *id, int64_t now_ms, struct ch_delivery_rec *out)
{
    struct ch_delivery_rec d = {0};
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db)
        return CH_EINVAL;
    if ((rc = check_id(id)))
        return rc;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    rc = ch_db_prepare(db,
                       "UPDATE deliveries SET status = 'pending', next_attempt_ms = ?2, updated_ms = ?2,"
                       " retry_base = CASE WHEN status = 'dead' THEN attempts ELSE retry_base END"
                       " WHERE id = ?1 AND status IN ('dead', 'pending')",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc)
        goto out;
    if (sqlite3_changes(db->h) == 0) {
        rc = get_light(db, id, &d);
        if (rc == 0)
            rc = CH_ESTATE;
        goto out;
    }
    if (out)
        rc = get_light(db, id, &d);
out:
    rc = ch_db_atomic_end(db, &a, rc);
    if (rc == 0 && out)
        *out = d;
    else
        ch_delivery_rec_release(&d);
    return rc;
}

int ch_deliveries_prune(struct ch_db *db, int64_t done_before_ms, int64_t dead_before_ms, int64_t *removed)
{
    if (removed)
        *removed = 0;
    if (!db || done_before_ms < 0 || dead_before_ms < 0)
        return CH_EINVAL;
    return exec_counted(db,
                        "DELETE FROM deliveries WHERE (status = 'done' AND updated_ms < ?1)"
                        " OR (status = 'dead' AND updated_ms < ?2)",
                        done_before_ms, dead_before_ms, removed);
}
