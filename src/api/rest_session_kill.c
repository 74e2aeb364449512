/*
 * rest_session_kill.c: POST /sessions/:key/kill, OpenClaw v4's HTTP stop
 * for a session (admin scope): every queued or running run of the session
 * is aborted.  The key is OpenClaw's canonical one (`s1` and
 * `agent:main:s1` are one session), as its target.canonicalKey; the 404
 * names it as sent.  200 {ok: true, killed: <whether a run was stopped>}; 404
 * {ok: false, error: {type: "not_found", message: "Session not found:
 * <key>"}} for a session the store does not know and that has no live run
 * (a run just admitted may not have its row yet); 400 (in that shape too)
 * for an agentId other than main or a bad key; 503 when the store cannot
 * answer.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

struct kill_job {
    struct ch_store_job job;
    struct ch_api *api;                   /* borrowed */
    struct ch_http_req *req;              /* ref held */
    char key[CH_STORE_MAX_KEY_BYTES + 1]; /* canonical: looked up and aborted */
    char raw[CH_STORE_MAX_KEY_BYTES + 1]; /* as sent, trimmed: named by the 404 */
    bool existed;
};

void ch_api_oc_error(struct ch_http_req *r, int status, const char *type, const char *msg)
{
    ch_http_respond_json(r, status, json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "type", type, "message", msg));
}

bool ch_api_oc_agent_ok(struct ch_http_req *r)
{
    char agent[130];

    if (ch_http_req_query(r, "agentId", agent, sizeof(agent)) == 0 && strcmp(agent, "main") &&
        strcmp(agent, "default")) {
        ch_api_oc_error(r, 400, "invalid_request", "unknown agentId; this gateway runs the agent \"main\"");
        return false;
    }
    return true;
}

bool ch_api_oc_key_param(struct ch_http_req *r, char *out, size_t cap)
{
    char msg[96];
    size_t n = 0;

    /* In a path '+' is a plus (session keys may hold one). */
    if (ch_url_decode_path(ch_http_req_param(r, 0), out, cap, &n) == 0 && n > 0)
        return true;
    snprintf(msg, sizeof(msg), "bad session key: percent-encode it, 1-%zu bytes", cap - 1);
    ch_api_oc_error(r, 400, "invalid_request", msg);
    return false;
}

bool ch_api_oc_session_key(struct ch_http_req *r, char *raw, size_t raw_cap, char *canon, size_t canon_cap)
{
    char msg[CH_STORE_MAX_KEY_BYTES + 64];
    size_t n, skip = 0;
    int rc;

    if (!ch_api_oc_key_param(r, raw, raw_cap))
        return false;
    /* Trimmed as the reference reads the path (a blank key is refused). */
    n = strlen(raw);
    while (n && (raw[n - 1] == ' ' || raw[n - 1] == '\t' || raw[n - 1] == '\n' || raw[n - 1] == '\r'))
        raw[--n] = '\0';
    while (skip < n && (raw[skip] == ' ' || raw[skip] == '\t' || raw[skip] == '\n' || raw[skip] == '\r'))
        skip++;
    memmove(raw, raw + skip, n - skip + 1);
    n -= skip;
    rc = n ? ch_session_key_canon(raw, n, canon, canon_cap) : CH_EINVAL;
    if (rc == 0)
        return true;
    if (!n)
        snprintf(msg, sizeof(msg), "invalid session key");
    else
        ch_session_key_why(rc, raw, msg, sizeof(msg));
    ch_api_oc_error(r, 400, "invalid_request", msg);
    return false;
}

static int lookup(struct ch_db *db, struct ch_store_job *job)
{
    struct kill_job *j = (struct kill_job *)job;
    struct ch_session_rec s = {0};
    int rc = ch_sessions_get(db, j->key, &s);

    j->existed = rc == 0;
    ch_session_rec_release(&s);
    return rc == CH_ENOTFOUND ? 0 : rc;
}

static void done(struct ch_store_job *job, int rc)
{
    struct kill_job *j = (struct kill_job *)job;
    char msg[CH_STORE_MAX_KEY_BYTES + 40];
    size_t n;

    if (ch_http_req_is_closed(j->req)) {
    } else if (rc) {
        ch_api_oc_error(j->req, 503, "unavailable", "reading the session failed; retry shortly");
    } else {
        n = j->api->agent ? ch_agent_abort_session(j->api->agent, j->key, NULL) : 0;
        if (!j->existed && n == 0) {
            snprintf(msg, sizeof(msg), "Session not found: %s", j->raw);
            ch_api_oc_error(j->req, 404, "not_found", msg);
        } else {
            ch_http_respond_json(j->req, 200, json_pack("{s:b, s:b}", "ok", 1, "killed", n > 0));
        }
    }
    ch_http_req_unref(j->req);
    ch_free(j);
}

void ch_rest_sessions_kill(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct kill_job *j;

    if (!ch_api_oc_agent_ok(r))
        return;
    if (!(j = ch_calloc(1, sizeof(*j)))) {
        ch_api_oc_error(r, 500, "internal", "out of memory");
        return;
    }
    if (!ch_api_oc_session_key(r, j->raw, sizeof(j->raw), j->key, sizeof(j->key))) {
        ch_free(j);
        return;
    }
    j->api = a;
    j->req = r;
    ch_http_req_ref(r);
    j->job.run = lookup;
    j->job.done = done;
    if (ch_store_read(a->store, &j->job) != 0) {
        ch_api_oc_error(r, 503, "unavailable", "the store cannot take the request now; retry shortly");
        ch_http_req_unref(r);
        ch_free(j);
    }
}
