/*
 * test_util.h: helpers every layer's unit tests may share (the Makefile
 * passes -Itests/unit): reading a case file whole and listing case
 * directories in a stable order.  Layer headers (providers_test.h,
 * tools_test.h) include it and add their own.  Test scaffolding uses libc
 * malloc so chela's allocator counts only the code under test.
 */
#ifndef CH_TEST_UTIL_H
#define CH_TEST_UTIL_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

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
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#endif
