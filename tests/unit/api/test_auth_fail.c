/* Unit tests for the failed-attempt limiter per address (api/auth.c): a
 * full table never forgets a locked-out address and never lets a new one
 * guess untracked; IPv6 counts by /64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define TRACK_MAX 10000 /* auth.c's bound */

static struct ch_api *new_api(int max_attempts)
{
    struct ch_api *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    ch_map_init(&a->auth.fails);
    a->auth.max_attempts = max_attempts;
    a->auth.window_ms = 60000;
    a->auth.lockout_ms = 300000;
    return a;
}

static void free_api(struct ch_api *a)
{
    struct ch_map_entry *e;
    size_t it = 0;
    while ((e = ch_map_next(&a->auth.fails, &it)) != NULL)
        ch_free(e->value);
    ch_map_release(&a->auth.fails);
    free(a);
}

static void addr_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static void test_key_ipv6_slash64(void **state)
{
    char k[CH_AUTH_FAIL_KEY_MAX];
    (void)state;
    ch_auth_fail_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k, sizeof(k));
    assert_string_equal(k, "2001:db8:1:2::/64");
    ch_auth_fail_key("127.0.0.1", k, sizeof(k));
    assert_string_equal(k, "127.0.0.1");
    ch_auth_fail_key("::ffff:192.0.2.7", k, sizeof(k));
    assert_string_equal(k, "192.0.2.7");
}

static void test_ipv6_hosts_share_their_64(void **state)
{
    struct ch_api *a = new_api(3);
    (void)state;
    ch_auth_fail_record(a, "2001:db8:1:2::1", 1000);
    ch_auth_fail_record(a, "2001:db8:1:2::2", 1000);
    ch_auth_fail_record(a, "2001:db8:1:2:ffff::3", 1000);
    assert_true(ch_auth_fail_check(a, "2001:db8:1:2::99", 1000) > 0);
    assert_int_equal(ch_auth_fail_check(a, "2001:db8:1:3::1", 1000), 0);
    free_api(a);
}

/* A spray of new addresses past the bound must not evict a locked-out one. */
static void test_full_table_keeps_locked_out(void **state)
{
    struct ch_api *a = new_api(2);
    char ip[32];
    (void)state;
    ch_auth_fail_record(a, "192.0.2.1", 1000);
    ch_auth_fail_record(a, "192.0.2.1", 1000);
    assert_true(ch_auth_fail_check(a, "192.0.2.1", 1000) > 0);
    for (int i = 0; i < TRACK_MAX + 50; i++) {
        addr_of(i, ip, sizeof(ip));
        ch_auth_fail_record(a, ip, 2000 + i);
    }
    assert_true(a->auth.fails.count <= TRACK_MAX + 1);
    assert_true(ch_auth_fail_check(a, "192.0.2.1", 20000) > 0);
    /* the newest address is tracked (an older unlocked one made room) */
    ch_auth_fail_record(a, ip, 20000);
    assert_true(ch_auth_fail_check(a, ip, 20000) > 0);
    free_api(a);
}

/* Every slot locked out: new addresses count in a shared bucket that locks. */
static void test_full_of_locked_out_overflows(void **state)
{
    struct ch_api *a = new_api(1);
    char ip[32];
    (void)state;
    for (int i = 0; i < TRACK_MAX; i++) {
        addr_of(i, ip, sizeof(ip));
        ch_auth_fail_record(a, ip, 1000);
    }
    assert_int_equal(ch_auth_fail_check(a, "192.0.2.200", 1000), 0);
    ch_auth_fail_record(a, "192.0.2.200", 1000);
    assert_true(ch_auth_fail_check(a, "192.0.2.200", 1000) > 0);
    assert_true(ch_auth_fail_check(a, "192.0.2.201", 1000) > 0);
    addr_of(5, ip, sizeof(ip));
    assert_true(ch_auth_fail_check(a, ip, 1000) > 0);
    free_api(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_ipv6_slash64),
        cmocka_unit_test(test_ipv6_hosts_share_their_64),
        cmocka_unit_test(test_full_table_keeps_locked_out),
        cmocka_unit_test(test_full_of_locked_out_overflows),
    };
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT); /* 10,000 lockout warnings are noise here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
