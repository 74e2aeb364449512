/*
 * Unit tests for the outbox's I/O-free rules (src/api/outbox_policy.c):
 * the three signature schemes against vectors computed with Python's
 * hmac module exactly as seeds 002 and 004 verify them, which outcomes are
 * retried, the backoff and its cap, Retry-After, and what a caller may
 * put in a delivery's URL and headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "api/outbox_int.h"

/* hmac.new(b"your-webhook-secret", BODY, sha256).hexdigest() and the same
 * over b"1700000000." + BODY. */
#define BODY "{\"event\":\"run.completed\",\"data\":{\"x\":1}}"
#define HEX "98bbc14ca5fd9ba0ef90f3d7b9214ab437f81128b6a5f0cc5a2f502cb8a5ccb0"
#define HEX_V2 "ccbead05cb268b2fefcdae1c95e7bff25553f49880247a0033ec984e2668cb81"

static void test_sign_vectors(void **state)
{
    struct ch_outbox_sig s;
    (void)state;

    assert_int_equal(ch_outbox_sign("your-webhook-secret", 19, BODY, strlen(BODY), 1700000000, &s), 0);
    /* seed 004: bare lowercase hex, compared with hmac.compare_digest */
    assert_string_equal(s.hex, HEX);
    /* seed 002: 'sha256=' + hexdigest */
    assert_string_equal(s.sha256, "sha256=" HEX);
    assert_string_equal(s.timestamp, "1700000000");
    assert_string_equal(s.v2, "v1=" HEX_V2);
}

static void test_sign_empty_and_binary(void **state)
{
    static const char bin[] = {0, 1, 2, (char)0xff, (char)0xc3, (char)0xbc}; /* NUL, bytes, "ü" */
    struct ch_outbox_sig s;
    (void)state;

    assert_int_equal(ch_outbox_sign("k", 1, "", 0, 1700000000, &s), 0);
    assert_string_equal(s.hex, "8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620");
    assert_string_equal(s.v2, "v1=5c2999a43333a6877f49c8003f235c4f6de40f85b1b7414b70bd470a8db53d97");
    /* the body is signed byte for byte, NULs included */
    assert_int_equal(ch_outbox_sign("key", 3, bin, sizeof(bin), 42, &s), 0);
    assert_string_equal(s.hex, "d2db534737a5035647c4a1a48c7ee3a279a5f08f4fff267f4fd4617ac3290af7");
    assert_string_equal(s.timestamp, "42");
    assert_string_equal(s.v2, "v1=7d0214d7bee325096fccc281500c1c4ccb601878b420e11fe5f93d09c3798907");
}

static void test_sign_differs_by_secret_and_time(void **state)
{
    struct ch_outbox_sig a, b;
    (void)state;

    ch_outbox_sign("secret-a", 8, BODY, strlen(BODY), 100, &a);
    ch_outbox_sign("secret-b", 8, BODY, strlen(BODY), 100, &b);
    assert_string_not_equal(a.hex, b.hex);
    ch_outbox_sign("secret-a", 8, BODY, strlen(BODY), 101, &b);
    assert_string_equal(a.hex, b.hex);   /* V1 has no time in it... */
    assert_string_not_equal(a.v2, b.v2); /* ...V2 does, so a replay can be refused */
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(ch_outbox_classify(0, 200), CH_OUTBOX_DONE);
    assert_int_equal(ch_outbox_classify(0, 204), CH_OUTBOX_DONE);
    assert_int_equal(ch_outbox_classify(0, 299), CH_OUTBOX_DONE);
    /* a 2xx head decides even if reading the body failed afterwards */
    assert_int_equal(ch_outbox_classify(CH_E_TOO_LARGE, 200), CH_OUTBOX_DONE);
    assert_int_equal(ch_outbox_classify(0, 500), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(0, 502), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(0, 503), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(0, 408), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(0, 429), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(0, 400), CH_OUTBOX_PERMANENT);
    assert_int_equal(ch_outbox_classify(0, 401), CH_OUTBOX_PERMANENT);
    assert_int_equal(ch_outbox_classify(0, 404), CH_OUTBOX_PERMANENT);
    assert_int_equal(ch_outbox_classify(0, 422), CH_OUTBOX_PERMANENT); /* auto_trader's schema refusal */
    assert_int_equal(ch_outbox_classify(0, 301), CH_OUTBOX_PERMANENT); /* redirects are not followed */
    /* no head: refused, reset, timed out, canceled */
    assert_int_equal(ch_outbox_classify(CH_EIO, 0), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(CH_ETIMEDOUT, 0), CH_OUTBOX_RETRY);
    assert_int_equal(ch_outbox_classify(CH_ECANCELED, 0), CH_OUTBOX_RETRY);
}

static void test_backoff(void **state)
{
    (void)state;
    /* no jitter: 5 s, 10 s, 20 s, 40 s */
    assert_int_equal(ch_outbox_backoff_ms(5000, 1, 0), 5000);
    assert_int_equal(ch_outbox_backoff_ms(5000, 2, 0), 10000);
    assert_int_equal(ch_outbox_backoff_ms(5000, 3, 0), 20000);
    assert_int_equal(ch_outbox_backoff_ms(5000, 4, 0), 40000);
    /* jitter adds at most 10% */
    assert_int_equal(ch_outbox_backoff_ms(5000, 1, UINT32_MAX), 5500);
    int64_t mid = ch_outbox_backoff_ms(5000, 1, UINT32_MAX / 2);
    assert_true(mid >= 5249 && mid <= 5251);
    /* capped, and never overflowing even for absurd attempt counts */
    assert_int_equal(ch_outbox_backoff_ms(5000, 100, 0), CH_OUTBOX_MAX_DELAY_MS);
    assert_int_equal(ch_outbox_backoff_ms(5000, INT64_MAX, UINT32_MAX), CH_OUTBOX_MAX_DELAY_MS);
    assert_int_equal(ch_outbox_backoff_ms(INT64_MAX / 2, 3, UINT32_MAX), CH_OUTBOX_MAX_DELAY_MS);
    /* odd inputs are clamped, not trusted */
    assert_int_equal(ch_outbox_backoff_ms(-5, 1, 0), 0);
    assert_int_equal(ch_outbox_backoff_ms(100, 0, 0), 100);
    assert_int_equal(ch_outbox_backoff_ms(100, -3, 0), 100);
}

static void test_retry_after(void **state)
{
    int64_t now = 784111777000LL; /* Sun, 06 Nov 1994 08:49:37 GMT */
    (void)state;

    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("120"), now), 120000);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR(" 7 "), now), 7000);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("0"), now), 0);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("999999999"), now), CH_OUTBOX_MAX_DELAY_MS);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("Sun, 06 Nov 1994 08:50:07 GMT"), now), 30000);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("Sun, 06 Nov 1994 08:00:00 GMT"), now), 0); /* past */
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("Sun, 06 Nov 2094 08:00:00 GMT"), now), CH_OUTBOX_MAX_DELAY_MS);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR(""), now), -1);
    assert_int_equal(ch_outbox_retry_after_ms((struct ch_str){NULL, 0}, now), -1);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("-5"), now), -1);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("1.5"), now), -1);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("soon"), now), -1);
    assert_int_equal(ch_outbox_retry_after_ms(CH_STR("Sun, 06 Nov 1994 08:50:07 GMT trailing"), now), -1);
    /* longer than any date: refused without reading past the slice */
    assert_int_equal(
        ch_outbox_retry_after_ms(CH_STR("Sun, 06 Nov 1994 08:50:07 GMT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), now), -1);
}

static void test_check_url(void **state)
{
    struct ch_error err = {0};
    char big[CH_STORE_MAX_URL_BYTES + 16];
    (void)state;

    assert_int_equal(ch_outbox_check_url("http://127.0.0.1:8000/api/v1/openclaw/callback", &err), 0);
    assert_int_equal(ch_outbox_check_url("HTTPS://example.com", &err), 0);
    assert_int_equal(ch_outbox_check_url(NULL, &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("ftp://example.com/x", &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "http://"));
    assert_int_equal(ch_outbox_check_url("file:///etc/passwd", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("http://", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("http:///path", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("http://a b/", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_url("http://a/\r\nX: y", &err), CH_EINVAL);
    memcpy(big, "http://h/", 9);
    memset(big + 9, 'a', sizeof(big) - 10);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ch_outbox_check_url(big, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "longer"));
}

static void test_check_header(void **state)
{
    struct ch_error err = {0};
    char big[9000];
    (void)state;

    assert_int_equal(ch_outbox_check_header("Authorization", "Bearer abc", &err), 0);
    assert_int_equal(ch_outbox_check_header("X-Custom", "a\tb", &err), 0);
    assert_int_equal(ch_outbox_check_header("Content-Type", "application/json", &err), 0);
    assert_int_equal(ch_outbox_check_header("X-Empty", "", &err), 0);
    assert_int_equal(ch_outbox_check_header("", "v", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("Bad Name", "v", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("Bad:Name", "v", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("X-A", "a\r\nInjected: 1", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("X-A", NULL, &err), CH_EINVAL);
    /* what the gateway sets itself cannot be overridden */
    assert_int_equal(ch_outbox_check_header("content-length", "1", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("Host", "evil", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("X-OpenClaw-Signature", "x", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("x-openclaw-delivery", "x", &err), CH_EINVAL);
    assert_int_equal(ch_outbox_check_header("X-Signature-256", "x", &err), CH_EINVAL);
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ch_outbox_check_header("X-Big", big, &err), CH_EINVAL);
}

static void test_json_type_and_log_url(void **state)
{
    char out[160];
    (void)state;

    assert_true(ch_outbox_is_json_type("application/json"));
    assert_true(ch_outbox_is_json_type("Application/JSON; charset=utf-8"));
    assert_true(ch_outbox_is_json_type("application/vnd.api+json"));
    assert_false(ch_outbox_is_json_type("text/plain"));
    assert_false(ch_outbox_is_json_type("application/jsonx"));
    assert_false(ch_outbox_is_json_type(NULL));
    /* logs never show the query or a password */
    ch_url_for_log("https://user:pw@example.com:8443/cb?token=secret#x", out, sizeof(out));
    assert_string_equal(out, "https://example.com:8443/cb");
    ch_url_for_log("http://h", out, sizeof(out));
    assert_string_equal(out, "http://h");
    ch_url_for_log("nonsense", out, sizeof(out));
    assert_string_equal(out, "?");
    ch_url_for_log("http://very-long-host/path", out, 10);
    assert_int_equal(strlen(out), 9);
}

static void test_event_names(void **state)
{
    json_t *a;
    (void)state;

    assert_int_equal(ch_webhooks_event_bit("message.received"), 1u);
    assert_int_equal(ch_webhooks_event_bit("run.completed"), 1u << 3);
    assert_int_equal(ch_webhooks_event_bit("media"), 1u << 9);
    assert_int_equal(ch_webhooks_event_bit("run.started"), 0);
    assert_int_equal(ch_webhooks_event_bit(NULL), 0);
    assert_int_equal(ch_webhooks_events_mask(NULL), CH_WEBHOOKS_ALL_EVENTS);
    a = json_pack("[]");
    assert_int_equal(ch_webhooks_events_mask(a), CH_WEBHOOKS_ALL_EVENTS);
    json_decref(a);
    a = json_pack("[s, s, s]", "run.failed", "status", "nope");
    assert_int_equal(ch_webhooks_events_mask(a), (1u << 4) | (1u << 8));
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_vectors),
        cmocka_unit_test(test_sign_empty_and_binary),
        cmocka_unit_test(test_sign_differs_by_secret_and_time),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_check_url),
        cmocka_unit_test(test_check_header),
        cmocka_unit_test(test_json_type_and_log_url),
        cmocka_unit_test(test_event_names),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
