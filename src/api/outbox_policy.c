/*
 * outbox_policy.c: the I/O-free rules of the outbox, kept apart so unit
 * tests can pin them (tests/unit/api/test_signing.c): the three signature
 * schemes, which outcomes are retried, the backoff, Retry-After, and what
 * a caller may put in a URL or a header.
 *
 * Signatures: seed 004's Django receiver checks X-OpenClaw-Signature as
 * bare lowercase hex HMAC-SHA256 of the raw body; seed 002's verifier
 * compares 'sha256=' + hexdigest; the timestamped V2 binds the time into
 * the MAC ("<ts>.<body>") so a receiver can refuse replays.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/outbox_int.h"

int ch_outbox_sign(const char *secret, size_t secret_len, const void *body, size_t len, int64_t unix_s,
                   struct ch_outbox_sig *out)
{
    struct ch_buf b;
    int rc;

    ch_hmac_sha256_hex(secret, secret_len, body, len, out->hex);
    snprintf(out->sha256, sizeof(out->sha256), "sha256=%s", out->hex);
    snprintf(out->timestamp, sizeof(out->timestamp), "%lld", (long long)unix_s);
    /* V2 signs "<ts>.<body>": one buffer, capped a little above the
     * largest body the store accepts. */
    ch_buf_init(&b, (size_t)CH_STORE_MAX_DELIVERY_BODY_BYTES + sizeof(out->timestamp) + 1);
    rc = ch_buf_appendf(&b, "%s.", out->timestamp);
    if (rc == 0 && len)
        rc = ch_buf_append(&b, body, len);
    if (rc == 0) {
        char mac[65];
        ch_hmac_sha256_hex(secret, secret_len, b.data, b.len, mac);
        snprintf(out->v2, sizeof(out->v2), "v1=%s", mac);
    }
    ch_buf_release(&b);
    return rc;
}

enum ch_outbox_verdict ch_outbox_classify(int rc, long status)
{
    (void)rc; /* without a head every failure is transient: refused, reset, timed out */
    if (status <= 0)
        return CH_OUTBOX_RETRY;
    if (status >= 200 && status <= 299)
        return CH_OUTBOX_DONE;
    if (status == 408 || status == 429 || status >= 500)
        return CH_OUTBOX_RETRY;
    /* 1xx as final (cannot happen with curl), 3xx (redirects are not
     * followed: a moved receiver is a configuration error) and the other
     * 4xx: the receiver refuses this request as it is. */
    return CH_OUTBOX_PERMANENT;
}

int64_t ch_outbox_backoff_ms(int64_t backoff_ms, int64_t attempt, uint32_t jitter)
{
    int64_t d = backoff_ms > 0 ? backoff_ms : 0;

    if (attempt < 1)
        attempt = 1;
    /* Doubling stops at the cap, so the shift never overflows. */
    for (int64_t i = 1; i < attempt && d < CH_OUTBOX_MAX_DELAY_MS; i++)
        d *= 2;
    if (d > CH_OUTBOX_MAX_DELAY_MS)
        d = CH_OUTBOX_MAX_DELAY_MS;
    /* Up to 10% more, so deliveries that failed together spread out. */
    d += (int64_t)((uint64_t)d / 10 * (uint64_t)jitter / UINT32_MAX);
    return CH_MIN(d, CH_OUTBOX_MAX_DELAY_MS);
}

int64_t ch_outbox_retry_after_ms(struct ch_str value, int64_t now_ms)
{
    struct ch_str v = ch_str_trim(value);
    char tmp[64];
    struct tm tm;
    uint64_t secs;
    const char *end;
    int64_t at;

    if (!v.p || v.len == 0 || v.len >= sizeof(tmp))
        return -1;
    if (ch_str_to_u64(v, UINT32_MAX, &secs) == 0)
        return CH_MIN((int64_t)secs * 1000, CH_OUTBOX_MAX_DELAY_MS);
    /* IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT". */
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    memset(&tm, 0, sizeof(tm));
    end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    at = (int64_t)timegm(&tm) * 1000;
    if (at <= now_ms)
        return 0;
    return CH_MIN(at - now_ms, CH_OUTBOX_MAX_DELAY_MS);
}

int ch_outbox_check_url(const char *url, struct ch_error *err)
{
    size_t n, skip;
    const char *host;

    if (!url || !*url)
        return ch_error_set(err, CH_EINVAL, "url is required");
    n = strnlen(url, CH_STORE_MAX_URL_BYTES + 1);
    if (n > CH_STORE_MAX_URL_BYTES)
        return ch_error_set(err, CH_EINVAL, "url is longer than %d bytes", CH_STORE_MAX_URL_BYTES);
    if (!strncasecmp(url, "http://", 7))
        skip = 7;
    else if (!strncasecmp(url, "https://", 8))
        skip = 8;
    else
        return ch_error_set(err, CH_EINVAL, "url must start with http:// or https://");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return ch_error_set(err, CH_EINVAL, "url contains spaces or control characters");
    host = url + skip;
    if (!*host || *host == '/' || *host == ':' || *host == '?' || *host == '#')
        return ch_error_set(err, CH_EINVAL, "url has no host");
    return 0;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int ch_outbox_check_header(const char *name, const char *value, struct ch_error *err)
{
    static const char *const reserved[] = {"host",       "content-length", "transfer-encoding",
                                           "connection", "expect",         "x-signature-256"};
    size_t n;

    if (!name || !*name)
        return ch_error_set(err, CH_EINVAL, "a header name is empty");
    n = strlen(name);
    if (n > 128)
        return ch_error_set(err, CH_EINVAL, "header name '%.32s...' is too long", name);
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return ch_error_set(err, CH_EINVAL, "header name '%.64s' is not a valid token", name);
    for (size_t i = 0; i < CH_ARRAY_SIZE(reserved); i++)
        if (!strcasecmp(name, reserved[i]))
            return ch_error_set(err, CH_EINVAL, "header '%s' is set by the gateway", name);
    if (!strncasecmp(name, "x-openclaw-", 11))
        return ch_error_set(err, CH_EINVAL, "X-OpenClaw-* headers are set by the gateway");
    if (!value)
        return ch_error_set(err, CH_EINVAL, "header '%.64s' has no string value", name);
    if (strnlen(value, 8193) > 8192)
        return ch_error_set(err, CH_EINVAL, "header '%.64s' is longer than 8192 bytes", name);
    for (const char *p = value; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return ch_error_set(err, CH_EINVAL, "header '%.64s' contains control characters", name);
    return 0;
}

int ch_outbox_check_headers(const json_t *h, struct ch_error *err)
{
    const json_t *v;
    const char *k;
    size_t n;
    char *text;
    int rc;

    if (!h || json_is_null(h))
        return 0;
    if (!json_is_object(h) || json_object_size(h) > CH_OUTBOX_MAX_HEADERS)
        return ch_error_set(err, CH_EINVAL, "headers must be an object of at most %d strings", CH_OUTBOX_MAX_HEADERS);
    json_object_foreach((json_t *)h, k, v)
    {
        if ((rc = ch_outbox_check_header(k, json_string_value(v), err)) != 0)
            return rc;
    }
    /* Measured as stored: 32 headers of 8 KiB each would pass the checks
     * above, yet the store keeps at most this much per webhook and per
     * delivery, and a set over it could never be queued. */
    if (!(text = json_dumps(h, JSON_COMPACT)))
        return CH_ENOMEM;
    n = strlen(text);
    ch_free_secret(text);
    if (n > CH_STORE_MAX_HEADERS_JSON_BYTES)
        return ch_error_set(err, CH_EINVAL,
                            "headers are %zu bytes as JSON; at most %d bytes of header names and values are kept", n,
                            CH_STORE_MAX_HEADERS_JSON_BYTES);
    return 0;
}

int ch_outbox_split_headers(const json_t *h, char **out, const char **ctype, struct ch_error *err)
{
    json_t *copy, *v;
    const char *k;
    int rc;

    *out = NULL;
    if ((rc = ch_outbox_check_headers(h, err)) != 0 || !h || json_is_null(h))
        return rc;
    if (!(copy = json_object()))
        return CH_ENOMEM;
    json_object_foreach((json_t *)h, k, v)
    {
        if (!strcasecmp(k, "content-type")) {
            *ctype = json_string_value(v);
            continue;
        }
        if (json_object_set(copy, k, v) != 0) {
            rc = CH_ENOMEM;
            break;
        }
    }
    if (rc == 0 && json_object_size(copy) && !(*out = json_dumps(copy, JSON_COMPACT)))
        rc = CH_ENOMEM;
    json_decref(copy);
    return rc;
}

char *ch_outbox_snippet_text(const char *p, size_t len)
{
    struct ch_buf b;

    /* The snippet's end may cut a character the receiver sent whole: that
     * tail is dropped rather than shown as invalid.  Anything else
     * ill-formed becomes U+FFFD, and controls spaces (one line). */
    ch_buf_init(&b, len * 3 + 1);
    if (ch_buf_append_utf8_clean(&b, p, ch_utf8_cut(p, len)) != 0) {
        ch_buf_release(&b);
        return NULL;
    }
    if (!b.data)
        return ch_strdup("");
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f)
            b.data[i] = ' ';
    return ch_buf_detach(&b, NULL);
}

bool ch_outbox_is_json_type(const char *ct)
{
    size_t n;
    const char *semi;

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    semi = strchr(ct, ';');
    n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16))
        return true;
    return n > 5 && !strncasecmp(ct + n - 5, "+json", 5);
}
