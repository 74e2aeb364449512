/*
 * ratelimit.c: token buckets (seed 002 section 8).  Each token has a
 * bucket holding up to maxRequests, refilled continuously at
 * maxRequests/windowMs, so a client can burst to its limit and then gets
 * one request per window/maxRequests; the global bucket is checked after
 * the token's.  429 carries Retry-After and seed 002's JSON body.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

void ch_bucket_init(struct ch_bucket *b, double capacity, int64_t window_ms, int64_t now_ms)
{
    b->capacity = capacity;
    b->tokens = capacity;
    b->refill_per_ms = window_ms > 0 ? capacity / (double)window_ms : capacity;
    b->last_ms = now_ms;
}

static void refill(struct ch_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens = fmin(b->capacity, b->tokens + (double)(now_ms - b->last_ms) * b->refill_per_ms);
        b->last_ms = now_ms;
    }
}

int64_t ch_bucket_take(struct ch_bucket *b, int64_t now_ms)
{
    refill(b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    if (b->refill_per_ms <= 0)
        return INT64_MAX / 2;
    return (int64_t)ceil((1.0 - b->tokens) / b->refill_per_ms);
}

int64_t ch_bucket_remaining(const struct ch_bucket *b)
{
    return (int64_t)floor(b->tokens);
}

int64_t ch_bucket_reset_s(const struct ch_bucket *b)
{
    if (b->refill_per_ms <= 0)
        return 0;
    return (int64_t)ceil((b->capacity - b->tokens) / b->refill_per_ms / 1000.0);
}

int ch_rate_init(struct ch_api *a)
{
    struct ch_rate *r = &a->rate;
    int64_t gmax = ch_config_int(a->cfg, "api.rateLimit.global.maxRequests", 0);

    ch_map_init(&r->buckets);
    r->per_window_ms = ch_config_int(a->cfg, "api.rateLimit.perToken.windowMs", 60000);
    r->per_max = ch_config_int(a->cfg, "api.rateLimit.perToken.maxRequests", 60);
    r->global_on = gmax > 0;
    if (r->global_on)
        ch_bucket_init(&r->global, (double)gmax, ch_config_int(a->cfg, "api.rateLimit.global.windowMs", 60000),
                       ch_now_ms());
    return 0;
}

void ch_rate_release(struct ch_rate *r)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while ((me = ch_map_next(&r->buckets, &it)) != NULL)
        ch_free(me->value);
    ch_map_release(&r->buckets);
}

static void set_headers(struct ch_http_req *req, const struct ch_bucket *b)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)b->capacity);
    ch_http_add_header(req, "X-RateLimit-Limit", v);
    snprintf(v, sizeof(v), "%lld", (long long)ch_bucket_remaining(b));
    ch_http_add_header(req, "X-RateLimit-Remaining", v);
    snprintf(v, sizeof(v), "%lld", (long long)ch_bucket_reset_s(b));
    ch_http_add_header(req, "X-RateLimit-Reset", v);
}

static int refuse(struct ch_api *a, struct ch_http_req *req, int64_t wait_ms, const char *which)
{
    int64_t secs = (wait_ms + 999) / 1000;
    char ra[24], msg[160];

    if (secs < 1)
        secs = 1;
    a->metrics.rate_limited++;
    snprintf(ra, sizeof(ra), "%lld", (long long)secs);
    snprintf(msg, sizeof(msg), "%s rate limit exceeded; retry after %lld s", which, (long long)secs);
    ch_http_add_header(req, "Retry-After", ra);
    ch_http_respond_json(
        req, 429,
        json_pack("{s:s, s:s, s:I}", "error", "rate_limit_exceeded", "message", msg, "retryAfter", (json_int_t)secs));
    return CH_EBUSY;
}

/*
 * Follow a changed limit: a bucket outlives its token's settings (it is
 * kept by name, so a token revoked and created again with another
 * rateLimit, or one changed in the database, lands in the same bucket).
 * What was used in the current window carries over at the new size.
 */
static void resize(struct ch_bucket *b, double capacity, int64_t window_ms, int64_t now_ms)
{
    double used;

    refill(b, now_ms);
    used = b->capacity - b->tokens;
    ch_bucket_init(b, capacity, window_ms, now_ms);
    b->tokens = fmax(0.0, capacity - used);
}

/*
 * The charge itself, shared by REST (ch_rate_check) and the WebSocket
 * methods (oc_guard.c), so a token's budget is one budget whichever
 * door its requests come through.
 */
int64_t ch_rate_charge(struct ch_api *a, const struct ch_auth_entry *e, struct ch_bucket **bucket, const char **which)
{
    struct ch_rate *r = &a->rate;
    int64_t now = ch_now_ms(), wait;
    int64_t max = e && e->rate_limit_rpm > 0 ? e->rate_limit_rpm : r->per_max;
    int64_t window = e && e->rate_limit_rpm > 0 ? 60000 : r->per_window_ms;
    struct ch_bucket *b = e ? ch_map_get(&r->buckets, e->name, strlen(e->name)) : NULL;

    *bucket = NULL;
    if (!e)
        goto global;
    if (max <= 0) { /* unlimited */
        if (b)
            ch_free(ch_map_del(&r->buckets, e->name, strlen(e->name)));
        goto global;
    }
    if (!b) {
        b = ch_calloc(1, sizeof(*b));
        if (!b || ch_map_set(&r->buckets, e->name, strlen(e->name), b, NULL) != 0) {
            ch_free(b);
            goto global;
        }
        ch_bucket_init(b, (double)max, window, now);
    } else if (b->capacity != (double)max || b->refill_per_ms != (window > 0 ? (double)max / (double)window : max)) {
        resize(b, (double)max, window, now); /* as ch_bucket_init computes it, so equal when unchanged */
    }
    *bucket = b;
    wait = ch_bucket_take(b, now);
    if (wait) {
        *which = "token";
        return wait;
    }
global:
    if (r->global_on && (wait = ch_bucket_take(&r->global, now)) != 0) {
        *which = "global";
        return wait;
    }
    return 0;
}

int ch_rate_check(struct ch_api *a, struct ch_http_req *req, const struct ch_auth_entry *e)
{
    struct ch_bucket *b = NULL;
    const char *which = "token";
    int64_t wait = ch_rate_charge(a, e, &b, &which);

    if (b)
        set_headers(req, b);
    return wait ? refuse(a, req, wait, which) : 0;
}
