/*
 * client.h: the LLM provider runtime on top of the I/O-free wire layer
 * (providers.h): the model catalog, API-key rotation with cooldowns, a
 * circuit breaker per endpoint, and the streamed call with retries,
 * backoff and fallback along a model chain.  docs/internals/llm-client.md
 * describes the mechanism and every configuration key it reads.
 *
 * Threading: everything here runs on the loop thread of the client, and
 * every callback fires there.  The catalog, key-ring and breaker functions
 * are pure state machines (the caller passes the clock), so tests drive
 * them with a fake clock.
 *
 * A temporary second header of the providers layer; the lead merges it
 * into providers.h.  Layer: core <- net <- providers (reads config).
 */
#ifndef CH_PROVIDERS_CLIENT_H
#define CH_PROVIDERS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "core/core.h"
#include "net/curlm.h"
#include "providers/providers.h"

/* Caps (STYLE.md 8.6); going past one is a clean CH_EINVAL naming the key. */
#define CH_LLM_MAX_PROVIDERS 32           /* providers in one catalog */
#define CH_LLM_MAX_MODELS 256             /* models[] of one provider */
#define CH_LLM_MAX_KEYS 64                /* keys of one provider */
#define CH_LLM_MAX_ALIASES 256            /* agents.defaults.models entries */
#define CH_LLM_MAX_CHAIN 8                /* primary + fallbacks of one call */
#define CH_LLM_MAX_REF_BYTES 256          /* "provider/model", NUL included */
#define CH_LLM_MAX_ATTEMPTS 32            /* attempts of one call, all models */
#define CH_LLM_MAX_RETRY_COUNT 10         /* models.retry.count / LLM_RETRY_COUNT */
#define CH_LLM_MAX_ERROR_BODY (64 * 1024) /* non-2xx body kept for classification */

/* Defaults.  Every one has a config key (docs/internals/llm-client.md). */
#define CH_LLM_DEF_RETRY_COUNT 3
#define CH_LLM_DEF_BACKOFF_BASE_MS 500
#define CH_LLM_DEF_BACKOFF_MAX_MS 30000
#define CH_LLM_DEF_KEY_COOLDOWN_MS 30000  /* a 429 without Retry-After */
#define CH_LLM_MAX_KEY_COOLDOWN_MS 300000 /* repeated 429s double up to this */
#define CH_LLM_MAX_RETRY_AFTER_MS 3600000 /* a server's own Retry-After, capped */
#define CH_LLM_KEY_AUTH_DISABLE_MS 600000 /* a key answered 401/403 */
#define CH_LLM_DEF_BREAKER_THRESHOLD 5
#define CH_LLM_DEF_BREAKER_COOLDOWN_MS 30000
#define CH_LLM_DEF_CONTEXT_WINDOW 128000  /* a model nobody described */
#define CH_LLM_DEF_MAX_TOKENS 4096        /* reply budget when nothing says */
#define CH_LLM_DEF_CALL_TIMEOUT_MS 600000 /* the run timeout's default */

/* ------------------------------------------------------------------ */
/* Catalog (catalog.c, catalog_load.c)                                  */
/* ------------------------------------------------------------------ */

struct ch_llm_model {
    char *id;                      /* owned: the id sent to the provider */
    char *name;                    /* owned: display name; NULL means id */
    int64_t context_window;        /* tokens, > 0 */
    int64_t max_tokens;            /* most tokens it may generate; 0 unknown */
    struct ch_llm_pricing pricing; /* USD per million tokens */
    bool has_pricing;              /* configured or built in (else all zero) */
};

struct ch_llm_provider {
    char *id; /* owned: "anthropic", the models.providers key */
    enum ch_llm_api api;
    char *base_url;              /* owned: never NULL (the API default if unset) */
    char **keys;                 /* owned, wiped when freed; never logged */
    size_t key_count;            /* 0: no key is sent (local servers) */
    json_t *headers;             /* owned object of strings, or NULL */
    struct ch_llm_model *models; /* owned: configured, else the well-known one */
    size_t model_count;          /* >= 1 */
    bool from_env;               /* made by an environment shortcut */
};

struct ch_llm_alias {
    char *alias;    /* owned: "gpt"; may be NULL (params only) */
    char *ref;      /* owned: "openai/gpt-4o" */
    json_t *params; /* owned object, or NULL */
};

/* Runtime settings, read with the catalog so a reload swaps them at once. */
struct ch_llm_settings {
    uint32_t retry_count;     /* retries per model, 0..10 */
    uint32_t backoff_base_ms; /* full jitter: rand(0, min(max, base*2^n)) */
    uint32_t backoff_max_ms;
    uint32_t breaker_threshold;   /* consecutive endpoint failures to open */
    uint32_t breaker_cooldown_ms; /* open for this long, then one probe */
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t call_timeout_ms;   /* a call's total when opts give none */
    int64_t default_max_tokens; /* MAX_TOKENS; 0 when unset */
};

/*
 * The model catalog: immutable once built, reference counted so calls in
 * flight keep the one they started with across a reload.  Fields are
 * read-only for callers.
 */
struct ch_llm_catalog {
    int refs;
    struct ch_llm_provider *providers; /* owned array, config order, then env ones */
    size_t provider_count;
    struct ch_llm_alias *aliases; /* owned array */
    size_t alias_count;
    char **chain;       /* owned "provider/model" refs: primary, fallbacks */
    size_t chain_count; /* 0 when no provider exists at all */
    struct ch_llm_settings settings;
};

/*
 * Build a catalog from cfg (NULL: no config file) and the environment env,
 * a NULL-terminated "NAME=value" array (NULL: the process environment).
 * Reads models.providers, models.retry, models.timeouts,
 * models.circuitBreaker, agents.defaults.model, agents.defaults.models and
 * ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OPENAI_API_KEY, OPENAI_BASE_URL,
 * GEMINI_API_KEY (else GOOGLE_API_KEY), GEMINI_BASE_URL, LLM_PROVIDER,
 * LLM_MODEL, MAX_TOKENS, LLM_RETRY_COUNT; the key variables may hold a
 * comma-separated list (a rotation ring).
 * A config provider wins over the env shortcut with the same id, and
 * config settings win over env ones.  No provider at all is not an error
 * (calls then fail CH_ENOTFOUND).  *out (refs 1) is set only on success.
 * CH_EINVAL with err naming the key path or variable ("models.providers.
 * openai.models.2.contextWindow: expected an integer from 1 to 100000000"),
 * CH_ENOMEM.
 */
int ch_llm_catalog_new(const struct ch_config *cfg, const char *const *env, struct ch_llm_catalog **out,
                       struct ch_error *err);
struct ch_llm_catalog *ch_llm_catalog_ref(struct ch_llm_catalog *cat);
void ch_llm_catalog_unref(struct ch_llm_catalog *cat); /* NULL-safe */

const struct ch_llm_provider *ch_llm_catalog_provider(const struct ch_llm_catalog *cat, const char *id);

/* A resolved reference.  Pointers are borrowed from the catalog. */
struct ch_llm_target {
    const struct ch_llm_provider *provider;
    char ref[CH_LLM_MAX_REF_BYTES];      /* "provider/model" */
    char model_id[CH_LLM_MAX_REF_BYTES]; /* the model part (a copy: targets are copied) */
    const char *name;                    /* display name; NULL: none, show model_id */
    int64_t context_window;
    int64_t max_tokens; /* 0: unknown */
    struct ch_llm_pricing pricing;
    bool is_listed;       /* in models[] or the well-known default */
    const json_t *params; /* agents.defaults.models[ref].params, or NULL */
};

/*
 * Resolve a model reference: NULL or "" (the default primary), an alias
 * (case-insensitive), a provider id alone (its first model),
 * "provider/model" (the model need not be listed: unlisted ids get the
 * built-in context window and pricing if known, else 128000 and zero), or
 * a bare model id listed by exactly one provider.  CH_ENOTFOUND with err
 * listing what is configured; CH_EINVAL for a reference over the cap.
 */
int ch_llm_catalog_resolve(const struct ch_llm_catalog *cat, const char *ref, struct ch_llm_target *out,
                           struct ch_error *err);

/*
 * The chain of a call: ref (NULL: the catalog's primary) followed by
 * fallbacks (NULL: the catalog's fallbacks; an empty list: none),
 * duplicates dropped, at most CH_LLM_MAX_CHAIN.  The first entry must
 * resolve (else its error); a fallback that does not is skipped with a
 * warning.  Returns the count in *n.
 */
int ch_llm_catalog_chain(const struct ch_llm_catalog *cat, const char *ref, const char *const *fallbacks,
                         size_t fallback_count, struct ch_llm_target out[CH_LLM_MAX_CHAIN], size_t *n,
                         struct ch_error *err);

/*
 * The reply budget (max_tokens) for target t: requested if > 0, else
 * params.maxTokens of its agents.defaults.models entry, else MAX_TOKENS,
 * else 4096; never above the model's maxTokens when that is known.  The
 * agent fits history into context_window minus this.
 */
int64_t ch_llm_target_reply_budget(const struct ch_llm_catalog *cat, const struct ch_llm_target *t, int64_t requested);

/*
 * For `models list` and GET /api/v1/models: a new array of
 * {id:"provider/model", provider, api, name, contextWindow, maxTokens,
 *  pricing:{input,output,cacheRead,cacheWrite}, aliases:[...], isDefault,
 *  isFallback}, listed models plus chain entries nobody listed.  NULL on
 * allocation failure.
 */
json_t *ch_llm_catalog_models_json(const struct ch_llm_catalog *cat);

/* ------------------------------------------------------------------ */
/* Key rings (keys.c)                                                   */
/* ------------------------------------------------------------------ */

/* State of one key.  Times are monotonic milliseconds (the caller's clock). */
struct ch_llm_key_state {
    uint64_t fingerprint;      /* hash of the key: carries state over a reload */
    int64_t cool_until_ms;     /* rate-limited until; 0 none */
    int64_t disabled_until_ms; /* rejected (401/403) until; 0 none */
    uint32_t strikes;          /* 429s in a row: the default cooldown doubles */
    uint64_t uses, rate_limits, auth_failures;
};

/* The keys of one provider, round robin.  Holds no key text. */
struct ch_llm_keyring {
    char *provider;                /* owned: provider id, for logs */
    struct ch_llm_key_state *keys; /* owned array */
    size_t count;
    size_t next; /* round-robin cursor */
};

/*
 * A ring for keys[0..n) of provider.  prev (optional, borrowed) is the
 * ring of the catalog being replaced: keys found in it by fingerprint keep
 * their cooldowns.  CH_ENOMEM.
 */
int ch_llm_keyring_new(const char *provider, const char *const *keys, size_t n, const struct ch_llm_keyring *prev,
                       struct ch_llm_keyring **out);
void ch_llm_keyring_free(struct ch_llm_keyring *r); /* NULL-safe */
/*
 * The next usable key in round-robin order.  0 with *index; CH_AGAIN when
 * every key cools down or is disabled, *wait_ms = until the soonest one is
 * usable again; CH_EPERM likewise when every key is disabled for auth;
 * CH_ENOTFOUND when the ring is empty.  Counts a use on success.
 */
int ch_llm_keyring_pick(struct ch_llm_keyring *r, int64_t now_ms, size_t *index, int64_t *wait_ms);
/* How long until some key is usable: 0 now, -1 for an empty ring. */
int64_t ch_llm_keyring_wait_ms(const struct ch_llm_keyring *r, int64_t now_ms);
/* True when a key other than `except` (SIZE_MAX: any) is usable now. */
bool ch_llm_keyring_has_free(const struct ch_llm_keyring *r, int64_t now_ms, size_t except);
/*
 * Key index got a 429: cool it down for retry_after_ms (>= 0, capped at an
 * hour) or, when -1, for 30 s doubling per 429 in a row up to 5 min.
 * Returns the cooldown applied.
 */
int64_t ch_llm_keyring_rate_limited(struct ch_llm_keyring *r, size_t index, int64_t retry_after_ms, int64_t now_ms);
/* Key index got 401/403: disabled for 10 minutes, logged by index. */
void ch_llm_keyring_auth_failed(struct ch_llm_keyring *r, size_t index, int64_t now_ms);
/* A response came back without a key problem: the 429 streak ends. */
void ch_llm_keyring_succeeded(struct ch_llm_keyring *r, size_t index);
/* [{index, state:"ok"|"cooling"|"disabled", retryInMs, uses, rateLimits,
 *   authFailures}]; never the key. */
json_t *ch_llm_keyring_json(const struct ch_llm_keyring *r, int64_t now_ms);

/* ------------------------------------------------------------------ */
/* Circuit breaker (breaker.c)                                          */
/* ------------------------------------------------------------------ */

enum ch_llm_breaker_state { CH_LLM_BREAKER_CLOSED, CH_LLM_BREAKER_OPEN, CH_LLM_BREAKER_HALF_OPEN };
const char *ch_llm_breaker_state_name(enum ch_llm_breaker_state s); /* "closed", ... */

/*
 * One endpoint (base URL).  closed --threshold consecutive failures--> open
 * --cooldown--> half-open: one probe; its success closes, its failure
 * re-opens.  Rate limits and auth errors are key-level and never count.
 */
struct ch_llm_breaker {
    char *endpoint; /* owned: base URL */
    enum ch_llm_breaker_state state;
    uint32_t failures;  /* consecutive, while closed */
    uint32_t threshold; /* >= 1 */
    int64_t cooldown_ms;
    int64_t open_until_ms;     /* OPEN: when the probe may go */
    bool probe_in_flight;      /* HALF_OPEN: the one probe is out */
    uint64_t opened, rejected; /* counters for stats */
};

void ch_llm_breaker_init(struct ch_llm_breaker *b, uint32_t threshold, int64_t cooldown_ms);
/*
 * May a call go?  0 (and *is_probe when it is the half-open probe, which
 * must later report success, failure or release), or CH_EBUSY with
 * *retry_in_ms (>= 1) when open or while the probe is out.
 */
int ch_llm_breaker_allow(struct ch_llm_breaker *b, int64_t now_ms, bool *is_probe, int64_t *retry_in_ms);
void ch_llm_breaker_success(struct ch_llm_breaker *b, bool is_probe);
void ch_llm_breaker_failure(struct ch_llm_breaker *b, int64_t now_ms, bool is_probe);
/* The call allowed as probe ended with no verdict (aborted): allow another. */
void ch_llm_breaker_release(struct ch_llm_breaker *b, bool is_probe);

/* ------------------------------------------------------------------ */
/* Client (client.c)                                                    */
/* ------------------------------------------------------------------ */

struct ch_llm_client;

struct ch_llm_client_opts {
    /* Monotonic clock in ms for cooldowns and breakers; NULL: ch_mono_ms. */
    int64_t (*now_ms)(void *data);
    void *clock_data;
    /* Jitter source; NULL: a xorshift seeded from the CSPRNG. */
    uint64_t (*rand)(void *data);
    void *rand_data;
    /* NULL-terminated "NAME=value" list read instead of the process
     * environment (tests); borrowed: valid while the client lives, since
     * reload() reads it again. */
    const char *const *env;
};

/*
 * A client on loop that sends through curlm, which it borrows: curlm must
 * outlive the client, and the client never closes it (the gateway shares
 * one manager per loop with the tools).  cfg is read now, not kept.  opts
 * may be NULL.  *out set only on success.  CH_EINVAL (err names the key),
 * CH_ENOMEM.
 */
int ch_llm_client_new(uv_loop_t *loop, struct ch_curlm *curlm, const struct ch_config *cfg,
                      const struct ch_llm_client_opts *opts, struct ch_llm_client **out, struct ch_error *err);
/*
 * Re-read the configuration (SIGHUP).  Calls in flight finish on the
 * catalog they started with; new calls use the new one.  Key cooldowns
 * carry over by key, breakers by endpoint.  On error nothing changes.
 */
int ch_llm_client_reload(struct ch_llm_client *c, const struct ch_config *cfg, struct ch_error *err);
/* The current catalog, borrowed until the next reload (ref it to keep it). */
struct ch_llm_catalog *ch_llm_client_catalog(struct ch_llm_client *c);
/* Abort every call in flight (shutdown); each reports CH_ECANCELED. */
void ch_llm_client_abort_all(struct ch_llm_client *c);
/*
 * Free the client.  Every call must have been freed first (a programming
 * error otherwise: logged, and asserted in debug builds).  Calls' handles may still be
 * closing; they no longer touch the client.  NULL-safe.
 */
void ch_llm_client_free(struct ch_llm_client *c);

struct ch_llm_stats {
    uint64_t calls, calls_ok, calls_failed, calls_aborted, in_flight;
    uint64_t failures[CH_LLM_ERR_UNKNOWN + 1]; /* failed calls by final class */
    uint64_t attempts;                         /* requests sent, all calls */
    uint64_t retries;                          /* attempts after the first on one model */
    uint64_t fallbacks;                        /* moves to the next model of a chain */
    uint64_t key_rotations;                    /* immediate retries on another key */
    uint64_t breaker_rejections;               /* fast failures on an open breaker */
    struct ch_llm_usage tokens;                /* of every call that reported usage */
    double cost_usd;
};
void ch_llm_client_stats(const struct ch_llm_client *c, struct ch_llm_stats *out);
/* The stats plus breakers [{endpoint, state, failures, retryInMs, opened,
 * rejected}] and keys {provider: keyring_json}: for /health/detail. */
json_t *ch_llm_client_stats_json(struct ch_llm_client *c);

/* ------------------------------------------------------------------ */
/* Calls (call.c, call_xfer.c)                                          */
/* ------------------------------------------------------------------ */

struct ch_llm_call;

/* One attempt of a call, in order. */
struct ch_llm_attempt {
    const char *ref;     /* borrowed: "provider/model" */
    int key_index;       /* -1: no key (none configured, or never sent) */
    bool sent;           /* false: failed fast (breaker, keys cooling) */
    int http_status;     /* 0: no response */
    int rc;              /* 0 or the attempt's CH_E* */
    enum ch_llm_err err; /* when rc != 0 */
    uint64_t latency_ms;
};

/*
 * What on_done receives.  Pointers are borrowed until ch_llm_call_free.
 * rc: 0; CH_EIO (the providers failed, err and message say how);
 * CH_ETIMEDOUT (the total timeout, or every attempt timed out);
 * CH_ECANCELED (aborted); CH_EINVAL (the request is malformed: no retry);
 * CH_ENOTFOUND (nothing configured or the model does not resolve);
 * CH_ENOMEM.
 */
struct ch_llm_result {
    int rc;
    enum ch_llm_err err;        /* class of the failure when rc != 0 */
    char message[256];          /* "" on success */
    json_t *message_json;       /* {role:"assistant",content:[...]}, also the
                                   partial one of a stream that broke; or NULL */
    struct ch_llm_usage usage;  /* of the attempt that answered */
    enum ch_llm_stop stop;      /* CH_LLM_STOP_ERROR when rc != 0 */
    const char *provider;       /* provider id that answered (or last tried), or "" */
    const char *model;          /* model id that answered (or last tried), or "" */
    const char *ref;            /* "provider/model", or "" */
    const char *reported_model; /* what the provider said it ran, or "" */
    double cost_usd;            /* usage at the model's pricing */
    const struct ch_llm_attempt *attempts;
    size_t attempt_count;
    uint32_t fallbacks;      /* models given up on */
    uint64_t latency_ms;     /* start to done */
    uint64_t first_token_ms; /* start to the first event delivered; 0 none */
};

typedef void (*ch_llm_done_cb)(struct ch_llm_call *call, const struct ch_llm_result *res, void *data);

struct ch_llm_call_opts {
    const char *model;            /* a reference (see resolve); NULL: the default chain */
    const char *const *fallbacks; /* NULL: the catalog's; with count 0: none */
    size_t fallback_count;
    const char *system; /* optional; copied */
    json_t *messages;   /* neutral messages; a reference is taken */
    json_t *tools;      /* neutral tools or NULL; a reference is taken */
    /* OpenAI Chat Completions parameters beyond the ones here (top_p,
     * stop, seed, presence_penalty, frequency_penalty, response_format,
     * tool_choice, parallel_tool_calls, user, logit_bias, top_k, and any
     * other key), checked by the caller; NULL: none.  Sent as they are to
     * openai-completions upstreams; mapped where Anthropic or Gemini has an
     * equivalent (providers/req_sampling.c), else not sent.  A reference is
     * taken. */
    const json_t *sampling;
    int64_t max_tokens; /* 0: see ch_llm_target_reply_budget */
    double temperature; /* when has_temperature (else params.temperature) */
    bool has_temperature;
    bool prompt_cache;   /* Anthropic cache_control on system and tools */
    uint32_t timeout_ms; /* total, all attempts; 0: models.timeouts.callMs */
    /* The caller needs the reply only when complete (a non-streaming
     * client of the OpenAI pass-through): an openai-completions upstream
     * is then asked for one JSON body (stream false), which costs it and
     * us less than a stream; events still fire, all at the end.  The
     * first-byte deadline widens to the call's own, since such a server
     * sends nothing until it is done.  An upstream that streams anyway is
     * read as a stream. */
    bool whole_body;
    /* Events as they arrive (TEXT_DELTA, TOOL_*, USAGE, STOP).  ERROR is not
     * forwarded: failures reach on_done.  Events of an attempt that is then
     * retried are never seen, because nothing is retried once one event was
     * delivered; USAGE is held back until the first other event for that
     * reason.  May call ch_llm_call_abort.  Optional. */
    ch_llm_event_cb on_event;
    /* Exactly once, on the loop thread, never inside ch_llm_call_start,
     * unless the call is freed first.  May free the call. */
    ch_llm_done_cb on_done;
    void *data;
};

/*
 * Start a call on client.  Upstream requests always stream (there is no
 * stream option: events are delivered whenever on_event is set).  On success
 * *out is owned by the caller (free it with ch_llm_call_free, in or after
 * on_done).  Errors found before anything is sent (no model resolves,
 * malformed messages) are still reported through on_done so callers have
 * one path; start itself fails only with CH_EINVAL (missing on_done or
 * messages not an array), CH_ECLOSED (client NULL) or CH_ENOMEM, and then
 * no callback fires and *out is untouched.
 */
int ch_llm_call_start(struct ch_llm_client *client, const struct ch_llm_call_opts *opts, struct ch_llm_call **out);
/* Stop the call: on_done fires with CH_ECANCELED (later, never inside this
 * call).  A no-op once on_done has fired. */
void ch_llm_call_abort(struct ch_llm_call *call);
/* Free the call: aborts it silently if still running (on_done then never
 * fires).  Memory goes once its handles and transfer are closed.  NULL-safe. */
void ch_llm_call_free(struct ch_llm_call *call);

/* ------------------------------------------------------------------ */
/* Embeddings (embed.c)                                                 */
/* ------------------------------------------------------------------ */

struct ch_llm_embed;

struct ch_llm_embed_result {
    int rc;              /* 0; CH_EIO (the provider failed: status, err, message), CH_ECANCELED */
    long status;         /* the provider's HTTP status, 0 when none */
    enum ch_llm_err err; /* the failure's class */
    const char *message;
    const json_t *vectors; /* rc 0: one per input, in order: arrays of numbers (or the
                              provider's base64 strings); borrowed during the callback */
    uint64_t input_tokens; /* as the provider counted them; 0 when it does not say */
    double cost_usd;       /* input_tokens at the model's input price */
    const char *provider;  /* who answered */
    const char *model;     /* its model id */
};
typedef void (*ch_llm_embed_cb)(const struct ch_llm_embed_result *res, void *data);

/*
 * Embed inputs (a non-empty array of strings) with model ref (resolved as
 * for calls) through an openai-completions or google-generative-ai
 * provider.  dimensions > 0 asks for shorter vectors; user is optional.
 * cb fires exactly once, on a later loop turn, and the handle is gone
 * after it.  Fails at once (no callback) with CH_ENOTFOUND (no such
 * model), CH_EINVAL (an Anthropic model, bad inputs), CH_AGAIN / CH_EPERM
 * (every key cooling down or disabled), CH_ENOMEM; err says which.
 */
int ch_llm_embed_start(struct ch_llm_client *client, const char *ref, const json_t *inputs, int64_t dimensions,
                       const char *user, ch_llm_embed_cb cb, void *data, struct ch_llm_embed **out,
                       struct ch_error *err);
/* The callback then fires with CH_ECANCELED.  NULL-safe. */
void ch_llm_embed_abort(struct ch_llm_embed *e);

#endif
