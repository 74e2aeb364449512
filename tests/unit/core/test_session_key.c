/* Unit tests for core/session_key.c: OpenClaw's canonical session key, case
 * by case as its resolveSessionStoreKey answers them (the forms a client
 * may send for one session all give the same key), the platform ids whose
 * case is kept, malformed agent keys, and the length limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/core.h"

static void canon_is(const char *in, const char *want)
{
    char out[CH_SESSION_KEY_MAX + 1];
    int rc = ch_session_key_canon(in, strlen(in), out, sizeof(out));

    if (rc != 0)
        fail_msg("'%s': rc %d, want '%s'", in, rc, want);
    if (strcmp(out, want))
        fail_msg("'%s' -> '%s', want '%s'", in, out, want);
}

static void canon_fails(const char *in, int want_rc)
{
    char out[CH_SESSION_KEY_MAX + 1];
    assert_int_equal(ch_session_key_canon(in, strlen(in), out, sizeof(out)), want_rc);
}

static void test_main_aliases(void **state)
{
    (void)state;
    canon_is("main", "agent:main:main");
    canon_is("Main", "agent:main:main");
    canon_is(" MAIN ", "agent:main:main");
    canon_is("", "agent:main:main");
    canon_is("agent:main:main", "agent:main:main");
    canon_is("AGENT:MAIN:MAIN", "agent:main:main");
}

static void test_bare_keys_join_the_agent_namespace(void **state)
{
    (void)state;
    canon_is("s1", "agent:main:s1");
    canon_is("S1", "agent:main:s1");
    canon_is("agent:main:s1", "agent:main:s1");
    canon_is("AGENT:MAIN:S1", "agent:main:s1");
    canon_is("hook:abc", "agent:main:hook:abc");
    canon_is("hook:ABC-12", "agent:main:hook:abc-12");
    canon_is("openai-user:Alice", "agent:main:openai-user:alice");
    canon_is("agent:other:x", "agent:other:x");
    canon_is("global", "global");
    canon_is("UNKNOWN", "unknown");
    canon_is("globalx", "agent:main:globalx");
}

static void test_platform_ids_keep_their_case(void **state)
{
    (void)state;
    canon_is("Signal:Group:AbCd=", "agent:main:signal:group:AbCd=");
    canon_is("agent:main:telegram:signal:group:XyZ:Thread:7", "agent:main:telegram:signal:group:XyZ:thread:7");
    canon_is("matrix:channel:!RoomId:Example.org", "agent:main:matrix:channel:!RoomId:Example.org");
    canon_is("agent:main:matrix:group:!Ab:Host:THREAD:$Ev", "agent:main:matrix:group:!Ab:Host:thread:$Ev");
    canon_is("xmatrix:channel:AB", "agent:main:xmatrix:channel:ab");
}

static void test_malformed_and_too_long(void **state)
{
    char big[CH_SESSION_KEY_MAX + 2], out[CH_SESSION_KEY_MAX + 1];
    size_t bare = CH_SESSION_KEY_MAX - strlen("agent:main:");

    (void)state;
    canon_fails("agent:main", CH_EINVAL);
    canon_fails("agent::x", CH_EINVAL);
    canon_fails("agent:main:", CH_EINVAL);
    canon_fails("agent:main::x", CH_EINVAL);
    canon_fails(":x", CH_EINVAL); /* would make agent:main::x */
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    canon_fails(big, CH_E_TOO_LARGE);
    /* A bare key fits with room for "agent:main:", and not a byte more. */
    assert_int_equal(ch_session_key_canon(big, bare, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), CH_SESSION_KEY_MAX);
    assert_int_equal(ch_session_key_canon(big, bare + 1, out, sizeof(out)), CH_E_TOO_LARGE);
    assert_int_equal(ch_session_key_canon("s1", 2, out, 13), CH_E_TOO_LARGE); /* "agent:main:s1" needs 14 */
    assert_int_equal(ch_session_key_canon("s1", 2, out, 14), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_aliases),
        cmocka_unit_test(test_bare_keys_join_the_agent_namespace),
        cmocka_unit_test(test_platform_ids_keep_their_case),
        cmocka_unit_test(test_malformed_and_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
