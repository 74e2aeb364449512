/*
 * agent.h: the agent runtime.  A run is one turn of a session: the user's
 * message goes in with a session key, the agent talks to an LLM (and its
 * tools) and a result comes out, streamed as events on the way.
 *
 * Runs are durable: ch_agent_submit() answers only after the run's row is
 * committed (status queued), a run is marked running, then ok / error /
 * aborted / timeout; a run still queued or running when the gateway stops
 * or crashes is resumed at the next start.  Runs of one session key are
 * serialised (a lane per key); at most agents.defaults.maxConcurrent run
 * at once; at most agents.defaults.queueSize wait (beyond: CH_EBUSY, the
 * caller reports it, nothing is dropped silently).
 *
 * Surfaces (api, ws, channels) subscribe to the event bus; callbacks run
 * synchronously on the loop thread and must only copy into their own
 * bounded queues, so a slow subscriber never stalls a run.
 *
 * Layer: agent uses core, net, config, store, providers, tools.  It never
 * includes api, ws or channels (STYLE.md 8.1).
 */
#ifndef CH_AGENT_H
#define CH_AGENT_H

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "net/net.h"
#include "providers/providers.h"
#include "store/store.h"
#include "tools/tools.h"

struct ch_agent;
struct ch_llm_client;

struct ch_agent_opts {
    uv_loop_t *loop;             /* borrowed */
    struct ch_net *net;          /* borrowed */
    struct ch_store *store;      /* borrowed */
    struct ch_llm_client *llm;   /* borrowed */
    struct ch_tools *tools;      /* borrowed; NULL: no tools offered */
    const struct ch_config *cfg; /* borrowed until ch_agent_reload */
    const char *workspace_dir;   /* AGENTS.md lives here; NULL: none */
};

int ch_agent_new(const struct ch_agent_opts *o, struct ch_agent **out, struct ch_error *err);
/*
 * Resume unfinished runs from the store: `running` runs go back to
 * `queued` and every queued run is scheduled again, oldest first.
 * Asynchronous; cb (may be NULL) reports how many were resumed.
 */
void ch_agent_resume(struct ch_agent *a, void (*cb)(int rc, size_t resumed, void *data), void *data);
/* SIGHUP: system prompt, limits, defaults. */
void ch_agent_reload(struct ch_agent *a, const struct ch_config *cfg);
/*
 * Stop: refuse new runs, abort the LLM calls and tools in flight without
 * marking their runs failed (they stay `running` in the store and are
 * replayed at the next start), wait for pending store jobs, then cb.
 */
void ch_agent_stop(struct ch_agent *a, void (*cb)(void *data), void *data);
void ch_agent_free(struct ch_agent *a);

/* ------------------------------------------------------------------ */
/* Runs                                                                 */
/* ------------------------------------------------------------------ */

struct ch_agent_run_req {
    const char *session_key;     /* required; see ch_agent_session_key_valid */
    const char *message;         /* required, non-empty; reaches the model byte for byte */
    const char *run_id;          /* optional: caller-chosen (WS: the idempotencyKey) */
    const char *idempotency_key; /* optional: a repeat returns the first run's id */
    const char *source;          /* "hook" "api" "ws" "cli" "openai" ... */
    const char *channel;         /* optional: the message channel the request came in on
                                    (OpenClaw's x-openclaw-message-channel), 1-64 bytes.
                                    Stored with the run, reported in its events, and
                                    given to its session when the session has none. */
    const char *model;           /* optional override: "provider/model" or an alias */
    const char *system_prompt;   /* optional: replaces the configured prompt for this run */
    const char *extra_system;    /* optional: appended to the system prompt */
    int64_t max_tokens;          /* 0: model default */
    double temperature;
    bool has_temperature;
    int64_t timeout_s;          /* 0: agents.defaults.timeoutSeconds (600) */
    const json_t *sampling;     /* optional: OpenAI-named request parameters for every LLM call
                                   of the run (ch_llm_call_opts.sampling); copied and stored */
    bool no_tools;              /* plain chat: offer no tools */
    const json_t *images;       /* optional: neutral image blocks (base64 sources) sent
                                   with the message; its user turn is then the text
                                   and these blocks.  Copied and stored. */
    bool isolated;              /* start the session afresh (a new session id, the old
                                   transcript kept under the old one), as OpenClaw's
                                   hook sessionMode "isolated"; a replay keeps the
                                   session its first attempt started.  Stored. */
    const json_t *client_tools; /* optional: neutral definitions ([{name, description,
                                   input_schema}]) of tools the caller runs itself
                                   (OpenClaw's clientTools, /v1).  Offered with the
                                   agent's own; a call to one ends the run ("ok") with
                                   the call in ch_agent_result.client_calls.  Names
                                   must not repeat or shadow a registered tool
                                   (ch_agent_client_tools_check).  Copied and stored. */
    const json_t *meta;         /* optional object kept in the run's request (hook name,
                                   callback, delivery target...); borrowed */
    const char *meta_json;      /* optional: meta already encoded as compact JSON (the
                                   caller has the text), stored as is instead of
                                   encoding meta again; used only with meta */
    const char *message_json;   /* optional: message already encoded as a JSON string
                                   (quotes included), byte for byte what
                                   ch_buf_append_json_str writes for it; the stored
                                   request copies it instead of encoding message */
    bool meta_shared;           /* the run keeps a reference to meta instead of a deep
                                   copy: neither side may change it afterwards */
};

/*
 * Called once the run is durably queued (rc 0) or refused: CH_EBUSY (the
 * queue is full), CH_EINVAL (bad request; msg says why), CH_ESTATE (the
 * agent is stopping).  duplicate: the idempotency key was already used,
 * run_id is the first run's id.  run_id and msg are valid only during the
 * call.
 */
typedef void (*ch_agent_accepted_cb)(int rc, const char *run_id, bool duplicate, const char *msg, void *data);
/* Submit a run.  Never calls cb synchronously. */
void ch_agent_submit(struct ch_agent *a, const struct ch_agent_run_req *req, ch_agent_accepted_cb cb, void *data);
/* Abort a queued or running run; CH_ENOTFOUND when it is not live. */
int ch_agent_abort(struct ch_agent *a, const char *run_id);
/* Abort every live run of a session; returns how many.  *run_ids_out (if
 * given): their ids, a NULL-terminated array the caller frees with each
 * string (shorter than the count if memory ran out), or NULL. */
size_t ch_agent_abort_session(struct ch_agent *a, const char *session_key, char ***run_ids_out);
/* Is this run queued or running in this process? */
bool ch_agent_run_is_live(struct ch_agent *a, const char *run_id);

/* Reserved prefixes a caller may not use for its own session keys. */
bool ch_agent_session_key_reserved(const char *key);
bool ch_agent_session_key_valid(const char *key);
/* 0 when tools (neutral definitions) can be a run's client_tools; else
 * CH_EINVAL with msg naming the name that repeats or shadows one of the
 * agent's tools, or that is missing. */
int ch_agent_client_tools_check(struct ch_agent *a, const json_t *tools, char *msg, size_t cap);
/* A new run id: a UUID version 7 (RFC 9562: 48 bits of Unix ms, then 74
 * random bits), lowercase and hyphenated like ch_uuid4.  Time-ordered, so
 * the runs table's primary-key index grows at its right edge instead of
 * dirtying a random leaf page (one WAL frame and one checkpoint copy) per
 * admitted run. */
void ch_agent_run_id_new(char out[37]);

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

enum ch_agent_ev_type {
    CH_AGENT_EV_START,       /* lifecycle start */
    CH_AGENT_EV_TEXT,        /* assistant text: delta + cumulative text */
    CH_AGENT_EV_TOOL_START,  /* tool_name, tool_id, tool_args */
    CH_AGENT_EV_TOOL_RESULT, /* tool_name, tool_id, tool_result, tool_is_error */
    CH_AGENT_EV_USAGE,       /* usage of the LLM call that just ended */
    CH_AGENT_EV_END,         /* lifecycle end: result says how (ok, error, ...) */
};

/* The outcome of a run (also what END carries). */
struct ch_agent_result {
    const char *status;      /* "ok" "error" "aborted" "timeout" */
    const char *text;        /* final assistant text ("" if none) */
    const char *error_class; /* rate_limit timeout context_length auth refusal unknown, or NULL */
    const char *error;       /* message, or NULL */
    const char *provider;    /* who answered last, or NULL */
    const char *model;
    struct ch_llm_usage usage; /* the whole run (all rounds) */
    double cost_usd;
    int64_t started_ms, finished_ms;
    int64_t first_token_ms; /* 0: no text */
    int tool_calls;
    int64_t context_tokens; /* prompt size of the last call */
    /* the client tool calls the run stopped at (tool_use blocks {type, id,
     * name, input}), or NULL: they are the caller's to run */
    const json_t *client_calls;
};

struct ch_agent_event {
    enum ch_agent_ev_type type;
    const char *run_id;
    const char *session_key;
    const char *session_id;
    const char *source;
    const char *channel; /* the run's message channel, or NULL */
    uint64_t seq;        /* per run, from 1 */
    int64_t ts_ms;
    struct ch_str delta; /* TEXT */
    struct ch_str text;  /* TEXT: cumulative text of this run */
    const char *tool_name, *tool_id;
    const json_t *tool_args; /* TOOL_START */
    const char *tool_result; /* TOOL_RESULT */
    bool tool_is_error;
    struct ch_llm_usage usage;            /* USAGE: this call; END: the run */
    const struct ch_agent_result *result; /* END */
    const json_t *meta;                   /* the run's meta object, or NULL */
};

typedef void (*ch_agent_event_cb)(const struct ch_agent_event *ev, void *data);
struct ch_agent_sub;
/*
 * Subscribe to one run's events (run_id) or to every run (NULL).
 * Callbacks run on the loop thread, synchronously; unsubscribing from
 * inside a callback is allowed.  NULL on allocation failure.
 */
struct ch_agent_sub *ch_agent_subscribe(struct ch_agent *a, const char *run_id, ch_agent_event_cb cb, void *data);
void ch_agent_unsubscribe(struct ch_agent_sub *s);

/* ------------------------------------------------------------------ */
/* Introspection                                                        */
/* ------------------------------------------------------------------ */

struct ch_agent_stats {
    size_t running, queued, lanes;
    uint64_t runs_total, runs_ok, runs_failed, runs_aborted, runs_timeout, runs_resumed;
    uint64_t tool_calls, compactions;
    struct ch_llm_usage usage; /* since start */
    double cost_usd;
    /* transcript cache (agents.defaults.transcriptCacheBytes) */
    size_t transcript_cache_bytes;
    uint64_t transcript_cache_hits, transcript_cache_misses;
};
void ch_agent_stats(const struct ch_agent *a, struct ch_agent_stats *out);
struct ch_llm_client *ch_agent_llm(struct ch_agent *a);
struct ch_tools *ch_agent_tools(struct ch_agent *a); /* NULL: none */

#endif
