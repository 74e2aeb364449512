/*
 * test_check_text.c: ch_store_check_text refuses control bytes in a
 * one-line text eight bytes at a time; it must answer exactly as the byte
 * loop it replaced, for every byte value at every position and length.
 */
#include "store_test.h"
#include "store/internal.h"

static bool has_control_bytes(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static void test_matches_byte_loop(void **state)
{
    char s[48];
    size_t len = 0;

    (void)state;
    for (size_t n = 1; n < 40; n++) {
        for (size_t pos = 0; pos < n; pos++) {
            for (int b = 1; b < 256; b++) {
                /* Around the byte: plain, high (UTF-8) and DEL-adjacent. */
                for (size_t i = 0; i < n; i++)
                    s[i] = (char)(i % 3 == 0 ? 'a' : i % 3 == 1 ? 0xc3 : 0x7e);
                s[pos] = (char)b;
                s[n] = '\0';
                int rc = ch_store_check_text(s, 64, true, false, "t", &len, NULL);
                assert_int_equal(rc, has_control_bytes(s, n) ? CH_EINVAL : 0);
                if (rc == 0)
                    assert_int_equal(len, n);
                /* Multi-line text is not checked for control bytes. */
                assert_int_equal(ch_store_check_text(s, 64, true, true, "t", NULL, NULL), 0);
            }
        }
    }
}

static void test_limits(void **state)
{
    (void)state;
    assert_int_equal(ch_store_check_text(NULL, 8, true, false, "t", NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_store_check_text(NULL, 8, false, false, "t", NULL, NULL), 0);
    assert_int_equal(ch_store_check_text("", 8, true, false, "t", NULL, NULL), CH_EINVAL);
    assert_int_equal(ch_store_check_text("12345678", 8, true, false, "t", NULL, NULL), 0);
    assert_int_equal(ch_store_check_text("123456789", 8, true, false, "t", NULL, NULL), CH_E_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_byte_loop),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
