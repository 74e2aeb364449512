/*
 * hooks.h: private declarations of the /hooks surface (hooks.c,
 * hooks_agent.c, hooks_deliver.c, hooks_map.c) and of the seed 004 and
 * skills routes (rest_send.c, rest_skills.c), part of the api layer.
 *
 * The hook contract is OpenClaw's (spec section 3, "Hooks"): a base path
 * (hooks.path), its own token, POST only, JSON bodies up to
 * hooks.maxBodyBytes, `agent`, `wake` and mapped names.  Where chela
 * differs (request session keys allowed by default, the message is never
 * trimmed or wrapped, the 202 comes only after a durable commit, native
 * callbacks) docs/compatibility.md says so.
 */
#ifndef CH_API_HOOKS_H
#define CH_API_HOOKS_H

#include "api/internal.h"

/* The hook rows of api.c's route table take every method: hooks.c answers
 * 405 itself (after auth, as OpenClaw does), and a disabled hook path is
 * a 404 whatever the method. */
#define CH_HOOK_METHODS                                                                                                \
    (CH_M_GET | CH_M_HEAD | CH_M_POST | CH_M_PUT | CH_M_DELETE | CH_M_PATCH | CH_M_OPTIONS | CH_M_OTHER)

/* Why a hook request ended the way it did: one counter per (outcome, reason)
 * in /metrics, and the word in the refusal's log line. */
enum ch_hook_reason {
    CH_HOOK_R_AGENT,          /* accepted: POST <base>/agent queued a run */
    CH_HOOK_R_WAKE,           /* accepted: POST <base>/wake */
    CH_HOOK_R_MAPPING,        /* accepted: a hooks.mappings[] entry matched */
    CH_HOOK_R_REPLAY,         /* accepted: an idempotency key named an earlier run */
    CH_HOOK_R_COMPLETED,      /* accepted: waitForCompletion answered with the outcome */
    CH_HOOK_R_DISABLED,       /* refused below: hooks.enabled is false */
    CH_HOOK_R_NOT_FOUND,      /* bare base path, or no mapping for the name */
    CH_HOOK_R_METHOD,         /* not POST */
    CH_HOOK_R_TOKEN_IN_QUERY, /* ?token= */
    CH_HOOK_R_UNAUTHORIZED,   /* missing or wrong token */
    CH_HOOK_R_THROTTLED,      /* 20 failures in 60 s from the address */
    CH_HOOK_R_TOO_LARGE,      /* over hooks.maxBodyBytes */
    CH_HOOK_R_INVALID_JSON,   /* not a JSON object */
    CH_HOOK_R_INVALID,        /* a field is wrong (message, callback, ...) */
    CH_HOOK_R_SESSION_KEY,    /* reserved prefix or outside allowedSessionKeyPrefixes */
    CH_HOOK_R_MODEL,          /* the model does not resolve */
    CH_HOOK_R_QUEUE_FULL,     /* agents.defaults.queueSize or the store queue */
    CH_HOOK_R_UNAVAILABLE,    /* no agent, or the gateway is stopping */
    CH_HOOK_R_STORAGE_FULL,   /* the store's disk is full (503: retry later) */
    CH_HOOK_R_INTERNAL,       /* out of memory, store error */
    CH_HOOK_R_CLIENT_GONE,    /* the client left before the answer */
    CH_HOOK_R__COUNT
};
const char *ch_hook_reason_name(enum ch_hook_reason r);

/* Delivery outcomes counted when a hook run ends. */
enum ch_hook_dlv {
    CH_HOOK_D_QUEUED,       /* handed to the outbox (committed) */
    CH_HOOK_D_INVALID_JSON, /* raw mode and the final text is not JSON */
    CH_HOOK_D_SKIPPED,      /* raw mode and the run failed; or no such channel */
    CH_HOOK_D_FAILED,       /* the outbox refused it */
    CH_HOOK_D_WEBHOOK,      /* deliver to the `webhook` channel: event emitted */
    CH_HOOK_D__COUNT
};

struct ch_hooks_recover;

/* Hook tokens up to this long are compared padded, others by digest. */
#define CH_HOOK_TOKEN_PAD 256

/* Failed authentications of one address (OpenClaw: 20 in 60 s). */
struct ch_hook_fail { /* window_start_ms first: ch_auth_fail_evict */
    int64_t window_start_ms;
    int count;
};

/* OpenClaw's HOOK_AUTH_FAILURE_LIMIT and _WINDOW_MS (server-http.ts). */
#define CH_HOOK_FAIL_LIMIT 20
#define CH_HOOK_FAIL_WINDOW_MS 60000
struct ch_hooks;
/* The window under key (ch_auth_fail_key), restarted when it has ended. */
struct ch_hook_fail *ch_hook_fail_get(struct ch_hooks *h, const char *key, int64_t now);
/* Count one failure; returns the bucket it counted in (the shared overflow
 * one when the table is full of throttled addresses), NULL without memory. */
struct ch_hook_fail *ch_hook_fail_record(struct ch_hooks *h, const char *key, int64_t now);

/*
 * The hooks state of an api (a->hooks).  Configuration fields are rebuilt
 * by ch_hooks_reload; counters, the failure table and the subscription
 * live as long as the api.  Loop thread only.
 */
struct ch_hooks {
    bool enabled;
    char *base; /* owned: hooks.path, no trailing '/', never "/" */
    size_t base_len;
    bool has_token;      /* hooks.token set: only it is accepted */
    char token_hash[65]; /* SHA-256 hex of hooks.token (compared in constant time) */
    /* hooks.token zero-padded, when it fits: compared in constant time
     * without hashing the presented secret on every request (wiped). */
    unsigned char token_pad[CH_HOOK_TOKEN_PAD];
    size_t token_len;                     /* 0: longer than the pad, compare the hashes */
    size_t max_body;                      /* hooks.maxBodyBytes */
    size_t gmail_max_body;                /* <base>/gmail's cap with hooks.presets ["gmail"]; 0: none */
    bool allow_request_key;               /* hooks.allowRequestSessionKey */
    bool main_allowed;                    /* hooks.allowedAgentIds unset, or listing "*" or "main" */
    char *default_key;                    /* owned or NULL: hooks.defaultSessionKey */
    json_t *prefixes;                     /* owned array of strings; empty: any key */
    json_t *mappings;                     /* owned deep copy of hooks.mappings (array) */
    json_t *callback;                     /* owned deep copy of hooks.callback, or NULL */
    int retry_max;                        /* hooks.retry.maxAttempts */
    int64_t retry_backoff_ms;             /* hooks.retry.backoffMs */
    struct ch_map fails;                  /* address -> struct ch_hook_fail (owned) */
    struct ch_agent_sub *sub;             /* every run's END (hooks_deliver.c); NULL without agent */
    struct ch_hooks_recover *recover;     /* the start-up scan while it runs (it outlives a failed start) */
    int64_t started_ms;                   /* runs that finished before this are the recovery scan's */
    uint64_t counts[2][CH_HOOK_R__COUNT]; /* [0] accepted, [1] refused */
    uint64_t deliveries[CH_HOOK_D__COUNT];
    uint64_t recovered; /* deliveries re-queued by the start-up scan */
};

/* ---- hooks.c: configuration, the head check, counters ---- */

/* Build a->hooks from a->cfg; CH_EINVAL with err for a bad hooks.path or
 * mapping (the gateway refuses to start, or a reload is refused). */
int ch_hooks_new(struct ch_api *a, struct ch_error *err);
int ch_hooks_reload(struct ch_api *a, struct ch_error *err);
/* Unsubscribe (before the agent is freed) and free; NULL-safe. */
void ch_hooks_free(struct ch_api *a);
/*
 * Called by api_on_head before the router.  CH_ENOTFOUND: not a hook
 * request (the path is outside hooks.path, or an upgrade there while
 * hooks are disabled), the caller goes on.  0: a hook request that passed
 * the checks that need no body (query token, auth, method, known name,
 * declared size); r->route is set and *max_body is hooks.maxBodyBytes.
 * CH_ECANCELED: answered here (hooks disabled: a 404, counted).
 */
int ch_hooks_on_head(struct ch_api *a, struct ch_http_req *r, size_t *max_body);
/* Count a request's outcome and, for a refusal, log it with its reason
 * (r may be NULL once the client has left). */
void ch_hooks_count(struct ch_api *a, const struct ch_http_req *r, bool accepted, enum ch_hook_reason why,
                    const char *detail);
/* Refuse with {"ok":false,"error":msg}: counted and logged.  Returns CH_ECANCELED. */
int ch_hooks_refuse(struct ch_api *a, struct ch_http_req *r, int status, enum ch_hook_reason why, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The hook part of /metrics, appended to b. */
void ch_hooks_metrics(struct ch_api *a, struct ch_buf *b);
/* The sub-path after hooks.path ("agent", "github/push"), borrowed from r. */
struct ch_str ch_hooks_subpath(const struct ch_api *a, const struct ch_http_req *r);

/* ---- hooks_key.c: the session of a hook run ---- */
struct ch_hook_in;
/* requested: the caller's (or a mapping's rendered) key, trimmed, or NULL.
 * Sets in->session_key to the canonical key of it, hooks.defaultSessionKey
 * or a fresh hook:<uuid>; a refusal is answered 400 and CH_EINVAL. */
int ch_hooks_resolve_key(struct ch_api *a, struct ch_http_req *r, const char *requested, bool from_request,
                         struct ch_hook_in *in);

/* ---- hooks_parse.c: a hook body -> a run request ---- */

/* One validated hook request.  Every string is an owned copy. */
struct ch_hook_in {
    char *message;      /* non-blank; reaches the model byte for byte */
    char *message_json; /* owned or NULL: message as the JSON string the run's
                           request stores (ch_buf_append_json_str's bytes) */
    char *session_key;
    char *model;       /* as given (an alias is fine: the agent resolves it), or NULL */
    char *idem;        /* the caller's idempotency key, or NULL */
    int64_t timeout_s; /* 0: agents.defaults.timeoutSeconds */
    bool wait;         /* waitForCompletion */
    bool isolated;     /* sessionMode "isolated" (the default): a fresh session */
    /* idem is a fan-out item's derived key without a caller's key: an
     * earlier run counts while queued or running or for 5 min after it
     * ended (OpenClaw's replay cache), not for 24 h. */
    bool idem_recent;
    /* callback.url is not hooks.callback.url's origin while configured
     * callback headers or a secret exist: delivery withholds them. */
    bool cb_withheld;
    char scope[65];     /* mappings: SHA-256 hex of the rendered message and fields */
    json_t *hook;       /* owned: meta.hook of the run (name, delivery, callback...) */
    const char *source; /* static: the run's source, "hook" or "wake" */
    enum ch_hook_reason ok_reason;
};
void ch_hook_in_release(struct ch_hook_in *in);
/* hooks_agent.c: the JSON object body of r (an empty body is {}), or a
 * refusal answered (counted) and an error. */
int ch_hooks_body(struct ch_api *a, struct ch_http_req *r, json_t **out);
/* The same, and message_raw gets the body's "message" string as
 * ch_hooks_json_object_raw finds it (a span of r's body), or {NULL, 0}. */
int ch_hooks_body_raw(struct ch_api *a, struct ch_http_req *r, json_t **out, struct ch_str *message_raw);
/* hooks_json.c: decode data as json_loadb(data, len, 0) would, for the
 * object bodies it can (0, *out owned); CH_AGAIN for anything else, valid
 * or not, which the caller gives to json_loadb. */
int ch_hooks_json_object(const char *data, size_t len, json_t **out);
/* The same; raw (when not NULL) gets the span of member raw_key's value in
 * data, quotes included, if it is a string whose bytes are exactly
 * ch_buf_append_json_str's encoding of the decoded text (no "\/", no
 * "\u"); else {NULL, 0}.  The last duplicate key counts. */
int ch_hooks_json_object_raw(const char *data, size_t len, json_t **out, const char *raw_key, struct ch_str *raw);
/* The stored form of an idempotency key for a UTC day: "hook:<key>@<day>",
 * or "hook:sha256:<hex>@<day>" for a long or unprintable key (owned). */
char *ch_hooks_idem_key(const char *key, int64_t day);
/* POST <base>/agent: validate body into in; on failure the refusal is
 * answered and counted and CH_EINVAL returned. */
int ch_hooks_parse_agent(struct ch_api *a, struct ch_http_req *r, const json_t *body, struct ch_hook_in *in);
/* POST <base>/<name> with an agent mapping m. */
int ch_hooks_parse_mapping(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body,
                           struct ch_hook_in *in);

/* ---- hooks_fanout.c: a mapping with forEach (OpenClaw v4 fan-out) ---- */

/* At most this many items of one request become runs; the rest are
 * dropped and logged, as OpenClaw does. */
#define CH_HOOK_FANOUT_MAX 200
struct ch_hook_fan;
/* POST <base>/<name> with an agent mapping m whose forEach is set: one run
 * per item, answered once ({ok, runId, runIds, dispatched}; 204 with no
 * items). */
void ch_hooks_fanout(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body);
/* A wake mapping with forEach: every item's rendered text, one per line,
 * into out (a refusal answered and CH_EINVAL; 0 with out empty: no item). */
int ch_hooks_fan_wake_text(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body,
                           struct ch_buf *out);
/* SHA-256 hex of a mapping's rendered message and fields (keys sorted):
 * what one fan-out item is, for its derived idempotency key. */
int ch_hooks_scope_digest(const char *msg, size_t len, const json_t *fields, char hex[65]);
/* hooks_agent.c: the outcome of item idx (status 200/202 with run_id, or a
 * refusal's status and msg). */
void ch_hooks_fan_done(struct ch_hook_fan *f, size_t idx, int status, const char *run_id, enum ch_hook_reason why,
                       const char *msg);

/* ---- hooks_agent.c: the handlers ---- */
/* Queue a validated request (steals in's contents) and answer r. */
void ch_hooks_dispatch(struct ch_api *a, struct ch_http_req *r, struct ch_hook_in *in);
/* The same for item idx of a fan-out: the outcome goes to
 * ch_hooks_fan_done, not to a request. */
void ch_hooks_dispatch_item(struct ch_api *a, struct ch_hook_fan *f, size_t idx, struct ch_hook_in *in);
/* false once r was answered 503: the gateway runs without an agent. */
bool ch_hooks_agent_ready(struct ch_api *a, struct ch_http_req *r);
void ch_hooks_agent(struct ch_http_req *r, void *data);
void ch_hooks_wake(struct ch_http_req *r, void *data);
void ch_hooks_mapped(struct ch_http_req *r, void *data);

/* ---- hooks_deliver.c: what happens when a hook run ends ---- */

/* Subscribe to the bus and queue the start-up scan for hook runs that
 * ended without their callback being queued (a crash in between). */
int ch_hooks_deliver_start(struct ch_api *a);
void ch_hooks_deliver_stop(struct ch_api *a);
/* Whether url has the origin (scheme, host, port) of cfg_url (NULL: none
 * configured, false).  Configured callback headers and secret go only to
 * that origin; a URL whose authority is not plainly host[:port] never
 * matches. */
bool ch_hooks_same_origin(const char *url, const char *cfg_url);
/* Log once per request that configured callback credentials are withheld
 * (the origin only: never a header or secret). */
void ch_hooks_log_withheld(const struct ch_http_req *r, const char *url);
/* The completion object of waitForCompletion from a result (new ref). */
json_t *ch_hooks_completion_json(const char *run_id, const struct ch_agent_result *res);

/* ---- hooks_map.c: mappings and templates (no I/O; unit-tested) ---- */

/* What a template may refer to.  All borrowed. */
struct ch_hook_tpl_ctx {
    const json_t *payload;         /* the JSON body */
    const struct ch_http_req *req; /* {{headers.x}}, {{query.x}}; may be NULL */
    struct ch_str path;            /* {{path}}: the sub-path */
    int64_t now_ms;                /* {{now}} */
};
/*
 * Render `{{ expr }}` placeholders: payload.a.b[0].c (or a bare path into
 * the payload), headers.<name> (case-insensitive), query.<name>, path,
 * now (ISO 8601).  Missing values render empty; strings verbatim, numbers
 * and booleans as JSON text, objects and arrays as compact JSON; headers,
 * query values and the path with each ill-formed UTF-8 sequence replaced
 * by U+FFFD.  An unterminated "{{" is copied literally.  Output capped by
 * out's max (CH_E_TOO_LARGE).
 */
int ch_hooks_render(const char *tpl, const struct ch_hook_tpl_ctx *ctx, struct ch_buf *out);
/* The first mapping whose match.path equals path (slashes trimmed) and
 * whose match.source, if any, equals payload.source; NULL if none. */
const json_t *ch_hooks_map_find(const json_t *mappings, struct ch_str path, const json_t *payload);
/* Check hooks.mappings at load: CH_EINVAL with err naming the entry. */
int ch_hooks_map_check(const json_t *mappings, struct ch_error *err);
/* OpenClaw's `gmail` preset mapping (hooks.presets), with hooks.gmail's
 * model and thinking when set (new reference). */
json_t *ch_hooks_gmail_preset(const char *model, const char *thinking);
/* A string is usable as a session key of a hook (printable, bounded). */
bool ch_hooks_key_ok(const char *key);

/* ---- rest_send.c: /api/v1/send and seed 004's paths ---- */
void ch_rest_send(struct ch_http_req *r, void *data);
void ch_rest_messages_send(struct ch_http_req *r, void *data);
void ch_rest_messages_broadcast(struct ch_http_req *r, void *data);
void ch_rest_seed_session_reset(struct ch_http_req *r, void *data);

/* ---- rest_skills.c: GET /api/v1/skills ---- */
void ch_rest_skills(struct ch_http_req *r, void *data);

#endif
