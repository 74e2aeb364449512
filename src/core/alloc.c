/*
 * alloc.c: the one allocator (STYLE.md 8.3 rule 8).
 *
 * Each block carries a 16-byte header holding its size, so live bytes are
 * exact and SQLite's xSize can be answered.  Counters are atomic because
 * the store's writer thread and the libuv pool allocate too.  Fault
 * injection (ch_alloc_fail_after) lets tests fail the N-th allocation.
 */
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/core.h"

#define HDR 16 /* keeps the user pointer 16-byte aligned */

static atomic_size_t live_bytes;
static atomic_size_t live_blocks;
static atomic_long fail_countdown; /* 0: off; n: the n-th call fails */

static bool should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return false;
    n = atomic_fetch_sub(&fail_countdown, 1);
    return n == 1;
}

void *ch_malloc(size_t n)
{
    unsigned char *p;

    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof(n));
    atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p + HDR;
}

static size_t block_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - HDR, sizeof(n));
    return n;
}

void *ch_calloc(size_t count, size_t n)
{
    void *p;

    if (n && count > SIZE_MAX / n)
        return NULL;
    p = ch_malloc(count * n);
    if (p)
        memset(p, 0, count * n);
    return p;
}

void *ch_realloc(void *p, size_t n)
{
    unsigned char *q;
    size_t old;

    if (!p)
        return ch_malloc(n);
    if (n == 0) {
        ch_free(p);
        return NULL;
    }
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    old = block_size(p);
    q = realloc((unsigned char *)p - HDR, n + HDR);
    if (!q)
        return NULL;
    memcpy(q, &n, sizeof(n));
    if (n >= old)
        atomic_fetch_add_explicit(&live_bytes, n - old, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&live_bytes, old - n, memory_order_relaxed);
    return q + HDR;
}

void ch_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&live_bytes, block_size(p), memory_order_relaxed);
    atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    free((unsigned char *)p - HDR);
}

char *ch_strndup(const char *s, size_t n)
{
    char *d;
    size_t len = 0;

    if (!s)
        return NULL;
    while (len < n && s[len])
        len++;
    d = ch_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *ch_strdup(const char *s)
{
    return s ? ch_strndup(s, strlen(s)) : NULL;
}

char *ch_sprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = ch_malloc((size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void ch_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void ch_free_secret(char *s)
{
    if (!s)
        return;
    ch_wipe(s, strlen(s));
    ch_free(s);
}

size_t ch_alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}

size_t ch_alloc_live_blocks(void)
{
    return atomic_load(&live_blocks);
}

void ch_alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n < 0 ? 0 : n);
}

/* Adapters for the libraries' allocator hooks. */
static void *ossl_malloc(size_t n, const char *f, int l)
{
    (void)f, (void)l;
    return ch_malloc(n);
}
static void *ossl_realloc(void *p, size_t n, const char *f, int l)
{
    (void)f, (void)l;
    return ch_realloc(p, n);
}
static void ossl_free(void *p, const char *f, int l)
{
    (void)f, (void)l;
    ch_free(p);
}

static void *sq_malloc(int n)
{
    return n < 0 ? NULL : ch_malloc((size_t)n);
}
static void *sq_realloc(void *p, int n)
{
    return n < 0 ? NULL : ch_realloc(p, (size_t)n);
}
static int sq_size(void *p)
{
    return p ? (int)block_size(p) : 0;
}
static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}
static int sq_init(void *d)
{
    (void)d;
    return SQLITE_OK;
}
static void sq_shutdown(void *d)
{
    (void)d;
}

/*
 * Install once, before any library allocates.  Safe to call twice (tests
 * call it from every main()).  SQLite refuses reconfiguration after
 * initialisation, and OpenSSL after its first allocation; both failures
 * are harmless (the library keeps the system allocator) and reported.
 */
int ch_alloc_install(void)
{
    static bool done;
    static const sqlite3_mem_methods sq = {
        (void *(*)(int))sq_malloc,
        ch_free,
        (void *(*)(void *, int))sq_realloc,
        sq_size,
        sq_roundup,
        sq_init,
        sq_shutdown,
        NULL,
    };
    int rc = 0;

    if (done)
        return 0;
    done = true;
    if (uv_replace_allocator(ch_malloc, ch_realloc, ch_calloc, ch_free) != 0)
        rc = CH_ESTATE;
    json_set_alloc_funcs(ch_malloc, ch_free);
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK)
        rc = CH_ESTATE;
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
        rc = CH_ESTATE;
    return rc;
}
