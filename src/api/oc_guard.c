/*
 * oc_guard.c: what keeps an AUTHED WebSocket connection answerable to the
 * credential it connected with.  Scopes are fixed at connect, so without
 * this a token revoked, expired or narrowed later would keep working on
 * every socket it opened; and REST's per-token and global rate limits
 * would not apply to the same token's WS methods.
 *
 * - ch_oc_auth_recheck runs whenever the token cache changes (REST
 *   delete, the 1 Hz table refresh, SIGHUP) and once a second (expiry),
 *   and closes each connection whose token is gone with 1008, the close
 *   code OpenClaw uses for auth failures (spec 1.2).
 * - ch_oc_guard_request repeats the check for the connection about to be
 *   served (an expiry between sweeps) and charges the request.
 *
 * A connection authenticated by the device token of a silently paired
 * device holds the API token that paired it as its c->auth
 * (oc_pairing_token.c), so it ends with that token and is charged to its
 * rate limit exactly like the token's own connections.  Other connections
 * without an API token (device tokens of devices an operator approved,
 * auth mode none) are checked by their own paths: device-token revocation
 * disconnects in oc_pairing_ops.c.  They share only the global rate limit.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

/* NULL while c's token still stands, else why it does not. */
static const char *auth_lost(struct ch_api *a, struct oc_conn *c, int64_t now_ms)
{
    struct ch_auth_entry *e = c->auth, *live;

    if (!e)
        return NULL;
    if (e->dead) {
        /* SIGHUP rebuilds config tokens as new entries: the same secret
         * still live is the same credential. */
        live = ch_map_get(&a->auth.by_hash, e->hash_hex, 64);
        if (!live)
            return "unauthorized: token revoked";
        live->refs++;
        ch_auth_entry_unref(e);
        c->auth = e = live;
    }
    if (e->expires_ms && e->expires_ms <= now_ms)
        return "unauthorized: token expired";
    if (c->scopes & ~ch_oc_scopes_allowed(e->scopes))
        return "unauthorized: token scopes changed";
    return NULL;
}

static void end(struct oc_conn *c, const char *why)
{
    ch_log_info("ws %s from %s: closing: %s (credential %s)", c->conn_id, c->addr, why,
                c->auth_name ? c->auth_name : "-");
    ch_oc_conn_close(c, 1008, why); /* unlinks c only */
}

void ch_oc_auth_recheck(struct ch_api *a)
{
    struct ch_oc *oc = a ? a->oc : NULL;
    struct oc_conn *c, *next;
    int64_t now = ch_now_ms();
    const char *why;

    if (!oc)
        return;
    for (c = oc->authed.next; c != &oc->authed; c = next) {
        next = c->next;
        if ((why = auth_lost(a, c, now)) != NULL)
            end(c, why);
    }
}

bool ch_oc_guard_request(struct oc_conn *c, const char *id)
{
    struct ch_api *a = c->oc->api;
    struct ch_bucket *b = NULL;
    const char *why, *which = "token";
    char msg[160];
    int64_t wait;
    json_t *f;

    if ((why = auth_lost(a, c, ch_now_ms())) != NULL) {
        end(c, why);
        return false;
    }
    /* A token's own `rateLimit` and the global limit count WebSocket
     * methods as REST requests; the REST default per token
     * (api.rateLimit.perToken, seed 002's 60 a minute) does not: OpenClaw
     * clients on the gateway token (the Control UI, the CLI, TUI) poll
     * many methods a minute, and OpenClaw limits none of them. */
    wait = ch_rate_charge(a, c->auth && c->auth->rate_limit_rpm > 0 ? c->auth : NULL, &b, &which);
    if (!wait)
        return true;
    /* The socket stays open: OpenClaw's retryable error shape (spec 1.2
     * ErrorShape), as it answers while busy starting. */
    a->metrics.rate_limited++;
    snprintf(msg, sizeof(msg), "%s rate limit exceeded; retry after %lld ms", which, (long long)wait);
    f = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b, s:I, s:{s:s, s:s}}}", "type", "res", "id", id, "ok", 0, "error",
                  "code", "UNAVAILABLE", "message", msg, "retryable", 1, "retryAfterMs", (json_int_t)wait, "details",
                  "code", "RATE_LIMITED", "limit", which);
    ch_oc_send_json(c, f);
    return false;
}
