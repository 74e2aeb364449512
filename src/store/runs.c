/*
 * store/runs.c: the `runs` table, one row per agent run (a turn of a
 * session), so that nothing accepted is lost across a crash.
 *
 * State machine (enforced by each UPDATE's WHERE clause, so a race between
 * two callers cannot skip a step):
 *   queued -> running -> ok | error | aborted | timeout
 *   queued -> error | aborted | timeout            (never started)
 *   running -> queued                               (requeue at start)
 * A run's request holds everything needed to replay it.  Idempotency keys
 * are unique among stored runs (a partial unique index); a duplicate insert
 * reports the run that holds the key.  See docs/internals/store.md.
 */
#include <string.h>

#include "store/internal.h"

#define DEFAULT_LIST_LIMIT 50
#define MAX_SOURCE_BYTES 32
#define MAX_ERROR_CLASS_BYTES 32

static const char *const status_names[] = {
    [CH_RUN_QUEUED] = "queued", [CH_RUN_RUNNING] = "running", [CH_RUN_OK] = "ok",
    [CH_RUN_ERROR] = "error",   [CH_RUN_ABORTED] = "aborted", [CH_RUN_TIMEOUT] = "timeout",
};

const char *ch_run_status_name(enum ch_run_status s)
{
    return (unsigned)s < CH_ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

int ch_run_status_parse(const char *name, enum ch_run_status *out)
{
    size_t i;

    for (i = 0; name && i < CH_ARRAY_SIZE(status_names); i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum ch_run_status)i;
            return 0;
        }
    return CH_EINVAL;
}

void ch_run_rec_release(struct ch_run_rec *r)
{
    if (!r)
        return;
    ch_free(r->run_id);
    ch_free(r->session_key);
    ch_free(r->source);
    ch_free(r->request);
    ch_free(r->result);
    ch_free(r->error);
    ch_free(r->error_class);
    ch_free(r->idempotency_key);
    ch_free(r->model);
    ch_free(r->delivery);
    memset(r, 0, sizeof(*r));
}

void ch_run_list_release(struct ch_run_list *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->count; i++)
        ch_run_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Column lists: the light one reads NULL for the three payload columns so
 * a listing never pulls megabytes of requests it will not show. */
#define RUN_COLS_HEAD "run_id, session_key, source, status, "
#define RUN_COLS_MID                                                                                                   \
    " error, error_class, created_ms, started_ms, finished_ms, attempts, idempotency_key,"                             \
    " model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, "
#define RUN_COLS RUN_COLS_HEAD "request, result," RUN_COLS_MID "delivery"
#define RUN_COLS_LIGHT RUN_COLS_HEAD "NULL, NULL," RUN_COLS_MID "NULL"

static int row_to_run(sqlite3_stmt *st, struct ch_run_rec *r)
{
    int rc;

    memset(r, 0, sizeof(*r));
    if ((rc = ch_store_col_dup(st, 0, &r->run_id)) || (rc = ch_store_col_dup(st, 1, &r->session_key)) ||
        (rc = ch_store_col_dup(st, 2, &r->source)) || (rc = ch_store_col_dup(st, 4, &r->request)) ||
        (rc = ch_store_col_dup(st, 5, &r->result)) || (rc = ch_store_col_dup(st, 6, &r->error)) ||
        (rc = ch_store_col_dup(st, 7, &r->error_class)) || (rc = ch_store_col_dup(st, 12, &r->idempotency_key)) ||
        (rc = ch_store_col_dup(st, 13, &r->model)) || (rc = ch_store_col_dup(st, 19, &r->delivery)))
        goto fail;
    rc = CH_EIO; /* NOT NULL columns, and a status the CHECK allows */
    if (!r->run_id || !r->session_key || !r->source ||
        ch_run_status_parse((const char *)sqlite3_column_text(st, 3), &r->status))
        goto fail;
    r->created_ms = sqlite3_column_int64(st, 8);
    r->started_ms = sqlite3_column_int64(st, 9);
    r->finished_ms = sqlite3_column_int64(st, 10);
    r->attempts = sqlite3_column_int64(st, 11);
    r->usage.input_tokens = sqlite3_column_int64(st, 14);
    r->usage.output_tokens = sqlite3_column_int64(st, 15);
    r->usage.cache_read_tokens = sqlite3_column_int64(st, 16);
    r->usage.cache_write_tokens = sqlite3_column_int64(st, 17);
    r->usage.cost_usd = sqlite3_column_double(st, 18);
    return 0;
fail:
    ch_run_rec_release(r);
    return rc;
}

static int check_run_id(const char *run_id)
{
    return ch_store_check_text(run_id, CH_STORE_MAX_ID_BYTES, true, false, "run id", NULL, NULL);
}

/* Fetch one run with a one-text-parameter query; CH_ENOTFOUND if none. */
static int get_one(struct ch_db *db, enum ch_db_stmt_id id, const char *sql, const char *arg, struct ch_run_rec *out)
{
    struct ch_run_rec r = {0};
    sqlite3_stmt *st;
    int rc, src;

    rc = ch_db_stmt(db, id, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = row_to_run(st, &r);
    else
        rc = ch_store_row_err(src);
    sqlite3_reset(st);
    if (rc == 0)
        *out = r;
    return rc;
}

int ch_runs_get(struct ch_db *db, const char *run_id, struct ch_run_rec *out)
{
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_run_id(run_id)))
        return rc;
    return get_one(db, CH_STMT_RUN_GET, "SELECT " RUN_COLS " FROM runs WHERE run_id = ?1", run_id, out);
}

int ch_runs_get_by_idempotency(struct ch_db *db, const char *idempotency_key, struct ch_run_rec *out)
{
    sqlite3_stmt *st = NULL;
    struct ch_run_rec r = {0};
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc =
             ch_store_check_text(idempotency_key, CH_STORE_MAX_NAME_BYTES, true, false, "idempotency key", NULL, NULL)))
        return rc;
    rc = ch_db_prepare(db, "SELECT " RUN_COLS " FROM runs WHERE idempotency_key = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, idempotency_key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = row_to_run(st, &r);
    else
        rc = ch_store_row_err(src);
    sqlite3_finalize(st);
    if (rc == 0)
        *out = r;
    return rc;
}

/* The run id holding idempotency key `key`: 0 and *out owned, CH_ENOTFOUND,
 * or another error. */
static int find_idempotent(struct ch_db *db, const char *key, char **out)
{
    sqlite3_stmt *st;
    int rc, src;

    rc = ch_db_stmt(db, CH_STMT_RUN_IDEM_FIND, "SELECT run_id FROM runs WHERE idempotency_key = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = ch_store_col_dup(st, 0, out);
    else
        rc = ch_store_row_err(src);
    sqlite3_reset(st);
    if (rc == 0 && !*out)
        rc = CH_EIO;
    return rc;
}

static int check_insert(const struct ch_run_rec *r, size_t *request_len, struct ch_error *err)
{
    int rc;

    if ((rc = ch_store_check_text(r->run_id, CH_STORE_MAX_ID_BYTES, true, false, "run id", NULL, err)) ||
        (rc = ch_store_check_text(r->session_key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL, err)) ||
        (rc = ch_store_check_text(r->source, MAX_SOURCE_BYTES, true, false, "run source", NULL, err)) ||
        (rc = ch_store_check_text(r->request, CH_STORE_MAX_REQUEST_BYTES, true, true, "run request", request_len,
                                  err)) ||
        (rc = ch_store_check_text(r->idempotency_key, CH_STORE_MAX_NAME_BYTES, false, false, "idempotency key", NULL,
                                  err)) ||
        (rc = ch_store_check_text(r->model, CH_STORE_MAX_NAME_BYTES, false, false, "model", NULL, err)) ||
        (rc = ch_store_check_text(r->delivery, CH_STORE_MAX_META_JSON_BYTES, false, true, "run delivery", NULL, err)))
        return rc;
    if (r->idempotency_key && !r->idempotency_key[0])
        return ch_error_set(err, CH_EINVAL, "idempotency key is empty");
    /* Schema v5 has no json_valid CHECK on request: it is checked here. */
    if (!ch_store_json_valid(r->request, *request_len))
        return ch_error_set(err, CH_EINVAL, "insert run: the request is not valid JSON");
    return 0;
}

int ch_runs_insert(struct ch_db *db, const struct ch_run_rec *r, char **existing_run_id, struct ch_error *err)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st;
    char *existing = NULL;
    size_t request_len = 0;
    bool own, running = r && r->status == CH_RUN_RUNNING;
    int rc, src;

    if (existing_run_id)
        *existing_run_id = NULL;
    if (!db || !r)
        return ch_error_set(err, CH_EINVAL, "no run given");
    if ((rc = check_insert(r, &request_len, err)))
        return rc;
    /* In a transaction (the writer's batch) lookup and insert are atomic,
     * and a failed INSERT undoes only itself: no savepoint needed. */
    own = sqlite3_get_autocommit(db->h) != 0;
    rc = own ? ch_db_atomic_begin(db, &a) : 0;
    if (rc)
        return ch_error_set(err, rc, "begin run insert: %s", sqlite3_errmsg(db->h));
    /* Looked up first so the answer names the run holding the key; the
     * unique index still guards against another process racing us. */
    if (r->idempotency_key) {
        rc = find_idempotent(db, r->idempotency_key, &existing);
        if (rc == 0) {
            rc = ch_error_set(err, CH_EEXIST, "idempotency key already used by run '%s'", existing);
            goto out;
        }
        if (rc != CH_ENOTFOUND)
            goto out;
    }
    rc = ch_db_stmt(db, CH_STMT_RUN_INSERT,
                    "INSERT INTO runs(run_id, session_key, source, status, request, created_ms,"
                    " idempotency_key, model, delivery, started_ms, attempts)"
                    " VALUES (?1, ?2, ?3, ?9, ?4, ?5, ?6, ?7, ?8, ?10, ?11)",
                    &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, r->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->session_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->request, (int)request_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->created_ms);
    ch_store_bind_text(st, 6, r->idempotency_key);
    ch_store_bind_text(st, 7, r->model);
    ch_store_bind_text(st, 8, r->delivery);
    sqlite3_bind_text(st, 9, running ? "running" : "queued", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, running ? r->started_ms : 0);
    sqlite3_bind_int(st, 11, running);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_DONE) {
        rc = 0;
    } else if (src == SQLITE_CONSTRAINT_PRIMARYKEY) {
        existing = ch_strdup(r->run_id);
        rc = existing ? ch_error_set(err, CH_EEXIST, "run '%s' already exists", r->run_id) : CH_ENOMEM;
    } else if (src == SQLITE_CONSTRAINT_UNIQUE && r->idempotency_key) {
        rc = find_idempotent(db, r->idempotency_key, &existing);
        rc = ch_error_set(err, rc == 0 ? CH_EEXIST : rc, "idempotency key already used");
    } else {
        rc = ch_db_fail(db, src, err, "insert run");
    }
out:
    if (own)
        rc = ch_db_atomic_end(db, &a, rc);
    if (rc == CH_EEXIST && existing_run_id) {
        *existing_run_id = existing;
        existing = NULL;
    }
    ch_free(existing);
    return rc;
}

/* After an UPDATE guarded by status matched nothing: CH_ENOTFOUND when the
 * run does not exist, else CH_ESTATE (it is in the wrong status). */
static int why_unchanged(struct ch_db *db, const char *run_id)
{
    struct ch_run_rec r;
    int rc = ch_runs_get(db, run_id, &r);

    ch_run_rec_release(&r);
    return rc == 0 ? CH_ESTATE : rc;
}

int ch_runs_start(struct ch_db *db, const char *run_id, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = check_run_id(run_id)))
        return rc;
    rc = ch_db_stmt(db, CH_STMT_RUN_START,
                    "UPDATE runs SET status = 'running', started_ms = ?2, attempts = attempts + 1"
                    " WHERE run_id = ?1 AND status = 'queued'",
                    &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = ch_store_step_done(st);
    sqlite3_reset(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = why_unchanged(db, run_id);
    return rc;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--; /* s[n] continues a sequence: cut before its lead byte */
    return n;
}

int ch_runs_finish(struct ch_db *db, const char *run_id, const struct ch_run_outcome *o)
{
    sqlite3_stmt *st;
    size_t result_len = 0;
    int rc;

    if (!db || !o)
        return CH_EINVAL;
    if ((rc = check_run_id(run_id)) ||
        (rc =
             ch_store_check_text(o->result, CH_STORE_MAX_RESULT_BYTES, false, true, "run result", &result_len, NULL)) ||
        (rc = ch_store_check_text(o->error_class, MAX_ERROR_CLASS_BYTES, false, false, "error class", NULL, NULL)) ||
        (rc = ch_store_check_text(o->model, CH_STORE_MAX_NAME_BYTES, false, false, "model", NULL, NULL)) ||
        (rc = ch_store_check_usage(&o->usage)))
        return rc;
    if (o->result && !ch_store_json_valid(o->result, result_len))
        return CH_EINVAL; /* schema v5: checked here, not by a CHECK */
    if (o->status != CH_RUN_OK && o->status != CH_RUN_ERROR && o->status != CH_RUN_ABORTED &&
        o->status != CH_RUN_TIMEOUT)
        return CH_EINVAL;
    rc = ch_db_stmt(db, CH_STMT_RUN_FINISH,
                    "UPDATE runs SET status = ?2, result = ?3, error = ?4, error_class = ?5,"
                    " model = COALESCE(?6, model), input_tokens = ?7, output_tokens = ?8,"
                    " cache_read_tokens = ?9, cache_write_tokens = ?10, cost_usd = ?11,"
                    " finished_ms = ?12"
                    " WHERE run_id = ?1"
                    " AND (status = 'running' OR (status = 'queued' AND ?2 <> 'ok'))",
                    &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status_names[o->status], -1, SQLITE_STATIC);
    if (o->result)
        sqlite3_bind_text(st, 3, o->result, (int)result_len, SQLITE_STATIC);
    /* An error text is evidence, not input to refuse: keep its head. */
    if (o->error)
        sqlite3_bind_text(st, 4, o->error, (int)utf8_cut(o->error, CH_STORE_MAX_ERROR_BYTES), SQLITE_STATIC);
    ch_store_bind_text(st, 5, o->error_class);
    ch_store_bind_text(st, 6, o->model);
    sqlite3_bind_int64(st, 7, o->usage.input_tokens);
    sqlite3_bind_int64(st, 8, o->usage.output_tokens);
    sqlite3_bind_int64(st, 9, o->usage.cache_read_tokens);
    sqlite3_bind_int64(st, 10, o->usage.cache_write_tokens);
    sqlite3_bind_double(st, 11, o->usage.cost_usd);
    sqlite3_bind_int64(st, 12, o->finished_ms);
    rc = ch_store_step_done(st);
    sqlite3_reset(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = why_unchanged(db, run_id);
    return rc;
}

int ch_runs_bump_attempts(struct ch_db *db, const char *run_id, int64_t *attempts)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc, src;

    if (!db)
        return CH_EINVAL;
    if ((rc = check_run_id(run_id)))
        return rc;
    rc = ch_db_prepare(db,
                       "UPDATE runs SET attempts = attempts + 1 WHERE run_id = ?1"
                       " RETURNING attempts",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        rc = ch_store_step_done(st);
    } else {
        rc = ch_store_row_err(src);
    }
    sqlite3_finalize(st);
    if (rc == 0 && attempts)
        *attempts = n;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Lists and recovery                                                   */
/* ------------------------------------------------------------------ */

/* Collect rows up to the list cap and CH_STORE_MAX_LOAD_BYTES of payload;
 * with max, at most max rows (the query asks for one more, which sets
 * `more`), each with its position (the rowid as column 20). */
static int collect_runs(sqlite3_stmt *st, size_t max, struct ch_run_list *l)
{
    size_t cap = 0, used = 0, bytes;
    int rc, src;

    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        bytes = (size_t)sqlite3_column_bytes(st, 4) + (size_t)sqlite3_column_bytes(st, 5) +
                (size_t)sqlite3_column_bytes(st, 19);
        if (max && l->count == max) {
            l->more = true;
            return 0;
        }
        if (l->count > 0 && bytes > CH_STORE_MAX_LOAD_BYTES - used) {
            l->truncated = l->more = true;
            return 0;
        }
        rc = ch_store_grow((void **)&l->items, &cap, l->count, sizeof(*l->items));
        if (rc)
            return rc;
        rc = row_to_run(st, &l->items[l->count]);
        if (rc)
            return rc;
        if (max)
            l->next = (struct ch_list_pos){l->items[l->count].created_ms, sqlite3_column_int64(st, 20)};
        l->count++;
        used += bytes;
    }
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

/* Fixed texts for each filter combination (no SQL built from input, and
 * each one can use its own index): [by status][by session], status 0 for
 * none, 1 for one that is not ok, 2 for ok.  runs_status leaves out the
 * runs that ended ok (schema v6): a filter says `status <> 'ok'` to use
 * it, ok goes through runs_created (or runs_session), and its count is
 * all runs (the smallest index) minus the others (runs_status).  Every
 * index ends in the rowid, so (created_ms, rowid) is index order; the
 * position test is written as a range on created_ms for the planner
 * (?5 INT64_MAX: from the newest run). */
#define RUNS_WHERE_0 ""
#define RUNS_WHERE_S " WHERE status = ?1 AND status <> 'ok'"
#define RUNS_WHERE_OK " WHERE status = 'ok'"
#define RUNS_WHERE_K " WHERE session_key = ?2"
#define RUNS_WHERE_SK " WHERE status = ?1 AND status <> 'ok' AND session_key = ?2"
#define RUNS_WHERE_OKK " WHERE status = 'ok' AND session_key = ?2"
#define RUNS_AFTER " created_ms <= ?5 AND (created_ms < ?5 OR rowid < ?6)"
#define RUNS_ORDER " ORDER BY created_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4"
#define RUNS_SELECT(cols, where) "SELECT " cols ", rowid FROM runs" where RUNS_AFTER RUNS_ORDER
static const char *const count_sql[3][2] = {
    {"SELECT COUNT(*) FROM runs" RUNS_WHERE_0, "SELECT COUNT(*) FROM runs" RUNS_WHERE_K},
    {"SELECT COUNT(*) FROM runs" RUNS_WHERE_S, "SELECT COUNT(*) FROM runs" RUNS_WHERE_SK},
    {"SELECT (SELECT COUNT(*) FROM runs) - (SELECT COUNT(*) FROM runs WHERE status <> 'ok')",
     "SELECT COUNT(*) FROM runs" RUNS_WHERE_OKK},
};
#define RUNS_LIST(cols)                                                                                                \
    {                                                                                                                  \
        {RUNS_SELECT(cols, " WHERE"), RUNS_SELECT(cols, RUNS_WHERE_K " AND")},                                         \
            {RUNS_SELECT(cols, RUNS_WHERE_S " AND"), RUNS_SELECT(cols, RUNS_WHERE_SK " AND")},                         \
        {                                                                                                              \
            RUNS_SELECT(cols, RUNS_WHERE_OK " AND"), RUNS_SELECT(cols, RUNS_WHERE_OKK " AND")                          \
        }                                                                                                              \
    }
static const char *const list_sql[2][3][2] = {RUNS_LIST(RUN_COLS_LIGHT), RUNS_LIST(RUN_COLS)};

static void bind_filter(sqlite3_stmt *st, const struct ch_run_query *q)
{
    if (q->status >= 0)
        sqlite3_bind_text(st, 1, status_names[q->status], -1, SQLITE_STATIC);
    if (q->session_key)
        sqlite3_bind_text(st, 2, q->session_key, -1, SQLITE_STATIC);
}

int ch_runs_list_recent(struct ch_db *db, const struct ch_run_query *q, struct ch_run_list *out)
{
    struct ch_run_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t limit;
    int by_status, by_key, rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !q || !out || q->status < -1 || q->status > CH_RUN_TIMEOUT)
        return CH_EINVAL;
    limit = q->limit ? q->limit : DEFAULT_LIST_LIMIT;
    if (limit > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    if ((rc = ch_store_check_text(q->session_key, CH_STORE_MAX_KEY_BYTES, false, false, "session key", NULL, NULL)))
        return rc;
    by_status = q->status < 0 ? 0 : q->status == CH_RUN_OK ? 2 : 1;
    by_key = q->session_key != NULL;
    rc = ch_db_prepare(db, count_sql[by_status][by_key], &st);
    if (rc)
        goto out;
    bind_filter(st, q);
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
        goto out;
    }
    l.total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    rc = ch_db_prepare(db, list_sql[q->with_payloads][by_status][by_key], &st);
    if (rc)
        goto out;
    bind_filter(st, q);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)CH_MIN(q->offset, (size_t)INT64_MAX));
    sqlite3_bind_int64(st, 5, q->after.rowid ? q->after.ms : INT64_MAX);
    sqlite3_bind_int64(st, 6, q->after.rowid);
    rc = collect_runs(st, limit, &l);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_run_list_release(&l);
    else
        *out = l;
    return rc;
}

int ch_runs_list_unfinished(struct ch_db *db, size_t limit, struct ch_run_list *out)
{
    struct ch_run_list l = {0};
    sqlite3_stmt *st = NULL;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || limit == 0)
        return CH_EINVAL;
    if (limit > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    /* Oldest first: replay in the order the runs were accepted (rowid
     * breaks ties between runs accepted in the same millisecond). */
    rc = ch_db_prepare(db,
                       "SELECT " RUN_COLS " FROM runs WHERE status IN ('queued', 'running')"
                       " AND status <> 'ok' ORDER BY created_ms, rowid LIMIT ?1", /* runs_status: v6 */
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    rc = collect_runs(st, 0, &l);
    sqlite3_finalize(st);
    if (rc)
        ch_run_list_release(&l);
    else
        *out = l;
    return rc;
}
