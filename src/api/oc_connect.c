/*
 * oc_connect.c: the OpenClaw handshake (spec 1.3-1.5): connect.challenge,
 * the first frame's checks with OpenClaw's exact texts, protocol
 * negotiation, authentication, the device proof (Ed25519 via OpenSSL),
 * and hello-ok for the negotiated version (rendered by oc_hello.c).
 *
 * Error wording: a client whose maxProtocol is an integer below 4 cannot
 * speak v4, so it was written against a 2026.3.x gateway and gets that
 * era's validator texts (`must be equal to constant; ... anyOf`); every
 * other client gets v4's (`must be equal to one of the allowed values`).
 * Every failure answers one res frame and closes: 1002 for a protocol
 * mismatch, 1008 for the rest (the reason is the message, cut to 123
 * bytes).  Failed credentials count against the address in the api's
 * failed-attempt limiter, loopback included (ClawJacked).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

#define DEVICE_SKEW_MS 120000 /* spec 1.4: |now - signedAt| <= 120 s */

int ch_oc_negotiate(int64_t min_protocol, int64_t max_protocol)
{
    for (int v = 4; v >= 3; v--)
        if (min_protocol <= v && v <= max_protocol)
            return v;
    return 0;
}

/* ---- scopes ---- */

static const char *const scope_names[] = {"operator.read", "operator.write", "operator.admin", "operator.approvals",
                                          "operator.pairing"};

unsigned ch_oc_scope_bit(const char *name)
{
    for (size_t i = 0; i < CH_ARRAY_SIZE(scope_names); i++)
        if (!strcmp(scope_names[i], name))
            return 1u << i;
    return 0;
}

int ch_oc_scopes_append(struct ch_buf *b, unsigned bits)
{
    int rc = ch_buf_append_char(b, '[');
    bool first = true;

    for (size_t i = 0; rc == 0 && i < CH_ARRAY_SIZE(scope_names); i++) {
        if (!(bits & (1u << i)))
            continue;
        rc = first ? 0 : ch_buf_append_char(b, ',');
        rc = rc ? rc : ch_buf_append_char(b, '"');
        rc = rc ? rc : ch_buf_append_str(b, scope_names[i]);
        rc = rc ? rc : ch_buf_append_char(b, '"');
        first = false;
    }
    return rc ? rc : ch_buf_append_char(b, ']');
}

json_t *ch_oc_scopes_json(unsigned bits)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < CH_ARRAY_SIZE(scope_names); i++)
        if (bits & (1u << i))
            json_array_append_new(a, json_string(scope_names[i]));
    return a;
}

unsigned ch_oc_scopes_allowed(unsigned ch_scopes)
{
    unsigned s = 0;

    if (ch_scopes & CH_SCOPE_ADMIN)
        return OC_SCOPE_READ | OC_SCOPE_WRITE | OC_SCOPE_ADMIN | OC_SCOPE_APPROVALS | OC_SCOPE_PAIRING;
    if (ch_scopes & CH_SCOPE_READ)
        s |= OC_SCOPE_READ;
    if (ch_scopes & (CH_SCOPE_CHAT | CH_SCOPE_SEND))
        s |= OC_SCOPE_WRITE;
    return s;
}

/* ---- device proof ---- */

static char *lower_trim(const char *s)
{
    const char *e;
    char *o;

    if (!s)
        return ch_strdup("");
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    o = ch_strndup(s, (size_t)(e - s));
    for (char *p = o; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32); /* ASCII only, like the reference */
    return o;
}

char *ch_oc_device_payload(int version, const char *device_id, const char *client_id, const char *client_mode,
                           const char *role, const json_t *scopes, int64_t signed_at_ms, const char *token,
                           const char *nonce, const char *platform, const char *device_family)
{
    struct ch_buf b;
    size_t i;
    json_t *v;
    char *plat = NULL, *fam = NULL, *out = NULL;

    ch_buf_init(&b, 64 * 1024);
    ch_buf_appendf(&b, "v%d|%s|%s|%s|%s|", version, device_id, client_id, client_mode, role);
    json_array_foreach(scopes, i, v)
    {
        if (i)
            ch_buf_append_char(&b, ',');
        ch_buf_append_str(&b, json_string_value(v) ? json_string_value(v) : "");
    }
    ch_buf_appendf(&b, "|%lld|%s|%s", (long long)signed_at_ms, token ? token : "", nonce);
    if (version == 3) {
        plat = lower_trim(platform);
        fam = lower_trim(device_family);
        ch_buf_appendf(&b, "|%s|%s", plat ? plat : "", fam ? fam : "");
    }
    if (b.len < b.max)
        out = ch_buf_detach(&b, NULL);
    ch_buf_release(&b);
    ch_free(plat);
    ch_free(fam);
    return out;
}

/* Raw 32-byte Ed25519 key from base64url, base64 or SPKI PEM. */
static int parse_pubkey(const char *s, uint8_t raw[32])
{
    size_t n = 0;
    int rc = CH_EINVAL;

    if (!strncmp(s, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(s, -1);
        EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        size_t len = 32;
        if (k && EVP_PKEY_id(k) == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(k, raw, &len) == 1 && len == 32)
            rc = 0;
        EVP_PKEY_free(k);
        BIO_free(bio);
        return rc;
    }
    if (strlen(s) > 64 || ch_base64_decode(s, strlen(s), raw, 32, &n) != 0 || n != 32)
        return CH_EINVAL;
    return 0;
}

static bool sig_ok(const uint8_t raw[32], const char *payload, const char *sig_b64)
{
    uint8_t sig[64];
    size_t n = 0;
    EVP_PKEY *k;
    EVP_MD_CTX *md;
    bool ok = false;

    if (strlen(sig_b64) > 128 || ch_base64_decode(sig_b64, strlen(sig_b64), sig, sizeof(sig), &n) != 0 || n != 64)
        return false;
    k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    md = EVP_MD_CTX_new();
    if (k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1)
        ok = EVP_DigestVerify(md, sig, 64, (const unsigned char *)payload, strlen(payload)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

int ch_oc_device_verify(const json_t *device, const char *challenge_nonce, const char *client_id,
                        const char *client_mode, const char *role, const json_t *scopes, const char *token,
                        const char *platform, const char *device_family, int64_t now_ms, const char **message,
                        const char **code)
{
    const char *id = json_string_value(json_object_get(device, "id"));
    const char *pub = json_string_value(json_object_get(device, "publicKey"));
    const char *sig = json_string_value(json_object_get(device, "signature"));
    const json_t *signed_at = json_object_get(device, "signedAt");
    const char *nonce = json_string_value(json_object_get(device, "nonce"));
    uint8_t raw[32];
    char hex[65];
    char *payload;
    bool ok = false, key_ok;
    int64_t at;

    /* The reference's order (connect-device-proof.ts): id, age, nonce
     * present, nonce equal, signature, then the key's normal form. */
    key_ok = pub && parse_pubkey(pub, raw) == 0;
    if (key_ok)
        ch_sha256_hex(raw, 32, hex);
    if (!key_ok || !id || strcmp(hex, id) != 0) {
        *message = "device identity mismatch";
        *code = "DEVICE_AUTH_DEVICE_ID_MISMATCH";
        return CH_EINVAL;
    }
    at = json_is_number(signed_at) ? (int64_t)json_number_value(signed_at) : INT64_MIN / 2;
    if (!json_is_number(signed_at) || at > now_ms + DEVICE_SKEW_MS || at < now_ms - DEVICE_SKEW_MS) {
        *message = "device signature expired";
        *code = "DEVICE_AUTH_SIGNATURE_EXPIRED";
        return CH_EINVAL;
    }
    if (!nonce || !*nonce) {
        *message = "device nonce required";
        *code = "DEVICE_AUTH_NONCE_REQUIRED";
        return CH_EINVAL;
    }
    if (strcmp(nonce, challenge_nonce) != 0) {
        *message = "device nonce mismatch";
        *code = "DEVICE_AUTH_NONCE_MISMATCH";
        return CH_EINVAL;
    }
    for (int v = 3; v >= 2 && !ok && sig; v--) {
        payload = ch_oc_device_payload(v, id, client_id, client_mode, role, scopes, at, token, nonce, platform,
                                       device_family);
        ok = payload && sig_ok(raw, payload, sig);
        ch_free(payload);
    }
    if (!ok) {
        *message = "device signature invalid";
        *code = "DEVICE_AUTH_SIGNATURE_INVALID";
        return CH_EINVAL;
    }
    return 0;
}

/* ---- failures ---- */

static void fail(struct oc_conn *c, const char *id, uint16_t close_code, const char *message, json_t *details)
{
    ch_oc_res_err(c, id, "INVALID_REQUEST", message, details);
    ch_oc_conn_close(c, close_code, message);
}

static json_t *code_details(const char *code, const char *reason)
{
    return json_pack("{s:s, s:s?}", "code", code, "reason", reason);
}

/* ---- authentication ---- */

/*
 * The credential: the shared token or password (auth.token or
 * auth.password, either field) or a chela API token.  Returns the
 * operator scopes it allows, or -1 after answering the failure.
 */
static int authenticate(struct oc_conn *c, const char *id, const json_t *params)
{
    struct ch_api *a = c->oc->api;
    const json_t *auth = json_object_get(params, "auth");
    const char *mode = ch_config_str(a->cfg, "gateway.auth.mode", "token");
    const char *client = json_string_value(json_object_get(json_object_get(params, "client"), "id"));
    const char *secrets[3] = {json_string_value(json_object_get(auth, "token")),
                              json_string_value(json_object_get(auth, "password")),
                              json_string_value(json_object_get(auth, "deviceToken"))};
    bool pw = !strcmp(mode, "password"), any = false, is_cli = client && !strcmp(client, "cli");
    struct ch_auth_entry *e = NULL;
    int64_t now = ch_now_ms(), wait;
    char msg[200];
    int rc;
    json_t *d;

    wait = ch_auth_fail_check(a, c->addr, now);
    if (wait > 0) {
        d = json_pack("{s:s, s:I}", "code", "AUTH_RATE_LIMITED", "retryAfterMs", (json_int_t)wait);
        fail(c, id, 1008, "unauthorized: too many failed authentication attempts (retry later)", d);
        return -1;
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(secrets) && !e; i++) {
        if (secrets[i] && *secrets[i]) {
            any = true;
            e = ch_auth_find(a, secrets[i], strlen(secrets[i]));
        }
    }
    if (e) {
        e->last_used_ms = now;
        if (e->from_db)
            e->dirty = true;
        ch_free(c->auth_name);
        c->auth_name = ch_strdup(e->name);
        /* Held for the connection's life: a revocation, expiry or scope
         * change of this token closes it (oc_guard.c). */
        ch_auth_entry_unref(c->auth);
        e->refs++;
        c->auth = e;
        return (int)ch_oc_scopes_allowed(e->scopes);
    }
    if (any && (rc = ch_oc_pairing_token_auth(c, id, params, now)) != -1)
        return rc < 0 ? -1 : rc; /* a paired device's token (issue #5) */
    if (!strcmp(mode, "none") && !any) {
        /* Loopback-only by the boot checks: the requested scopes stand. */
        c->auth_name = ch_strdup("none");
        return (int)ch_oc_scopes_allowed(CH_SCOPE_ADMIN);
    }
    a->metrics.auth_failures++;
    ch_auth_fail_record(a, c->addr, now);
    snprintf(msg, sizeof(msg), "unauthorized: gateway %s %s (%s)", pw ? "password" : "token",
             any ? "mismatch" : "missing",
             is_cli ? (c->loopback ? (pw ? "use this gateway's gateway.auth.password"
                                         : "use this gateway's gateway.auth.token or pair the device")
                                   : (pw ? "set gateway.remote.password to match gateway.auth.password"
                                         : "set gateway.remote.token to match gateway.auth.token"))
                    : (pw ? "provide gateway auth password" : "provide gateway auth token"));
    d = json_pack("{s:s}", "code",
                  pw ? (any ? "AUTH_PASSWORD_MISMATCH" : "AUTH_PASSWORD_MISSING")
                     : (any ? "AUTH_TOKEN_MISMATCH" : "AUTH_TOKEN_MISSING"));
    ch_log_info("ws %s from %s: connect refused: %s", c->conn_id, c->addr, msg);
    fail(c, id, 1008, msg, d);
    return -1;
}

/* Remember who this is (presence, logs): the strings in one block, so an
 * idle connection pays one allocation for them, not seven. */
static void remember(struct oc_conn *c, const json_t *params, unsigned scopes, const char *role)
{
    const json_t *client = json_object_get(params, "client");
    const json_t *caps = json_object_get(params, "caps");
    char **dst[] = {&c->client_id,   &c->client_mode,  &c->client_version, &c->platform,
                    &c->instance_id, &c->display_name, &c->device_id};
    const char *src[] = {
        json_string_value(json_object_get(client, "id")),
        json_string_value(json_object_get(client, "mode")),
        json_string_value(json_object_get(client, "version")),
        json_string_value(json_object_get(client, "platform")),
        json_string_value(json_object_get(client, "instanceId")),
        json_string_value(json_object_get(client, "displayName")),
        json_string_value(json_object_get(json_object_get(params, "device"), "id")),
    };
    size_t i, total = 0, off = 0;
    json_t *v;

    for (i = 0; i < CH_ARRAY_SIZE(src); i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    c->strs = total ? ch_malloc(total) : NULL;
    for (i = 0; c->strs && i < CH_ARRAY_SIZE(src); i++) {
        if (!src[i])
            continue;
        *dst[i] = memcpy(c->strs + off, src[i], strlen(src[i]) + 1);
        off += strlen(src[i]) + 1;
    }
    /* role was checked against these three by the caller. */
    c->role = !strcmp(role, "node") ? "node" : !strcmp(role, "worker") ? "worker" : "operator";
    c->scopes = (uint8_t)scopes;
    json_array_foreach(caps, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), "tool-events"))
        c->tool_events = true;
}

void ch_oc_connect_frame(struct oc_conn *c, json_t *frame)
{
    const char *id = json_string_value(json_object_get(frame, "id"));
    const char *method = json_string_value(json_object_get(frame, "method"));
    const json_t *params = json_object_get(frame, "params");
    const json_t *maxp = json_object_get(params, "maxProtocol");
    const char *role = "operator", *token;
    const json_t *requested, *device, *v;
    json_t *none = NULL;
    struct oc_pair_grant grant = {0};
    struct ch_buf errs;
    unsigned allowed, granted = 0;
    int64_t minp, maxv;
    size_t i;
    int rc, proto;

    if (!frame || ch_oc_schema_check(&ch_oc_request_frame_schema, frame, OC_WORDING_V4, NULL) != 0) {
        ch_oc_conn_close(c, 1008, "invalid request frame");
        return;
    }
    if (strcmp(method, "connect") != 0) {
        fail(c, id, 1008, "invalid handshake: first request must be connect", NULL);
        return;
    }
    ch_buf_init(&errs, 4096);
    ch_buf_append_str(&errs, "invalid connect params: ");
    rc = ch_oc_schema_check(ch_oc_connect_schema, params,
                            json_is_integer(maxp) && json_integer_value(maxp) < 4 ? OC_WORDING_V3 : OC_WORDING_V4,
                            &errs);
    if (rc) {
        fail(c, id, 1008, errs.data ? errs.data : "invalid connect params", NULL);
        ch_buf_release(&errs);
        return;
    }
    ch_buf_release(&errs);
    minp = (int64_t)json_number_value(json_object_get(params, "minProtocol"));
    maxv = (int64_t)json_number_value(maxp);
    proto = ch_oc_negotiate(minp, maxv);
    if (!proto) {
        ch_oc_res_err(c, id, "INVALID_REQUEST", "protocol mismatch",
                      json_pack("{s:s, s:I, s:I, s:i, s:i}", "code", "PROTOCOL_MISMATCH", "clientMinProtocol",
                                (json_int_t)minp, "clientMaxProtocol", (json_int_t)maxv, "expectedProtocol", 4,
                                "minimumProbeProtocol", 3));
        ch_oc_conn_close(c, 1002, "protocol mismatch");
        return;
    }
    if ((v = json_object_get(params, "role")) != NULL) {
        role = json_string_value(v);
        if (strcmp(role, "operator") && strcmp(role, "node") && strcmp(role, "worker")) {
            fail(c, id, 1008, "invalid role", NULL);
            return;
        }
    }
    rc = authenticate(c, id, params);
    if (rc < 0)
        return;
    allowed = (unsigned)rc;
    device = json_object_get(params, "device");
    requested = json_object_get(params, "scopes");
    if (device) {
        const json_t *client = json_object_get(params, "client");
        const json_t *auth = json_object_get(params, "auth");
        const char *msg = NULL, *code = NULL;
        token = json_string_value(json_object_get(auth, "token"));
        if (!token)
            token = json_string_value(json_object_get(auth, "deviceToken"));
        if (!token)
            token = json_string_value(json_object_get(auth, "bootstrapToken"));
        if (!requested)
            requested = none = json_array();
        rc = ch_oc_device_verify(device, c->nonce, json_string_value(json_object_get(client, "id")),
                                 json_string_value(json_object_get(client, "mode")), role, requested, token,
                                 json_string_value(json_object_get(client, "platform")),
                                 json_string_value(json_object_get(client, "deviceFamily")), ch_now_ms(), &msg, &code);
        json_decref(none);
        requested = json_object_get(params, "scopes");
        if (rc != 0) {
            static const char *const reasons[][2] = {
                {"DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch"},
                {"DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale"},
                {"DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing"},
                {"DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch"},
                {"DEVICE_AUTH_SIGNATURE_INVALID", "device-signature"},
            };
            const char *reason = NULL;
            for (i = 0; i < CH_ARRAY_SIZE(reasons); i++)
                if (!strcmp(reasons[i][0], code))
                    reason = reasons[i][1];
            fail(c, id, 1008, msg, code_details(code, reason));
            return;
        }
        /* Pairing (spec 1.4): unpaired or upgrading devices wait for approval
         * unless local; a paired one gets its device token in hello-ok. */
        if (ch_oc_pairing_connect(c, id, params, role, allowed, &grant) != 0)
            return;
    }
    /* The connection gets the requested scopes its credential allows
     * (spec 1.4: shared-secret operators keep what they ask for). */
    json_array_foreach(requested, i, v) granted |= ch_oc_scope_bit(json_string_value(v)) & allowed;
    if (strcmp(role, "operator") != 0)
        granted = 0;
    c->protocol = (uint8_t)proto;
    remember(c, params, granted, role);
    rc = ch_oc_send_hello_ok(c, id, &grant);
    ch_oc_pair_grant_release(&grant);
    if (rc != 0 && ch_oc_conn_is_open(c))
        ch_oc_conn_close(c, 1011, "internal error"); /* no memory for hello-ok */
    if (!ch_oc_conn_is_open(c))
        return;
    ch_oc_conn_set_authed(c);
    ch_log_info("ws %s from %s: connected as %s/%s, protocol %d, credential %s", c->conn_id, c->addr, c->client_id,
                c->client_mode, proto, c->auth_name ? c->auth_name : "-");
    c->in_presence = true;
    c->oc->n_presence++;
    c->oc->presence_version++;
    ch_oc_broadcast_presence(c->oc);
}
