/*
 * embed.c: text embeddings through a configured provider (the gateway's
 * POST /v1/embeddings).
 *
 *   openai-completions:   POST {base}/embeddings {model, input: [..],
 *                         dimensions?, user?} -> {data: [{index,
 *                         embedding}], usage: {prompt_tokens}}
 *   google-generative-ai: POST {base}/v1beta/models/{id}:batchEmbedContents
 *                         {requests: [{model: "models/<id>", content:
 *                         {parts: [{text}]}, outputDimensionality?}]} ->
 *                         {embeddings: [{values}]}
 *   anthropic-messages:   Anthropic has no embeddings API: CH_EINVAL.
 *
 * Keys come from the provider's ring, as for chat calls: a 429 cools the
 * key down and an auth failure benches it, and the request goes again at
 * once with another key while one is free (seed 000's complaint was a
 * 429 stalling everything while other keys were idle).  No backoff
 * retries and no fallback model: vectors of another model would not be
 * comparable with the caller's.
 */
#include <string.h>

#include "providers/client_int.h"
#include "providers/internal.h"

#define EMBED_MAX_RESPONSE (64u << 20) /* 2048 inputs x 3072 floats as JSON fit */
#define EMBED_TIMEOUT_MS 60000

struct ch_llm_embed {
    struct ch_llm_client *client;
    struct llm_gen *gen; /* ref: the catalog the target points into */
    struct ch_llm_target t;
    json_t *inputs; /* ref: array of strings */
    int64_t dimensions;
    char *user;
    ch_llm_embed_cb cb;
    void *data;
    struct ch_curlm_req *req;
    struct ch_llm_http http;
    struct ch_buf body;
    size_t key;
    bool has_key;
    unsigned attempts;
};

static void embed_free(struct ch_llm_embed *e)
{
    ch_llm_http_release(&e->http);
    ch_buf_release(&e->body);
    json_decref(e->inputs);
    ch_free(e->user);
    llm_gen_unref(e->gen);
    ch_free(e);
}

static void finish(struct ch_llm_embed *e, const struct ch_llm_embed_result *res)
{
    e->cb(res, e->data);
    embed_free(e);
}

static void fail(struct ch_llm_embed *e, int rc, long status, enum ch_llm_err err, const char *msg)
{
    struct ch_llm_embed_result res = {.rc = rc, .status = status, .err = err, .message = msg};

    res.provider = e->t.provider->id;
    res.model = e->t.model_id;
    finish(e, &res);
}

static int build_body(struct ch_llm_embed *e, struct ch_error *err)
{
    json_t *b, *reqs, *v;
    size_t i;

    if (e->t.provider->api == CH_LLM_OPENAI) {
        b = json_pack("{s:s, s:O}", "model", e->t.model_id, "input", e->inputs);
        if (b && e->dimensions > 0)
            json_object_set_new(b, "dimensions", json_integer(e->dimensions));
        if (b && e->user)
            json_object_set_new(b, "user", json_string(e->user));
    } else {
        char name[CH_LLM_MAX_REF_BYTES + 8];
        snprintf(name, sizeof(name), "models/%s", e->t.model_id);
        reqs = json_array();
        json_array_foreach(e->inputs, i, v)
        {
            json_t *r = json_pack("{s:s, s:{s:[{s:O}]}}", "model", name, "content", "parts", "text", v);
            if (r && e->dimensions > 0)
                json_object_set_new(r, "outputDimensionality", json_integer(e->dimensions));
            json_array_append_new(reqs, r);
        }
        b = json_pack("{s:o}", "requests", reqs);
    }
    e->http.body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!e->http.body)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    e->http.body_len = strlen(e->http.body);
    return 0;
}

/* The request for one attempt: the URL, the key's header, the body. */
static int build(struct ch_llm_embed *e, const char *key, struct ch_error *err)
{
    const struct ch_llm_provider *p = e->t.provider;
    char *path;
    const char *k;
    json_t *v;
    int rc;

    ch_llm_http_release(&e->http);
    memset(&e->http, 0, sizeof(e->http));
    e->http.method = "POST";
    if (p->api == CH_LLM_OPENAI) {
        rc = llm_set_url(&e->http, p->api, p->base_url, "/embeddings", "/embeddings", err);
        if (!rc && key && *key) {
            char *auth = ch_str_join(CH_STR("Bearer "), key);
            rc = auth ? llm_add_header(&e->http, "authorization", auth, true, err) : CH_ENOMEM;
            ch_free_secret(auth);
        }
    } else {
        path = llm_gemini_model_path(e->t.model_id, ":batchEmbedContents");
        rc = path ? llm_set_url(&e->http, p->api, p->base_url, "/v1beta", path, err) : CH_ENOMEM;
        ch_free(path);
        if (!rc && key && *key)
            rc = llm_add_header(&e->http, "x-goog-api-key", key, true, err);
    }
    if (!rc)
        rc = llm_add_header(&e->http, "content-type", "application/json", false, err);
    json_object_foreach(p->headers, k, v)
    {
        if (!rc && json_is_string(v))
            rc = llm_add_header(&e->http, k, json_string_value(v), false, err);
    }
    return rc ? rc : build_body(e, err);
}

/* The vectors of a 2xx body, one per input in input order; NULL with msg. */
static json_t *vectors_of(struct ch_llm_embed *e, json_t *root, uint64_t *tokens, char *msg, size_t cap)
{
    size_t n = json_array_size(e->inputs), i;
    json_t *out = json_array(), *it, *vec;

    for (i = 0; i < n; i++)
        json_array_append_new(out, json_null());
    if (e->t.provider->api == CH_LLM_OPENAI) {
        *tokens = (uint64_t)json_integer_value(json_object_get(json_object_get(root, "usage"), "prompt_tokens"));
        json_array_foreach(json_object_get(root, "data"), i, it)
        {
            json_t *idx = json_object_get(it, "index");
            size_t at = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
            vec = json_object_get(it, "embedding");
            if (at < n && (json_is_array(vec) || json_is_string(vec)))
                json_array_set(out, at, vec);
        }
    } else {
        json_array_foreach(json_object_get(root, "embeddings"), i, it)
        {
            vec = json_object_get(it, "values");
            if (i < n && json_is_array(vec))
                json_array_set(out, i, vec);
        }
    }
    json_array_foreach(out, i, it)
    {
        if (json_is_null(it)) {
            snprintf(msg, cap, "%.200s answered without a vector for input %zu", e->t.ref, i);
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static int send_attempt(struct ch_llm_embed *e);

static int on_data(struct ch_curlm_req *req, const char *p, size_t len, void *data)
{
    struct ch_llm_embed *e = data;

    (void)req;
    return ch_buf_append(&e->body, p, len);
}

static void on_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct ch_llm_embed *e = data;
    struct ch_llm_keyring *ring = llm_gen_ring(e->gen, e->t.provider);
    struct ch_llm_embed_result out = {0};
    struct ch_llm_failure cf;
    char msg[300];
    json_t *root, *vecs;
    int64_t now = llm_client_now(e->client);

    (void)req;
    e->req = NULL;
    if (res->rc == 0 && res->status / 100 == 2) {
        if (e->has_key && ring)
            ch_llm_keyring_succeeded(ring, e->key);
        root = json_loadb(e->body.data ? e->body.data : "", e->body.len, 0, NULL);
        vecs = root ? vectors_of(e, root, &out.input_tokens, msg, sizeof(msg)) : NULL;
        if (!root)
            snprintf(msg, sizeof(msg), "%.200s answered with a body that is not JSON", e->t.ref);
        json_decref(root);
        if (!vecs) {
            fail(e, CH_EIO, res->status, CH_LLM_ERR_UNKNOWN, msg);
            return;
        }
        out.vectors = vecs;
        out.cost_usd = (double)out.input_tokens * e->t.pricing.input / 1e6;
        out.provider = e->t.provider->id;
        out.model = e->t.model_id;
        finish(e, &out);
        json_decref(vecs);
        return;
    }
    if (res->rc == CH_ECANCELED) {
        fail(e, CH_ECANCELED, 0, CH_LLM_ERR_UNKNOWN, "aborted");
        return;
    }
    if (res->rc == 0)
        ch_llm_classify_http(e->t.provider->api, (int)res->status, e->body.data, e->body.len, &cf);
    else
        ch_llm_classify_transport(res->rc, res->msg, &cf);
    if (e->has_key && ring && res->rc == 0) {
        if (cf.err == CH_LLM_ERR_RATE_LIMIT)
            ch_llm_keyring_rate_limited(ring, e->key, cf.retry_after_ms, now);
        else if (cf.err == CH_LLM_ERR_AUTH)
            ch_llm_keyring_auth_failed(ring, e->key, now);
        /* Another key may serve at once; bounded by the ring's size. */
        if ((cf.err == CH_LLM_ERR_RATE_LIMIT || cf.err == CH_LLM_ERR_AUTH) && e->attempts < ring->count &&
            ch_llm_keyring_has_free(ring, now, SIZE_MAX) && send_attempt(e) == 0)
            return;
    }
    fail(e, CH_EIO, res->rc == 0 ? res->status : 0, cf.err, cf.message);
}

static int send_attempt(struct ch_llm_embed *e)
{
    struct ch_llm_keyring *ring = llm_gen_ring(e->gen, e->t.provider);
    struct ch_curlm_request r = {0};
    struct ch_curlm_header *hdrs;
    struct ch_error err = {0};
    int64_t wait;
    size_t i;
    int rc;

    e->has_key = false;
    if (ring && ring->count) {
        rc = ch_llm_keyring_pick(ring, llm_client_now(e->client), &e->key, &wait);
        if (rc)
            return rc; /* every key is cooling down */
        e->has_key = true;
    }
    rc = build(e, e->has_key ? e->t.provider->keys[e->key] : NULL, &err);
    if (rc)
        return rc;
    /* Every configured header goes (a fixed array silently dropped the
     * ones past its size); curlm copies them at submit. */
    if (!(hdrs = ch_calloc(e->http.header_count + 1, sizeof(*hdrs))))
        return CH_ENOMEM;
    for (i = 0; i < e->http.header_count; i++)
        hdrs[i] = (struct ch_curlm_header){e->http.headers[i].name, e->http.headers[i].value};
    ch_buf_reset(&e->body);
    r.method = "POST";
    r.url = e->http.url;
    r.headers = hdrs;
    r.header_count = i;
    r.body = e->http.body;
    r.body_len = e->http.body_len;
    r.body_mode = CH_CURLM_BODY_BORROW; /* e->http lives until on_done */
    r.connect_timeout_ms = e->gen->cat->settings.connect_timeout_ms;
    r.first_byte_timeout_ms = EMBED_TIMEOUT_MS;
    r.idle_timeout_ms = EMBED_TIMEOUT_MS;
    r.total_timeout_ms = EMBED_TIMEOUT_MS;
    r.max_body_bytes = EMBED_MAX_RESPONSE;
    r.on_data = on_data;
    r.on_done = on_done;
    r.data = e;
    e->attempts++;
    rc = ch_curlm_submit(e->client->curlm, &r, &e->req, &err);
    ch_free(hdrs);
    return rc;
}

int ch_llm_embed_start(struct ch_llm_client *client, const char *ref, const json_t *inputs, int64_t dimensions,
                       const char *user, ch_llm_embed_cb cb, void *data, struct ch_llm_embed **out,
                       struct ch_error *err)
{
    struct ch_llm_embed *e;
    int rc;

    if (!client || !cb || !json_is_array(inputs) || !json_array_size(inputs))
        return ch_error_set(err, CH_EINVAL, "inputs must be a non-empty array");
    if (!(e = ch_calloc(1, sizeof(*e))))
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    e->client = client;
    e->gen = llm_gen_ref(client->gen);
    rc = ch_llm_catalog_resolve(e->gen->cat, ref, &e->t, err);
    if (rc) {
        embed_free(e);
        return rc;
    }
    if (e->t.provider->api == CH_LLM_ANTHROPIC) {
        rc = ch_error_set(err, CH_EINVAL, "%s is an Anthropic model: Anthropic has no embeddings API", e->t.ref);
        embed_free(e);
        return rc;
    }
    e->inputs = json_incref((json_t *)inputs);
    e->dimensions = dimensions;
    e->user = user ? ch_strdup(user) : NULL;
    e->cb = cb;
    e->data = data;
    ch_buf_init(&e->body, EMBED_MAX_RESPONSE);
    rc = send_attempt(e);
    if (rc) {
        ch_error_set(err, rc, "%s: cannot send the request (%s)", e->t.ref,
                     rc == CH_AGAIN || rc == CH_EPERM ? "every key is cooling down or disabled" : ch_strerror(rc));
        embed_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void ch_llm_embed_abort(struct ch_llm_embed *e)
{
    if (e && e->req)
        ch_curlm_abort(e->req);
}
