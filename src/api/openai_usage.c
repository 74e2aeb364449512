/*
 * openai_usage.c: token usage and cost of the /v1 pass-through calls
 * (chat completions and responses), summed per provider and model.
 */
#include <string.h>

#include "api/openai.h"

/*
 * Usage of pass-through calls is summed in memory per (provider, model)
 * and written once a second (ch_openai_flush_usage, from the api tick and
 * at stop): one store job per second instead of one per request, which
 * otherwise costs a writer-thread wake-up and a transaction per call.
 */
struct usage_row {
    char *provider, *model; /* owned */
    int64_t requests;
    struct ch_usage u;
};

struct usage_job {
    struct ch_store_job job;
    size_t n;
    struct usage_row *rows; /* owned */
};

static void usage_rows_free(struct usage_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ch_free(rows[i].provider);
        ch_free(rows[i].model);
    }
    ch_free(rows);
}

static int usage_run(struct ch_db *db, struct ch_store_job *job)
{
    struct usage_job *uj = (struct usage_job *)job;
    int64_t now = ch_now_ms();
    int rc = 0;

    for (size_t i = 0; i < uj->n && rc == 0; i++)
        rc = ch_usage_add(db, now, uj->rows[i].provider, uj->rows[i].model, uj->rows[i].requests, &uj->rows[i].u);
    return rc;
}

static void usage_done(struct ch_store_job *job, int rc)
{
    struct usage_job *uj = (struct usage_job *)job;

    if (rc)
        ch_log_warn("openai: saving usage failed: %s", ch_strerror(rc));
    usage_rows_free(uj->rows, uj->n);
    ch_free(uj);
}

void ch_openai_flush_usage(struct ch_api *a)
{
    struct ch_map_entry *me;
    struct usage_job *uj;
    size_t it = 0, n = a->pt_rows.count, i = 0;

    if (!n || !a->store)
        return;
    uj = ch_calloc(1, sizeof(*uj));
    if (uj)
        uj->rows = ch_calloc(n, sizeof(*uj->rows));
    while ((me = ch_map_next(&a->pt_rows, &it)) != NULL) {
        struct usage_row *row = me->value;
        if (uj && uj->rows && i < n)
            uj->rows[i++] = *row; /* the job takes the strings */
        else {
            ch_free(row->provider);
            ch_free(row->model);
        }
        ch_free(row);
    }
    ch_map_release(&a->pt_rows);
    ch_map_init(&a->pt_rows);
    if (!uj || !uj->rows) {
        ch_free(uj);
        return;
    }
    uj->n = i;
    uj->job.run = usage_run;
    uj->job.done = usage_done;
    if (ch_store_write(a->store, &uj->job) != 0) {
        ch_log_warn("openai: store queue full; %zu usage rows dropped", uj->n);
        usage_rows_free(uj->rows, uj->n);
        ch_free(uj);
    }
}

void ch_openai_release(struct ch_api *a)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while ((me = ch_map_next(&a->pt_rows, &it)) != NULL) {
        struct usage_row *row = me->value;
        ch_free(row->provider);
        ch_free(row->model);
        ch_free(row);
    }
    ch_map_release(&a->pt_rows);
}

void ch_openai_record_usage(struct ch_api *a, const struct ch_llm_result *res)
{
    struct usage_row *row;
    char key[400];
    int kn;

    ch_llm_usage_add(&a->pt_usage, &res->usage);
    a->pt_cost_usd += res->cost_usd;
    if (!res->provider || !*res->provider || !res->model || !*res->model || !a->store)
        return;
    kn = snprintf(key, sizeof(key), "%.64s/%.256s", res->provider, res->model);
    row = ch_map_get(&a->pt_rows, key, (size_t)kn);
    if (!row) {
        /* Bounded: the catalog's models; past 1000 keys the tick flushes first. */
        if (a->pt_rows.count >= 1000)
            ch_openai_flush_usage(a);
        row = ch_calloc(1, sizeof(*row));
        if (!row)
            return;
        row->provider = ch_strdup(res->provider);
        row->model = ch_strdup(res->model);
        if (!row->provider || !row->model || ch_map_set(&a->pt_rows, key, (size_t)kn, row, NULL) != 0) {
            ch_free(row->provider);
            ch_free(row->model);
            ch_free(row);
            return;
        }
    }
    row->requests++;
    /* Saturated: an upstream's absurd counts must not overflow the sums. */
    row->u.input_tokens = ch_oa_tokens_add(row->u.input_tokens, ch_oa_tokens(res->usage.input_tokens));
    row->u.output_tokens = ch_oa_tokens_add(row->u.output_tokens, ch_oa_tokens(res->usage.output_tokens));
    row->u.cache_read_tokens = ch_oa_tokens_add(row->u.cache_read_tokens, ch_oa_tokens(res->usage.cache_read_tokens));
    row->u.cache_write_tokens =
        ch_oa_tokens_add(row->u.cache_write_tokens, ch_oa_tokens(res->usage.cache_write_tokens));
    row->u.cost_usd += res->cost_usd;
}
