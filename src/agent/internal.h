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

struct ch_run {
    /* request (owned copies) */
    char *run_id, *session_key, *source, *message, *model_ref, *system_prompt, *extra_system, *idem;
    json_t *meta; /* owned ref or NULL */
    int64_t max_tokens, timeout_s;
    double temperature;
    bool has_temperature, no_tools;
    bool resumed; /* replayed after a restart */
    /* scheduling */
    enum run_state state;
    struct lane *lane;      /* borrowed */
    struct ch_run *next;    /* in the lane's wait list */
    struct ch_agent *agent; /* borrowed */
    int refs;               /* jobs and timers holding the run */
    /* execution */
    char *session_id;      /* owned, from the store */
    char *model_override;  /* owned: the session's override, if any */
    json_t *history;       /* owned: neutral messages sent to the model */
    int64_t *hist_seqs;    /* owned: seq of the first stored row behind history[i] */
    size_t hist_seq_count; /* entries loaded from the store (later ones are new) */
    json_t *pending_tools; /* owned: tool_use blocks of the last reply */
    json_t *tool_results;  /* owned: tool_result blocks collected */
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
    const char *status;        /* static "ok" "error" "aborted" "timeout" */
    char *error, *error_class; /* owned */
};

struct lane {
    char *key;                  /* owned */
    struct ch_run *head, *tail; /* waiting runs, FIFO */
    struct ch_run *active;      /* running, or NULL */
    struct lane *ready_next;    /* in the agent's ready list */
    bool in_ready;
};

struct ch_agent_sub {
    struct ch_agent *agent;
    char *run_id; /* owned, NULL = all runs */
    ch_agent_event_cb cb;
    void *data;
    struct ch_agent_sub *next;
    bool dead; /* unsubscribed while the bus was iterating */
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
    char *system_prompt; /* owned: configured prompt + AGENTS.md */
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
    struct ch_agent_sub *subs;
    int bus_depth;
    bool bus_dirty;
    /* lifecycle */
    bool stopping;
    size_t jobs; /* store jobs in flight */
    void (*stop_cb)(void *data);
    void *stop_data;
    struct ch_agent_stats stats;
};

/* sched.c */
void ch_sched_enqueue(struct ch_agent *a, struct ch_run *r);
void ch_sched_pump(struct ch_agent *a);
void ch_sched_run_done(struct ch_agent *a, struct ch_run *r);
struct ch_run *ch_run_new_from_req(struct ch_agent *a, const struct ch_agent_run_req *req, struct ch_error *err);
void ch_run_free(struct ch_run *r);
void ch_agent_maybe_stopped(struct ch_agent *a);

/* run.c, run_llm.c, run_tools.c */
void ch_run_start(struct ch_run *r);
void ch_run_set_state(struct ch_run *r, enum run_state s);
void ch_run_call_llm(struct ch_run *r);
void ch_run_start_tools(struct ch_run *r);
void ch_run_finish(struct ch_run *r, const char *status, const char *error_class, const char *error);
void ch_run_ref(struct ch_run *r);
void ch_run_unref(struct ch_run *r);
void ch_run_abort_inflight(struct ch_run *r);

/* persist.c: store jobs that keep a run durable */
int ch_persist_append(struct ch_run *r, const char *role, json_t *content /* stolen */, const char *model,
                      const struct ch_llm_usage *u, int64_t latency_ms);
/* Replace the stored transcript below first_kept_seq by a summary entry. */
int ch_persist_compaction(struct ch_run *r, int64_t first_kept_seq, const char *summary, int64_t tokens_before,
                          const struct ch_llm_usage *u);

/* context.c */
char *ch_context_system_prompt(struct ch_agent *a, struct ch_run *r);
json_t *ch_context_from_transcript(const struct ch_message_list *l, int64_t **seqs, size_t *nseqs);
int64_t ch_context_estimate_tokens(const char *system, const json_t *messages, const json_t *tools);
/* Index of the first message to keep verbatim when compacting, or -1. */
ssize_t ch_context_compaction_split(struct ch_agent *a, const json_t *messages, int64_t budget);
char *ch_context_transcript_text(const json_t *messages, size_t upto, size_t max_bytes);

/* bus.c */
void ch_bus_emit(struct ch_agent *a, struct ch_agent_event *ev);
void ch_bus_release(struct ch_agent *a);

#endif
