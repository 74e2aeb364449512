/* Unit tests for core/: capped buffers, the map, parsers, crypto helpers,
 * allocation counting and fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/core.h"

static void test_buf_cap(void **state)
{
    struct ch_buf b;
    (void)state;
    ch_buf_init(&b, 8);
    assert_int_equal(ch_buf_append_str(&b, "12345678"), 0);
    assert_int_equal(ch_buf_append_char(&b, '9'), CH_E_TOO_LARGE);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    ch_buf_consume(&b, 3);
    assert_string_equal(b.data, "45678");
    assert_int_equal(ch_buf_appendf(&b, "%d", 123), 0);
    assert_string_equal(b.data, "45678123");
    assert_int_equal(ch_buf_appendf(&b, "%d", 4), CH_E_TOO_LARGE);
    assert_true(b.cap <= 9);
    ch_buf_release(&b);
}

/* The printf-free helpers against the printf they replace. */
static void test_printf_free(void **state)
{
    static const int64_t vals[] = {0, 1, -1, 9, 10, -10, 4096, 123456789, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    char want[64], dst[8];
    struct ch_buf b;
    char *j;
    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ch_buf_init(&b, 64);
        assert_int_equal(ch_buf_append_i64(&b, vals[i]), 0);
        snprintf(want, sizeof(want), "%lld", (long long)vals[i]);
        assert_string_equal(b.data, want);
        ch_buf_release(&b);
    }
    ch_buf_init(&b, 3);
    assert_int_equal(ch_buf_append_i64(&b, 1234), CH_E_TOO_LARGE);
    ch_buf_release(&b);
    for (size_t cap = 1; cap <= sizeof(dst); cap++) {
        const char *src = "abcdefghij";
        size_t keep = cap - 1 < strlen(src) ? cap - 1 : strlen(src); /* what snprintf(dst, cap, "%s") keeps */
        memcpy(want, src, keep);
        want[keep] = '\0';
        assert_int_equal(ch_str_copy(dst, cap, src), strlen(want));
        assert_string_equal(dst, want);
    }
    j = ch_str_join((struct ch_str){"http://h/v1///", 11}, "/chat");
    assert_string_equal(j, "http://h/v1/chat");
    ch_free(j);
    j = ch_str_join(CH_STR(""), "");
    assert_string_equal(j, "");
    ch_free(j);
}

/* ch_utf8_len: each sequence length, its bounds, and what jansson refuses
 * (overlong forms, surrogates, past U+10FFFF, a stray or cut sequence). */
static void test_utf8_len(void **state)
{
    static const struct {
        const char *s;
        size_t avail, want;
    } cases[] = {
        {"\xc3\xa9", 2, 2},
        {"\xdf\xbf", 2, 2},
        {"\xe2\x82\xac", 3, 3},
        {"\xef\xbf\xbf", 3, 3},
        {"\xf0\x9f\x98\x80", 4, 4},
        {"\xf4\x8f\xbf\xbf", 4, 4},
        {"\xc0\x80", 2, 0},
        {"\xc1\xbf", 2, 0},
        {"\xe0\x9f\xbf", 3, 0},
        {"\xed\xa0\x80", 3, 0},
        {"\xed\xbf\xbf", 3, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0},
        {"\xf4\x90\x80\x80", 4, 0},
        {"\xf5\x80\x80\x80", 4, 0},
        {"\x80", 1, 0},
        {"\xbf", 1, 0},
        {"\xe2\x82\xac", 2, 0},
        {"\xc3(", 2, 0},
        {"\xf0\x9f\x98\x80", 3, 0},
        {"\xff", 1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(ch_utf8_len((const unsigned char *)cases[i].s, cases[i].avail), cases[i].want);
}

/* ch_buf_append_utf8_clean: valid text as is; each bad byte and each NUL
 * ill-formed subpart one U+FFFD; the result is always valid UTF-8 (and
 * ch_utf8_valid says so); a failed append
 * (the cap) leaves the buffer as it was.  ch_utf8_cut never splits. */
static void test_utf8_clean_and_cut(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"plain", 5, "plain"},
        {"caf\xc3\xa9", 5, "caf\xc3\xa9"},
        {"a\xff\xfe"
         "b",
         4,
         "a\xef\xbf\xbd\xef\xbf\xbd"
         "b"},
        {"x\0y", 3, "x\xef\xbf\xbdy"},
        {"\xe2\x82", 2, "\xef\xbf\xbd"}, /* one cut sequence: one U+FFFD (WHATWG) */
        {"\xe2\x82"
         "a\xf0\x9f\x98",
         6,
         "\xef\xbf\xbd"
         "a\xef\xbf\xbd"},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    struct ch_buf b;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch_buf_init(&b, 1024);
        assert_int_equal(ch_buf_append_utf8_clean(&b, cases[i].in, cases[i].n), 0);
        assert_int_equal(b.len, strlen(cases[i].want));
        assert_memory_equal(b.data, cases[i].want, b.len);
        for (size_t k = 0, step; k < b.len; k += step) { /* valid throughout, no NUL */
            const unsigned char *u = (const unsigned char *)b.data + k;
            step = *u >= 0x80 ? ch_utf8_len(u, b.len - k) : *u != 0;
            assert_true(step > 0);
        }
        assert_true(ch_utf8_valid(b.data, b.len));
        ch_buf_release(&b);
    }
    assert_false(ch_utf8_valid("a\xc3", 2));
    assert_false(ch_utf8_valid("\xed\xa0\x80", 3));
    assert_true(ch_utf8_valid("a\0\xc3\xa9", 4));
    ch_buf_init(&b, 4);
    assert_int_equal(ch_buf_append(&b, "ab", 2), 0);
    assert_int_not_equal(ch_buf_append_utf8_clean(&b, "c\xff", 2), 0); /* 2 + 1 + 3 > 4 */
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    ch_buf_release(&b);

    {
        char fix1[] = "ok \xc3\xa9 \xff x \xe2\x82";
        char fix2[] = "\xc3";
        ch_str_utf8_fix(fix1);
        assert_string_equal(fix1, "ok \xc3\xa9 ? x ");
        ch_str_utf8_fix(fix2);
        assert_string_equal(fix2, "");
    }
    /* "a" + e-acute (2) + euro (3) + grinning face (4): cut at each n */
    {
        static const char t[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
        static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10};
        for (size_t n = 0; n < sizeof(want) / sizeof(want[0]); n++)
            assert_int_equal(ch_utf8_cut(t, n), want[n]);
    }
}

/* ch_json_plain_len against a byte loop: every length up to 80 at every
 * alignment, with one stop byte (or none) at every position, both modes;
 * the plain bytes include 0x7f and high bytes so both word and SIMD paths
 * see them. */
static size_t plain_len_ref(const unsigned char *s, size_t n, bool stop_non_ascii)
{
    size_t i = 0;

    while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' && !(stop_non_ascii && s[i] >= 0x80))
        i++;
    return i;
}

static void test_json_plain_len(void **state)
{
    static const unsigned char stops[] = {'"', '\\', 0x00, 0x1f, 0x0a, 0x80, 0xff, 0xc3};
    static const unsigned char plain[] = {'a', ' ', 0x7f, '~', 0xe2, '/', 0x21, 0x5b, 0x5d};
    unsigned char buf[96 + 16];
    size_t n, off, pos, k;
    int mode;

    (void)state;
    for (n = 0; n <= 80; n++)
        for (off = 0; off < 16; off += 5)
            for (pos = 0; pos <= n; pos++)
                for (k = 0; k < sizeof(stops); k++)
                    for (mode = 0; mode < 2; mode++) {
                        unsigned char *s = buf + off;
                        size_t i;

                        for (i = 0; i < n; i++)
                            s[i] = plain[(i * 7 + n) % sizeof(plain)];
                        if (pos < n)
                            s[pos] = stops[k];
                        assert_int_equal(ch_json_plain_len((const char *)s, n, mode), plain_len_ref(s, n, mode));
                    }
}

static void test_buf_json_str(void **state)
{
    struct ch_buf b;
    (void)state;
    ch_buf_init(&b, 64);
    assert_int_equal(ch_buf_append_json_str(&b, "a\"b\\\n\x01", 6), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\\\n\\u0001\"");
    ch_buf_release(&b);
    /* jansson's escapes: \b and \f by name, other controls in capitals. */
    ch_buf_init(&b, 64);
    assert_int_equal(ch_buf_append_json_str(&b, "\b\f\x1f\0", 4), 0);
    assert_string_equal(b.data, "\"\\b\\f\\u001F\\u0000\"");
    ch_buf_release(&b);
    ch_buf_init(&b, 4);
    assert_int_equal(ch_buf_append_json_str(&b, "abcdef", 6), CH_E_TOO_LARGE);
    assert_int_equal(b.len, 0);
    ch_buf_release(&b);
}

static void test_map(void **state)
{
    struct ch_map m;
    char key[32];
    size_t it = 0, seen = 0;
    (void)state;
    ch_map_init(&m);
    for (long i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        assert_int_equal(ch_map_set(&m, key, strlen(key), (void *)(i + 1), NULL), 0);
    }
    assert_int_equal(m.count, 1000);
    for (long i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof(key), "k%ld", i);
        assert_ptr_equal(ch_map_del(&m, key, strlen(key)), (void *)(i + 1));
    }
    assert_int_equal(m.count, 500);
    assert_null(ch_map_get(&m, "k0", 2));
    assert_ptr_equal(ch_map_get(&m, "k1", 2), (void *)2);
    while (ch_map_next(&m, &it))
        seen++;
    assert_int_equal(seen, 500);
    /* churn through tombstones without growing forever */
    for (long i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "t%ld", i);
        ch_map_set(&m, key, strlen(key), (void *)1, NULL);
        ch_map_del(&m, key, strlen(key));
    }
    assert_true(m.cap <= 4096);
    ch_map_release(&m);
}

static void test_mask(void **state)
{
    char s[256];
    size_t n;
    (void)state;
    strcpy(s, "Authorization: Bearer oc_tok_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG done");
    n = ch_log_mask(s, strlen(s));
    assert_int_equal(n, strlen(s));
    assert_null(strstr(s, "ijklmnop"));
    assert_non_null(strstr(s, "done"));
    strcpy(s, "key sk-ant-api03-SECRETSECRETSECRET and AIzaSyA-SECRETSECRET1234");
    ch_log_mask(s, strlen(s));
    assert_null(strstr(s, "SECRETSECRET"));
    strcpy(s, "{\"token\":\"hunter2hunter2\",\"password\":\"pw\"}");
    ch_log_mask(s, strlen(s));
    assert_null(strstr(s, "hunter2hunter2"));
    assert_null(strstr(s, "\"pw\""));
    strcpy(s, "plain text with no secrets, sk and tokens words");
    n = ch_log_mask(s, strlen(s));
    assert_string_equal(s, "plain text with no secrets, sk and tokens words");
    /* After '/', '=', '.', ':' a prefix still starts a secret, and nothing
     * of the secret part is kept. */
    strcpy(s, "access path=/api/v1/tokens/oc_tok_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG status=404");
    ch_log_mask(s, strlen(s));
    assert_string_equal(s, "access path=/api/v1/tokens/oc_tok_**** status=404");
    strcpy(s, "provider key=sk-abcdefghijklmnop x.sk-ant-qrstuvwxyz012345 u:AIzaSyA-SECRETSECRET1234");
    ch_log_mask(s, strlen(s));
    assert_string_equal(s, "provider key=sk-**** x.sk-ant-**** u:AIza****");
    strcpy(s, "Authorization: Bearer abcdefghijklmnop");
    ch_log_mask(s, strlen(s));
    assert_string_equal(s, "Authorization: Bearer ****");
    /* percent-encoded, as a path may carry it (escapes inside the secret too) */
    strcpy(s, "path=/api/v1/tokens/oc%5Ftok%5Fabcdef%5Fghijklmnop status=404");
    ch_log_mask(s, strlen(s));
    assert_string_equal(s, "path=/api/v1/tokens/oc%5Ftok%5F**** status=404");
    /* inside a word a prefix is just letters */
    strcpy(s, "task-abcdefghijkl my_oc_tok_name");
    ch_log_mask(s, strlen(s));
    assert_string_equal(s, "task-abcdefghijkl my_oc_tok_name");
}

static void test_parsers(void **state)
{
    uint64_t v;
    int64_t ms;
    char out[32];
    size_t n;
    (void)state;
    assert_int_equal(ch_parse_size("1MB", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(ch_parse_size("256 KiB", &v), 0);
    assert_int_equal(v, 262144);
    assert_int_equal(ch_parse_size("12", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(ch_parse_size("1XB", &v), CH_EINVAL);
    assert_int_equal(ch_parse_size("-1", &v), CH_EINVAL);
    assert_int_equal(ch_parse_duration_ms("90d", &ms), 0);
    assert_int_equal(ms, 90LL * 86400000);
    assert_int_equal(ch_parse_duration_ms("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(ch_parse_duration_ms("2x", &ms), CH_EINVAL);
    assert_int_equal(ch_str_to_u64(CH_STR("18446744073709551615"), UINT64_MAX, &v), 0);
    assert_int_equal(ch_str_to_u64(CH_STR("18446744073709551616"), UINT64_MAX, &v), CH_EINVAL);
    assert_int_equal(ch_url_decode(CH_STR("a%20b+c"), out, sizeof(out), &n), 0);
    assert_string_equal(out, "a b c");
    assert_int_equal(ch_url_decode(CH_STR("bad%2"), out, sizeof(out), &n), CH_EINVAL);
    assert_int_equal(ch_url_decode(CH_STR("bad%zz"), out, sizeof(out), &n), CH_EINVAL);
    assert_int_equal(ch_url_decode_path(CH_STR("agent%3Amain+x"), out, sizeof(out), &n), 0);
    assert_string_equal(out, "agent:main+x");
    assert_int_equal(ch_url_decode_path(CH_STR("nul%00"), out, sizeof(out), &n), CH_EINVAL);
}

static void test_crypto(void **state)
{
    char hex[65], enc[64];
    uint8_t dec[64];
    size_t n;
    char *tok;
    (void)state;
    ch_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ch_hmac_sha256_hex("key", 3, "The quick brown fox jumps over the lazy dog", 43, hex);
    assert_string_equal(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    assert_true(ch_ct_streq("abc", 3, "abc", 3));
    assert_false(ch_ct_streq("abc", 3, "abd", 3));
    assert_false(ch_ct_streq("abc", 3, "abcd", 4));
    n = ch_base64url_encode((const uint8_t *)"\xff\xfe\xfd\x01", 4, enc);
    assert_string_equal(enc, "__79AQ");
    assert_int_equal(ch_base64_decode(enc, n, dec, sizeof(dec), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(dec, "\xff\xfe\xfd\x01", 4);
    assert_int_equal(ch_base64_decode("/+/9AQ==", 8, dec, sizeof(dec), &n), 0);
    /* standard base64, padded (RFC 4648 test vectors and the bytes above) */
    assert_int_equal(ch_base64_encode((const uint8_t *)"\xff\xfe\xfd\x01", 4, enc), 8);
    assert_string_equal(enc, "//79AQ==");
    ch_base64_encode((const uint8_t *)"foob", 4, enc);
    assert_string_equal(enc, "Zm9vYg==");
    ch_base64_encode((const uint8_t *)"fooba", 5, enc);
    assert_string_equal(enc, "Zm9vYmE=");
    ch_base64_encode((const uint8_t *)"foobar", 6, enc);
    assert_string_equal(enc, "Zm9vYmFy");
    assert_int_equal(ch_base64_encode((const uint8_t *)"", 0, enc), 0);
    assert_int_equal(ch_base64_decode("a$", 2, dec, sizeof(dec), &n), CH_EINVAL);
    tok = ch_random_token("oc_tok_", 43);
    assert_non_null(tok);
    assert_int_equal(strlen(tok), 50);
    assert_memory_equal(tok, "oc_tok_", 7);
    for (size_t i = 7; i < 50; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[i]));
    ch_free_secret(tok);
    ch_uuid4(enc);
    assert_int_equal(strlen(enc), 36);
    assert_int_equal(enc[14], '4');
}

static void test_alloc_counting(void **state)
{
    size_t before = ch_alloc_live_bytes();
    char *p;
    struct ch_buf b;
    int rc = CH_ENOMEM;
    long n;
    (void)state;
    p = ch_malloc(1000);
    assert_int_equal(ch_alloc_live_bytes(), before + 1000);
    p = ch_realloc(p, 10);
    assert_int_equal(ch_alloc_live_bytes(), before + 10);
    ch_free(p);
    assert_int_equal(ch_alloc_live_bytes(), before);
    /* fail allocation N upward until the operation succeeds */
    for (n = 1; rc != 0 && n < 50; n++) {
        ch_buf_init(&b, 1 << 20);
        ch_alloc_fail_after(n);
        rc = ch_buf_appendf(&b, "%0500d", 7);
        ch_alloc_fail_after(0);
        if (rc)
            assert_int_equal(rc, CH_ENOMEM);
        ch_buf_release(&b);
        assert_int_equal(ch_alloc_live_bytes(), before);
    }
    assert_int_equal(rc, 0);
}

/* RssAnon of this process in kB (0 if unreadable). */
static long rss_anon_kb(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/*
 * The housekeeping trim: once the live bytes are back at their floor with
 * freed memory still resident, ch_alloc_tick() hands it back (malloc_trim),
 * well before the periodic one, and the counters are untouched by it.  The
 * freed blocks sit between live ones, so glibc's free() cannot shrink the
 * heap itself and only the trim returns their pages.
 */
#define TRIM_BLOCKS 64
static void test_alloc_trim(void **state)
{
    void *big[TRIM_BLOCKS], *pin[TRIM_BLOCKS];
    size_t bytes, blocks;
    unsigned long n0, n1;
    uint64_t ns;
    long rss_full, rss_trimmed;
    int i, ticks;
    (void)state;
    /* Start just after a trim: at most 30 ticks (the periodic one). */
    for (i = 0; i < 30 && !ch_alloc_tick(); i++)
        ;
    assert_true(i < 30);
    ch_alloc_trim_stats(&n0, &ns);
    bytes = ch_alloc_live_bytes();
    blocks = ch_alloc_live_blocks();
    for (i = 0; i < TRIM_BLOCKS; i++) {
        big[i] = ch_malloc(64 * 1024); /* under glibc's mmap threshold: heap */
        pin[i] = ch_malloc(32);
        assert_non_null(big[i]);
        assert_non_null(pin[i]);
        memset(big[i], 1, 64 * 1024);
    }
    assert_false(ch_alloc_tick()); /* the load is still there */
    for (i = 0; i < TRIM_BLOCKS; i++)
        ch_free(big[i]);
    rss_full = rss_anon_kb();
    for (ticks = 1; ticks <= 29 && !ch_alloc_tick(); ticks++)
        ;
    assert_true(ticks < 29); /* the drop did it, not the periodic trim */
    rss_trimmed = rss_anon_kb();
    ch_alloc_trim_stats(&n1, &ns);
    assert_int_equal(n1, n0 + 1);
#if !defined(__SANITIZE_ADDRESS__)
    /* ASan's allocator is not glibc's: there malloc_trim has nothing to do. */
    assert_true(rss_trimmed <= rss_full - 2048);
#endif
    (void)rss_trimmed;
    (void)rss_full;
    for (i = 0; i < TRIM_BLOCKS; i++)
        ch_free(pin[i]);
    assert_int_equal(ch_alloc_live_bytes(), bytes);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

static void collect(const char *line, size_t len, void *data)
{
    char *out = data;
    strncat(out, line, len);
    strcat(out, "|");
}

static void test_log_tail(void **state)
{
    char out[8192] = "";
    uint64_t cursor = 0;
    bool reset = false;
    size_t n;
    (void)state;
    ch_log_setup(CH_LOG_INFO, CH_LOG_TEXT);
    ch_log_info("tail-one token oc_tok_abcdefghijklmnopqrstuvwxyz");
    ch_log_info("tail-two");
    n = ch_log_tail(&cursor, 1000, 1 << 20, &reset, collect, out);
    assert_true(n >= 2);
    assert_non_null(strstr(out, "tail-one"));
    assert_non_null(strstr(out, "tail-two"));
    assert_null(strstr(out, "ijklmnop")); /* masked before it is kept */
    out[0] = '\0';
    assert_int_equal(ch_log_tail(&cursor, 1000, 1 << 20, &reset, collect, out), 0);
    ch_log_info("tail-three");
    assert_int_equal(ch_log_tail(&cursor, 1000, 1 << 20, &reset, collect, out), 1);
    assert_non_null(strstr(out, "tail-three"));
    /* the ring is bounded: 600 more lines, the cursor falls out, reset says so */
    for (int i = 0; i < 600; i++)
        ch_log_info("filler %d", i);
    out[0] = '\0';
    n = ch_log_tail(&cursor, 5, 1 << 20, &reset, collect, out);
    assert_true(reset); /* the old cursor fell out of the ring */
    assert_int_equal(n, 5);
    n = ch_log_tail(&cursor, 5, 1 << 20, &reset, collect, out);
    assert_false(reset); /* a fresh cursor does not */
    assert_int_equal(n, 5);
    ch_log_flush();
}

static void test_limits(void **state)
{
    struct ch_limits l;
    struct ch_error err = {0};
    (void)state;
    ch_limits_init(&l);
    assert_int_equal(l.v[CH_LIMIT_MAX_CONNECTIONS], 1024);
    assert_int_equal(l.v[CH_LIMIT_MAX_HEAD_BYTES], 32768);
    assert_int_equal(ch_limits_set(&l, "maxHeaders", 50, &err), 0);
    assert_int_equal(l.v[CH_LIMIT_MAX_HEADERS], 50);
    assert_int_equal(ch_limits_set(&l, "maxHeaders", 5, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(ch_limits_set(&l, "nope", 5, &err), CH_ENOTFOUND);
    for (int i = 0; i < CH_LIMIT__COUNT; i++) {
        const struct ch_limit_def *d = ch_limit_def_get((enum ch_limit_id)i);
        assert_non_null(d->name);
        assert_true(d->def >= d->min && d->def <= d->max);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_crypto),
        cmocka_unit_test(test_alloc_counting),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_log_tail),
        cmocka_unit_test(test_alloc_trim),
        cmocka_unit_test(test_json_plain_len),
        cmocka_unit_test(test_utf8_len),
        cmocka_unit_test(test_utf8_clean_and_cut),
        cmocka_unit_test(test_printf_free),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
