/*
 * rest_deliveries.c: the REST face of the outbox (admin scope):
 *   GET    /api/v1/deliveries[?status=pending|sending|done|dead&runId=&limit=&cursor=]
 *   GET    /api/v1/deliveries/:id          one delivery, with its body
 *   POST   /api/v1/deliveries/:id/retry    dead: a fresh budget; pending: due now
 *   GET    /api/v1/webhooks                REST-created and configured webhooks
 *   POST   /api/v1/webhooks                {url, events?, secret?, headers?, retry?, description?}
 *   DELETE /api/v1/webhooks/:id
 * Each handler queues one store job holding a reference on the request
 * and answers from its completion.  Secrets are never echoed, except a
 * new webhook's, once, in the 201; header values are never echoed either
 * (they may carry a Bearer token): only their names.
 */
#include <string.h>

#include "api/outbox_int.h"

#define MAX_RETRY_ATTEMPTS 20
#define MIN_BACKOFF_MS 10
#define MIN_SECRET_BYTES 8

struct dl_job {
    struct ch_store_job job;
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held */
    char *id;                /* owned: get, retry, webhook delete */
    int status;              /* list filter, or -1 */
    char *run_id;            /* owned: list filter */
    size_t limit, offset;
    struct ch_delivery_list list;
    struct ch_delivery_rec rec;
    int64_t counts[4];
    struct ch_webhook_rec wh;   /* create */
    struct ch_webhook_list whs; /* list; the table after create/delete */
    uint64_t token;             /* list: ch_webhooks_read_token */
    struct ch_error err;
};

static void job_free(struct dl_job *j)
{
    ch_http_req_unref(j->req);
    ch_free(j->id);
    ch_free(j->run_id);
    ch_delivery_list_release(&j->list);
    ch_delivery_rec_release(&j->rec);
    ch_webhook_rec_release(&j->wh);
    ch_webhook_list_release(&j->whs);
    ch_free(j);
}

static struct dl_job *job_new(struct ch_http_req *r, void *api, ch_store_job_run_cb run, ch_store_job_done_cb done)
{
    struct dl_job *j = ch_calloc(1, sizeof(*j));

    if (!j) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    j->api = api;
    j->req = r;
    j->status = -1;
    j->job.run = run;
    j->job.done = done;
    ch_http_req_ref(r);
    return j;
}

/* Queue j; on failure 503 answered, j freed and nonzero returned. */
static int submit(struct dl_job *j, bool write)
{
    int rc = write ? ch_store_write(j->api->store, &j->job) : ch_store_read(j->api->store, &j->job);

    if (rc) {
        ch_http_respond_error(j->req, 503, "store_busy", "the store cannot take the request now; retry shortly");
        job_free(j);
    }
    return rc;
}

/* The id path parameter into j->id (400 answered on failure). */
static struct dl_job *job_with_id(struct ch_http_req *r, void *api, ch_store_job_run_cb run, ch_store_job_done_cb done)
{
    char id[CH_STORE_MAX_ID_BYTES + 1];
    struct dl_job *j;

    if (ch_api_path_param(r, 0, id, sizeof(id)) != 0)
        return NULL;
    if (!(j = job_new(r, api, run, done)))
        return NULL;
    if (!(j->id = ch_strdup(id))) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return NULL;
    }
    return j;
}

/* Names of a stored headers object, as a JSON array (values withheld). */
static json_t *header_names(const char *headers)
{
    json_t *o = headers ? json_loads(headers, 0, NULL) : NULL, *arr = json_array(), *v;
    const char *k;

    json_object_foreach(o, k, v)
    {
        json_array_append_new(arr, json_string(k));
    }
    json_decref(o);
    return arr;
}

static json_t *delivery_json(const struct ch_delivery_rec *d, bool with_body)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_string(d->id));
    json_object_set_new(o, "kind", json_string(d->kind));
    json_object_set_new(o, "runId", d->run_id ? json_string(d->run_id) : json_null());
    json_object_set_new(o, "event", d->event ? json_string(d->event) : json_null());
    json_object_set_new(o, "webhookId", d->webhook_id ? json_string(d->webhook_id) : json_null());
    json_object_set_new(o, "url", json_string(d->url));
    json_object_set_new(o, "status", json_string(ch_delivery_status_name(d->status)));
    json_object_set_new(o, "attempts", json_integer(d->attempts));
    json_object_set_new(o, "maxAttempts", json_integer(d->max_attempts));
    json_object_set_new(o, "lastStatus", d->last_status ? json_integer(d->last_status) : json_null());
    json_object_set_new(o, "lastError", d->last_error ? json_string(d->last_error) : json_null());
    json_object_set_new(o, "nextAttemptAt",
                        ch_api_time_json(d->status == CH_DELIVERY_PENDING ? d->next_attempt_ms : 0));
    json_object_set_new(o, "createdAt", ch_api_time_json(d->created_ms));
    json_object_set_new(o, "updatedAt", ch_api_time_json(d->updated_ms));
    json_object_set_new(o, "deliveredAt", ch_api_time_json(d->delivered_ms));
    json_object_set_new(o, "contentType", json_string(d->content_type));
    json_object_set_new(o, "bodyBytes", json_integer((json_int_t)d->body_len));
    json_object_set_new(o, "signed", json_boolean(d->has_secret));
    json_object_set_new(o, "headers", header_names(d->headers));
    if (with_body) {
        /* A body that is not UTF-8 cannot be a JSON string: null. */
        json_t *b = d->body ? json_stringn(d->body, d->body_len) : NULL;
        json_object_set_new(o, "body", b ? b : json_null());
    }
    return o;
}

/* ---- GET /api/v1/deliveries ---- */

static int list_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dl_job *j = (struct dl_job *)job;
    struct ch_delivery_query q = {j->limit, j->offset, j->status, j->run_id};
    int rc = ch_deliveries_list(db, &q, &j->list);

    return rc ? rc : ch_deliveries_count(db, j->counts);
}

static void list_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;
    json_t *arr, *o;
    char cur[24];

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_EINVAL) { /* a filter the store refuses is the caller's */
        ch_http_respond_error(j->req, 400, "invalid_request", "invalid filter: %s", ch_strerror(rc));
        goto out;
    }
    if (rc) {
        ch_http_respond_error(j->req, 500, "store_error", "listing deliveries failed: %s", ch_strerror(rc));
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(arr, delivery_json(&j->list.items[i], false));
    snprintf(cur, sizeof(cur), "%zu", j->offset + j->list.count);
    o = json_pack("{s:o, s:I, s:{s:I, s:I, s:I, s:I}}", "deliveries", arr, "total", (json_int_t)j->list.total, "counts",
                  "pending", (json_int_t)j->counts[0], "sending", (json_int_t)j->counts[1], "done",
                  (json_int_t)j->counts[2], "dead", (json_int_t)j->counts[3]);
    if (o)
        json_object_set_new(o, "nextCursor",
                            j->offset + j->list.count < (size_t)j->list.total ? json_string(cur) : json_null());
    ch_http_respond_json(j->req, o ? 200 : 500, o ? o : json_pack("{s:s}", "error", "internal"));
out:
    job_free(j);
}

/* A run id as the store keeps them: printable, at most
 * CH_STORE_MAX_ID_BYTES (the store refuses anything else with CH_EINVAL). */
static bool run_id_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

void ch_rest_deliveries_list(struct ch_http_req *r, void *data)
{
    char status[16], run_id[CH_STORE_MAX_ID_BYTES + 1];
    enum ch_delivery_status st;
    size_t limit, offset;
    struct dl_job *j;
    int rc, rrc;

    if (ch_api_page_query(r, 50, &limit, &offset) != 0)
        return;
    rc = ch_http_req_query(r, "status", status, sizeof(status));
    if ((rc == 0 && ch_delivery_status_parse(status, &st) != 0) || (rc != 0 && rc != CH_ENOTFOUND)) {
        ch_http_respond_error(r, 400, "invalid_request", "status must be pending, sending, done or dead");
        return;
    }
    rrc = ch_http_req_query(r, "runId", run_id, sizeof(run_id));
    if (rrc != 0 && rrc != CH_ENOTFOUND) {
        ch_http_respond_error(r, 400, "invalid_request", "runId must be at most %d bytes", CH_STORE_MAX_ID_BYTES);
        return;
    }
    if (rrc == 0 && !run_id_ok(run_id)) {
        ch_http_respond_error(r, 400, "invalid_request", "runId contains control characters");
        return;
    }
    if (!(j = job_new(r, data, list_run, list_done)))
        return;
    j->status = rc == 0 ? (int)st : -1;
    j->limit = limit;
    j->offset = offset;
    if (rrc == 0 && run_id[0] && !(j->run_id = ch_strdup(run_id))) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return;
    }
    submit(j, false);
}

/* ---- GET /api/v1/deliveries/:id ---- */

static int get_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dl_job *j = (struct dl_job *)job;
    return ch_deliveries_get(db, j->id, &j->rec);
}

static void get_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND || rc == CH_EINVAL)
        ch_http_respond_error(j->req, 404, "not_found", "no delivery '%s'", j->id);
    else if (rc)
        ch_http_respond_error(j->req, 500, "store_error", "reading the delivery failed: %s", ch_strerror(rc));
    else
        ch_http_respond_json(j->req, 200, delivery_json(&j->rec, true));
out:
    job_free(j);
}

void ch_rest_deliveries_get(struct ch_http_req *r, void *data)
{
    struct dl_job *j = job_with_id(r, data, get_run, get_done);

    if (j)
        submit(j, false);
}

/* ---- POST /api/v1/deliveries/:id/retry ---- */

static int retry_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dl_job *j = (struct dl_job *)job;
    int rc = ch_deliveries_retry(db, j->id, ch_now_ms(), &j->rec);

    if (rc == CH_ESTATE) /* say which state refused it */
        ch_deliveries_get(db, j->id, &j->rec);
    return rc;
}

static void retry_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;
    struct ch_outbox *ob = j->api->outbox;

    if (rc == 0 && ob) {
        ob->stats.manual_retries++;
        ch_log_info("outbox: delivery %s queued again by a manual retry", j->id);
        ch_outbox_kick(ob);
    }
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND || rc == CH_EINVAL)
        ch_http_respond_error(j->req, 404, "not_found", "no delivery '%s'", j->id);
    else if (rc == CH_ESTATE)
        ch_http_respond_error(j->req, 409, "conflict", "delivery '%s' is %s; only dead or pending ones can be retried",
                              j->id, j->rec.id ? ch_delivery_status_name(j->rec.status) : "not retryable");
    else if (rc)
        ch_http_respond_error(j->req, 500, "store_error", "retrying failed: %s", ch_strerror(rc));
    else
        ch_http_respond_json(j->req, 200, json_pack("{s:b, s:o}", "ok", 1, "delivery", delivery_json(&j->rec, false)));
out:
    job_free(j);
}

void ch_rest_deliveries_retry(struct ch_http_req *r, void *data)
{
    struct dl_job *j = job_with_id(r, data, retry_run, retry_done);

    if (j)
        submit(j, true);
}

/* ---- webhooks: shapes ---- */

static json_t *webhook_json(const struct ch_webhook_rec *w)
{
    json_t *ev = json_loads(w->events ? w->events : "[]", 0, NULL);

    return json_pack("{s:s, s:s, s:o, s:o, s:{s:I, s:I}, s:s?, s:o, s:b, s:s}", "id", w->id, "url", w->url, "events",
                     ev ? ev : json_array(), "headers", header_names(w->headers), "retry", "maxAttempts",
                     (json_int_t)w->max_attempts, "backoffMs", (json_int_t)w->backoff_ms, "description", w->description,
                     "createdAt", ch_api_time_json(w->created_ms), "signed", 1, "source", "api");
}

/* The configured webhooks as the listing shows them (no secrets). */
static void append_configured(struct ch_api *a, json_t *arr)
{
    const json_t *list = ch_config_get(a->cfg, "api.webhooks.outgoing"), *w, *ev, *retry;
    char id[32];
    size_t i;

    json_array_foreach(list, i, w)
    {
        const char *secret = json_string_value(json_object_get(w, "secret"));
        const json_t *h = json_object_get(w, "headers");
        json_t *names = json_array(), *v;
        const char *k;

        json_object_foreach((json_t *)h, k, v)
        {
            json_array_append_new(names, json_string(k));
        }
        snprintf(id, sizeof(id), "cfg:%zu", i);
        ev = json_object_get(w, "events");
        retry = json_object_get(w, "retry");
        json_array_append_new(arr, json_pack("{s:s, s:s?, s:o, s:o, s:{s:I, s:I}, s:b, s:s}", "id", id, "url",
                                             json_string_value(json_object_get(w, "url")), "events",
                                             ev ? json_incref((json_t *)ev) : json_array(), "headers", names, "retry",
                                             "maxAttempts", json_integer_value(json_object_get(retry, "maxAttempts")),
                                             "backoffMs", json_integer_value(json_object_get(retry, "backoffMs")),
                                             "signed", secret && *secret, "source", "config"));
    }
}

/* ---- GET /api/v1/webhooks ---- */

static int wh_list_run(struct ch_db *db, struct ch_store_job *job)
{
    return ch_webhooks_list(db, false, &((struct dl_job *)job)->whs);
}

static void wh_list_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;
    json_t *arr;

    if (rc == 0 && j->api->outbox)
        ch_webhooks_read_apply(j->api->outbox, j->token, &j->whs);
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc) {
        ch_http_respond_error(j->req, 500, "store_error", "listing webhooks failed: %s", ch_strerror(rc));
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < j->whs.count; i++)
        json_array_append_new(arr, webhook_json(&j->whs.items[i]));
    append_configured(j->api, arr);
    ch_http_respond_json(j->req, 200, json_pack("{s:o}", "webhooks", arr));
out:
    job_free(j);
}

void ch_rest_webhooks_list(struct ch_http_req *r, void *data)
{
    struct dl_job *j = job_new(r, data, wh_list_run, wh_list_done);

    if (!j)
        return;
    j->token = j->api->outbox ? ch_webhooks_read_token(j->api->outbox) : 0;
    submit(j, false);
}

/* ---- POST /api/v1/webhooks ---- */

static int wh_create_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dl_job *j = (struct dl_job *)job;
    int rc = ch_webhooks_insert(db, &j->wh, &j->err);

    /* The table as it is now, for the loop's event mask. */
    return rc ? rc : ch_webhooks_list(db, false, &j->whs);
}

static void wh_create_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;
    char where[160];
    json_t *o;

    if (j->api->outbox)
        ch_webhooks_write_end(j->api->outbox, rc == 0 ? &j->whs : NULL);
    if (rc == 0) { /* the URL may carry credentials: never logged whole */
        ch_url_for_log(j->wh.url, where, sizeof(where));
        ch_log_info("webhooks: created %s for %s", j->wh.id, where);
    }
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_E_TOO_LARGE) { /* store/webhooks.c: only the count cap */
        ch_http_respond_error(j->req, 409, "too_many_webhooks", "%s", j->err.msg);
        goto out;
    }
    if (rc == CH_EINVAL) { /* the store's own checks: a control byte in the secret or description */
        ch_http_respond_error(j->req, 400, "invalid_request", "%s", j->err.msg);
        goto out;
    }
    if (rc) {
        ch_http_respond_error(j->req, 500, "store_error", "creating the webhook failed: %s", ch_strerror(rc));
        goto out;
    }
    o = webhook_json(&j->wh);
    if (o) /* shown once: only its MACs are ever sent afterwards */
        json_object_set_new(o, "secret", json_string(j->wh.secret));
    ch_http_respond_json(j->req, o ? 201 : 500, o ? o : json_pack("{s:s}", "error", "internal"));
out:
    job_free(j);
}

/* Validate the body into w; 400 answered and CH_EINVAL on bad input. */
static int parse_webhook(struct ch_http_req *r, const json_t *body, struct ch_webhook_rec *w)
{
    const json_t *ev = json_object_get(body, "events"), *h = json_object_get(body, "headers");
    const json_t *retry = json_object_get(body, "retry"), *v;
    const json_t *ma = json_object_get(retry, "maxAttempts"), *bo = json_object_get(retry, "backoffMs");
    const char *url = json_string_value(json_object_get(body, "url"));
    const char *secret = json_string_value(json_object_get(body, "secret"));
    const char *desc = json_string_value(json_object_get(body, "description"));
    struct ch_error err = {0};
    size_t i;

    if (ch_outbox_check_url(url, &err) != 0)
        goto bad;
    if (ev && (!json_is_array(ev) || json_array_size(ev) > 10)) {
        ch_error_set(&err, CH_EINVAL, "events must be an array of event names");
        goto bad;
    }
    json_array_foreach(ev, i, v)
    {
        if (!ch_webhooks_event_bit(json_string_value(v))) {
            ch_error_set(&err, CH_EINVAL, "unknown event; events are: %s", ch_webhooks_event_names());
            goto bad;
        }
    }
    if (h && !json_is_object(h)) {
        ch_error_set(&err, CH_EINVAL, "headers must be an object of at most %d strings", CH_OUTBOX_MAX_HEADERS);
        goto bad;
    }
    if (ch_outbox_check_headers(h, &err) != 0) /* count, each header, and their stored size */
        goto bad;
    if ((retry && !json_is_object(retry)) ||
        (ma && (!json_is_integer(ma) || json_integer_value(ma) < 1 || json_integer_value(ma) > MAX_RETRY_ATTEMPTS)) ||
        (bo && (!json_is_integer(bo) || json_integer_value(bo) < MIN_BACKOFF_MS ||
                json_integer_value(bo) > CH_OUTBOX_MAX_DELAY_MS))) {
        ch_error_set(&err, CH_EINVAL, "retry.maxAttempts must be 1-%d and retry.backoffMs %d-%lld", MAX_RETRY_ATTEMPTS,
                     MIN_BACKOFF_MS, (long long)CH_OUTBOX_MAX_DELAY_MS);
        goto bad;
    }
    if (json_object_get(body, "secret") &&
        (!secret || strlen(secret) < MIN_SECRET_BYTES || strlen(secret) > CH_STORE_MAX_SECRET_BYTES)) {
        ch_error_set(&err, CH_EINVAL, "secret must be a string of %d-%d bytes (or left out: one is generated)",
                     MIN_SECRET_BYTES, CH_STORE_MAX_SECRET_BYTES);
        goto bad;
    }
    if (desc && strlen(desc) > 256) {
        ch_error_set(&err, CH_EINVAL, "description is longer than 256 bytes");
        goto bad;
    }
    w->id = ch_malloc(40);
    w->url = ch_strdup(url);
    w->secret = secret ? ch_strdup(secret) : ch_random_token("whsec_", 43);
    w->events = ev ? json_dumps(ev, JSON_COMPACT) : ch_strdup("[]");
    w->headers = json_object_size(h) ? json_dumps(h, JSON_COMPACT) : NULL;
    w->description = ch_strdup(desc);
    if (!w->id || !w->url || !w->secret || !w->events || (json_object_size(h) && !w->headers) ||
        (desc && !w->description)) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return CH_ENOMEM;
    }
    memcpy(w->id, "wh_", 3);
    ch_uuid4(w->id + 3);
    w->max_attempts = ma ? json_integer_value(ma) : CH_OUTBOX_DEFAULT_MAX_ATTEMPTS;
    w->backoff_ms = bo ? json_integer_value(bo) : CH_OUTBOX_DEFAULT_BACKOFF_MS;
    w->created_ms = ch_now_ms();
    return 0;
bad:
    ch_http_respond_error(r, 400, "invalid_request", "%s", err.msg);
    return CH_EINVAL;
}

void ch_rest_webhooks_create(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct dl_job *j;
    json_t *body;

    if (ch_api_json_body(r, &body) != 0)
        return;
    if ((j = job_new(r, data, wh_create_run, wh_create_done)) != NULL) {
        if (parse_webhook(r, body, &j->wh) != 0)
            job_free(j);
        else if (submit(j, true) == 0 && a->outbox)
            ch_webhooks_write_begin(a->outbox);
    }
    json_decref(body);
}

/* ---- DELETE /api/v1/webhooks/:id ---- */

static int wh_delete_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dl_job *j = (struct dl_job *)job;
    int rc = ch_webhooks_delete(db, j->id);

    return rc ? rc : ch_webhooks_list(db, false, &j->whs);
}

static void wh_delete_done(struct ch_store_job *job, int rc)
{
    struct dl_job *j = (struct dl_job *)job;

    if (j->api->outbox)
        ch_webhooks_write_end(j->api->outbox, rc == 0 ? &j->whs : NULL);
    if (rc == 0)
        ch_log_info("webhooks: deleted %s", j->id);
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND || rc == CH_EINVAL)
        ch_http_respond_error(j->req, 404, "not_found", "no webhook '%s'", j->id);
    else if (rc)
        ch_http_respond_error(j->req, 500, "store_error", "deleting the webhook failed: %s", ch_strerror(rc));
    else
        ch_http_respond_json(j->req, 200, json_pack("{s:b, s:s}", "ok", 1, "id", j->id));
out:
    job_free(j);
}

void ch_rest_webhooks_delete(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct dl_job *j = job_with_id(r, data, wh_delete_run, wh_delete_done);

    if (!j)
        return;
    if (!strncmp(j->id, "cfg:", 4)) {
        ch_http_respond_error(r, 409, "configured",
                              "webhook '%s' comes from the configuration file: edit api.webhooks.outgoing and "
                              "reload (SIGHUP)",
                              j->id);
        job_free(j);
        return;
    }
    if (submit(j, true) == 0 && a->outbox)
        ch_webhooks_write_begin(a->outbox);
}
