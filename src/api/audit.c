/*
 * audit.c: one audit row per authenticated request, collected on the loop
 * (a memcpy per request) and handed to the store's writer thread in
 * batches: at most one audit job is in flight, queued lazily (it does not
 * wake the writer; it commits with the next batch or within
 * CH_STORE_LAZY_MS), and rows arriving meanwhile wait for the next one.
 * A full buffer is handed over at once; ch_api_stop flushes the rest and
 * the store's close commits it.  A crash loses at most the rows of the
 * last few milliseconds.  When the writer's queue is full the batch is
 * dropped and counted (chela_audit_dropped_total): auditing must not
 * stall serving.
 */
#include <string.h>

#include "api/internal.h"

/* The job carries exactly the rows it writes (flexible array). */
struct audit_job {
    struct ch_store_job job;
    struct ch_api *api;
    size_t n;
    struct ch_audit_rec recs[];
};

static int audit_run(struct ch_db *db, struct ch_store_job *job)
{
    struct audit_job *aj = (struct audit_job *)job;
    return ch_audit_insert(db, aj->recs, aj->n);
}

static void submit(struct ch_api *a);

static void audit_done(struct ch_store_job *job, int rc)
{
    struct audit_job *aj = (struct audit_job *)job;
    struct ch_api *a = aj->api;

    if (rc == 0)
        a->metrics.audit_written += aj->n;
    else
        a->metrics.audit_dropped += aj->n;
    if (a->audit->inflight > 0)
        a->audit->inflight--;
    ch_free(aj);
    /* Rows that waited for this job go now; an idle loop might not run
     * another flush hook soon. */
    ch_audit_flush(a);
}

static void copy_str(char *dst, size_t cap, const char *p, size_t n)
{
    n = CH_MIN(n, cap - 1);
    memcpy(dst, p, n);
    dst[n] = '\0';
}

void ch_audit_record(struct ch_api *a, const struct ch_http_req *r, uint64_t latency_ns)
{
    struct ch_audit_rec *rec;

    if (a->audit->n == CH_AUDIT_BATCH)
        submit(a); /* full: do not wait for the job in flight */
    if (a->audit->n == CH_AUDIT_BATCH) {
        a->metrics.audit_dropped++;
        return;
    }
    rec = &a->audit->recs[a->audit->n++];
    rec->ts_ms = ch_now_ms();
    copy_str(rec->request_id, sizeof(rec->request_id), r->request_id, strlen(r->request_id));
    copy_str(rec->token_name, sizeof(rec->token_name), r->token_name, strlen(r->token_name));
    copy_str(rec->address, sizeof(rec->address), r->remote_addr, strlen(r->remote_addr));
    copy_str(rec->method, sizeof(rec->method), r->method_name, strlen(r->method_name));
    copy_str(rec->path, sizeof(rec->path), r->path.p, r->path.len);
    /* The same masking as the access log: a path may hold a secret
     * (DELETE /api/v1/tokens/oc_tok_...), and audit rows are readable. */
    ch_log_mask(rec->path, strlen(rec->path));
    rec->status = r->status;
    rec->latency_us = (int64_t)(latency_ns / 1000);
}

/* Hand every pending row to the writer as one lazy job. */
static void submit(struct ch_api *a)
{
    struct audit_job *aj;

    if (!a->audit->n || !a->store || a->stopped)
        return;
    aj = ch_malloc(sizeof(*aj) + a->audit->n * sizeof(aj->recs[0]));
    if (!aj) {
        a->metrics.audit_dropped += a->audit->n;
        a->audit->n = 0;
        return;
    }
    memset(&aj->job, 0, sizeof(aj->job));
    aj->api = a;
    aj->job.run = audit_run;
    aj->job.done = audit_done;
    aj->n = a->audit->n;
    memcpy(aj->recs, a->audit->recs, a->audit->n * sizeof(aj->recs[0]));
    a->audit->n = 0;
    if (ch_store_write_lazy(a->store, &aj->job) != 0) {
        a->metrics.audit_dropped += aj->n;
        ch_free(aj);
        return;
    }
    a->audit->inflight++;
}

/* The net flush hook (every loop iteration) and ch_api_stop.  While a job
 * is in flight rows accumulate, so a busy gateway writes one job per
 * commit instead of one per loop iteration; a shutdown hands over all. */
void ch_audit_flush(void *api)
{
    struct ch_api *a = api;

    if (a->audit->inflight > 0 && !a->shutting_down)
        return;
    submit(a);
}
