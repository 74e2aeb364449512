/*
 * test_keys.c: API-key rotation (keys.c) on a fake clock: round robin, a
 * 429 cooling down only that key (Retry-After, else 30 s doubling to
 * 5 min), 401/403 disabling a key for 10 minutes, the soonest-available
 * delay when every key is out, state carried over a reload by key, the
 * JSON view, and that no key text ever reaches the log.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "providers/client.h"

static const char *const three[] = {"key-alpha-0000", "key-bravo-1111", "key-charlie-2222"};

static struct ch_llm_keyring *ring3(void)
{
    struct ch_llm_keyring *r;

    assert_int_equal(ch_llm_keyring_new("anthropic", three, 3, NULL, &r), 0);
    return r;
}

static size_t pick(struct ch_llm_keyring *r, int64_t now)
{
    size_t i = 99;
    int64_t wait = -1;

    assert_int_equal(ch_llm_keyring_pick(r, now, &i, &wait), 0);
    return i;
}

static void test_round_robin(void **state)
{
    struct ch_llm_keyring *r = ring3();
    struct ch_llm_keyring *empty;
    size_t i;
    int64_t w;

    (void)state;
    assert_int_equal(pick(r, 0), 0);
    assert_int_equal(pick(r, 0), 1);
    assert_int_equal(pick(r, 0), 2);
    assert_int_equal(pick(r, 0), 0);
    assert_int_equal(r->keys[0].uses, 2);
    assert_true(ch_llm_keyring_has_free(r, 0, SIZE_MAX));
    ch_llm_keyring_free(r);

    assert_int_equal(ch_llm_keyring_new("local", NULL, 0, NULL, &empty), 0);
    assert_int_equal(ch_llm_keyring_pick(empty, 0, &i, &w), CH_ENOTFOUND);
    assert_int_equal(ch_llm_keyring_wait_ms(empty, 0), -1);
    assert_false(ch_llm_keyring_has_free(empty, 0, SIZE_MAX));
    ch_llm_keyring_free(empty);
    ch_llm_keyring_free(NULL);
}

static void test_rate_limit_cools_one_key(void **state)
{
    struct ch_llm_keyring *r = ring3();
    int64_t t = 1000000;
    int k;

    (void)state;
    assert_int_equal(pick(r, t), 0);
    assert_int_equal(ch_llm_keyring_rate_limited(r, 0, 5000, t), 5000);
    /* The others keep serving while key 0 cools down. */
    for (k = 0; k < 10; k++)
        assert_int_not_equal(pick(r, t + 4999), 0);
    assert_true(ch_llm_keyring_has_free(r, t, 0));
    assert_true(ch_llm_keyring_has_free(r, t, 1)); /* key 2 is free */
    /* Back in the rotation once its window has passed. */
    r->next = 0;
    assert_int_equal(pick(r, t + 5000), 0);
    ch_llm_keyring_free(r);
}

static void test_default_cooldown_doubles(void **state)
{
    struct ch_llm_keyring *r = ring3();
    const int64_t want[] = {30000, 60000, 120000, 240000, 300000, 300000};
    int64_t t = 0;
    size_t n;

    (void)state;
    for (n = 0; n < CH_ARRAY_SIZE(want); n++) {
        assert_int_equal(ch_llm_keyring_rate_limited(r, 1, -1, t), want[n]);
        assert_int_equal(r->keys[1].cool_until_ms, t + want[n]);
        t += want[n];
    }
    assert_int_equal(r->keys[1].rate_limits, CH_ARRAY_SIZE(want));
    /* A good answer ends the streak: the next 429 starts at 30 s again. */
    ch_llm_keyring_succeeded(r, 1);
    assert_int_equal(ch_llm_keyring_rate_limited(r, 1, -1, t), 30000);
    /* A server's Retry-After is believed, within an hour. */
    assert_int_equal(ch_llm_keyring_rate_limited(r, 2, 7200000, t), CH_LLM_MAX_RETRY_AFTER_MS);
    assert_int_equal(ch_llm_keyring_rate_limited(r, 2, 0, t), 0);
    /* Out-of-range indexes are ignored. */
    assert_int_equal(ch_llm_keyring_rate_limited(r, 3, 10, t), 0);
    ch_llm_keyring_auth_failed(r, 3, t);
    ch_llm_keyring_succeeded(r, 3);
    ch_llm_keyring_free(r);
}

static void test_all_cooling(void **state)
{
    struct ch_llm_keyring *r = ring3();
    size_t i = 99;
    int64_t w = -1;

    (void)state;
    ch_llm_keyring_rate_limited(r, 0, 9000, 0);
    ch_llm_keyring_rate_limited(r, 1, 4000, 0);
    ch_llm_keyring_auth_failed(r, 2, 0);
    assert_int_equal(ch_llm_keyring_pick(r, 1000, &i, &w), CH_AGAIN);
    assert_int_equal(w, 3000); /* key 1 comes back first */
    assert_int_equal(ch_llm_keyring_wait_ms(r, 1000), 3000);
    assert_int_equal(ch_llm_keyring_wait_ms(r, 4000), 0);
    assert_int_equal(i, 99);
    assert_false(ch_llm_keyring_has_free(r, 1000, SIZE_MAX));
    assert_int_equal(pick(r, 4000), 1);
    ch_llm_keyring_free(r);
}

static void test_auth_disables(void **state)
{
    struct ch_llm_keyring *r = ring3();
    size_t i, k;
    int64_t w;

    (void)state;
    for (k = 0; k < 3; k++)
        ch_llm_keyring_auth_failed(r, k, 0);
    assert_int_equal(ch_llm_keyring_pick(r, 1, &i, &w), CH_EPERM);
    assert_int_equal(w, CH_LLM_KEY_AUTH_DISABLE_MS - 1);
    assert_int_equal(ch_llm_keyring_pick(r, CH_LLM_KEY_AUTH_DISABLE_MS - 1, &i, &w), CH_EPERM);
    /* Ten minutes later they are tried again (a key may be re-enabled). */
    assert_int_equal(ch_llm_keyring_pick(r, CH_LLM_KEY_AUTH_DISABLE_MS, &i, &w), 0);
    /* Disabled beats cooling in the state shown. */
    ch_llm_keyring_rate_limited(r, 0, 100, CH_LLM_KEY_AUTH_DISABLE_MS);
    ch_llm_keyring_auth_failed(r, 0, CH_LLM_KEY_AUTH_DISABLE_MS);
    assert_int_equal(r->keys[0].auth_failures, 2);
    /* One disabled, two cooling: CH_AGAIN, not CH_EPERM. */
    ch_llm_keyring_rate_limited(r, 1, 100, CH_LLM_KEY_AUTH_DISABLE_MS);
    ch_llm_keyring_rate_limited(r, 2, 100, CH_LLM_KEY_AUTH_DISABLE_MS);
    assert_int_equal(ch_llm_keyring_pick(r, CH_LLM_KEY_AUTH_DISABLE_MS, &i, &w), CH_AGAIN);
    assert_int_equal(w, 100);
    ch_llm_keyring_free(r);
}

static void test_reload_carries_state(void **state)
{
    const char *const next[] = {"key-new-3333", "key-charlie-2222", "key-alpha-0000"};
    struct ch_llm_keyring *r = ring3(), *r2;

    (void)state;
    ch_llm_keyring_rate_limited(r, 0, 10000, 0); /* alpha */
    ch_llm_keyring_auth_failed(r, 1, 0);         /* bravo, gone after the reload */
    ch_llm_keyring_rate_limited(r, 2, -1, 0);    /* charlie */
    assert_int_equal(ch_llm_keyring_new("anthropic", next, 3, r, &r2), 0);
    assert_int_equal(r2->keys[0].cool_until_ms, 0);
    assert_int_equal(r2->keys[0].rate_limits, 0);
    assert_int_equal(r2->keys[1].cool_until_ms, 30000);
    assert_int_equal(r2->keys[1].strikes, 1);
    assert_int_equal(r2->keys[2].cool_until_ms, 10000);
    assert_int_equal(pick(r2, 1), 0);
    assert_int_equal(pick(r2, 1), 0);
    ch_llm_keyring_free(r);
    ch_llm_keyring_free(r2);
}

/* Everything logged while fn runs, and the JSON view, never hold a key. */
static void test_no_key_text_anywhere(void **state)
{
    struct ch_llm_keyring *r = ring3();
    char path[] = "/tmp/chela-keys-log-XXXXXX", buf[8192];
    int fd = mkstemp(path), saved = dup(2);
    json_t *j;
    char *dump;
    ssize_t n;
    size_t k;

    (void)state;
    assert_true(fd >= 0 && saved >= 0);
    ch_log_setup(CH_LOG_DEBUG, CH_LOG_TEXT);
    ch_log_flush();
    assert_int_equal(dup2(fd, 2), 2);
    ch_llm_keyring_rate_limited(r, 0, -1, 0);
    ch_llm_keyring_auth_failed(r, 1, 0);
    ch_log_flush();
    dup2(saved, 2);
    close(saved);
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
    assert_non_null(strstr(buf, "key #0 rate-limited"));
    assert_non_null(strstr(buf, "key #1 was rejected"));
    j = ch_llm_keyring_json(r, 1);
    assert_int_equal(json_array_size(j), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "state")), "cooling");
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "state")), "disabled");
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 2), "state")), "ok");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "retryInMs")), 29999);
    dump = json_dumps(j, 0);
    for (k = 0; k < 3; k++) {
        assert_null(strstr(buf, three[k]));
        assert_null(strstr(dump, three[k]));
        assert_null(strstr(buf, three[k] + 4)); /* nor a tail of one */
    }
    ch_free(dump);
    json_decref(j);
    ch_llm_keyring_free(r);
}

static void test_alloc_failures(void **state)
{
    struct ch_llm_keyring *r = NULL;
    size_t blocks = ch_alloc_live_blocks();
    long n;
    int rc = CH_ENOMEM;

    (void)state;
    for (n = 1; rc; n++) {
        ch_alloc_fail_after(n);
        rc = ch_llm_keyring_new("p", three, 3, NULL, &r);
        ch_alloc_fail_after(0);
        if (rc) {
            assert_int_equal(rc, CH_ENOMEM);
            assert_null(r);
            assert_int_equal(ch_alloc_live_blocks(), blocks);
        }
    }
    ch_llm_keyring_free(r);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_rate_limit_cools_one_key),
        cmocka_unit_test(test_default_cooldown_doubles),
        cmocka_unit_test(test_all_cooling),
        cmocka_unit_test(test_auth_disables),
        cmocka_unit_test(test_reload_carries_state),
        cmocka_unit_test(test_no_key_text_anywhere),
        cmocka_unit_test(test_alloc_failures),
    };

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
