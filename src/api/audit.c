/*
 * audit.c: one audit row per authenticated request, collected on the loop
 * and handed to the store's writer thread as one job per loop iteration
 * (group commit), so auditing costs a memcpy per request on the loop.
 * When the writer's queue is full the batch is dropped and counted
 * (chela_audit_dropped_total): auditing must not stall serving.
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

static void audit_done(struct ch_store_job *job, int rc)
{
    struct audit_job *aj = (struct audit_job *)job;
    if (rc == 0)
        aj->api->metrics.audit_written += aj->n;
    else
        aj->api->metrics.audit_dropped += aj->n;
    ch_free(aj);
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
        ch_audit_flush(a);
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
    rec->status = r->status;
    rec->latency_us = (int64_t)(latency_ns / 1000);
}

void ch_audit_flush(void *api)
{
    struct ch_api *a = api;
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
    if (ch_store_write(a->store, &aj->job) != 0) {
        a->metrics.audit_dropped += aj->n;
        ch_free(aj);
    }
}
