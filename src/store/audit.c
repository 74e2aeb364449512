/*
 * store/audit.c: the request audit trail.
 *
 * The API layer collects finished requests and hands them over in batches
 * (one writer job per batch), so an insert here is many rows through two
 * cached statements (16 rows a step, then one a step) inside one atomic
 * section.  Fields are fixed-size arrays in the record; each is read only
 * up to its size, so a record that is not NUL-terminated cannot make us
 * read past it.  A query string never
 * reaches the table even if a caller forgot to strip it.
 */
#include <string.h>

#include "store/internal.h"

#define FIELD_LEN(f) ((int)strnlen((f), sizeof(f)))

#define AUDIT_COLS "INSERT INTO audit(ts_ms, request_id, token_name, address, method, path, status, latency_us) VALUES "
#define ROW "(?,?,?,?,?,?,?,?)"
#define ROWS4 ROW "," ROW "," ROW "," ROW
/* A statement step has a fixed cost (cursors opened and closed, the
 * statement's halt) near that of the row itself: 16 rows a step cost
 * about 40% less per row than one.  Remainders go one by one. */
#define AUDIT_ROWS_PER_STEP 16
static const char sql_audit_insert[] = AUDIT_COLS ROW;
static const char sql_audit_insert16[] = AUDIT_COLS ROWS4 "," ROWS4 "," ROWS4 "," ROWS4;

/* Bind record r as row `row` (0-based) of a multi-row statement. */
static void bind_rec(sqlite3_stmt *st, int row, const struct ch_audit_rec *r)
{
    int b = row * 8, path_len = FIELD_LEN(r->path);
    const char *q = memchr(r->path, '?', (size_t)path_len);

    if (q)
        path_len = (int)(q - r->path);
    sqlite3_bind_int64(st, b + 1, r->ts_ms);
    sqlite3_bind_text(st, b + 2, r->request_id, FIELD_LEN(r->request_id), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 3, r->token_name, FIELD_LEN(r->token_name), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 4, r->address, FIELD_LEN(r->address), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 5, r->method, FIELD_LEN(r->method), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 6, r->path, path_len, SQLITE_STATIC);
    sqlite3_bind_int(st, b + 7, r->status);
    sqlite3_bind_int64(st, b + 8, r->latency_us);
}

/* Insert `rows` records (1 or AUDIT_ROWS_PER_STEP) in one step. */
static int insert_rows(struct ch_db *db, const struct ch_audit_rec *recs, int rows)
{
    bool many = rows == AUDIT_ROWS_PER_STEP;
    sqlite3_stmt *st;
    int i, rc, src;

    rc = ch_db_stmt(db, many ? CH_STMT_AUDIT_INSERT16 : CH_STMT_AUDIT_INSERT,
                    many ? sql_audit_insert16 : sql_audit_insert, &st);
    if (rc)
        return rc;
    for (i = 0; i < rows; i++)
        bind_rec(st, i, &recs[i]);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

int ch_audit_insert(struct ch_db *db, const struct ch_audit_rec *recs, size_t n)
{
    struct ch_db_atomic a;
    size_t i = 0;
    int rc;

    if (!db || (n > 0 && !recs))
        return CH_EINVAL;
    if (n == 0)
        return 0;
    /* All rows or none: a batch half-written would be hard to reason about. */
    rc = ch_db_atomic_begin(db, &a);
    if (rc)
        return rc;
    for (; rc == 0 && n - i >= AUDIT_ROWS_PER_STEP; i += AUDIT_ROWS_PER_STEP) {
        rc = insert_rows(db, recs + i, AUDIT_ROWS_PER_STEP);
        ch_db_yield_point(db); /* 256 rows run ~200 us */
    }
    for (; rc == 0 && i < n; i++)
        rc = insert_rows(db, recs + i, 1);
    return ch_db_atomic_end(db, &a, rc);
}
