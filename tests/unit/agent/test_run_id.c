/*
 * test_run_id.c: ch_agent_run_id_new (agent/sched.c, ch_uuid7 in core/crypto.c): UUID version 7 ids,
 * 36 characters in the ch_uuid4 layout, the creation time in their first
 * 48 bits, so ids made later sort after earlier ones, and distinct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"

static bool well_formed(const char *id)
{
    if (strlen(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-')
        return false;
    for (int i = 0; i < 36; i++)
        if (i != 8 && i != 13 && i != 18 && i != 23 && !strchr("0123456789abcdef", id[i]))
            return false;
    return id[14] == '7' && strchr("89ab", id[19]) != NULL;
}

static void test_run_id_v7(void **state)
{
    char prev[37], id[37], hex[13];
    int64_t t0 = ch_now_ms(), t1, ms;

    (void)state;
    ch_agent_run_id_new(prev);
    assert_true(well_formed(prev));
    for (int i = 0; i < 1000; i++) {
        ch_agent_run_id_new(id);
        assert_true(well_formed(id));
        assert_string_not_equal(id, prev);
        /* Same millisecond: random order; else later sorts after. */
        if (memcmp(id, prev, 13) != 0)
            assert_true(strcmp(id, prev) > 0);
        memcpy(prev, id, sizeof(id));
    }
    t1 = ch_now_ms();
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    ms = (int64_t)strtoll(hex, NULL, 16);
    assert_true(ms >= t0 && ms <= t1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_id_v7),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
