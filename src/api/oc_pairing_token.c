/*
 * oc_pairing_token.c: the device-token credential of OpenClaw pairing
 * (spec 1.4 "Pairing", 1.5 hello-ok auth.deviceToken; issue #5): a
 * paired device authenticating with its token alone, and the token a
 * device connect earns.
 *
 * Nobody reviews a silent (loopback) pairing, so the device token it
 * mints holds no more than the API token that connect authenticated with,
 * and keeps answering to it: the token row records that API token's id
 * (tokens.id; also when a silent upgrade widened a device an operator had
 * approved), and such a token works only as long as the API token is live
 * and unexpired, within the API token's current scopes and against its
 * rate limit (the connection holds the API
 * token as c->auth, so oc_guard.c closes it 1008 with that token and
 * charges its bucket).  An operator's approval unties the device
 * (ch_oc_pairing_apply): the approver vouched for it, and rotating an
 * admin's own token must not unpair every device it approved.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

static struct ch_device_token *find_token(struct ch_device_rec *d, const char *role)
{
    for (size_t i = 0; d && i < d->token_count; i++)
        if (!strcmp(d->tokens[i].role, role))
            return &d->tokens[i];
    return NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

/* The reference's answer while the gateway starts (rejectGatewayStartupConnect). */
void ch_oc_pairing_starting(struct oc_conn *c, const char *id)
{
    json_t *f = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b, s:i, s:{s:s}}}", "type", "res", "id", id, "ok", 0, "error",
                          "code", "UNAVAILABLE", "message", "gateway starting; retry shortly", "retryable", 1,
                          "retryAfterMs", 500, "details", "reason", "startup-sidecars");

    ch_log_info("ws %s from %s: device connect while paired devices load; retry", c->conn_id, c->addr);
    ch_oc_send_json(c, f);
    ch_oc_conn_close(c, 1013, "gateway starting");
}

/* Hold e as the connection's credential (a ref), as authenticate() does
 * for an API token, so that oc_guard.c rechecks and charges it. */
static void hold(struct oc_conn *c, struct ch_auth_entry *e)
{
    ch_auth_entry_unref(c->auth);
    e->refs++;
    c->auth = e;
}

int ch_oc_pairing_token_auth(struct oc_conn *c, const char *id, const json_t *params, int64_t now_ms)
{
    struct ch_api *a = c->oc->api;
    const json_t *auth = json_object_get(params, "auth");
    const char *explicit = jstr(auth, "deviceToken");
    const char *tok = explicit ? explicit : jstr(auth, "token");
    const char *role = jstr(params, "role") ? jstr(params, "role") : "operator";
    const char *msg = "unauthorized: device token mismatch (rotate/reissue device token)";
    struct ch_device_rec *d = ch_oc_pairing_find(c->oc->pairing, jstr(json_object_get(params, "device"), "id"));
    struct ch_device_token *t = find_token(d, role);
    struct ch_auth_entry *tie;

    if (!tok)
        return -1;
    if (c->oc->pairing && !c->oc->pairing->loaded && json_object_get(params, "device")) {
        ch_oc_pairing_starting(c, id);
        return -2;
    }
    if (t && !t->revoked_ms && ch_device_token_matches(t, tok)) {
        tie = t->api_token_id ? ch_auth_find_id(a, t->api_token_id, now_ms) : NULL;
        if (!t->api_token_id || tie) {
            ch_free(c->auth_name);
            c->auth_name = ch_sprintf("device:%.12s", d->device_id);
            if (tie)
                hold(c, tie);
            if (strcmp(role, "operator"))
                return 0;
            return (int)(ch_oc_csv_scopes(t->scopes) & (tie ? ch_oc_scopes_allowed(tie->scopes) : ~0u));
        }
        /* Its API token was revoked or expired: refused as a revoked
         * device token is (the same answer, so nothing tells them apart). */
        ch_log_info("ws %s from %s: device %.12s: the API token #%lld its token depends on is gone", c->conn_id,
                    c->addr, d->device_id, (long long)t->api_token_id);
    }
    if (!explicit)
        return -1; /* auth.token alone: the shared-secret mismatch answers */
    a->metrics.auth_failures++;
    ch_auth_fail_record(a, c->addr, now_ms);
    ch_log_info("ws %s from %s: connect refused: %s", c->conn_id, c->addr, msg);
    ch_oc_res_err(c, id, "INVALID_REQUEST", msg, json_pack("{s:s}", "code", "AUTH_DEVICE_TOKEN_MISMATCH"));
    ch_oc_conn_close(c, 1008, msg);
    return -2;
}

int64_t ch_oc_pairing_tie(const struct oc_conn *c, const struct ch_device_rec *d, bool widened)
{
    /* Unreviewed: a device no operator approved, or one this connect just
     * widened silently (an operator approved less than the new token may
     * hold).  A device an operator approved otherwise mints untied tokens. */
    bool unreviewed = widened || (d->approved_via && !strcmp(d->approved_via, "silent"));

    /* Only tokens of the tokens table have an id that stays theirs (rows
     * are revoked, never deleted, so an id is never reused); the shared
     * secret and config tokens are the operator's own, as in OpenClaw. */
    return unreviewed && c->auth && c->auth->from_db ? c->auth->id : 0;
}

struct ch_device_token *ch_oc_pairing_token_add(struct ch_device_rec *d, const char *role, int64_t now)
{
    struct ch_device_token *t = &d->tokens[d->token_count++];

    memset(t, 0, sizeof(*t));
    snprintf(t->role, sizeof(t->role), "%s", role);
    t->created_ms = now;
    return t;
}

/* A new token holds the device's scopes only as far as allowed, the
 * scopes of the credential this connect authenticated with: a read token
 * must not mint an admin device token for a device an admin once approved. */
void ch_oc_pairing_issue(struct ch_device_rec *d, const char *role, const char *presented, unsigned allowed,
                         int64_t tie, struct oc_pair_grant *g, int64_t now)
{
    struct ch_device_token *t = find_token(d, role);
    char *tok, *scopes;

    snprintf(g->role, sizeof(g->role), "%s", role);
    if (t && !t->revoked_ms && presented && ch_device_token_matches(t, presented)) {
        g->device_token = ch_strdup(presented); /* its tie stays what it was */
        t->last_used_ms = now;
    } else {
        if (!t && d->token_count >= CH_DEVICE_MAX_TOKENS)
            return;
        tok = ch_random_token("", 43); /* 32 random bytes, base64url, as the reference */
        scopes = strcmp(role, "operator") ? ch_strdup("") : ch_oc_scopes_csv(ch_oc_csv_scopes(d->scopes) & allowed);
        if (!tok || !scopes) {
            ch_free_secret(tok);
            ch_free(scopes);
            return;
        }
        if (!t) {
            t = ch_oc_pairing_token_add(d, role, now);
        } else {
            t->rotated_ms = now;
            t->revoked_ms = 0;
        }
        ch_free(t->scopes);
        t->scopes = scopes;
        t->api_token_id = tie;
        ch_device_token_hash(tok, t->hash_hex);
        t->last_used_ms = now;
        g->device_token = tok;
    }
    g->scopes = ch_oc_csv_scopes(t->scopes);
    g->issued_ms = t->rotated_ms ? t->rotated_ms : t->created_ms;
}

void ch_oc_pair_grant_release(struct oc_pair_grant *g)
{
    if (!g)
        return;
    ch_free_secret(g->device_token);
    memset(g, 0, sizeof(*g));
}

int ch_oc_pairing_hello_append(struct ch_buf *b, const struct oc_pair_grant *g)
{
    int rc;

    if (!g || !g->device_token)
        return 0;
    rc = ch_buf_append_str(b, ",\"deviceToken\":\"");
    rc = rc ? rc : ch_buf_append_str(b, g->device_token); /* base64url: nothing to escape */
    return rc ? rc : ch_buf_appendf(b, "\",\"issuedAtMs\":%lld", (long long)g->issued_ms);
}
