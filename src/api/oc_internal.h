/*
 * oc_internal.h: private declarations of the OpenClaw gateway WebSocket
 * protocol (v3 and v4, docs: ../shared/spec/openclaw-protocol.md sections
 * 1 and 2), shared by src/api/oc_*.c and nothing else.
 *
 * The pieces: oc_ws.c (the per-connection state machine CHALLENGED ->
 * AUTHED -> CLOSING, frame parsing and dispatch, the shared tick timer),
 * oc_connect.c (the handshake), oc_schema.c and the generated
 * oc_schema_gen.c (closed-object validation with OpenClaw's error texts),
 * oc_events.c (agent/chat/presence/health/shutdown events, the run table),
 * oc_methods_*.c (the method table and handlers).
 *
 * The dispatcher never touches a socket itself: a connection sends and
 * closes through `struct oc_conn_ops`, which is the WebSocket layer in the
 * gateway and a plain buffer in the unit tests and the fuzzer.
 */
#ifndef CH_API_OC_INTERNAL_H
#define CH_API_OC_INTERNAL_H

#include <jansson.h>
#include <uv.h>

#include "api/internal.h"

struct ch_ws_conn;

/* ---- scopes (spec 1.7) ---- */
enum {
    OC_SCOPE_READ = 1 << 0,
    OC_SCOPE_WRITE = 1 << 1,
    OC_SCOPE_ADMIN = 1 << 2,
    OC_SCOPE_APPROVALS = 1 << 3,
    OC_SCOPE_PAIRING = 1 << 4,
};
/* "operator.read" -> bit; 0 for a scope chela does not know. */
unsigned ch_oc_scope_bit(const char *name);
/* Bits -> new JSON array of names, in canonical order. */
json_t *ch_oc_scopes_json(unsigned bits);
/* The same array appended as compact JSON text. */
int ch_oc_scopes_append(struct ch_buf *b, unsigned bits);
/* The operator scopes a chela credential (CH_SCOPE_* bits) may hold:
 * read -> operator.read, chat/send -> operator.write, admin -> all. */
unsigned ch_oc_scopes_allowed(unsigned ch_scopes);

/* ---- schema validation (oc_schema.c, oc_schema_gen.c) ---- */
enum oc_type { OC_T_ANY, OC_T_STRING, OC_T_INT, OC_T_NUM, OC_T_BOOL, OC_T_OBJ, OC_T_ARR, OC_T_NULL };
enum {
    OC_F_CLOSED = 1 << 0,     /* additionalProperties: false */
    OC_F_NULLABLE = 1 << 1,   /* anyOf [items, null] */
    OC_F_ENUM = 1 << 2,       /* enum: "must be equal to one of the allowed values" */
    OC_F_ENUM_ANYOF = 1 << 3, /* anyOf of string constants */
    OC_F_CONST = 1 << 4,      /* const */
    OC_F_MIN = 1 << 5,
    OC_F_MAX = 1 << 6,
};
struct oc_node;
struct oc_prop {
    const char *name;
    const struct oc_node *node;
};
struct oc_node {
    uint8_t type;                /* enum oc_type */
    uint16_t flags;              /* OC_F_* */
    int32_t min_len, max_len;    /* strings (code points) and arrays (items); -1: none */
    double minimum, maximum;     /* with OC_F_MIN / OC_F_MAX */
    const char *const *values;   /* enum/const values, NULL-terminated */
    const struct oc_prop *props; /* objects: NULL-name-terminated */
    const char *const *required; /* NULL-terminated */
    const struct oc_node *items; /* arrays: items; objects: every value; nullable: the inner node */
};
struct oc_method_schema {
    const char *method;
    const struct oc_node *node;
};
extern const struct oc_node *const ch_oc_connect_schema;
extern const struct oc_method_schema ch_oc_method_schemas[];
extern const struct oc_node ch_oc_request_frame_schema;

/*
 * Wording of the error texts (spec 1.3): v3 is the 2026.3.x gateway (AJV
 * with allErrors: every missing or unexpected property, "must NOT have",
 * enums written as anyOf of constants); v4 is TypeBox 1.x (the first
 * missing and the first unexpected property of an object, "must not
 * have", "must be equal to one of the allowed values").
 */
enum oc_wording { OC_WORDING_V3 = 3, OC_WORDING_V4 = 4 };
/*
 * Validate v against n.  0 when valid; else CH_EINVAL and out holds the
 * parts joined by "; " with duplicates removed, exactly as OpenClaw's
 * formatValidationErrors() prints them (out is capped: a long list is
 * cut, never overflowed).  v may be NULL (absent: "must be object").
 */
int ch_oc_schema_check(const struct oc_node *n, const json_t *v, enum oc_wording w, struct ch_buf *out);
/* The params schema of a method, or NULL (no documented params). */
const struct oc_node *ch_oc_method_schema(const char *method);

/* ---- connections (oc_ws.c) ---- */
enum oc_state { OC_CHALLENGED, OC_AUTHED, OC_CLOSING };

struct oc_conn;
struct oc_conn_ops {
    /* Queue one text frame; 0 or a CH_E* (the transport closes itself on
     * CH_E_TOO_LARGE: a slow consumer). */
    int (*send)(struct oc_conn *c, const char *p, size_t n);
    /* Start closing with code and reason. */
    void (*close)(struct oc_conn *c, uint16_t code, const char *reason);
    /* Raise the message cap after the handshake (may be NULL). */
    void (*set_max_message)(struct oc_conn *c, size_t max_bytes);
};

struct oc_conn {
    struct ch_oc *oc; /* borrowed */
    const struct oc_conn_ops *ops;
    void *transport;             /* borrowed: the ch_ws_conn, or the test's buffer */
    struct oc_conn *prev, *next; /* in oc->pending (CHALLENGED) or oc->authed */
    int refs;                    /* the transport + async work answering on it */
    uint8_t state;               /* enum oc_state */
    uint8_t protocol;            /* negotiated: 3 or 4; 0 before connect */
    uint8_t scopes;              /* OC_SCOPE_* granted */
    bool tool_events;            /* sent the tool-events cap */
    bool loopback;
    bool listed;       /* in one of the two lists */
    bool in_presence;  /* counted in the presence snapshot */
    bool parked;       /* its connect waits for the pairing registry */
    uint64_t seq;      /* v4: events sent to this connection */
    int64_t opened_ms; /* wall clock at open */
    char nonce[37];    /* the connect.challenge nonce */
    char conn_id[37];
    char addr[48]; /* peer address */
    /* Borrowed: point into strs (one allocation per connection, set once
     * by the handshake's remember()); NULL when absent.  Never free one. */
    char *client_id, *client_mode, *client_version, *platform, *instance_id, *device_id, *display_name;
    char *strs;      /* owned: the block the strings above live in */
    char *auth_name; /* owned: credential name, for logs */
    /* A ref held: the API/config token it authenticated with, or NULL
     * (device token, auth mode none); re-checked by oc_guard.c. */
    /* A device token tied to an API token holds that one (oc_pairing_token.c). */
    struct ch_auth_entry *auth;
    const char *role; /* static: "operator", "node", "worker" */
};

/* One live OpenClaw gateway per api (struct ch_api.oc). */
struct oc_run;
struct oc_dedupe_entry;
struct ch_oc {
    struct ch_api *api;     /* borrowed: the owner */
    struct oc_conn pending; /* list head: CHALLENGED connections, oldest first */
    struct oc_conn authed;  /* list head: AUTHED connections */
    size_t n_pending, n_authed, n_presence;
    uv_timer_t tick; /* one timer for every connection's tick */
    bool tick_on;
    bool stopped;    /* shutdown sent: refuse new connections */
    uint64_t seq_v3; /* global broadcast counter of v3 connections */
    uint64_t presence_version, health_version;
    int64_t tick_interval_ms;                  /* gateway.ws.tickIntervalMs */
    int64_t max_payload;                       /* gateway.ws.maxPayload (after connect) */
    int64_t max_buffered;                      /* gateway.ws.maxBufferedBytes (send queue) */
    int64_t handshake_timeout_ms;              /* gateway.ws.handshakeTimeoutMs */
    struct ch_agent_sub *sub;                  /* every run's events */
    struct ch_map runs;                        /* run id -> struct oc_run (owned) */
    struct ch_map dedupe;                      /* idempotency key -> struct oc_dedupe_entry (owned) */
    struct oc_dedupe_entry *dd_head, *dd_tail; /* insertion order, for TTL and the cap */
    json_t *events;                            /* owned: queued system events (wake, system-event), bounded */
    bool presence_dirty;                       /* a presence event is due (coalesced, 1 Hz) */
    int64_t health_broadcast_ms;               /* last `health` event */
    json_t *health_sessions;                   /* owned: last {path, count, recent} read from the store, or NULL */
    int64_t health_ms;                         /* when health_sessions was read */
    char boot_id[37];
    int64_t started_ms;
    struct oc_pairing *pairing; /* owned: paired devices and requests (oc_pairing.c) */
};

/* Lifecycle (oc_ws.c).  ch_oc_new/free/shutdown are declared in internal.h. */
/* A connection not bound to a socket (unit tests, the fuzzer); it is
 * challenged at once through ops. */
struct oc_conn *ch_oc_conn_open(struct ch_oc *oc, const struct oc_conn_ops *ops, void *transport, bool loopback,
                                const char *addr);
/* One complete text frame from the peer. */
void ch_oc_conn_on_text(struct oc_conn *c, const char *p, size_t n);
/* The transport is gone (after its close). */
void ch_oc_conn_closed(struct oc_conn *c);
void ch_oc_conn_ref(struct oc_conn *c);
void ch_oc_conn_unref(struct oc_conn *c);
/* Close with a code; the transport reports back with ch_oc_conn_closed. */
void ch_oc_conn_close(struct oc_conn *c, uint16_t code, const char *reason);
bool ch_oc_conn_is_open(const struct oc_conn *c);
/* Enter AUTHED (oc_connect.c calls this once hello-ok is out). */
void ch_oc_conn_set_authed(struct oc_conn *c);

/* Sending (oc_ws.c).  Each steals payload/details (NULL allowed). */
int ch_oc_send_json(struct oc_conn *c, json_t *frame);
/* One frame already serialised (copied): CH_ECLOSED when not open. */
int ch_oc_send_text(struct oc_conn *c, const char *p, size_t n);
int ch_oc_res_ok(struct oc_conn *c, const char *id, json_t *payload);
int ch_oc_res_err(struct oc_conn *c, const char *id, const char *code, const char *message, json_t *details);
/* ok:false with a payload too (the v3 agent failure shape). */
int ch_oc_res_err_payload(struct oc_conn *c, const char *id, json_t *payload, const char *code, const char *message,
                          json_t *details);
/* An event to one connection, with its seq (v4: per connection; v3:
 * targeted events carry none). */
int ch_oc_event_to(struct oc_conn *c, const char *event, json_t *payload);

/* ---- the handshake (oc_connect.c, oc_hello.c) ---- */
/* The challenge frame, sent on open (a fresh nonce in c->nonce). */
void ch_oc_send_challenge(struct oc_conn *c);
/* The hello-ok response to request id, for c's negotiated protocol,
 * role and scopes, with g's device token (g may be NULL; not released);
 * 0 or a CH_E* (nothing sent). */
struct oc_pair_grant;
int ch_oc_send_hello_ok(struct oc_conn *c, const char *id, const struct oc_pair_grant *g);
/* Text renderers, byte-identical to json_dumps(JSON_COMPACT) of the
 * jansson builders: the presence list, the health payload. */
int ch_oc_presence_append(struct ch_oc *oc, struct ch_buf *b);
int ch_oc_health_append(struct ch_oc *oc, struct ch_buf *b, int64_t now_ms);
#define OC_PRESENCE_MAX 16 /* entries in a presence list (newest first) */
/* A frame in CHALLENGED state: parsed (may be NULL when the text was not
 * JSON).  Answers, closes, or authenticates. */
void ch_oc_connect_frame(struct oc_conn *c, json_t *frame);
/* Pure helpers, unit-tested. */
/* Highest of 4 and 3 inside [min, max], or 0. */
int ch_oc_negotiate(int64_t min_protocol, int64_t max_protocol);
/* The v2/v3 signed payload of a device proof (spec 1.4); owned. */
char *ch_oc_device_payload(int version, const char *device_id, const char *client_id, const char *client_mode,
                           const char *role, const json_t *scopes, int64_t signed_at_ms, const char *token,
                           const char *nonce, const char *platform, const char *device_family);
/*
 * Verify a device block against the challenge nonce: 0, or CH_EINVAL with
 * *message and *code set to OpenClaw's rejection text and details code
 * (static strings).  Public keys: raw 32-byte Ed25519 in base64url or
 * base64, or SPKI PEM.
 */
int ch_oc_device_verify(const json_t *device, const char *challenge_nonce, const char *client_id,
                        const char *client_mode, const char *role, const json_t *scopes, const char *token,
                        const char *platform, const char *device_family, int64_t now_ms, const char **message,
                        const char **code);

/* ---- dispatch and methods (oc_methods_misc.c) ---- */
enum oc_need { OC_NEED_READ, OC_NEED_WRITE, OC_NEED_ADMIN, OC_NEED_PAIRING /* operator.pairing (or admin) */ };
/* One request being served.  Handlers answer with ch_oc_res_* on q->conn
 * with q->id, at once or later (then they ref the conn and copy the id). */
struct oc_req {
    struct oc_conn *conn;
    const char *id; /* borrowed for the call */
    const char *method;
    json_t *params; /* borrowed for the call: an object */
};
typedef void (*oc_method_fn)(struct oc_req *q);
struct oc_method {
    const char *name;
    uint8_t need;    /* enum oc_need */
    bool advertised; /* listed in hello-ok features.methods */
    oc_method_fn fn;
};
const struct oc_method *ch_oc_method_find(const char *name);
/* features.methods of hello-ok (new reference). */
json_t *ch_oc_methods_json(void);
json_t *ch_oc_events_json(void);
/* Serve one parsed request frame of an AUTHED connection. */
void ch_oc_dispatch(struct oc_conn *c, const json_t *frame);
/*
 * Before a request of an AUTHED connection is served (oc_guard.c): its
 * API token must still be live, unexpired and hold the connection's
 * scopes (else the connection is closed 1008), and the request is
 * charged to the token's and the global rate limit like a REST request
 * (else it is answered UNAVAILABLE, retryable, with retryAfterMs).
 * True when the request may go on.
 */
bool ch_oc_guard_request(struct oc_conn *c, const char *id);

/* Shared answers. */
void ch_oc_unavailable(struct oc_req *q, const char *what);
/* The health snapshot (also the `health` event and hello-ok). */
json_t *ch_oc_health_json(struct ch_oc *oc);
json_t *ch_oc_presence_json(struct ch_oc *oc);
/* Queue a system event (wake, system-event): bounded ring of 100. */
void ch_oc_system_event_push(struct ch_oc *oc, const char *text, const char *source);

/* Method handlers, by file. */
void ch_oc_m_tools_invoke(struct oc_req *q); /* oc_methods_tools.c */
void ch_oc_m_sessions_list(struct oc_req *q);
void ch_oc_m_sessions_preview(struct oc_req *q);
void ch_oc_m_sessions_get(struct oc_req *q); /* oc_history.c */
void ch_oc_m_sessions_patch(struct oc_req *q);
void ch_oc_m_sessions_reset(struct oc_req *q);
void ch_oc_m_sessions_delete(struct oc_req *q);
void ch_oc_m_sessions_compact(struct oc_req *q);
void ch_oc_m_sessions_usage(struct oc_req *q);
void ch_oc_m_usage_status(struct oc_req *q);
void ch_oc_m_usage_cost(struct oc_req *q);
void ch_oc_m_chat_history(struct oc_req *q); /* oc_history.c */
void ch_oc_m_chat_inject(struct oc_req *q);
void ch_oc_m_status(struct oc_req *q);
void ch_oc_m_agent(struct oc_req *q);
void ch_oc_m_agent_wait(struct oc_req *q);
void ch_oc_m_chat_send(struct oc_req *q);
void ch_oc_m_chat_abort(struct oc_req *q);

/* ---- store-backed methods (oc_methods_sessions.c, oc_methods_usage.c) ---- */
struct ch_llm_catalog;
/*
 * One store job answering one request.  run() executes on a store thread
 * and fills answer (or err_code/err_msg); done answers on the loop thread
 * if the connection is still open.  params is a reference; cat a catalog
 * reference (read-only from the job thread).
 */
struct oc_sjob {
    struct ch_store_job job;
    struct ch_oc *oc;
    struct oc_conn *conn;       /* ref held */
    char *req_id;               /* owned */
    const char *method;         /* static */
    json_t *params;             /* ref */
    struct ch_llm_catalog *cat; /* ref, may be NULL */
    char *store_path;           /* owned */
    int protocol;
    int64_t now_ms;
    char *model_ref;      /* owned: sessions.patch's resolved model, or NULL */
    json_t *answer;       /* owned: built by run() */
    json_t *health;       /* owned: a fresh health sessions block, or NULL */
    const char *err_code; /* static, or NULL */
    char err_msg[256];
    char key[CH_SESSION_KEY_MAX + 1]; /* the canonical session key (ch_oc_sjob_new_key), else "" */
};
/* NULL after answering (no store, out of memory). */
struct oc_sjob *ch_oc_sjob_new(struct oc_req *q, ch_store_job_run_cb run);
/* The default completion: answer (if the connection is open) and free. */
void ch_oc_sjob_finish(struct ch_store_job *job, int rc);
/* The same for a method naming a session in params[param]: its canonical
 * key in j->key; NULL after answering a malformed key (oc_session_key.c). */
struct oc_sjob *ch_oc_sjob_new_key(struct oc_req *q, ch_store_job_run_cb run, const char *param);
/* A session key as sent (NULL: none) -> its canonical form in out; 0, or
 * CH_EINVAL (malformed) / CH_E_TOO_LARGE with OpenClaw's refusal in why
 * (why may be NULL). */
int ch_oc_key_canon(const char *raw, char *out, size_t cap, char *why, size_t why_cap);
/* The same answering q INVALID_REQUEST with that refusal (false). */
bool ch_oc_req_key(struct oc_req *q, const char *raw, char *out, size_t cap);
/* Queue as a read or a write; answers UNAVAILABLE itself on failure. */
void ch_oc_sjob_submit(struct oc_sjob *j, bool write);
/* One session row (SessionRow, spec 2.2), on a job thread. */
json_t *ch_oc_session_row(struct ch_db *db, const struct ch_session_rec *s, const struct ch_llm_catalog *cat,
                          int64_t now_ms);
/* sessions.list defaults {modelProvider, model, contextTokens}. */
json_t *ch_oc_session_defaults(const struct ch_llm_catalog *cat);
/* {path, count, recent[]} of the health snapshot from a list (first page). */
json_t *ch_oc_health_sessions(const struct ch_session_list *l, const char *path, int64_t now_ms);
/* ---- transcripts (oc_history.c) ---- */
/* spec 2.2: chat.history is bounded to about 6 MiB (of message JSON). */
#define CH_OC_HISTORY_BYTES (6u << 20)
/* A stored message in the Pi transcript shape (chat.history, sessions.get,
 * GET /sessions/:key/history), with OpenClaw's `__openclaw: {id, seq}`. */
json_t *ch_oc_message_json(const struct ch_message_rec *m);
/* The same, or with omit (or no content loaded) OpenClaw's placeholder for
 * a message too large to send, `__openclaw.truncated` set: the
 * ch_api_fit_render_cb of these answers. */
json_t *ch_oc_history_message(const struct ch_message_rec *m, bool omit);

/* ---- runs, idempotency and events (oc_events.c, oc_methods_agent.c) ---- */
#define OC_DEDUPE_MAX 1000
#define OC_DEDUPE_TTL_MS (5 * 60 * 1000)

struct oc_waiter;
/* A run this gateway knows about: started over WS, or seen on the bus. */
struct oc_run {
    char *run_id;              /* owned (the map key too) */
    char *session_key;         /* owned */
    char *session_id;          /* owned or NULL until START */
    struct oc_waiter *waiters; /* `agent` final answers and agent.wait calls */
    uv_timer_t throttle;       /* chat delta throttle (150 ms) */
    bool timer_init, timer_armed, closing;
    bool ended;
    uint64_t chat_seq;
    int64_t last_chat_ms; /* when the last chat delta left */
    struct ch_buf text;   /* cumulative assistant text */
    size_t chat_sent_len; /* bytes of text already covered by chat deltas */
    int64_t started_ms, ended_ms;
    struct ch_oc *oc;
    /* Made by agent.wait before the run was seen (OpenClaw waits for an
     * unknown runId): session_key is a placeholder that the run's first
     * event or submit replaces. */
    bool key_pending;
    uint64_t output_tokens; /* the run's output tokens so far: the `usage` stream's total */
    /* Static: why an abort stopped it, OpenClaw's stopReason: "reset" or
     * "delete" for those methods' aborts; NULL is OC_ABORT_STOP_REASON. */
    const char *stop_reason;
};

struct oc_dedupe_entry {
    char *key;         /* owned */
    char *run_id;      /* owned */
    char *final_text;  /* owned: serialized final payload, or NULL while in flight */
    char *final_error; /* owned: the error message of a failed final, or NULL */
    bool final_ok;     /* the final res was ok:true */
    /* The run was aborted (its final is ok:true too). */
    bool final_aborted;
    const char *final_stop_reason; /* static: the run's stop_reason, for agent.wait from the cache */
    int64_t at_ms;
    int64_t started_ms, ended_ms; /* of the finished run, for agent.wait from the cache */
    struct oc_dedupe_entry *prev, *next;
};
struct oc_dedupe_entry *ch_oc_dedupe_find(struct ch_oc *oc, const char *key, int64_t now_ms);
struct oc_dedupe_entry *ch_oc_dedupe_add(struct ch_oc *oc, const char *key, const char *run_id, int64_t now_ms);
void ch_oc_dedupe_release(struct ch_oc *oc);

/* A waiter: kind AGENT answers the second `agent` res; WAIT answers agent.wait. */
enum oc_waiter_kind { OC_WAIT_AGENT, OC_WAIT_WAIT };
struct oc_waiter {
    struct oc_waiter *next;
    uint8_t kind;
    struct oc_conn *conn; /* ref held */
    char *req_id;         /* owned */
    char *dedupe_key;     /* owned or NULL: where to cache the final */
    uv_timer_t timer;     /* agent.wait timeout */
    bool timer_init;
    struct oc_run *run; /* borrowed while listed */
};

int ch_oc_events_start(struct ch_oc *oc);
void ch_oc_events_stop(struct ch_oc *oc);
/* The run record for run_id, created when absent (session_key may be NULL
 * to only look up). */
struct oc_run *ch_oc_run_get(struct ch_oc *oc, const char *run_id, const char *session_key);
void ch_oc_run_add_waiter(struct oc_run *r, struct oc_waiter *w);
/* Unlink w from its run (it is not freed). */
void ch_oc_run_remove_waiter(struct oc_run *r, struct oc_waiter *w);
/* Forget a run record that never started (a refused submit). */
void ch_oc_run_forget(struct oc_run *r);
/* A record for agent.wait on a run not seen yet (key_pending), or NULL. */
struct oc_run *ch_oc_run_await(struct ch_oc *oc, const char *run_id);
/* Out of the table now, its waiters freed unanswered (oc_runs.c). */
void ch_oc_run_drop(struct oc_run *r);
void ch_oc_waiter_free(struct oc_waiter *w);
/* Build the final `agent` payload and whether it is ok, from a result. */
json_t *ch_oc_agent_final(const char *run_id, const struct ch_agent_result *res, const char *session_id, int protocol,
                          bool *ok, char **err_msg);
/* The stopReason OpenClaw gives a run stopped by an RPC (chat.abort; a
 * session reset or delete says "reset"/"delete" there, which chela's
 * agent does not tell apart). */
#define OC_ABORT_STOP_REASON "rpc"
/* The agent.wait result (new reference) of a run that ended with agent
 * status `status` ("ok", "error", "aborted", "timeout") and error text
 * `error` (NULL: the status), for a client of `protocol` (oc_runs.c). */
json_t *ch_oc_wait_result(const char *run_id, const char *status, const char *error, int64_t started_ms,
                          int64_t ended_ms, int protocol, const char *stop_reason);
/* The live runs sessions.reset or .delete just aborted (ids: NULL-
 * terminated, freed here with their strings) end with stopReason `reason`
 * ("reset", "delete") as OpenClaw's drain gives them, not "rpc" (oc_runs.c). */
void ch_oc_runs_stopped_by(struct ch_oc *oc, const char *session_key, char **ids, const char *reason);
/* Broadcast to AUTHED connections holding need_scopes (0: everyone). */
void ch_oc_broadcast(struct ch_oc *oc, const char *event, json_t *payload, unsigned need_scopes, bool tool_only,
                     bool with_state_version);
/* Presence changed: one `presence` event goes out at the next 1 Hz sweep. */
void ch_oc_broadcast_presence(struct ch_oc *oc);
/* Send due coalesced events (presence, the 60 s health); 1 Hz. */
void ch_oc_events_sweep(struct ch_oc *oc);

/* ---- device pairing and device tokens (oc_pairing.c, oc_pairing_ops.c;
 * spec 1.4 "Pairing", 2.2 "Node and device methods") ---- */
#define OC_PAIR_PENDING_TTL_MS (5 * 60 * 1000) /* the reference's DEVICE_PAIRING_PENDING_TTL_MS */
#define OC_PAIR_PARKED_MAX 64                  /* device connects held while the registry loads */
/* Pending requests one source (API token, else address or IPv6 /64) may
 * hold; past it its own oldest makes room (oc_pairing_quota.c).  Enough
 * for one client's devices awaiting review at once, a small share of the
 * queue (CH_STORE_MAX_DEVICE_REQUESTS, 256) for a flood. */
#define OC_PAIR_PENDING_PER_SOURCE 8

/*
 * The gateway's pairing state, in memory: loaded from the store at start
 * (a pool read), changed only on the loop thread, and written
 * through to the store (one write job per change, in order).  Pending
 * requests older than OC_PAIR_PENDING_TTL_MS are dropped when next seen.
 */
struct oc_pairing {
    struct ch_oc *oc;                      /* borrowed: the owner */
    struct ch_device_list devices;         /* owned: paired devices */
    size_t devices_cap;                    /* allocated items */
    struct ch_device_request_list pending; /* owned: requests, oldest first */
    size_t pending_cap;
    bool loaded;           /* the store's rows are in (else device connects wait) */
    struct load_job *load; /* the load in flight, or NULL */
    /* Device connects that arrived before the load answered wait here
     * (bounded) and are replayed when it does, instead of being refused. */
    struct oc_parked {
        struct oc_conn *c; /* a ref held */
        json_t *frame;     /* owned ref */
    } parked[OC_PAIR_PARKED_MAX];
    size_t n_parked;
};

/* What a device connect earned, for hello-ok.auth (spec 1.5). */
struct oc_pair_grant {
    char *device_token; /* owned secret (wiped when released), or NULL: none issued */
    char role[16];
    unsigned scopes; /* OC_SCOPE_* of the token */
    int64_t issued_ms;
};

/* Start the load (ch_oc_new); an unreadable store logs and starts empty. */
int ch_oc_pairing_start(struct ch_oc *oc);
/* A connect frame that needs the registry while it is still loading: keep
 * it (true) to replay through ch_oc_connect_frame once loaded.  False when
 * it can be answered now (or the parking lot is full: the caller answers,
 * and the device connect gets the reference's "gateway starting"). */
bool ch_oc_pairing_park(struct oc_conn *c, json_t *frame);
/* Once `loaded` is set: answer the parked connects, oldest first. */
void ch_oc_pairing_replay(struct oc_pairing *p);
void ch_oc_pairing_free(struct ch_oc *oc);
/*
 * authenticate(): when the shared secret did not match, a paired device's
 * token (auth.deviceToken, else auth.token) for the connect's device and
 * role.  Returns the OC_SCOPE_* the token allows, -1 when it is not a
 * device token (the caller answers as usual), -2 after refusing an
 * explicit auth.deviceToken (answered and closing).
 */
int ch_oc_pairing_token_auth(struct oc_conn *c, const char *id, const json_t *params, int64_t now_ms);
/*
 * After the device proof verified: a paired device within its approved
 * role and scopes goes on (0; g gets its device token), an unpaired one
 * or an upgrade is paired silently on loopback with
 * gateway.nodes.pairing.autoApproveLocal, else becomes a pending request
 * and the connect is answered NOT_PAIRED and closed 1008 (-1).
 */
int ch_oc_pairing_connect(struct oc_conn *c, const char *id, const json_t *params, const char *role, unsigned allowed,
                          struct oc_pair_grant *g);
/* Wipe and free the token. */
void ch_oc_pair_grant_release(struct oc_pair_grant *g);
/* Answer a device connect that came while the registry loads (the
 * reference's retryable "gateway starting") and close 1013. */
void ch_oc_pairing_starting(struct oc_conn *c, const char *id);
/* The API token id a token issued now to c for d must answer to: c's db
 * token while d is silently paired or this connect (widened) just widened
 * it silently, else 0 (oc_pairing_token.c). */
int64_t ch_oc_pairing_tie(const struct oc_conn *c, const struct ch_device_rec *d, bool widened);
/* d's token for role into g: the presented one back when it is d's (its
 * tie kept), else a fresh one holding d's scopes within allowed, tied to
 * tie (replacing the old).  Nothing issued when out of memory. */
/* d's new token slot for role (the caller checked there is room:
 * CH_DEVICE_MAX_TOKENS), zeroed but for its role and creation time. */
struct ch_device_token *ch_oc_pairing_token_add(struct ch_device_rec *d, const char *role, int64_t now);
void ch_oc_pairing_issue(struct ch_device_rec *d, const char *role, const char *presented, unsigned allowed,
                         int64_t tie, struct oc_pair_grant *g, int64_t now);
/* The source a pending request of c counts against: "token:<id>" for a
 * db token, else "addr:<address or IPv6 /64>" (oc_pairing_quota.c). */
void ch_oc_pairing_source(const struct oc_conn *c, char *out, size_t cap);
/* Before queueing a request of source: its own oldest goes when it holds
 * OC_PAIR_PENDING_PER_SOURCE, else the oldest of all when the queue is full. */
void ch_oc_pairing_make_room(struct oc_pairing *p, const char *source);
/* hello-ok's auth members for g (oc_hello.c): appends
 * `,"deviceToken":"...","issuedAtMs":N` inside auth{}, or nothing. */
int ch_oc_pairing_hello_append(struct ch_buf *b, const struct oc_pair_grant *g);

/* Shared by the WS methods and REST (oc_pairing_ops.c).  Each returns 0
 * and *out (a new reference), CH_ENOTFOUND, or CH_EINVAL with msg set. */
json_t *ch_oc_pairing_list_json(struct ch_oc *oc);
int ch_oc_pairing_approve(struct ch_oc *oc, const char *request_id, json_t **out);
int ch_oc_pairing_reject(struct ch_oc *oc, const char *request_id, json_t **out);
int ch_oc_pairing_remove(struct ch_oc *oc, const char *device_id, json_t **out);
/* The pending request of a device (REST accepts a device id), or NULL. */
const char *ch_oc_pairing_request_of(struct ch_oc *oc, const char *device_id);
/* Internals shared by the two files. */
struct ch_device_rec *ch_oc_pairing_find(struct oc_pairing *p, const char *device_id);
struct ch_device_request_rec *ch_oc_pairing_find_request(struct oc_pairing *p, const char *request_id);
void ch_oc_pairing_expire(struct oc_pairing *p, int64_t now_ms);
void ch_oc_pairing_save_device(struct oc_pairing *p, const struct ch_device_rec *d);
void ch_oc_pairing_save_request(struct oc_pairing *p, const struct ch_device_request_rec *r);
void ch_oc_pairing_delete(struct oc_pairing *p, const char *device_id, const char *request_id);
void ch_oc_pairing_drop_request(struct oc_pairing *p, size_t i);
/* Pair r's device (new, or merging r's roles and scopes into it); via is
 * "silent" or "manual".  NULL when out of memory or at the device cap. */
struct ch_device_rec *ch_oc_pairing_apply(struct oc_pairing *p, const struct ch_device_request_rec *r, const char *via,
                                          int64_t now_ms);
/* Close the device's connections (role NULL: every role). */
void ch_oc_pairing_disconnect(struct ch_oc *oc, const char *device_id, const char *role, const char *reason);
/* To every AUTHED connection holding operator.pairing or operator.admin. */
void ch_oc_pairing_broadcast(struct ch_oc *oc, const char *event, json_t *payload);
json_t *ch_oc_pairing_device_json(struct ch_oc *oc, const struct ch_device_rec *d);
json_t *ch_oc_pairing_request_json(const struct ch_device_request_rec *r);
/* "a,b" -> JSON array of the names; OC_SCOPE_* of a csv; bits -> csv (owned). */
json_t *ch_oc_csv_json(const char *csv);
unsigned ch_oc_csv_scopes(const char *csv);
char *ch_oc_scopes_csv(unsigned bits);
bool ch_oc_csv_has(const char *csv, const char *name);
/* The device.* methods. */
void ch_oc_m_device_pair_list(struct oc_req *q);
void ch_oc_m_device_pair_approve(struct oc_req *q);
void ch_oc_m_device_pair_reject(struct oc_req *q);
void ch_oc_m_device_pair_remove(struct oc_req *q);
void ch_oc_m_device_token_rotate(struct oc_req *q);
void ch_oc_m_device_token_revoke(struct oc_req *q);

#endif
