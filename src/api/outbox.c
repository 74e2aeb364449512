/*
 * outbox.c: the durable outbox engine (issue #4 item 2): enqueue, claim,
 * the due timer, start and stop.  The store is the queue: a delivery is a
 * `deliveries` row from the moment ch_outbox_enqueue reports success, and
 * the engine keeps no list of its own, only one uv timer armed for the
 * earliest pending row and a count of attempts in flight.
 *
 * Loop: kick -> claim job (writer: up to MAX_IN_FLIGHT due rows become
 * `sending`, plus the next due time) -> one attempt each (outbox_send.c)
 * -> the result is committed -> the slot frees -> kick again if work
 * waits.  Rows are PENDING -> SENDING -> DONE | DEAD | PENDING (retry);
 * see docs/internals/outbox.md.
 */
#include <string.h>

#include "api/outbox_int.h"

struct ch_outbox_refusal {
    struct ch_outbox_refusal *next;
    ch_outbox_done_cb cb;
    void *data;
    int rc;
};

/* ---- lifetime ---- */

void ch_outbox_ref(struct ch_outbox *ob)
{
    ob->refs++;
}

void ch_outbox_unref(struct ch_outbox *ob)
{
    if (--ob->refs > 0)
        return;
    if (ob->api && ob->api->outbox == ob)
        ob->api->outbox = NULL;
    ch_free(ob);
}

static void on_handle_closed(uv_handle_t *h)
{
    ch_outbox_unref(h->data);
}

/* ---- refusals: reported on a later loop turn, never inside enqueue ---- */

static void report_refusals(struct ch_outbox *ob)
{
    struct ch_outbox_refusal *r = ob->refusals;

    ob->refusals = NULL;
    while (r) {
        struct ch_outbox_refusal *next = r->next;
        if (r->cb)
            r->cb(r->rc, NULL, r->data);
        ch_free(r);
        r = next;
    }
}

static void on_defer(uv_timer_t *t)
{
    report_refusals(t->data);
}

static void refuse(struct ch_api *a, ch_outbox_done_cb cb, void *data, int rc, const char *why)
{
    struct ch_outbox *ob = a->outbox;
    struct ch_outbox_refusal *r, **tail;

    ch_log_warn("outbox: delivery refused: %s", why);
    if (ob)
        ob->stats.refused++;
    if (!cb)
        return;
    /* Without an outbox (never started, or stopped and freed) there is no
     * loop handle to defer on: the one synchronous answer. */
    if (!ob || ob->stopping || !(r = ch_calloc(1, sizeof(*r)))) {
        cb(rc, NULL, data);
        return;
    }
    r->cb = cb;
    r->data = data;
    r->rc = rc;
    for (tail = &ob->refusals; *tail; tail = &(*tail)->next)
        ;
    *tail = r;
    uv_timer_start(&ob->defer, on_defer, 0, 0);
}

/* ---- the due timer ---- */

static void on_timer(uv_timer_t *t)
{
    struct ch_outbox *ob = t->data;

    ob->timer_due_ms = 0;
    ch_outbox_finish_stalled(ob);
    ch_outbox_kick(ob);
}

static void arm(struct ch_outbox *ob, int64_t due_ms)
{
    int64_t now = ch_now_ms();

    ob->timer_due_ms = due_ms;
    uv_timer_start(&ob->timer, on_timer, (uint64_t)(due_ms > now ? due_ms - now : 0), 0);
}

void ch_outbox_due_at(struct ch_outbox *ob, int64_t due_ms)
{
    if (ob->stopping || due_ms <= 0)
        return;
    if (due_ms <= ch_now_ms()) {
        ch_outbox_kick(ob);
        return;
    }
    if (ob->timer_due_ms == 0 || due_ms < ob->timer_due_ms)
        arm(ob, due_ms);
}

/* ---- claim ---- */

struct claim_job {
    struct ch_store_job job;
    struct ch_outbox *ob;
    int64_t now_ms;
    size_t want;
    struct ch_delivery_list rows;
    int64_t next_due_ms;
};

static int claim_run(struct ch_db *db, struct ch_store_job *job)
{
    struct claim_job *cj = (struct claim_job *)job;
    return ch_deliveries_claim(db, cj->now_ms, cj->want, &cj->rows, &cj->next_due_ms);
}

static void claim_done(struct ch_store_job *job, int rc)
{
    struct claim_job *cj = (struct claim_job *)job;
    struct ch_outbox *ob = cj->ob;

    ob->claiming = false;
    if (rc) {
        ch_log_error("outbox: claiming due deliveries failed: %s; retrying shortly", ch_strerror(rc));
        ch_outbox_due_at(ob, ch_now_ms() + CH_OUTBOX_STORE_RETRY_MS);
        goto out;
    }
    for (size_t i = 0; i < cj->rows.count; i++) {
        if (ob->stopping) {
            ch_outbox_release(ob, cj->rows.items[i].id);
            continue;
        }
        ob->in_flight++;
        ch_outbox_attempt_start(ob, &cj->rows.items[i]);
    }
    if (ob->stopping)
        goto out;
    /* The claim saw every commit before it, so its next due time is exact:
     * later changes arm the timer themselves (ch_outbox_due_at). */
    if (cj->next_due_ms == 0) {
        ob->timer_due_ms = 0;
        uv_timer_stop(&ob->timer);
    } else if (cj->next_due_ms <= ch_now_ms()) {
        ob->want_claim = true; /* more is due than there were slots */
    } else {
        arm(ob, cj->next_due_ms);
    }
    if (ob->want_claim)
        ch_outbox_kick(ob);
out:
    ch_delivery_list_release(&cj->rows);
    ch_free(cj);
    ch_outbox_unref(ob);
}

void ch_outbox_kick(struct ch_outbox *ob)
{
    struct claim_job *cj;

    if (ob->stopping)
        return;
    if (ob->claiming || ob->in_flight >= CH_OUTBOX_MAX_IN_FLIGHT) {
        ob->want_claim = true; /* the claim's end or a freed slot kicks again */
        return;
    }
    ob->want_claim = false;
    cj = ch_calloc(1, sizeof(*cj));
    if (!cj) {
        ch_outbox_due_at(ob, ch_now_ms() + CH_OUTBOX_STORE_RETRY_MS);
        return;
    }
    cj->ob = ob;
    cj->now_ms = ch_now_ms();
    cj->want = CH_OUTBOX_MAX_IN_FLIGHT - ob->in_flight;
    cj->job.run = claim_run;
    cj->job.done = claim_done;
    if (ch_store_write(ob->api->store, &cj->job) != 0) {
        ch_free(cj);
        /* Store queue full: the rows wait in the table; look again soon. */
        ob->timer_due_ms = 0;
        arm(ob, ch_now_ms() + CH_OUTBOX_STORE_RETRY_MS);
        return;
    }
    ob->claiming = true;
    ch_outbox_ref(ob);
}

/* ---- enqueue ---- */

struct enq_job {
    struct ch_store_job job;
    struct ch_outbox *ob;
    struct ch_delivery_rec rec; /* owned contents */
    char *existing;             /* dedupe: the first row's id */
    ch_outbox_done_cb cb;
    void *data;
};

static int enq_run(struct ch_db *db, struct ch_store_job *job)
{
    struct enq_job *ej = (struct enq_job *)job;
    return ch_deliveries_insert(db, &ej->rec, &ej->existing, NULL);
}

static void enq_done(struct ch_store_job *job, int rc)
{
    struct enq_job *ej = (struct enq_job *)job;
    struct ch_outbox *ob = ej->ob;
    const char *id = ej->rec.id;

    if (rc == CH_EEXIST && ej->existing) {
        rc = 0; /* the same run's delivery: answer with the first one */
        id = ej->existing;
        ob->stats.deduplicated++;
    } else if (rc == 0) {
        ob->stats.enqueued++;
        if (ej->rec.status == CH_DELIVERY_DEAD)
            ob->stats.dead++;
    } else {
        ob->stats.refused++;
        ch_log_error("outbox: cannot store delivery %s: %s", ej->rec.id, ch_strerror(rc));
    }
    if (ej->cb)
        ej->cb(rc, rc == 0 ? id : NULL, ej->data);
    if (rc == 0 && ej->rec.status == CH_DELIVERY_PENDING && id == ej->rec.id)
        ch_outbox_kick(ob);
    ch_delivery_rec_release(&ej->rec);
    ch_free(ej->existing);
    ch_free(ej);
    ch_outbox_unref(ob);
}

/* Fill rec from d (validated); CH_EINVAL with err for bad input. */
static int build_rec(const struct ch_delivery_req *d, struct ch_delivery_rec *rec, struct ch_error *err)
{
    const char *ctype = d->content_type ? d->content_type : "application/json";
    const char *secret = d->secret && *d->secret ? d->secret : NULL;
    int64_t now = ch_now_ms();
    json_error_t jerr;
    int rc;

    if (!d->kind || (strcmp(d->kind, "callback") && strcmp(d->kind, "webhook")))
        return ch_error_set(err, CH_EINVAL, "kind must be callback or webhook");
    if ((rc = ch_outbox_check_url(d->url, err)))
        return rc;
    if (!d->body && d->body_len)
        return ch_error_set(err, CH_EINVAL, "body is missing");
    if (d->body_len > CH_STORE_MAX_DELIVERY_BODY_BYTES)
        return ch_error_set(err, CH_E_TOO_LARGE, "body is larger than %d bytes", CH_STORE_MAX_DELIVERY_BODY_BYTES);
    /* An empty secret (an unset ${VAR:-} in config) means unsigned. */
    if (secret && strlen(secret) > CH_STORE_MAX_SECRET_BYTES)
        return ch_error_set(err, CH_EINVAL, "secret is longer than %d bytes", CH_STORE_MAX_SECRET_BYTES);
    if (d->max_attempts < 0 || d->max_attempts > CH_STORE_MAX_DELIVERY_ATTEMPTS || d->backoff_ms < 0 ||
        d->backoff_ms > CH_OUTBOX_MAX_DELAY_MS)
        return ch_error_set(err, CH_EINVAL, "retry settings out of range");
    if ((rc = ch_outbox_split_headers(d->headers, &rec->headers, &ctype, err)))
        return rc;
    rec->id = ch_malloc(37);
    rec->kind = ch_strdup(d->kind);
    rec->run_id = ch_strdup(d->run_id);
    rec->event = ch_strdup(d->event);
    rec->url = ch_strdup(d->url);
    rec->content_type = ch_strdup(ctype);
    rec->secret = ch_strdup(secret);
    rec->body = ch_malloc(d->body_len + 1);
    if (!rec->id || !rec->kind || !rec->url || !rec->content_type || !rec->body || (d->run_id && !rec->run_id) ||
        (d->event && !rec->event) || (secret && !rec->secret))
        return CH_ENOMEM;
    ch_uuid4(rec->id);
    if (d->body_len)
        memcpy(rec->body, d->body, d->body_len);
    rec->body[d->body_len] = '\0';
    rec->body_len = d->body_len;
    rec->max_attempts = d->max_attempts ? d->max_attempts : CH_OUTBOX_DEFAULT_MAX_ATTEMPTS;
    rec->backoff_ms = d->backoff_ms ? d->backoff_ms : CH_OUTBOX_DEFAULT_BACKOFF_MS;
    rec->created_ms = rec->updated_ms = rec->next_attempt_ms = now;
    rec->status = CH_DELIVERY_PENDING;
    if (ch_outbox_is_json_type(rec->content_type)) {
        json_t *v = json_loadb(rec->body, rec->body_len, JSON_DECODE_ANY, &jerr);
        if (!v) {
            /* Issue #4: a raw callback whose text is not JSON fails as
             * invalid_json instead of posting what the receiver refuses.
             * It is stored dead, so it shows in ?status=dead. */
            rec->status = CH_DELIVERY_DEAD;
            rec->next_attempt_ms = 0;
            rec->last_error = ch_sprintf("invalid_json: the body is not valid JSON (%s at line %d, column %d)",
                                         jerr.text, jerr.line, jerr.column);
        }
        json_decref(v);
    }
    return 0;
}

void ch_outbox_enqueue(struct ch_api *a, const struct ch_delivery_req *d, ch_outbox_done_cb cb, void *data)
{
    struct ch_outbox *ob = a->outbox;
    struct ch_error err = {0};
    struct enq_job *ej;
    char where[160];
    int rc;

    if (!ob || ob->stopping) {
        refuse(a, cb, data, CH_ECLOSED, "the outbox is not running");
        return;
    }
    if (!d || !(ej = ch_calloc(1, sizeof(*ej)))) {
        refuse(a, cb, data, d ? CH_ENOMEM : CH_EINVAL, d ? "out of memory" : "no delivery given");
        return;
    }
    rc = build_rec(d, &ej->rec, &err);
    if (rc) {
        ch_url_for_log(d->url, where, sizeof(where));
        ch_log_warn("outbox: %s delivery to %s%s%s refused: %s", d->kind ? d->kind : "?", where,
                    d->run_id ? " for run " : "", d->run_id ? d->run_id : "", err.msg[0] ? err.msg : ch_strerror(rc));
        ch_delivery_rec_release(&ej->rec);
        ch_free(ej);
        refuse(a, cb, data, rc, "invalid delivery");
        return;
    }
    ej->ob = ob;
    ej->cb = cb;
    ej->data = data;
    ej->job.run = enq_run;
    ej->job.done = enq_done;
    if (ch_store_write(a->store, &ej->job) != 0) {
        ch_delivery_rec_release(&ej->rec);
        ch_free(ej);
        refuse(a, cb, data, CH_EBUSY, "the store's write queue is full");
        return;
    }
    ch_outbox_ref(ob);
}

/* ---- start, housekeeping, stop ---- */

struct boot_job {
    struct ch_store_job job;
    struct ch_outbox *ob;
    bool startup; /* else the hourly prune, which leaves `sending` alone */
    int64_t requeued, pruned;
};

static int boot_run(struct ch_db *db, struct ch_store_job *job)
{
    struct boot_job *bj = (struct boot_job *)job;
    int64_t now = ch_now_ms();
    int rc = 0;

    if (bj->startup)
        rc = ch_deliveries_requeue_sending(db, now, &bj->requeued);
    if (rc == 0)
        rc = ch_deliveries_prune(db, now - CH_OUTBOX_KEEP_DONE_MS, now - CH_OUTBOX_KEEP_DEAD_MS, &bj->pruned);
    return rc;
}

static void boot_done(struct ch_store_job *job, int rc)
{
    struct boot_job *bj = (struct boot_job *)job;
    struct ch_outbox *ob = bj->ob;

    if (rc)
        ch_log_error("outbox: %s job failed: %s", bj->startup ? "start-up" : "prune", ch_strerror(rc));
    if (bj->requeued > 0)
        ch_log_info("outbox: %lld delivery attempt(s) interrupted by the last stop will be sent again",
                    (long long)bj->requeued);
    if (bj->pruned > 0)
        ch_log_info("outbox: pruned %lld old delivery row(s)", (long long)bj->pruned);
    if (bj->startup)
        ch_outbox_kick(ob); /* every pending row, due or not, is scheduled from here */
    ch_free(bj);
    ch_outbox_unref(ob);
}

static int submit_boot(struct ch_outbox *ob, bool startup)
{
    struct boot_job *bj = ch_calloc(1, sizeof(*bj));

    if (!bj)
        return CH_ENOMEM;
    bj->ob = ob;
    bj->startup = startup;
    bj->job.run = boot_run;
    bj->job.done = boot_done;
    if (ch_store_write(ob->api->store, &bj->job) != 0) {
        ch_free(bj);
        return CH_EBUSY;
    }
    ch_outbox_ref(ob);
    return 0;
}

static void on_tick(void *data)
{
    struct ch_outbox *ob = data;
    int64_t now = ch_now_ms();

    if (ob->stopping || now < ob->prune_next_ms)
        return;
    ob->prune_next_ms = now + 3600000; /* hourly */
    submit_boot(ob, false);
}

int ch_api_outbox_start(struct ch_api *a, struct ch_curlm *curlm)
{
    struct ch_outbox *ob;
    int rc;

    if (!a || !curlm || !a->net || !a->store)
        return CH_EINVAL;
    if (a->outbox)
        return CH_ESTATE;
    if (!(ob = ch_calloc(1, sizeof(*ob))))
        return CH_ENOMEM;
    ob->api = a;
    ob->curlm = curlm;
    ob->refs = 3; /* running, and the two timer handles */
    ob->rest_mask = ~0u;
    ob->prune_next_ms = ch_now_ms() + 3600000;
    uv_timer_init(a->net->loop, &ob->timer);
    uv_timer_init(a->net->loop, &ob->defer);
    ob->timer.data = ob->defer.data = ob;
    /* Neither keeps the loop alive: a due delivery waits for a running
     * gateway, it is not a reason to keep one running. */
    uv_unref((uv_handle_t *)&ob->timer);
    uv_unref((uv_handle_t *)&ob->defer);
    a->curlm = curlm;
    a->outbox = ob;
    ch_net_on_tick(a->net, on_tick, ob);
    if ((rc = submit_boot(ob, true)) != 0 || (rc = ch_webhooks_start(ob)) != 0) {
        ch_log_error("outbox: cannot start: %s", ch_strerror(rc));
        ch_api_outbox_stop(a);
        return rc;
    }
    return 0;
}

void ch_api_outbox_stop(struct ch_api *a)
{
    struct ch_outbox *ob = a ? a->outbox : NULL;

    if (!ob || ob->stopping)
        return;
    ob->stopping = true;
    ch_net_off_tick(a->net, on_tick, ob);
    ch_webhooks_stop(ob);
    uv_timer_stop(&ob->timer);
    uv_timer_stop(&ob->defer);
    uv_close((uv_handle_t *)&ob->timer, on_handle_closed);
    uv_close((uv_handle_t *)&ob->defer, on_handle_closed);
    report_refusals(ob);
    /* In-flight attempts are aborted and go back to pending: at least
     * once means they are sent again at the next start. */
    ch_outbox_attempts_abort(ob);
    ch_outbox_finish_stalled(ob);
    ch_outbox_unref(ob); /* the "running" reference */
}

void ch_outbox_metrics(struct ch_api *a, struct ch_buf *b)
{
    static const char *const cls[5] = {"2xx", "3xx", "4xx", "5xx", "error"};
    struct ch_outbox *ob = a->outbox;
    struct ch_outbox_stats s = {0};

    if (ob)
        s = ob->stats;
    ch_buf_append_str(b, "# HELP chela_deliveries_total Outbound deliveries (callbacks, webhooks) by outcome.\n"
                         "# TYPE chela_deliveries_total counter\n");
    ch_buf_appendf(b,
                   "chela_deliveries_total{outcome=\"enqueued\"} %llu\n"
                   "chela_deliveries_total{outcome=\"deduplicated\"} %llu\n"
                   "chela_deliveries_total{outcome=\"refused\"} %llu\n"
                   "chela_deliveries_total{outcome=\"done\"} %llu\n"
                   "chela_deliveries_total{outcome=\"retried\"} %llu\n"
                   "chela_deliveries_total{outcome=\"dead\"} %llu\n"
                   "chela_deliveries_total{outcome=\"manual_retry\"} %llu\n",
                   (unsigned long long)s.enqueued, (unsigned long long)s.deduplicated, (unsigned long long)s.refused,
                   (unsigned long long)s.done, (unsigned long long)s.retried, (unsigned long long)s.dead,
                   (unsigned long long)s.manual_retries);
    ch_buf_append_str(b, "# HELP chela_delivery_attempts_total HTTP attempts of outbound deliveries by result.\n"
                         "# TYPE chela_delivery_attempts_total counter\n");
    for (size_t i = 0; i < 5; i++)
        ch_buf_appendf(b, "chela_delivery_attempts_total{result=\"%s\"} %llu\n", cls[i],
                       (unsigned long long)s.attempt_class[i]);
    ch_buf_appendf(b,
                   "# HELP chela_deliveries_in_flight Delivery attempts in flight.\n"
                   "# TYPE chela_deliveries_in_flight gauge\nchela_deliveries_in_flight %zu\n"
                   "# HELP chela_webhook_events_total Webhook events that had at least one subscriber.\n"
                   "# TYPE chela_webhook_events_total counter\nchela_webhook_events_total %llu\n",
                   ob ? ob->in_flight : 0, (unsigned long long)s.events_emitted);
}
