/*
 * api.h: the gateway's HTTP surfaces and the middleware in front of them:
 * request id, IP allowlist, CORS, authentication (tokens, scopes), rate
 * limits, then the route's handler; plus access log, audit and metrics.
 *
 * Layer: core <- net <- http <- ... <- api.  The api layer plugs into the
 * HTTP server through ch_api_http_opts(); it owns no sockets.
 */
#ifndef CH_API_H
#define CH_API_H

#include "agent/agent.h"
#include "config/config.h"
#include "http/http.h"
#include "net/net.h"
#include "store/store.h"

struct ch_api;

struct ch_api_opts {
    struct ch_net *net;             /* borrowed; outlives the api */
    struct ch_store *store;         /* borrowed; outlives the api */
    const struct ch_config *cfg;    /* borrowed until the next ch_api_reload */
    const struct ch_limits *limits; /* borrowed; outlives the api */
    const char *state_dir;          /* copied */
    const char *local_token;        /* copied as a hash: the CLI's admin credential */
    struct ch_agent *agent;         /* borrowed; outlives the api; NULL: no agent routes */
    struct ch_usage usage_baseline; /* stored usage totals at start (/health/detail) */
    int64_t requests_baseline;      /* stored LLM request count at start */
};

/*
 * Build the api from configuration: allowlist, CORS, configured tokens
 * (gateway.auth.*, api.auth.tokens[]), rate limits.  CH_EINVAL with err
 * for a value config validation cannot catch (none today).
 */
int ch_api_new(const struct ch_api_opts *o, struct ch_api **out, struct ch_error *err);
void ch_api_free(struct ch_api *a);

/* Seed the token cache from the database (startup, before the loop runs).
 * Takes the records' contents (the list is emptied). */
void ch_api_tokens_take(struct ch_api *a, struct ch_token_list *list);

/* Fill the HTTP server's callbacks with the api's middleware. */
void ch_api_http_opts(struct ch_api *a, struct ch_http_server_opts *o);
/* The server whose counters /health/detail and /metrics report. */
void ch_api_attach_server(struct ch_api *a, struct ch_http_server *s);

/*
 * SIGHUP: apply what can change at run time (allowlist, CORS, configured
 * tokens, rate limits, metrics.public).  cfg is borrowed from now on.
 */
int ch_api_reload(struct ch_api *a, const struct ch_config *cfg, struct ch_error *err);

/*
 * Outbound deliveries (issue #4: hook callbacks and event webhooks through
 * the durable outbox, docs/internals/outbox.md).  Start once the loop,
 * the store and the agent exist (before or after listening): pending
 * deliveries from earlier runs (and attempts a stop or crash cut short)
 * are scheduled, webhooks subscribe to every run's events.  curlm is
 * borrowed and must stay open until after ch_api_outbox_stop.  0,
 * CH_EINVAL (no curlm), CH_ESTATE (already started), CH_ENOMEM, CH_EBUSY.
 */
struct ch_curlm;
int ch_api_outbox_start(struct ch_api *a, struct ch_curlm *curlm);
/*
 * Stop with ch_api_stop, before the store and curlm close: attempts in
 * flight are aborted and go back to pending (sent again at the next
 * start), the timers close.  The outbox frees itself once its last store
 * job has answered.  NULL-safe; a second call is a no-op.
 */
void ch_api_outbox_stop(struct ch_api *a);

/* The gateway starts draining: from now on a closing connection is the
 * drain's doing, not a client leaving (runs are left to be replayed). */
void ch_api_begin_shutdown(struct ch_api *a);

/* Stop periodic work (token refresh, audit flush) before the store closes;
 * queues a last audit batch and last-used update. */
void ch_api_stop(struct ch_api *a);

#endif
