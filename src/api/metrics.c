/*
 * metrics.c: Prometheus text exposition (version 0.0.4).  Counters are
 * plain integers touched only on the loop thread: requests by route
 * pattern and status, one latency histogram, plus gauges read at scrape
 * time (connections, RSS, store queue, loop lag).
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "api/hooks.h"
#include "providers/client.h"

static const double bounds[CH_METRICS_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                  0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

int ch_metrics_init(struct ch_api *a)
{
    struct ch_metrics *m = &a->metrics;

    m->route_count = a->router.count + 1;
    m->routes = ch_calloc(m->route_count, sizeof(*m->routes));
    if (!m->routes)
        return CH_ENOMEM;
    for (size_t i = 0; i < a->router.count; i++)
        m->routes[i].label = a->router.routes[i].pattern;
    m->routes[a->router.count].label = "unmatched";
    return 0;
}

void ch_metrics_release(struct ch_metrics *m)
{
    ch_free(m->routes);
    m->routes = NULL;
}

void ch_metrics_observe(struct ch_api *a, const struct ch_http_req *r, uint64_t latency_ns)
{
    struct ch_metrics *m = &a->metrics;
    struct ch_metrics_route *mr;
    double s = (double)latency_ns / 1e9;
    size_t idx = m->route_count - 1, i;

    if (!m->routes)
        return;
    if (r->route)
        idx = (size_t)(r->route - a->router.routes);
    if (idx >= m->route_count)
        idx = m->route_count - 1;
    mr = &m->routes[idx];
    for (i = 0; i < mr->n && mr->status[i] != r->status; i++)
        ;
    if (i == mr->n) {
        if (mr->n == CH_METRICS_STATUSES)
            i = mr->n - 1; /* bounded label set: the last slot absorbs the rest */
        else
            mr->status[mr->n++] = r->status;
    }
    mr->count[i]++;
    for (i = 0; i < CH_METRICS_BUCKETS && s > bounds[i]; i++)
        ;
    m->hist[i]++;
    m->latency_sum_s += s;
    m->latency_count++;
}

static void gauge(struct ch_buf *b, const char *name, const char *help, const char *type, double v)
{
    ch_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* A counter family with one label, each value on its line. */
static void family(struct ch_buf *b, const char *name, const char *help, const char *label, const char *const *names,
                   const double *v, size_t n)
{
    ch_buf_appendf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t i = 0; i < n; i++)
        ch_buf_appendf(b, "%s{%s=\"%s\"} %.17g\n", name, label, names[i], v[i]);
}

/* Runs, the model calls behind them, and what retention deleted: the
 * figures /health/detail has, as Prometheus series. */
static void metrics_agent(struct ch_api *a, struct ch_buf *b)
{
    static const char *const statuses[] = {"ok", "error", "aborted", "timeout"};
    static const char *const results[] = {"ok", "failed", "aborted"};
    static const char *const kinds[] = {"input", "output", "cache_read", "cache_write"};
    static const char *const tables[] = {"audit", "runs", "sessions"};
    const char *classes[CH_LLM_ERR_UNKNOWN + 1];
    double v[CH_LLM_ERR_UNKNOWN + 1];
    struct ch_agent_stats st;
    struct ch_llm_stats ls;

    ch_agent_stats(a->agent, &st);
    gauge(b, "chela_runs_running", "Agent runs executing now.", "gauge", (double)st.running);
    gauge(b, "chela_runs_queued", "Agent runs waiting for a slot or their session's lane.", "gauge", (double)st.queued);
    family(b, "chela_runs_total", "Agent runs ended since start, by status.", "status", statuses,
           (double[]){(double)st.runs_ok, (double)st.runs_failed, (double)st.runs_aborted, (double)st.runs_timeout}, 4);
    gauge(b, "chela_runs_resumed_total", "Runs replayed after a restart.", "counter", (double)st.runs_resumed);
    gauge(b, "chela_tool_calls_total", "Tool calls made by runs.", "counter", (double)st.tool_calls);
    ch_llm_client_stats(ch_agent_llm(a->agent), &ls);
    gauge(b, "chela_llm_calls_in_flight", "Model calls in flight (runs and /v1 pass-through).", "gauge",
          (double)ls.in_flight);
    family(b, "chela_llm_calls_total", "Model calls ended, by result.", "result", results,
           (double[]){(double)ls.calls_ok, (double)ls.calls_failed, (double)ls.calls_aborted}, 3);
    for (int i = 0; i <= CH_LLM_ERR_UNKNOWN; i++) {
        classes[i] = ch_llm_err_name((enum ch_llm_err)i);
        v[i] = (double)ls.failures[i];
    }
    family(b, "chela_llm_call_failures_total", "Failed model calls, by the class of their last error.", "class",
           classes, v, CH_ARRAY_SIZE(v));
    gauge(b, "chela_llm_attempts_total", "Requests sent to providers.", "counter", (double)ls.attempts);
    gauge(b, "chela_llm_retries_total", "Attempts after the first on one model.", "counter", (double)ls.retries);
    gauge(b, "chela_llm_fallbacks_total", "Moves to the next model of a fallback chain.", "counter",
          (double)ls.fallbacks);
    gauge(b, "chela_llm_key_rotations_total", "Retries on another API key.", "counter", (double)ls.key_rotations);
    gauge(b, "chela_llm_breaker_rejections_total", "Calls failed fast on an open circuit breaker.", "counter",
          (double)ls.breaker_rejections);
    family(b, "chela_llm_tokens_total", "Tokens of model calls that reported usage, by kind.", "kind", kinds,
           (double[]){(double)ls.tokens.input_tokens, (double)ls.tokens.output_tokens,
                      (double)ls.tokens.cache_read_tokens, (double)ls.tokens.cache_write_tokens},
           4);
    gauge(b, "chela_llm_cost_usd_total", "Cost of model calls at the configured prices, in US dollars.", "counter",
          ls.cost_usd);
    family(b, "chela_retention_deleted_total", "Rows deleted by retention since start.", "table", tables,
           (double[]){(double)a->retention.total[0], (double)a->retention.total[1], (double)a->retention.total[2]}, 3);
}

void ch_metrics_handler(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_metrics *m = &a->metrics;
    struct ch_http_stats hs = {0};
    struct ch_store_stats ss = {0};
    uint64_t rss = 0, anon = 0, cum = 0;
    struct ch_buf b;

    ch_buf_init(&b, 1 << 20);
    if (a->server)
        ch_http_server_stats(a->server, &hs);
    if (a->store)
        ch_store_stats(a->store, &ss);
    if (a->net)
        ch_net_rss_cached(a->net, &rss, &anon);
    else
        ch_net_rss(&rss, &anon);

    ch_buf_append_str(&b, "# HELP chela_http_requests_total HTTP requests by route pattern and status.\n"
                          "# TYPE chela_http_requests_total counter\n");
    for (size_t i = 0; i < m->route_count; i++)
        for (size_t j = 0; j < m->routes[i].n; j++)
            ch_buf_appendf(&b, "chela_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", m->routes[i].label,
                           m->routes[i].status[j], (unsigned long long)m->routes[i].count[j]);
    ch_buf_append_str(&b, "# HELP chela_http_request_duration_seconds Time from request head to response end.\n"
                          "# TYPE chela_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < CH_METRICS_BUCKETS; i++) {
        cum += m->hist[i];
        ch_buf_appendf(&b, "chela_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
                       (unsigned long long)cum);
    }
    cum += m->hist[CH_METRICS_BUCKETS];
    ch_buf_appendf(&b,
                   "chela_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "chela_http_request_duration_seconds_sum %.9f\n"
                   "chela_http_request_duration_seconds_count %llu\n",
                   (unsigned long long)cum, m->latency_sum_s, (unsigned long long)m->latency_count);
    gauge(&b, "chela_connections_open", "Open client connections.", "gauge", (double)hs.conns_open);
    gauge(&b, "chela_connections_total", "Accepted connections since start.", "counter", (double)hs.conns_total);
    gauge(&b, "chela_connections_rejected_total", "Connections refused over limits.maxConnections.", "counter",
          (double)hs.conns_rejected);
    gauge(&b, "chela_process_resident_memory_bytes", "Resident set size.", "gauge", (double)rss);
    gauge(&b, "chela_process_anon_memory_bytes", "Anonymous (private) resident memory.", "gauge", (double)anon);
    gauge(&b, "chela_heap_bytes", "Bytes allocated through chela's allocator.", "gauge", (double)ch_alloc_live_bytes());
    gauge(&b, "chela_event_loop_lag_seconds", "Last measured event-loop lag.", "gauge",
          a->net ? (double)a->net->lag_ms / 1000.0 : 0);
    gauge(&b, "chela_store_write_queue_depth", "Writes waiting for the store writer.", "gauge",
          (double)ss.write_queue_depth);
    gauge(&b, "chela_store_commits_total", "Store transactions committed.", "counter", (double)ss.commits);
    gauge(&b, "chela_store_writes_total", "Store write jobs committed.", "counter", (double)ss.writes_committed);
    gauge(&b, "chela_auth_failures_total", "Requests refused for a missing or bad credential.", "counter",
          (double)m->auth_failures);
    gauge(&b, "chela_rate_limited_total", "Requests refused by a rate limit.", "counter", (double)m->rate_limited);
    gauge(&b, "chela_audit_dropped_total", "Audit rows dropped because the store queue was full.", "counter",
          (double)m->audit_dropped);
    {
        static const char *const names[CH_PDF__COUNT] = {"ok", "error", "timeout", "stopped"};
        double v[CH_PDF__COUNT];

        for (int i = 0; i < CH_PDF__COUNT; i++)
            v[i] = (double)m->pdf_files[i];
        family(&b, "chela_pdf_files_total", "PDF input files read (/v1/responses, /v1/chat/completions), by result.",
               "result", names, v, CH_PDF__COUNT);
    }
    gauge(&b, "chela_pdf_page_images_total", "Page images made from PDF input files with little text.", "counter",
          (double)m->pdf_page_images);
    gauge(&b, "chela_uptime_seconds", "Seconds since the gateway started.", "gauge",
          a->net ? (double)ch_net_uptime_ms(a->net) / 1000.0 : 0);
    if (a->agent) {
        struct ch_agent_stats st;
        metrics_agent(a, &b);
        ch_agent_stats(a->agent, &st);
        gauge(&b, "chela_transcript_cache_bytes", "Bytes of session transcripts cached in memory.", "gauge",
              (double)st.transcript_cache_bytes);
        gauge(&b, "chela_transcript_cache_hits_total", "Turns whose history came from the transcript cache.", "counter",
              (double)st.transcript_cache_hits);
        gauge(&b, "chela_transcript_cache_misses_total", "Turns whose history was read from the store.", "counter",
              (double)st.transcript_cache_misses);
    }
    /* The outbox's counters (outbox.c): deliveries by outcome, attempts by result. */
    ch_outbox_metrics(a, &b);
    /* Hook requests by outcome and reason, hook deliveries (hooks.c). */
    ch_hooks_metrics(a, &b);
    ch_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    ch_buf_release(&b);
}
