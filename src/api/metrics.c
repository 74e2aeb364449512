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
    ch_buf_append_str(&b, "# HELP chela_pdf_files_total PDF input files read (/v1/responses, /v1/chat/completions), "
                          "by result.\n# TYPE chela_pdf_files_total counter\n");
    for (int i = 0; i < CH_PDF__COUNT; i++) {
        static const char *const names[CH_PDF__COUNT] = {"ok", "error", "timeout", "stopped"};
        ch_buf_appendf(&b, "chela_pdf_files_total{result=\"%s\"} %llu\n", names[i],
                       (unsigned long long)m->pdf_files[i]);
    }
    gauge(&b, "chela_pdf_page_images_total", "Page images made from PDF input files with little text.", "counter",
          (double)m->pdf_page_images);
    gauge(&b, "chela_uptime_seconds", "Seconds since the gateway started.", "gauge",
          a->net ? (double)ch_net_uptime_ms(a->net) / 1000.0 : 0);
    if (a->agent) {
        struct ch_agent_stats st;
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
