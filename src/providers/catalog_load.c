/*
 * catalog_load.c: the providers of the model catalog, from the config
 * (models.providers.<id>) and from the environment shortcuts
 * (ANTHROPIC_API_KEY, OPENAI_API_KEY + OPENAI_BASE_URL, GEMINI_API_KEY or
 * GOOGLE_API_KEY), plus the small validators the catalog files share.
 * Every value is type- and range-checked here and an error names its
 * dotted path, so a config the schema did not check (tests, an older
 * schema) still fails clearly.  catalog_chain.c builds the rest.
 * docs/internals/llm-client.md lists every key.
 */
#include <string.h>

#include "providers/client_int.h"

extern char **environ;

const char *llm_env_get(const char *const *env, const char *name)
{
    const char *const *e = env ? env : (const char *const *)environ;
    size_t n = strlen(name);

    for (; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    return NULL;
}

void llm_provider_release(struct ch_llm_provider *p)
{
    size_t i;

    for (i = 0; i < p->key_count; i++)
        ch_free_secret(p->keys[i]);
    ch_free(p->keys);
    for (i = 0; i < p->model_count; i++) {
        ch_free(p->models[i].id);
        ch_free(p->models[i].name);
    }
    ch_free(p->models);
    json_decref(p->headers);
    ch_free(p->base_url);
    ch_free(p->id);
    memset(p, 0, sizeof(*p));
}

void llm_alias_release(struct ch_llm_alias *a)
{
    ch_free(a->alias);
    ch_free(a->ref);
    json_decref(a->params);
    memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------ */
/* Small validators                                                     */
/* ------------------------------------------------------------------ */

bool llm_is_id_text(const char *s, size_t max, bool allow_slash)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > max)
        return false;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f || (!allow_slash && ch == '/'))
            return false;
    }
    return true;
}

static bool is_provider_id(const char *s)
{
    size_t i;

    if (!s[0] || strlen(s) > 64)
        return false;
    for (i = 0; s[i]; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
            return false;
    return true;
}

int llm_opt_int(const json_t *v, const char *path, int64_t min, int64_t max, int64_t def, int64_t *out,
                struct ch_error *err)
{
    *out = def;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return ch_error_set(err, CH_EINVAL, "%s: expected an integer from %lld to %lld", path, (long long)min,
                            (long long)max);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int llm_env_int(const char *const *env, const char *name, int64_t min, int64_t max, int64_t *out, bool *present,
                struct ch_error *err)
{
    const char *s = llm_env_get(env, name);
    uint64_t v;

    *present = false;
    if (!s)
        return 0;
    if (ch_str_to_u64(ch_str_trim(ch_str_from(s)), (uint64_t)max, &v) || (int64_t)v < min)
        return ch_error_set(err, CH_EINVAL, "%s: expected an integer from %lld to %lld", name, (long long)min,
                            (long long)max);
    *out = (int64_t)v;
    *present = true;
    return 0;
}

/* Append key text to p->keys unless empty or already there. */
static int add_key(struct ch_llm_provider *p, struct ch_str k, const char *where, struct ch_error *err)
{
    char **v;
    size_t i;

    k = ch_str_trim(k);
    if (k.len == 0)
        return 0;
    for (i = 0; i < k.len; i++)
        if ((unsigned char)k.p[i] < ' ' || k.p[i] == 0x7f)
            return ch_error_set(err, CH_EINVAL, "%s: a key contains a control character", where);
    for (i = 0; i < p->key_count; i++)
        if (strlen(p->keys[i]) == k.len && memcmp(p->keys[i], k.p, k.len) == 0)
            return 0;
    if (p->key_count >= CH_LLM_MAX_KEYS)
        return ch_error_set(err, CH_EINVAL, "%s: more than %d keys", where, CH_LLM_MAX_KEYS);
    v = ch_realloc(p->keys, (p->key_count + 1) * sizeof(*v));
    if (!v)
        return CH_ENOMEM;
    p->keys = v;
    p->keys[p->key_count] = ch_str_dup(k);
    if (!p->keys[p->key_count])
        return CH_ENOMEM;
    p->key_count++;
    return 0;
}

/* "k1,k2, k3": rotation lists in environment variables. */
static int add_key_list(struct ch_llm_provider *p, const char *list, const char *where, struct ch_error *err)
{
    const char *s = list, *comma;
    int rc = 0;

    while (!rc && s) {
        comma = strchr(s, ',');
        rc = add_key(p, (struct ch_str){s, comma ? (size_t)(comma - s) : strlen(s)}, where, err);
        s = comma ? comma + 1 : NULL;
    }
    return rc;
}

static int set_base_url(struct ch_llm_provider *p, const char *url, const char *where, struct ch_error *err)
{
    size_t n;

    if (!url)
        url = ch_llm_api_default_base_url(p->api);
    n = strlen(url);
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || n > 2048 ||
        !llm_is_id_text(url, 2048, true))
        return ch_error_set(err, CH_EINVAL, "%s: expected an http:// or https:// URL", where);
    while (n > 8 && url[n - 1] == '/') /* one spelling per endpoint: breakers key on it */
        n--;
    p->base_url = ch_strndup(url, n);
    return p->base_url ? 0 : CH_ENOMEM;
}

/* Give a provider with no models[] the well-known model of its API. */
static int add_default_model(struct ch_llm_provider *p)
{
    struct ch_llm_model *m;

    p->models = ch_calloc(1, sizeof(*p->models));
    if (!p->models)
        return CH_ENOMEM;
    m = &p->models[0];
    m->id = ch_strdup(llm_default_model(p->api));
    if (!m->id)
        return CH_ENOMEM;
    p->model_count = 1;
    if (!llm_known_model(m->id, &m->context_window, &m->max_tokens))
        m->context_window = CH_LLM_DEF_CONTEXT_WINDOW;
    m->has_pricing = ch_llm_pricing_default(m->id, &m->pricing);
    return 0;
}

/* ------------------------------------------------------------------ */
/* models.providers.<id>                                                */
/* ------------------------------------------------------------------ */

static int load_pricing(struct ch_llm_model *m, const json_t *pr, const char *path, struct ch_error *err)
{
    static const char *const names[] = {"input", "output", "cacheRead", "cacheWrite"};
    double *dst[] = {&m->pricing.input, &m->pricing.output, &m->pricing.cache_read, &m->pricing.cache_write};
    size_t i;

    if (!json_is_object(pr))
        return ch_error_set(err, CH_EINVAL, "%s: expected an object", path);
    memset(&m->pricing, 0, sizeof(m->pricing));
    for (i = 0; i < CH_ARRAY_SIZE(names); i++) {
        const json_t *v = json_object_get(pr, names[i]);
        if (!v)
            continue;
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e6)
            return ch_error_set(err, CH_EINVAL, "%s.%s: expected a number from 0 to 1000000", path, names[i]);
        *dst[i] = json_number_value(v);
    }
    m->has_pricing = true;
    return 0;
}

static int load_model(struct ch_llm_provider *p, const json_t *j, const char *path, struct ch_error *err)
{
    struct ch_llm_model *m = &p->models[p->model_count];
    const char *id = json_string_value(json_object_get(j, "id"));
    const json_t *name = json_object_get(j, "name"), *pr;
    char sub[CH_LLM_MAX_REF_BYTES + 96];
    int64_t def_ctx = CH_LLM_DEF_CONTEXT_WINDOW, def_max = 0;
    size_t i;
    int rc;

    if (!json_is_object(j))
        return ch_error_set(err, CH_EINVAL, "%s: expected an object", path);
    if (!id || !llm_is_id_text(id, CH_LLM_MAX_REF_BYTES - 66, true))
        return ch_error_set(err, CH_EINVAL, "%s.id: expected a model id without spaces", path);
    for (i = 0; i < p->model_count; i++)
        if (strcmp(p->models[i].id, id) == 0)
            return ch_error_set(err, CH_EINVAL, "%s.id: model '%s' is listed twice", path, id);
    if (name && (!json_is_string(name) || json_string_length(name) > 200))
        return ch_error_set(err, CH_EINVAL, "%s.name: expected a string", path);
    llm_known_model(id, &def_ctx, &def_max);
    snprintf(sub, sizeof(sub), "%s.contextWindow", path);
    rc = llm_opt_int(json_object_get(j, "contextWindow"), sub, 1, 100000000, def_ctx, &m->context_window, err);
    snprintf(sub, sizeof(sub), "%s.maxTokens", path);
    if (!rc)
        rc = llm_opt_int(json_object_get(j, "maxTokens"), sub, 1, 100000000, def_max, &m->max_tokens, err);
    if (rc)
        return rc;
    /* "pricing" as the gateway documents it; "cost" is OpenClaw's spelling. */
    pr = json_object_get(j, "pricing");
    snprintf(sub, sizeof(sub), "%s.pricing", path);
    if (!pr) {
        pr = json_object_get(j, "cost");
        snprintf(sub, sizeof(sub), "%s.cost", path);
    }
    if (pr)
        rc = load_pricing(m, pr, sub, err);
    else
        m->has_pricing = ch_llm_pricing_default(id, &m->pricing);
    if (rc)
        return rc;
    m->id = ch_strdup(id);
    m->name = name ? ch_strdup(json_string_value(name)) : NULL;
    p->model_count++; /* counted now so release frees what was copied */
    return m->id && (!name || m->name) ? 0 : CH_ENOMEM;
}

static int load_headers(struct ch_llm_provider *p, const json_t *h, const char *path, struct ch_error *err)
{
    const char *k;
    json_t *v;

    if (!json_is_object(h))
        return ch_error_set(err, CH_EINVAL, "%s: expected an object of strings", path);
    json_object_foreach((json_t *)h, k, v)
    {
        if (!json_is_string(v) || !llm_is_id_text(k, 128, false) || strchr(k, ':') ||
            strpbrk(json_string_value(v), "\r\n"))
            return ch_error_set(err, CH_EINVAL,
                                "%s.%s: expected a header name and a string "
                                "value without line breaks",
                                path, k);
    }
    p->headers = json_deep_copy(h);
    return p->headers ? 0 : CH_ENOMEM;
}

static enum ch_llm_api guess_api(const char *id)
{
    if (strcmp(id, "anthropic") == 0)
        return CH_LLM_ANTHROPIC;
    if (strcmp(id, "google") == 0 || strcmp(id, "gemini") == 0)
        return CH_LLM_GEMINI;
    return CH_LLM_OPENAI; /* the compatible API most servers speak */
}

int llm_load_provider(struct ch_llm_provider *p, const char *id, const json_t *j, struct ch_error *err)
{
    char path[160], sub[200];
    const json_t *v, *models, *m;
    size_t i;
    int rc;

    snprintf(path, sizeof(path), "models.providers.%.64s", id);
    if (!is_provider_id(id))
        return ch_error_set(err, CH_EINVAL,
                            "%s: provider ids use letters, digits, '.', '_' "
                            "and '-' (at most 64)",
                            path);
    if (!json_is_object(j))
        return ch_error_set(err, CH_EINVAL, "%s: expected an object", path);
    p->id = ch_strdup(id);
    if (!p->id)
        return CH_ENOMEM;
    v = json_object_get(j, "api");
    p->api = guess_api(id);
    if (v && (!json_is_string(v) || ch_llm_api_parse(json_string_value(v), &p->api)))
        return ch_error_set(err, CH_EINVAL,
                            "%s.api: expected \"anthropic-messages\", "
                            "\"openai-completions\" or \"google-generative-ai\"",
                            path);
    v = json_object_get(j, "baseUrl");
    snprintf(sub, sizeof(sub), "%s.baseUrl", path);
    if (v && !json_is_string(v))
        return ch_error_set(err, CH_EINVAL, "%s: expected a string", sub);
    rc = set_base_url(p, json_string_value(v), sub, err);
    if (rc)
        return rc;
    v = json_object_get(j, "apiKey");
    snprintf(sub, sizeof(sub), "%s.apiKey", path);
    if (v && !json_is_string(v))
        return ch_error_set(err, CH_EINVAL, "%s: expected a string", sub);
    if (v && (rc = add_key(p, ch_str_from(json_string_value(v)), sub, err)))
        return rc;
    v = json_object_get(j, "apiKeys");
    snprintf(sub, sizeof(sub), "%s.apiKeys", path);
    if (v && !json_is_array(v))
        return ch_error_set(err, CH_EINVAL, "%s: expected an array of strings", sub);
    for (i = 0; v && i < json_array_size(v); i++) {
        if (!json_is_string(json_array_get(v, i)))
            return ch_error_set(err, CH_EINVAL, "%s.%zu: expected a string", sub, i);
        rc = add_key(p, ch_str_from(json_string_value(json_array_get(v, i))), sub, err);
        if (rc)
            return rc;
    }
    v = json_object_get(j, "headers");
    snprintf(sub, sizeof(sub), "%s.headers", path);
    if (v && (rc = load_headers(p, v, sub, err)))
        return rc;
    models = json_object_get(j, "models");
    snprintf(sub, sizeof(sub), "%s.models", path);
    if (models && !json_is_array(models))
        return ch_error_set(err, CH_EINVAL, "%s: expected an array", sub);
    if (json_array_size(models) > CH_LLM_MAX_MODELS)
        return ch_error_set(err, CH_EINVAL, "%s: more than %d models", sub, CH_LLM_MAX_MODELS);
    if (json_array_size(models) == 0)
        return add_default_model(p);
    p->models = ch_calloc(json_array_size(models), sizeof(*p->models));
    if (!p->models)
        return CH_ENOMEM;
    json_array_foreach(models, i, m)
    {
        snprintf(sub, sizeof(sub), "%s.models.%zu", path, i);
        rc = load_model(p, m, sub, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Environment shortcuts                                                */
/* ------------------------------------------------------------------ */

static const struct {
    const char *id;
    enum ch_llm_api api;
    const char *key_vars[2];
    const char *url_var;
} env_providers[LLM_ENV_PROVIDERS] = {
    {"anthropic", CH_LLM_ANTHROPIC, {"ANTHROPIC_API_KEY", NULL}, "ANTHROPIC_BASE_URL"},
    {"openai", CH_LLM_OPENAI, {"OPENAI_API_KEY", NULL}, "OPENAI_BASE_URL"},
    {"google", CH_LLM_GEMINI, {"GEMINI_API_KEY", "GOOGLE_API_KEY"}, "GEMINI_BASE_URL"},
};

int llm_load_env_provider(struct ch_llm_catalog *cat, size_t which, const char *const *env, struct ch_error *err)
{
    struct ch_llm_provider *p = &cat->providers[cat->provider_count];
    const char *keys = NULL, *var = NULL;
    size_t i;
    int rc;

    for (i = 0; i < 2 && !keys; i++)
        if (env_providers[which].key_vars[i])
            keys = llm_env_get(env, var = env_providers[which].key_vars[i]);
    if (!keys || ch_llm_catalog_provider(cat, env_providers[which].id))
        return 0; /* not set, or the config defines this id and wins */
    cat->provider_count++;
    p->id = ch_strdup(env_providers[which].id);
    p->api = env_providers[which].api;
    p->from_env = true;
    if (!p->id)
        return CH_ENOMEM;
    rc = set_base_url(p, llm_env_get(env, env_providers[which].url_var), env_providers[which].url_var, err);
    if (!rc)
        rc = add_key_list(p, keys, var, err);
    if (!rc)
        rc = add_default_model(p);
    return rc;
}
