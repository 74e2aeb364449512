/*
 * oc_methods_usage.c: status, sessions.usage, usage.status, usage.cost and
 * chat.inject (spec 2.2), as store jobs built off the loop thread.  Cost
 * and token totals come from the store's per-session counters and the
 * usage_daily table (docs/internals/store.md).
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"
#include "providers/client.h"

#define STATUS_RECENT 10
#define USAGE_SESSIONS_MAX 1000

static json_t *usage_obj(const struct ch_usage *u)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "input", (json_int_t)u->input_tokens, "output",
                     (json_int_t)u->output_tokens, "cacheRead", (json_int_t)u->cache_read_tokens, "cacheWrite",
                     (json_int_t)u->cache_write_tokens, "totalTokens",
                     (json_int_t)(u->input_tokens + u->output_tokens + u->cache_read_tokens + u->cache_write_tokens),
                     "totalCost", u->cost_usd);
}

/* ---- status ---- */

static json_t *status_row(struct ch_db *db, const struct ch_session_rec *s, const struct ch_llm_catalog *cat,
                          int64_t now)
{
    json_t *row = ch_oc_session_row(db, s, cat, now);
    int64_t used = s->context_tokens, window = json_integer_value(json_object_get(row, "contextTokens"));

    if (!row)
        return NULL;
    json_object_set_new(row, "remainingTokens", json_integer(window > used ? window - used : 0));
    json_object_set_new(row, "percentUsed", json_integer(window > 0 ? (used * 100) / window : 0));
    json_object_set_new(row, "flags", json_array());
    return row;
}

static int status_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    struct ch_session_query q = {.limit = STATUS_RECENT};
    struct ch_session_list l = {0};
    json_t *recent, *defaults, *agents;
    int rc = ch_sessions_list(db, &q, &l);

    if (rc)
        return rc;
    recent = json_array();
    for (size_t i = 0; recent && i < l.count; i++)
        json_array_append_new(recent, status_row(db, &l.items[i], j->cat, j->now_ms));
    defaults = ch_oc_session_defaults(j->cat);
    json_object_del(defaults, "modelProvider");
    agents = json_pack("[{s:s, s:b, s:s, s:n}]", "agentId", "main", "enabled", 0, "every", "0m", "everyMs");
    j->answer = json_pack("{s:s, s:{s:s, s:o}, s:[], s:o, s:{s:[s], s:I, s:o, s:o, s:[{s:s, s:s, s:I, s:O}]}}",
                          "runtimeVersion", CH_VERSION, "heartbeat", "defaultAgentId", "main", "agents",
                          agents ? agents : json_array(), "channelSummary", "queuedSystemEvents", json_array(),
                          "sessions", "paths", j->store_path, "count", (json_int_t)l.total, "defaults",
                          defaults ? defaults : json_object(), "recent", recent ? recent : json_array(), "byAgent",
                          "agentId", "main", "path", j->store_path, "count", (json_int_t)l.total, "recent", recent);
    j->health = ch_oc_health_sessions(&l, j->store_path, j->now_ms);
    ch_session_list_release(&l);
    return j->answer ? 0 : CH_ENOMEM;
}

static void status_done_events(struct oc_sjob *j)
{
    /* Queued system events live on the loop thread: added here. */
    json_t *ev = json_object_get(j->answer, "queuedSystemEvents");
    size_t i;
    json_t *e;

    json_array_foreach(j->oc->events, i, e) json_array_append(ev, json_object_get(e, "text"));
}

static void status_done(struct ch_store_job *job, int rc)
{
    struct oc_sjob *j = (struct oc_sjob *)job;

    if (rc == 0 && j->answer)
        status_done_events(j);
    ch_oc_sjob_finish(job, rc); /* answers and frees */
}

void ch_oc_m_status(struct oc_req *q)
{
    struct oc_sjob *j = ch_oc_sjob_new(q, status_run);

    if (!j)
        return;
    j->job.done = status_done;
    ch_oc_sjob_submit(j, false);
}

/* ---- sessions.usage ---- */

static int susage_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const char *key = j->key[0] ? j->key : NULL; /* canonical */
    const json_t *lim = json_object_get(j->params, "limit");
    struct ch_session_query q = {.limit = lim ? (size_t)CH_MIN(json_integer_value(lim), USAGE_SESSIONS_MAX) : 100};
    struct ch_session_list l = {0};
    struct ch_session_rec one = {0};
    struct ch_usage tot = {0};
    json_t *rows = json_array();
    int rc = 0;

    if (key) {
        rc = ch_sessions_get(db, key, &one);
        if (rc == 0) {
            l.items = &one;
            l.count = 1;
        } else if (rc == CH_ENOTFOUND) {
            rc = 0;
        }
    } else {
        rc = ch_sessions_list(db, &q, &l);
    }
    for (size_t i = 0; rc == 0 && rows && i < l.count; i++) {
        const struct ch_session_rec *s = &l.items[i];
        json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:o}", "key", s->key, "sessionId", s->session_id,
                                              "updatedAt", (json_int_t)s->updated_ms, "usage", usage_obj(&s->usage)));
        tot.input_tokens += s->usage.input_tokens;
        tot.output_tokens += s->usage.output_tokens;
        tot.cache_read_tokens += s->usage.cache_read_tokens;
        tot.cache_write_tokens += s->usage.cache_write_tokens;
        tot.cost_usd += s->usage.cost_usd;
    }
    if (key)
        ch_session_rec_release(&one);
    else
        ch_session_list_release(&l);
    if (rc) {
        json_decref(rows);
        return rc;
    }
    j->answer = json_pack("{s:I, s:o, s:o}", "updatedAt", (json_int_t)j->now_ms, "sessions", rows ? rows : json_array(),
                          "totals", usage_obj(&tot));
    return j->answer ? 0 : CH_ENOMEM;
}

void ch_oc_m_sessions_usage(struct oc_req *q)
{
    /* With `key`, the one session that key names in canonical form. */
    struct oc_sjob *j =
        json_object_get(q->params, "key") ? ch_oc_sjob_new_key(q, susage_run, "key") : ch_oc_sjob_new(q, susage_run);

    if (j)
        ch_oc_sjob_submit(j, false);
}

/* ---- usage.status, usage.cost ---- */

void ch_oc_m_usage_status(struct oc_req *q)
{
    /* Provider quota windows are not tracked: none to report. */
    ch_oc_res_ok(q->conn, q->id, json_pack("{s:I, s:[]}", "updatedAt", (json_int_t)ch_now_ms(), "providers"));
}

static int cost_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const json_t *dv = json_object_get(j->params, "days");
    const char *from = json_string_value(json_object_get(j->params, "startDate"));
    const char *to = json_string_value(json_object_get(j->params, "endDate"));
    int64_t days = dv ? CH_MIN(json_integer_value(dv), 3660) : 30;
    struct ch_usage_list ul = {0};
    struct ch_usage tot = {0};
    char from_buf[11], to_buf[11];
    json_t *daily;
    int rc;

    if (!to) {
        ch_usage_day(j->now_ms, to_buf);
        to = to_buf;
    }
    if (!from) {
        ch_usage_day(j->now_ms - (days - 1) * 86400000LL, from_buf);
        from = from_buf;
    }
    rc = ch_usage_query(db, from, to, CH_USAGE_BY_DAY, &ul);
    if (rc == CH_EINVAL) {
        j->err_code = "INVALID_REQUEST";
        snprintf(j->err_msg, sizeof(j->err_msg), "invalid usage.cost params: dates must be YYYY-MM-DD");
        return rc;
    }
    if (rc)
        return rc;
    daily = json_array();
    for (size_t i = 0; daily && i < ul.count; i++) {
        json_t *d = usage_obj(&ul.items[i].usage);
        if (d)
            json_object_set_new(d, "date", json_string(ul.items[i].day));
        json_array_append_new(daily, d);
        tot.input_tokens += ul.items[i].usage.input_tokens;
        tot.output_tokens += ul.items[i].usage.output_tokens;
        tot.cache_read_tokens += ul.items[i].usage.cache_read_tokens;
        tot.cache_write_tokens += ul.items[i].usage.cache_write_tokens;
        tot.cost_usd += ul.items[i].usage.cost_usd;
    }
    ch_usage_list_release(&ul);
    j->answer =
        json_pack("{s:I, s:I, s:s, s:s, s:o, s:o}", "updatedAt", (json_int_t)j->now_ms, "days", (json_int_t)days,
                  "startDate", from, "endDate", to, "daily", daily ? daily : json_array(), "totals", usage_obj(&tot));
    return j->answer ? 0 : CH_ENOMEM;
}

void ch_oc_m_usage_cost(struct oc_req *q)
{
    struct oc_sjob *j = ch_oc_sjob_new(q, cost_run);

    if (j)
        ch_oc_sjob_submit(j, false);
}

/* ---- chat.inject ---- */

static int inject_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const char *key = j->key;
    const char *text = json_string_value(json_object_get(j->params, "message"));
    struct ch_session_rec s = {0};
    struct ch_message_rec m = {0};
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
    char *ctext = content ? json_dumps(content, JSON_COMPACT) : NULL;
    int64_t seq = 0;
    int rc = ctext ? ch_sessions_ensure(db, key, NULL, j->now_ms, &s, NULL) : CH_ENOMEM;

    json_decref(content);
    if (rc == 0) {
        m.session_key = (char *)key;
        m.session_id = s.session_id;
        snprintf(m.role, sizeof(m.role), "assistant");
        m.content = ctext;
        m.created_ms = j->now_ms;
        rc = ch_messages_append(db, &m, &seq);
    }
    if (rc == 0) {
        j->answer = json_pack("{s:b}", "ok", 1);
        if (j->answer)
            json_object_set_new(j->answer, "messageId", json_sprintf("%s:%lld", s.session_id, (long long)seq));
        rc = j->answer ? 0 : CH_ENOMEM;
    }
    ch_free(ctext);
    ch_session_rec_release(&s);
    return rc;
}

void ch_oc_m_chat_inject(struct oc_req *q)
{
    char key[CH_SESSION_KEY_MAX + 1];
    struct oc_sjob *j;

    if (!ch_oc_req_key(q, json_string_value(json_object_get(q->params, "sessionKey")), key, sizeof(key)))
        return;
    if (!ch_agent_session_key_valid(key)) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST",
                      "invalid chat.inject params: a session key is printable, without spaces", NULL);
        return;
    }
    if ((j = ch_oc_sjob_new(q, inject_run)) != NULL) {
        memcpy(j->key, key, sizeof(key));
        ch_oc_sjob_submit(j, true);
    }
}
