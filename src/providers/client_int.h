/*
 * providers/client_int.h: private declarations of the provider runtime
 * (catalog*.c, keys.c, breaker.c, client.c, call*.c).  Nothing outside
 * src/providers/ includes this.
 *
 * A client holds one "generation" (the catalog plus a key ring per
 * provider) by reference; a reload makes a new generation and each call
 * keeps the one it started with until it is freed.  Breakers belong to the
 * client itself, keyed by endpoint, so they survive reloads.
 */
#ifndef CH_PROVIDERS_CLIENT_INT_H
#define CH_PROVIDERS_CLIENT_INT_H

#include "providers/client.h"
#include "providers/internal.h"

/* ------------------------------------------------------------------ */
/* Catalog helpers (catalog.c)                                          */
/* ------------------------------------------------------------------ */

/* Built-in knowledge of a model family (longest prefix of the id, also
 * after a "vendor/" prefix).  false when nothing is known. */
bool llm_known_model(const char *id, int64_t *context_window, int64_t *max_tokens);
/* The well-known model of an API kind when a provider lists none. */
const char *llm_default_model(enum ch_llm_api api);
/* Release the contents of a provider / alias (catalog_load.c builds them). */
void llm_provider_release(struct ch_llm_provider *p);
void llm_alias_release(struct ch_llm_alias *a);
/* The value of NAME in env (NULL: the process environment); NULL when
 * unset or empty. */
const char *llm_env_get(const char *const *env, const char *name);

/* catalog_load.c: validators shared with catalog_chain.c. */
/* 1..max printable bytes without spaces (nor '/' unless allow_slash). */
bool llm_is_id_text(const char *s, size_t max, bool allow_slash);
/* An optional integer at `path` within [min, max]; *out = def if absent.
 * CH_EINVAL naming path otherwise. */
int llm_opt_int(const json_t *v, const char *path, int64_t min, int64_t max, int64_t def, int64_t *out,
                struct ch_error *err);
/* Environment variable `name` as an integer within [min, max]; *present
 * says whether it was set.  CH_EINVAL naming the variable. */
int llm_env_int(const char *const *env, const char *name, int64_t min, int64_t max, int64_t *out, bool *present,
                struct ch_error *err);
/* Fill p from models.providers.<id> (p->id is set first, so a failure
 * can release what was built).  CH_EINVAL naming the key, CH_ENOMEM. */
int llm_load_provider(struct ch_llm_provider *p, const char *id, const json_t *j, struct ch_error *err);
/* Add the environment shortcut provider number `which` (0..2: anthropic,
 * openai, google) unless its variable is unset or cat has that id. */
#define LLM_ENV_PROVIDERS 3
int llm_load_env_provider(struct ch_llm_catalog *cat, size_t which, const char *const *env, struct ch_error *err);

/* ------------------------------------------------------------------ */
/* Generations and the client (client.c)                                */
/* ------------------------------------------------------------------ */

struct llm_gen {
    int refs;
    struct ch_llm_catalog *cat;    /* ref */
    struct ch_llm_keyring **rings; /* owned, one per catalog provider (same index) */
};

void llm_gen_unref(struct llm_gen *g);
struct llm_gen *llm_gen_ref(struct llm_gen *g);
/* The ring of provider p of g's catalog (p must belong to it). */
struct ch_llm_keyring *llm_gen_ring(struct llm_gen *g, const struct ch_llm_provider *p);

struct ch_llm_call;

struct ch_llm_client {
    uv_loop_t *loop;           /* borrowed */
    struct ch_curlm *curlm;    /* borrowed: outlives the client */
    struct llm_gen *gen;       /* ref: the current generation */
    struct ch_map breakers;    /* endpoint -> owned struct ch_llm_breaker */
    struct ch_llm_call *calls; /* live (not yet freed) calls, linked by next */
    size_t live_calls;
    int64_t (*now_fn)(void *data);
    void *clock_data;
    uint64_t (*rand_fn)(void *data);
    void *rand_data;
    uint64_t rng;           /* xorshift64* state when rand_fn is NULL */
    const char *const *env; /* borrowed: opts.env, for reloads */
    struct ch_llm_stats stats;
    struct llm_tools_memo tools_memo; /* rendered tool lists (req_body.c) */
};

int64_t llm_client_now(const struct ch_llm_client *c);
uint64_t llm_client_rand(struct ch_llm_client *c);
/* The breaker of an endpoint, created on first use with the current
 * settings.  NULL when out of memory (the call then goes unguarded). */
struct ch_llm_breaker *llm_client_breaker(struct ch_llm_client *c, const char *endpoint);

/* ------------------------------------------------------------------ */
/* Calls (call.c, call_xfer.c)                                          */
/* ------------------------------------------------------------------ */

enum llm_call_state {
    LLM_CALL_WAITING, /* a backoff timer runs before the next attempt */
    LLM_CALL_SENDING, /* a transfer is in flight */
    LLM_CALL_DONE,    /* the result is set; on_done fired or is queued */
};

/* What went wrong with one attempt, and what to do about it. */
struct llm_failure {
    int rc; /* CH_E* reported if this ends the call */
    enum ch_llm_err err;
    bool retryable;
    bool endpoint_fault;    /* counts against the breaker */
    int64_t retry_after_ms; /* -1: none */
    char message[256];
};

struct ch_llm_call {
    struct ch_llm_client *client; /* borrowed; NULL once freed */
    struct ch_llm_call *next;     /* in client->calls */
    struct llm_gen *gen;          /* ref: the catalog this call resolves in */
    enum llm_call_state state;
    int refs; /* owner + transfer + open handles */
    bool freed, aborted, timed_out, in_start;

    /* The request, from the options. */
    char *system;             /* owned */
    json_t *messages, *tools; /* refs */
    json_t *sampling;         /* ref, or NULL */
    int64_t max_tokens;
    double temperature;
    bool has_temperature, prompt_cache, whole_body;
    bool whole_body_asked; /* this attempt asked for stream false */
    ch_llm_event_cb on_event;
    ch_llm_done_cb on_done;
    void *data;

    /* The chain and where we are in it. */
    struct ch_llm_target targets[CH_LLM_MAX_CHAIN];
    size_t ntargets, pos;
    uint32_t retries;   /* backoff retries used on targets[pos] */
    uint32_t rotations; /* immediate key switches on targets[pos] */
    uint32_t fallbacks; /* models given up on */

    /* The attempt in flight. */
    struct ch_curlm_req *req;       /* borrowed: valid until its on_done */
    struct ch_llm_http http;        /* owned: the body is borrowed by curl */
    struct ch_llm_decoder *dec;     /* owned: also the final result's */
    struct ch_llm_keyring *ring;    /* borrowed from gen, or NULL (no keys) */
    struct ch_llm_breaker *breaker; /* borrowed from the client, or NULL */
    bool is_probe;
    long status;
    struct ch_buf errbody; /* a non-2xx body, capped */
    char retry_after[64], retry_after_ms[32];
    bool ev_error; /* the decoder emitted ERROR */
    enum ch_llm_err ev_err;
    bool ev_retryable;
    char ev_message[256];
    bool delivered; /* an event reached on_event */
    bool usage_held;
    struct ch_llm_usage held_usage;
    uint64_t attempt_start_ms;

    /* Timing and result. */
    uv_timer_t wait_timer;          /* backoff, and deferring on_done out of start */
    uv_timer_t deadline_timer;      /* the call's total timeout */
    uint64_t start_ms, deadline_ms; /* uv_now based */
    uint64_t first_token_ms;
    struct ch_llm_attempt attempts[CH_LLM_MAX_ATTEMPTS];
    size_t nattempts;
    struct ch_llm_result result;
    struct llm_failure last; /* the most recent failure */
};

/* call_xfer.c */
int llm_call_send(struct ch_llm_call *call, const struct ch_llm_target *t, int key_index, struct llm_failure *f);
void llm_call_release_attempt(struct ch_llm_call *call, bool keep_decoder);
/* call.c, called by call_xfer.c when a transfer ends. */
void llm_call_after_attempt(struct ch_llm_call *call, bool ok, struct llm_failure *f);
void llm_call_unref(struct ch_llm_call *call);
void llm_failure_set(struct llm_failure *f, int rc, enum ch_llm_err err, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
