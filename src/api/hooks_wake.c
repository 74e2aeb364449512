/*
 * hooks_wake.c: POST <base>/wake and POST <base>/<name> (mappings).
 *
 * A wake is a system event for a session: `now` runs it at once as a
 * run (source `wake`) on the main session, or, with OpenClaw v4's
 * `sessionKey`, on that session (its canonical key: `agent:main:<key>`
 * unless it is already an agent key, lowercased); `next-heartbeat` stores it in the main session's transcript.
 */
#include <string.h>

#include "api/hooks.h"

#define MAIN_SESSION "agent:main:main"

/* ---- wake: a system event on the main session ---- */

struct wake_job {
    struct ch_store_job job;
    struct ch_api *api;
    struct ch_http_req *req; /* ref held */
    char *content;           /* owned JSON: the event as a system message */
};

/* chela has no heartbeat yet: a next-heartbeat event is kept, durably, as
 * a system entry of the main session's transcript (visible in its
 * history), and the next `now` wake or run of that session follows it. */
static int wake_store(struct ch_db *db, struct ch_store_job *job)
{
    struct wake_job *w = (struct wake_job *)job;
    struct ch_session_rec s = {0};
    struct ch_message_rec m = {0};
    int64_t now = ch_now_ms();
    int rc = ch_sessions_ensure(db, MAIN_SESSION, NULL, now, &s, NULL);

    if (rc == 0) {
        m.session_key = s.key;
        m.session_id = s.session_id;
        snprintf(m.role, sizeof(m.role), "system");
        m.content = w->content;
        m.created_ms = now;
        rc = ch_messages_append(db, &m, NULL);
    }
    ch_session_rec_release(&s);
    return rc;
}

static void wake_done(struct ch_store_job *job, int rc)
{
    struct wake_job *w = (struct wake_job *)job;

    if (ch_http_req_is_closed(w->req)) {
        /* The client left first: the event is kept (or not) all the same,
         * and every hook request is counted by its outcome. */
        if (rc == 0) {
            ch_hooks_count(w->api, NULL, true, CH_HOOK_R_WAKE, NULL);
            ch_log_info("hooks: wake event stored (next-heartbeat); its client (request %s) left before the answer",
                        w->req->request_id);
        } else {
            ch_hooks_count(w->api, NULL, false, rc == CH_ENOSPC ? CH_HOOK_R_STORAGE_FULL : CH_HOOK_R_INTERNAL,
                           "storing the wake event failed");
        }
    } else if (rc == 0) {
        ch_hooks_count(w->api, w->req, true, CH_HOOK_R_WAKE, NULL);
        ch_http_respond_json(w->req, 200,
                             json_pack("{s:b, s:s, s:s}", "ok", 1, "mode", "next-heartbeat", "eventOutcome", "queued"));
    } else if (rc == CH_ENOSPC) {
        ch_http_add_header(w->req, "Retry-After", "1");
        ch_hooks_refuse(w->api, w->req, 503, CH_HOOK_R_STORAGE_FULL, "%s", CH_STORAGE_FULL_MSG);
    } else {
        ch_hooks_refuse(w->api, w->req, 500, CH_HOOK_R_INTERNAL, "storing the wake event failed: %s", ch_strerror(rc));
    }
    ch_http_req_unref(w->req);
    ch_free(w->content);
    ch_free(w);
}

/* key: the session of a `now` wake (NULL: the main one). */
static void wake(struct ch_api *a, struct ch_http_req *r, const char *text, bool now, const char *name, const char *key)
{
    struct ch_hook_in in = {0};
    struct wake_job *w;
    json_t *c;

    if (now) {
        in.source = "wake";
        in.ok_reason = CH_HOOK_R_WAKE;
        in.session_key = ch_strdup(key ? key : MAIN_SESSION);
        in.message = ch_strdup(text);
        in.hook = json_pack("{s:s, s:s, s:s}", "kind", "wake", "name", name, "wakeMode", "now");
        if (!in.session_key || !in.message || !in.hook) {
            ch_hook_in_release(&in);
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
            return;
        }
        ch_hooks_dispatch(a, r, &in);
        return;
    }
    w = ch_calloc(1, sizeof(*w));
    c = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
    if (w && c)
        w->content = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    if (!w || !w->content) {
        if (w)
            ch_free(w);
        ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return;
    }
    w->api = a;
    w->req = r;
    ch_http_req_ref(r);
    w->job.run = wake_store;
    w->job.done = wake_done;
    if (ch_store_write(a->store, &w->job) != 0) {
        ch_http_add_header(r, "Retry-After", "1");
        ch_hooks_refuse(a, r, 503, CH_HOOK_R_QUEUE_FULL, "the store's write queue is full; retry shortly");
        ch_http_req_unref(r);
        ch_free(w->content);
        ch_free(w);
    }
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

void ch_hooks_wake(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const json_t *t, *sk;
    const char *mode;
    char key[CH_SESSION_KEY_MAX + 1];
    bool now;
    json_t *body = NULL;

    if (!ch_hooks_agent_ready(a, r) || ch_hooks_body(a, r, &body) != 0)
        return;
    t = json_object_get(body, "text");
    mode = json_string_value(json_object_get(body, "mode"));
    now = !(mode && !strcmp(mode, "next-heartbeat"));
    sk = json_object_get(body, "sessionKey");
    if (!json_is_string(t) || blank(json_string_value(t)))
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "text required");
    else if (json_string_length(t) > CH_STORE_MAX_CONTENT_BYTES / 4)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "text is longer than %d bytes", CH_STORE_MAX_CONTENT_BYTES / 4);
    else if (sk && (!json_is_string(sk) || blank(json_string_value(sk))))
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "sessionKey must be a non-empty string");
    else if (sk && !now)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "sessionKey requires mode=now");
    else if (sk && (ch_api_session_key(json_string_value(sk), key) != 0 || !ch_hooks_key_ok(key)))
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY,
                        "sessionKey must be agent:<id>:<key>, or at most %d printable bytes without spaces",
                        CH_SESSION_KEY_MAX - 11);
    else
        wake(a, r, json_string_value(t), now, "wake", sk ? key : NULL);
    json_decref(body);
}

void ch_hooks_mapped(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_str sub = ch_hooks_subpath(a, r);
    const json_t *m, *fan;
    struct ch_hook_in in;
    json_t *body = NULL;
    const char *action, *mode;

    if (!ch_hooks_agent_ready(a, r) || ch_hooks_body(a, r, &body) != 0)
        return;
    m = ch_hooks_map_find(a->hooks->mappings, sub, body);
    action = json_string_value(json_object_get(m, "action"));
    fan = json_is_string(json_object_get(m, "forEach")) ? json_object_get(m, "forEach") : NULL;
    if (!m) {
        ch_hooks_refuse(a, r, 404, CH_HOOK_R_NOT_FOUND, "no hook mapping matches '%.*s'", (int)CH_MIN(sub.len, 100),
                        sub.p);
    } else if (action && !strcmp(action, "wake")) {
        struct ch_hook_tpl_ctx ctx = {body, r, sub, ch_now_ms()};
        struct ch_buf text;

        ch_buf_init(&text, CH_STORE_MAX_CONTENT_BYTES / 4);
        mode = json_string_value(json_object_get(m, "wakeMode"));
        if (fan && ch_hooks_fan_wake_text(a, r, m, body, &text) != 0)
            ; /* answered */
        else if (fan && text.len == 0 && !json_array_size(json_object_get(body, json_string_value(fan)))) {
            ch_hooks_count(a, r, true, CH_HOOK_R_MAPPING, NULL);
            ch_http_respond(r, 204, NULL, NULL, 0); /* no items */
        } else if (!fan && ch_hooks_render(json_string_value(json_object_get(m, "textTemplate")), &ctx, &text) != 0)
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "the mapping's rendered text is too long");
        else if (!text.data || blank(text.data)) /* a ch_buf is NUL-terminated once appended to */
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "hook mapping requires text");
        else
            wake(a, r, text.data, !(mode && !strcmp(mode, "next-heartbeat")),
                 json_string_value(json_object_get(m, "id")) ? json_string_value(json_object_get(m, "id")) : "mapping",
                 NULL);
        ch_buf_release(&text);
    } else if (fan) {
        ch_hooks_fanout(a, r, m, body);
    } else if (ch_hooks_parse_mapping(a, r, m, body, &in) == 0) {
        ch_hooks_dispatch(a, r, &in);
    }
    json_decref(body);
}
