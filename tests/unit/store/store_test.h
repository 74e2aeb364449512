/*
 * store_test.h: helpers shared by the store unit tests: a private temp
 * directory per test (mkdtemp) removed with everything in it afterwards,
 * and small wrappers that open a database or fail the test.
 */
#ifndef CH_STORE_TEST_H
#define CH_STORE_TEST_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

struct tmpdir {
    char path[256];
};

static inline void tmpdir_make(struct tmpdir *t)
{
    const char *base = getenv("TMPDIR");

    snprintf(t->path, sizeof(t->path), "%s/chela-store-XXXXXX", base && base[0] ? base : "/tmp");
    assert_non_null(mkdtemp(t->path));
}

static inline void tmpdir_file(const struct tmpdir *t, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", t->path, name);

    assert_true(n > 0 && (size_t)n < cap);
}

/* Remove every entry of the directory (flat: the tests make no subdirs
 * except where they rmdir them themselves), then the directory. */
static inline void tmpdir_remove(struct tmpdir *t)
{
    char p[512];
    struct dirent *e;
    DIR *d = opendir(t->path);

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", t->path, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    assert_int_equal(rmdir(t->path), 0);
}

static inline struct ch_db *db_open_or_fail(const char *path, bool readonly, bool migrate)
{
    struct ch_db_opts o = {.path = path, .readonly = readonly, .migrate = migrate};
    struct ch_error e = {0};
    struct ch_db *db = NULL;
    int rc = ch_db_open(&o, &db, &e);

    if (rc)
        fail_msg("ch_db_open(%s): %d %s", path, rc, e.msg);
    assert_non_null(db);
    return db;
}

/* Run a query returning one integer through the raw handle. */
static inline int64_t db_query_int(struct ch_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static inline void db_exec_or_fail(struct ch_db *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(ch_db_handle(db), sql, NULL, NULL, &msg) != SQLITE_OK) {
        char copy[256];

        snprintf(copy, sizeof(copy), "%s", msg ? msg : "?");
        sqlite3_free(msg);
        fail_msg("exec '%s': %s", sql, copy);
    }
}

#endif
