/*
 * health.c: liveness, readiness and the detailed status.  /health answers
 * from memory only (probes must never queue behind the store); /ready
 * fails when the store is not open or the loop is lagging past
 * limits.loopLagReadyMs, so a load balancer stops sending work it could
 * not serve in time.
 */
#include <stdio.h>
#include <unistd.h>

#include "api/internal.h"
#include "providers/client.h"

void ch_health_live(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    char body[160];
    int n;

    /* Hand-formatted: this is the hottest route (probes, benchmarks). */
    n = snprintf(body, sizeof(body), "{\"ok\":true,\"status\":\"live\",\"version\":\"%s\",\"uptimeMs\":%llu}",
                 CH_VERSION, (unsigned long long)(a->net ? ch_net_uptime_ms(a->net) : 0));
    ch_http_respond(r, 200, "application/json", body, (size_t)n);
}

void ch_health_ready(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_store_stats ss = {0};
    json_t *failing = json_array();

    if (a->store)
        ch_store_stats(a->store, &ss);
    if (!a->store || !ss.open)
        json_array_append_new(failing, json_string("store"));
    if (a->net && (int64_t)a->net->lag_ms > a->limits->v[CH_LIMIT_LOOP_LAG_READY_MS])
        json_array_append_new(failing, json_string("eventLoop"));
    if (a->stopped)
        json_array_append_new(failing, json_string("shuttingDown"));
    if (json_array_size(failing) == 0) {
        json_decref(failing);
        ch_http_respond(r, 200, "application/json", "{\"ready\":true}", 14);
        return;
    }
    ch_http_respond_json(r, 503, json_pack("{s:b, s:o}", "ready", 0, "failing", failing));
}

/* Runs, LLM calls and usage/cost totals (stored before this start plus
 * what this process added). */
static void add_agent(struct ch_api *a, json_t *o)
{
    struct ch_agent_stats st;
    const struct ch_usage *b = &a->usage_baseline;

    ch_agent_stats(a->agent, &st);
    ch_llm_usage_add(&st.usage, &a->pt_usage); /* OpenAI-compatible pass-through calls */
    st.cost_usd += a->pt_cost_usd;
    json_object_set_new(o, "agent",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "running",
                                  (json_int_t)st.running, "queued", (json_int_t)st.queued, "lanes",
                                  (json_int_t)st.lanes, "runsTotal", (json_int_t)st.runs_total, "runsOk",
                                  (json_int_t)st.runs_ok, "runsFailed", (json_int_t)st.runs_failed, "runsAborted",
                                  (json_int_t)st.runs_aborted, "runsTimeout", (json_int_t)st.runs_timeout,
                                  "runsResumed", (json_int_t)st.runs_resumed, "toolCalls", (json_int_t)st.tool_calls,
                                  "compactions", (json_int_t)st.compactions));
    json_object_set_new(
        o, "usage",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "inputTokens",
                  (json_int_t)(b->input_tokens + (int64_t)st.usage.input_tokens), "outputTokens",
                  (json_int_t)(b->output_tokens + (int64_t)st.usage.output_tokens), "cacheReadTokens",
                  (json_int_t)(b->cache_read_tokens + (int64_t)st.usage.cache_read_tokens), "cacheWriteTokens",
                  (json_int_t)(b->cache_write_tokens + (int64_t)st.usage.cache_write_tokens), "totalTokens",
                  (json_int_t)(b->input_tokens + b->output_tokens + b->cache_read_tokens + b->cache_write_tokens +
                               (int64_t)(st.usage.input_tokens + st.usage.output_tokens + st.usage.cache_read_tokens +
                                         st.usage.cache_write_tokens)),
                  "estimatedCostUsd", b->cost_usd + st.cost_usd));
    json_object_set_new(o, "llm", ch_llm_client_stats_json(ch_agent_llm(a->agent)));
}

void ch_health_detail(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_http_stats hs = {0};
    struct ch_store_stats ss = {0};
    uint64_t rss = 0, anon = 0, live = 0;
    const struct ch_config *c = a->cfg;
    struct ch_map_entry *me;
    size_t it = 0;
    json_t *o;

    if (a->server)
        ch_http_server_stats(a->server, &hs);
    if (a->store)
        ch_store_stats(a->store, &ss);
    if (a->net)
        ch_net_rss_cached(a->net, &rss, &anon);
    else
        ch_net_rss(&rss, &anon);
    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL)
        live += ((struct ch_auth_entry *)me->value)->from_db;
    o = json_pack(
        "{s:b, s:s, s:I, s:I, s:s?, s:s, s:{s:I, s:I, s:I}, s:{s:I}, s:{s:I, s:I, s:I},"
        " s:{s:I, s:I}, s:{s:b, s:s?, s:i, s:I, s:I, s:I, s:I}, s:{s:I}}",
        "ok", 1, "version", CH_VERSION, "uptimeMs", (json_int_t)(a->net ? ch_net_uptime_ms(a->net) : 0), "pid",
        (json_int_t)getpid(), "configPath", c ? c->path : NULL, "stateDir", a->state_dir, "connections", "open",
        (json_int_t)hs.conns_open, "total", (json_int_t)hs.conns_total, "rejected", (json_int_t)hs.conns_rejected,
        "requests", "total", (json_int_t)hs.requests_total, "memory", "rssBytes", (json_int_t)rss, "rssAnonBytes",
        (json_int_t)anon, "heapBytes", (json_int_t)ch_alloc_live_bytes(), "eventLoop", "lagMs",
        (json_int_t)(a->net ? a->net->lag_ms : 0), "lagMaxMs", (json_int_t)(a->net ? a->net->lag_max_ms : 0), "store",
        "ok", ss.open, "path", a->store ? ch_store_path(a->store) : NULL, "schemaVersion", ss.schema_version,
        "writeQueueDepth", (json_int_t)ss.write_queue_depth, "writeQueueMax", (json_int_t)ss.write_queue_max, "commits",
        (json_int_t)ss.commits, "writes", (json_int_t)ss.writes_committed, "tokens", "live", (json_int_t)live);
    if (o && a->agent)
        add_agent(a, o);
    ch_http_respond_json(r, 200, o);
}
