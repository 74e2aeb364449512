/*
 * tokens_rest.c: /api/v1/tokens, the REST face of `chela token` (admin
 * scope).  Each handler queues a store job holding a reference on the
 * request and answers from the job's completion on the loop thread.
 */
#include <string.h>

#include "api/internal.h"

json_t *ch_token_rec_json(const struct ch_token_rec *t)
{
    char created[32], used[32], exp[32], scopes[64];
    json_t *arr = json_array(), *o;
    char *save = NULL, *tok;

    ch_scopes_format(t->scopes, scopes, sizeof(scopes));
    for (tok = strtok_r(scopes, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(tok));
    ch_time_iso8601(t->created_ms, created);
    if (t->last_used_ms)
        ch_time_iso8601(t->last_used_ms, used);
    if (t->expires_ms)
        ch_time_iso8601(t->expires_ms, exp);
    o = json_pack("{s:s, s:o, s:I, s:s, s:s?, s:s?, s:s?}", "name", t->name, "scopes", arr, "rateLimit",
                  (json_int_t)t->rate_limit_rpm, "createdAt", created, "lastUsedAt", t->last_used_ms ? used : NULL,
                  "expiresAt", t->expires_ms ? exp : NULL, "source", t->source);
    return o;
}

struct tok_job {
    struct ch_store_job job;
    struct ch_api *api;
    struct ch_http_req *req;   /* ref held */
    struct ch_token_rec rec;   /* create */
    char *secret;              /* create: shown once, wiped */
    char *name;                /* delete */
    struct ch_token_list list; /* list */
    struct ch_error err;
};

static void job_free(struct tok_job *j)
{
    ch_http_req_unref(j->req);
    ch_token_rec_release(&j->rec);
    ch_free_secret(j->secret);
    ch_free(j->name);
    ch_token_list_release(&j->list);
    ch_free(j);
}

static struct tok_job *job_new(struct ch_http_req *r, void *api)
{
    struct tok_job *j = ch_calloc(1, sizeof(*j));
    if (!j) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    j->api = api;
    j->req = r;
    ch_http_req_ref(r);
    return j;
}

static void submit(struct tok_job *j, bool write)
{
    int rc = write ? ch_store_write(j->api->store, &j->job) : ch_store_read(j->api->store, &j->job);
    if (rc) {
        ch_http_respond_error(j->req, 503, "store_busy", "the store's write queue is full; retry shortly");
        job_free(j);
    }
}

/* ---- GET ---- */
static int list_run(struct ch_db *db, struct ch_store_job *job)
{
    return ch_tokens_list(db, false, &((struct tok_job *)job)->list);
}

static void list_done(struct ch_store_job *job, int rc)
{
    struct tok_job *j = (struct tok_job *)job;
    json_t *arr;

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc) {
        ch_http_respond_error(j->req, 500, "store_error", "listing tokens failed: %s", ch_strerror(rc));
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(arr, ch_token_rec_json(&j->list.items[i]));
    ch_http_respond_json(j->req, 200, json_pack("{s:o}", "tokens", arr));
out:
    job_free(j);
}

void ch_tokens_rest_list(struct ch_http_req *r, void *data)
{
    struct tok_job *j = job_new(r, data);
    if (!j)
        return;
    j->job.run = list_run;
    j->job.done = list_done;
    submit(j, false);
}

/* ---- POST ---- */
static int create_run(struct ch_db *db, struct ch_store_job *job)
{
    struct tok_job *j = (struct tok_job *)job;
    int rc = ch_tokens_insert(db, &j->rec, &j->err);

    /* The new row's id, which the cache entry needs at once: a device
     * paired silently with this token ties its device token to it.  A
     * failed read leaves 0 (no tie until the 1 Hz refresh sets the id). */
    if (rc == 0 && ch_tokens_list(db, false, &j->list) == 0)
        for (size_t i = 0; i < j->list.count; i++)
            if (!strcmp(j->list.items[i].hash_hex, j->rec.hash_hex))
                j->rec.id = j->list.items[i].id;
    return rc;
}

static void create_done(struct ch_store_job *job, int rc)
{
    struct tok_job *j = (struct tok_job *)job;
    json_t *o;

    if (rc == 0)
        ch_auth_add_db(j->api, &j->rec); /* usable at once, not after the next refresh */
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_EEXIST) {
        ch_http_respond_error(j->req, 409, "conflict", "a live token named '%s' already exists; revoke it first",
                              j->rec.name);
        goto out;
    }
    if (rc == CH_EINVAL) { /* the store's own checks, which name the field */
        ch_http_respond_error(j->req, 400, "invalid_request", "%s", j->err.msg[0] ? j->err.msg : "invalid token");
        goto out;
    }
    if (rc) {
        ch_http_respond_error(j->req, 500, "store_error", "creating the token failed: %s", ch_strerror(rc));
        goto out;
    }
    /* The shape `chela token create --json` prints. */
    o = ch_token_rec_json(&j->rec);
    json_object_del(o, "lastUsedAt");
    json_object_del(o, "source");
    json_object_set_new(o, "token", json_string(j->secret));
    ch_http_respond_json(j->req, 201, o);
out:
    job_free(j);
}

static int parse_scopes(const json_t *v, unsigned *mask, struct ch_error *err)
{
    const json_t *s;
    size_t i;

    *mask = 0;
    if (json_is_string(v))
        return ch_scopes_parse(json_string_value(v), mask, err);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return ch_error_set(err, CH_EINVAL, "scope must be a non-empty array or a comma-separated string");
    json_array_foreach(v, i, s)
    {
        unsigned m;
        if (!json_is_string(s) || ch_scopes_parse(json_string_value(s), &m, err) != 0)
            return ch_error_set(err, CH_EINVAL, "scope entries must be chat, send, read or admin");
        *mask |= m;
    }
    return 0;
}

/* The store refuses names shaped like a secret (revoke takes either); the
 * same rule here answers 400 before a write. */
static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || !strncmp(n, "oc_tok_", 7))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-", n[i]))
            return false;
    return true;
}

void ch_tokens_rest_create(struct ch_http_req *r, void *data)
{
    struct ch_error err = {0};
    json_t *body, *rl, *sc, *ex;
    const char *name, *expires;
    struct tok_job *j;
    unsigned mask;
    int64_t now = ch_now_ms(), exp_ms = 0;

    if (ch_api_json_body(r, &body) != 0)
        return;
    name = json_string_value(json_object_get(body, "name"));
    sc = json_object_get(body, "scope");
    if (!sc)
        sc = json_object_get(body, "scopes");
    rl = json_object_get(body, "rateLimit");
    ex = json_object_get(body, "expires");
    expires = json_string_value(ex);
    if (!name || !valid_name(name)) {
        ch_http_respond_error(r, 400, "invalid_request",
                              "name is required: 1-64 characters of A-Z a-z 0-9 . _ : -, not starting oc_tok_");
        goto out;
    }
    if (parse_scopes(sc, &mask, &err) != 0) {
        ch_http_respond_error(r, 400, "invalid_request", "%s", err.msg);
        goto out;
    }
    if (rl && (!json_is_integer(rl) || json_integer_value(rl) < 0 || json_integer_value(rl) > 1000000)) {
        ch_http_respond_error(r, 400, "invalid_request", "rateLimit must be an integer from 0 to 1000000 (per minute)");
        goto out;
    }
    /* Anything but a duration string (or null: none) is a mistake, not
     * "never expires". */
    if ((ex && !json_is_null(ex) && !expires) ||
        (expires && (ch_parse_duration_ms(expires, &exp_ms) != 0 || exp_ms <= 0))) {
        ch_http_respond_error(r, 400, "invalid_request", "expires must be a duration such as 90d, 12h or 30m");
        goto out;
    }
    j = job_new(r, data);
    if (!j)
        goto out;
    j->secret = ch_random_token("oc_tok_", 43);
    j->rec.name = ch_strdup(name);
    j->rec.source = ch_strdup("api");
    if (!j->secret || !j->rec.name || !j->rec.source) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        goto out;
    }
    ch_sha256_hex(j->secret, strlen(j->secret), j->rec.hash_hex);
    j->rec.scopes = mask;
    j->rec.rate_limit_rpm = rl ? json_integer_value(rl) : 0;
    j->rec.created_ms = now;
    j->rec.expires_ms = exp_ms ? now + exp_ms : 0;
    j->job.run = create_run;
    j->job.done = create_done;
    submit(j, true);
out:
    json_decref(body);
}

/* ---- DELETE ---- */
static int delete_run(struct ch_db *db, struct ch_store_job *job)
{
    struct tok_job *j = (struct tok_job *)job;
    /* A name only: a path segment starting oc_tok_ would put a secret in
     * access logs, so revoking by secret is the CLI's job. */
    if (!strncmp(j->name, "oc_tok_", 7))
        return CH_EINVAL;
    return ch_tokens_revoke(db, j->name, ch_now_ms());
}

static void delete_done(struct ch_store_job *job, int rc)
{
    struct tok_job *j = (struct tok_job *)job;

    if (rc == 0)
        ch_auth_drop_name(j->api, j->name);
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == 0)
        ch_http_respond_json(j->req, 200, json_pack("{s:b, s:s}", "ok", 1, "name", j->name));
    else if (rc == CH_EINVAL) /* a secret, not a name: never echoed back */
        ch_http_respond_error(
            j->req, 404, "not_found",
            "no live token by that name; a token secret is not a name (revoke by secret with the CLI)");
    else if (rc == CH_ENOTFOUND)
        ch_http_respond_error(j->req, 404, "not_found", "no live token named '%s'", j->name);
    else
        ch_http_respond_error(j->req, 500, "store_error", "revoking failed: %s", ch_strerror(rc));
out:
    job_free(j);
}

void ch_tokens_rest_delete(struct ch_http_req *r, void *data)
{
    char dec[128];
    struct tok_job *j;

    if (ch_api_path_param(r, 0, dec, sizeof(dec)) != 0)
        return; /* answered */
    j = job_new(r, data);
    if (!j)
        return;
    j->name = ch_strdup(dec);
    if (!j->name) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return;
    }
    j->job.run = delete_run;
    j->job.done = delete_done;
    submit(j, true);
}
