/*
 * providers_test.h: helpers shared by the provider-layer unit tests:
 * reading case files, listing case directories in a stable order, a
 * growable text buffer for rendering results, and C-style escaping so
 * expected outputs stay one line per event.  Test scaffolding uses libc
 * malloc so the allocator's live counts measure only the code under test.
 */
#ifndef CH_PROVIDERS_TEST_H
#define CH_PROVIDERS_TEST_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "providers/providers.h"

/* The whole file, NUL-terminated (malloc); NULL if it does not exist. */
static inline char *tfile_read(const char *path, size_t *len)
{
    if (len)
        *len = 0; /* defined on every path (gcc -O2 checks the callers) */
    FILE *f = fopen(path, "rb");
    char *p;
    long n;

    if (!f)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return p;
}

static int tcmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Subdirectory names of `dir`, sorted; *count set.  Free with tnames_free. */
static inline char **tdir_list(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL, path[1024];
    size_t n = 0;
    struct stat st;

    if (!d)
        fail_msg("cannot open case directory %s (run from the repository root)", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        v = realloc(v, (n + 1) * sizeof(*v));
        assert_non_null(v);
        v[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof(*v), tcmp_names);
    *count = n;
    return v;
}

static inline void tnames_free(char **v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

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

static inline void tout_printf(struct tout *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
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
        fail_msg("%s: output differs\n--- got ---\n%s--- want ---\n%s", what, got ? got : "",
                 want ? want : "");
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
