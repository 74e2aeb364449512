/*
 * rest_runs.c: runs by id (issue #4 item 1: "track a run by id"), the
 * REST face of `chela runs`: GET /api/v1/runs/:id, GET /api/v1/runs
 * (newest first, filtered by status and session) and POST
 * /api/v1/runs/:id/abort.  Reads are store read jobs that build the
 * answer on the pool thread; the abort itself is the agent's, on the loop.
 * A run's request (which may carry a caller's secrets, as seed 000's
 * message does) is never echoed; its result text is.
 */
#include <string.h>

#include "api/internal.h"

struct run_job {
    struct ch_store_job job;
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held */
    char *run_id;            /* owned: get, abort */
    char *session_key;       /* owned or NULL: list filter */
    int status;              /* list filter: enum ch_run_status or -1 */
    size_t limit, offset;
    struct ch_list_pos after; /* list: the cursor's position */
    bool live;                /* the agent still has it (loop-side answer) */
    json_t *answer;           /* owned */
};

static void job_free(struct run_job *j)
{
    ch_http_req_unref(j->req);
    ch_free(j->run_id);
    ch_free(j->session_key);
    json_decref(j->answer);
    ch_free(j);
}

static struct run_job *job_new(struct ch_http_req *r, void *api)
{
    struct run_job *j = ch_calloc(1, sizeof(*j));

    if (!j) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    j->api = api;
    j->req = r;
    j->status = -1;
    ch_http_req_ref(r);
    return j;
}

static struct run_job *job_new_id(struct ch_http_req *r, void *api)
{
    char id[CH_STORE_MAX_ID_BYTES + 1];
    struct run_job *j;

    if (ch_api_path_param(r, 0, id, sizeof(id)) != 0)
        return NULL;
    j = job_new(r, api);
    if (j && !(j->run_id = ch_strdup(id))) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return NULL;
    }
    return j;
}

static void submit_read(struct run_job *j)
{
    if (ch_store_read(j->api->store, &j->job) != 0) {
        ch_http_respond_error(j->req, 503, "store_busy", "the store cannot take the request now; retry shortly");
        job_free(j);
    }
}

/* A stored run as JSON; with_result adds result.text.  Job thread. */
static json_t *run_json(const struct ch_run_rec *run, bool with_result)
{
    json_t *o = json_object(), *res;
    int64_t dur = run->finished_ms && run->started_ms ? run->finished_ms - run->started_ms : -1;

    if (!o)
        return NULL;
    json_object_set_new(o, "runId", json_string(run->run_id));
    json_object_set_new(o, "sessionKey", json_string(run->session_key));
    json_object_set_new(o, "source", json_string(run->source));
    json_object_set_new(o, "status", json_string(ch_run_status_name(run->status)));
    json_object_set_new(o, "createdAt", ch_api_time_json(run->created_ms));
    json_object_set_new(o, "startedAt", ch_api_time_json(run->started_ms));
    json_object_set_new(o, "finishedAt", ch_api_time_json(run->finished_ms));
    json_object_set_new(o, "durationMs", dur >= 0 ? json_integer(dur) : json_null());
    json_object_set_new(o, "attempts", json_integer(run->attempts));
    json_object_set_new(o, "model", run->model ? json_string(run->model) : json_null());
    json_object_set_new(o, "usage",
                        json_pack("{s:I, s:I, s:I, s:I}", "inputTokens", (json_int_t)run->usage.input_tokens,
                                  "outputTokens", (json_int_t)run->usage.output_tokens, "cacheReadTokens",
                                  (json_int_t)run->usage.cache_read_tokens, "cacheWriteTokens",
                                  (json_int_t)run->usage.cache_write_tokens));
    json_object_set_new(o, "costUsd", json_real(run->usage.cost_usd));
    json_object_set_new(o, "error", run->error ? json_string(run->error) : json_null());
    json_object_set_new(o, "errorClass", run->error_class ? json_string(run->error_class) : json_null());
    if (!with_result)
        return o;
    /* the message channel the request named (x-openclaw-message-channel) */
    res = run->request ? json_loads(run->request, 0, NULL) : NULL;
    json_object_set_new(o, "channel",
                        json_is_string(json_object_get(res, "channel")) ? json_incref(json_object_get(res, "channel"))
                                                                        : json_null());
    json_decref(res);
    res = run->result ? json_loads(run->result, 0, NULL) : NULL;
    if (json_is_object(res)) {
        json_t *text = json_object_get(res, "text"), *prov = json_object_get(res, "provider");
        json_t *calls = json_object_get(res, "clientToolCalls");
        json_object_set_new(o, "provider", json_is_string(prov) ? json_incref(prov) : json_null());
        /* the client tool calls a /v1 run stopped at (its answer) */
        json_object_set_new(o, "result",
                            json_pack("{s:s, s:O*}", "text", json_is_string(text) ? json_string_value(text) : "",
                                      "clientToolCalls", json_is_array(calls) ? calls : NULL));
    } else {
        json_object_set_new(o, "provider", json_null());
        json_object_set_new(o, "result", json_null());
    }
    json_decref(res);
    if (run->delivery) {
        json_t *d = json_loads(run->delivery, 0, NULL);
        json_object_set_new(o, "delivery", d ? d : json_null());
    }
    return o;
}

/* ---- GET /api/v1/runs/:id ---- */

static int get_run(struct ch_db *db, struct ch_store_job *job)
{
    struct run_job *j = (struct run_job *)job;
    struct ch_run_rec run = {0};
    int rc = ch_runs_get(db, j->run_id, &run);

    if (rc == 0 && !(j->answer = run_json(&run, true)))
        rc = CH_ENOMEM;
    ch_run_rec_release(&run);
    return rc;
}

static void get_done(struct ch_store_job *job, int rc)
{
    struct run_job *j = (struct run_job *)job;

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND) {
        ch_http_respond_error(j->req, 404, "not_found", "no run '%s'", j->run_id);
    } else if (rc || !j->answer) {
        ch_http_respond_error(j->req, 500, "store_error", "reading the run failed: %s", ch_strerror(rc));
    } else {
        /* The store's status lags the loop by a commit; say if it is live. */
        json_object_set_new(j->answer, "live",
                            json_boolean(j->api->agent && ch_agent_run_is_live(j->api->agent, j->run_id)));
        ch_http_respond_json(j->req, 200, j->answer);
        j->answer = NULL;
    }
out:
    job_free(j);
}

void ch_rest_runs_get(struct ch_http_req *r, void *data)
{
    struct run_job *j = job_new_id(r, data);

    if (!j)
        return;
    j->job.run = get_run;
    j->job.done = get_done;
    submit_read(j);
}

/* ---- GET /api/v1/runs ---- */

static int list_run(struct ch_db *db, struct ch_store_job *job)
{
    struct run_job *j = (struct run_job *)job;
    struct ch_run_query q = {
        .limit = j->limit, .offset = j->offset, .after = j->after, .status = j->status, .session_key = j->session_key};
    struct ch_run_list l = {0};
    char next[CH_LIST_CURSOR_LEN + 1];
    json_t *arr;
    int rc = ch_runs_list_recent(db, &q, &l);

    if (rc)
        return rc;
    arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, run_json(&l.items[i], false));
    /* The next page starts after this page's last run, not at an offset:
     * runs created in between would shift an offset and repeat rows. */
    ch_list_pos_encode(&l.next, next);
    j->answer = json_pack("{s:o, s:o, s:I}", "runs", arr, "nextCursor", l.more ? json_string(next) : json_null(),
                          "total", (json_int_t)l.total);
    ch_run_list_release(&l);
    return j->answer ? 0 : CH_ENOMEM;
}

static void list_done(struct ch_store_job *job, int rc)
{
    struct run_job *j = (struct run_job *)job;

    if (!ch_http_req_is_closed(j->req)) {
        if (rc || !j->answer) {
            ch_http_respond_error(j->req, 500, "store_error", "listing runs failed: %s", ch_strerror(rc));
        } else {
            ch_http_respond_json(j->req, 200, j->answer);
            j->answer = NULL;
        }
    }
    job_free(j);
}

void ch_rest_runs_list(struct ch_http_req *r, void *data)
{
    char status[16], key[CH_STORE_MAX_KEY_BYTES + 1], canon[CH_SESSION_KEY_MAX + 1];
    enum ch_run_status st;
    struct run_job *j;
    struct ch_list_pos after = {0};
    size_t limit, offset;
    int rc, krc;

    if (ch_api_page_query_keyset(r, 50, &limit, &offset, &after) != 0)
        return;
    rc = ch_http_req_query(r, "status", status, sizeof(status));
    if (rc == 0 && status[0] && ch_run_status_parse(status, &st) != 0)
        rc = CH_EINVAL;
    if (rc != 0 && rc != CH_ENOTFOUND) {
        ch_http_respond_error(r, 400, "invalid_request",
                              "status must be one of queued, running, ok, error, aborted, timeout");
        return;
    }
    if (!(j = job_new(r, data)))
        return;
    if (rc == 0 && status[0])
        j->status = (int)st;
    rc = ch_http_req_query(r, "sessionKey", key, sizeof(key));
    /* Runs carry canonical keys: `s1` finds agent:main:s1's. */
    if (rc == 0 && key[0] && (krc = ch_api_session_key(key, canon)) != 0) {
        char why[CH_SESSION_KEY_MAX + 64];

        ch_session_key_why(krc, key, why, sizeof(why));
        ch_http_respond_error(r, 400, "invalid_request", "%s", why);
        job_free(j);
        return;
    }
    if (rc == 0 && key[0] && !(j->session_key = ch_strdup(canon))) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return;
    }
    if (rc != 0 && rc != CH_ENOTFOUND) {
        ch_http_respond_error(r, 400, "invalid_request", "sessionKey must be at most %d bytes", CH_STORE_MAX_KEY_BYTES);
        job_free(j);
        return;
    }
    j->limit = limit;
    j->offset = offset;
    j->after = after;
    j->job.run = list_run;
    j->job.done = list_done;
    submit_read(j);
}

/* ---- POST /api/v1/runs/:id/abort ---- */

static int abort_lookup(struct ch_db *db, struct ch_store_job *job)
{
    struct run_job *j = (struct run_job *)job;
    struct ch_run_rec run = {0};
    int rc = ch_runs_get(db, j->run_id, &run);

    if (rc == 0 && !(j->answer = json_pack("{s:b, s:b, s:s, s:s}", "ok", 1, "aborted", 0, "runId", j->run_id, "status",
                                           ch_run_status_name(run.status))))
        rc = CH_ENOMEM;
    ch_run_rec_release(&run);
    return rc;
}

static void abort_done(struct ch_store_job *job, int rc)
{
    struct run_job *j = (struct run_job *)job;

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND)
        ch_http_respond_error(j->req, 404, "not_found", "no run '%s'", j->run_id);
    else if (rc || !j->answer)
        ch_http_respond_error(j->req, 500, "store_error", "reading the run failed: %s", ch_strerror(rc));
    else {
        ch_http_respond_json(j->req, 200, j->answer);
        j->answer = NULL;
    }
out:
    job_free(j);
}

void ch_rest_runs_abort(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct run_job *j;

    if (!(j = job_new_id(r, data)))
        return;
    if (a->agent && ch_agent_abort(a->agent, j->run_id) == 0) {
        ch_log_info("runs: run %s aborted by %s", j->run_id, r->token_name ? r->token_name : "-");
        ch_http_respond_json(
            r, 200, json_pack("{s:b, s:b, s:s, s:s}", "ok", 1, "aborted", 1, "runId", j->run_id, "status", "aborting"));
        job_free(j);
        return;
    }
    /* Not live here: a finished run says how it ended, an unknown one 404. */
    j->job.run = abort_lookup;
    j->job.done = abort_done;
    submit_read(j);
}
