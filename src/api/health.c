/*
 * health.c: liveness, readiness and the detailed status.  /health answers
 * from memory only (probes must never queue behind the store); /ready
 * fails when the store is not open or the loop is lagging past
 * limits.loopLagReadyMs, so a load balancer stops sending work it could
 * not serve in time.
 */
#include <stdio.h>
#include <string.h>
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

/* OpenClaw v4's startup probe: started once serving (chela starts its
 * sidecars before it listens), "draining" once a stop began. */
void ch_health_startup(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    bool draining = a->shutting_down || a->stopped;
    char body[200];
    int n;

    n = snprintf(body, sizeof(body), "{\"ok\":%s,\"status\":\"%s\",\"version\":\"%s\",\"uptimeMs\":%llu}",
                 draining ? "false" : "true", draining ? "draining" : "started", CH_VERSION,
                 (unsigned long long)(a->net ? ch_net_uptime_ms(a->net) : 0));
    ch_http_respond(r, draining ? 503 : 200, "application/json", body, (size_t)n);
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

/*
 * /health/detail is written straight into a buffer, in the bytes jansson
 * gave it (json_pack, then its encoder): building and freeing ~40 nodes
 * and encoding them was ~140,000 instructions of a ~175,000 request.
 * Every step is skipped once one has failed (w->rc).
 */
struct jw {
    struct ch_buf b;
    int rc;
    bool first; /* no member yet in the innermost object */
};

/* Keys are literals here: plain ASCII that needs no escape. */
static void jw_key(struct jw *w, const char *k)
{
    size_t n = strlen(k);
    char *o;

    if (w->rc || (w->rc = ch_buf_reserve(&w->b, n + 4)) != 0)
        return;
    o = w->b.data + w->b.len;
    if (!w->first)
        *o++ = ',';
    w->first = false;
    *o++ = '"';
    memcpy(o, k, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    *o = '\0';
    w->b.len = (size_t)(o - w->b.data);
}

static void jw_open(struct jw *w, const char *k)
{
    if (k)
        jw_key(w, k);
    if (!w->rc)
        w->rc = ch_buf_append_char(&w->b, '{');
    w->first = true;
}

static void jw_close(struct jw *w)
{
    if (!w->rc)
        w->rc = ch_buf_append_char(&w->b, '}');
    w->first = false;
}

static void jw_int(struct jw *w, const char *k, json_int_t v)
{
    jw_key(w, k);
    if (!w->rc)
        w->rc = ch_http_json_int(&w->b, v);
}

static void jw_lit(struct jw *w, const char *k, const char *lit)
{
    jw_key(w, k);
    if (!w->rc)
        w->rc = ch_buf_append_str(&w->b, lit);
}

/* A string, or null for NULL (json_pack's "s?"). */
static void jw_str(struct jw *w, const char *k, const char *v)
{
    jw_key(w, k);
    if (!w->rc)
        w->rc = v ? ch_http_json_str(&w->b, v, strlen(v)) : ch_buf_append_str(&w->b, "null");
}

/* A jansson value, stolen; NULL leaves the key out (json_object_set_new
 * refused it). */
static void jw_json(struct jw *w, const char *k, json_t *v)
{
    char *text;

    if (!v)
        return;
    jw_key(w, k);
    if (!w->rc && (w->rc = ch_http_json_put(v, &w->b)) == CH_AGAIN) {
        text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        w->rc = text ? ch_buf_append_str(&w->b, text) : CH_ENOMEM;
        ch_free(text);
    }
    json_decref(v);
}

/* Runs, LLM calls and usage/cost totals (stored before this start plus
 * what this process added). */
/* A thread's busy polling before it sleeps (gateway.busyPollMicros). */
static void busy_poll_json(struct jw *w, const struct ch_spin *sp)
{
    jw_open(w, "busyPoll");
    jw_int(w, "maxMicros", (json_int_t)(sp->max_ns / 1000u));
    jw_int(w, "budgetMicros", (json_int_t)(sp->budget_ns / 1000u));
    jw_int(w, "caught", (json_int_t)sp->hits);
    jw_int(w, "grown", (json_int_t)sp->grows);
    jw_int(w, "shrunk", (json_int_t)sp->shrinks);
    jw_int(w, "pollingMs", (json_int_t)(sp->spin_ns / 1000000u));
    jw_int(w, "skippedSaturated", (json_int_t)sp->skipped);
    jw_int(w, "coreTaken", (json_int_t)sp->taken);
    jw_lit(w, "saturated", sp->saturated || ch_spin_process_saturated() ? "true" : "false");
    jw_close(w);
}

static void put_agent(struct ch_api *a, struct jw *w)
{
    struct ch_agent_stats st;
    const struct ch_usage *b = &a->usage_baseline;

    ch_agent_stats(a->agent, &st);
    ch_llm_usage_add(&st.usage, &a->pt_usage); /* OpenAI-compatible pass-through calls */
    st.cost_usd += a->pt_cost_usd;
    jw_open(w, "agent");
    jw_int(w, "running", (json_int_t)st.running);
    jw_int(w, "queued", (json_int_t)st.queued);
    jw_int(w, "lanes", (json_int_t)st.lanes);
    jw_int(w, "runsTotal", (json_int_t)st.runs_total);
    jw_int(w, "runsOk", (json_int_t)st.runs_ok);
    jw_int(w, "runsFailed", (json_int_t)st.runs_failed);
    jw_int(w, "runsAborted", (json_int_t)st.runs_aborted);
    jw_int(w, "runsTimeout", (json_int_t)st.runs_timeout);
    jw_int(w, "runsResumed", (json_int_t)st.runs_resumed);
    jw_int(w, "toolCalls", (json_int_t)st.tool_calls);
    jw_int(w, "compactions", (json_int_t)st.compactions);
    /* The in-memory transcripts (agents.defaults.transcriptCacheBytes):
     * a low hit rate means turns reload their history from the store. */
    jw_open(w, "transcriptCache");
    jw_int(w, "bytes", (json_int_t)st.transcript_cache_bytes);
    jw_int(w, "hits", (json_int_t)st.transcript_cache_hits);
    jw_int(w, "misses", (json_int_t)st.transcript_cache_misses);
    jw_close(w);
    jw_close(w);
    jw_open(w, "usage");
    jw_int(w, "inputTokens", (json_int_t)(b->input_tokens + (int64_t)st.usage.input_tokens));
    jw_int(w, "outputTokens", (json_int_t)(b->output_tokens + (int64_t)st.usage.output_tokens));
    jw_int(w, "cacheReadTokens", (json_int_t)(b->cache_read_tokens + (int64_t)st.usage.cache_read_tokens));
    jw_int(w, "cacheWriteTokens", (json_int_t)(b->cache_write_tokens + (int64_t)st.usage.cache_write_tokens));
    jw_int(w, "totalTokens",
           (json_int_t)(b->input_tokens + b->output_tokens + b->cache_read_tokens + b->cache_write_tokens +
                        (int64_t)(st.usage.input_tokens + st.usage.output_tokens + st.usage.cache_read_tokens +
                                  st.usage.cache_write_tokens)));
    jw_json(w, "estimatedCostUsd", json_real(b->cost_usd + st.cost_usd));
    jw_close(w);
    jw_json(w, "llm", ch_llm_client_stats_json(ch_agent_llm(a->agent)));
}

/* getpid(2) is a system call on every request otherwise (glibc stopped
 * caching it); the gateway never forks a copy of itself that serves. */
static pid_t own_pid(void)
{
    static pid_t pid;

    if (!pid)
        pid = getpid();
    return pid;
}

void ch_health_detail(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_http_stats hs = {0};
    struct ch_store_stats ss = {0};
    uint64_t rss = 0, anon = 0, live = 0;
    const struct ch_config *c = a->cfg;
    struct ch_map_entry *me;
    struct jw w = {.first = true};
    size_t it = 0;

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
    ch_buf_init(&w.b, 1024 * 1024);
    jw_open(&w, NULL);
    jw_lit(&w, "ok", "true");
    jw_str(&w, "version", CH_VERSION);
    jw_int(&w, "uptimeMs", (json_int_t)(a->net ? ch_net_uptime_ms(a->net) : 0));
    jw_int(&w, "pid", (json_int_t)own_pid());
    jw_str(&w, "configPath", c ? c->path : NULL);
    jw_str(&w, "stateDir", a->state_dir);
    jw_open(&w, "connections");
    jw_int(&w, "open", (json_int_t)hs.conns_open);
    jw_int(&w, "total", (json_int_t)hs.conns_total);
    jw_int(&w, "rejected", (json_int_t)hs.conns_rejected);
    jw_close(&w);
    jw_open(&w, "requests");
    jw_int(&w, "total", (json_int_t)hs.requests_total);
    jw_close(&w);
    jw_open(&w, "memory");
    jw_int(&w, "rssBytes", (json_int_t)rss);
    jw_int(&w, "rssAnonBytes", (json_int_t)anon);
    jw_int(&w, "heapBytes", (json_int_t)ch_alloc_live_bytes());
    jw_close(&w);
    jw_open(&w, "eventLoop");
    jw_int(&w, "lagMs", (json_int_t)(a->net ? a->net->lag_ms : 0));
    jw_int(&w, "lagMaxMs", (json_int_t)(a->net ? a->net->lag_max_ms : 0));
    if (a->net)
        busy_poll_json(&w, &a->net->spin);
    jw_close(&w);
    jw_open(&w, "store");
    jw_lit(&w, "ok", ss.open ? "true" : "false");
    jw_str(&w, "path", a->store ? ch_store_path(a->store) : NULL);
    jw_int(&w, "schemaVersion", (json_int_t)ss.schema_version);
    jw_int(&w, "writeQueueDepth", (json_int_t)ss.write_queue_depth);
    jw_int(&w, "writeQueueMax", (json_int_t)ss.write_queue_max);
    jw_int(&w, "commits", (json_int_t)ss.commits);
    jw_int(&w, "writerYields", (json_int_t)ss.yields);
    jw_int(&w, "writes", (json_int_t)ss.writes_committed);
    jw_int(&w, "walWrites", (json_int_t)ss.wal_writes);
    jw_int(&w, "walPieces", (json_int_t)ss.wal_pieces);
    jw_int(&w, "walDropped", (json_int_t)ss.wal_dropped);
    busy_poll_json(&w, &ss.writer_spin);
    jw_close(&w);
    jw_open(&w, "tokens");
    jw_int(&w, "live", (json_int_t)live);
    jw_close(&w);
    if (a->agent)
        put_agent(a, &w);
    jw_close(&w);
    if (w.rc == 0)
        ch_http_respond(r, 200, "application/json", w.b.data, w.b.len);
    else
        ch_http_respond_error(r, 500, "internal_error", "the response could not be rendered");
    ch_buf_release(&w.b);
}
