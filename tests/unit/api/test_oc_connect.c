/*
 * Unit tests for the OpenClaw handshake (src/api/oc_connect.c,
 * oc_schema.c, oc_ws.c) without sockets: the validation texts against the
 * reference validators' output (tests/conformance/connect_errors.mjs ran
 * the real @openclaw/gateway-protocol TypeBox validator for v4 and AJV over
 * the v3-style schema), negotiation, the device signature strings and
 * proofs (OpenSSL Ed25519), and whole connects through a buffer transport.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "api/oc_internal.h"

/* ---- schema texts: {params, v4 text or NULL, v3 text or NULL} ---- */
static const char *const cases[][3] = {
    {"{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"gateway-client\",\"version\":\"1\",\"platform\":\"x\","
     "\"mode\":\"backend\"}}",
     NULL, NULL},
    {"{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"CLI\",\"version\":\"1\",\"platform\":\"x\",\"mode\":"
     "\"backend\"}}",
     "at /client/id: must be equal to one of the allowed values",
     "at /client/id: must be equal to constant; at /client/id: must match a schema in anyOf"},
    {"{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"cli\",\"version\":\"1\",\"platform\":\"x\",\"mode\":"
     "\"cli\"},\"x\":1}",
     "at root: unexpected property 'x'", "at root: unexpected property 'x'"},
    {"{}", "must have required property 'minProtocol'",
     "must have required property 'minProtocol'; must have required property 'maxProtocol'; must have required "
     "property 'client'"},
    {"{\"minProtocol\":\"3\",\"maxProtocol\":0,\"client\":{\"id\":\"cli\",\"version\":\"\",\"platform\":\"x\","
     "\"mode\":\"cli\",\"extra\":true}}",
     "at /minProtocol: must be integer; at /maxProtocol: must be >= 1; at /client: unexpected property 'extra'; at "
     "/client/version: must not have fewer than 1 characters",
     "at /minProtocol: must be integer; at /maxProtocol: must be >= 1; at /client: unexpected property 'extra'; at "
     "/client/version: must NOT have fewer than 1 characters"},
    {"{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":5,\"version\":1,\"platform\":\"x\",\"mode\":\"cli\"},"
     "\"caps\":\"x\",\"scopes\":[1],\"auth\":{\"token\":1,\"foo\":\"b\"},\"device\":{\"id\":\"a\"}}",
     "at /client/id: must be equal to one of the allowed values; at /client/version: must be string; at /caps: must "
     "be array; at /scopes/0: must be string; at /device: must have required property 'publicKey'; at /auth: "
     "unexpected property 'foo'; at /auth/token: must be string",
     "at /client/id: must be string; at /client/id: must be equal to constant; at /client/id: must match a schema in "
     "anyOf; at /client/version: must be string; at /caps: must be array; at /scopes/0: must be string; at /device: "
     "must have required property 'publicKey'; at /device: must have required property 'signature'; at /device: must "
     "have required property 'signedAt'; at /device: must have required property 'nonce'; at /auth: unexpected "
     "property 'foo'; at /auth/token: must be string"},
    {"{\"minProtocol\":1.5,\"maxProtocol\":3,\"client\":[]}",
     "at /minProtocol: must be integer; at /client: must be "
     "object",
     "at /minProtocol: must be integer; at /client: must be object"},
    {"[1,2]", "must be object", "must be object"},
    {"{\"maxProtocol\":\"x\",\"zz\":1,\"client\":{\"id\":\"cli\"}}",
     "must have required property 'minProtocol'; at root: unexpected property 'zz'; at /maxProtocol: must be "
     "integer; at /client: must have required property 'version'",
     "must have required property 'minProtocol'; at root: unexpected property 'zz'; at /maxProtocol: must be "
     "integer; at /client: must have required property 'version'; at /client: must have required property "
     "'platform'; at /client: must have required property 'mode'"},
    {"{\"zz\":1,\"yy\":2,\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"cli\",\"version\":\"1\","
     "\"platform\":\"x\",\"mode\":\"cli\"},\"caps\":[\"\"]}",
     "at root: unexpected property 'zz'; at /caps/0: must not have fewer than 1 characters",
     "at root: unexpected property 'zz'; at root: unexpected property 'yy'; at /caps/0: must NOT have fewer than 1 "
     "characters"},
    {"{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"cli\",\"version\":\"1\",\"platform\":\"x\",\"mode\":"
     "\"cli\"},\"auth\":\"tok\",\"permissions\":[],\"commands\":[1]}",
     "at /commands/0: must be string; at /permissions: must be object; at /auth: must be object",
     "at /commands/0: must be string; at /permissions: must be object; at /auth: must be object"},
};

static void test_connect_schema_texts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i][0], JSON_DECODE_ANY, NULL);
        for (int w = 0; w < 2; w++) {
            struct ch_buf out;
            const char *want = cases[i][1 + w];
            int rc;
            ch_buf_init(&out, 8192);
            assert_non_null(v);
            rc = ch_oc_schema_check(ch_oc_connect_schema, v, w == 0 ? OC_WORDING_V4 : OC_WORDING_V3, &out);
            if (!want) {
                assert_int_equal(rc, 0);
            } else {
                assert_int_equal(rc, CH_EINVAL);
                if (strcmp(out.data, want) != 0)
                    fail_msg("case %zu %s:\n got: %s\nwant: %s", i, w ? "v3" : "v4", out.data, want);
            }
            ch_buf_release(&out);
        }
        json_decref(v);
    }
}

static void test_method_params_texts(void **state)
{
    struct {
        const char *method, *params, *want;
    } t[] = {
        {"sessions.reset", "{\"key\":\"a\",\"reason\":\"x\"}",
         "at /reason: must be equal to constant; at /reason: must match a schema in anyOf"},
        {"sessions.patch", "{\"key\":\"a\",\"label\":5}",
         "at /label: must be string; at /label: must be null; at /label: must match a schema in anyOf"},
        {"chat.send", "{\"sessionKey\":\"a\",\"message\":\"m\",\"idempotencyKey\":\"k\",\"queueMode\":\"zz\"}",
         "at /queueMode: must be equal to one of the allowed values"},
        {"agent", "{\"message\":\"m\",\"timeout\":1.5}", "at /timeout: must be integer"},
        {"agent", "{\"message\":\"m\"}", NULL}, /* idempotencyKey optional: seed 001 */
        {"sessions.patch", "{\"key\":\"a\",\"model\":null}", NULL},
        {"logs.tail", "{\"limit\":6000}", "at /limit: must be <= 5000"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *v = json_loads(t[i].params, 0, NULL);
        struct ch_buf out;
        int rc;
        ch_buf_init(&out, 4096);
        rc = ch_oc_schema_check(ch_oc_method_schema(t[i].method), v, OC_WORDING_V4, &out);
        if (t[i].want) {
            assert_int_equal(rc, CH_EINVAL);
            assert_string_equal(out.data, t[i].want);
        } else {
            assert_int_equal(rc, 0);
        }
        ch_buf_release(&out);
        json_decref(v);
    }
}

static void test_negotiate(void **state)
{
    (void)state;
    assert_int_equal(ch_oc_negotiate(3, 4), 4);
    assert_int_equal(ch_oc_negotiate(3, 3), 3);
    assert_int_equal(ch_oc_negotiate(1, 3), 3);
    assert_int_equal(ch_oc_negotiate(4, 100), 4);
    assert_int_equal(ch_oc_negotiate(5, 6), 0);
    assert_int_equal(ch_oc_negotiate(1, 2), 0);
    assert_int_equal(ch_oc_negotiate(4, 3), 0);
}

static void test_device_payload_strings(void **state)
{
    json_t *scopes = json_pack("[s, s]", "operator.read", "operator.write");
    char *v2, *v3;
    (void)state;
    v2 = ch_oc_device_payload(2, "dev", "cli", "cli", "operator", scopes, 1700000000000, "tok", "n1", "Linux", NULL);
    v3 = ch_oc_device_payload(3, "dev", "cli", "cli", "operator", scopes, 1700000000000, NULL, "n1", "  MacOS ",
                              "iPhone");
    assert_string_equal(v2, "v2|dev|cli|cli|operator|operator.read,operator.write|1700000000000|tok|n1");
    assert_string_equal(v3, "v3|dev|cli|cli|operator|operator.read,operator.write|1700000000000||n1|macos|iphone");
    ch_free(v2);
    ch_free(v3);
    json_decref(scopes);
}

/* A fresh Ed25519 device block signed over the v3 or v2 string. */
static json_t *make_device(const char *nonce, int64_t at, int version, bool bad_id)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t raw[32], sig[64];
    size_t rl = 32, sl = 64;
    char id[65], pub[64], sigb[100], *payload;
    json_t *scopes = json_pack("[s]", "operator.read"), *d;

    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_keygen(kc, &k), 1);
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &rl), 1);
    ch_sha256_hex(raw, 32, id);
    payload = ch_oc_device_payload(version, id, "cli", "cli", "operator", scopes, at, "tok", nonce, "linux", NULL);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (const unsigned char *)payload, strlen(payload)), 1);
    ch_base64url_encode(raw, 32, pub);
    ch_base64url_encode(sig, 64, sigb);
    d = json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", bad_id ? "00" : id, "publicKey", pub, "signature", sigb,
                  "signedAt", (json_int_t)at, "nonce", nonce);
    ch_free(payload);
    json_decref(scopes);
    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(kc);
    EVP_PKEY_free(k);
    return d;
}

static void test_device_verify(void **state)
{
    json_t *scopes = json_pack("[s]", "operator.read");
    int64_t now = 1800000000000;
    const char *msg = NULL, *code = NULL;
    struct {
        int version;
        int64_t at;
        const char *nonce;
        bool bad_id;
        const char *want_code;
    } t[] = {
        {3, now, "n1", false, NULL},
        {2, now - 1000, "n1", false, NULL},
        {3, now - 121000, "n1", false, "DEVICE_AUTH_SIGNATURE_EXPIRED"},
        {3, now + 121000, "n1", false, "DEVICE_AUTH_SIGNATURE_EXPIRED"},
        {3, now, "other", false, "DEVICE_AUTH_NONCE_MISMATCH"},
        {3, now, "n1", true, "DEVICE_AUTH_DEVICE_ID_MISMATCH"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *d = make_device(t[i].nonce, t[i].at, t[i].version, t[i].bad_id);
        int rc = ch_oc_device_verify(d, "n1", "cli", "cli", "operator", scopes, "tok", "linux", NULL, now, &msg, &code);
        if (t[i].want_code) {
            assert_int_equal(rc, CH_EINVAL);
            assert_string_equal(code, t[i].want_code);
        } else {
            assert_int_equal(rc, 0);
        }
        /* Any change to what was signed breaks the signature. */
        if (!t[i].want_code) {
            assert_int_equal(ch_oc_device_verify(d, "n1", "cli", "backend", "operator", scopes, "tok", "linux", NULL,
                                                 now, &msg, &code),
                             CH_EINVAL);
            assert_string_equal(msg, "device signature invalid");
        }
        json_decref(d);
    }
    {
        json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", "x", "publicKey", "!!notbase64", "signature", "s",
                              "signedAt", (json_int_t)now, "nonce", "");
        assert_int_equal(
            ch_oc_device_verify(d, "n1", "cli", "cli", "operator", scopes, NULL, NULL, NULL, now, &msg, &code),
            CH_EINVAL);
        assert_string_equal(code, "DEVICE_AUTH_DEVICE_ID_MISMATCH");
        json_decref(d);
    }
    json_decref(scopes);
}

/* ---- whole connects through a buffer transport ---- */

struct tr {
    json_t *frames; /* every frame sent */
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
    return a;
}

static void api_free(struct ch_api *a)
{
    const struct ch_config *cfg = a->cfg;
    ch_api_free(a);
    ch_config_free((struct ch_config *)cfg);
}

static json_t *run_connect(struct ch_api *a, struct tr *t, const char *params_fmt)
{
    char frame[2048];
    json_t *last;

    memset(t, 0, sizeof(*t));
    t->frames = json_array();
    t->c = ch_oc_conn_open(a->oc, &tr_ops, t, true, "127.0.0.1");
    ch_oc_send_challenge(t->c);
    snprintf(frame, sizeof(frame), "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":%s}", params_fmt);
    ch_oc_conn_on_text(t->c, frame, strlen(frame));
    last = json_array_get(t->frames, json_array_size(t->frames) - 1);
    return last;
}

static void tr_done(struct tr *t)
{
    ch_oc_conn_closed(t->c);
    json_decref(t->frames);
}

static void send_text(struct oc_conn *c, const char *s)
{
    ch_oc_conn_on_text(c, s, strlen(s));
}

#define CLIENT "\"client\":{\"id\":\"gateway-client\",\"version\":\"1\",\"platform\":\"p\",\"mode\":\"backend\"}"

static void test_connect_flows(void **state)
{
    struct ch_api *a = api_new();
    struct tr t;
    json_t *r, *ch;
    (void)state;

    r = run_connect(a, &t,
                    "{\"minProtocol\":3,\"maxProtocol\":3," CLIENT ",\"auth\":{\"token\":\"unit-token\"},"
                    "\"scopes\":[\"operator.admin\"]}");
    ch = json_array_get(t.frames, 0);
    assert_string_equal(json_string_value(json_object_get(ch, "event")), "connect.challenge");
    assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(ch, "payload"), "nonce"))), 36);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "payload"), "protocol")), 3);
    assert_int_equal(t.close_code, 0);
    /* AUTHED: a second connect is an admin method call that no table has:
     * unknown for an admin. */
    send_text(t.c, "{\"type\":\"req\",\"id\":\"h\",\"method\":\"health\"}");
    r = json_array_get(t.frames, json_array_size(t.frames) - 1);
    assert_true(json_is_true(json_object_get(r, "ok")));
    send_text(t.c, "{\"type\":\"req\",\"id\":\"u\",\"method\":\"nope\"}");
    r = json_array_get(t.frames, json_array_size(t.frames) - 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
                        "unknown method: nope");
    tr_done(&t);

    r = run_connect(a, &t, "{\"minProtocol\":5,\"maxProtocol\":6," CLIENT "}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
                        "protocol mismatch");
    assert_int_equal(t.close_code, 1002);
    tr_done(&t);

    r = run_connect(a, &t, "{\"minProtocol\":4,\"maxProtocol\":4," CLIENT ",\"auth\":{\"token\":\"nope\"}}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(r, "error"), "details"), "code")),
        "AUTH_TOKEN_MISMATCH");
    assert_int_equal(t.close_code, 1008);
    tr_done(&t);

    r = run_connect(a, &t, "{\"minProtocol\":4,\"maxProtocol\":4," CLIENT ",\"role\":\"root\"}");
    assert_string_equal(t.reason, "invalid role");
    tr_done(&t);

    /* A long validation message is cut to a 123-byte close reason. */
    r = run_connect(a, &t,
                    "{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":5,\"version\":1,\"platform\":1,"
                    "\"mode\":1},\"a\":1,\"b\":2}");
    assert_int_equal(t.close_code, 1008);
    assert_true(strlen(t.reason) <= 123);
    assert_true(strncmp(t.reason, "invalid connect params: at root: unexpected property 'a'", 56) == 0);
    tr_done(&t);

    /* Not a request frame: close, no answer. */
    memset(&t, 0, sizeof(t));
    t.frames = json_array();
    t.c = ch_oc_conn_open(a->oc, &tr_ops, &t, true, "127.0.0.1");
    ch_oc_conn_on_text(t.c, "nonsense", 8);
    assert_int_equal(json_array_size(t.frames), 0);
    assert_int_equal(t.close_code, 1008);
    assert_string_equal(t.reason, "invalid request frame");
    tr_done(&t);
    api_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_schema_texts),
        cmocka_unit_test(test_method_params_texts),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_device_payload_strings),
        cmocka_unit_test(test_device_verify),
        cmocka_unit_test(test_connect_flows),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
