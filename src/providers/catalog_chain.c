/*
 * catalog_chain.c: the rest of building a model catalog: aliases
 * (agents.defaults.models), the default chain (agents.defaults.model,
 * else LLM_PROVIDER / LLM_MODEL, else the first provider's first model),
 * the runtime settings (models.retry, models.circuitBreaker,
 * models.timeouts, LLM_RETRY_COUNT, MAX_TOKENS), and ch_llm_catalog_new,
 * which runs catalog_load.c's providers first: config providers in file
 * order, then the environment shortcuts for ids the config did not define.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "providers/client_int.h"

/* ------------------------------------------------------------------ */
/* agents.defaults.models (aliases) and agents.defaults.model (chain)   */
/* ------------------------------------------------------------------ */

static int load_aliases(struct ch_llm_catalog *cat, const json_t *j, struct ch_error *err)
{
    const char *key;
    json_t *e;
    size_t i;

    if (!j)
        return 0;
    if (!json_is_object(j))
        return ch_error_set(err, CH_EINVAL, "agents.defaults.models: expected an object");
    if (json_object_size(j) > CH_LLM_MAX_ALIASES)
        return ch_error_set(err, CH_EINVAL, "agents.defaults.models: more than %d entries", CH_LLM_MAX_ALIASES);
    cat->aliases = ch_calloc(json_object_size(j) + 1, sizeof(*cat->aliases));
    if (!cat->aliases)
        return CH_ENOMEM;
    json_object_foreach((json_t *)j, key, e)
    {
        struct ch_llm_alias *a = &cat->aliases[cat->alias_count];
        const json_t *al = json_object_get(e, "alias"), *params = json_object_get(e, "params");

        if (!strchr(key, '/') || !llm_is_id_text(key, CH_LLM_MAX_REF_BYTES - 1, true))
            return ch_error_set(err, CH_EINVAL,
                                "agents.defaults.models.%.80s: keys are "
                                "\"provider/model\" references",
                                key);
        if (!json_is_object(e))
            return ch_error_set(err, CH_EINVAL,
                                "agents.defaults.models.%.80s: expected an "
                                "object",
                                key);
        if (al && (!json_is_string(al) || !llm_is_id_text(json_string_value(al), 64, false)))
            return ch_error_set(err, CH_EINVAL,
                                "agents.defaults.models.%.80s.alias: expected "
                                "a name without spaces or '/'",
                                key);
        if (params && !json_is_object(params))
            return ch_error_set(err, CH_EINVAL,
                                "agents.defaults.models.%.80s.params: expected "
                                "an object",
                                key);
        for (i = 0; al && i < cat->alias_count; i++)
            if (cat->aliases[i].alias && strcasecmp(cat->aliases[i].alias, json_string_value(al)) == 0)
                return ch_error_set(err, CH_EINVAL,
                                    "agents.defaults.models.%.80s.alias: '%s' "
                                    "is also the alias of %.60s",
                                    key, json_string_value(al), cat->aliases[i].ref);
        cat->alias_count++;
        a->ref = ch_strdup(key);
        a->alias = al ? ch_strdup(json_string_value(al)) : NULL;
        a->params = params ? json_deep_copy(params) : NULL;
        if (!a->ref || (al && !a->alias) || (params && !a->params))
            return CH_ENOMEM;
    }
    return 0;
}

/* Store ref in the chain, canonical ("provider/model") when it resolves;
 * otherwise as given, so a call names the problem (a provider whose key is
 * missing from the environment must not stop the gateway from starting). */
static int chain_add(struct ch_llm_catalog *cat, const char *ref, const char *where)
{
    struct ch_llm_target t;
    struct ch_error e = {0};
    const char *s = ref;
    size_t i;

    if (cat->chain_count >= CH_LLM_MAX_CHAIN) {
        ch_log_warn("llm: %s: the chain holds at most %d models; '%.80s' ignored", where, CH_LLM_MAX_CHAIN, ref);
        return 0;
    }
    if (ch_llm_catalog_resolve(cat, ref, &t, &e) == 0)
        s = t.ref;
    else
        ch_log_warn("llm: %s: %s", where, e.msg);
    for (i = 0; i < cat->chain_count; i++)
        if (strcmp(cat->chain[i], s) == 0)
            return 0;
    cat->chain[cat->chain_count] = ch_strdup(s);
    if (!cat->chain[cat->chain_count])
        return CH_ENOMEM;
    cat->chain_count++;
    return 0;
}

static int load_chain(struct ch_llm_catalog *cat, const struct ch_config *cfg, const char *const *env,
                      struct ch_error *err)
{
    const json_t *m = ch_config_get(cfg, "agents.defaults.model"), *prim = m, *fb = NULL, *v;
    const char *lp = llm_env_get(env, "LLM_PROVIDER"), *lm = llm_env_get(env, "LLM_MODEL");
    char ref[CH_LLM_MAX_REF_BYTES];
    size_t i;
    int rc;

    cat->chain = ch_calloc(CH_LLM_MAX_CHAIN, sizeof(*cat->chain));
    if (!cat->chain)
        return CH_ENOMEM;
    if (json_is_object(m)) {
        prim = json_object_get(m, "primary");
        fb = json_object_get(m, "fallbacks");
    } else if (m && !json_is_string(m)) {
        return ch_error_set(err, CH_EINVAL,
                            "agents.defaults.model: expected a string or an "
                            "object {primary, fallbacks}");
    }
    if (prim && (!json_is_string(prim) || !json_string_length(prim)))
        return ch_error_set(err, CH_EINVAL,
                            "agents.defaults.model.primary: expected a "
                            "\"provider/model\" string");
    if (fb && !json_is_array(fb))
        return ch_error_set(err, CH_EINVAL,
                            "agents.defaults.model.fallbacks: expected an "
                            "array of strings");
    json_array_foreach(fb, i, v) if (!json_is_string(v) || !json_string_length(v)) return ch_error_set(
        err, CH_EINVAL,
        "agents.defaults.model.fallbacks.%zu: expected "
        "a \"provider/model\" string",
        i);
    if (prim) {
        rc = chain_add(cat, json_string_value(prim), "agents.defaults.model.primary");
    } else if (lp) {
        /* "gemini" is what people call Google's provider. */
        if (strcmp(lp, "gemini") == 0 && !ch_llm_catalog_provider(cat, "gemini"))
            lp = "google";
        /* LLM_MODEL may already say "provider/model" for this provider. */
        if (lm && strncmp(lm, lp, strlen(lp)) == 0 && lm[strlen(lp)] == '/')
            lm += strlen(lp) + 1;
        if (lm && snprintf(ref, sizeof(ref), "%s/%s", lp, lm) >= (int)sizeof(ref))
            return ch_error_set(err, CH_EINVAL, "LLM_MODEL: longer than %d bytes", CH_LLM_MAX_REF_BYTES - 1);
        rc = chain_add(cat, lm ? ref : lp, "LLM_PROVIDER");
    } else if (lm) {
        struct ch_llm_target t;
        /* A bare id nobody lists belongs to the first provider. */
        if (ch_llm_catalog_resolve(cat, lm, &t, NULL) != 0 && !strchr(lm, '/') && cat->provider_count &&
            snprintf(ref, sizeof(ref), "%s/%s", cat->providers[0].id, lm) < (int)sizeof(ref))
            lm = ref;
        rc = chain_add(cat, lm, "LLM_MODEL");
    } else if (cat->provider_count) {
        rc = chain_add(cat, cat->providers[0].id, "default model");
    } else {
        rc = 0;
    }
    json_array_foreach(fb, i, v)
    {
        char where[64];
        snprintf(where, sizeof(where), "agents.defaults.model.fallbacks.%zu", i);
        if (!rc)
            rc = chain_add(cat, json_string_value(v), where);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Settings                                                             */
/* ------------------------------------------------------------------ */

static int load_settings(struct ch_llm_settings *s, const struct ch_config *cfg, const char *const *env,
                         struct ch_error *err)
{
    static const struct {
        const char *path;
        int64_t min, max, def;
        size_t off;
    } rows[] = {
        {"models.retry.baseDelayMs", 1, 60000, CH_LLM_DEF_BACKOFF_BASE_MS,
         offsetof(struct ch_llm_settings, backoff_base_ms)},
        {"models.retry.maxDelayMs", 1, 300000, CH_LLM_DEF_BACKOFF_MAX_MS,
         offsetof(struct ch_llm_settings, backoff_max_ms)},
        {"models.circuitBreaker.failureThreshold", 1, 1000, CH_LLM_DEF_BREAKER_THRESHOLD,
         offsetof(struct ch_llm_settings, breaker_threshold)},
        {"models.circuitBreaker.cooldownMs", 10, 3600000, CH_LLM_DEF_BREAKER_COOLDOWN_MS,
         offsetof(struct ch_llm_settings, breaker_cooldown_ms)},
        {"models.timeouts.connectMs", 10, 300000, CH_CURLM_DEF_CONNECT_TIMEOUT_MS,
         offsetof(struct ch_llm_settings, connect_timeout_ms)},
        {"models.timeouts.firstByteMs", 10, 3600000, CH_CURLM_DEF_FIRST_BYTE_TIMEOUT_MS,
         offsetof(struct ch_llm_settings, first_byte_timeout_ms)},
        {"models.timeouts.idleMs", 10, 3600000, CH_CURLM_DEF_IDLE_TIMEOUT_MS,
         offsetof(struct ch_llm_settings, idle_timeout_ms)},
        {"models.timeouts.callMs", 10, 86400000, CH_LLM_DEF_CALL_TIMEOUT_MS,
         offsetof(struct ch_llm_settings, call_timeout_ms)},
    };
    const json_t *v;
    int64_t x;
    bool present;
    size_t i;
    int rc;

    for (i = 0; i < CH_ARRAY_SIZE(rows); i++) {
        rc =
            llm_opt_int(ch_config_get(cfg, rows[i].path), rows[i].path, rows[i].min, rows[i].max, rows[i].def, &x, err);
        if (rc)
            return rc;
        *(uint32_t *)((char *)s + rows[i].off) = (uint32_t)x;
    }
    if (s->backoff_max_ms < s->backoff_base_ms)
        return ch_error_set(err, CH_EINVAL,
                            "models.retry.maxDelayMs: smaller than "
                            "models.retry.baseDelayMs");
    /* The config wins over the environment, as it does for providers. */
    v = ch_config_get(cfg, "models.retry.count");
    rc = llm_opt_int(v, "models.retry.count", 0, CH_LLM_MAX_RETRY_COUNT, CH_LLM_DEF_RETRY_COUNT, &x, err);
    if (!rc && !v)
        rc = llm_env_int(env, "LLM_RETRY_COUNT", 0, CH_LLM_MAX_RETRY_COUNT, &x, &present, err);
    if (rc)
        return rc;
    s->retry_count = (uint32_t)x;
    s->default_max_tokens = 0;
    return llm_env_int(env, "MAX_TOKENS", 1, 10000000, &s->default_max_tokens, &present, err);
}

/* ------------------------------------------------------------------ */
/* The whole catalog                                                    */
/* ------------------------------------------------------------------ */

int ch_llm_catalog_new(const struct ch_config *cfg, const char *const *env, struct ch_llm_catalog **out,
                       struct ch_error *err)
{
    const json_t *provs = ch_config_get(cfg, "models.providers"), *pj;
    struct ch_llm_catalog *cat;
    const char *id;
    size_t i;
    int rc = CH_ENOMEM;

    cat = ch_calloc(1, sizeof(*cat));
    if (!cat)
        goto out;
    cat->refs = 1;
    if (provs && !json_is_object(provs)) {
        rc = ch_error_set(err, CH_EINVAL, "models.providers: expected an object");
        goto out;
    }
    if (json_object_size(provs) > CH_LLM_MAX_PROVIDERS) {
        rc = ch_error_set(err, CH_EINVAL, "models.providers: more than %d providers", CH_LLM_MAX_PROVIDERS);
        goto out;
    }
    cat->providers = ch_calloc(json_object_size(provs) + LLM_ENV_PROVIDERS, sizeof(*cat->providers));
    if (!cat->providers)
        goto out;
    json_object_foreach((json_t *)provs, id, pj)
    {
        /* Counted first so that a failure releases what was half built. */
        rc = llm_load_provider(&cat->providers[cat->provider_count++], id, pj, err);
        if (rc)
            goto out;
    }
    for (i = 0; i < LLM_ENV_PROVIDERS; i++) {
        rc = llm_load_env_provider(cat, i, env, err);
        if (rc)
            goto out;
    }
    rc = load_aliases(cat, ch_config_get(cfg, "agents.defaults.models"), err);
    if (!rc)
        rc = load_settings(&cat->settings, cfg, env, err);
    if (!rc)
        rc = load_chain(cat, cfg, env, err);
out:
    if (rc == CH_ENOMEM)
        ch_error_set(err, rc, "out of memory loading the model catalog");
    if (rc) {
        ch_llm_catalog_unref(cat);
        cat = NULL;
    }
    *out = cat;
    return rc;
}
