/*
 * store/usage.c: the `usage_daily` table, token and cost sums per UTC day,
 * provider and model (issue 3 item 7; `sessions.usage` and the totals of
 * /health/detail and `chela sessions list`).
 *
 * Each LLM call adds to its row with one upsert, so the table stays at one
 * row per (day, provider, model) however many calls there are, and range
 * queries read a prefix of the primary key.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"

#define MAX_PROVIDER_BYTES 64
/* Far above any real day's call count; keeps sums in int64. */
#define MAX_REQUESTS_PER_ADD ((int64_t)1 << 32)
/* Open ends of a day range: every valid day sorts between them. */
#define DAY_MIN "0000-00-00"
#define DAY_MAX "9999-99-99"

int ch_usage_day(int64_t ms, char out[11])
{
    struct tm tm;
    time_t t;

    if (ms < 0)
        return CH_EINVAL;
    t = (time_t)(ms / 1000);
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
        return CH_EINVAL;
    /* The modulos only tell the compiler the widths; the values fit. */
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u);
    return 0;
}

/* "YYYY-MM-DD" with a plausible month and day (text order = time order). */
static bool day_ok(const char *d)
{
    int i, month, day;

    if (strnlen(d, 11) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return false;
    month = (d[5] - '0') * 10 + (d[6] - '0');
    day = (d[8] - '0') * 10 + (d[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

static int check_range(const char *from_day, const char *to_day)
{
    if ((from_day && !day_ok(from_day)) || (to_day && !day_ok(to_day)))
        return CH_EINVAL;
    return 0;
}

void ch_usage_row_release(struct ch_usage_row *r)
{
    if (!r)
        return;
    ch_free(r->provider);
    ch_free(r->model);
    memset(r, 0, sizeof(*r));
}

void ch_usage_list_release(struct ch_usage_list *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->count; i++)
        ch_usage_row_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* One ch_usage_add made inside a writer batch, not yet written. */
struct ch_usage_note {
    char day[11];
    char provider[MAX_PROVIDER_BYTES + 1];
    char model[CH_STORE_MAX_NAME_BYTES + 1];
    int64_t requests;
    struct ch_usage u;
    bool done; /* written with an earlier note of the same row */
};

static const char sql_usage_add[] = "INSERT INTO usage_daily(day, provider, model, requests, input_tokens,"
                                    " output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)"
                                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                                    " ON CONFLICT(day, provider, model) DO UPDATE SET"
                                    " requests = requests + excluded.requests,"
                                    " input_tokens = input_tokens + excluded.input_tokens,"
                                    " output_tokens = output_tokens + excluded.output_tokens,"
                                    " cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,"
                                    " cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,"
                                    " cost_usd = CASE WHEN ?10 IS NULL THEN cost_usd + excluded.cost_usd ELSE ?10 END";

/* Add to one row.  The counts are added (exact in any order).  The cost
 * is added too, unless `whole` is given: then it is the row's new cost,
 * computed by the batch flush in the order the additions were made. */
static int usage_upsert(struct ch_db *db, const char *day, const char *provider, const char *model, int64_t requests,
                        const struct ch_usage *u, const double *whole)
{
    sqlite3_stmt *st;
    int rc = ch_db_stmt(db, CH_STMT_USAGE_ADD, sql_usage_add, &st);

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, day, 10, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, requests);
    sqlite3_bind_int64(st, 5, u->input_tokens);
    sqlite3_bind_int64(st, 6, u->output_tokens);
    sqlite3_bind_int64(st, 7, u->cache_read_tokens);
    sqlite3_bind_int64(st, 8, u->cache_write_tokens);
    sqlite3_bind_double(st, 9, whole ? *whole : u->cost_usd);
    if (whole)
        sqlite3_bind_double(st, 10, *whole);
    rc = ch_store_step_done(st);
    sqlite3_reset(st);
    return rc;
}

/* In a batch: note the addition; the writer writes it before COMMIT. */
static int note_usage(struct ch_db *db, const char *day, const char *provider, size_t provider_len, const char *model,
                      size_t model_len, int64_t requests, const struct ch_usage *u)
{
    struct ch_usage_note *n;
    size_t cap;

    if (db->usage_count == db->usage_cap) {
        cap = db->usage_cap ? 2 * db->usage_cap : 16;
        n = ch_realloc(db->usage_notes, cap * sizeof(*n));
        if (!n)
            return CH_ENOMEM;
        db->usage_notes = n;
        db->usage_cap = cap;
    }
    n = &db->usage_notes[db->usage_count++];
    memcpy(n->day, day, sizeof(n->day));
    /* Checked lengths: they fit (MAX_PROVIDER_BYTES, CH_STORE_MAX_NAME_BYTES). */
    memcpy(n->provider, provider, provider_len + 1);
    memcpy(n->model, model, model_len + 1);
    n->requests = requests;
    n->u = *u;
    n->done = false;
    return 0;
}

int ch_usage_add(struct ch_db *db, int64_t at_ms, const char *provider, const char *model, int64_t requests,
                 const struct ch_usage *u)
{
    char day[11];
    size_t provider_len, model_len;
    int rc;

    if (!db || requests < 0 || requests > MAX_REQUESTS_PER_ADD)
        return CH_EINVAL;
    if ((rc = ch_usage_day(at_ms, day)) ||
        (rc = ch_store_check_text(provider, MAX_PROVIDER_BYTES, true, false, "provider", &provider_len, NULL)) ||
        (rc = ch_store_check_text(model, CH_STORE_MAX_NAME_BYTES, true, false, "model", &model_len, NULL)) ||
        (rc = ch_store_check_usage(u)))
        return rc;
    if (db->in_batch)
        return note_usage(db, day, provider, provider_len, model, model_len, requests, u);
    return usage_upsert(db, day, provider, model, requests, u, NULL);
}

size_t ch_usage_notes_mark(struct ch_db *db)
{
    return db->usage_count;
}

void ch_usage_notes_undo(struct ch_db *db, size_t mark)
{
    if (mark < db->usage_count)
        db->usage_count = mark;
}

/* The row's stored cost, or false when there is no row yet. */
static int stored_cost(struct ch_db *db, const struct ch_usage_note *n, bool *found, double *cost)
{
    sqlite3_stmt *st;
    int rc = ch_db_stmt(db, CH_STMT_USAGE_COST,
                        "SELECT cost_usd FROM usage_daily WHERE day = ?1 AND provider = ?2 AND model = ?3", &st);
    int src;

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, n->day, 10, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, n->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, n->model, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    *cost = *found ? sqlite3_column_double(st, 0) : 0.0;
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

static bool same_row(const struct ch_usage_note *a, const struct ch_usage_note *b)
{
    return !strcmp(a->day, b->day) && !strcmp(a->provider, b->provider) && !strcmp(a->model, b->model);
}

/*
 * One upsert per row for all the batch's notes.  The cost is added one
 * note at a time onto the stored value, in the order the calls were made:
 * the same double additions, so the same bits, as one upsert per call.
 */
int ch_usage_notes_flush(struct ch_db *db)
{
    struct ch_usage_note *n, *m;
    struct ch_usage sum;
    int64_t requests;
    double cost;
    bool found;
    int rc = 0;

    for (size_t i = 0; i < db->usage_count && rc == 0; i++) {
        n = &db->usage_notes[i];
        if (n->done)
            continue;
        rc = stored_cost(db, n, &found, &cost);
        if (rc)
            break;
        sum = n->u;
        requests = n->requests;
        cost = found ? cost + n->u.cost_usd : n->u.cost_usd;
        for (size_t j = i + 1; j < db->usage_count; j++) {
            m = &db->usage_notes[j];
            if (m->done || !same_row(n, m))
                continue;
            m->done = true;
            requests += m->requests;
            sum.input_tokens += m->u.input_tokens;
            sum.output_tokens += m->u.output_tokens;
            sum.cache_read_tokens += m->u.cache_read_tokens;
            sum.cache_write_tokens += m->u.cache_write_tokens;
            cost += m->u.cost_usd;
        }
        rc = usage_upsert(db, n->day, n->provider, n->model, requests, &sum, &cost);
    }
    db->usage_count = 0;
    return rc;
}

/* The sum columns every query below ends with (read_sums reads them). */
#define USAGE_SUMS                                                                                                     \
    "COALESCE(SUM(requests), 0), COALESCE(SUM(input_tokens), 0),"                                                      \
    " COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0),"                                           \
    " COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(cost_usd), 0.0)"
#define USAGE_RANGE " FROM usage_daily WHERE day >= ?1 AND day <= ?2"

static void read_sums(sqlite3_stmt *st, int c, struct ch_usage_row *r)
{
    r->requests = sqlite3_column_int64(st, c);
    r->usage.input_tokens = sqlite3_column_int64(st, c + 1);
    r->usage.output_tokens = sqlite3_column_int64(st, c + 2);
    r->usage.cache_read_tokens = sqlite3_column_int64(st, c + 3);
    r->usage.cache_write_tokens = sqlite3_column_int64(st, c + 4);
    r->usage.cost_usd = sqlite3_column_double(st, c + 5);
}

static void bind_range(sqlite3_stmt *st, const char *from_day, const char *to_day)
{
    sqlite3_bind_text(st, 1, from_day ? from_day : DAY_MIN, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, to_day ? to_day : DAY_MAX, -1, SQLITE_STATIC);
}

int ch_usage_totals(struct ch_db *db, const char *from_day, const char *to_day, struct ch_usage_row *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_range(from_day, to_day)))
        return rc;
    rc = ch_db_prepare(db, "SELECT " USAGE_SUMS USAGE_RANGE, &st);
    if (rc)
        return rc;
    bind_range(st, from_day, to_day);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        read_sums(st, 0, out);
    rc = src == SQLITE_ROW ? 0 : ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
    sqlite3_finalize(st);
    return rc;
}

static const char *const group_sql[] = {
    [CH_USAGE_BY_DAY] = "SELECT day, NULL, NULL, " USAGE_SUMS USAGE_RANGE " GROUP BY day ORDER BY day",
    [CH_USAGE_BY_MODEL] =
        "SELECT '', provider, model, " USAGE_SUMS USAGE_RANGE " GROUP BY provider, model ORDER BY provider, model",
    [CH_USAGE_BY_DAY_MODEL] = "SELECT day, provider, model, " USAGE_SUMS USAGE_RANGE
                              " GROUP BY day, provider, model ORDER BY day, provider, model",
};

int ch_usage_query(struct ch_db *db, const char *from_day, const char *to_day, enum ch_usage_group group,
                   struct ch_usage_list *out)
{
    struct ch_usage_list l = {0};
    struct ch_usage_row *r;
    sqlite3_stmt *st = NULL;
    const unsigned char *day;
    size_t cap = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || (unsigned)group >= CH_ARRAY_SIZE(group_sql))
        return CH_EINVAL;
    if ((rc = check_range(from_day, to_day)))
        return rc;
    rc = ch_db_prepare(db, group_sql[group], &st);
    if (rc)
        return rc;
    bind_range(st, from_day, to_day);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        /* Past the cap the caller should narrow the range, not get a
         * silently partial report. */
        rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items));
        if (rc)
            goto out;
        r = &l.items[l.count];
        memset(r, 0, sizeof(*r));
        day = sqlite3_column_text(st, 0);
        if (day)
            memcpy(r->day, day, strnlen((const char *)day, sizeof(r->day) - 1));
        if ((rc = ch_store_col_dup(st, 1, &r->provider)) || (rc = ch_store_col_dup(st, 2, &r->model))) {
            ch_usage_row_release(r);
            goto out;
        }
        read_sums(st, 3, r);
        l.count++;
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_usage_list_release(&l);
    else
        *out = l;
    return rc;
}
