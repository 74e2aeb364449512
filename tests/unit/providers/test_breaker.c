/*
 * test_breaker.c: the per-endpoint circuit breaker (breaker.c) on a fake
 * clock: closed until N consecutive failures, open (fast rejections with
 * the time left) for the cooldown, then exactly one half-open probe whose
 * success closes and whose failure re-opens; a success in between resets
 * the count; an aborted probe lets the next call probe; late verdicts of
 * calls from before the trip change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/client.h"

static bool allow(struct ch_llm_breaker *b, int64_t now, bool *probe, int64_t *retry_in)
{
    bool p = false;
    int64_t r = -1;
    int rc = ch_llm_breaker_allow(b, now, &p, &r);

    assert_true(rc == 0 || rc == CH_EBUSY);
    if (probe)
        *probe = p;
    if (retry_in)
        *retry_in = r;
    return rc == 0;
}

static void test_opens_after_threshold(void **state)
{
    struct ch_llm_breaker b = {0};
    bool probe;
    int64_t retry;
    int i;

    (void)state;
    ch_llm_breaker_init(&b, 3, 30000);
    assert_string_equal(ch_llm_breaker_state_name(b.state), "closed");
    for (i = 0; i < 2; i++) {
        assert_true(allow(&b, 0, &probe, NULL));
        assert_false(probe);
        ch_llm_breaker_failure(&b, 100, false);
    }
    assert_int_equal(b.state, CH_LLM_BREAKER_CLOSED);
    assert_int_equal(b.failures, 2);
    ch_llm_breaker_failure(&b, 1000, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
    assert_string_equal(ch_llm_breaker_state_name(b.state), "open");
    assert_int_equal(b.opened, 1);
    /* Open: fast rejections with the time left. */
    assert_false(allow(&b, 1000, NULL, &retry));
    assert_int_equal(retry, 30000);
    assert_false(allow(&b, 30999, NULL, &retry));
    assert_int_equal(retry, 1);
    assert_int_equal(b.rejected, 2);
    /* Cooldown over: one probe, and only one. */
    assert_true(allow(&b, 31000, &probe, NULL));
    assert_true(probe);
    assert_int_equal(b.state, CH_LLM_BREAKER_HALF_OPEN);
    assert_string_equal(ch_llm_breaker_state_name(b.state), "half_open");
    assert_false(allow(&b, 31001, &probe, &retry));
    assert_false(probe);
    assert_true(retry >= 1);
    /* Its success closes the circuit and clears the count. */
    ch_llm_breaker_success(&b, true);
    assert_int_equal(b.state, CH_LLM_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_true(allow(&b, 31002, &probe, NULL));
    assert_false(probe);
}

static void test_probe_failure_reopens(void **state)
{
    struct ch_llm_breaker b = {0};
    bool probe;
    int64_t retry;

    (void)state;
    ch_llm_breaker_init(&b, 1, 500);
    ch_llm_breaker_failure(&b, 0, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
    assert_true(allow(&b, 500, &probe, NULL));
    assert_true(probe);
    ch_llm_breaker_failure(&b, 700, true);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
    assert_int_equal(b.opened, 2);
    /* A fresh cooldown from the probe's failure. */
    assert_false(allow(&b, 1199, NULL, &retry));
    assert_int_equal(retry, 1);
    assert_true(allow(&b, 1200, &probe, NULL));
    assert_true(probe);
}

static void test_success_resets_count(void **state)
{
    struct ch_llm_breaker b = {0};

    (void)state;
    ch_llm_breaker_init(&b, 3, 1000);
    ch_llm_breaker_failure(&b, 0, false);
    ch_llm_breaker_failure(&b, 0, false);
    ch_llm_breaker_success(&b, false); /* failures must be consecutive */
    ch_llm_breaker_failure(&b, 0, false);
    ch_llm_breaker_failure(&b, 0, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_CLOSED);
    ch_llm_breaker_failure(&b, 0, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
}

static void test_released_probe_and_late_verdicts(void **state)
{
    struct ch_llm_breaker b = {0};
    bool probe;

    (void)state;
    ch_llm_breaker_init(&b, 2, 100);
    ch_llm_breaker_failure(&b, 0, false);
    ch_llm_breaker_failure(&b, 0, false);
    /* Verdicts of calls sent before the trip do not move an open breaker. */
    ch_llm_breaker_failure(&b, 50, false);
    ch_llm_breaker_success(&b, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
    assert_int_equal(b.open_until_ms, 100);
    /* A probe that ends with no verdict (aborted) lets the next call probe. */
    assert_true(allow(&b, 100, &probe, NULL));
    assert_true(probe);
    ch_llm_breaker_release(&b, true);
    assert_int_equal(b.state, CH_LLM_BREAKER_HALF_OPEN);
    assert_true(allow(&b, 101, &probe, NULL));
    assert_true(probe);
    /* Non-probe verdicts while half-open change nothing either. */
    ch_llm_breaker_failure(&b, 102, false);
    ch_llm_breaker_success(&b, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_HALF_OPEN);
    ch_llm_breaker_release(&b, false); /* not the probe: no effect */
    assert_false(allow(&b, 103, &probe, NULL));
    ch_llm_breaker_success(&b, true);
    assert_int_equal(b.state, CH_LLM_BREAKER_CLOSED);
}

static void test_init_clamps(void **state)
{
    struct ch_llm_breaker b = {0};

    (void)state;
    ch_llm_breaker_init(&b, 0, 0); /* at least one failure, at least 1 ms */
    assert_int_equal(b.threshold, 1);
    assert_int_equal(b.cooldown_ms, 1);
    ch_llm_breaker_failure(&b, 10, false);
    assert_int_equal(b.state, CH_LLM_BREAKER_OPEN);
    assert_true(allow(&b, 11, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold), cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_success_resets_count),  cmocka_unit_test(test_released_probe_and_late_verdicts),
        cmocka_unit_test(test_init_clamps),
    };

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
