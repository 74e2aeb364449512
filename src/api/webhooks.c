/*
 * webhooks.c: outgoing event webhooks (issue #4 item 3; seed 002 section
 * 4, seed 004).  An event becomes one body {event, timestamp, data} and one
 * outbox row per subscribed webhook, signed with that webhook's secret.
 *
 * Subscribers come from two places: api.webhooks.outgoing[] (read from
 * the live configuration at every emit, so SIGHUP applies at once) and the
 * `webhooks` table (REST-managed).  The fan-out runs as one writer job
 * that reads the table and inserts every row in the same transaction, so
 * a webhook deleted over REST never receives an event emitted after the
 * delete committed.  The loop keeps only a mask of the events REST
 * webhooks want, to skip that job when nobody listens.
 */
#include <string.h>

#include "api/outbox_int.h"

/* The ten events, in bit order; api.webhooks.outgoing[].events lists the
 * same names in config/schema.c. */
static const char *const event_names[] = {
    "message.received",
    "message.sent",
    "conversation.created",
    "run.completed",
    "run.failed",
    "channel.connected",
    "channel.disconnected",
    "message",
    "status",
    "media",
};

unsigned ch_webhooks_event_bit(const char *event)
{
    for (size_t i = 0; event && i < CH_ARRAY_SIZE(event_names); i++)
        if (!strcmp(event, event_names[i]))
            return 1u << i;
    return 0;
}

const char *ch_webhooks_event_names(void)
{
    return "message.received, message.sent, conversation.created, run.completed, run.failed, "
           "channel.connected, channel.disconnected, message, status, media";
}

unsigned ch_webhooks_events_mask(const json_t *events)
{
    unsigned m = 0;
    const json_t *e;
    size_t i;

    if (!json_is_array(events) || json_array_size(events) == 0)
        return CH_WEBHOOKS_ALL_EVENTS;
    json_array_foreach(events, i, e)
    {
        m |= ch_webhooks_event_bit(json_string_value(e));
    }
    return m;
}

static unsigned mask_of_text(const char *events_json)
{
    json_t *v = json_loads(events_json ? events_json : "[]", 0, NULL);
    unsigned m = ch_webhooks_events_mask(v);

    json_decref(v);
    return m;
}

static unsigned mask_of_list(const struct ch_webhook_list *l)
{
    unsigned m = 0;

    for (size_t i = 0; i < l->count; i++)
        m |= mask_of_text(l->items[i].events);
    return m;
}

/*
 * Why a generation: a listing runs on a pool thread while creates commit
 * on the writer, so its snapshot may predate a create whose done callback
 * ran first; set as it is, it would hide the new webhook's events until
 * the next refresh, and an event nobody is known to want is dropped
 * before any store job.  rest_gen counts the creates and deletes queued;
 * a read that saw none queued from before it started until it finished
 * (token == rest_gen + 1) is current and may also clear bits.  Any other
 * read only adds bits: a stale extra bit costs one fan-out job, which
 * recomputes the mask on the writer.
 */
uint64_t ch_webhooks_read_token(const struct ch_outbox *ob)
{
    return ob->rest_writes ? 0 : ob->rest_gen + 1;
}

void ch_webhooks_read_apply(struct ch_outbox *ob, uint64_t token, const struct ch_webhook_list *l)
{
    unsigned m = mask_of_list(l);

    if (token && token == ob->rest_gen + 1 && !ob->rest_writes)
        ob->rest_mask = m;
    else
        ob->rest_mask |= m;
}

void ch_webhooks_write_begin(struct ch_outbox *ob)
{
    ob->rest_gen++;
    ob->rest_writes++;
}

/* Writer snapshots finish in commit order (store/writer.c calls `done` in
 * submission order), so the latest one is exact. */
void ch_webhooks_write_end(struct ch_outbox *ob, const struct ch_webhook_list *l)
{
    if (ob->rest_writes)
        ob->rest_writes--;
    if (l)
        ob->rest_mask = mask_of_list(l);
}

static const json_t *configured(struct ch_api *a)
{
    const json_t *v = ch_config_get(a->cfg, "api.webhooks.outgoing");
    return json_is_array(v) ? v : NULL;
}

unsigned ch_webhooks_wanted(struct ch_api *a)
{
    const json_t *arr = configured(a), *w;
    /* A queued create may already be committed: assume it wants all. */
    unsigned m = !a->outbox ? 0 : a->outbox->rest_writes ? CH_WEBHOOKS_ALL_EVENTS : a->outbox->rest_mask;
    size_t i;

    json_array_foreach(arr, i, w)
    {
        m |= ch_webhooks_events_mask(json_object_get(w, "events"));
    }
    return m;
}

/* ---- fan-out ---- */

struct target {
    char *url, *secret, *headers, *webhook_id; /* owned */
    char *content_type;                        /* owned; NULL: application/json */
    int64_t max_attempts, backoff_ms;
};

struct fanout_job {
    struct ch_store_job job;
    struct ch_outbox *ob; /* ref held */
    char *event, *run_id; /* owned */
    char *body;           /* owned: the exact bytes every webhook gets */
    size_t body_len;
    unsigned bit;
    struct target *targets; /* owned: configured webhooks that want the event */
    size_t ntargets;
    bool rest;          /* also read the REST webhooks */
    unsigned rest_mask; /* recomputed from the table (rest only) */
    size_t inserted;
};

static void fanout_free(struct fanout_job *fj)
{
    for (size_t i = 0; i < fj->ntargets; i++) {
        ch_free(fj->targets[i].url);
        ch_free_secret(fj->targets[i].secret);
        ch_free_secret(fj->targets[i].headers);
        ch_free(fj->targets[i].webhook_id);
        ch_free(fj->targets[i].content_type);
    }
    ch_free(fj->targets);
    ch_free(fj->event);
    ch_free(fj->run_id);
    ch_free(fj->body);
    ch_free(fj);
}

/* Insert one row for one webhook (writer thread). */
static void insert_one(struct ch_db *db, struct fanout_job *fj, const struct target *t)
{
    struct ch_delivery_rec d = {0};
    struct ch_error err = {0};
    char id[37];
    int64_t now = ch_now_ms();
    int rc;

    ch_uuid4(id);
    d.id = id;
    d.kind = "webhook";
    d.run_id = fj->run_id;
    d.event = fj->event;
    d.webhook_id = t->webhook_id;
    d.url = t->url;
    d.headers = t->headers;
    d.body = fj->body;
    d.body_len = fj->body_len;
    d.content_type = t->content_type ? t->content_type : "application/json";
    d.secret = t->secret;
    d.status = CH_DELIVERY_PENDING;
    d.max_attempts = t->max_attempts;
    d.backoff_ms = t->backoff_ms;
    d.next_attempt_ms = d.created_ms = d.updated_ms = now;
    rc = ch_deliveries_insert(db, &d, NULL, &err);
    if (rc == 0)
        fj->inserted++;
    else if (rc != CH_EEXIST) /* EEXIST: this run's event already went to it */
        ch_log_error("webhooks: cannot queue %s for webhook %s: %s", fj->event, t->webhook_id,
                     err.msg[0] ? err.msg : ch_strerror(rc));
}

/* A REST webhook as a target: its stored headers split as enqueue splits
 * a callback's, so a Content-Type among them replaces the type. */
static int rest_target(const struct ch_webhook_rec *w, struct target *t, struct ch_error *err)
{
    json_t *h = w->headers ? json_loads(w->headers, 0, NULL) : NULL;
    const char *ctype = NULL;
    int rc;

    *t = (struct target){w->url, w->secret, NULL, w->id, NULL, w->max_attempts, w->backoff_ms};
    if (w->headers && !h)
        return ch_error_set(err, CH_EINVAL, "its stored headers are not JSON");
    rc = ch_outbox_split_headers(h, &t->headers, &ctype, err);
    if (rc == 0 && ctype && !(t->content_type = ch_strdup(ctype)))
        rc = CH_ENOMEM;
    json_decref(h);
    return rc;
}

static int fanout_run(struct ch_db *db, struct ch_store_job *job)
{
    struct fanout_job *fj = (struct fanout_job *)job;
    struct ch_webhook_list l = {0};
    int rc;

    for (size_t i = 0; i < fj->ntargets; i++)
        insert_one(db, fj, &fj->targets[i]);
    if (!fj->rest)
        return 0;
    if ((rc = ch_webhooks_list(db, true, &l)) != 0)
        return rc;
    fj->rest_mask = mask_of_list(&l);
    for (size_t i = 0; i < l.count; i++) {
        const struct ch_webhook_rec *w = &l.items[i];
        struct ch_error err = {0};
        struct target t;

        if (!(mask_of_text(w->events) & fj->bit))
            continue;
        if (rest_target(w, &t, &err) == 0)
            insert_one(db, fj, &t);
        else
            ch_log_error("webhooks: cannot queue %s for webhook %s: %s", fj->event, w->id,
                         err.msg[0] ? err.msg : "out of memory");
        ch_free_secret(t.headers);
        ch_free(t.content_type);
    }
    ch_webhook_list_release(&l);
    return 0;
}

static void fanout_done(struct ch_store_job *job, int rc)
{
    struct fanout_job *fj = (struct fanout_job *)job;
    struct ch_outbox *ob = fj->ob;

    if (rc)
        ch_log_error("webhooks: event %s was not queued: %s", fj->event, ch_strerror(rc));
    else if (fj->rest) /* a writer snapshot: exact (ch_webhooks_write_end) */
        ob->rest_mask = fj->rest_mask;
    if (fj->inserted) {
        ob->stats.events_emitted++;
        ob->stats.enqueued += fj->inserted;
        ch_outbox_kick(ob);
    }
    fanout_free(fj);
    ch_outbox_unref(ob);
}

/* A configured webhook that can never be queued: CH_EINVAL with err. */
static int check_configured(const json_t *w, struct ch_error *err)
{
    int rc = ch_outbox_check_url(json_string_value(json_object_get(w, "url")), err);

    return rc ? rc : ch_outbox_check_headers(json_object_get(w, "headers"), err);
}

int ch_webhooks_check_config(const struct ch_config *cfg, struct ch_error *err)
{
    const json_t *arr = ch_config_get(cfg, "api.webhooks.outgoing"), *w;
    struct ch_error why = {0};
    size_t i;

    json_array_foreach(arr, i, w)
    {
        if (check_configured(w, &why) != 0)
            return ch_error_set(err, CH_EINVAL, "api.webhooks.outgoing[%zu]: %s", i, why.msg);
    }
    return 0;
}

/* Copy configured webhook w (index i) into t if it wants bit and is valid. */
static int add_target(struct fanout_job *fj, const json_t *w, size_t i)
{
    struct target *t = &fj->targets[fj->ntargets];
    const json_t *h = json_object_get(w, "headers");
    const char *url = json_string_value(json_object_get(w, "url"));
    const char *secret = json_string_value(json_object_get(w, "secret"));
    const char *ctype = NULL;
    struct ch_error err = {0};
    int rc;

    memset(t, 0, sizeof(*t));
    rc = check_configured(w, &err);
    if (rc == 0)
        rc = ch_outbox_split_headers(h, &t->headers, &ctype, &err);
    if (rc == CH_ENOMEM)
        return rc;
    if (rc) {
        ch_log_warn("webhooks: api.webhooks.outgoing[%zu] skipped: %s", i, err.msg);
        return 0;
    }
    t->url = ch_strdup(url);
    t->secret = secret && *secret ? ch_strdup(secret) : NULL;
    t->content_type = ctype ? ch_strdup(ctype) : NULL;
    t->webhook_id = ch_sprintf("cfg:%zu", i);
    t->max_attempts = json_integer_value(json_object_get(json_object_get(w, "retry"), "maxAttempts"));
    t->backoff_ms = json_integer_value(json_object_get(json_object_get(w, "retry"), "backoffMs"));
    if (t->max_attempts < 1 || t->max_attempts > CH_STORE_MAX_DELIVERY_ATTEMPTS)
        t->max_attempts = CH_OUTBOX_DEFAULT_MAX_ATTEMPTS;
    if (t->backoff_ms <= 0)
        t->backoff_ms = CH_OUTBOX_DEFAULT_BACKOFF_MS;
    fj->ntargets++;
    if (!t->url || !t->webhook_id || (secret && *secret && !t->secret) || (ctype && !t->content_type))
        return CH_ENOMEM;
    return 0;
}

void ch_webhooks_emit(struct ch_api *a, const char *event, json_t *data)
{
    struct ch_outbox *ob = a->outbox;
    const json_t *arr = configured(a), *w, *rid;
    struct fanout_job *fj = NULL;
    char ts[32];
    json_t *doc = NULL;
    size_t i;
    unsigned bit = ch_webhooks_event_bit(event);

    if (!ob || ob->stopping || !bit)
        goto out;
    if (!data && !(data = json_object()))
        goto oom;
    if (!(fj = ch_calloc(1, sizeof(*fj))) ||
        (json_array_size(arr) && !(fj->targets = ch_calloc(json_array_size(arr), sizeof(*fj->targets)))))
        goto oom;
    json_array_foreach(arr, i, w)
    {
        if (!(ch_webhooks_events_mask(json_object_get(w, "events")) & bit))
            continue;
        if (add_target(fj, w, i) != 0)
            goto oom;
    }
    /* While a create is queued its row may be committed before its done
     * callback updates the mask: ask the table (the fan-out job runs
     * after the create on the writer). */
    fj->rest = (ob->rest_mask & bit) != 0 || ob->rest_writes > 0;
    if (!fj->ntargets && !fj->rest)
        goto out; /* nobody listens: no row, no job */
    rid = json_object_get(data, "runId");
    ch_time_iso8601(ch_now_ms(), ts);
    doc = json_pack("{s:s, s:s, s:O}", "event", event, "timestamp", ts, "data", data);
    fj->event = ch_strdup(event);
    fj->run_id = json_is_string(rid) ? ch_strdup(json_string_value(rid)) : NULL;
    fj->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (!fj->event || !fj->body || (json_is_string(rid) && !fj->run_id))
        goto oom;
    fj->body_len = strlen(fj->body);
    fj->bit = bit;
    fj->ob = ob;
    fj->job.run = fanout_run;
    fj->job.done = fanout_done;
    if (ch_store_write(a->store, &fj->job) != 0) {
        ch_log_error("webhooks: event %s dropped: the store's write queue is full", event);
        goto out;
    }
    ch_outbox_ref(ob);
    fj = NULL;
    goto out;
oom:
    ch_log_error("webhooks: event %s dropped: out of memory", event);
out:
    if (fj)
        fanout_free(fj);
    json_decref(doc);
    json_decref(data);
}

/* ---- start: the REST mask ---- */

struct mask_job {
    struct ch_store_job job;
    struct ch_outbox *ob;
    uint64_t token; /* ch_webhooks_read_token */
    struct ch_webhook_list list;
};

static int mask_run(struct ch_db *db, struct ch_store_job *job)
{
    return ch_webhooks_list(db, false, &((struct mask_job *)job)->list);
}

static void mask_done(struct ch_store_job *job, int rc)
{
    struct mask_job *mj = (struct mask_job *)job;

    if (rc == 0)
        ch_webhooks_read_apply(mj->ob, mj->token, &mj->list);
    ch_webhook_list_release(&mj->list);
    ch_outbox_unref(mj->ob);
    ch_free(mj);
}

int ch_webhooks_load_rest(struct ch_outbox *ob)
{
    struct mask_job *mj = ch_calloc(1, sizeof(*mj));

    if (!mj)
        return CH_ENOMEM;
    mj->ob = ob;
    mj->token = ch_webhooks_read_token(ob);
    mj->job.run = mask_run;
    mj->job.done = mask_done;
    if (ch_store_read(ob->api->store, &mj->job) != 0) {
        ch_free(mj);
        return CH_ECLOSED;
    }
    ch_outbox_ref(ob);
    return 0;
}
