/*
 * config_test.h: helpers shared by the config layer's unit tests (file
 * reading, validating a text and comparing its messages).  Include after
 * <cmocka.h>; every function is static, so each test binary has its own.
 */
#ifndef CH_TEST_CONFIG_TEST_H
#define CH_TEST_CONFIG_TEST_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"

/* Whole file into an owned (ch_free), NUL-terminated buffer; NULL if unreadable. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct ch_buf b;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    ch_buf_init(&b, 8u << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(ch_buf_append(&b, chunk, n), 0);
    fclose(f);
    assert_int_equal(ch_buf_append(&b, "", 0), 0);
    return ch_buf_detach(&b, len);
}

/* Validate text; returns the error count and keeps the messages in *e. */
static inline size_t validate(const char *text, struct ch_config_errors *e)
{
    int rc;

    memset(e, 0, sizeof(*e));
    rc = ch_config_validate_text(text, strlen(text), e);
    assert_true(rc == 0 || rc == CH_EINVAL);
    assert_int_equal(rc == 0, e->count == 0);
    return e->count;
}

static inline void print_errors(const struct ch_config_errors *e)
{
    for (size_t k = 0; k < e->count; k++)
        printf("    %s\n", e->msgs[k]);
}

/* One error exactly equal to msg. */
static inline void expect_one(const char *text, const char *msg)
{
    struct ch_config_errors e;

    if (validate(text, &e) != 1 || strcmp(e.msgs[0], msg)) {
        printf("  text: %s\n  want: %s\n  got:\n", text, msg);
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
}

/* Every message in want[] appears, in order, and nothing else. */
static inline void expect_all(const char *text, const char *const *want, size_t n)
{
    struct ch_config_errors e;
    bool same = validate(text, &e) == n;

    for (size_t k = 0; same && k < n; k++)
        same = strstr(e.msgs[k], want[k]) != NULL;
    if (!same) {
        printf("  text: %s\n  got:\n", text);
        print_errors(&e);
        fail();
    }
    ch_config_errors_release(&e);
}

static inline void expect_valid(const char *text)
{
    expect_all(text, NULL, 0);
}

#endif
