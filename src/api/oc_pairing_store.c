/*
 * oc_pairing_store.c: the device pairing registry's link to the store
 * (issue #5): the load at start (one pool read; until it answers, device
 * connects are told the gateway is starting) and the write-through jobs, one per change,
 * which the store's single writer applies in submission order.  A failed
 * write is logged; memory stays the gateway's truth until the next start.
 */
#include <string.h>

#include "api/oc_internal.h"

/* ---- write-through ---- */

enum { JOB_PUT_DEVICE, JOB_DEL_DEVICE, JOB_PUT_REQUEST, JOB_DEL_REQUEST, JOB_PRUNE };

struct pair_job {
    struct ch_store_job job;
    int kind;
    struct ch_device_rec dev;
    struct ch_device_request_rec req;
    char *id;
    int64_t before_ms;
};

static int job_run(struct ch_db *db, struct ch_store_job *job)
{
    struct pair_job *j = (struct pair_job *)job;
    int rc = 0;

    switch (j->kind) {
    case JOB_PUT_DEVICE: rc = ch_devices_put(db, &j->dev, NULL); break;
    case JOB_DEL_DEVICE: rc = ch_devices_delete(db, j->id); break;
    case JOB_PUT_REQUEST: rc = ch_device_requests_put(db, &j->req, NULL); break;
    case JOB_DEL_REQUEST: rc = ch_device_requests_delete(db, j->id); break;
    case JOB_PRUNE: rc = ch_device_requests_prune(db, j->before_ms, NULL); break;
    }
    return rc == CH_ENOTFOUND ? 0 : rc;
}

static void job_free(struct pair_job *j)
{
    ch_device_rec_release(&j->dev);
    ch_device_request_rec_release(&j->req);
    ch_free(j->id);
    ch_free(j);
}

static void job_done(struct ch_store_job *job, int rc)
{
    if (rc && rc != CH_ECANCELED)
        ch_log_warn("device pairing: store write failed: %s (memory and store differ until the next change)",
                    ch_strerror(rc));
    job_free((struct pair_job *)job);
}

static void submit(struct oc_pairing *p, struct pair_job *j, int rc)
{
    struct ch_store *s = p->oc->api->store;

    if (rc == 0 && s) {
        j->job.run = job_run;
        j->job.done = job_done;
        rc = ch_store_write(s, &j->job);
        if (rc == 0)
            return;
    }
    if (rc && s)
        ch_log_warn("device pairing: cannot queue a store write: %s", ch_strerror(rc));
    if (j)
        job_free(j);
}

static struct pair_job *job_new(int kind)
{
    struct pair_job *j = ch_calloc(1, sizeof(*j));
    if (j)
        j->kind = kind;
    return j;
}

void ch_oc_pairing_save_device(struct oc_pairing *p, const struct ch_device_rec *d)
{
    struct pair_job *j = p->oc->api->store ? job_new(JOB_PUT_DEVICE) : NULL;
    submit(p, j, j ? ch_device_rec_copy(&j->dev, d) : CH_ENOMEM);
}

void ch_oc_pairing_save_request(struct oc_pairing *p, const struct ch_device_request_rec *r)
{
    struct pair_job *j = p->oc->api->store ? job_new(JOB_PUT_REQUEST) : NULL;
    submit(p, j, j ? ch_device_request_rec_copy(&j->req, r) : CH_ENOMEM);
}

void ch_oc_pairing_delete(struct oc_pairing *p, const char *device_id, const char *request_id)
{
    struct pair_job *j = p->oc->api->store ? job_new(device_id ? JOB_DEL_DEVICE : JOB_DEL_REQUEST) : NULL;
    if (j)
        j->id = ch_strdup(device_id ? device_id : request_id);
    submit(p, j, j && j->id ? 0 : CH_ENOMEM);
}

/* ---- lifecycle ---- */

/* The load: a pool read at start.  Until it answers the registry is not
 * `loaded` and device connects get the reference's startup answer. */
struct load_job {
    struct ch_store_job job;
    struct oc_pairing *p; /* NULL once the registry is freed first */
    int64_t now_ms;
    struct ch_device_list devices;
    struct ch_device_request_list pending;
};

static int load_run(struct ch_db *db, struct ch_store_job *job)
{
    struct load_job *l = (struct load_job *)job;
    int rc = ch_devices_list(db, &l->devices);

    return rc ? rc : ch_device_requests_list(db, l->now_ms - OC_PAIR_PENDING_TTL_MS, &l->pending);
}

bool ch_oc_pairing_park(struct oc_conn *c, json_t *frame)
{
    struct oc_pairing *p = c->oc->pairing;
    const json_t *params = json_object_get(frame, "params");

    if (!p || p->loaded || !json_object_get(params, "device") || p->n_parked >= OC_PAIR_PARKED_MAX)
        return false;
    ch_oc_conn_ref(c);
    p->parked[p->n_parked].c = c;
    p->parked[p->n_parked].frame = json_incref(frame);
    p->n_parked++;
    c->parked = true;
    return true;
}

/* Replay (or, when the registry is going away, just let go of) the
 * connects that waited for the load. */
static void unpark(struct oc_pairing *p, bool replay);

void ch_oc_pairing_replay(struct oc_pairing *p)
{
    unpark(p, true);
}

static void unpark(struct oc_pairing *p, bool replay)
{
    size_t n = p->n_parked;
    struct oc_parked lot[OC_PAIR_PARKED_MAX];

    memcpy(lot, p->parked, n * sizeof(lot[0]));
    p->n_parked = 0;
    for (size_t i = 0; i < n; i++) {
        lot[i].c->parked = false;
        if (replay && ch_oc_conn_is_open(lot[i].c) && lot[i].c->state == OC_CHALLENGED)
            ch_oc_connect_frame(lot[i].c, lot[i].frame);
        json_decref(lot[i].frame);
        ch_oc_conn_unref(lot[i].c);
    }
}

static void load_done(struct ch_store_job *job, int rc)
{
    struct load_job *l = (struct load_job *)job;
    struct oc_pairing *p = l->p;
    struct pair_job *j;

    if (p) {
        p->load = NULL;
        p->loaded = true;
        if (rc == 0) {
            p->devices = l->devices;
            p->pending = l->pending;
            p->devices_cap = p->devices.count;
            p->pending_cap = p->pending.count;
            memset(&l->devices, 0, sizeof(l->devices));
            memset(&l->pending, 0, sizeof(l->pending));
            if (p->devices.count || p->pending.count)
                ch_log_info("device pairing: %zu paired devices, %zu pending requests", p->devices.count,
                            p->pending.count);
            j = job_new(JOB_PRUNE); /* expired requests of earlier runs */
            if (j)
                j->before_ms = l->now_ms - OC_PAIR_PENDING_TTL_MS;
            submit(p, j, j ? 0 : CH_ENOMEM);
        } else if (rc != CH_ECANCELED) {
            /* Devices paired earlier look unpaired (and must pair again);
             * the gateway itself keeps working. */
            ch_log_error("device pairing: cannot read paired devices: %s; starting with none", ch_strerror(rc));
        }
        ch_oc_pairing_replay(p);
    }
    ch_device_list_release(&l->devices);
    ch_device_request_list_release(&l->pending);
    ch_free(l);
}

int ch_oc_pairing_start(struct ch_oc *oc)
{
    struct ch_store *s = oc->api->store;
    struct oc_pairing *p;
    struct load_job *l;

    p = ch_calloc(1, sizeof(*p));
    if (!p)
        return CH_ENOMEM;
    p->oc = oc;
    oc->pairing = p;
    if (!s) {
        p->loaded = true; /* memory only (tests, the fuzzer) */
        return 0;
    }
    /* Asynchronous: the loop thread never reads SQLite, and the gateway
     * does not wait for this to start listening. */
    l = ch_calloc(1, sizeof(*l));
    if (!l)
        return CH_ENOMEM;
    l->p = p;
    l->now_ms = ch_now_ms();
    l->job.run = load_run;
    l->job.done = load_done;
    if (ch_store_read(s, &l->job) != 0) {
        ch_free(l);
        p->loaded = true;
        ch_log_error("device pairing: cannot queue the load of paired devices; starting with none");
        return 0;
    }
    p->load = l;
    return 0;
}

void ch_oc_pairing_free(struct ch_oc *oc)
{
    struct oc_pairing *p = oc ? oc->pairing : NULL;

    if (!p)
        return;
    if (p->load)
        p->load->p = NULL; /* its done frees it alone */
    unpark(p, false);
    ch_device_list_release(&p->devices);
    ch_device_request_list_release(&p->pending);
    ch_free(p);
    oc->pairing = NULL;
}
