/*
 * client.c: the LLM client object: the current generation (catalog plus
 * one key ring per provider), the breakers by endpoint, the clock and the
 * jitter source, reload on SIGHUP, and the counters behind /health/detail
 * and /metrics.  The calls themselves are call.c and call_xfer.c.
 *
 * The curl manager is borrowed: the gateway runs one per loop and the
 * tools (http_request, web_fetch) share it, so its lifetime is the
 * gateway's, not the client's.
 */
#include <assert.h>
#include <string.h>

#include "providers/client_int.h"

/* ------------------------------------------------------------------ */
/* Generations                                                          */
/* ------------------------------------------------------------------ */

struct llm_gen *llm_gen_ref(struct llm_gen *g)
{
    g->refs++;
    return g;
}

void llm_gen_unref(struct llm_gen *g)
{
    size_t i;

    if (!g || --g->refs > 0)
        return;
    for (i = 0; g->rings && i < g->cat->provider_count; i++)
        ch_llm_keyring_free(g->rings[i]);
    ch_free(g->rings);
    ch_llm_catalog_unref(g->cat);
    ch_free(g);
}

struct ch_llm_keyring *llm_gen_ring(struct llm_gen *g, const struct ch_llm_provider *p)
{
    size_t i = (size_t)(p - g->cat->providers);

    return i < g->cat->provider_count ? g->rings[i] : NULL;
}

/* A generation for a new catalog; rings take over prev's key state. */
static int gen_new(struct ch_llm_catalog *cat, const struct llm_gen *prev, struct llm_gen **out)
{
    struct llm_gen *g = ch_calloc(1, sizeof(*g));
    const struct ch_llm_provider *pp;
    const struct ch_llm_keyring *pr;
    size_t i;
    int rc = CH_ENOMEM;

    if (!g) {
        ch_llm_catalog_unref(cat);
        goto out;
    }
    g->refs = 1;
    g->cat = cat; /* taken */
    g->rings = ch_calloc(cat->provider_count + 1, sizeof(*g->rings));
    if (!g->rings)
        goto out;
    for (i = 0; i < cat->provider_count; i++) {
        pp = prev ? ch_llm_catalog_provider(prev->cat, cat->providers[i].id) : NULL;
        pr = pp ? prev->rings[pp - prev->cat->providers] : NULL;
        rc = ch_llm_keyring_new(cat->providers[i].id, (const char *const *)cat->providers[i].keys,
                                cat->providers[i].key_count, pr, &g->rings[i]);
        if (rc)
            goto out;
    }
    rc = 0;
out:
    if (rc) {
        llm_gen_unref(g);
        g = NULL;
    }
    *out = g;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Clock, randomness, breakers                                          */
/* ------------------------------------------------------------------ */

int64_t llm_client_now(const struct ch_llm_client *c)
{
    return c->now_fn ? c->now_fn(c->clock_data) : (int64_t)ch_mono_ms();
}

uint64_t llm_client_rand(struct ch_llm_client *c)
{
    if (c->rand_fn)
        return c->rand_fn(c->rand_data);
    /* xorshift64*: jitter needs spread, not secrecy. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

/* The endpoint as shown in /health/detail and the breaker's log lines:
 * a baseUrl may carry userinfo or a key in its query. */
static char *endpoint_for_show(const char *url)
{
    char buf[512];

    ch_url_for_log(url, buf, sizeof(buf));
    return ch_strdup(buf);
}

struct ch_llm_breaker *llm_client_breaker(struct ch_llm_client *c, const char *endpoint)
{
    const struct ch_llm_settings *s = &c->gen->cat->settings;
    struct ch_llm_breaker *b = ch_map_get(&c->breakers, endpoint, strlen(endpoint));

    if (b)
        return b;
    b = ch_calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    ch_llm_breaker_init(b, s->breaker_threshold, s->breaker_cooldown_ms);
    b->endpoint = endpoint_for_show(endpoint); /* display only: the map keys on the URL */
    if (!b->endpoint || ch_map_set(&c->breakers, endpoint, strlen(endpoint), b, NULL)) {
        ch_free(b->endpoint);
        ch_free(b);
        return NULL;
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

int ch_llm_client_new(uv_loop_t *loop, struct ch_curlm *curlm, const struct ch_config *cfg,
                      const struct ch_llm_client_opts *opts, struct ch_llm_client **out, struct ch_error *err)
{
    struct ch_llm_client *c = NULL;
    struct ch_llm_catalog *cat = NULL;
    int rc = CH_EINVAL;

    if (!loop || !curlm) {
        ch_error_set(err, rc, "the LLM client needs a loop and a curl manager");
        goto out;
    }
    rc = ch_llm_catalog_new(cfg, opts ? opts->env : NULL, &cat, err);
    if (rc)
        goto out;
    rc = CH_ENOMEM;
    c = ch_calloc(1, sizeof(*c));
    if (!c) {
        ch_llm_catalog_unref(cat);
        goto out;
    }
    c->loop = loop;
    c->curlm = curlm;
    ch_map_init(&c->breakers);
    if (opts) {
        c->now_fn = opts->now_ms;
        c->clock_data = opts->clock_data;
        c->rand_fn = opts->rand;
        c->rand_data = opts->rand_data;
        c->env = opts->env;
    }
    if (ch_random_bytes(&c->rng, sizeof(c->rng)) || c->rng == 0)
        c->rng = ch_mono_ns() | 1; /* xorshift must not start at zero */
    rc = gen_new(cat, NULL, &c->gen);
    if (rc)
        goto out;
    ch_log_info("llm: %zu provider%s, default model %s", cat->provider_count, cat->provider_count == 1 ? "" : "s",
                cat->chain_count ? cat->chain[0] : "none");
out:
    if (rc) {
        if (rc == CH_ENOMEM)
            ch_error_set(err, rc, "out of memory creating the LLM client");
        ch_llm_client_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int ch_llm_client_reload(struct ch_llm_client *c, const struct ch_config *cfg, struct ch_error *err)
{
    struct ch_llm_catalog *cat;
    struct llm_gen *g;
    struct ch_map_entry *e;
    size_t it = 0;
    int rc;

    rc = ch_llm_catalog_new(cfg, c->env, &cat, err);
    if (rc)
        return rc;
    rc = gen_new(cat, c->gen, &g);
    if (rc)
        return ch_error_set(err, rc, "out of memory reloading the LLM client");
    llm_gen_unref(c->gen);
    c->gen = g;
    /* New thresholds apply at once; states carry over. */
    while ((e = ch_map_next(&c->breakers, &it)) != NULL) {
        struct ch_llm_breaker *b = e->value;
        b->threshold = cat->settings.breaker_threshold;
        b->cooldown_ms = cat->settings.breaker_cooldown_ms;
    }
    ch_log_info("llm: reloaded: %zu provider%s, default model %s", cat->provider_count,
                cat->provider_count == 1 ? "" : "s", cat->chain_count ? cat->chain[0] : "none");
    return 0;
}

struct ch_llm_catalog *ch_llm_client_catalog(struct ch_llm_client *c)
{
    return c->gen->cat;
}

void ch_llm_client_abort_all(struct ch_llm_client *c)
{
    struct ch_llm_call *call;

    for (call = c->calls; call; call = call->next)
        ch_llm_call_abort(call);
}

void ch_llm_client_free(struct ch_llm_client *c)
{
    struct ch_map_entry *e;
    struct ch_llm_call *call;
    size_t it = 0;

    if (!c)
        return;
    if (c->calls) {
        /* A caller bug: debug builds stop here; release builds detach the
         * survivors so they never touch freed memory (they end with
         * CH_ECLOSED at their next step). */
        ch_log_error("llm: client freed with %zu live call(s)", c->live_calls);
#ifdef CH_DEBUG
        assert(!"free every ch_llm_call before the client");
#endif
    }
    for (call = c->calls; call; call = call->next) {
        call->client = NULL;
        call->breaker = NULL; /* the breakers go with the client */
        call->is_probe = false;
    }
    while ((e = ch_map_next(&c->breakers, &it)) != NULL) {
        struct ch_llm_breaker *b = e->value;
        ch_free(b->endpoint);
        ch_free(b);
    }
    ch_map_release(&c->breakers);
    llm_tools_memo_release(&c->tools_memo);
    llm_gen_unref(c->gen);
    ch_free(c);
}

/* ------------------------------------------------------------------ */
/* Stats                                                                */
/* ------------------------------------------------------------------ */

void ch_llm_client_stats(const struct ch_llm_client *c, struct ch_llm_stats *out)
{
    *out = c->stats;
    out->in_flight = c->live_calls;
}

static int add_failures(json_t *o, const struct ch_llm_stats *s)
{
    json_t *f = json_object();
    int e;

    if (!f)
        return CH_ENOMEM;
    for (e = 0; e <= CH_LLM_ERR_UNKNOWN; e++)
        json_object_set_new(f, ch_llm_err_name((enum ch_llm_err)e), json_integer((json_int_t)s->failures[e]));
    return json_object_set_new(o, "failuresByClass", f) ? CH_ENOMEM : 0;
}

json_t *ch_llm_client_stats_json(struct ch_llm_client *c)
{
    struct ch_llm_stats s;
    json_t *o, *br = json_array(), *keys = json_object();
    struct ch_map_entry *e;
    int64_t now = llm_client_now(c);
    size_t it = 0, i;
    bool ok = br && keys;

    ch_llm_client_stats(c, &s);
    while (ok && (e = ch_map_next(&c->breakers, &it)) != NULL) {
        struct ch_llm_breaker *b = e->value;
        ok = json_array_append_new(
                 br, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "endpoint", b->endpoint, "state",
                               ch_llm_breaker_state_name(b->state), "failures", (json_int_t)b->failures, "retryInMs",
                               (json_int_t)(b->state == CH_LLM_BREAKER_OPEN ? CH_MAX(b->open_until_ms - now, 0) : 0),
                               "opened", (json_int_t)b->opened, "rejected", (json_int_t)b->rejected)) == 0;
    }
    for (i = 0; ok && i < c->gen->cat->provider_count; i++)
        ok = json_object_set_new(keys, c->gen->cat->providers[i].id, ch_llm_keyring_json(c->gen->rings[i], now)) == 0;
    if (!ok) {
        json_decref(br);
        json_decref(keys);
        return NULL;
    }
    o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I},"
                  " s:f, s:o, s:o}",
                  "calls", (json_int_t)s.calls, "ok", (json_int_t)s.calls_ok, "failed", (json_int_t)s.calls_failed,
                  "aborted", (json_int_t)s.calls_aborted, "inFlight", (json_int_t)s.in_flight, "attempts",
                  (json_int_t)s.attempts, "retries", (json_int_t)s.retries, "fallbacks", (json_int_t)s.fallbacks,
                  "keyRotations", (json_int_t)s.key_rotations, "breakerRejections", (json_int_t)s.breaker_rejections,
                  "tokens", "input", (json_int_t)s.tokens.input_tokens, "output", (json_int_t)s.tokens.output_tokens,
                  "cacheRead", (json_int_t)s.tokens.cache_read_tokens, "cacheWrite",
                  (json_int_t)s.tokens.cache_write_tokens, "costUsd", s.cost_usd, "breakers", br, "keys", keys);
    if (o && add_failures(o, &s)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}
