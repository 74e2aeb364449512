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

int ch_usage_add(struct ch_db *db, int64_t at_ms, const char *provider, const char *model, int64_t requests,
                 const struct ch_usage *u)
{
    sqlite3_stmt *st;
    char day[11];
    int rc;

    if (!db || requests < 0 || requests > MAX_REQUESTS_PER_ADD)
        return CH_EINVAL;
    if ((rc = ch_usage_day(at_ms, day)) ||
        (rc = ch_store_check_text(provider, MAX_PROVIDER_BYTES, true, false, "provider", NULL, NULL)) ||
        (rc = ch_store_check_text(model, CH_STORE_MAX_NAME_BYTES, true, false, "model", NULL, NULL)) ||
        (rc = ch_store_check_usage(u)))
        return rc;
    rc = ch_db_stmt(db, CH_STMT_USAGE_ADD,
                    "INSERT INTO usage_daily(day, provider, model, requests, input_tokens,"
                    " output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    " ON CONFLICT(day, provider, model) DO UPDATE SET"
                    " requests = requests + excluded.requests,"
                    " input_tokens = input_tokens + excluded.input_tokens,"
                    " output_tokens = output_tokens + excluded.output_tokens,"
                    " cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,"
                    " cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,"
                    " cost_usd = cost_usd + excluded.cost_usd",
                    &st);
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
    sqlite3_bind_double(st, 9, u->cost_usd);
    rc = ch_store_step_done(st);
    sqlite3_reset(st);
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
