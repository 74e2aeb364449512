/*
 * Unit tests for OpenClaw device pairing (src/api/oc_pairing*.c) without
 * sockets or a store: the name/csv helpers, the hello-ok text members,
 * and whole connects through a buffer transport: a non-loopback device is
 * refused NOT_PAIRED with a pending request (reused, then approved), its
 * device token comes back in hello-ok and authenticates alone, a revoked
 * token is refused, a loopback device is paired silently, and the
 * registry answers list/reject/remove.  A silently paired device's token
 * answers to the API token that paired it (revoked, expired or narrowed
 * with it, charged to its rate limit) until an operator approves the
 * device; the pending queue gives each source a bounded share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/oc_internal.h"

static void test_names(void **state)
{
    char *csv = ch_oc_scopes_csv(OC_SCOPE_READ | OC_SCOPE_PAIRING);
    json_t *a = ch_oc_csv_json("operator.read,,operator.talk");
    struct oc_pair_grant g = {0};
    struct ch_buf b;
    (void)state;

    assert_string_equal(csv, "operator.read,operator.pairing");
    assert_int_equal(ch_oc_csv_scopes(csv), OC_SCOPE_READ | OC_SCOPE_PAIRING);
    assert_int_equal(ch_oc_csv_scopes("operator.talk,nope"), 0); /* unknown names grant nothing */
    assert_int_equal(json_array_size(a), 2);
    assert_true(ch_oc_csv_has("operator,node", "node"));
    assert_false(ch_oc_csv_has("operator", "worker"));
    assert_false(ch_oc_csv_has("operator", NULL));
    ch_free(csv);
    json_decref(a);

    ch_buf_init(&b, 256);
    assert_int_equal(ch_oc_pairing_hello_append(&b, &g), 0); /* no grant: nothing */
    assert_int_equal(b.len, 0);
    g.device_token = ch_strdup("tok-1");
    g.issued_ms = 42;
    assert_int_equal(ch_oc_pairing_hello_append(&b, &g), 0);
    assert_string_equal(b.data, ",\"deviceToken\":\"tok-1\",\"issuedAtMs\":42");
    ch_oc_pair_grant_release(&g);
    assert_null(g.device_token);
    ch_buf_release(&b);
}

/* ---- whole connects ---- */

struct tr {
    json_t *frames;
    int close_code;
    char reason[128];
    struct oc_conn *c;
};

static int tr_send(struct oc_conn *c, const char *p, size_t n)
{
    struct tr *t = c->transport;
    json_t *f = json_loadb(p, n, 0, NULL);
    assert_non_null(f);
    json_array_append_new(t->frames, f);
    return 0;
}

static void tr_close(struct oc_conn *c, uint16_t code, const char *reason)
{
    struct tr *t = c->transport;
    t->close_code = code;
    snprintf(t->reason, sizeof(t->reason), "%s", reason);
}

static const struct oc_conn_ops tr_ops = {tr_send, tr_close, NULL};

static struct ch_api *api_new(void)
{
    static struct ch_limits limits;
    struct ch_config_errors errs = {0};
    struct ch_config *cfg = NULL;
    struct ch_api_opts o = {0};
    struct ch_api *a = NULL;
    struct ch_error err = {0};

    setenv("CHELA_GATEWAY_TOKEN", "unit-token", 1);
    assert_int_equal(ch_config_load(NULL, &cfg, &errs), 0);
    ch_config_limits(cfg, &limits);
    o.cfg = cfg;
    o.limits = &limits;
    o.state_dir = "/tmp";
    assert_int_equal(ch_api_new(&o, &a, &err), 0);
    assert_non_null(a->oc->pairing); /* no store: memory only */
    return a;
}

static void api_free(struct ch_api *a)
{
    const struct ch_config *cfg = a->cfg;
    ch_api_free(a);
    ch_config_free((struct ch_config *)cfg);
}

struct dev {
    EVP_PKEY *k;
    char id[65], pub[64];
};

static void dev_init(struct dev *d)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    uint8_t raw[32];
    size_t rl = 32;

    d->k = NULL;
    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_keygen(kc, &d->k), 1);
    assert_int_equal(EVP_PKEY_get_raw_public_key(d->k, raw, &rl), 1);
    ch_sha256_hex(raw, 32, d->id);
    ch_base64url_encode(raw, 32, d->pub);
    EVP_PKEY_CTX_free(kc);
}

/* Connect d from addr (loopback when it is 127.0.0.1) with an auth
 * object and one scope. */
static json_t *dev_connect_at(struct ch_api *a, struct tr *t, struct dev *d, const char *addr, const char *auth_key,
                              const char *auth_val, const char *scope)
{
    bool loopback = !strcmp(addr, "127.0.0.1");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    json_t *scopes = json_pack("[s]", scope), *ch, *params, *frame;
    const char *nonce;
    int64_t now = ch_now_ms();
    uint8_t sig[64];
    size_t sl = 64;
    char sigb[100], *payload, *text;

    memset(t, 0, sizeof(*t));
    t->frames = json_array();
    t->c = ch_oc_conn_open(a->oc, &tr_ops, t, loopback, addr);
    ch_oc_send_challenge(t->c);
    ch = json_array_get(t->frames, 0);
    nonce = json_string_value(json_object_get(json_object_get(ch, "payload"), "nonce"));
    assert_non_null(nonce);
    payload = ch_oc_device_payload(3, d->id, "cli", "cli", "operator", scopes, now, auth_val, nonce, "linux", NULL);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, d->k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (const unsigned char *)payload, strlen(payload)), 1);
    ch_base64url_encode(sig, 64, sigb);
    params = json_pack("{s:i, s:i, s:{s:s, s:s, s:s, s:s}, s:s, s:o, s:{s:s}, s:{s:s, s:s, s:s, s:I, s:s}}",
                       "minProtocol", 4, "maxProtocol", 4, "client", "id", "cli", "version", "1", "platform", "linux",
                       "mode", "cli", "role", "operator", "scopes", scopes, "auth", auth_key, auth_val, "device", "id",
                       d->id, "publicKey", d->pub, "signature", sigb, "signedAt", (json_int_t)now, "nonce", nonce);
    frame = json_pack("{s:s, s:s, s:s, s:o}", "type", "req", "id", "c1", "method", "connect", "params", params);
    text = json_dumps(frame, JSON_COMPACT);
    ch_oc_conn_on_text(t->c, text, strlen(text));
    ch_free(text); /* jansson allocates through core/alloc */
    json_decref(frame);
    ch_free(payload);
    EVP_MD_CTX_free(md);
    return json_array_get(t->frames, json_array_size(t->frames) - 1);
}

static json_t *dev_connect(struct ch_api *a, struct tr *t, struct dev *d, bool loopback, const char *auth_key,
                           const char *auth_val, const char *scope)
{
    return dev_connect_at(a, t, d, loopback ? "127.0.0.1" : "192.0.2.7", auth_key, auth_val, scope);
}

static void tr_done(struct tr *t)
{
    ch_oc_conn_closed(t->c);
    json_decref(t->frames);
}

static const char *path_str(json_t *o, const char *a, const char *b, const char *c)
{
    o = json_object_get(o, a);
    if (b)
        o = json_object_get(o, b);
    if (c)
        o = json_object_get(o, c);
    return json_string_value(o);
}

static void test_pairing_flow(void **state)
{
    struct ch_api *a = api_new();
    struct oc_pairing *p = a->oc->pairing;
    struct tr t;
    struct dev d, local;
    json_t *r, *out = NULL;
    char rid[64], tok[128];
    (void)state;

    dev_init(&d);
    r = dev_connect(a, &t, &d, false, "token", "unit-token", "operator.read");
    assert_string_equal(path_str(r, "error", "code", NULL), "NOT_PAIRED");
    assert_string_equal(path_str(r, "error", "details", "reason"), "not-paired");
    snprintf(rid, sizeof(rid), "%s", path_str(r, "error", "details", "requestId"));
    assert_int_equal(t.close_code, 1008);
    assert_true(strstr(t.reason, rid) != NULL);
    tr_done(&t);
    assert_int_equal(p->pending.count, 1);
    assert_string_equal(p->pending.items[0].remote_ip, "192.0.2.7");
    /* Again: the same request. */
    r = dev_connect(a, &t, &d, false, "token", "unit-token", "operator.read");
    assert_string_equal(path_str(r, "error", "details", "requestId"), rid);
    tr_done(&t);
    assert_int_equal(p->pending.count, 1);

    assert_int_equal(ch_oc_pairing_approve(a->oc, "nope", &out), CH_ENOTFOUND);
    assert_int_equal(ch_oc_pairing_approve(a->oc, rid, &out), 0);
    assert_string_equal(path_str(out, "device", "deviceId", NULL), d.id);
    json_decref(out);
    assert_int_equal(p->pending.count, 0);
    assert_int_equal(p->devices.count, 1);

    r = dev_connect(a, &t, &d, false, "token", "unit-token", "operator.read");
    assert_true(json_is_true(json_object_get(r, "ok")));
    snprintf(tok, sizeof(tok), "%s", path_str(r, "payload", "auth", "deviceToken"));
    assert_true(strlen(tok) == 43);
    tr_done(&t);
    /* The token alone, and the same token back. */
    r = dev_connect(a, &t, &d, false, "deviceToken", tok, "operator.read");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(path_str(r, "payload", "auth", "deviceToken"), tok);
    tr_done(&t);
    /* Revoked: refused. */
    p->devices.items[0].tokens[0].revoked_ms = ch_now_ms();
    r = dev_connect(a, &t, &d, false, "deviceToken", tok, "operator.write");
    assert_string_equal(path_str(r, "error", "details", "code"), "AUTH_DEVICE_TOKEN_MISMATCH");
    assert_int_equal(t.close_code, 1008);
    tr_done(&t);

    /* While the registry loads at start, device connects wait (up to
     * OC_PAIR_PARKED_MAX of them) and are answered once it is in; beyond
     * that, the reference's startup answer. */
    p->loaded = false;
    static struct tr lot[OC_PAIR_PARKED_MAX];
    for (size_t i = 0; i < OC_PAIR_PARKED_MAX; i++) {
        r = dev_connect(a, &lot[i], &d, false, "token", "unit-token", "operator.read");
        assert_string_equal(json_string_value(json_object_get(r, "event")), "connect.challenge"); /* no answer yet */
        assert_int_equal(lot[i].close_code, 0);
        assert_true(lot[i].c->parked);
    }
    assert_int_equal(p->n_parked, OC_PAIR_PARKED_MAX);
    ch_oc_conn_on_text(lot[0].c, "{\"type\":\"req\"}", 14); /* dropped while parked */
    assert_int_equal(json_array_size(lot[0].frames), 1);
    r = dev_connect(a, &t, &d, true, "token", "unit-token", "operator.read");
    assert_string_equal(path_str(r, "error", "code", NULL), "UNAVAILABLE");
    assert_string_equal(path_str(r, "error", "details", "reason"), "startup-sidecars");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "retryAfterMs")), 500);
    assert_int_equal(t.close_code, 1013);
    tr_done(&t);
    lot[1].c->state = OC_CLOSING; /* went away while waiting: skipped */
    p->loaded = true;
    ch_oc_pairing_replay(p);
    assert_int_equal(p->n_parked, 0);
    assert_int_equal(json_array_size(lot[1].frames), 1);
    lot[1].c->state = OC_CHALLENGED;
    for (size_t i = 0; i < OC_PAIR_PARKED_MAX; i++) {
        if (i != 1) {
            r = json_array_get(lot[i].frames, json_array_size(lot[i].frames) - 1);
            assert_true(json_is_true(json_object_get(r, "ok")));
            assert_non_null(path_str(r, "payload", "auth", "deviceToken"));
        }
        assert_false(lot[i].c->parked);
        tr_done(&lot[i]);
    }

    /* Loopback: silent. */
    dev_init(&local);
    r = dev_connect(a, &t, &local, true, "token", "unit-token", "operator.admin");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_non_null(path_str(r, "payload", "auth", "deviceToken"));
    tr_done(&t);
    assert_int_equal(p->devices.count, 2);
    assert_string_equal(ch_oc_pairing_find(p, local.id)->approved_via, "silent");

    out = ch_oc_pairing_list_json(a->oc);
    assert_int_equal(json_array_size(json_object_get(out, "paired")), 2);
    json_decref(out);
    assert_int_equal(ch_oc_pairing_remove(a->oc, d.id, &out), 0);
    json_decref(out);
    assert_int_equal(ch_oc_pairing_remove(a->oc, d.id, &out), CH_ENOTFOUND);
    assert_int_equal(p->devices.count, 1);

    /* Reject drops the request. */
    r = dev_connect(a, &t, &d, false, "token", "unit-token", "operator.read");
    snprintf(rid, sizeof(rid), "%s", path_str(r, "error", "details", "requestId"));
    tr_done(&t);
    assert_string_equal(ch_oc_pairing_request_of(a->oc, d.id), rid);
    assert_int_equal(ch_oc_pairing_reject(a->oc, rid, &out), 0);
    json_decref(out);
    assert_null(ch_oc_pairing_request_of(a->oc, d.id));

    EVP_PKEY_free(d.k);
    EVP_PKEY_free(local.k);
    api_free(a);
}

/* ---- ties to API tokens ---- */

/* A token of the tokens table, as the cache holds it after a load. */
static struct ch_auth_entry *db_token(struct ch_api *a, int64_t id, const char *name, const char *secret,
                                      unsigned scopes)
{
    struct ch_token_rec rec = {0};

    rec.id = id;
    rec.name = (char *)name;
    ch_sha256_hex(secret, strlen(secret), rec.hash_hex);
    rec.scopes = scopes;
    assert_int_equal(ch_auth_add_db(a, &rec), 0);
    return ch_auth_find_id(a, id, ch_now_ms());
}

/* One request frame on an AUTHED connection; its answer. */
static json_t *call(struct tr *t, const char *method)
{
    char text[160];

    snprintf(text, sizeof(text), "{\"type\":\"req\",\"id\":\"q\",\"method\":\"%s\",\"params\":{}}", method);
    ch_oc_conn_on_text(t->c, text, strlen(text));
    return json_array_get(t->frames, json_array_size(t->frames) - 1);
}

static bool is_ok(json_t *r)
{
    return json_is_true(json_object_get(r, "ok"));
}

static const json_t *token_summary(struct ch_api *a, const char *device_id, json_t **doc)
{
    *doc = ch_oc_pairing_device_json(a->oc, ch_oc_pairing_find(a->oc->pairing, device_id));
    return json_array_get(json_object_get(*doc, "tokens"), 0);
}

static void test_silent_token_answers_to_its_api_token(void **state)
{
    struct ch_api *a = api_new();
    struct oc_pairing *p = a->oc->pairing;
    struct ch_auth_entry *ci = db_token(a, 7, "ci", "ci-secret", CH_SCOPE_READ | CH_SCOPE_CHAT);
    struct ch_auth_entry *brief = db_token(a, 8, "brief", "brief-secret", CH_SCOPE_READ);
    struct tr t, held;
    struct dev d, d2;
    char tok[128], tok2[128];
    const json_t *sum;
    json_t *r, *doc;
    (void)state;

    dev_init(&d);
    dev_init(&d2);
    /* Paired silently with API token #7: its device token records #7. */
    r = dev_connect(a, &t, &d, true, "token", "ci-secret", "operator.write");
    assert_true(is_ok(r));
    snprintf(tok, sizeof(tok), "%s", path_str(r, "payload", "auth", "deviceToken"));
    tr_done(&t);
    assert_string_equal(ch_oc_pairing_find(p, d.id)->approved_via, "silent");
    assert_int_equal(ch_oc_pairing_find(p, d.id)->tokens[0].api_token_id, 7);
    sum = token_summary(a, d.id, &doc);
    assert_int_equal(json_integer_value(json_object_get(sum, "apiTokenId")), 7);
    assert_string_equal(json_string_value(json_object_get(sum, "apiTokenName")), "ci");
    json_decref(doc);

    /* The device token alone: the connection holds #7, and pays into its
     * rate limit as #7's own connections do. */
    r = dev_connect(a, &held, &d, false, "deviceToken", tok, "operator.write");
    assert_true(is_ok(r));
    assert_ptr_equal(held.c->auth, ci);
    ci->rate_limit_rpm = 1;
    assert_true(is_ok(call(&held, "system-presence")));
    r = call(&held, "system-presence");
    assert_string_equal(path_str(r, "error", "details", "code"), "RATE_LIMITED");
    assert_string_equal(path_str(r, "error", "details", "limit"), "token");
    ci->rate_limit_rpm = 0;

    /* #7 narrowed to read: the connection holding write ends, and the
     * device token (approved for write alone) now gives nothing. */
    ci->scopes = CH_SCOPE_READ;
    ch_oc_auth_recheck(a);
    assert_int_equal(held.close_code, 1008);
    assert_string_equal(held.reason, "unauthorized: token scopes changed");
    tr_done(&held);
    r = dev_connect(a, &t, &d, false, "deviceToken", tok, "operator.write");
    assert_true(is_ok(r));
    assert_int_equal(json_array_size(json_object_get(json_object_get(json_object_get(r, "payload"), "auth"), "scopes")),
                     0);
    assert_int_equal(t.c->scopes, 0);
    tr_done(&t);

    /* #7 revoked: its device's open connection ends, the token is refused
     * as a revoked one is, and the listing keeps the id without a name. */
    ci->scopes = CH_SCOPE_READ | CH_SCOPE_CHAT; /* widened again: back to what the token holds */
    r = dev_connect(a, &held, &d, false, "deviceToken", tok, "operator.write");
    assert_true(is_ok(r));
    assert_int_equal(held.c->scopes, OC_SCOPE_WRITE);
    ch_auth_drop_name(a, "ci");
    assert_int_equal(held.close_code, 1008);
    assert_string_equal(held.reason, "unauthorized: token revoked");
    tr_done(&held);
    r = dev_connect(a, &t, &d, false, "deviceToken", tok, "operator.write");
    assert_string_equal(path_str(r, "error", "details", "code"), "AUTH_DEVICE_TOKEN_MISMATCH");
    assert_int_equal(t.close_code, 1008);
    tr_done(&t);
    sum = token_summary(a, d.id, &doc);
    assert_int_equal(json_integer_value(json_object_get(sum, "apiTokenId")), 7);
    assert_null(json_object_get(sum, "apiTokenName"));
    json_decref(doc);

    /* #8 expires: the same, for another device. */
    r = dev_connect(a, &t, &d2, true, "token", "brief-secret", "operator.read");
    snprintf(tok2, sizeof(tok2), "%s", path_str(r, "payload", "auth", "deviceToken"));
    tr_done(&t);
    r = dev_connect(a, &held, &d2, false, "deviceToken", tok2, "operator.read");
    assert_true(is_ok(r));
    brief->expires_ms = ch_now_ms() - 1;
    ch_oc_auth_recheck(a);
    assert_int_equal(held.close_code, 1008);
    assert_string_equal(held.reason, "unauthorized: token expired");
    tr_done(&held);
    r = dev_connect(a, &t, &d2, false, "deviceToken", tok2, "operator.read");
    assert_string_equal(path_str(r, "error", "details", "code"), "AUTH_DEVICE_TOKEN_MISMATCH");
    tr_done(&t);

    EVP_PKEY_free(d.k);
    EVP_PKEY_free(d2.k);
    api_free(a);
}

static void test_operator_approval_unties(void **state)
{
    struct ch_api *a = api_new();
    struct oc_pairing *p = a->oc->pairing;
    struct tr t;
    struct dev d, m;
    char tok[128], rid[64];
    json_t *r, *out = NULL;
    (void)state;

    db_token(a, 9, "ops", "ops-secret", CH_SCOPE_READ);
    dev_init(&d);
    dev_init(&m);
    r = dev_connect(a, &t, &d, true, "token", "ops-secret", "operator.read");
    snprintf(tok, sizeof(tok), "%s", path_str(r, "payload", "auth", "deviceToken"));
    tr_done(&t);
    assert_int_equal(ch_oc_pairing_find(p, d.id)->tokens[0].api_token_id, 9);
    /* An upgrade an operator approves: the device is vouched for now. */
    r = dev_connect(a, &t, &d, false, "token", "unit-token", "operator.admin");
    snprintf(rid, sizeof(rid), "%s", path_str(r, "error", "details", "requestId"));
    tr_done(&t);
    assert_int_equal(ch_oc_pairing_approve(a->oc, rid, &out), 0);
    json_decref(out);
    assert_string_equal(ch_oc_pairing_find(p, d.id)->approved_via, "manual");
    assert_int_equal(ch_oc_pairing_find(p, d.id)->tokens[0].api_token_id, 0);
    /* A device an operator approved gets untied tokens from #9 too. */
    r = dev_connect(a, &t, &m, false, "token", "ops-secret", "operator.read");
    snprintf(rid, sizeof(rid), "%s", path_str(r, "error", "details", "requestId"));
    tr_done(&t);
    assert_int_equal(ch_oc_pairing_approve(a->oc, rid, &out), 0);
    json_decref(out);
    r = dev_connect(a, &t, &m, false, "token", "ops-secret", "operator.read");
    assert_true(is_ok(r));
    tr_done(&t);
    assert_int_equal(ch_oc_pairing_find(p, m.id)->tokens[0].api_token_id, 0);
    /* ...until a silent upgrade widens it past what the operator approved:
     * that token answers to the API token again. */
    db_token(a, 10, "wide", "wide-secret", CH_SCOPE_READ | CH_SCOPE_CHAT);
    r = dev_connect(a, &t, &m, true, "token", "wide-secret", "operator.write");
    assert_true(is_ok(r));
    tr_done(&t);
    assert_string_equal(ch_oc_pairing_find(p, m.id)->approved_via, "manual");
    assert_string_equal(ch_oc_pairing_find(p, m.id)->tokens[0].scopes, "operator.read,operator.write");
    assert_int_equal(ch_oc_pairing_find(p, m.id)->tokens[0].api_token_id, 10);
    /* #9 revoked: both keep working. */
    ch_auth_drop_name(a, "ops");
    r = dev_connect(a, &t, &d, false, "deviceToken", tok, "operator.read");
    assert_true(is_ok(r));
    assert_null(t.c->auth);
    tr_done(&t);

    EVP_PKEY_free(d.k);
    EVP_PKEY_free(m.k);
    api_free(a);
}

/* ---- the pending queue's share per source ---- */

static size_t pending_of(struct oc_pairing *p, const char *source)
{
    size_t n = 0;

    for (size_t i = 0; i < p->pending.count; i++)
        n += p->pending.items[i].source && !strcmp(p->pending.items[i].source, source);
    return n;
}

/* A fresh device asks from addr with auth; the request id (owned). */
static char *ask(struct ch_api *a, const char *addr, const char *secret)
{
    struct tr t;
    struct dev d;
    json_t *r;
    char *rid;

    dev_init(&d);
    r = dev_connect_at(a, &t, &d, addr, "token", secret, "operator.read");
    assert_string_equal(path_str(r, "error", "code", NULL), "NOT_PAIRED");
    rid = ch_strdup(path_str(r, "error", "details", "requestId"));
    tr_done(&t);
    EVP_PKEY_free(d.k);
    return rid;
}

static void test_pending_share_per_source(void **state)
{
    struct ch_api *a = api_new();
    struct oc_pairing *p = a->oc->pairing;
    char *victim, *flood[OC_PAIR_PENDING_PER_SOURCE + 4], addr[64];
    (void)state;

    db_token(a, 5, "flood", "flood-secret", CH_SCOPE_READ);
    victim = ask(a, "198.51.100.9", "unit-token");
    assert_string_equal(p->pending.items[0].source, "addr:198.51.100.9");
    /* One API token is one source, from any address: past its share its
     * own oldest request goes, never another source's. */
    for (size_t i = 0; i < CH_ARRAY_SIZE(flood); i++) {
        snprintf(addr, sizeof(addr), "203.0.113.%zu", i + 1);
        flood[i] = ask(a, addr, "flood-secret");
    }
    assert_int_equal(pending_of(p, "token:5"), OC_PAIR_PENDING_PER_SOURCE);
    assert_non_null(ch_oc_pairing_find_request(p, victim));
    for (size_t i = 0; i < CH_ARRAY_SIZE(flood); i++) {
        if (i < 4)
            assert_null(ch_oc_pairing_find_request(p, flood[i]));
        else
            assert_non_null(ch_oc_pairing_find_request(p, flood[i]));
        ch_free(flood[i]);
    }
    /* Without a token of the table: the address, an IPv6 one by its /64. */
    for (unsigned i = 0; i < OC_PAIR_PENDING_PER_SOURCE + 2; i++) {
        snprintf(addr, sizeof(addr), "2001:db8:1:2::%x", i + 1);
        ch_free(ask(a, addr, "unit-token"));
    }
    assert_int_equal(pending_of(p, "addr:2001:db8:1:2::/64"), OC_PAIR_PENDING_PER_SOURCE);
    assert_int_equal(p->pending.count, 1 + 2 * OC_PAIR_PENDING_PER_SOURCE);

    /* Full, with every source under its share: the oldest of all goes. */
    for (size_t i = 0; p->pending.count < CH_STORE_MAX_DEVICE_REQUESTS; i++) {
        snprintf(addr, sizeof(addr), "10.0.%zu.%zu", i / 200, i % 200 + 1);
        ch_free(ask(a, addr, "unit-token"));
    }
    assert_non_null(ch_oc_pairing_find_request(p, victim));
    ch_free(ask(a, "10.9.9.9", "unit-token"));
    assert_int_equal(p->pending.count, CH_STORE_MAX_DEVICE_REQUESTS);
    assert_null(ch_oc_pairing_find_request(p, victim));
    ch_free(victim);
    api_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_pairing_flow),
        cmocka_unit_test(test_silent_token_answers_to_its_api_token),
        cmocka_unit_test(test_operator_approval_unties),
        cmocka_unit_test(test_pending_share_per_source),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
