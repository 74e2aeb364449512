/* Unit tests for api/oc_session_key.c: the session key of a WebSocket
 * request in canonical form and OpenClaw's refusal texts (a malformed
 * `agent:` key named as sent, trimmed, with no method prefix; a key whose
 * canonical form passes chela's limit), and a NULL key as the main one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/oc_internal.h"

static void test_canonical(void **state)
{
    char out[CH_SESSION_KEY_MAX + 1], why[CH_SESSION_KEY_MAX + 64];

    (void)state;
    assert_int_equal(ch_oc_key_canon("Main", out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, "agent:main:main");
    assert_int_equal(ch_oc_key_canon(NULL, out, sizeof(out), why, sizeof(why)), 0);
    assert_string_equal(out, "agent:main:main");
    assert_int_equal(ch_oc_key_canon("AGENT:MAIN:S1", out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, "agent:main:s1");
    assert_int_equal(ch_oc_key_canon("hook:abc", out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, "agent:main:hook:abc");
    assert_int_equal(ch_oc_key_canon("Global", out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, "global");
}

static void test_refusals(void **state)
{
    char out[CH_SESSION_KEY_MAX + 1], why[CH_SESSION_KEY_MAX + 64], big[CH_SESSION_KEY_MAX + 1];

    (void)state;
    assert_int_equal(ch_oc_key_canon("  agent:main ", out, sizeof(out), why, sizeof(why)), CH_EINVAL);
    assert_string_equal(why, "malformed session key \"agent:main\"");
    assert_int_equal(ch_oc_key_canon("agent::x", out, sizeof(out), why, sizeof(why)), CH_EINVAL);
    assert_string_equal(why, "malformed session key \"agent::x\"");
    assert_int_equal(ch_oc_key_canon("agent:main:", out, sizeof(out), NULL, 0), CH_EINVAL);
    /* 510 bytes fit as sent, not with agent:main: before them. */
    memset(big, 'k', CH_SESSION_KEY_MAX - 2);
    big[CH_SESSION_KEY_MAX - 2] = '\0';
    assert_int_equal(ch_oc_key_canon(big, out, sizeof(out), why, sizeof(why)), CH_E_TOO_LARGE);
    assert_non_null(strstr(why, "at most 512 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
