/*
 * test_catalog.c: the model catalog (catalog.c, catalog_load.c): config
 * providers and their validation (errors name the key path), environment
 * shortcuts with comma-separated key lists, LLM_PROVIDER / LLM_MODEL /
 * MAX_TOKENS / LLM_RETRY_COUNT, the config winning over env, aliases,
 * reference resolution (provider/model, alias, provider id, bare id,
 * unlisted models, ambiguity), call chains, the models listing, the reply
 * budget, and allocation failure at every step of a build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/client.h"

/* A config whose root is the given JSON (the loader's defaults are not
 * needed: the catalog reads only its own keys). */
struct tcfg {
    struct ch_config cfg;
};

static struct ch_config *cfg_new(const char *json)
{
    struct tcfg *t = calloc(1, sizeof(*t));
    json_error_t je;

    assert_non_null(t);
    t->cfg.root = json_loads(json, 0, &je);
    if (!t->cfg.root)
        fail_msg("bad test JSON: %s (line %d)", je.text, je.line);
    return &t->cfg;
}

static void cfg_free(struct ch_config *c)
{
    json_decref(c->root);
    free(c);
}

static const char *const no_env[] = {NULL};

static struct ch_llm_catalog *build(const char *json, const char *const *env)
{
    struct ch_config *c = json ? cfg_new(json) : NULL;
    struct ch_llm_catalog *cat = NULL;
    struct ch_error err = {0};
    int rc = ch_llm_catalog_new(c, env ? env : no_env, &cat, &err);

    if (rc)
        fail_msg("catalog_new: %d %s", rc, err.msg);
    if (c)
        cfg_free(c);
    return cat;
}

/* Expect a build failure whose message starts with want. */
static void build_fails(const char *json, const char *const *env, const char *want)
{
    struct ch_config *c = json ? cfg_new(json) : NULL;
    struct ch_llm_catalog *cat = (void *)1;
    struct ch_error err = {0};

    assert_int_equal(ch_llm_catalog_new(c, env ? env : no_env, &cat, &err), CH_EINVAL);
    assert_null(cat);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("expected '%s...', got '%s'", want, err.msg);
    if (c)
        cfg_free(c);
}

static void expect_ref(const struct ch_llm_catalog *cat, const char *ref, const char *want)
{
    struct ch_llm_target t;
    struct ch_error err = {0};

    if (ch_llm_catalog_resolve(cat, ref, &t, &err))
        fail_msg("resolve(%s): %s", ref ? ref : "NULL", err.msg);
    assert_string_equal(t.ref, want);
}

/* ------------------------------------------------------------------ */

static void test_env_shortcuts(void **state)
{
    const char *env[] = {"ANTHROPIC_API_KEY=sk-ant-a, sk-ant-b,,sk-ant-c, sk-ant-a",
                         "OPENAI_API_KEY=sk-o1",
                         "OPENAI_BASE_URL=http://localhost:11434/v1//",
                         "GOOGLE_API_KEY=AIza-g",
                         "UNRELATED=1",
                         NULL};
    struct ch_llm_catalog *cat = build(NULL, env);
    const struct ch_llm_provider *p;
    struct ch_llm_target t;

    (void)state;
    assert_int_equal(cat->provider_count, 3);
    p = ch_llm_catalog_provider(cat, "anthropic");
    assert_non_null(p);
    assert_true(p->from_env);
    assert_int_equal(p->api, CH_LLM_ANTHROPIC);
    assert_int_equal(p->key_count, 3); /* trimmed, empties and duplicates dropped */
    assert_string_equal(p->keys[0], "sk-ant-a");
    assert_string_equal(p->keys[1], "sk-ant-b");
    assert_string_equal(p->keys[2], "sk-ant-c");
    assert_string_equal(p->base_url, "https://api.anthropic.com");
    assert_int_equal(p->model_count, 1);
    assert_string_equal(p->models[0].id, "claude-sonnet-4-20250514");
    assert_int_equal(p->models[0].context_window, 200000);
    p = ch_llm_catalog_provider(cat, "openai");
    assert_string_equal(p->base_url, "http://localhost:11434/v1");
    assert_string_equal(p->models[0].id, "gpt-4o");
    assert_int_equal(p->models[0].context_window, 128000);
    p = ch_llm_catalog_provider(cat, "google");
    assert_int_equal(p->api, CH_LLM_GEMINI);
    assert_string_equal(p->keys[0], "AIza-g"); /* GOOGLE_API_KEY when GEMINI_ is unset */
    assert_string_equal(p->models[0].id, "gemini-2.5-flash");
    assert_int_equal(p->models[0].context_window, 1048576);
    /* The default is the first provider's model; the pricing is built in. */
    assert_int_equal(cat->chain_count, 1);
    assert_string_equal(cat->chain[0], "anthropic/claude-sonnet-4-20250514");
    assert_int_equal(ch_llm_catalog_resolve(cat, NULL, &t, NULL), 0);
    assert_true(t.pricing.input == 3 && t.pricing.output == 15);
    assert_int_equal(cat->settings.retry_count, 3);
    assert_int_equal(cat->settings.default_max_tokens, 0);
    ch_llm_catalog_unref(cat);
}

static void test_env_provider_and_model(void **state)
{
    const char *e1[] = {"OPENAI_API_KEY=a", "GEMINI_API_KEY=g1,g2", "GOOGLE_API_KEY=ignored", "LLM_PROVIDER=gemini",
                        NULL};
    const char *e2[] = {"OPENAI_API_KEY=a",
                        "GEMINI_API_KEY=g",
                        "LLM_PROVIDER=google",
                        "LLM_MODEL=gemini-2.5-pro",
                        "MAX_TOKENS=2048",
                        "LLM_RETRY_COUNT=5",
                        NULL};
    const char *e3[] = {"OPENAI_API_KEY=a", "LLM_MODEL=llama3.1:8b", NULL};
    const char *e4[] = {"OPENAI_API_KEY=a", "LLM_PROVIDER=mistral", NULL};
    struct ch_llm_catalog *cat;
    struct ch_llm_target t;
    struct ch_error err;

    (void)state;
    cat = build(NULL, e1);
    assert_string_equal(cat->chain[0], "google/gemini-2.5-flash");
    assert_int_equal(ch_llm_catalog_provider(cat, "google")->key_count, 2);
    ch_llm_catalog_unref(cat);

    cat = build(NULL, e2);
    assert_string_equal(cat->chain[0], "google/gemini-2.5-pro");
    assert_int_equal(cat->settings.default_max_tokens, 2048);
    assert_int_equal(cat->settings.retry_count, 5);
    ch_llm_catalog_unref(cat);

    /* A bare id nobody lists goes to the first provider. */
    cat = build(NULL, e3);
    assert_string_equal(cat->chain[0], "openai/llama3.1:8b");
    assert_int_equal(ch_llm_catalog_resolve(cat, NULL, &t, NULL), 0);
    assert_int_equal(t.context_window, CH_LLM_DEF_CONTEXT_WINDOW);
    assert_true(t.pricing.input == 0 && t.pricing.output == 0);
    assert_false(t.is_listed);
    ch_llm_catalog_unref(cat);

    /* A provider that does not exist does not stop the start; calls say why. */
    cat = build(NULL, e4);
    assert_string_equal(cat->chain[0], "mistral");
    assert_int_equal(ch_llm_catalog_resolve(cat, NULL, &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'mistral'"));
    assert_non_null(strstr(err.msg, "providers: openai"));
    ch_llm_catalog_unref(cat);

    build_fails(NULL, (const char *[]){"MAX_TOKENS=lots", NULL}, "MAX_TOKENS: expected");
    build_fails(NULL, (const char *[]){"MAX_TOKENS=0", NULL}, "MAX_TOKENS: expected");
    build_fails(NULL, (const char *[]){"LLM_RETRY_COUNT=11", NULL}, "LLM_RETRY_COUNT:");
    build_fails(NULL, (const char *[]){"OPENAI_API_KEY=a", "OPENAI_BASE_URL=ftp://x", NULL},
                "OPENAI_BASE_URL: expected an http");
}

static void test_nothing_configured(void **state)
{
    struct ch_llm_catalog *cat = build("{}", NULL);
    struct ch_llm_target t;
    struct ch_error err;
    json_t *list;

    (void)state;
    assert_int_equal(cat->provider_count, 0);
    assert_int_equal(cat->chain_count, 0);
    assert_int_equal(ch_llm_catalog_resolve(cat, NULL, &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "ANTHROPIC_API_KEY"));
    assert_int_equal(ch_llm_catalog_resolve(cat, "gpt-4o", &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "providers: none"));
    list = ch_llm_catalog_models_json(cat);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    ch_llm_catalog_unref(cat);
}

static const char *full_config =
    "{\"models\": {\"providers\": {"
    "  \"anthropic\": {\"api\": \"anthropic-messages\", \"apiKey\": \"cfg-key\","
    "    \"apiKeys\": [\"k2\", \"cfg-key\", \"\"]},"
    "  \"openai\": {\"api\": \"openai-completions\", \"baseUrl\": \"https://gw.example/v1/\","
    "    \"apiKey\": \"o\", \"headers\": {\"X-Org\": \"acme\"},"
    "    \"models\": [{\"id\": \"gpt-4o\", \"name\": \"GPT-4o\", \"contextWindow\": 128000,"
    "                  \"maxTokens\": 16384,"
    "                  \"pricing\": {\"input\": 2, \"output\": 8, \"cacheRead\": 1}},"
    "                 {\"id\": \"shared-model\", \"cost\": {\"input\": 0.5}}]},"
    "  \"local\": {\"baseUrl\": \"http://127.0.0.1:11434/v1\","
    "    \"models\": [{\"id\": \"shared-model\"}, {\"id\": \"llama3.1:8b\", \"contextWindow\": 8192}]}"
    "}, \"retry\": {\"count\": 1, \"baseDelayMs\": 10, \"maxDelayMs\": 100},"
    "   \"circuitBreaker\": {\"failureThreshold\": 2, \"cooldownMs\": 500},"
    "   \"timeouts\": {\"firstByteMs\": 5000, \"callMs\": 60000}},"
    " \"agents\": {\"defaults\": {"
    "  \"model\": {\"primary\": \"gpt\", \"fallbacks\": [\"anthropic\", \"local/llama3.1:8b\","
    "     \"openai/gpt-4o\", \"nowhere/x\"]},"
    "  \"models\": {\"openai/gpt-4o\": {\"alias\": \"gpt\", \"params\": {\"temperature\": 0.2,"
    "                                                     \"maxTokens\": 1000}},"
    "              \"local/llama3.1:8b\": {\"alias\": \"Llama\"},"
    "              \"anthropic/claude-opus-4-20250514\": {\"params\": {}}}}}}";

static void test_config_providers(void **state)
{
    const char *env[] = {"ANTHROPIC_API_KEY=env-key", "LLM_RETRY_COUNT=7", NULL};
    struct ch_llm_catalog *cat = build(full_config, env);
    const struct ch_llm_provider *p;
    struct ch_llm_target t;

    (void)state;
    assert_int_equal(cat->provider_count, 3);
    /* The config's anthropic wins over ANTHROPIC_API_KEY entirely. */
    p = ch_llm_catalog_provider(cat, "anthropic");
    assert_false(p->from_env);
    assert_int_equal(p->key_count, 2);
    assert_string_equal(p->keys[0], "cfg-key");
    assert_string_equal(p->keys[1], "k2");
    assert_string_equal(p->models[0].id, "claude-sonnet-4-20250514");
    p = ch_llm_catalog_provider(cat, "openai");
    assert_string_equal(p->base_url, "https://gw.example/v1");
    assert_string_equal(json_string_value(json_object_get(p->headers, "X-Org")), "acme");
    assert_int_equal(p->model_count, 2);
    assert_true(p->models[0].pricing.input == 2 && p->models[0].pricing.cache_read == 1 &&
                p->models[0].pricing.cache_write == 0);
    assert_true(p->models[1].pricing.input == 0.5 && p->models[1].has_pricing);
    p = ch_llm_catalog_provider(cat, "local");
    assert_int_equal(p->api, CH_LLM_OPENAI); /* guessed from an unknown id */
    assert_int_equal(p->key_count, 0);
    /* Settings: the config's retry count wins over LLM_RETRY_COUNT. */
    assert_int_equal(cat->settings.retry_count, 1);
    assert_int_equal(cat->settings.backoff_base_ms, 10);
    assert_int_equal(cat->settings.breaker_threshold, 2);
    assert_int_equal(cat->settings.breaker_cooldown_ms, 500);
    assert_int_equal(cat->settings.first_byte_timeout_ms, 5000);
    assert_int_equal(cat->settings.idle_timeout_ms, CH_CURLM_DEF_IDLE_TIMEOUT_MS);
    assert_int_equal(cat->settings.call_timeout_ms, 60000);
    /* The chain: canonical refs, unresolvable entries kept as written. */
    assert_int_equal(cat->chain_count, 4); /* openai/gpt-4o appears once */
    assert_string_equal(cat->chain[0], "openai/gpt-4o");
    assert_string_equal(cat->chain[1], "anthropic/claude-sonnet-4-20250514");
    assert_string_equal(cat->chain[2], "local/llama3.1:8b");
    assert_string_equal(cat->chain[3], "nowhere/x");

    expect_ref(cat, NULL, "openai/gpt-4o");
    expect_ref(cat, "", "openai/gpt-4o");
    expect_ref(cat, "GPT", "openai/gpt-4o"); /* aliases are case-insensitive */
    expect_ref(cat, "llama", "local/llama3.1:8b");
    expect_ref(cat, "local", "local/shared-model");
    expect_ref(cat, "llama3.1:8b", "local/llama3.1:8b");
    expect_ref(cat, "anthropic/claude-opus-4-20250514", "anthropic/claude-opus-4-20250514");
    assert_int_equal(ch_llm_catalog_resolve(cat, "gpt", &t, NULL), 0);
    assert_string_equal(t.model_id, "gpt-4o");
    assert_string_equal(t.name, "GPT-4o");
    assert_true(t.is_listed);
    assert_int_equal(t.max_tokens, 16384);
    assert_true(json_number_value(json_object_get(t.params, "temperature")) == 0.2);
    assert_int_equal(ch_llm_target_reply_budget(cat, &t, 0), 1000);      /* params.maxTokens */
    assert_int_equal(ch_llm_target_reply_budget(cat, &t, 50000), 16384); /* model cap */
    /* Unlisted models of known providers: built-in or default limits. */
    assert_int_equal(ch_llm_catalog_resolve(cat, "openai/gpt-4.1-mini", &t, NULL), 0);
    assert_false(t.is_listed);
    assert_int_equal(t.context_window, 1047576);
    assert_true(t.pricing.input == 0.4);
    assert_int_equal(ch_llm_catalog_resolve(cat, "local/phi-3", &t, NULL), 0);
    assert_int_equal(t.context_window, 128000);
    assert_int_equal(ch_llm_target_reply_budget(cat, &t, 0), CH_LLM_DEF_MAX_TOKENS);
    assert_null(t.params);
    assert_int_equal(ch_llm_catalog_resolve(cat, "anthropic/claude-opus-4-20250514", &t, NULL), 0);
    assert_non_null(t.params);
    assert_true(t.pricing.input == 15);
    ch_llm_catalog_unref(cat);
}

static void test_resolve_errors(void **state)
{
    struct ch_llm_catalog *cat = build(full_config, NULL);
    struct ch_llm_target t;
    struct ch_error err;
    char longref[400];

    (void)state;
    assert_int_equal(ch_llm_catalog_resolve(cat, "shared-model", &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "ambiguous"));
    assert_int_equal(ch_llm_catalog_resolve(cat, "no-such-model", &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unknown model 'no-such-model'"));
    assert_non_null(strstr(err.msg, "providers: anthropic, openai, local"));
    assert_non_null(strstr(err.msg, "aliases: gpt, Llama"));
    assert_int_equal(ch_llm_catalog_resolve(cat, "mistral/large", &t, &err), CH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unknown provider"));
    assert_int_equal(ch_llm_catalog_resolve(cat, "openai/", &t, &err), CH_ENOTFOUND);
    memset(longref, 'x', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    memcpy(longref, "openai/", 7);
    assert_int_equal(ch_llm_catalog_resolve(cat, longref, &t, &err), CH_EINVAL);
    /* A ref just under the cap but too long once prefixed is refused cleanly. */
    longref[CH_LLM_MAX_REF_BYTES - 1] = '\0';
    assert_int_equal(ch_llm_catalog_resolve(cat, longref + 7, &t, &err), CH_ENOTFOUND);
    ch_llm_catalog_unref(cat);
}

static void test_chain(void **state)
{
    struct ch_llm_catalog *cat = build(full_config, NULL);
    struct ch_llm_target t[CH_LLM_MAX_CHAIN];
    const char *fb[] = {"llama", "gpt", "nope/x", "anthropic/claude-sonnet-4-20250514"};
    struct ch_error err;
    size_t n = 99;

    (void)state;
    assert_int_equal(ch_llm_catalog_chain(cat, NULL, NULL, 0, t, &n, &err), 0);
    assert_int_equal(n, 3); /* "nowhere/x" is skipped at call time */
    assert_string_equal(t[0].ref, "openai/gpt-4o");
    assert_string_equal(t[1].ref, "anthropic/claude-sonnet-4-20250514");
    assert_string_equal(t[2].ref, "local/llama3.1:8b");
    /* An explicit model keeps the catalog's fallbacks (not its primary),
     * minus itself. */
    assert_int_equal(ch_llm_catalog_chain(cat, "llama", NULL, 0, t, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(t[0].ref, "local/llama3.1:8b");
    assert_string_equal(t[1].ref, "anthropic/claude-sonnet-4-20250514");
    /* Explicit fallbacks replace them; an empty list means none. */
    assert_int_equal(ch_llm_catalog_chain(cat, "anthropic", fb, 4, t, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[1].ref, "local/llama3.1:8b");
    assert_string_equal(t[2].ref, "openai/gpt-4o");
    assert_int_equal(ch_llm_catalog_chain(cat, "gpt", fb, 0, t, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_llm_catalog_chain(cat, "nope/x", NULL, 0, t, &n, &err), CH_ENOTFOUND);
    ch_llm_catalog_unref(cat);
}

static json_t *find_model(json_t *list, const char *id)
{
    json_t *m;
    size_t i;

    json_array_foreach(list, i, m) if (strcmp(json_string_value(json_object_get(m, "id")), id) == 0) return m;
    fail_msg("model %s not listed", id);
    return NULL;
}

static void test_models_json(void **state)
{
    struct ch_llm_catalog *cat = build(full_config, NULL);
    json_t *list = ch_llm_catalog_models_json(cat), *m;

    (void)state;
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 5);
    m = find_model(list, "openai/gpt-4o");
    assert_true(json_is_true(json_object_get(m, "isDefault")));
    assert_string_equal(json_string_value(json_object_get(m, "provider")), "openai");
    assert_string_equal(json_string_value(json_object_get(m, "name")), "GPT-4o");
    assert_int_equal(json_integer_value(json_object_get(m, "contextWindow")), 128000);
    assert_int_equal(json_integer_value(json_object_get(m, "maxTokens")), 16384);
    assert_true(json_real_value(json_object_get(json_object_get(m, "pricing"), "output")) == 8);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "aliases"), 0)), "gpt");
    m = find_model(list, "local/llama3.1:8b");
    assert_true(json_is_true(json_object_get(m, "isFallback")));
    assert_false(json_is_true(json_object_get(m, "isDefault")));
    m = find_model(list, "anthropic/claude-sonnet-4-20250514");
    assert_true(json_is_true(json_object_get(m, "isFallback")));
    find_model(list, "openai/shared-model");
    find_model(list, "local/shared-model");
    json_decref(list);
    ch_llm_catalog_unref(cat);

    /* A default nobody listed is still shown. */
    cat = build(NULL, (const char *[]){"OPENAI_API_KEY=x", "LLM_MODEL=gpt-4.1", NULL});
    list = ch_llm_catalog_models_json(cat);
    assert_int_equal(json_array_size(list), 2);
    m = find_model(list, "openai/gpt-4.1");
    assert_true(json_is_true(json_object_get(m, "isDefault")));
    assert_false(json_is_true(json_object_get(m, "isListed")));
    json_decref(list);
    ch_llm_catalog_unref(cat);
}

static void test_config_errors(void **state)
{
    (void)state;
    build_fails("{\"models\": {\"providers\": []}}", NULL, "models.providers: expected an object");
    build_fails("{\"models\": {\"providers\": {\"a b\": {}}}}", NULL, "models.providers.a b:");
    build_fails("{\"models\": {\"providers\": {\"x\": 3}}}", NULL, "models.providers.x: expected an object");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"api\": \"soap\"}}}}", NULL,
                "models.providers.x.api: expected");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"baseUrl\": \"file:///etc\"}}}}", NULL,
                "models.providers.x.baseUrl: expected an http");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"apiKey\": 5}}}}", NULL,
                "models.providers.x.apiKey: expected a string");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"apiKeys\": [\"a\", 2]}}}}", NULL,
                "models.providers.x.apiKeys.1: expected a string");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"apiKey\": \"a\\nb\"}}}}", NULL,
                "models.providers.x.apiKey: a key contains a control");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"headers\": {\"A\": 1}}}}}", NULL,
                "models.providers.x.headers.A:");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": {}}}}}", NULL,
                "models.providers.x.models: expected an array");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": [{\"id\": \"a\"},"
                "{\"id\": \"b\", \"contextWindow\": \"big\"}]}}}}",
                NULL, "models.providers.x.models.1.contextWindow: expected an integer");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": [{\"name\": \"n\"}]}}}}", NULL,
                "models.providers.x.models.0.id: expected");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": [{\"id\": \"a\"},"
                "{\"id\": \"a\"}]}}}}",
                NULL, "models.providers.x.models.1.id: model 'a' is listed twice");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": [{\"id\": \"a\", "
                "\"pricing\": {\"input\": -1}}]}}}}",
                NULL, "models.providers.x.models.0.pricing.input: expected a number");
    build_fails("{\"models\": {\"providers\": {\"x\": {\"models\": [{\"id\": \"a\", "
                "\"maxTokens\": 0}]}}}}",
                NULL, "models.providers.x.models.0.maxTokens:");
    build_fails("{\"models\": {\"retry\": {\"count\": 11}}}", NULL, "models.retry.count:");
    build_fails("{\"models\": {\"retry\": {\"baseDelayMs\": 100, \"maxDelayMs\": 10}}}", NULL,
                "models.retry.maxDelayMs: smaller");
    build_fails("{\"models\": {\"circuitBreaker\": {\"failureThreshold\": 0}}}", NULL,
                "models.circuitBreaker.failureThreshold:");
    build_fails("{\"models\": {\"timeouts\": {\"idleMs\": true}}}", NULL, "models.timeouts.idleMs:");
    build_fails("{\"agents\": {\"defaults\": {\"model\": 5}}}", NULL, "agents.defaults.model:");
    build_fails("{\"agents\": {\"defaults\": {\"model\": {\"primary\": 1}}}}", NULL, "agents.defaults.model.primary:");
    build_fails("{\"agents\": {\"defaults\": {\"model\": {\"fallbacks\": [\"a/b\", 2]}}}}", NULL,
                "agents.defaults.model.fallbacks.1:");
    build_fails("{\"agents\": {\"defaults\": {\"models\": {\"gpt\": {}}}}}", NULL,
                "agents.defaults.models.gpt: keys are");
    build_fails("{\"agents\": {\"defaults\": {\"models\": {\"a/b\": {\"alias\": \"x/y\"}}}}}", NULL,
                "agents.defaults.models.a/b.alias:");
    build_fails("{\"agents\": {\"defaults\": {\"models\": {\"a/b\": {\"alias\": \"x\"},"
                "\"a/c\": {\"alias\": \"X\"}}}}}",
                NULL, "agents.defaults.models.a/c.alias: 'X' is also the alias of a/b");
    build_fails("{\"agents\": {\"defaults\": {\"models\": {\"a/b\": {\"params\": 1}}}}}", NULL,
                "agents.defaults.models.a/b.params:");
}

/* Fail allocation N for N = 1, 2, ... until the build succeeds: every
 * failure is clean (CH_ENOMEM, nothing leaked). */
static void test_alloc_failures(void **state)
{
    const char *env[] = {"ANTHROPIC_API_KEY=a,b", "GEMINI_API_KEY=g", NULL};
    struct ch_config *c = cfg_new(full_config);
    struct ch_llm_catalog *cat;
    size_t blocks = ch_alloc_live_blocks();
    long n;
    int rc = CH_ENOMEM;

    (void)state;
    for (n = 1; n < 10000 && rc; n++) {
        cat = NULL;
        ch_alloc_fail_after(n);
        rc = ch_llm_catalog_new(c, env, &cat, NULL);
        ch_alloc_fail_after(0);
        if (rc) {
            assert_int_equal(rc, CH_ENOMEM);
            assert_null(cat);
            assert_int_equal(ch_alloc_live_blocks(), blocks);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 20);
    ch_llm_catalog_unref(cat);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_shortcuts),      cmocka_unit_test(test_env_provider_and_model),
        cmocka_unit_test(test_nothing_configured), cmocka_unit_test(test_config_providers),
        cmocka_unit_test(test_resolve_errors),     cmocka_unit_test(test_chain),
        cmocka_unit_test(test_models_json),        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_alloc_failures),
    };

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
