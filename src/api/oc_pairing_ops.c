/*
 * oc_pairing_ops.c: what an operator does with device pairing (spec 2.2
 * "Node and device methods", issue #5): list, approve, reject and remove
 * (shared by the WS methods device.pair.* and REST /api/v1/devices), and
 * device.token.rotate/revoke.  Shapes follow the reference gateway:
 * pending entries are the device.pair.requested payload, paired entries
 * its redacted PairedDevice (token summaries, never a token).
 */
#include <string.h>

#include "api/oc_internal.h"

/* ---- shapes ---- */

static void set_str(json_t *o, const char *k, const char *v)
{
    if (o && v && *v)
        json_object_set_new(o, k, json_string(v));
}

static void set_ms(json_t *o, const char *k, int64_t v)
{
    if (o && v > 0)
        json_object_set_new(o, k, json_integer((json_int_t)v));
}

json_t *ch_oc_pairing_request_json(const struct ch_device_request_rec *r)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "requestId", r->request_id, "deviceId", r->device_id, "publicKey", r->public_key);

    set_str(o, "displayName", r->display_name);
    set_str(o, "platform", r->platform);
    set_str(o, "deviceFamily", r->device_family);
    set_str(o, "clientId", r->client_id);
    set_str(o, "clientMode", r->client_mode);
    set_str(o, "role", r->role);
    if (o) {
        json_object_set_new(o, "roles", ch_oc_csv_json(r->roles));
        json_object_set_new(o, "scopes", ch_oc_csv_json(r->scopes));
    }
    set_str(o, "remoteIp", r->remote_ip);
    if (o) {
        json_object_set_new(o, "silent", json_false());
        json_object_set_new(o, "isRepair", json_boolean(r->is_repair));
        json_object_set_new(o, "ts", json_integer((json_int_t)r->created_ms));
    }
    return o;
}

static bool connected(struct ch_oc *oc, const char *device_id)
{
    for (struct oc_conn *c = oc->authed.next; c != &oc->authed; c = c->next)
        if (c->device_id && !strcmp(c->device_id, device_id))
            return true;
    return false;
}

/* A chela addition, so an operator sees what a silently paired device's
 * token answers to: the API token's id, and its name while it is live
 * (once it is revoked or expired, the device token is refused). */
static void tie_json(struct ch_oc *oc, json_t *t, int64_t api_token_id)
{
    const struct ch_auth_entry *e;

    if (!t || api_token_id <= 0)
        return;
    json_object_set_new(t, "apiTokenId", json_integer((json_int_t)api_token_id));
    e = ch_auth_find_id(oc->api, api_token_id, ch_now_ms());
    set_str(t, "apiTokenName", e ? e->name : NULL);
}

json_t *ch_oc_pairing_device_json(struct ch_oc *oc, const struct ch_device_rec *d)
{
    json_t *o = json_pack("{s:s, s:s}", "deviceId", d->device_id, "publicKey", d->public_key), *roles, *toks;
    const struct ch_device_token *order[CH_DEVICE_MAX_TOKENS];
    size_t n = 0;

    set_str(o, "displayName", d->display_name);
    set_str(o, "platform", d->platform);
    set_str(o, "deviceFamily", d->device_family);
    set_str(o, "clientId", d->client_id);
    set_str(o, "clientMode", d->client_mode);
    roles = ch_oc_csv_json(d->roles);
    if (o && json_array_size(roles))
        json_object_set(o, "role", json_array_get(roles, 0));
    if (o) {
        json_object_set(o, "roles", roles);
        json_object_set_new(o, "scopes", ch_oc_csv_json(d->scopes));
    }
    json_decref(roles);
    set_str(o, "remoteIp", d->remote_ip);
    set_str(o, "approvedVia", d->approved_via);
    if (o) {
        json_object_set_new(o, "createdAtMs", json_integer((json_int_t)d->created_ms));
        json_object_set_new(o, "approvedAtMs", json_integer((json_int_t)d->approved_ms));
    }
    set_ms(o, "lastSeenAtMs", d->last_seen_ms);
    if (o)
        json_object_set_new(o, "connected", json_boolean(connected(oc, d->device_id)));
    /* Summaries sorted by role, as summarizeDeviceTokens(). */
    for (size_t i = 0; i < d->token_count && i < CH_DEVICE_MAX_TOKENS; i++) {
        size_t j = n++;
        while (j > 0 && strcmp(order[j - 1]->role, d->tokens[i].role) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = &d->tokens[i];
    }
    toks = n ? json_array() : NULL;
    for (size_t i = 0; toks && i < n; i++) {
        json_t *t = json_pack("{s:s, s:o, s:I}", "role", order[i]->role, "scopes", ch_oc_csv_json(order[i]->scopes),
                              "createdAtMs", (json_int_t)order[i]->created_ms);
        set_ms(t, "rotatedAtMs", order[i]->rotated_ms);
        set_ms(t, "revokedAtMs", order[i]->revoked_ms);
        set_ms(t, "lastUsedAtMs", order[i]->last_used_ms);
        tie_json(oc, t, order[i]->api_token_id);
        json_array_append_new(toks, t);
    }
    if (o && toks)
        json_object_set_new(o, "tokens", toks);
    else
        json_decref(toks);
    return o;
}

json_t *ch_oc_pairing_list_json(struct ch_oc *oc)
{
    struct oc_pairing *p = oc->pairing;
    json_t *pending = json_array(), *paired = json_array();

    ch_oc_pairing_expire(p, ch_now_ms());
    for (size_t i = 0; p && pending && i < p->pending.count; i++)
        json_array_append_new(pending, ch_oc_pairing_request_json(&p->pending.items[i]));
    for (size_t i = 0; p && paired && i < p->devices.count; i++)
        json_array_append_new(paired, ch_oc_pairing_device_json(oc, &p->devices.items[i]));
    return json_pack("{s:o, s:o}", "pending", pending ? pending : json_array(), "paired",
                     paired ? paired : json_array());
}

/* ---- approve, reject, remove ---- */

static void resolved(struct ch_oc *oc, const char *request_id, const char *device_id, const char *decision)
{
    ch_oc_pairing_broadcast(oc, "device.pair.resolved",
                            json_pack("{s:s, s:s, s:s, s:I}", "requestId", request_id, "deviceId", device_id,
                                      "decision", decision, "ts", (json_int_t)ch_now_ms()));
}

static int request_index(struct oc_pairing *p, const char *request_id, size_t *out)
{
    ch_oc_pairing_expire(p, ch_now_ms());
    for (size_t i = 0; p && request_id && i < p->pending.count; i++)
        if (!strcmp(p->pending.items[i].request_id, request_id)) {
            *out = i;
            return 0;
        }
    return CH_ENOTFOUND;
}

int ch_oc_pairing_approve(struct ch_oc *oc, const char *request_id, json_t **out)
{
    struct oc_pairing *p = oc->pairing;
    struct ch_device_request_rec *r;
    struct ch_device_rec *d;
    char rid[CH_STORE_MAX_ID_BYTES + 1];
    size_t i;

    *out = NULL;
    if (request_index(p, request_id, &i) != 0)
        return CH_ENOTFOUND;
    r = &p->pending.items[i];
    d = ch_oc_pairing_apply(p, r, "manual", ch_now_ms());
    if (!d)
        return p->devices.count >= CH_STORE_MAX_DEVICES ? CH_E_TOO_LARGE : CH_ENOMEM;
    ch_log_info("device pairing: approved device %.12s (request %s, roles %s, scopes %s)", d->device_id, r->request_id,
                d->roles, d->scopes);
    snprintf(rid, sizeof(rid), "%s", r->request_id);
    ch_oc_pairing_save_device(p, d);
    ch_oc_pairing_delete(p, NULL, rid);
    ch_oc_pairing_drop_request(p, i);
    resolved(oc, rid, d->device_id, "approved");
    *out = json_pack("{s:s, s:o}", "requestId", rid, "device", ch_oc_pairing_device_json(oc, d));
    return *out ? 0 : CH_ENOMEM;
}

int ch_oc_pairing_reject(struct ch_oc *oc, const char *request_id, json_t **out)
{
    struct oc_pairing *p = oc->pairing;
    struct ch_device_request_rec *r;
    size_t i;

    *out = NULL;
    if (request_index(p, request_id, &i) != 0)
        return CH_ENOTFOUND;
    r = &p->pending.items[i];
    ch_log_info("device pairing: rejected device %.12s (request %s)", r->device_id, r->request_id);
    *out = json_pack("{s:s, s:s}", "requestId", r->request_id, "deviceId", r->device_id);
    resolved(oc, r->request_id, r->device_id, "rejected");
    ch_oc_pairing_delete(p, NULL, r->request_id);
    ch_oc_pairing_drop_request(p, i);
    return *out ? 0 : CH_ENOMEM;
}

int ch_oc_pairing_remove(struct ch_oc *oc, const char *device_id, json_t **out)
{
    struct oc_pairing *p = oc->pairing;
    struct ch_device_rec *d = ch_oc_pairing_find(p, device_id);
    size_t i;

    *out = NULL;
    if (!d)
        return CH_ENOTFOUND;
    ch_log_info("device pairing: removed device %.12s", d->device_id);
    *out = json_pack("{s:s}", "deviceId", d->device_id);
    ch_oc_pairing_delete(p, d->device_id, NULL); /* its requests go with it */
    for (i = p->pending.count; i-- > 0;)
        if (!strcmp(p->pending.items[i].device_id, d->device_id))
            ch_oc_pairing_drop_request(p, i);
    i = (size_t)(d - p->devices.items);
    ch_device_rec_release(d);
    memmove(d, d + 1, (p->devices.count - i - 1) * sizeof(*d));
    p->devices.count--;
    return *out ? 0 : CH_ENOMEM;
}

/* ---- WS methods ---- */

static const char *param(const struct oc_req *q, const char *k)
{
    return json_string_value(json_object_get(q->params, k));
}

static void answer(struct oc_req *q, int rc, json_t *out, const char *unknown)
{
    if (rc == 0)
        ch_oc_res_ok(q->conn, q->id, out);
    else if (rc == CH_ENOTFOUND)
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", unknown, NULL);
    else
        ch_oc_unavailable(q, ch_strerror(rc));
}

/* Refused (answered) while the registry loads at start. */
static bool loading(struct oc_req *q)
{
    struct oc_pairing *p = q->conn->oc->pairing;

    if (p && p->loaded)
        return false;
    ch_oc_unavailable(q, "paired devices are loading; retry shortly");
    return true;
}

void ch_oc_m_device_pair_list(struct oc_req *q)
{
    if (loading(q))
        return;
    ch_oc_res_ok(q->conn, q->id, ch_oc_pairing_list_json(q->conn->oc));
}

void ch_oc_m_device_pair_approve(struct oc_req *q)
{
    struct oc_pairing *p = q->conn->oc->pairing;
    struct ch_device_request_rec *r = ch_oc_pairing_find_request(p, param(q, "requestId"));
    unsigned caller = q->conn->scopes;
    json_t *out = NULL;
    int rc;

    if (loading(q))
        return;

    /* A pairing operator approves no more than it holds itself (the
     * reference's caller-missing-scope); admin holds everything. */
    if (r && !(caller & OC_SCOPE_ADMIN) && (ch_oc_csv_scopes(r->scopes) & ~caller)) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", "device pairing approval denied", NULL);
        return;
    }
    rc = ch_oc_pairing_approve(q->conn->oc, param(q, "requestId"), &out);
    answer(q, rc, out, "unknown requestId");
}

void ch_oc_m_device_pair_reject(struct oc_req *q)
{
    json_t *out = NULL;
    int rc = ch_oc_pairing_reject(q->conn->oc, param(q, "requestId"), &out);

    if (loading(q))
        return;

    answer(q, rc, out, "unknown requestId");
}

void ch_oc_m_device_pair_remove(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    char id[CH_STORE_MAX_DEVICE_FIELD_BYTES + 1];
    json_t *out = NULL;
    int rc;

    if (loading(q))
        return;

    snprintf(id, sizeof(id), "%s", param(q, "deviceId"));
    rc = ch_oc_pairing_remove(oc, id, &out);
    answer(q, rc, out, "unknown deviceId");
    if (rc == 0) /* after the answer: the caller may be that device */
        ch_oc_pairing_disconnect(oc, id, NULL, "device pairing removed");
}

static struct ch_device_token *token_of(struct ch_device_rec *d, const char *role)
{
    for (size_t i = 0; d && i < d->token_count; i++)
        if (!strcmp(d->tokens[i].role, role))
            return &d->tokens[i];
    return NULL;
}

void ch_oc_m_device_token_rotate(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    struct ch_device_rec *d = ch_oc_pairing_find(oc->pairing, param(q, "deviceId"));
    const char *role = param(q, "role");
    const json_t *req = json_object_get(q->params, "scopes"), *v;
    struct ch_device_token *t = token_of(d, role);
    unsigned want = 0, approved = d ? ch_oc_csv_scopes(d->scopes) : 0, caller = q->conn->scopes;
    char *tok = NULL, *scopes = NULL;
    int64_t now = ch_now_ms();
    size_t i;

    if (loading(q))
        return;

    if (!strcmp(role, "operator")) {
        if (req)
            json_array_foreach(req, i, v) want |= ch_oc_scope_bit(json_string_value(v));
        else
            want = t ? ch_oc_csv_scopes(t->scopes) : approved;
    }
    /* Only an approved role, within the device's approved scopes and the
     * caller's own (admin holds all). */
    if (!d || !ch_oc_csv_has(d->roles, role) || (want & ~approved) ||
        (!(caller & OC_SCOPE_ADMIN) && (want & ~caller)) || (!t && d->token_count >= CH_DEVICE_MAX_TOKENS)) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", "device token rotation denied", NULL);
        return;
    }
    tok = ch_random_token("", 43);
    scopes = ch_oc_scopes_csv(want);
    if (!tok || !scopes) {
        ch_free_secret(tok);
        ch_free(scopes);
        ch_oc_unavailable(q, "out of memory");
        return;
    }
    if (!t) {
        t = ch_oc_pairing_token_add(d, role, now);
        /* A rotation keeps a token's tie to the API token of a silent
         * pairing (else the device could rotate itself free of it); a new
         * role's token takes the device's. */
        for (size_t j = 0; j + 1 < d->token_count && !t->api_token_id; j++)
            t->api_token_id = d->tokens[j].api_token_id;
    }
    t->rotated_ms = now;
    t->revoked_ms = 0;
    ch_free(t->scopes);
    t->scopes = scopes;
    ch_device_token_hash(tok, t->hash_hex);
    ch_oc_pairing_save_device(oc->pairing, d);
    ch_log_info("device pairing: rotated the %s token of device %.12s", role, d->device_id);
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:s, s:s, s:s, s:o, s:I, s:s}", "deviceId", d->device_id, "role", role, "token", tok,
                           "scopes", ch_oc_csv_json(t->scopes), "rotatedAtMs", (json_int_t)now, "tokenDelivery",
                           "in-band"));
    ch_free_secret(tok);
    ch_oc_pairing_disconnect(oc, d->device_id, role, "device token rotated");
}

void ch_oc_m_device_token_revoke(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    struct ch_device_rec *d = ch_oc_pairing_find(oc->pairing, param(q, "deviceId"));
    const char *role = param(q, "role");
    struct ch_device_token *t = token_of(d, role);
    unsigned caller = q->conn->scopes;
    int64_t now = ch_now_ms();

    if (loading(q))
        return;

    if (!t || (!(caller & OC_SCOPE_ADMIN) && (ch_oc_csv_scopes(t->scopes) & ~caller))) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", "device token revocation denied", NULL);
        return;
    }
    t->revoked_ms = now;
    ch_oc_pairing_save_device(oc->pairing, d);
    ch_log_info("device pairing: revoked the %s token of device %.12s", role, d->device_id);
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:s, s:s, s:I}", "deviceId", d->device_id, "role", role, "revokedAtMs", (json_int_t)now));
    ch_oc_pairing_disconnect(oc, d->device_id, role, "device token revoked");
}
