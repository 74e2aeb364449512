/*
 * oc_pairing.c: OpenClaw device pairing at connect time (spec 1.4
 * "Pairing", issue #5): the in-memory registry of paired devices and
 * pending requests (loaded at start, written through to the store), the
 * device-token credential, the pairing decision after a verified device
 * proof, and hello-ok's auth.deviceToken.
 *
 * Tokens are stored hashed, so an existing token cannot be handed out
 * again: a connect that presented its device token gets the same token
 * back, any other (shared secret, API token) gets a fresh one, which
 * replaces the old (oc_pairing_token.c, with the tie of a silently paired
 * device's token to its API token).  The operations behind device.pair.*
 * and /api/v1/devices are in oc_pairing_ops.c; the pending queue's share
 * per source in oc_pairing_quota.c.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

/* ---- names ---- */

static const char *const role_names[] = {"operator", "node", "worker"};

static unsigned role_bit(const char *r)
{
    for (size_t i = 0; r && i < CH_ARRAY_SIZE(role_names); i++)
        if (!strcmp(role_names[i], r))
            return 1u << i;
    return 0;
}

/* Call fn for each comma-separated item of csv (at most 64 bytes each). */
static void csv_each(const char *csv, void (*fn)(const char *item, void *data), void *data)
{
    char item[65];

    while (csv && *csv) {
        const char *e = strchr(csv, ',');
        size_t n = e ? (size_t)(e - csv) : strlen(csv);
        if (n > 0 && n < sizeof(item)) {
            memcpy(item, csv, n);
            item[n] = '\0';
            fn(item, data);
        }
        csv = e ? e + 1 : NULL;
    }
}

static void add_scope(const char *item, void *data)
{
    *(unsigned *)data |= ch_oc_scope_bit(item);
}

static void add_role(const char *item, void *data)
{
    *(unsigned *)data |= role_bit(item);
}

static void add_json(const char *item, void *data)
{
    json_array_append_new(data, json_string(item));
}

unsigned ch_oc_csv_scopes(const char *csv)
{
    unsigned bits = 0;
    csv_each(csv, add_scope, &bits);
    return bits;
}

static unsigned csv_roles(const char *csv)
{
    unsigned bits = 0;
    csv_each(csv, add_role, &bits);
    return bits;
}

json_t *ch_oc_csv_json(const char *csv)
{
    json_t *a = json_array();
    if (a)
        csv_each(csv, add_json, a);
    return a;
}

bool ch_oc_csv_has(const char *csv, const char *name)
{
    return (csv_roles(csv) & role_bit(name)) != 0;
}

/* Bits over a name table -> "a,b" (owned). */
static char *names_csv(unsigned bits, const char *(*name_of)(size_t i), size_t n)
{
    struct ch_buf b;
    char *out;

    ch_buf_init(&b, 1024);
    ch_buf_append_str(&b, "");
    for (size_t i = 0; i < n; i++)
        if (bits & (1u << i))
            ch_buf_appendf(&b, "%s%s", b.len ? "," : "", name_of(i));
    out = ch_buf_detach(&b, NULL);
    ch_buf_release(&b);
    return out;
}

static const char *scope_name_at(size_t i)
{
    static const char *const names[] = {"operator.read", "operator.write", "operator.admin", "operator.approvals",
                                        "operator.pairing"};
    return i < CH_ARRAY_SIZE(names) ? names[i] : "";
}

static const char *role_name_at(size_t i)
{
    return role_names[i];
}

char *ch_oc_scopes_csv(unsigned bits)
{
    return names_csv(bits, scope_name_at, 5);
}

static char *roles_csv(unsigned bits)
{
    return names_csv(bits, role_name_at, CH_ARRAY_SIZE(role_names));
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

/* ---- the registry ---- */

static int grow(void **items, size_t *cap, size_t count, size_t size)
{
    size_t n;
    void *q;

    if (count < *cap)
        return 0;
    n = *cap ? *cap * 2 : 8;
    q = ch_realloc(*items, n * size);
    if (!q)
        return CH_ENOMEM;
    *items = q;
    *cap = n;
    return 0;
}

struct ch_device_rec *ch_oc_pairing_find(struct oc_pairing *p, const char *device_id)
{
    for (size_t i = 0; p && device_id && i < p->devices.count; i++)
        if (!strcmp(p->devices.items[i].device_id, device_id))
            return &p->devices.items[i];
    return NULL;
}

struct ch_device_request_rec *ch_oc_pairing_find_request(struct oc_pairing *p, const char *request_id)
{
    for (size_t i = 0; p && request_id && i < p->pending.count; i++)
        if (!strcmp(p->pending.items[i].request_id, request_id))
            return &p->pending.items[i];
    return NULL;
}

const char *ch_oc_pairing_request_of(struct ch_oc *oc, const char *device_id)
{
    struct oc_pairing *p = oc->pairing;

    for (size_t i = p ? p->pending.count : 0; i-- > 0;) /* the newest */
        if (!strcmp(p->pending.items[i].device_id, device_id))
            return p->pending.items[i].request_id;
    return NULL;
}

/* Memory only: the caller deletes the row (ch_oc_pairing_delete). */
void ch_oc_pairing_drop_request(struct oc_pairing *p, size_t i)
{
    ch_device_request_rec_release(&p->pending.items[i]);
    memmove(&p->pending.items[i], &p->pending.items[i + 1], (p->pending.count - i - 1) * sizeof(*p->pending.items));
    p->pending.count--;
}

void ch_oc_pairing_expire(struct oc_pairing *p, int64_t now_ms)
{
    /* Oldest first: expired ones are a prefix.  Their rows go too, so the
     * store's cap never counts requests memory has forgotten. */
    while (p && p->pending.count && p->pending.items[0].created_ms < now_ms - OC_PAIR_PENDING_TTL_MS) {
        ch_oc_pairing_delete(p, NULL, p->pending.items[0].request_id);
        ch_oc_pairing_drop_request(p, 0);
    }
}

/* ---- pairing ---- */

static int set_field(char **dst, const char *src)
{
    char *n;

    if (!src)
        return 0; /* keep what is there */
    n = ch_strdup(src);
    if (!n)
        return CH_ENOMEM;
    ch_free(*dst);
    *dst = n;
    return 0;
}

struct ch_device_rec *ch_oc_pairing_apply(struct oc_pairing *p, const struct ch_device_request_rec *r, const char *via,
                                          int64_t now_ms)
{
    struct ch_device_rec *d = ch_oc_pairing_find(p, r->device_id), fresh = {0};
    char *roles, *scopes;
    int rc;

    if (!d) {
        if (p->devices.count >= CH_STORE_MAX_DEVICES ||
            grow((void **)&p->devices.items, &p->devices_cap, p->devices.count, sizeof(*p->devices.items)))
            return NULL;
        fresh.device_id = ch_strdup(r->device_id);
        fresh.roles = ch_strdup("");
        fresh.scopes = ch_strdup("");
        fresh.approved_via = ch_strdup(via);
        fresh.created_ms = now_ms;
        if (!fresh.device_id || !fresh.roles || !fresh.scopes || !fresh.approved_via) {
            ch_device_rec_release(&fresh);
            return NULL;
        }
        d = &p->devices.items[p->devices.count++];
        *d = fresh;
    }
    roles = roles_csv(csv_roles(d->roles) | csv_roles(r->roles) | role_bit(r->role));
    scopes = ch_oc_scopes_csv(ch_oc_csv_scopes(d->scopes) | ch_oc_csv_scopes(r->scopes));
    rc = roles && scopes ? 0 : CH_ENOMEM;
    if (rc == 0) {
        ch_free(d->roles);
        ch_free(d->scopes);
        d->roles = roles;
        d->scopes = scopes;
        roles = scopes = NULL;
        rc = set_field(&d->public_key, r->public_key);
    }
    ch_free(roles);
    ch_free(scopes);
    if (rc == 0 && !strcmp(via, "manual"))
        rc = set_field(&d->approved_via, via);
    if (rc == 0 &&
        ((rc = set_field(&d->display_name, r->display_name)) || (rc = set_field(&d->platform, r->platform)) ||
         (rc = set_field(&d->device_family, r->device_family)) || (rc = set_field(&d->client_id, r->client_id)) ||
         (rc = set_field(&d->client_mode, r->client_mode)) || (rc = set_field(&d->remote_ip, r->remote_ip))))
        ch_log_warn("device pairing: out of memory updating device %.12s", d->device_id);
    /* An operator's approval widens the operator token with the device
     * and unties its tokens from the API token of a silent pairing (the
     * operator vouches for the device now); a silent one does neither:
     * the token keeps what its credential allowed, and answers to it. */
    for (size_t i = 0; !strcmp(via, "manual") && i < d->token_count; i++) {
        d->tokens[i].api_token_id = 0;
        if (!strcmp(d->tokens[i].role, "operator"))
            set_field(&d->tokens[i].scopes, d->scopes);
    }
    d->approved_ms = now_ms;
    return d->public_key && d->roles ? d : NULL;
}

/* ---- connections ---- */

void ch_oc_pairing_disconnect(struct ch_oc *oc, const char *device_id, const char *role, const char *reason)
{
    struct oc_conn *c, *next;

    for (c = oc->authed.next; c != &oc->authed; c = next) {
        next = c->next;
        if (c->device_id && !strcmp(c->device_id, device_id) && (!role || (c->role && !strcmp(c->role, role))))
            ch_oc_conn_close(c, 1008, reason); /* unlinks c only */
    }
}

void ch_oc_pairing_broadcast(struct ch_oc *oc, const char *event, json_t *payload)
{
    struct oc_conn **snap;
    size_t n = 0;

    snap = oc->n_authed ? ch_malloc(oc->n_authed * sizeof(*snap)) : NULL;
    for (struct oc_conn *c = oc->authed.next; snap && c != &oc->authed && n < oc->n_authed; c = c->next)
        if (c->scopes & (OC_SCOPE_PAIRING | OC_SCOPE_ADMIN)) {
            ch_oc_conn_ref(c);
            snap[n++] = c;
        }
    /* A send may close a slow consumer (and unlink it): hence the snapshot. */
    for (size_t i = 0; i < n; i++) {
        if (ch_oc_conn_is_open(snap[i]))
            ch_oc_event_to(snap[i], event, json_incref(payload));
        ch_oc_conn_unref(snap[i]);
    }
    ch_free(snap);
    json_decref(payload);
}

/* ---- the decision ---- */

static const char *requirement(const char *reason)
{
    if (!strcmp(reason, "role-upgrade"))
        return "device is asking for a higher role than currently approved";
    if (!strcmp(reason, "scope-upgrade"))
        return "device is asking for more scopes than currently approved";
    return "device is not approved yet";
}

static const char *remediation(const char *reason)
{
    if (!strcmp(reason, "role-upgrade"))
        return "Review the requested role upgrade, then approve the pending request.";
    if (!strcmp(reason, "scope-upgrade"))
        return "Review the requested scopes, then approve the pending upgrade.";
    return "Approve this device from the pending pairing requests.";
}

/* The connect as a request (borrowed strings: never released). */
static void request_view(struct ch_device_request_rec *r, struct oc_conn *c, const json_t *params)
{
    const json_t *client = json_object_get(params, "client"), *dev = json_object_get(params, "device");

    memset(r, 0, sizeof(*r));
    r->device_id = (char *)jstr(dev, "id");
    r->public_key = (char *)jstr(dev, "publicKey");
    r->display_name = (char *)jstr(client, "displayName");
    r->platform = (char *)jstr(client, "platform");
    r->device_family = (char *)jstr(client, "deviceFamily");
    r->client_id = (char *)jstr(client, "id");
    r->client_mode = (char *)jstr(client, "mode");
    r->remote_ip = c->addr; /* a char array of the connection */
}

/* A pending request for this connect: the existing one when it already
 * covers role and scopes, else a new one (merged, replacing it). */
static struct ch_device_request_rec *request_pairing(struct oc_pairing *p, struct oc_conn *c, const json_t *params,
                                                     const char *role, unsigned want, bool repair, int64_t now)
{
    struct ch_device_request_rec view, *r = NULL, fresh = {0};
    unsigned roles = role_bit(role), scopes = want;
    char rid[37], source[CH_AUTH_FAIL_KEY_MAX + 32];
    size_t i;

    request_view(&view, c, params);
    ch_oc_pairing_source(c, source, sizeof(source));
    for (i = p->pending.count; i-- > 0;)
        if (!strcmp(p->pending.items[i].device_id, view.device_id)) {
            r = &p->pending.items[i];
            break;
        }
    if (r && (csv_roles(r->roles) & roles) == roles && (ch_oc_csv_scopes(r->scopes) & want) == want)
        return r;
    if (r) {
        roles |= csv_roles(r->roles);
        scopes |= ch_oc_csv_scopes(r->scopes);
        ch_oc_pairing_delete(p, NULL, r->request_id);
        ch_oc_pairing_drop_request(p, i);
    }
    ch_oc_pairing_make_room(p, source); /* bounded, and a share per source */
    if (grow((void **)&p->pending.items, &p->pending_cap, p->pending.count, sizeof(*p->pending.items)) != 0)
        return NULL;
    ch_uuid4(rid);
    view.request_id = rid;
    view.role = (char *)role;
    view.is_repair = repair;
    view.created_ms = now;
    view.source = source;
    view.roles = roles_csv(roles);
    view.scopes = ch_oc_scopes_csv(scopes);
    if (view.roles && view.scopes && ch_device_request_rec_copy(&fresh, &view) == 0) {
        r = &p->pending.items[p->pending.count++];
        *r = fresh;
        ch_oc_pairing_save_request(p, r);
        ch_oc_pairing_broadcast(p->oc, "device.pair.requested", ch_oc_pairing_request_json(r));
    } else {
        r = NULL;
    }
    ch_free(view.roles);
    ch_free(view.scopes);
    return r;
}

static void refuse(struct oc_conn *c, const char *id, const char *reason, const struct ch_device_request_rec *r,
                   const char *dev_id, const char *role, unsigned want, const struct ch_device_rec *d)
{
    char msg[160], close_reason[240];
    json_t *det;

    snprintf(msg, sizeof(msg), "pairing required: %s", requirement(reason));
    /* A close reason holds 123 bytes: when the long wording would cut off
     * the request id, the reason code stands in for it, so openclaw-node's
     * `pairing required: <why> (requestId: <id>)` parse still finds it. */
    if (r && snprintf(close_reason, sizeof(close_reason), "%s (requestId: %s)", msg, r->request_id) > 123)
        snprintf(close_reason, sizeof(close_reason), "pairing required: %s (requestId: %s)", reason, r->request_id);
    else if (!r)
        snprintf(close_reason, sizeof(close_reason), "%s", msg);
    /* The reference's shape (buildPairingConnectErrorDetails). */
    det = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:o}", "code", "PAIRING_REQUIRED", "reason", reason, "requestId",
                    r ? r->request_id : NULL, "remediationHint", remediation(reason), "deviceId", dev_id,
                    "requestedRole", role, "requestedScopes", ch_oc_scopes_json(want));
    if (det) {
        if (d) {
            json_object_set_new(det, "approvedRoles", ch_oc_csv_json(d->roles));
            json_object_set_new(det, "approvedScopes", ch_oc_csv_json(d->scopes));
        }
    }
    ch_log_info("ws %s from %s: connect refused: %s", c->conn_id, c->addr, close_reason);
    ch_oc_res_err(c, id, "NOT_PAIRED", msg, det);
    ch_oc_conn_close(c, 1008, close_reason);
}

int ch_oc_pairing_connect(struct oc_conn *c, const char *id, const json_t *params, const char *role, unsigned allowed,
                          struct oc_pair_grant *g)
{
    struct oc_pairing *p = c->oc->pairing;
    const json_t *auth = json_object_get(params, "auth"), *v;
    const char *dev_id = jstr(json_object_get(params, "device"), "id"), *reason = NULL;
    const char *presented = jstr(auth, "deviceToken") ? jstr(auth, "deviceToken") : jstr(auth, "token");
    struct ch_device_request_rec view, *r;
    struct ch_device_rec *d;
    int64_t now = ch_now_ms();
    unsigned want = 0;
    size_t i;

    memset(g, 0, sizeof(*g));
    if (!p || !dev_id)
        return 0;
    if (!p->loaded) {
        ch_oc_pairing_starting(c, id);
        return -1;
    }
    if (!strcmp(role, "operator"))
        json_array_foreach(json_object_get(params, "scopes"), i, v) want |= ch_oc_scope_bit(json_string_value(v));
    ch_oc_pairing_expire(p, now);
    d = ch_oc_pairing_find(p, dev_id);
    if (!d)
        reason = "not-paired";
    else if (!ch_oc_csv_has(d->roles, role))
        reason = "role-upgrade";
    else if (want & ~ch_oc_csv_scopes(d->scopes))
        reason = "scope-upgrade";
    if (reason && !(c->loopback && ch_config_bool(c->oc->api->cfg, "gateway.nodes.pairing.autoApproveLocal", true))) {
        /* An operator reviews the request as asked, and grants what it
         * approves (device.pair.approve caps that by the approver). */
        r = request_pairing(p, c, params, role, want, d != NULL, now);
        refuse(c, id, reason, r, dev_id, role, want, d);
        return -1;
    }
    /* Nobody reviews a silent approval, so it grants no scope beyond the
     * credential that authenticated this connect (else a read token pairs
     * itself an admin device token); the connection is capped the same. */
    want &= allowed;
    if (reason && d && ch_oc_csv_has(d->roles, role) && !(want & ~ch_oc_csv_scopes(d->scopes)))
        reason = NULL; /* what is left is approved already */
    if (reason) {
        /* Loopback: silent, as the reference (no `requested` event). */
        char rid[37], *roles = roles_csv(role_bit(role)), *scopes = ch_oc_scopes_csv(want);
        request_view(&view, c, params);
        ch_uuid4(rid);
        view.request_id = rid;
        view.role = (char *)role;
        view.roles = roles;
        view.scopes = scopes;
        d = roles && scopes ? ch_oc_pairing_apply(p, &view, "silent", now) : NULL;
        ch_free(roles);
        ch_free(scopes);
        if (!d)
            return 0; /* out of memory or full: the connect goes on unpaired, as before pairing */
        ch_log_info("ws %s from %s: device %.12s paired silently (%s, loopback)", c->conn_id, c->addr, dev_id, reason);
        ch_oc_pairing_broadcast(c->oc, "device.pair.resolved",
                                json_pack("{s:s, s:s, s:s, s:I}", "requestId", rid, "deviceId", d->device_id,
                                          "decision", "approved", "ts", (json_int_t)now));
    }
    d->last_seen_ms = now;
    ch_free(d->remote_ip);
    d->remote_ip = ch_strdup(c->addr);
    /* reason is left set only when this connect paired or widened d silently. */
    ch_oc_pairing_issue(d, role, presented, allowed, ch_oc_pairing_tie(c, d, reason != NULL), g, now);
    ch_oc_pairing_save_device(p, d);
    return 0;
}
