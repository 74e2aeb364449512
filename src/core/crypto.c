/*
 * crypto.c: randomness, hashes, HMAC, constant-time comparison and the
 * encodings secrets travel in.  Everything goes through OpenSSL.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

int ch_random_bytes(void *out, size_t n)
{
    if (n > INT32_MAX || RAND_bytes(out, (int)n) != 1)
        return CH_EIO;
    return 0;
}

/*
 * ch_uuid4 draws from a per-thread pool of CSPRNG bytes: RAND_bytes costs
 * ~13,000 instructions a call (locks, DRBG), a few times per accepted
 * hook, while one call filling 32 ids costs little more.  The pool is
 * per thread (no lock) and emptied in a forked child, so a parent and its
 * child never hand out the same bytes.
 */
#define UUID_POOL_BYTES 512

static _Thread_local struct {
    uint8_t b[UUID_POOL_BYTES];
    size_t off; /* bytes used; UUID_POOL_BYTES: empty */
    bool primed;
} uuid_pool;
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;

static void uuid_pool_on_fork(void)
{
    OPENSSL_cleanse(uuid_pool.b, sizeof(uuid_pool.b));
    uuid_pool.off = UUID_POOL_BYTES;
}

static void uuid_pool_setup(void)
{
    pthread_atfork(NULL, NULL, uuid_pool_on_fork);
}

void ch_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    char *o = out;

    if (!uuid_pool.primed) {
        pthread_once(&uuid_once, uuid_pool_setup);
        uuid_pool.off = UUID_POOL_BYTES;
        uuid_pool.primed = true;
    }
    if (uuid_pool.off > UUID_POOL_BYTES - sizeof(b)) {
        if (ch_random_bytes(uuid_pool.b, sizeof(uuid_pool.b)) != 0)
            memset(uuid_pool.b, 0, sizeof(uuid_pool.b)); /* RAND failure is fatal elsewhere; ids stay well-formed */
        uuid_pool.off = 0;
    }
    memcpy(b, uuid_pool.b + uuid_pool.off, sizeof(b));
    memset(uuid_pool.b + uuid_pool.off, 0, sizeof(b)); /* handed out once */
    uuid_pool.off += sizeof(b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

/* RFC 9562 version 7: the first 48 bits are the Unix time in ms, the rest
 * random, so ids sort by creation: a table keyed by them (the store's
 * runs) inserts at the right edge of its index instead of at a random
 * page.  Built on a v4 (random bits, variant, hyphens), time and version
 * written over it. */
void ch_uuid7(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = (uint64_t)ch_now_ms();

    ch_uuid4(out);
    for (int i = 11, d = 0; i >= 0; i--, d++)
        out[i < 8 ? i : i + 1] = hex[(ms >> (4 * d)) & 0xf]; /* 8 hex, '-', 4 hex */
    out[14] = '7';
}

char *ch_random_token(const char *prefix, size_t nchars)
{
    size_t plen = strlen(prefix), nbytes = (nchars * 3 + 3) / 4 + 1;
    uint8_t *raw;
    char *enc, *out = NULL;

    raw = ch_malloc(nbytes);
    enc = ch_malloc(4 * ((nbytes + 2) / 3) + 1);
    if (!raw || !enc)
        goto out;
    if (ch_random_bytes(raw, nbytes) != 0)
        goto out;
    ch_base64url_encode(raw, nbytes, enc);
    out = ch_malloc(plen + nchars + 1);
    if (!out)
        goto out;
    memcpy(out, prefix, plen);
    memcpy(out + plen, enc, nchars);
    out[plen + nchars] = '\0';
out:
    if (raw)
        ch_wipe(raw, nbytes);
    if (enc)
        ch_wipe(enc, strlen(enc));
    ch_free(raw);
    ch_free(enc);
    return out;
}

/* SHA256() fetches the algorithm (a locked lookup by name) on every call:
 * 5,700 instructions for a 53-byte API token, hashed on every request.
 * Fetched once, EVP_Digest costs 3,400. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void ch_sha256(const void *p, size_t n, uint8_t out[32])
{
    pthread_once(&g_sha256_once, sha256_fetch);
    if (!g_sha256 || !EVP_Digest(p, n, out, NULL, g_sha256, NULL))
        SHA256(p, n, out); /* the fetch failed (out of memory): the slow way */
}

void ch_sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    ch_sha256(p, n, d);
    ch_hex_encode(d, 32, out);
}

void ch_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &len);
}

void ch_hmac_sha256_hex(const void *key, size_t keylen, const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    ch_hmac_sha256(key, keylen, p, n, d);
    ch_hex_encode(d, 32, out);
}

bool ch_ct_eq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* Compare in time that depends only on the lengths, never on where the
 * first difference is. */
bool ch_ct_streq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = CH_MAX(alen, blen);
    unsigned char diff = (unsigned char)(alen != blen);

    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

void ch_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static size_t b64_encode(const char *tbl, bool pad, const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    while (pad && o % 4)
        out[o++] = '=';
    out[o] = '\0';
    return o;
}

size_t ch_base64url_encode(const uint8_t *p, size_t n, char *out)
{
    return b64_encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false, p, n, out);
}

size_t ch_base64_encode(const uint8_t *p, size_t n, char *out)
{
    return b64_encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true, p, n, out);
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int ch_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    while (inlen && in[inlen - 1] == '=')
        inlen--;
    for (size_t i = 0; i < inlen; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return CH_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outcap)
                return CH_E_TOO_LARGE;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6) /* a lone trailing symbol cannot encode a byte */
        return CH_EINVAL;
    *outlen = o;
    return 0;
}
