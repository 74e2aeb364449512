/*
 * internal.h: private declarations of the agent layer.
 *
 * A run moves through one state machine (STYLE.md 8.5), changed only by
 * run_set_state() in run.c:
 *
 *   QUEUED -> STARTING -> LOADING -> CALLING_LLM <-> RUNNING_TOOLS
 *                                        |               |
 *                                        +--> FINISHING <+--> DONE
 *
 * STARTING persists `running` and the user message; LOADING reads the
 * session and its transcript; FINISHING persists the outcome, and only
 * then is END emitted, so an observer never sees a result the store could
 * still lose.
 */
#ifndef CH_AGENT_INTERNAL_H
#define CH_AGENT_INTERNAL_H

#include "agent/agent.h"
#include "providers/client.h"

enum run_state {
    RUN_QUEUED,
    RUN_STARTING,
    RUN_LOADING,
    RUN_COMPACTING,
    RUN_CALLING_LLM,
    RUN_RUNNING_TOOLS,
    RUN_FINISHING,
    RUN_DONE,
    RUN_NSTATES
};

struct lane;

/* ---- transcript cache (transcript.c); loop thread only ---- */

/* What an image counts for in the context estimate: ~1,600 tokens, about
 * what the providers bill for one (a base64 megabyte is not 260k tokens). */
#define CH_IMAGE_EST_BYTES 6400

/* The window of stored rows a run sees: what ch_messages_load_last gives. */
#define CH_TRANSCRIPT_MAX_ROWS 400
#define CH_TRANSCRIPT_MAX_BYTES (16 << 20)

struct ch_tc_row {
    int64_t seq;
    char role[16];   /* as stored: user assistant tool system compaction */
    json_t *content; /* owned ref, shared with histories, never mutated; NULL: unreadable */
    /* owned ref: the neutral message {"role":R,"content":content} a history
     * holds for this row, built once and shared by every turn's history,
     * never mutated (a history copies it before it merges into it); NULL
     * when the row is not replayed (unreadable, system) */
    json_t *msg;
    size_t json_bytes; /* compact JSON size of content */
    size_t text_bytes; /* stored text size (the window's byte cap) */
    bool assistant;    /* msg's role is "assistant" (else "user") */
    bool tool_use;     /* content has a tool_use block with an id */
    /* its image blocks and their base64 bytes (the token estimate counts an
     * image as CH_IMAGE_EST_BYTES, not as its data) */
    uint32_t images;
    size_t image_bytes;
};

struct ch_tcache;

struct ch_tc_entry {
    char *key, *session_id;          /* owned */
    struct ch_message_bounds bounds; /* the stored transcript's ends this copy matches */
    struct ch_tc_row *rows;          /* owned, ascending seq */
    json_t *role_user, *role_asst;   /* owned: the role strings the rows' msgs share */
    json_t *type_text;               /* owned: "text", shared by the text blocks built by hand */
    size_t count, cap;
    size_t text_bytes;
    size_t cost;                     /* bytes charged to the cache */
    struct ch_tc_entry *prev, *next; /* LRU (head: most recent), while in_map */
    struct ch_tcache *cache;         /* borrowed: set while in_map */
    int refs;                        /* the map's, a run's, append jobs' */
    bool in_map;
};

struct ch_tcache {
    struct ch_map map; /* session key -> entry (one ref each) */
    struct ch_tc_entry *head, *tail;
    size_t bytes, max_bytes; /* max 0: disabled */
    uint64_t hits, misses;
};

void ch_tcache_init(struct ch_tcache *c, size_t max_bytes);
void ch_tcache_release(struct ch_tcache *c);
void ch_tcache_set_max(struct ch_tcache *c, size_t max_bytes);
/* Borrowed (ref it to keep it); marks it most recently used. */
struct ch_tc_entry *ch_tcache_get(struct ch_tcache *c, const char *key);
/* Cache e under its key (replacing another copy), then evict to fit. */
void ch_tcache_put(struct ch_tcache *c, struct ch_tc_entry *e);
/* Forget e: the next run of its session reloads from the store. */
void ch_tcache_drop(struct ch_tcache *c, struct ch_tc_entry *e);
struct ch_tc_entry *ch_tc_entry_new(const char *key, const char *session_id);
void ch_tc_entry_ref(struct ch_tc_entry *e);
void ch_tc_entry_unref(struct ch_tc_entry *e);
/* Parse loaded rows (ascending) into e, whose ends in the store are *b. */
int ch_tc_entry_fill(struct ch_tc_entry *e, const struct ch_message_list *l, const struct ch_message_bounds *b);
/* Add a row just stored as (seq, id); CH_ESTATE when seq does not follow
 * the last one (another writer appended in between: drop the entry).
 * json_bytes: content's compact size if known (the stored text is its
 * json_dumps), else 0 to measure it. */
int ch_tc_entry_append(struct ch_tc_entry *e, int64_t seq, int64_t id, const char *role, json_t *content,
                       size_t text_bytes, size_t json_bytes);

struct ch_run {
    /* request (owned copies) */
    char *run_id, *session_key, *source, *message, *model_ref, *system_prompt, *extra_system, *idem;
    char *channel;        /* ch_agent_run_req.channel, or NULL */
    json_t *meta;         /* owned ref or NULL */
    json_t *sampling;     /* owned: ch_llm_call_opts.sampling for every call, or NULL */
    json_t *client_tools; /* owned: the caller's tool definitions, or NULL (run_client.c) */
    json_t *client_calls; /* owned: client tool calls of the last reply, or NULL */
    json_t *images;       /* owned: ch_agent_run_req.images, or NULL */
    json_t *user_content; /* owned: the user turn's blocks when there are images, else NULL */
    int64_t max_tokens, timeout_s;
    double temperature;
    bool has_temperature, no_tools;
    bool isolated; /* ch_agent_run_req.isolated */
    bool resumed;  /* replayed after a restart */
    /* scheduling */
    enum run_state state;
    struct lane *lane;      /* borrowed */
    struct ch_run *next;    /* in the lane's wait list */
    struct ch_agent *agent; /* borrowed */
    int refs;               /* jobs and timers holding the run */
    /* execution */
    char *session_id;           /* owned, from the store */
    char *model_override;       /* owned: the session's override, if any */
    json_t *history;            /* owned: neutral messages sent to the model */
    int64_t *hist_seqs;         /* owned: seq of the first stored row behind history[i] */
    size_t hist_seq_count;      /* entries loaded from the store (later ones are new) */
    size_t hist_bytes;          /* compact JSON size of history (token estimate) */
    size_t hist_image_bytes;    /* of which base64 image data */
    size_t hist_images;         /* image blocks in history */
    struct ch_tc_entry *tentry; /* ref: the session's transcript, or NULL */
    json_t *pending_tools;      /* owned: tool_use blocks of the last reply */
    json_t *tool_results;       /* owned: tool_result blocks collected */
    size_t tool_index;
    struct ch_buf text;        /* cumulative assistant text of the run */
    struct ch_buf round_text;  /* text of the current LLM reply */
    struct ch_llm_call *call;  /* in flight, or NULL */
    struct ch_tool_call *tool; /* in flight, or NULL */
    uv_timer_t timer;          /* the run's total deadline */
    bool timer_on;
    int rounds;
    char last_sig[65]; /* sha256 of the last tool name+args: loop detection */
    int same_sig_count;
    int tool_calls;
    uint64_t seq; /* events emitted */
    int64_t started_ms, first_token_ms, created_ms;
    int64_t context_tokens; /* prompt estimate of the last call */
    int64_t context_window;
    struct ch_llm_usage usage;
    double cost_usd;
    char *provider, *model; /* owned: last answering model */
    bool abort_requested, timed_out, stopping;
    bool rounds_compacted; /* compacted once this run: do not loop */
    /* outcome */
    const char *status;             /* static "ok" "error" "aborted" "timeout" */
    char *error, *error_class;      /* owned */
    struct ch_store_job *reply_job; /* owned: the last reply's append, run by the finish job */
    uv_timer_t *finish_retry;       /* the finish job's retry timer while it waits (finish.c) */
};

struct lane {
    char *key;                  /* owned */
    struct ch_run *head, *tail; /* waiting runs, FIFO */
    struct ch_run *active;      /* running, or NULL */
    struct lane *ready_next;    /* in the agent's ready list */
    size_t submitting;          /* runs of this key whose insert is in the store queue */
    bool in_ready;
};

struct ch_agent_sub {
    struct ch_agent *agent;
    char *run_id; /* owned, NULL = all runs */
    ch_agent_event_cb cb;
    void *data;
    struct ch_agent_sub *next;      /* in its list: the agent's, or its run's */
    struct ch_agent_sub *next_dead; /* in the agent's dead_subs */
    bool dead;                      /* unsubscribed while the bus was delivering */
};

struct ch_agent {
    uv_loop_t *loop;
    struct ch_net *net;
    struct ch_store *store;
    struct ch_llm_client *llm;
    struct ch_tools *tools;
    const struct ch_config *cfg;
    char *workspace_dir;
    /* settings (agent.c) */
    char *system_prompt;      /* owned: configured prompt + AGENTS.md */
    size_t system_prompt_len; /* checked against every run at submission */
    size_t max_concurrent, queue_size;
    int64_t timeout_s;
    int max_tool_rounds;
    int64_t tool_timeout_ms;
    double compaction_ratio; /* compact when history > ratio * budget */
    int64_t reserve_tokens;  /* reply budget floor */
    int compaction_keep;     /* newest messages kept verbatim */
    /* scheduling (sched.c) */
    struct ch_map lanes; /* session key -> struct lane (owned) */
    struct ch_map live;  /* run id -> struct ch_run (borrowed from lanes) */
    struct lane *ready_head, *ready_tail;
    size_t running, waiting, submitting;
    /* bus (bus.c) */
    struct ch_agent_sub *subs, *subs_tail; /* subscribers to every run */
    struct ch_map run_subs;                /* run id -> its subscribers' list */
    struct ch_agent_sub *dead_subs;        /* to unlink when delivery is over */
    int bus_depth;
    /* lifecycle */
    bool stopping;
    /* The resume job is out (ch_agent_resume to resume_done): runs the
     * last process left queued or running are not in their lanes yet, so
     * a run submitted now must not take the fast path (sched.c). */
    bool resuming;
    size_t jobs; /* store jobs in flight */
    void (*stop_cb)(void *data);
    void *stop_data;
    struct ch_agent_stats stats;
    /* transcript cache (transcript.c) and the tool list's size (run_llm.c) */
    struct ch_tcache tcache;
    json_t *tools_memo; /* ref: the definitions tools_memo_bytes was measured on */
    size_t tools_memo_bytes;
};

/* sched.c */
void ch_sched_enqueue(struct ch_agent *a, struct ch_run *r);
void ch_sched_pump(struct ch_agent *a);
void ch_sched_run_done(struct ch_agent *a, struct ch_run *r);
struct ch_run *ch_run_new_from_req(struct ch_agent *a, const struct ch_agent_run_req *req, struct ch_error *err);
void ch_run_free(struct ch_run *r);
void ch_agent_maybe_stopped(struct ch_agent *a);
/* Store the run's row, queued (or running since r->started_ms); writer
 * thread, reading only fields fixed before the job was queued. */
int ch_run_insert(struct ch_db *db, struct ch_run *r, char *request, bool running, char **existing,
                  struct ch_error *err);

/* run.c, run_llm.c, run_tools.c */
void ch_run_start(struct ch_run *r);
/*
 * Admission and start in one store job, for a run that already holds its
 * lane and a slot: insert (request stolen), mark running, ensure the
 * session, append the user message.  cb hears the outcome as from
 * ch_agent_submit.  CH_EBUSY (nothing queued, request freed) when the
 * store's queue is full.
 */
int ch_run_admit(struct ch_run *r, char *request, ch_agent_accepted_cb cb, void *data);
void ch_run_set_state(struct ch_run *r, enum run_state s);
void ch_run_call_llm(struct ch_run *r);
void ch_run_start_tools(struct ch_run *r);
void ch_run_finish(struct ch_run *r, const char *status, const char *error_class, const char *error);
/* finish.c: a finishing run waiting to retry its outcome's write tries now
 * (the gateway is stopping: that attempt is its last). */
void ch_run_finish_retry_now(struct ch_run *r);
/* run.c: the END and other events of a run; the run timer's close callback. */
void ch_run_emit(struct ch_run *r, struct ch_agent_event *ev);
void ch_run_timer_closed(uv_handle_t *h);
/* finish.c: the outcome's result JSON (ch_malloc'd; NULL on failure), and the
 * jansson rendering it matches byte for byte (for the differential test). */
char *ch_run_result_json(struct ch_run *r, int64_t duration_ms);
char *ch_run_result_json_jansson(struct ch_run *r, int64_t duration_ms);
void ch_run_ref(struct ch_run *r);
void ch_run_unref(struct ch_run *r);
void ch_run_abort_inflight(struct ch_run *r);
void ch_run_history_append(struct ch_run *r, json_t *msg /* stolen */, const char *role, size_t content_bytes);

/* persist.c: store jobs that keep a run durable */
/* Also adds the message to the run's cached transcript once it is stored.
 * *json_bytes (may be NULL) gets the compact size of content, 0 on failure. */
int ch_persist_append(struct ch_run *r, const char *role, json_t *content /* stolen */, const char *model,
                      const struct ch_llm_usage *u, int64_t latency_ms, size_t *json_bytes);
/* The same in steps: prepare the job (NULL on failure, content freed),
 * then queue it alone (ch_persist_queue; frees it when it cannot), or run
 * it inside another job (the finish job: ch_persist_run_in on the writer
 * thread, then ch_persist_done_in on the loop, which frees it). */
/* The compact JSON of content (json_dumps' bytes; ch_malloc'd). */
char *ch_persist_content_text(const json_t *content);
struct ch_store_job *ch_persist_prepare(struct ch_run *r, const char *role, json_t *content /* stolen */,
                                        const char *model, const struct ch_llm_usage *u, int64_t latency_ms,
                                        size_t *json_bytes);
int ch_persist_queue(struct ch_run *r, struct ch_store_job *job);
int ch_persist_run_in(struct ch_db *db, struct ch_store_job *job);
void ch_persist_discard(struct ch_run *r, struct ch_store_job *job);
void ch_persist_done_in(struct ch_run *r, struct ch_store_job *job, int rc);
/* Writer thread, the start job of an isolated run: when the session (s,
 * just ensured) already has a transcript that this run did not start,
 * give it a new session id (*s refreshed, *fresh set: no transcript). */
int ch_persist_session_start(struct ch_db *db, struct ch_run *r, struct ch_session_rec *s, bool *fresh);
/* The run's request as stored (JSON text, caller frees), or NULL with *rc
 * CH_E_TOO_LARGE (over CH_STORE_MAX_REQUEST_BYTES) or CH_ENOMEM.
 * meta_json and message_json: already encoded, used as they are. */
char *ch_run_request_json(const struct ch_run *r, const char *meta_json, const char *message_json, int *rc);
/* Replace the stored transcript below first_kept_seq by a summary entry. */
int ch_persist_compaction(struct ch_run *r, int64_t first_kept_seq, const char *summary, int64_t tokens_before,
                          const struct ch_llm_usage *u);

/* context.c */
/* The system prompt of one call: the configured (or the run's own) prompt
 * and the run's extra instructions, joined by a blank line, at most this
 * long (ch_run_new_from_req refuses a run past it). */
#define CH_AGENT_MAX_SYSTEM_BYTES (1u << 20)
char *ch_context_system_prompt(struct ch_agent *a, struct ch_run *r);
json_t *ch_context_from_transcript(const struct ch_message_list *l, int64_t **seqs, size_t *nseqs);
/* The same from cached rows; *json_bytes gets the compact JSON size of
 * the result without encoding it.  Shares the rows' msg objects (each
 * history element is either a row's msg or a message of its own, and
 * neither is mutated afterwards: appends go to the array). */
json_t *ch_context_from_rows(const struct ch_tc_row *rows, size_t n, int64_t **seqs, size_t *nseqs, size_t *json_bytes);
int64_t ch_context_estimate_tokens(const char *system, const json_t *messages, const json_t *tools);
/* The same estimate from sizes already known. */
int64_t ch_context_estimate_bytes(size_t system_bytes, size_t messages_bytes, size_t tools_bytes);
/* Image blocks in content (*count, added to) and their base64 bytes. */
size_t ch_context_image_bytes(const json_t *content, size_t *count);
/* Compact JSON size of one {"role":R,"content":C} message of content size C. */
size_t ch_context_message_bytes(const char *role, size_t content_bytes);
/* Compact JSON size of v (0 for NULL). */
/* The user message's stored content (ch_malloc'd text) and the same
 * content as a tree (a new reference; NULL when message is not UTF-8). */
char *ch_context_user_content(const char *message);
json_t *ch_context_user_content_json(const char *message);
size_t ch_context_json_size(const json_t *v);
/* Index of the first message to keep verbatim when compacting, or -1. */
ssize_t ch_context_compaction_split(struct ch_agent *a, const json_t *messages, int64_t budget);
char *ch_context_transcript_text(const json_t *messages, size_t upto, size_t max_bytes);

/* run_client.c: tools the caller runs itself (ch_agent_run_req.client_tools) */
/* Is name one of the run's client tools? */
bool ch_run_is_client_tool(const struct ch_run *r, const char *name);
/* What the model is offered: the agent's definitions (defs, may be NULL)
 * and the client's.  A new reference, or NULL for none. */
json_t *ch_run_offered_tools(struct ch_run *r, const json_t *defs);
/* The call is the client's: note it; returns the tool result telling the
 * model it is pending, in OpenClaw's words (ch_malloc'd JSON; NULL when out
 * of memory).  The run ends once the round's tools are done. */
char *ch_run_client_call(struct ch_run *r, const json_t *tool_use);
/* `,"clientToolCalls":[...]` for the stored result (nothing when none). */
int ch_run_put_client_calls(const struct ch_run *r, struct ch_buf *b);

/* bus.c */
void ch_bus_emit(struct ch_agent *a, struct ch_agent_event *ev);
void ch_bus_release(struct ch_agent *a);

#endif
