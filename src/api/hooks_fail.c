/*
 * hooks_fail.c: the hooks' failed-authentication window per address
 * (OpenClaw: 20 failures in 60 s), keyed as the gateway's limiter keys
 * (ch_auth_fail_key: IPv6 by /64).  The table is bounded without ever
 * forgetting a throttled address early: that would hand it a fresh budget.
 */
#include <string.h>

#include "api/hooks.h"

/* Addresses tracked at once; past it expired windows are swept, then the
 * soonest-ending unthrottled entry goes (bounded memory under a spray of
 * addresses). */
#define FAIL_TRACK_MAX 4096
#define FAIL_LIMIT CH_HOOK_FAIL_LIMIT
#define FAIL_WINDOW_MS CH_HOOK_FAIL_WINDOW_MS

struct ch_hook_fail *ch_hook_fail_get(struct ch_hooks *h, const char *addr, int64_t now)
{
    struct ch_hook_fail *f = ch_map_get(&h->fails, addr, strlen(addr));

    if (f && now - f->window_start_ms >= FAIL_WINDOW_MS) {
        f->window_start_ms = now;
        f->count = 0;
    }
    return f;
}

static void fail_sweep(struct ch_hooks *h, int64_t now)
{
    struct ch_map_entry *e;
    size_t it = 0;

    while ((e = ch_map_next(&h->fails, &it)) != NULL) {
        struct ch_hook_fail *f = e->value;
        /* Deleting leaves a tombstone in place: iterating on is safe. */
        if (now - f->window_start_ms >= FAIL_WINDOW_MS)
            ch_free(ch_map_del(&h->fails, e->key, e->keylen));
    }
}

static bool throttled(const void *entry, int64_t now_ms)
{
    (void)now_ms; /* expired windows are swept before */
    return ((const struct ch_hook_fail *)entry)->count >= FAIL_LIMIT;
}

/* Make room for one more address: expired windows first, then
 * ch_auth_fail_evict.  false when every entry is throttled. */
static bool fail_make_room(struct ch_hooks *h, int64_t now)
{
    fail_sweep(h, now);
    return h->fails.count < FAIL_TRACK_MAX || ch_auth_fail_evict(&h->fails, throttled, now);
}

/* Record one failure under key; returns the bucket it counted in (NULL
 * only when out of memory). */
struct ch_hook_fail *ch_hook_fail_record(struct ch_hooks *h, const char *key, int64_t now)
{
    struct ch_hook_fail *f = ch_hook_fail_get(h, key, now);

    if (!f && h->fails.count >= FAIL_TRACK_MAX && !fail_make_room(h, now)) {
        /* Every slot holds a throttled address: count in the shared
         * overflow bucket (one entry past the bound), never not at all. */
        key = CH_AUTH_FAIL_OVERFLOW;
        f = ch_hook_fail_get(h, key, now);
    }
    if (!f) {
        f = ch_calloc(1, sizeof(*f));
        if (!f || ch_map_set(&h->fails, key, strlen(key), f, NULL) != 0) {
            ch_free(f);
            return NULL;
        }
        f->window_start_ms = now;
    }
    f->count++;
    return f;
}
