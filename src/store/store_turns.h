/*
 * store_turns.h: the part of the store's interface that keeps agent work
 * durable: sessions, transcripts, runs and usage.  It is included by
 * store.h (mid-file, after struct ch_db and the common types) and is not
 * included on its own: callers outside the layer include store/store.h.
 * Split out only to keep store.h readable (STYLE.md 8.7).
 */
#ifndef CH_STORE_TURNS_H
#define CH_STORE_TURNS_H

/* ------------------------------------------------------------------ */
/* Sessions, transcripts, runs and usage (store/sessions.c, messages.c, */
/* preview.c, runs.c, usage.c; schema version 2)                        */
/* ------------------------------------------------------------------ */

/*
 * Common rules for everything below.  These are synchronous functions: on
 * the gateway they run inside writer jobs (writes) or read jobs, never on
 * the loop thread.  Every multi-statement write is atomic (its own
 * transaction, or a savepoint inside a writer batch).  Text inputs are
 * bounded (the CH_STORE_MAX_* caps): too long gives CH_E_TOO_LARGE, empty
 * where required or containing control characters gives CH_EINVAL, and
 * JSON columns must hold valid JSON (CH_EINVAL otherwise).  A missing row
 * gives CH_ENOTFOUND.  Output records are zeroed on failure and released
 * with their _release function (NULL-safe, idempotent).  Times are ms
 * since the epoch; 0 means "not yet".
 */
#define CH_STORE_MAX_KEY_BYTES 512                   /* session keys */
#define CH_STORE_MAX_ID_BYTES 128                    /* run ids, agent ids, session ids */
#define CH_STORE_MAX_NAME_BYTES 256                  /* labels, models, idempotency keys */
#define CH_STORE_MAX_META_JSON_BYTES (64 * 1024)     /* origin, extra, delivery */
#define CH_STORE_MAX_CONTENT_BYTES (4 * 1024 * 1024) /* one message's content JSON */
#define CH_STORE_MAX_REQUEST_BYTES (8 * 1024 * 1024) /* a run's request JSON (images included) */
#define CH_STORE_MAX_RESULT_BYTES (4 * 1024 * 1024)  /* a run's result JSON */
#define CH_STORE_MAX_ERROR_BYTES (16 * 1024)         /* longer error text is cut, not refused */
#define CH_STORE_MAX_LIST 10000                      /* rows per list call */
#define CH_STORE_MAX_LOAD_BYTES (64 * 1024 * 1024)   /* content bytes per transcript load */

/*
 * Token usage of one call, run, session or day.  input_tokens excludes
 * cache reads and writes (providers normalise to that); total tokens are
 * the sum of the four.  Each count must be in [0, 2^40] and cost a finite
 * value >= 0, else CH_EINVAL.
 */
struct ch_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    double cost_usd;
};

/*
 * A place in a newest-first list (runs by created_ms, sessions by
 * updated_ms), for keyset paging: the lists order rows by (ms, rowid)
 * descending, rowid breaking ties in the order the rows were inserted, and
 * a query given a position returns only rows after it, so rows added or
 * moved to the front in between shift no later page (an offset would
 * repeat rows).  {0, 0}: from the newest row.
 */
struct ch_list_pos {
    int64_t ms, rowid;
};
/* The position as an opaque cursor (list_pos.c): CH_LIST_CURSOR_LEN
 * base64url characters and a NUL.  Short enough for clients that kept an
 * offset's room for a cursor (the CLI keeps 31 characters). */
#define CH_LIST_CURSOR_LEN 22
void ch_list_pos_encode(const struct ch_list_pos *p, char out[CH_LIST_CURSOR_LEN + 1]);
/* 0, or CH_EINVAL for text that is not such a cursor. */
int ch_list_pos_decode(const char *text, struct ch_list_pos *out);

/* ---- sessions (sessions.c) ---------------------------------------- */

/* One row of `sessions`: the OpenClaw SessionEntry for a session key. */
struct ch_session_rec {
    char *key;        /* owned: "agent:main:main", "hook:<uuid>", free-form */
    char *session_id; /* owned: uuid of the current transcript */
    char *agent_id;   /* owned: "main" by default */
    int64_t created_ms;
    int64_t updated_ms;
    char *label; /* owned or NULL (the same for every char * below) */
    char *display_name;
    char *channel;
    char *model_override; /* "provider/model" */
    char *thinking_level;
    struct ch_usage usage;  /* cumulative over the current session_id */
    int64_t total_tokens;   /* sum of the four usage counts */
    int64_t context_tokens; /* prompt size of the last turn */
    int64_t compaction_count;
    char *last_run_id;
    char *origin; /* JSON text */
    char *extra;  /* JSON text: other SessionEntry fields */
};
void ch_session_rec_release(struct ch_session_rec *s);

struct ch_session_list {
    struct ch_session_rec *items; /* owned */
    size_t count;
    int64_t total;           /* rows matching the filter, ignoring limit/offset */
    struct ch_list_pos next; /* the last row's: where the next page starts */
    bool more;               /* rows past the last one match too */
};
void ch_session_list_release(struct ch_session_list *l);

/* The session stored under key; CH_ENOTFOUND if none. */
int ch_sessions_get(struct ch_db *db, const char *key, struct ch_session_rec *out);
/*
 * Get or create on first use: a new row gets a fresh uuid session_id,
 * agent_id (NULL means "main") and created/updated = now_ms.  An existing
 * row is returned unchanged.  out and created may be NULL.
 */
int ch_sessions_ensure(struct ch_db *db, const char *key, const char *agent_id, int64_t now_ms,
                       struct ch_session_rec *out, bool *created);

struct ch_session_query {
    size_t limit;             /* 1..CH_STORE_MAX_LIST; 0 means 100 */
    size_t offset;            /* rows skipped (after `after`) */
    struct ch_list_pos after; /* a page's `next`: rows after it only */
    const char *agent_id;     /* NULL: any agent */
    int64_t updated_since_ms; /* 0: any; else rows with updated_ms >= this */
};
/* Sessions ordered by updated_ms descending (ties: the later-inserted row
 * first), as struct ch_list_pos says. */
int ch_sessions_list(struct ch_db *db, const struct ch_session_query *q, struct ch_session_list *out);

/*
 * Fields to change; each set_x flag selects x, and a NULL value clears
 * it.  model_override must look like "provider/model" (resolve aliases
 * before).  Bounds: label, display_name, model_override CH_STORE_MAX_NAME_BYTES,
 * channel and thinking_level CH_STORE_MAX_ID_BYTES, origin/extra
 * CH_STORE_MAX_META_JSON_BYTES of JSON.
 */
struct ch_session_patch {
    bool set_label, set_display_name, set_channel, set_model_override, set_thinking_level, set_origin, set_extra;
    const char *label, *display_name, *channel, *model_override, *thinking_level, *origin, *extra;
};
/* Apply a patch and bump updated_ms; out (may be NULL) gets the new row. */
int ch_sessions_patch(struct ch_db *db, const char *key, const struct ch_session_patch *p, int64_t now_ms,
                      struct ch_session_rec *out);
/*
 * Start a new transcript: a fresh session_id, usage, total, context and
 * compaction counters and last_run_id zeroed, updated_ms = now_ms; label,
 * model override and the other settings stay.  Messages of the old
 * session_id are kept (they still belong to it).  With expected_session_id
 * non-NULL and not the current id: CH_ESTATE (someone reset first).
 */
int ch_sessions_reset(struct ch_db *db, const char *key, const char *expected_session_id, int64_t now_ms,
                      struct ch_session_rec *out);
/* Delete the session and every message stored under its key (all of its
 * session ids).  *existed (may be NULL) says whether there was one; a
 * missing key is not an error.  Runs are history and stay. */
int ch_sessions_delete(struct ch_db *db, const char *key, bool *existed);
/*
 * Add one turn's usage in one statement: counters and cost grow by u,
 * context_tokens is set to context_tokens (negative: left alone),
 * last_run_id to run_id (NULL: left alone), updated_ms to now_ms.
 */
int ch_sessions_add_usage(struct ch_db *db, const char *key, const struct ch_usage *u, int64_t context_tokens,
                          const char *run_id, int64_t now_ms);

/* ---- messages (messages.c) ----------------------------------------- */

/* One transcript entry.  As input to append, id and seq are ignored. */
struct ch_message_rec {
    int64_t id;
    char *session_key; /* owned */
    char *session_id;  /* owned */
    int64_t seq;       /* 1, 2, ... per session_id; gaps only below a compaction */
    char role[16];     /* "user" "assistant" "tool" "system" "compaction" */
    char *content;     /* owned: provider-neutral JSON content blocks */
    char *model;       /* owned or NULL */
    int64_t input_tokens, output_tokens, cache_read_tokens, cache_write_tokens;
    int64_t latency_ms;
    int64_t created_ms;
    char *run_id; /* owned or NULL */
};
void ch_message_rec_release(struct ch_message_rec *m);

struct ch_message_list {
    struct ch_message_rec *items; /* owned, ascending seq */
    size_t count;
    bool truncated; /* more rows matched than were returned */
    char *text;     /* owned: all the items' strings, when loaded (see messages.c) */
};
void ch_message_list_release(struct ch_message_list *l);

/*
 * Append to session_id's transcript with the next seq (MAX + 1, assigned
 * by the INSERT itself, so appends in one writer batch never collide).
 * role is user|assistant|tool|system (compaction entries come only from
 * ch_messages_compact); content is JSON of at most
 * CH_STORE_MAX_CONTENT_BYTES.  The session key must exist (CH_ENOTFOUND).
 * *seq_out (may be NULL) gets the seq.  Borrowed input.
 */
int ch_messages_append(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out);
/* The same, also giving the new row's id (*id_out, may be NULL). */
int ch_messages_append_ids(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out, int64_t *id_out);
/* The same for the first entry of a transcript whose session id the caller
 * has just made (ch_sessions_ensure created the session): seq 1 without
 * reading MAX(seq); CH_EEXIST (nothing written) if the id had entries. */
int ch_messages_append_first(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out, int64_t *id_out);
/*
 * The two ends of session_id's transcript: the first and the last row's
 * seq and id, and the last row's role; all zero for an empty transcript.
 * Every change to a transcript (append, compaction, a session reset or
 * delete) moves one of them: seqs grow, compaction deletes a prefix and
 * inserts a row with a fresh id, a reset or delete changes the session
 * id.  The agent's transcript cache (agent/transcript.c) compares them,
 * two index probes, instead of reloading the transcript for every run.
 */
struct ch_message_bounds {
    int64_t first_seq, first_id;
    int64_t last_seq, last_id;
    char last_role[16];
};
int ch_messages_bounds(struct ch_db *db, const char *session_id, struct ch_message_bounds *out);
bool ch_message_bounds_equal(const struct ch_message_bounds *a, const struct ch_message_bounds *b);
/*
 * The newest messages of session_id, returned oldest first: at most
 * max_count (1..CH_STORE_MAX_LIST) whose content adds up to at most
 * max_bytes (<= CH_STORE_MAX_LOAD_BYTES).  The byte cap is strict: when
 * even the newest message does not fit the list is empty.  truncated says
 * older messages were left out.  An unknown session_id gives an empty list.
 */
int ch_messages_load_last(struct ch_db *db, const char *session_id, size_t max_count, size_t max_bytes,
                          struct ch_message_list *out);
/* Messages with seq >= from_seq, oldest first, stopping at max_count or
 * before the first that would pass max_bytes (truncated: newer ones left). */
int ch_messages_load_since(struct ch_db *db, const char *session_id, int64_t from_seq, size_t max_count,
                           size_t max_bytes, struct ch_message_list *out);
/*
 * A page back from the newest end (messages_page.c): the newest messages
 * with seq < before_seq, returned oldest first, at most max_count
 * (1..CH_STORE_MAX_LIST) whose content adds up to at most max_bytes
 * (<= CH_STORE_MAX_LOAD_BYTES); truncated says older ones are left.  A
 * message whose content alone is over max_one could be in no page: it
 * comes with content NULL (its other fields kept) and counts 0 bytes, so
 * paging goes on past it.  Pages from each returned oldest seq cover the
 * whole transcript.
 */
int ch_messages_load_before(struct ch_db *db, const char *session_id, int64_t before_seq, size_t max_count,
                            size_t max_bytes, size_t max_one, struct ch_message_list *out);
int ch_messages_count(struct ch_db *db, const char *session_id, int64_t *out);

/*
 * Replace the prefix seq < first_kept_seq of a transcript by one
 * `compaction` entry.  The replaced rows are deleted; the entry takes seq
 * first_kept_seq - 1 (so ordering by seq still reads summary, then kept
 * messages) and its content is
 *   [{"type":"compaction","summary":S,"first_kept_seq":K,"tokens_before":N}]
 * The session's compaction_count grows by one (if session_id is still its
 * current id).  Errors: CH_EINVAL for first_kept_seq < 2 or beyond the last
 * seq + 1, CH_ENOTFOUND for an empty transcript, CH_ESTATE when nothing
 * below first_kept_seq is left (already compacted past it).
 */
struct ch_compaction {
    const char *session_key;
    const char *session_id;
    int64_t first_kept_seq;
    const char *summary;                 /* UTF-8 text, 1 byte..512 KiB */
    int64_t tokens_before;               /* context size before compaction */
    const char *model;                   /* NULL or the summarising model */
    int64_t input_tokens, output_tokens; /* the summarising call's usage */
    int64_t created_ms;
    const char *run_id; /* NULL or the run that compacted */
};
int ch_messages_compact(struct ch_db *db, const struct ch_compaction *c, int64_t *seq_out, int64_t *replaced_out);

/* sessions.preview (store/preview.c): text of the last messages of a key. */
struct ch_preview_item {
    char role[16];
    char *text; /* owned: text blocks joined by "\n", tool calls as
                 * "[tool: name]", at most max_chars code points */
};
struct ch_preview_list {
    struct ch_preview_item *items; /* owned, oldest first */
    size_t count;
};
void ch_preview_list_release(struct ch_preview_list *l);
/* The last `limit` (1..1000) messages of key's current session_id, each cut
 * to max_chars (1..1 MiB) characters.  CH_ENOTFOUND for an unknown key;
 * an empty transcript gives count 0. */
int ch_messages_preview(struct ch_db *db, const char *key, size_t limit, size_t max_chars, struct ch_preview_list *out);

/* ---- runs (runs.c) -------------------------------------------------- */

enum ch_run_status {
    CH_RUN_QUEUED,
    CH_RUN_RUNNING,
    CH_RUN_OK,
    CH_RUN_ERROR,
    CH_RUN_ABORTED,
    CH_RUN_TIMEOUT,
};
const char *ch_run_status_name(enum ch_run_status s); /* "queued", ... */
/* Name -> status; CH_EINVAL for anything else. */
int ch_run_status_parse(const char *name, enum ch_run_status *out);

struct ch_run_rec {
    char *run_id;      /* owned, 1..CH_STORE_MAX_ID_BYTES */
    char *session_key; /* owned */
    char *source;      /* owned: "hook" "api" "ws" "cli" "openai" ... */
    enum ch_run_status status;
    char *request;     /* owned JSON: everything needed to replay the run */
    char *result;      /* owned JSON or NULL */
    char *error;       /* owned or NULL */
    char *error_class; /* owned or NULL: rate_limit, timeout, context_length, ... */
    int64_t created_ms, started_ms, finished_ms;
    int64_t attempts;      /* times the run was started */
    char *idempotency_key; /* owned or NULL */
    char *model;           /* owned or NULL: requested, then the one that answered */
    struct ch_usage usage; /* tokens and cost_usd */
    char *delivery;        /* owned JSON or NULL */
};
void ch_run_rec_release(struct ch_run_rec *r);

struct ch_run_list {
    struct ch_run_rec *items; /* owned */
    size_t count;
    int64_t total;           /* rows matching the filter (list_recent only) */
    bool truncated;          /* stopped at CH_STORE_MAX_LOAD_BYTES of payloads */
    struct ch_list_pos next; /* list_recent: the last row's position */
    bool more;               /* list_recent: rows past the last one match too */
};
void ch_run_list_release(struct ch_run_list *l);

/*
 * Insert a run as queued, attempts 0; or, with r->status CH_RUN_RUNNING,
 * as running since r->started_ms, attempts 1 (what ch_runs_start would
 * make of it, in one statement: the agent admits and starts a run in one
 * job).  Any other status is ignored (queued), as are attempts and
 * finished; run_id, session_key, source and request are required.  When r->idempotency_key (or r->run_id) is already
 * taken: CH_EEXIST and *existing_run_id (may be NULL) gets an owned copy of the run id that holds it, so the caller can
 * answer with that run instead.
 */
int ch_runs_insert(struct ch_db *db, const struct ch_run_rec *r, char **existing_run_id, struct ch_error *err);
int ch_runs_get(struct ch_db *db, const char *run_id, struct ch_run_rec *out);
int ch_runs_get_by_idempotency(struct ch_db *db, const char *idempotency_key, struct ch_run_rec *out);
/* queued -> running: started_ms = now_ms and attempts + 1.  CH_ESTATE
 * from any other status, CH_ENOTFOUND for an unknown id. */
int ch_runs_start(struct ch_db *db, const char *run_id, int64_t now_ms);

/* The end of a run.  Allowed: running -> ok|error|aborted|timeout and
 * queued -> error|aborted|timeout (it never started); else CH_ESTATE. */
struct ch_run_outcome {
    enum ch_run_status status;
    const char *result;      /* JSON or NULL */
    const char *error;       /* NULL, or text cut to CH_STORE_MAX_ERROR_BYTES */
    const char *error_class; /* NULL or a short word */
    const char *model;       /* NULL keeps the stored model */
    struct ch_usage usage;   /* replaces the run's usage */
    int64_t finished_ms;
};
int ch_runs_finish(struct ch_db *db, const char *run_id, const struct ch_run_outcome *o);
/* attempts + 1 without a status change; *attempts (may be NULL) gets the
 * new count. */
int ch_runs_bump_attempts(struct ch_db *db, const char *run_id, int64_t *attempts);

struct ch_run_query {
    size_t limit;             /* 1..CH_STORE_MAX_LIST; 0 means 50 */
    size_t offset;            /* rows skipped (after `after`) */
    struct ch_list_pos after; /* a page's `next`: rows after it only */
    int status;               /* an enum ch_run_status, or -1 for any */
    const char *session_key;  /* NULL: any */
    bool with_payloads;       /* else request, result and delivery stay NULL */
};
/* Newest first (created_ms descending, ties: the later-inserted run
 * first), as struct ch_list_pos says. */
int ch_runs_list_recent(struct ch_db *db, const struct ch_run_query *q, struct ch_run_list *out);
/* queued and running runs, oldest first, with payloads: what to resume at
 * start.  limit 1..CH_STORE_MAX_LIST. */
int ch_runs_list_unfinished(struct ch_db *db, size_t limit, struct ch_run_list *out);
/* At start, after a crash: every `running` run back to `queued` (to be
 * replayed; started_ms kept, attempts counts the earlier start), or to
 * `error` with reason and error_class (e.g. "interrupted").  *count (may be
 * NULL) gets the number of runs changed. */
int ch_runs_requeue_running(struct ch_db *db, int64_t *count);
int ch_runs_fail_running(struct ch_db *db, const char *reason, const char *error_class, int64_t now_ms, int64_t *count);

/* ---- delivery state of a run (run_delivery.c) ------------------------ */

/* Replace runs.delivery with delivery_json (JSON text of at most
 * CH_STORE_MAX_META_JSON_BYTES, or NULL to clear).  CH_EINVAL for invalid
 * JSON, CH_ENOTFOUND for an unknown run. */
int ch_runs_set_delivery(struct ch_db *db, const char *run_id, const char *delivery_json);
/*
 * Finished runs (any end status) with finished_ms in [since_ms, before_ms),
 * no delivery state, and a request whose meta.hook.callback is an object:
 * hook results whose callback was never queued (the gateway stopped in
 * between).  Oldest first, with payloads, at most limit (1..CH_STORE_MAX_LIST).
 */
int ch_runs_list_undelivered(struct ch_db *db, int64_t since_ms, int64_t before_ms, size_t limit,
                             struct ch_run_list *out);

/* ---- usage per day, provider and model (usage.c) ---------------------- */

/* "YYYY-MM-DD" (UTC) of ms; out holds 11 bytes.  CH_EINVAL for ms < 0. */
int ch_usage_day(int64_t ms, char out[11]);

struct ch_usage_row {
    char day[11];   /* "" when not grouped by day */
    char *provider; /* owned; NULL when not grouped by model */
    char *model;    /* owned; NULL when not grouped by model */
    int64_t requests;
    struct ch_usage usage;
};
void ch_usage_row_release(struct ch_usage_row *r);
struct ch_usage_list {
    struct ch_usage_row *items; /* owned */
    size_t count;
};
void ch_usage_list_release(struct ch_usage_list *l);

/* Add `requests` calls and their usage to the (day of at_ms, provider,
 * model) row, creating it.  provider 1..64 bytes, model 1..256. */
int ch_usage_add(struct ch_db *db, int64_t at_ms, const char *provider, const char *model, int64_t requests,
                 const struct ch_usage *u);

enum ch_usage_group { CH_USAGE_BY_DAY, CH_USAGE_BY_MODEL, CH_USAGE_BY_DAY_MODEL };
/*
 * Sums over from_day..to_day inclusive ("YYYY-MM-DD"; NULL means open) in
 * out (provider/model NULL, day "").  The status endpoint uses it with
 * NULL, NULL.  CH_EINVAL for a malformed day.
 */
int ch_usage_totals(struct ch_db *db, const char *from_day, const char *to_day, struct ch_usage_row *out);
/* Grouped sums, ordered by day then provider and model.  More than
 * CH_STORE_MAX_LIST groups: CH_E_TOO_LARGE (narrow the range). */
int ch_usage_query(struct ch_db *db, const char *from_day, const char *to_day, enum ch_usage_group group,
                   struct ch_usage_list *out);

#endif
