/*
 * sched.c: admission and scheduling.  A run is admitted only when the
 * wait queue has room (agents.defaults.queueSize), then made durable (a
 * `queued` row, committed) before the caller hears "accepted".  Runs wait
 * in a lane per session key, so a session's turns never overlap; lanes
 * with work sit in a FIFO ready list, and at most maxConcurrent runs are
 * active at once.
 */
#include <string.h>

#include "agent/internal.h"

static struct lane *lane_get(struct ch_agent *a, const char *key);
static void lane_maybe_free(struct ch_agent *a, struct lane *l);

static char *dup_opt(const char *s)
{
    return s ? ch_strdup(s) : NULL;
}

void ch_run_free(struct ch_run *r)
{
    if (!r)
        return;
    ch_free(r->run_id);
    ch_free(r->session_key);
    ch_free(r->source);
    ch_free(r->message);
    ch_free(r->model_ref);
    ch_free(r->system_prompt);
    ch_free(r->extra_system);
    ch_free(r->idem);
    ch_free(r->channel);
    json_decref(r->meta);
    json_decref(r->sampling);
    json_decref(r->client_tools);
    json_decref(r->client_calls);
    json_decref(r->images);
    json_decref(r->user_content);
    ch_free(r->session_id);
    ch_free(r->model_override);
    json_decref(r->history);
    ch_free(r->hist_seqs);
    ch_persist_discard(r, r->reply_job);
    ch_tc_entry_unref(r->tentry);
    json_decref(r->pending_tools);
    json_decref(r->tool_results);
    ch_buf_release(&r->text);
    ch_buf_release(&r->round_text);
    ch_free(r->provider);
    ch_free(r->model);
    ch_free(r->error);
    ch_free(r->error_class);
    ch_free(r);
}

bool ch_agent_session_key_reserved(const char *key)
{
    static const char *reserved[] = {"agent:", "cron:", "subagent:", "acp:"};
    for (size_t i = 0; i < CH_ARRAY_SIZE(reserved); i++)
        if (!strncmp(key, reserved[i], strlen(reserved[i])))
            return true;
    return false;
}

bool ch_agent_session_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > CH_STORE_MAX_KEY_BYTES)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x21 || key[i] == 0x7f)
            return false;
    return true;
}

void ch_agent_run_id_new(char out[37])
{
    ch_uuid7(out);
}

/* A message channel is a name ("telegram", "webchat", a client's own): it
 * goes into events, the run's stored request and the session row. */
static bool channel_valid(const char *c)
{
    size_t n = strlen(c);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] <= 0x20 || (unsigned char)c[i] >= 0x7f)
            return false;
    return n <= 64;
}

/* The length of the system prompt the run's calls will send
 * (ch_context_system_prompt). */
static size_t system_len(const struct ch_agent *a, const struct ch_agent_run_req *req)
{
    size_t n = req->system_prompt ? strlen(req->system_prompt) : a->system_prompt_len;
    size_t x = req->extra_system ? strlen(req->extra_system) : 0;

    return n + x + (n && x ? 2 : 0);
}

struct ch_run *ch_run_new_from_req(struct ch_agent *a, const struct ch_agent_run_req *req, struct ch_error *err)
{
    struct ch_run *r;
    char uuid[37];

    if (!req->message || !*req->message) {
        ch_error_set(err, CH_EINVAL, "message is required and must not be empty");
        return NULL;
    }
    if (strlen(req->message) > CH_STORE_MAX_CONTENT_BYTES / 2) {
        ch_error_set(err, CH_EINVAL, "message is too long (at most %d bytes)", CH_STORE_MAX_CONTENT_BYTES / 2);
        return NULL;
    }
    if (!ch_agent_session_key_valid(req->session_key)) {
        ch_error_set(err, CH_EINVAL, "session key must be 1-%d printable characters without spaces",
                     CH_STORE_MAX_KEY_BYTES);
        return NULL;
    }
    if (req->run_id && (!*req->run_id || strlen(req->run_id) > CH_STORE_MAX_ID_BYTES)) {
        ch_error_set(err, CH_EINVAL, "run id must be 1-%d characters", CH_STORE_MAX_ID_BYTES);
        return NULL;
    }
    if (system_len(a, req) > CH_AGENT_MAX_SYSTEM_BYTES) {
        ch_error_set(err, CH_EINVAL, "the system prompt and the run's extra instructions are longer than %u bytes",
                     CH_AGENT_MAX_SYSTEM_BYTES);
        return NULL;
    }
    if (req->channel && *req->channel && !channel_valid(req->channel)) {
        ch_error_set(err, CH_EINVAL, "channel must be 1-64 printable characters without spaces");
        return NULL;
    }
    r = ch_calloc(1, sizeof(*r));
    if (!r)
        goto nomem;
    if (!req->run_id)
        ch_agent_run_id_new(uuid);
    r->agent = a;
    r->refs = 1;
    r->run_id = ch_strdup(req->run_id ? req->run_id : uuid);
    r->session_key = ch_strdup(req->session_key);
    r->source = ch_strdup(req->source ? req->source : "api");
    r->message = ch_strdup(req->message);
    r->model_ref = dup_opt(req->model && *req->model ? req->model : NULL);
    r->system_prompt = dup_opt(req->system_prompt);
    r->extra_system = dup_opt(req->extra_system);
    r->idem = dup_opt(req->idempotency_key && *req->idempotency_key ? req->idempotency_key : NULL);
    r->channel = dup_opt(req->channel && *req->channel ? req->channel : NULL);
    /* The cast drops const for the reference count only (meta_shared). */
    r->meta = !req->meta ? NULL : req->meta_shared ? json_incref((json_t *)req->meta) : json_deep_copy(req->meta);
    r->sampling = json_object_size(req->sampling) ? json_deep_copy(req->sampling) : NULL;
    r->client_tools = json_array_size(req->client_tools) ? json_deep_copy(req->client_tools) : NULL;
    if (json_array_size(req->images) && (r->images = json_deep_copy(req->images)) != NULL &&
        (r->user_content = ch_context_user_content_json(req->message)) != NULL)
        json_array_extend(r->user_content, r->images); /* the text, then the images */
    r->max_tokens = req->max_tokens;
    r->timeout_s = req->timeout_s > 0 ? req->timeout_s : a->timeout_s;
    r->temperature = req->temperature;
    r->has_temperature = req->has_temperature;
    r->no_tools = req->no_tools;
    r->isolated = req->isolated;
    r->created_ms = ch_now_ms();
    ch_buf_init(&r->text, CH_LLM_MAX_TEXT_BYTES);
    ch_buf_init(&r->round_text, CH_LLM_MAX_TEXT_BYTES);
    if (!r->run_id || !r->session_key || !r->source || !r->message || (req->channel && *req->channel && !r->channel) ||
        (json_object_size(req->sampling) && !r->sampling) || (json_array_size(req->client_tools) && !r->client_tools) ||
        (json_array_size(req->images) && !r->user_content))
        goto nomem;
    return r;
nomem:
    ch_run_free(r);
    ch_error_set(err, CH_ENOMEM, "out of memory");
    return NULL;
}

/* ---- submit: durable insert, then accepted ---- */

struct submit_job {
    struct ch_store_job job;
    struct ch_run *run;
    char *request;  /* jansson-allocated JSON text */
    char *existing; /* owned: the run that holds the idempotency key */
    ch_agent_accepted_cb cb;
    void *data;
    struct ch_error err;
};

int ch_run_insert(struct ch_db *db, struct ch_run *r, char *request, bool running, char **existing,
                  struct ch_error *err)
{
    struct ch_run_rec rec = {0};

    /* Only the run row: the session row is made when the run starts
     * (start_run), which keeps admission to one insert per run. */
    rec.run_id = r->run_id;
    rec.session_key = r->session_key;
    rec.source = r->source;
    rec.request = request;
    rec.created_ms = r->created_ms;
    rec.idempotency_key = r->idem;
    rec.model = r->model_ref;
    if (running) { /* admitted and started in one job (run.c) */
        rec.status = CH_RUN_RUNNING;
        rec.started_ms = r->started_ms;
    }
    return ch_runs_insert(db, &rec, existing, err);
}

static int submit_run(struct ch_db *db, struct ch_store_job *job)
{
    struct submit_job *sj = (struct submit_job *)job;
    return ch_run_insert(db, sj->run, sj->request, false, &sj->existing, &sj->err);
}

static void submit_done(struct ch_store_job *job, int rc)
{
    struct submit_job *sj = (struct submit_job *)job;
    struct ch_agent *a = sj->run->agent;
    struct ch_run *r = sj->run;

    a->submitting--;
    a->jobs--;
    if (r->lane) {
        /* The lane kept this session's order while the insert was out. */
        r->lane->submitting--;
        lane_maybe_free(a, r->lane);
        r->lane = NULL;
    }
    if (rc == 0 && a->stopping) {
        /* Committed as queued: the next start replays it. */
        sj->cb(0, r->run_id, false, NULL, sj->data);
        ch_run_free(r);
    } else if (rc == 0) {
        a->stats.runs_total++;
        sj->cb(0, r->run_id, false, NULL, sj->data);
        ch_sched_enqueue(a, r);
        ch_sched_pump(a);
    } else if (rc == CH_EEXIST && sj->existing) {
        sj->cb(0, sj->existing, true, NULL, sj->data);
        ch_run_free(r);
    } else {
        sj->cb(rc, r->run_id, false, sj->err.msg[0] ? sj->err.msg : ch_strerror(rc), sj->data);
        ch_run_free(r);
    }
    ch_free(sj->existing);
    ch_free(sj->request); /* json_dumps allocates with ch_malloc */
    ch_free(sj);
    ch_agent_maybe_stopped(a);
}

struct refuse_ctx {
    uv_idle_t idle;
    ch_agent_accepted_cb cb;
    void *data;
    int rc;
    char msg[160];
};

static void refuse_closed(uv_handle_t *h)
{
    ch_free(h->data);
}

static void refuse_fire(uv_idle_t *h)
{
    struct refuse_ctx *c = h->data;
    uv_idle_stop(h);
    c->cb(c->rc, NULL, false, c->msg, c->data);
    uv_close((uv_handle_t *)h, refuse_closed);
}

/* Refusals are delivered on a later loop turn, like acceptances. */
static void refuse_later(struct ch_agent *a, int rc, const char *msg, ch_agent_accepted_cb cb, void *data)
{
    struct refuse_ctx *c = ch_calloc(1, sizeof(*c));

    if (!c) {
        cb(CH_ENOMEM, NULL, false, "out of memory", data);
        return;
    }
    c->cb = cb;
    c->data = data;
    c->rc = rc;
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
    uv_idle_init(a->loop, &c->idle);
    c->idle.data = c;
    uv_idle_start(&c->idle, refuse_fire);
}

void ch_agent_submit(struct ch_agent *a, const struct ch_agent_run_req *req, ch_agent_accepted_cb cb, void *data)
{
    struct ch_error err = {0};
    struct submit_job *sj;
    struct lane *l;
    struct ch_run *r;
    char *request;
    char msg[160];
    int rc = 0;

    if (a->stopping) {
        refuse_later(a, CH_ESTATE, "the gateway is shutting down; retry against the restarted gateway", cb, data);
        return;
    }
    if (a->waiting + a->submitting >= a->queue_size) {
        snprintf(msg, sizeof(msg), "the run queue is full (%zu waiting, agents.defaults.queueSize %zu); retry later",
                 a->waiting + a->submitting, a->queue_size);
        refuse_later(a, CH_EBUSY, msg, cb, data);
        return;
    }
    r = ch_run_new_from_req(a, req, &err);
    if (!r) {
        refuse_later(a, err.code ? err.code : CH_EINVAL, err.msg, cb, data);
        return;
    }
    l = lane_get(a, r->session_key);
    if (!l || !(request = ch_run_request_json(r, req->meta_json, req->message_json, &rc))) {
        if (l)
            lane_maybe_free(a, l);
        ch_run_free(r);
        /* Over the store's cap (a message of control characters grows six
         * times escaped) is the request's fault; memory is not. */
        refuse_later(a, l && rc == CH_E_TOO_LARGE ? CH_EINVAL : CH_ENOMEM,
                     l && rc == CH_E_TOO_LARGE ? "the run's request is too large to store (escaped as JSON)"
                                               : "out of memory",
                     cb, data);
        return;
    }
    /* Fast path: an idle session and a free slot (nobody waiting for
     * one).  The insert and the start of the run are one store job, so
     * the run is running as soon as it is accepted.  Not while the runs a
     * crash or stop left behind are being read back: the lane looks idle
     * but is not, and a run taking it now would start ahead of the
     * session's earlier turns, interleaving the transcript (user, user,
     * assistant, assistant).  The slow path's insert is a writer job
     * queued after the resume job, so its done (in submission order)
     * enqueues the run behind them. */
    if (!a->resuming && !l->active && !l->head && !l->submitting && !a->ready_head && a->running < a->max_concurrent) {
        r->lane = l;
        l->active = r;
        a->running++;
        rc = ch_run_admit(r, request, cb, data);
        if (rc == 0)
            return;
        l->active = NULL;
        a->running--;
        r->lane = NULL;
        lane_maybe_free(a, l);
        ch_run_free(r);
        refuse_later(a, rc, rc == CH_EBUSY ? "the store's write queue is full; retry shortly" : "out of memory", cb,
                     data);
        return;
    }
    sj = ch_calloc(1, sizeof(*sj));
    if (!sj) {
        ch_free(request);
        lane_maybe_free(a, l);
        ch_run_free(r);
        refuse_later(a, CH_ENOMEM, "out of memory", cb, data);
        return;
    }
    sj->request = request;
    r->lane = l;
    l->submitting++;
    sj->run = r;
    sj->cb = cb;
    sj->data = data;
    sj->job.run = submit_run;
    sj->job.done = submit_done;
    sj->job.no_savepoint = true; /* ch_runs_insert: one INSERT, after reads */
    if (ch_store_write(a->store, &sj->job) != 0) {
        l->submitting--;
        r->lane = NULL;
        lane_maybe_free(a, l);
        ch_free(sj->request);
        ch_free(sj);
        ch_run_free(r);
        refuse_later(a, CH_EBUSY, "the store's write queue is full; retry shortly", cb, data);
        return;
    }
    a->submitting++;
    a->jobs++;
}

/* ---- lanes ---- */

static struct lane *lane_get(struct ch_agent *a, const char *key)
{
    struct lane *l = ch_map_get(&a->lanes, key, strlen(key));

    if (l)
        return l;
    l = ch_calloc(1, sizeof(*l));
    if (!l || !(l->key = ch_strdup(key)) || ch_map_set(&a->lanes, key, strlen(key), l, NULL) != 0) {
        if (l)
            ch_free(l->key);
        ch_free(l);
        return NULL;
    }
    return l;
}

static void lane_ready(struct ch_agent *a, struct lane *l)
{
    if (l->in_ready || l->active || !l->head)
        return;
    l->in_ready = true;
    l->ready_next = NULL;
    if (a->ready_tail)
        a->ready_tail->ready_next = l;
    else
        a->ready_head = l;
    a->ready_tail = l;
}

static void lane_maybe_free(struct ch_agent *a, struct lane *l)
{
    if (l->active || l->head || l->in_ready || l->submitting)
        return;
    ch_map_del(&a->lanes, l->key, strlen(l->key));
    ch_free(l->key);
    ch_free(l);
}

void ch_sched_enqueue(struct ch_agent *a, struct ch_run *r)
{
    struct lane *l = lane_get(a, r->session_key);

    if (!l || ch_map_set(&a->live, r->run_id, strlen(r->run_id), r, NULL) != 0) {
        ch_log_error("agent: out of memory queueing run %s; it stays queued in the store", r->run_id);
        if (l)
            lane_maybe_free(a, l);
        ch_run_free(r);
        return;
    }
    r->lane = l;
    r->state = RUN_QUEUED;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    a->waiting++;
    lane_ready(a, l);
}

void ch_sched_pump(struct ch_agent *a)
{
    while (!a->stopping && a->running < a->max_concurrent && a->ready_head) {
        struct lane *l = a->ready_head;
        struct ch_run *r = l->head;

        a->ready_head = l->ready_next;
        if (!a->ready_head)
            a->ready_tail = NULL;
        l->in_ready = false;
        if (!r) { /* its only waiting run was aborted */
            lane_maybe_free(a, l);
            continue;
        }
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        r->next = NULL;
        l->active = r;
        a->waiting--;
        a->running++;
        ch_run_start(r);
    }
}

/* A run left DONE: free its slot, its lane if idle, and start the next. */
void ch_sched_run_done(struct ch_agent *a, struct ch_run *r)
{
    struct lane *l = r->lane;

    ch_map_del(&a->live, r->run_id, strlen(r->run_id));
    if (l) {
        if (l->active == r) {
            l->active = NULL;
            a->running--;
        }
        lane_ready(a, l);
        lane_maybe_free(a, l);
    }
    r->lane = NULL;
    ch_sched_pump(a);
    ch_agent_maybe_stopped(a);
}

bool ch_agent_run_is_live(struct ch_agent *a, const char *run_id)
{
    return ch_map_get(&a->live, run_id, strlen(run_id)) != NULL;
}

static void unlink_waiting(struct ch_agent *a, struct ch_run *r)
{
    struct lane *l = r->lane;
    struct ch_run **pp;

    for (pp = &l->head; *pp && *pp != r; pp = &(*pp)->next)
        ;
    if (!*pp)
        return;
    *pp = r->next;
    if (l->tail == r) {
        l->tail = l->head;
        while (l->tail && l->tail->next)
            l->tail = l->tail->next;
    }
    r->next = NULL;
    a->waiting--;
}

int ch_agent_abort(struct ch_agent *a, const char *run_id)
{
    struct ch_run *r = ch_map_get(&a->live, run_id, strlen(run_id));

    if (!r)
        return CH_ENOTFOUND;
    r->abort_requested = true;
    if (r->state == RUN_QUEUED) {
        /* Never started: take it out of its lane and record the abort. */
        unlink_waiting(a, r);
        ch_run_finish(r, "aborted", NULL, "aborted before it started");
        return 0;
    }
    ch_run_abort_inflight(r);
    return 0;
}

size_t ch_agent_abort_session(struct ch_agent *a, const char *session_key, char ***run_ids_out)
{
    struct lane *l = ch_map_get(&a->lanes, session_key, strlen(session_key));
    char **ids = NULL;
    size_t n = 0, got = 0, cap = 0;
    bool collect = run_ids_out != NULL;

    if (run_ids_out)
        *run_ids_out = NULL;
    if (!l)
        return 0;
    while (l && (l->head || (l->active && !l->active->abort_requested))) {
        struct ch_run *r = l->active && !l->active->abort_requested ? l->active : l->head;
        /* NULL-terminated; out of memory ends the list early, never the aborts. */
        if (collect && got + 2 > cap) {
            size_t ncap = cap ? cap * 2 : 4;
            char **nids = ch_realloc(ids, ncap * sizeof(*ids));
            if (nids) {
                ids = nids;
                cap = ncap;
            } else {
                collect = false;
            }
        }
        if (collect && (ids[got] = ch_strdup(r->run_id)) != NULL)
            ids[++got] = NULL;
        else
            collect = false;
        n++;
        /* A run still being admitted is not live yet: the flag makes its
         * admission end it as aborted (run.c admit_done). */
        r->abort_requested = true;
        ch_agent_abort(a, r->run_id);
        l = ch_map_get(&a->lanes, session_key, strlen(session_key));
    }
    if (run_ids_out)
        *run_ids_out = ids;
    return n;
}
