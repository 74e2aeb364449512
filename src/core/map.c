/*
 * map.c: a small open-addressing hash map from owned string keys to
 * borrowed values (FNV-1a, linear probing, tombstones, grows at 70%).
 * Used for rate-limit buckets, token caches and similar per-key state.
 */
#include <string.h>

#include "core/core.h"

#define TOMB ((char *)1)

uint64_t ch_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

void ch_map_init(struct ch_map *m)
{
    memset(m, 0, sizeof(*m));
}

void ch_map_release(struct ch_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            ch_free(m->slots[i].key);
    ch_free(m->slots);
    memset(m, 0, sizeof(*m));
}

static struct ch_map_entry *find(const struct ch_map *m, const char *key, size_t keylen, uint64_t h)
{
    size_t mask, i;

    if (!m->cap)
        return NULL;
    mask = m->cap - 1;
    for (i = h & mask;; i = (i + 1) & mask) {
        struct ch_map_entry *e = &m->slots[i];
        if (!e->key)
            return NULL;
        if (e->key != TOMB && e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    }
}

static int grow(struct ch_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct ch_map_entry *old = m->slots, *ns;
    size_t ocap = m->cap;

    /* Rehash in place when tombstones, not live entries, fill the table. */
    if (m->cap && m->count * 2 < m->cap)
        ncap = m->cap;
    ns = ch_calloc(ncap, sizeof(*ns));
    if (!ns)
        return CH_ENOMEM;
    for (size_t i = 0; i < ocap; i++) {
        struct ch_map_entry *e = &old[i];
        size_t j;
        if (!e->key || e->key == TOMB)
            continue;
        for (j = e->hash & (ncap - 1); ns[j].key; j = (j + 1) & (ncap - 1))
            ;
        ns[j] = *e;
    }
    ch_free(old);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->count;
    return 0;
}

int ch_map_set(struct ch_map *m, const char *key, size_t keylen, void *value, void **old)
{
    uint64_t h = ch_hash_bytes(key, keylen);
    struct ch_map_entry *e = find(m, key, keylen, h);
    size_t i, mask;
    char *k;

    if (old)
        *old = NULL;
    if (e) {
        if (old)
            *old = e->value;
        e->value = value;
        return 0;
    }
    if ((m->used + 1) * 10 >= m->cap * 7) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    k = ch_malloc(keylen + 1);
    if (!k)
        return CH_ENOMEM;
    memcpy(k, key, keylen);
    k[keylen] = '\0';
    mask = m->cap - 1;
    for (i = h & mask; m->slots[i].key && m->slots[i].key != TOMB; i = (i + 1) & mask)
        ;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = k;
    m->slots[i].keylen = keylen;
    m->slots[i].hash = h;
    m->slots[i].value = value;
    m->count++;
    return 0;
}

void *ch_map_get(const struct ch_map *m, const char *key, size_t keylen)
{
    struct ch_map_entry *e = find(m, key, keylen, ch_hash_bytes(key, keylen));
    return e ? e->value : NULL;
}

void *ch_map_del(struct ch_map *m, const char *key, size_t keylen)
{
    struct ch_map_entry *e = find(m, key, keylen, ch_hash_bytes(key, keylen));
    void *v;

    if (!e)
        return NULL;
    v = e->value;
    ch_free(e->key);
    e->key = TOMB;
    e->value = NULL;
    m->count--;
    return v;
}

struct ch_map_entry *ch_map_next(const struct ch_map *m, size_t *iter)
{
    while (*iter < m->cap) {
        struct ch_map_entry *e = &m->slots[(*iter)++];
        if (e->key && e->key != TOMB)
            return e;
    }
    return NULL;
}
