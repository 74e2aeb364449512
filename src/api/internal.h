/*
 * internal.h: private declarations of the api layer (the .c files in src/api).
 */
#ifndef CH_API_INTERNAL_H
#define CH_API_INTERNAL_H

#include <jansson.h>

#include "api/api.h"

/* Route flags: the low bits are CH_SCOPE_* (the scope a route needs). */
enum {
    R_PUBLIC = 1 << 8,  /* no authentication */
    R_METRICS = 1 << 9, /* public when metrics.public */
    R_JSON = 1 << 10,   /* body must be application/json */
    R_OPENAI = 1 << 11, /* errors in OpenAI's shape {error:{message,type,code}} */
    R_HOOK = 1 << 12,   /* under hooks.path: hooks.c authenticates it (hooks.token) */
    R_SCOPES = CH_SCOPE_CHAT | CH_SCOPE_SEND | CH_SCOPE_READ | CH_SCOPE_ADMIN,
};

/* ---- auth.c: credentials and the token cache ---- */

/*
 * One credential.  Shared by the cache and by in-flight requests (which
 * hold a reference for their access-log line), so a revocation that drops
 * it from the cache never frees it under a running request.
 */
struct ch_auth_entry {
    int refs;
    char *name;        /* owned */
    char hash_hex[65]; /* SHA-256 of the secret */
    unsigned scopes;
    int64_t rate_limit_rpm; /* 0: api.rateLimit.perToken */
    int64_t expires_ms;     /* 0: never */
    int64_t last_used_ms;
    bool dirty;   /* last_used_ms not yet written back */
    bool from_db; /* else from config or the local CLI token */
    bool dead;    /* dropped from the cache */
    int64_t id;   /* tokens.id of a from_db entry (what device tokens tie to); 0: none */
};

struct ch_auth_fail { /* window_start_ms first: ch_auth_fail_evict */
    int64_t window_start_ms;
    int count;
    int64_t locked_until_ms;
};

struct ch_auth {
    struct ch_map by_hash;  /* hash_hex -> entry (one ref held) */
    struct ch_map fails;    /* address -> struct ch_auth_fail (owned) */
    int64_t fingerprint[4]; /* of the tokens table, to skip no-op reloads */
    bool have_fingerprint;
    bool refresh_inflight;
    bool touch_inflight;
    int max_attempts; /* gateway.auth.rateLimit */
    int64_t window_ms, lockout_ms;
};

void ch_auth_entry_unref(struct ch_auth_entry *e);
int ch_auth_init(struct ch_api *a);
void ch_auth_release(struct ch_api *a);
/* Rebuild the config-sourced credentials (start and SIGHUP). */
int ch_auth_load_config(struct ch_api *a);
/* Take db records into the cache (replacing the db-sourced set). */
void ch_auth_replace_db(struct ch_api *a, struct ch_token_list *list);
/*
 * Authenticate a presented secret: returns a borrowed entry or NULL.
 * Expired tokens are NULL.  Constant-time on the hash.
 */
struct ch_auth_entry *ch_auth_find(struct ch_api *a, const char *secret, size_t len);
/*
 * The live, unexpired db token with that tokens.id, borrowed, or NULL
 * (revoked, expired, unknown, or id 0).  A scan: called per device-token
 * connect and per listed device, not per request.
 */
struct ch_auth_entry *ch_auth_find_id(struct ch_api *a, int64_t id, int64_t now_ms);
/* Add/drop one db token right away (REST create/revoke). */
int ch_auth_add_db(struct ch_api *a, const struct ch_token_rec *t);
void ch_auth_drop_name(struct ch_api *a, const char *name);
/* Failed-attempt limiter per address: returns ms to wait (0 = allowed). */
int64_t ch_auth_fail_check(struct ch_api *a, const char *addr, int64_t now_ms);
void ch_auth_fail_record(struct ch_api *a, const char *addr, int64_t now_ms);
/* The key an address's failures count under: itself, or for IPv6 its /64
 * ("2001:db8:1:2::/64"); shared by the hooks' own limiter. */
#define CH_AUTH_FAIL_KEY_MAX 64
void ch_auth_fail_key(const char *addr, char *out, size_t cap);
/*
 * Make room in a full failed-attempt table (the gateway's, the hooks'):
 * forget the entry whose window started first among those held() does
 * not protect (locked out, throttled), since forgetting a held address
 * early would hand it a fresh budget.  Each entry's struct begins with its
 * window start (int64_t ms).  false when every entry is held.
 */
bool ch_auth_fail_evict(struct ch_map *m, bool (*held)(const void *entry, int64_t now_ms), int64_t now_ms);
/* The bucket of addresses that found the table full of locked-out ones. */
#define CH_AUTH_FAIL_OVERFLOW "*"
/* Forget expired failure windows (bounded memory). */
void ch_auth_sweep(struct ch_api *a, int64_t now_ms);
/* Once a second: reload tokens if the table changed, write last-used. */
void ch_auth_tick(struct ch_api *a);

/* ---- ratelimit.c: token buckets ---- */

struct ch_bucket {
    double tokens;        /* available now */
    double capacity;      /* burst = maxRequests */
    double refill_per_ms; /* maxRequests / windowMs */
    int64_t last_ms;
};

void ch_bucket_init(struct ch_bucket *b, double capacity, int64_t window_ms, int64_t now_ms);
/* Take one token: 0 on success, else milliseconds until one is available. */
int64_t ch_bucket_take(struct ch_bucket *b, int64_t now_ms);
/* Whole tokens left and seconds until the bucket is full again. */
int64_t ch_bucket_remaining(const struct ch_bucket *b);
int64_t ch_bucket_reset_s(const struct ch_bucket *b);

struct ch_rate {
    struct ch_map buckets; /* token name -> struct ch_bucket (owned) */
    struct ch_bucket global;
    bool global_on;
    int64_t per_window_ms, per_max;
};
int ch_rate_init(struct ch_api *a);
void ch_rate_release(struct ch_rate *r);
/*
 * Charge one request for entry.  Returns 0 and adds X-RateLimit-*
 * headers, or answers 429 itself and returns CH_EBUSY.
 */
int ch_rate_check(struct ch_api *a, struct ch_http_req *r, const struct ch_auth_entry *e);
/*
 * The charge behind it, also used by the WebSocket methods: e's bucket
 * (e NULL: only the global one).  0, or ms until allowed with *which
 * "token" or "global"; *bucket is e's bucket (NULL when unlimited).
 */
int64_t ch_rate_charge(struct ch_api *a, const struct ch_auth_entry *e, struct ch_bucket **bucket, const char **which);

/* ---- security.c: IP allowlist and CORS ---- */

struct ch_security {
    struct ch_cidr *allow; /* owned; NULL/0 = everyone */
    size_t allow_count;
    bool cors_on;
    char **origins; /* owned */
    size_t origin_count;
    char *cors_methods; /* owned, "GET, POST" */
    char *cors_headers; /* owned */
    int64_t cors_max_age;
};
int ch_security_init(struct ch_api *a, struct ch_error *err);
void ch_security_release(struct ch_security *s);
/* 403 answered and CH_EPERM returned when the peer is not allowed. */
int ch_security_check_ip(struct ch_api *a, struct ch_http_req *r);
/* Preflight: answered (0) or not a preflight (CH_ENOTFOUND). */
int ch_security_preflight(struct ch_api *a, struct ch_http_req *r);
/* Add Access-Control-Allow-Origin for a listed Origin. */
void ch_security_cors_headers(struct ch_api *a, struct ch_http_req *r);

/* ---- metrics.c ---- */

#define CH_METRICS_STATUSES 24
#define CH_METRICS_BUCKETS 14

struct ch_metrics_route {
    const char *label; /* borrowed: route pattern */
    int status[CH_METRICS_STATUSES];
    uint64_t count[CH_METRICS_STATUSES];
    size_t n;
};

/* How a PDF input file's reading ended (openai_pdf.c), for /metrics. */
enum ch_pdf_result { CH_PDF_OK, CH_PDF_ERROR, CH_PDF_TIMEOUT, CH_PDF_STOPPED, CH_PDF__COUNT };
struct ch_metrics {
    struct ch_metrics_route *routes; /* owned: one per route, plus "unmatched" last */
    size_t route_count;
    uint64_t hist[CH_METRICS_BUCKETS + 1];
    double latency_sum_s;
    uint64_t latency_count;
    uint64_t auth_failures;
    uint64_t rate_limited;
    uint64_t audit_dropped;
    uint64_t audit_written;
    uint64_t pdf_files[CH_PDF__COUNT]; /* PDF input files read, by result */
    uint64_t pdf_page_images;          /* page images made from them */
};
int ch_metrics_init(struct ch_api *a);
void ch_metrics_release(struct ch_metrics *m);
void ch_metrics_observe(struct ch_api *a, const struct ch_http_req *r, uint64_t latency_ns);
void ch_metrics_handler(struct ch_http_req *r, void *data);

/* ---- health.c ---- */
void ch_health_live(struct ch_http_req *r, void *data);
void ch_health_ready(struct ch_http_req *r, void *data);
void ch_health_startup(struct ch_http_req *r, void *data);
void ch_health_detail(struct ch_http_req *r, void *data);

/* ---- tokens_rest.c: /api/v1/tokens ---- */
void ch_tokens_rest_list(struct ch_http_req *r, void *data);
void ch_tokens_rest_create(struct ch_http_req *r, void *data);
void ch_tokens_rest_delete(struct ch_http_req *r, void *data);
/* Token record -> the JSON shape `chela token list --json` prints (new ref). */
json_t *ch_token_rec_json(const struct ch_token_rec *t);

/* ---- audit.c: batched audit rows ---- */
/* Rows pending on the loop; flushed every loop iteration or when full. */
#define CH_AUDIT_BATCH 256
struct ch_audit_batch {
    size_t n;
    size_t inflight; /* audit jobs queued to the store, done not yet run */
    struct ch_audit_rec recs[CH_AUDIT_BATCH];
};
void ch_audit_record(struct ch_api *a, const struct ch_http_req *r, uint64_t latency_ns);
void ch_audit_flush(void *api); /* net flush hook */

/* ---- outbox.c, webhooks.c: durable outbound deliveries (issue #4) ---- */

/*
 * One delivery: the exact body POSTed to url, with the configured headers
 * and, when secret is set, the signature headers (X-OpenClaw-Signature,
 * X-Signature-256, X-OpenClaw-Timestamp + X-OpenClaw-Signature-V2), plus
 * X-OpenClaw-Delivery: <id>.  At least once: retried with exponential
 * backoff (2xx done; 4xx other than 408/429 permanent; 5xx, 408, 429 and
 * transport errors retried), survives restarts, dead after max_attempts.
 */
struct ch_delivery_req {
    const char *kind;      /* "callback" or "webhook" */
    const char *run_id;    /* the run it reports, or NULL */
    const char *event;     /* webhook event name, or NULL */
    const char *url;       /* http or https */
    const json_t *headers; /* object of extra header strings, or NULL; copied */
    const char *body;      /* exact bytes; copied */
    size_t body_len;
    const char *content_type; /* NULL: application/json */
    const char *secret;       /* HMAC-SHA256 key, or NULL: unsigned */
    int max_attempts;         /* 0: retry.maxAttempts default (3) */
    int64_t backoff_ms;       /* 0: retry.backoffMs default (5000) */
};
typedef void (*ch_outbox_done_cb)(int rc, const char *delivery_id, void *data);
/* Durably queue a delivery; cb (may be NULL) after the commit, on the loop. */
void ch_outbox_enqueue(struct ch_api *a, const struct ch_delivery_req *d, ch_outbox_done_cb cb, void *data);
/* Send event {event, timestamp, data} to every outgoing webhook subscribed
 * to it (api.webhooks.outgoing[] and those created over REST).  Steals data. */
void ch_webhooks_emit(struct ch_api *a, const char *event, json_t *data);
/* Prometheus lines of the outbox (deliveries by outcome, attempts by
 * result, in flight), appended by ch_metrics_handler. */
void ch_outbox_metrics(struct ch_api *a, struct ch_buf *b);

/* ---- rest_devices.c: /api/v1/devices, OpenClaw device pairing (admin; issue #5) ---- */
void ch_rest_devices_list(struct ch_http_req *r, void *data);
void ch_rest_devices_approve(struct ch_http_req *r, void *data);
void ch_rest_devices_reject(struct ch_http_req *r, void *data);
void ch_rest_devices_remove(struct ch_http_req *r, void *data);

/* ---- rest_deliveries.c: /api/v1/deliveries and /api/v1/webhooks (admin) ---- */
void ch_rest_deliveries_list(struct ch_http_req *r, void *data);
void ch_rest_deliveries_get(struct ch_http_req *r, void *data);
void ch_rest_deliveries_retry(struct ch_http_req *r, void *data);
void ch_rest_webhooks_list(struct ch_http_req *r, void *data);
void ch_rest_webhooks_create(struct ch_http_req *r, void *data);
void ch_rest_webhooks_delete(struct ch_http_req *r, void *data);

/* Retention passes (retention.c): audit rows, finished runs, disposable
 * sessions, at start and hourly. */
struct ch_retention {
    int64_t next_ms;    /* next pass; 0: at the first tick */
    int step;           /* the step a pass is at; 3 (done) between passes */
    int64_t removed[3]; /* this pass */
    int64_t total[3];   /* since start: chela_retention_deleted_total */
};
void ch_retention_tick(struct ch_api *a);

/* ---- the api object ---- */
struct ch_api {
    struct ch_net *net;
    struct ch_store *store;
    const struct ch_config *cfg;
    const struct ch_limits *limits;
    struct ch_http_server *server;
    struct ch_agent *agent;         /* borrowed; may be NULL */
    struct ch_usage usage_baseline; /* usage totals stored before this start */
    struct ch_llm_usage pt_usage;   /* pass-through /v1 calls since start */
    struct ch_map pt_rows;          /* "provider/model" -> usage not yet written (openai_compat.c) */
    double pt_cost_usd;
    int64_t requests_baseline;
    char *state_dir;
    char local_hash[65]; /* SHA-256 of the CLI's local token, or "" */
    struct ch_router router;
    struct ch_route_memo route_memo; /* router.memo */
    struct ch_auth auth;
    struct ch_rate rate;
    struct ch_security sec;
    struct ch_metrics metrics;
    struct ch_audit_batch *audit; /* owned; pending rows */
    size_t max_body;              /* api.security.maxBodySize */
    bool metrics_public;
    bool access_log;
    bool audit_on;
    bool stopped;
    bool shutting_down; /* set when the drain starts: closes are not client aborts */
    int64_t started_ms;
    struct ch_oc *oc;         /* owned: the OpenClaw WebSocket gateway (oc_ws.c) */
    struct ch_hooks *hooks;   /* owned: the /hooks surface (hooks.c, hooks.h) */
    struct ch_curlm *curlm;   /* borrowed: outbound HTTP; set by ch_api_outbox_start */
    struct ch_outbox *outbox; /* owned: outbox.c; NULL before ch_api_outbox_start and
                               * once the stopped outbox has freed itself */
    struct ch_oa_proc *procs; /* the running child processes (openai_proc.c) */
    size_t pdf_busy;          /* PDF files being read (openai_pdf.c) */
    struct ch_retention retention;
};

/* JSON response helpers shared by handlers. */
int ch_api_json_body(struct ch_http_req *r, json_t **out); /* 400 answered on failure */

/* ---- chat_render.c: the chat answer and SSE start/done bodies, json_pack's
 * bytes; not 0 (CH_AGAIN: not UTF-8, a NULL required field) leaves the
 * body to json_pack. ---- */
int ch_chat_render_answer(struct ch_buf *b, const char *run_id, const char *conv_id, const struct ch_agent_result *res,
                          int64_t latency_ms);
int ch_chat_render_start(struct ch_buf *b, const char *conv_id, const char *run_id);
int ch_chat_render_done(struct ch_buf *b, const char *run_id, const char *conv_id, const struct ch_agent_result *res,
                        int64_t latency_ms);

/* ---- rest_chat.c: POST /api/v1/chat and /api/v1/chat/stream (chat) ---- */
void ch_rest_chat(struct ch_http_req *r, void *data);
void ch_rest_chat_stream(struct ch_http_req *r, void *data);

/* ---- rest_sessions.c: sessions, conversations, models ---- */
void ch_rest_sessions_list(struct ch_http_req *r, void *data);
void ch_rest_sessions_show(struct ch_http_req *r, void *data);
void ch_rest_sessions_reset(struct ch_http_req *r, void *data);
void ch_rest_sessions_delete(struct ch_http_req *r, void *data);
void ch_rest_sessions_kill(struct ch_http_req *r, void *data); /* POST /sessions/:key/kill */
/* OpenClaw v4's HTTP error shape {ok: false, error: {type, message}}, and
 * its ?agentId= check (false once r was answered 400). */
void ch_api_oc_error(struct ch_http_req *r, int status, const char *type, const char *msg);
/* The :key path parameter of those routes (percent-decoded, '+' kept),
 * else a 400 in their shape (not ch_api_path_param's {error, message}). */
bool ch_api_oc_key_param(struct ch_http_req *r, char *out, size_t cap);
/* The same trimmed in raw (the key the 404 names, as the reference's) and
 * in OpenClaw's canonical form in canon (the key looked up and answered);
 * a malformed key is a 400 `malformed session key "<key>"`. */
bool ch_api_oc_session_key(struct ch_http_req *r, char *raw, size_t raw_cap, char *canon, size_t canon_cap);
bool ch_api_oc_agent_ok(struct ch_http_req *r);
/* GET /sessions/:key/history (rest_session_history.c) */
void ch_rest_sessions_history(struct ch_http_req *r, void *data);

/* ---- oc_history.c: sizing a transcript answer to its connection's cap ---- */
/* OpenClaw's stand-in for a message too large for any answer. */
#define CH_HISTORY_OMITTED "[chat.history omitted: message too large]"

/* A store write refused for a full disk (CH_ENOSPC): every surface says
 * the same, with 503 and Retry-After, so a client retries instead of
 * treating it as its own fault or a permanent error. */
#define CH_STORAGE_FULL_MSG "the gateway's storage is full; retry later"
struct ch_api_fit {
    int64_t first; /* the oldest seq kept; 0: none */
    bool cut;      /* an older message was left out for want of room */
    bool omitted;  /* a placeholder stands for a message */
};
/* m as an answer lists it, or with omit the placeholder for it; NULL: out
 * of memory. */
typedef json_t *(*ch_api_fit_render_cb)(const struct ch_message_rec *m, bool omit);
/*
 * An answer over a connection's output cap is never sent (the connection
 * is closed), so: the newest of ml's messages (system ones left out when
 * skip_system) whose compact JSON, a comma each, adds up to at most room
 * bytes, as rendered, oldest first.  Measured with json_dumpb, so escaping
 * counts as written.  A message whose JSON alone passes room, or loaded
 * without its content, is render(m, true).  NULL: out of memory.
 */
json_t *ch_api_fit_messages(const struct ch_message_list *ml, size_t room, bool skip_system,
                            ch_api_fit_render_cb render, struct ch_api_fit *fit);
/* budget less envelope's compact JSON and extra bytes; 0 if none is left. */
size_t ch_api_room_left(size_t budget, const json_t *envelope, size_t extra);
void ch_rest_conversations_list(struct ch_http_req *r, void *data);
void ch_rest_conversations_show(struct ch_http_req *r, void *data);
void ch_rest_conversations_delete(struct ch_http_req *r, void *data);
void ch_rest_models(struct ch_http_req *r, void *data);
/*
 * Path parameter i, percent-decoded ('+' stays '+'), into out: 0, or a 400
 * answered and CH_EINVAL for a bad escape, a NUL, an empty value or one of
 * outcap bytes or more.
 */
int ch_api_path_param(struct ch_http_req *r, size_t i, char *out, size_t outcap);
/*
 * ?limit= (1..1000, default def) and ?cursor= (an offset this gateway
 * returned as nextCursor): 0, or a 400 answered and CH_EINVAL.
 */
int ch_api_page_query(struct ch_http_req *r, size_t def, size_t *limit, size_t *offset);
/* The same for the keyset-paged lists (sessions, runs): a cursor is a
 * nextCursor they returned (into *after) or, from clients paging from
 * before those, a decimal offset.  after NULL: offsets only. */
int ch_api_page_query_keyset(struct ch_http_req *r, size_t def, size_t *limit, size_t *offset,
                             struct ch_list_pos *after);
/* ISO 8601 string of ms, or JSON null for 0 ("not yet").  New reference. */
json_t *ch_api_time_json(int64_t ms);

/* ---- rest_runs.c: /api/v1/runs ---- */
void ch_rest_runs_get(struct ch_http_req *r, void *data);
/* tools_invoke.c: POST /tools/invoke (OpenClaw's direct tool call), and
 * what the WebSocket tools.invoke shares with it. */
void ch_tools_invoke(struct ch_http_req *r, void *data);
enum { CH_INVOKE_INVALID = 1, CH_INVOKE_NOT_FOUND, CH_INVOKE_BAD_INPUT };
/* Check a call of tool `name` with params {args?, action?, sessionKey?,
 * agentId?}: 0 with *args (new ref) ready for ch_tool_call_start, else
 * CH_INVOKE_* with msg (a bad request, a tool not available here (the
 * deny list, gateway.tools.deny/allow), or arguments failing its schema). */
int ch_tools_invoke_prepare(struct ch_api *a, const json_t *params, const char *name, json_t **args, char *msg,
                            size_t cap);
/* {content: [{type: "text", text}], details} of a tool's result (new ref). */
struct ch_tool_result;
json_t *ch_tools_invoke_output(const struct ch_tool_result *res);
void ch_rest_runs_list(struct ch_http_req *r, void *data);
void ch_rest_runs_abort(struct ch_http_req *r, void *data);

/* ---- oc_*.c: the OpenClaw gateway WebSocket protocol (oc_internal.h) ---- */
struct ch_oc;
/* Create/free the WS gateway state of a (created) api; reads gateway.ws.*. */
int ch_oc_new(struct ch_api *a);
void ch_oc_free(struct ch_api *a);
/* Broadcast `shutdown` and close every WS connection with 1012; refuse
 * new ones.  Idempotent.  Called from ch_api_stop. */
void ch_oc_shutdown(struct ch_api *a);
/* An HTTP request asking for an upgrade, on any path: take it over as an
 * OpenClaw WS connection (authentication happens in `connect`). */
void ch_oc_ws_upgrade(struct ch_http_req *r, struct ch_api *a);
/* Open WS connections (both states), for /health/detail. */
size_t ch_oc_conn_count(const struct ch_api *a);
/* The token cache changed (revoked, deleted, reloaded) or time passed:
 * close every WS connection whose API token is gone, expired or no
 * longer holds the connection's scopes (oc_guard.c). */
void ch_oc_auth_recheck(struct ch_api *a);

/* ---- session_keys.c: the session keys clients send (OpenClaw's canonical
 * form, core/session_key.c) ---- */
/* ch_session_key_canon of a NUL-terminated key: CH_EINVAL malformed,
 * CH_E_TOO_LARGE past CH_SESSION_KEY_MAX. */
int ch_api_session_key(const char *raw, char out[CH_SESSION_KEY_MAX + 1]);
/* A stored key as chela's REST conversation id: without its leading
 * `agent:main:` where the rest names the key again (borrowed: points into
 * key). */
const char *ch_api_conversation_id(const char *key);
/* raw, trimmed and ASCII-lowercased, starts agent:, cron:, subagent: or
 * acp: (the namespaces OpenClaw keeps to itself). */
bool ch_api_session_key_reserved(const char *raw);
/* A canonical key in cron:, subagent: or acp:, at its start or after
 * agent:<id>: (OpenClaw's /v1 refuses those as overrides). */
bool ch_api_session_key_internal(const char *canon);

#endif
