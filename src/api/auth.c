/*
 * auth.c: credentials.  All of them live in one in-memory map keyed by the
 * SHA-256 of the secret: the gateway token or password, api.auth.tokens[]
 * from config, the CLI's local token, and the tokens table.  Requests never
 * touch SQLite: once a second a pool job fingerprints the tokens table and
 * reloads it when another process (the CLI) changed it, so a revocation
 * takes effect within a second; last-used times go back in one batched
 * write.  A failed-attempt limiter per address slows brute force.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

void ch_auth_entry_unref(struct ch_auth_entry *e)
{
    if (e && --e->refs == 0) {
        ch_free(e->name);
        ch_free(e);
    }
}

static struct ch_auth_entry *entry_new(const char *name, const char *hash_hex, unsigned scopes)
{
    struct ch_auth_entry *e = ch_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->name = ch_strdup(name);
    if (!e->name) {
        ch_free(e);
        return NULL;
    }
    e->refs = 1;
    memcpy(e->hash_hex, hash_hex, 64);
    e->hash_hex[64] = '\0';
    e->scopes = scopes;
    return e;
}

static void drop(struct ch_api *a, struct ch_auth_entry *e)
{
    ch_map_del(&a->auth.by_hash, e->hash_hex, 64);
    e->dead = true;
    ch_auth_entry_unref(e);
}

static int put(struct ch_api *a, struct ch_auth_entry *e)
{
    void *old = NULL;
    int rc = ch_map_set(&a->auth.by_hash, e->hash_hex, 64, e, &old);
    if (rc) {
        ch_auth_entry_unref(e);
        return rc;
    }
    if (old) {
        ((struct ch_auth_entry *)old)->dead = true;
        ch_auth_entry_unref(old);
    }
    return 0;
}

int ch_auth_init(struct ch_api *a)
{
    ch_map_init(&a->auth.by_hash);
    ch_map_init(&a->auth.fails);
    return 0;
}

void ch_auth_release(struct ch_api *a)
{
    size_t it = 0;
    struct ch_map_entry *me;

    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL)
        ch_auth_entry_unref(me->value);
    ch_map_release(&a->auth.by_hash);
    it = 0;
    while ((me = ch_map_next(&a->auth.fails, &it)) != NULL)
        ch_free(me->value);
    ch_map_release(&a->auth.fails);
}

static int add_secret(struct ch_api *a, const char *name, const char *secret, unsigned scopes, int64_t rpm)
{
    char hex[65];
    struct ch_auth_entry *e;

    ch_sha256_hex(secret, strlen(secret), hex);
    e = entry_new(name, hex, scopes);
    if (!e)
        return CH_ENOMEM;
    e->rate_limit_rpm = rpm;
    return put(a, e);
}

/* Rebuild everything that is not from the database. */
int ch_auth_load_config(struct ch_api *a)
{
    const struct ch_config *c = a->cfg;
    const json_t *toks, *t;
    struct ch_auth_entry *e;
    struct ch_map_entry *me;
    const char *s;
    size_t it = 0, i;
    int rc = 0;

    /* Drop the config-sourced set first (SIGHUP may have removed some). */
    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL) {
        e = me->value;
        if (!e->from_db)
            drop(a, e);
    }
    a->auth.max_attempts = (int)ch_config_int(c, "gateway.auth.rateLimit.maxAttempts", 10);
    a->auth.window_ms = ch_config_int(c, "gateway.auth.rateLimit.windowMs", 60000);
    a->auth.lockout_ms = ch_config_int(c, "gateway.auth.rateLimit.lockoutMs", 300000);

    s = ch_config_str(c, "gateway.auth.token", NULL);
    if (s && *s && (rc = add_secret(a, "gateway", s, CH_SCOPE_ADMIN, 0)) != 0)
        return rc;
    s = ch_config_str(c, "gateway.auth.password", NULL);
    if (s && *s && (rc = add_secret(a, "gateway-password", s, CH_SCOPE_ADMIN, 0)) != 0)
        return rc;
    if (a->local_hash[0]) {
        e = entry_new("local-cli", a->local_hash, CH_SCOPE_ADMIN);
        if (!e || (rc = put(a, e)) != 0)
            return e ? rc : CH_ENOMEM;
    }
    toks = ch_config_get(c, "api.auth.tokens");
    json_array_foreach(toks, i, t)
    {
        const json_t *sc = json_object_get(t, "scope"), *one;
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *secret = json_string_value(json_object_get(t, "token"));
        unsigned mask = 0;
        size_t j;
        json_array_foreach(sc, j, one)
        {
            unsigned m = 0;
            if (ch_scopes_parse(json_string_value(one), &m, NULL) == 0)
                mask |= m;
        }
        if (!name || !secret)
            continue; /* validation already refused these */
        rc = add_secret(a, name, secret, mask, json_integer_value(json_object_get(t, "rateLimit")));
        if (rc)
            return rc;
    }
    ch_oc_auth_recheck(a); /* a token SIGHUP removed or narrowed */
    return 0;
}

static struct ch_auth_entry *entry_from_rec(const struct ch_token_rec *t)
{
    struct ch_auth_entry *e = entry_new(t->name, t->hash_hex, t->scopes);
    if (!e)
        return NULL;
    e->from_db = true;
    e->id = t->id;
    e->rate_limit_rpm = t->rate_limit_rpm;
    e->expires_ms = t->expires_ms;
    e->last_used_ms = t->last_used_ms;
    return e;
}

int ch_auth_add_db(struct ch_api *a, const struct ch_token_rec *t)
{
    struct ch_auth_entry *e = entry_from_rec(t);
    return e ? put(a, e) : CH_ENOMEM;
}

void ch_auth_drop_name(struct ch_api *a, const char *name)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL) {
        struct ch_auth_entry *e = me->value;
        if (e->from_db && !strcmp(e->name, name))
            drop(a, e);
    }
    ch_oc_auth_recheck(a); /* its WS connections end with it */
}

/* Replace the db-sourced set with list, keeping pending last-used times. */
void ch_auth_replace_db(struct ch_api *a, struct ch_token_list *list)
{
    struct ch_map keep;
    struct ch_map_entry *me;
    size_t it = 0;

    ch_map_init(&keep);
    for (size_t i = 0; i < list->count; i++) {
        const struct ch_token_rec *t = &list->items[i];
        if (!t->revoked_ms)
            ch_map_set(&keep, t->hash_hex, 64, (void *)t, NULL);
    }
    while ((me = ch_map_next(&a->auth.by_hash, &it)) != NULL) {
        struct ch_auth_entry *e = me->value;
        const struct ch_token_rec *t;
        if (!e->from_db)
            continue;
        t = ch_map_get(&keep, e->hash_hex, 64);
        if (!t) {
            drop(a, e);
            continue;
        }
        e->scopes = t->scopes;
        e->rate_limit_rpm = t->rate_limit_rpm;
        e->expires_ms = t->expires_ms;
        e->id = t->id;                      /* an entry added before its id was known */
        ch_map_del(&keep, e->hash_hex, 64); /* already cached */
    }
    it = 0;
    while ((me = ch_map_next(&keep, &it)) != NULL) {
        struct ch_auth_entry *e = entry_from_rec(me->value);
        if (e)
            put(a, e);
    }
    ch_map_release(&keep);
    ch_token_list_release(list);
    /* Revoked by the CLI, expired, or scopes changed in the table: the
     * WS connections it authenticated must not outlive that. */
    ch_oc_auth_recheck(a);
}

struct ch_auth_entry *ch_auth_find(struct ch_api *a, const char *secret, size_t len)
{
    char hex[65];
    struct ch_auth_entry *e;

    if (len == 0 || len > 512)
        return NULL;
    ch_sha256_hex(secret, len, hex);
    e = ch_map_get(&a->auth.by_hash, hex, 64);
    /* The map compares hashes with memcmp; re-check in constant time so
     * no timing depends on secret bytes (only on their hash). */
    if (!e || !ch_ct_eq(e->hash_hex, hex, 64))
        return NULL;
    if (e->expires_ms && e->expires_ms <= ch_now_ms())
        return NULL;
    return e;
}

struct ch_auth_entry *ch_auth_find_id(struct ch_api *a, int64_t id, int64_t now_ms)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while (id > 0 && (me = ch_map_next(&a->auth.by_hash, &it)) != NULL) {
        struct ch_auth_entry *e = me->value;
        if (e->from_db && e->id == id)
            return e->expires_ms && e->expires_ms <= now_ms ? NULL : e;
    }
    return NULL;
}

/* ---- failed attempts per address ---- */

/* Addresses tracked at once (bounded memory under a spray of addresses). */
#define FAIL_TRACK_MAX 10000

/*
 * The key failures are counted under: the address, or for IPv6 its /64.
 * One host commonly holds a whole /64, so per-address counting would give
 * it 2^64 fresh budgets.  An IPv4-mapped address counts as its IPv4 one.
 */
void ch_auth_fail_key(const char *addr, char *out, size_t cap)
{
    unsigned char b[16];
    char txt[INET6_ADDRSTRLEN];

    if (!strchr(addr, ':') || inet_pton(AF_INET6, addr, b) != 1) {
        snprintf(out, cap, "%s", addr);
        return;
    }
    if (!memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
        snprintf(out, cap, "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        return;
    }
    memset(b + 8, 0, 8);
    if (!inet_ntop(AF_INET6, b, txt, sizeof(txt)))
        snprintf(txt, sizeof(txt), "%s", "?");
    snprintf(out, cap, "%s/64", txt);
}

int64_t ch_auth_fail_check(struct ch_api *a, const char *addr, int64_t now_ms)
{
    char key[CH_AUTH_FAIL_KEY_MAX];
    struct ch_auth_fail *f;

    if (a->auth.max_attempts <= 0)
        return 0;
    ch_auth_fail_key(addr, key, sizeof(key));
    f = ch_map_get(&a->auth.fails, key, strlen(key));
    /* Untracked while the table was full of locked-out addresses: those
     * share the overflow bucket's lockout. */
    if (!f)
        f = ch_map_get(&a->auth.fails, CH_AUTH_FAIL_OVERFLOW, 1);
    if (!f)
        return 0;
    return f->locked_until_ms > now_ms ? f->locked_until_ms - now_ms : 0;
}

bool ch_auth_fail_evict(struct ch_map *m, bool (*held)(const void *entry, int64_t now_ms), int64_t now_ms)
{
    struct ch_map_entry *me;
    char victim[CH_AUTH_FAIL_KEY_MAX];
    int64_t oldest = INT64_MAX;
    size_t it = 0, n = 0;

    while ((me = ch_map_next(m, &it)) != NULL) {
        int64_t start = *(const int64_t *)me->value; /* each entry begins with its window start */
        if (held(me->value, now_ms) || start >= oldest || me->keylen >= sizeof(victim))
            continue;
        oldest = start;
        n = me->keylen;
        memcpy(victim, me->key, n);
    }
    if (oldest == INT64_MAX)
        return false;
    ch_free(ch_map_del(m, victim, n));
    return true;
}

static bool locked_out(const void *entry, int64_t now_ms)
{
    return ((const struct ch_auth_fail *)entry)->locked_until_ms > now_ms;
}

void ch_auth_fail_record(struct ch_api *a, const char *addr, int64_t now_ms)
{
    char key[CH_AUTH_FAIL_KEY_MAX];
    struct ch_auth_fail *f;

    if (a->auth.max_attempts <= 0)
        return;
    ch_auth_fail_key(addr, key, sizeof(key));
    f = ch_map_get(&a->auth.fails, key, strlen(key));
    if (!f) {
        if (a->auth.fails.count >= FAIL_TRACK_MAX && !ch_auth_fail_evict(&a->auth.fails, locked_out, now_ms)) {
            /* Every slot holds a locked-out address: count this one in the
             * shared overflow bucket (one entry past the bound) rather than
             * not at all, so new addresses cannot guess without limit. */
            snprintf(key, sizeof(key), "%s", CH_AUTH_FAIL_OVERFLOW);
            f = ch_map_get(&a->auth.fails, key, strlen(key));
        }
    }
    if (!f) {
        f = ch_calloc(1, sizeof(*f));
        if (!f || ch_map_set(&a->auth.fails, key, strlen(key), f, NULL) != 0) {
            ch_free(f);
            return;
        }
        f->window_start_ms = now_ms;
    }
    if (now_ms - f->window_start_ms > a->auth.window_ms) {
        f->window_start_ms = now_ms;
        f->count = 0;
    }
    if (++f->count >= a->auth.max_attempts) {
        f->locked_until_ms = now_ms + a->auth.lockout_ms;
        f->count = 0;
        ch_log_warn("auth: %s locked out for %lld ms after %d failed attempts", key, (long long)a->auth.lockout_ms,
                    a->auth.max_attempts);
    }
}

void ch_auth_sweep(struct ch_api *a, int64_t now)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while ((me = ch_map_next(&a->auth.fails, &it)) != NULL) {
        struct ch_auth_fail *f = me->value;
        if (f->locked_until_ms <= now && now - f->window_start_ms > a->auth.window_ms)
            ch_free(ch_map_del(&a->auth.fails, me->key, me->keylen));
    }
}
