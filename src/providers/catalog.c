/*
 * catalog.c: looking things up in a built model catalog: resolving a
 * model reference ("provider/model", an alias, a provider id, or a bare
 * model id) to a provider plus the model's limits and prices, assembling
 * a call's chain (primary then fallbacks), and the JSON listing behind
 * `chela models list` and GET /api/v1/models.  Building the catalog from
 * config and environment is catalog_load.c.  OpenClaw spec section 6
 * ("Model references are provider/model").
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "providers/client_int.h"

/* Built-in knowledge of model families: context window and output cap.
 * Longest prefix wins, so "claude-sonnet-4-20250514" meets its family. */
static const struct {
    const char *prefix;
    int64_t context_window, max_tokens;
} known_models[] = {
    {"claude-opus-4", 200000, 32000},
    {"claude-sonnet-4", 200000, 64000},
    {"claude-haiku-4", 200000, 64000},
    {"claude-3-7-sonnet", 200000, 64000},
    {"claude-3-5", 200000, 8192},
    {"claude-3", 200000, 4096},
    {"gpt-4o", 128000, 16384},
    {"gpt-4.1", 1047576, 32768},
    {"gpt-4-turbo", 128000, 4096},
    {"gpt-5", 400000, 128000},
    {"o1", 200000, 100000},
    {"o3", 200000, 100000},
    {"o4-mini", 200000, 100000},
    {"gemini-2.5", 1048576, 65536},
    {"gemini-2.0", 1048576, 8192},
    {"gemini-1.5-pro", 2097152, 8192},
    {"gemini-1.5", 1048576, 8192},
};

static bool known_lookup(const char *id, int64_t *ctx, int64_t *max)
{
    size_t i, n, best = 0, bestlen = 0;

    for (i = 0; i < CH_ARRAY_SIZE(known_models); i++) {
        n = strlen(known_models[i].prefix);
        /* The prefix must end at a name boundary: "o3" is not "o30". */
        if (n > bestlen && strncmp(id, known_models[i].prefix, n) == 0 && strchr("-.:@", id[n])) {
            best = i;
            bestlen = n;
        }
    }
    if (!bestlen)
        return false;
    *ctx = known_models[best].context_window;
    *max = known_models[best].max_tokens;
    return true;
}

bool llm_known_model(const char *id, int64_t *context_window, int64_t *max_tokens)
{
    const char *slash = strrchr(id, '/');

    return known_lookup(id, context_window, max_tokens) ||
           (slash && known_lookup(slash + 1, context_window, max_tokens));
}

const char *llm_default_model(enum ch_llm_api api)
{
    switch (api) {
    case CH_LLM_ANTHROPIC: return "claude-sonnet-4-20250514";
    case CH_LLM_GEMINI: return "gemini-2.5-flash";
    default: return "gpt-4o";
    }
}

struct ch_llm_catalog *ch_llm_catalog_ref(struct ch_llm_catalog *cat)
{
    if (cat)
        cat->refs++;
    return cat;
}

void ch_llm_catalog_unref(struct ch_llm_catalog *cat)
{
    size_t i;

    if (!cat || --cat->refs > 0)
        return;
    for (i = 0; i < cat->provider_count; i++)
        llm_provider_release(&cat->providers[i]);
    ch_free(cat->providers);
    for (i = 0; i < cat->alias_count; i++)
        llm_alias_release(&cat->aliases[i]);
    ch_free(cat->aliases);
    for (i = 0; i < cat->chain_count; i++)
        ch_free(cat->chain[i]);
    ch_free(cat->chain);
    ch_free(cat);
}

const struct ch_llm_provider *ch_llm_catalog_provider(const struct ch_llm_catalog *cat, const char *id)
{
    size_t i;

    for (i = 0; id && i < cat->provider_count; i++)
        if (cat->providers[i].id && strcmp(cat->providers[i].id, id) == 0)
            return &cat->providers[i];
    return NULL;
}

static const struct ch_llm_provider *provider_n(const struct ch_llm_catalog *cat, const char *id, size_t n)
{
    size_t i;

    for (i = 0; i < cat->provider_count; i++)
        if (strlen(cat->providers[i].id) == n && memcmp(cat->providers[i].id, id, n) == 0)
            return &cat->providers[i];
    return NULL;
}

static const struct ch_llm_model *model_find(const struct ch_llm_provider *p, const char *id)
{
    size_t i;

    for (i = 0; i < p->model_count; i++)
        if (strcmp(p->models[i].id, id) == 0)
            return &p->models[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Resolution                                                           */
/* ------------------------------------------------------------------ */

/* "unknown model 'x' (providers: a, b; aliases: c)", cut to fit err. */
static int not_found(const struct ch_llm_catalog *cat, const char *ref, const char *why, struct ch_error *err)
{
    struct ch_buf b;
    size_t i;
    bool any = false;

    if (!err)
        return CH_ENOTFOUND;
    ch_buf_init(&b, 1024);
    ch_buf_appendf(&b, "%s '%.80s' (providers: ", why, ref);
    for (i = 0; i < cat->provider_count; i++)
        ch_buf_appendf(&b, "%s%s", i ? ", " : "", cat->providers[i].id);
    if (!cat->provider_count)
        ch_buf_append_str(&b, "none");
    for (i = 0; i < cat->alias_count; i++) {
        if (!cat->aliases[i].alias)
            continue;
        ch_buf_appendf(&b, "%s%s", any ? ", " : "; aliases: ", cat->aliases[i].alias);
        any = true;
    }
    ch_buf_append_char(&b, ')');
    if (b.data && b.len >= sizeof(err->msg)) /* say it was cut rather than cut silently */
        memcpy(b.data + sizeof(err->msg) - 5, "...)", 5);
    ch_error_set(err, CH_ENOTFOUND, "%s", b.data ? b.data : why);
    ch_buf_release(&b);
    return CH_ENOTFOUND;
}

static int fill(const struct ch_llm_catalog *cat, const struct ch_llm_provider *p, const char *model_id,
                struct ch_llm_target *out, struct ch_error *err)
{
    const struct ch_llm_model *m = model_find(p, model_id);
    size_t i, plen = strlen(p->id), mlen = strlen(model_id);

    memset(out, 0, sizeof(*out));
    /* "%s/%s" without printf: twice a call, every call. */
    if (plen + 1 + mlen >= sizeof(out->ref))
        return ch_error_set(err, CH_EINVAL, "model reference longer than %d bytes", CH_LLM_MAX_REF_BYTES - 1);
    memcpy(out->ref, p->id, plen);
    out->ref[plen] = '/';
    memcpy(out->ref + plen + 1, model_id, mlen + 1);
    out->provider = p;
    memcpy(out->model_id, model_id, strlen(model_id) + 1); /* shorter than ref */
    if (m) {
        out->name = m->name ? m->name : m->id;
        out->context_window = m->context_window;
        out->max_tokens = m->max_tokens;
        out->pricing = m->pricing;
        out->is_listed = true;
    } else {
        /* Unlisted models of a known provider are allowed: new model ids
         * appear faster than configs are edited. */
        out->name = NULL;
        if (!llm_known_model(model_id, &out->context_window, &out->max_tokens)) {
            out->context_window = CH_LLM_DEF_CONTEXT_WINDOW;
            out->max_tokens = 0;
        }
        ch_llm_pricing_default(model_id, &out->pricing);
    }
    for (i = 0; i < cat->alias_count; i++)
        if (strcmp(cat->aliases[i].ref, out->ref) == 0)
            out->params = cat->aliases[i].params;
    return 0;
}

static int resolve(const struct ch_llm_catalog *cat, const char *ref, struct ch_llm_target *out, struct ch_error *err,
                   int depth)
{
    const struct ch_llm_provider *p, *found = NULL;
    const char *slash;
    size_t i, hits = 0;

    if (!ref || !ref[0]) {
        if (!cat->chain_count)
            return ch_error_set(err, CH_ENOTFOUND,
                                "no LLM provider is configured: set "
                                "ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY, or "
                                "models.providers in the config");
        if (depth > 0)
            return not_found(cat, "", "unknown model", err);
        return resolve(cat, cat->chain[0], out, err, depth + 1);
    }
    if (strlen(ref) >= CH_LLM_MAX_REF_BYTES)
        return ch_error_set(err, CH_EINVAL, "model reference longer than %d bytes", CH_LLM_MAX_REF_BYTES - 1);
    for (i = 0; depth < 2 && i < cat->alias_count; i++)
        if (cat->aliases[i].alias && strcasecmp(cat->aliases[i].alias, ref) == 0)
            return resolve(cat, cat->aliases[i].ref, out, err, 2);
    slash = strchr(ref, '/');
    if (slash && slash[1] && (p = provider_n(cat, ref, (size_t)(slash - ref))) != NULL)
        return fill(cat, p, slash + 1, out, err);
    if (!slash && (p = ch_llm_catalog_provider(cat, ref)) != NULL)
        return fill(cat, p, p->models[0].id, out, err);
    /* A bare id (which may itself hold a '/', as OpenRouter's do). */
    for (i = 0; i < cat->provider_count; i++) {
        if (model_find(&cat->providers[i], ref)) {
            found = &cat->providers[i];
            hits++;
        }
    }
    if (hits == 1)
        return fill(cat, found, ref, out, err);
    if (hits > 1)
        return not_found(cat, ref,
                         "ambiguous model (listed by several providers; write "
                         "provider/model)",
                         err);
    if (slash && slash != ref)
        return not_found(cat, ref, "unknown provider in", err);
    return not_found(cat, ref, "unknown model", err);
}

int ch_llm_catalog_resolve(const struct ch_llm_catalog *cat, const char *ref, struct ch_llm_target *out,
                           struct ch_error *err)
{
    struct ch_llm_target t;
    int rc = resolve(cat, ref, &t, err, 0);

    if (rc == 0)
        *out = t;
    return rc;
}

int ch_llm_catalog_chain(const struct ch_llm_catalog *cat, const char *ref, const char *const *fallbacks,
                         size_t fallback_count, struct ch_llm_target out[CH_LLM_MAX_CHAIN], size_t *n,
                         struct ch_error *err)
{
    struct ch_error e;
    size_t i, j, count = 0, total;
    bool explicit_list = fallbacks != NULL;
    int rc;

    rc = ch_llm_catalog_resolve(cat, ref, &out[0], err);
    if (rc)
        return rc;
    count = 1;
    if (!fallbacks) {
        fallbacks = cat->chain_count ? (const char *const *)cat->chain + 1 : NULL;
        fallback_count = cat->chain_count ? cat->chain_count - 1 : 0;
    }
    total = fallback_count;
    for (i = 0; i < total && count < CH_LLM_MAX_CHAIN; i++) {
        if (!fallbacks[i] || !fallbacks[i][0])
            continue;
        if (ch_llm_catalog_resolve(cat, fallbacks[i], &out[count], &e)) {
            /* The catalog's own chain was already warned about at load. */
            if (explicit_list)
                ch_log_warn("llm: fallback skipped: %s", e.msg);
            else
                ch_log_debug("llm: fallback skipped: %s", e.msg);
            continue;
        }
        for (j = 0; j < count; j++)
            if (strcmp(out[j].ref, out[count].ref) == 0)
                break;
        if (j == count)
            count++;
    }
    *n = count;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Listing                                                              */
/* ------------------------------------------------------------------ */

static bool in_chain(const struct ch_llm_catalog *cat, const char *ref, size_t from)
{
    size_t i;

    for (i = from; i < cat->chain_count; i++)
        if (strcmp(cat->chain[i], ref) == 0)
            return true;
    return false;
}

static json_t *model_entry(const struct ch_llm_catalog *cat, const struct ch_llm_target *t)
{
    json_t *o, *aliases = json_array();
    size_t i;

    for (i = 0; aliases && i < cat->alias_count; i++)
        if (cat->aliases[i].alias && strcmp(cat->aliases[i].ref, t->ref) == 0)
            json_array_append_new(aliases, json_string(cat->aliases[i].alias));
    o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:{s:f, s:f, s:f, s:f}, s:o, s:b, s:b, s:b}", "id", t->ref,
                  "provider", t->provider->id, "api", ch_llm_api_name(t->provider->api), "name",
                  t->name ? t->name : t->model_id, "contextWindow", (json_int_t)t->context_window, "maxTokens",
                  (json_int_t)t->max_tokens, "pricing", "input", t->pricing.input, "output", t->pricing.output,
                  "cacheRead", t->pricing.cache_read, "cacheWrite", t->pricing.cache_write, "aliases", aliases,
                  "isDefault", cat->chain_count && strcmp(cat->chain[0], t->ref) == 0, "isFallback",
                  in_chain(cat, t->ref, 1), "isListed", t->is_listed);
    return o;
}

json_t *ch_llm_catalog_models_json(const struct ch_llm_catalog *cat)
{
    json_t *arr = json_array(), *seen = json_object();
    struct ch_llm_target t;
    size_t i, j;
    bool ok = arr && seen;

    for (i = 0; ok && i < cat->provider_count; i++) {
        for (j = 0; ok && j < cat->providers[i].model_count; j++) {
            if (fill(cat, &cat->providers[i], cat->providers[i].models[j].id, &t, NULL))
                continue;
            ok = json_array_append_new(arr, model_entry(cat, &t)) == 0 &&
                 json_object_set_new(seen, t.ref, json_true()) == 0;
        }
    }
    /* The default or a fallback may name a model nobody listed. */
    for (i = 0; ok && i < cat->chain_count; i++)
        if (!json_object_get(seen, cat->chain[i]) && ch_llm_catalog_resolve(cat, cat->chain[i], &t, NULL) == 0 &&
            !json_object_get(seen, t.ref))
            ok = json_array_append_new(arr, model_entry(cat, &t)) == 0 &&
                 json_object_set_new(seen, t.ref, json_true()) == 0;
    json_decref(seen);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int64_t ch_llm_target_reply_budget(const struct ch_llm_catalog *cat, const struct ch_llm_target *t, int64_t requested)
{
    const json_t *v = json_object_get(t->params, "maxTokens");
    int64_t n = requested;

    if (n <= 0 && json_is_integer(v) && json_integer_value(v) > 0)
        n = (int64_t)json_integer_value(v);
    if (n <= 0)
        n = cat->settings.default_max_tokens;
    if (n <= 0)
        n = CH_LLM_DEF_MAX_TOKENS;
    /* Providers reject a budget above what the model can produce. */
    if (t->max_tokens > 0 && n > t->max_tokens)
        n = t->max_tokens;
    return n;
}
