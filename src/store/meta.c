/*
 * store/meta.c: the `meta` key/value table (schema bookkeeping, instance
 * identity, anything small that must survive restarts).
 *
 * Keys and values are bounded here so a caller's bug cannot grow the table
 * without limit; meta is not a general blob store.
 */
#include <string.h>

#include "store/internal.h"

#define MAX_META_KEY_BYTES 128
#define MAX_META_VALUE_BYTES (64 * 1024)

static bool key_ok(const char *key)
{
    size_t n;

    if (!key)
        return false;
    n = strnlen(key, MAX_META_KEY_BYTES + 1);
    return n > 0 && n <= MAX_META_KEY_BYTES;
}

int ch_meta_get(struct ch_db *db, const char *key, char **out)
{
    sqlite3_stmt *st = NULL;
    char *value = NULL;
    int rc = CH_EINVAL, src;

    if (!db || !key_ok(key))
        goto out;
    rc = ch_db_prepare(db, "SELECT value FROM meta WHERE key = ?1", &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);

        rc = CH_ENOMEM;
        /* A NULL text with no error means an empty value (NOT NULL column). */
        value = ch_strndup(v ? (const char *)v : "", v ? (size_t)n : 0);
        if (!value)
            goto out;
        rc = 0;
    } else if (src == SQLITE_DONE) {
        rc = 0; /* absent: *out = NULL */
    } else {
        rc = ch_db_err_code(src);
    }
out:
    sqlite3_finalize(st);
    *out = rc ? NULL : value;
    if (rc)
        ch_free(value);
    return rc;
}

int ch_meta_set(struct ch_db *db, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    size_t n;
    int rc = CH_EINVAL, src;

    if (!db || !key_ok(key) || !value)
        goto out;
    n = strnlen(value, MAX_META_VALUE_BYTES + 1);
    if (n > MAX_META_VALUE_BYTES) {
        rc = CH_E_TOO_LARGE;
        goto out;
    }
    rc = ch_db_prepare(db,
                       "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                       " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, (int)n, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    return rc;
}
