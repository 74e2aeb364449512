/* Unit tests for the api layer's session key helpers (api/session_keys.c):
 * conversation ids are keys without agent:main: only where they name the
 * key again; reserved namespaces in any case; OpenClaw's internal
 * namespaces inside an agent key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "api/internal.h"

static void test_conversation_id(void **state)
{
    (void)state;
    assert_string_equal(ch_api_conversation_id("agent:main:c-1"), "c-1");
    assert_string_equal(ch_api_conversation_id("agent:main:main"), "main");
    assert_string_equal(ch_api_conversation_id("agent:main:conv_x"), "conv_x");
    assert_string_equal(ch_api_conversation_id("agent:main:hook:abc"), "hook:abc");
    /* without the namespace these would be another session, or none */
    assert_string_equal(ch_api_conversation_id("agent:main:agent:ops:x"), "agent:main:agent:ops:x");
    assert_string_equal(ch_api_conversation_id("agent:main:global"), "agent:main:global");
    assert_string_equal(ch_api_conversation_id("agent:ops:x"), "agent:ops:x");
    assert_string_equal(ch_api_conversation_id("global"), "global");
    assert_null(ch_api_conversation_id(NULL));
}

static void test_key(void **state)
{
    char out[CH_SESSION_KEY_MAX + 1];

    (void)state;
    assert_int_equal(ch_api_session_key("S1", out), 0);
    assert_string_equal(out, "agent:main:s1");
    assert_int_equal(ch_api_session_key("agent:main", out), CH_EINVAL);
}

static void test_reserved(void **state)
{
    (void)state;
    assert_true(ch_api_session_key_reserved("agent:main:x"));
    assert_true(ch_api_session_key_reserved(" AGENT:main:x"));
    assert_true(ch_api_session_key_reserved("Cron:1"));
    assert_true(ch_api_session_key_reserved("SUBAGENT:x"));
    assert_true(ch_api_session_key_reserved("acp:x"));
    assert_false(ch_api_session_key_reserved("hook:agent:x"));
    assert_false(ch_api_session_key_reserved("main"));
}

static void test_internal(void **state)
{
    (void)state;
    assert_true(ch_api_session_key_internal("cron:1"));
    assert_true(ch_api_session_key_internal("agent:main:subagent:x"));
    assert_true(ch_api_session_key_internal("agent:ops:acp:x"));
    assert_false(ch_api_session_key_internal("agent:main:main"));
    assert_false(ch_api_session_key_internal("agent:main:hook:cron:1"));
    assert_false(ch_api_session_key_internal("global"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversation_id),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_reserved),
        cmocka_unit_test(test_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
