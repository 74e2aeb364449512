/*
 * oc_pairing_quota.c: admission to the pending pairing-request queue
 * (spec 1.4 "Pairing"; issue #5).  The queue is bounded
 * (CH_STORE_MAX_DEVICE_REQUESTS) and a full one drops its oldest request;
 * without a share per source, one authenticated client off loopback could
 * mint fresh device identities until it had pushed out a legitimate
 * request before an operator saw it.  So each source (the connecting
 * credential when it is an API token, else the address) holds at most
 * OC_PAIR_PENDING_PER_SOURCE requests, and past that its own oldest one
 * makes room.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

void ch_oc_pairing_source(const struct oc_conn *c, char *out, size_t cap)
{
    char key[CH_AUTH_FAIL_KEY_MAX];

    /* An API token of the tokens table is one client whatever address it
     * comes from.  The shared secret is not (every device of the gateway
     * may present it), nor are config tokens and device tokens without a
     * tie: those count by address, an IPv6 one by its /64 as the
     * failed-attempt limiter does, since one host commonly holds a /64. */
    if (c->auth && c->auth->from_db && c->auth->id > 0) {
        snprintf(out, cap, "token:%lld", (long long)c->auth->id);
        return;
    }
    ch_auth_fail_key(c->addr, key, sizeof(key));
    snprintf(out, cap, "addr:%s", key);
}

void ch_oc_pairing_make_room(struct oc_pairing *p, const char *source)
{
    size_t mine = 0, first = 0;

    for (size_t i = 0; i < p->pending.count; i++) {
        const char *s = p->pending.items[i].source;
        if (!s || strcmp(s, source))
            continue;
        if (mine++ == 0)
            first = i; /* the queue is oldest first: the source's oldest */
    }
    if (mine >= OC_PAIR_PENDING_PER_SOURCE) {
        ch_log_info("device pairing: %s has %zu pending requests; its oldest (%s) makes room", source, mine,
                    p->pending.items[first].request_id);
    } else if (p->pending.count >= CH_STORE_MAX_DEVICE_REQUESTS) {
        first = 0; /* every source under its share, yet full: the oldest goes */
    } else {
        return;
    }
    ch_oc_pairing_delete(p, NULL, p->pending.items[first].request_id);
    ch_oc_pairing_drop_request(p, first);
}
