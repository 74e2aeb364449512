/*
 * providers_test.h: helpers shared by the provider-layer unit tests, on
 * top of test_util.h (case files and directories): a growable text buffer
 * for rendering results, and C-style escaping so expected outputs stay
 * one line per event.  Test scaffolding uses libc malloc so the
 * allocator's live counts measure only the code under test.
 */
#ifndef CH_PROVIDERS_TEST_H
#define CH_PROVIDERS_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "providers/providers.h"

/* A growable string for rendered output. */
struct tout {
    char *p;
    size_t len, cap;
};

static inline void tout_add(struct tout *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        assert_non_null(o->p);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static inline void tout_printf(struct tout *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void tout_printf(struct tout *o, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    tout_add(o, tmp, (size_t)n);
}

/* Bytes with \n \r \t \\ \" and other controls or non-ASCII as \xHH. */
static inline void tout_esc(struct tout *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    char e[4];

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            tout_add(o, "\\n", 2);
        else if (c == '\r')
            tout_add(o, "\\r", 2);
        else if (c == '\t')
            tout_add(o, "\\t", 2);
        else if (c == '\\')
            tout_add(o, "\\\\", 2);
        else if (c == '"')
            tout_add(o, "\\\"", 2);
        else if (c < 0x20 || c >= 0x7f) {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            tout_add(o, e, 4);
        } else
            tout_add(o, (const char *)&c, 1);
    }
}

static inline void tout_free(struct tout *o)
{
    free(o->p);
    o->p = NULL;
    o->len = o->cap = 0;
}

/* Compare with a message that names the case and shows both texts. */
static inline void texpect_eq(const char *what, const char *got, const char *want)
{
    if (strcmp(got ? got : "", want ? want : "") != 0)
        fail_msg("%s: output differs\n--- got ---\n%s--- want ---\n%s", what, got ? got : "", want ? want : "");
}

/* A stable name for a CH_E* code in expected outputs. */
static inline const char *trc_name(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case CH_ENOMEM: return "nomem";
    case CH_EINVAL: return "invalid";
    case CH_E_TOO_LARGE: return "too_large";
    case CH_EIO: return "io";
    default: return "other";
    }
}

#endif
