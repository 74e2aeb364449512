/*
 * keys.c: rotation across a provider's API keys (seed 000: a 429 stalled
 * everything although other keys were free).
 *
 * Each key is in one of three states, derived from two deadlines:
 *   ok        usable; picked in round-robin order;
 *   cooling   got a 429: unusable until cool_until (the server's
 *             Retry-After, else 30 s doubling per 429 in a row, at most
 *             5 min), while the other keys keep serving;
 *   disabled  got 401/403: unusable for 10 minutes, then tried again (a
 *             key may be re-enabled at the provider).
 * The ring holds no key text, only a fingerprint that carries state over
 * a configuration reload; logs name keys by index, never by value.
 */
#include <string.h>

#include "providers/client_int.h"

int ch_llm_keyring_new(const char *provider, const char *const *keys, size_t n, const struct ch_llm_keyring *prev,
                       struct ch_llm_keyring **out)
{
    struct ch_llm_keyring *r;
    size_t i, j;
    int rc = CH_ENOMEM;

    r = ch_calloc(1, sizeof(*r));
    if (!r)
        goto out;
    r->provider = ch_strdup(provider ? provider : "?");
    r->keys = n ? ch_calloc(n, sizeof(*r->keys)) : NULL;
    if (!r->provider || (n && !r->keys))
        goto out;
    r->count = n;
    for (i = 0; i < n; i++) {
        r->keys[i].fingerprint = ch_hash_bytes(keys[i], strlen(keys[i]));
        for (j = 0; prev && j < prev->count; j++) {
            if (prev->keys[j].fingerprint == r->keys[i].fingerprint) {
                r->keys[i] = prev->keys[j]; /* cooldowns and counters survive a reload */
                break;
            }
        }
    }
    if (prev && prev->count)
        r->next = prev->next % (n ? n : 1);
    rc = 0;
out:
    if (rc) {
        ch_llm_keyring_free(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

void ch_llm_keyring_free(struct ch_llm_keyring *r)
{
    if (!r)
        return;
    ch_free(r->keys);
    ch_free(r->provider);
    ch_free(r);
}

/* When key k is usable again (<= now: usable). */
static int64_t usable_at(const struct ch_llm_key_state *k)
{
    return CH_MAX(k->cool_until_ms, k->disabled_until_ms);
}

int ch_llm_keyring_pick(struct ch_llm_keyring *r, int64_t now_ms, size_t *index, int64_t *wait_ms)
{
    int64_t soonest = INT64_MAX;
    size_t i, k;
    bool all_disabled = true;

    if (!r || r->count == 0)
        return CH_ENOTFOUND;
    for (i = 0; i < r->count; i++) {
        k = (r->next + i) % r->count;
        if (usable_at(&r->keys[k]) <= now_ms) {
            r->next = (k + 1) % r->count;
            r->keys[k].uses++;
            *index = k;
            return 0;
        }
        soonest = CH_MIN(soonest, usable_at(&r->keys[k]));
        if (r->keys[k].disabled_until_ms <= now_ms)
            all_disabled = false;
    }
    *wait_ms = soonest - now_ms;
    return all_disabled ? CH_EPERM : CH_AGAIN;
}

int64_t ch_llm_keyring_wait_ms(const struct ch_llm_keyring *r, int64_t now_ms)
{
    int64_t soonest = INT64_MAX;
    size_t i;

    if (!r || r->count == 0)
        return -1;
    for (i = 0; i < r->count; i++)
        soonest = CH_MIN(soonest, usable_at(&r->keys[i]));
    return soonest <= now_ms ? 0 : soonest - now_ms;
}

bool ch_llm_keyring_has_free(const struct ch_llm_keyring *r, int64_t now_ms, size_t except)
{
    size_t i;

    for (i = 0; r && i < r->count; i++)
        if (i != except && usable_at(&r->keys[i]) <= now_ms)
            return true;
    return false;
}

int64_t ch_llm_keyring_rate_limited(struct ch_llm_keyring *r, size_t index, int64_t retry_after_ms, int64_t now_ms)
{
    struct ch_llm_key_state *k;
    int64_t ms;
    uint32_t shift;

    if (!r || index >= r->count)
        return 0;
    k = &r->keys[index];
    k->rate_limits++;
    if (k->strikes < UINT32_MAX)
        k->strikes++;
    if (retry_after_ms >= 0) {
        /* The server knows its window; believe it, within reason. */
        ms = CH_MIN(retry_after_ms, (int64_t)CH_LLM_MAX_RETRY_AFTER_MS);
    } else {
        shift = CH_MIN(k->strikes - 1, 10u); /* 30 s << 10 is far past the cap */
        ms = CH_MIN((int64_t)CH_LLM_DEF_KEY_COOLDOWN_MS << shift, (int64_t)CH_LLM_MAX_KEY_COOLDOWN_MS);
    }
    k->cool_until_ms = CH_MAX(k->cool_until_ms, now_ms + ms);
    ch_log_info("llm: provider %s key #%zu rate-limited, cooling down for %lld ms "
                "(%zu key%s in the ring)",
                r->provider, index, (long long)ms, r->count, r->count == 1 ? "" : "s");
    return ms;
}

void ch_llm_keyring_auth_failed(struct ch_llm_keyring *r, size_t index, int64_t now_ms)
{
    if (!r || index >= r->count)
        return;
    r->keys[index].auth_failures++;
    r->keys[index].disabled_until_ms = now_ms + CH_LLM_KEY_AUTH_DISABLE_MS;
    ch_log_warn("llm: provider %s key #%zu was rejected (auth); disabled for %d s", r->provider, index,
                CH_LLM_KEY_AUTH_DISABLE_MS / 1000);
}

void ch_llm_keyring_succeeded(struct ch_llm_keyring *r, size_t index)
{
    if (!r || index >= r->count)
        return;
    r->keys[index].strikes = 0;
    r->keys[index].disabled_until_ms = 0; /* it works again: a re-enabled key */
}

json_t *ch_llm_keyring_json(const struct ch_llm_keyring *r, int64_t now_ms)
{
    json_t *arr = json_array(), *o;
    const struct ch_llm_key_state *k;
    const char *state;
    size_t i;

    for (i = 0; arr && r && i < r->count; i++) {
        k = &r->keys[i];
        state = k->disabled_until_ms > now_ms ? "disabled" : k->cool_until_ms > now_ms ? "cooling" : "ok";
        o = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "index", (json_int_t)i, "state", state, "retryInMs",
                      (json_int_t)CH_MAX(usable_at(k) - now_ms, 0), "uses", (json_int_t)k->uses, "rateLimits",
                      (json_int_t)k->rate_limits, "authFailures", (json_int_t)k->auth_failures);
        if (json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
