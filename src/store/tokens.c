/*
 * store/tokens.c: API tokens and their scopes.
 *
 * A token's secret ("oc_tok_...") is never stored or logged: the table
 * holds its SHA-256 as lowercase hex, and revoking by secret hashes it here
 * first.  Names are unique among live tokens (a partial unique index), so a
 * revoked name can be reused.  "Live" means not revoked; expiry is checked
 * by the auth layer against expires_ms.
 */
#include <string.h>

#include "store/internal.h"

#define TOKEN_SECRET_PREFIX "oc_tok_"
#define MAX_TOKEN_NAME_BYTES 64
#define MAX_TOKEN_SOURCE_BYTES 32
/* A token table is small; the cap keeps a corrupt or hostile file from
 * making `chela token list` allocate without bound. */
#define MAX_TOKEN_LIST 65536

/* ------------------------------------------------------------------ */
/* Scopes                                                               */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    {"chat", CH_SCOPE_CHAT},
    {"send", CH_SCOPE_SEND},
    {"read", CH_SCOPE_READ},
    {"admin", CH_SCOPE_ADMIN},
};

#define SCOPE_ALL (CH_SCOPE_CHAT | CH_SCOPE_SEND | CH_SCOPE_READ | CH_SCOPE_ADMIN)
#define MAX_SCOPES_CSV_BYTES 256

int ch_scopes_parse(const char *csv, unsigned *mask, struct ch_error *err)
{
    struct ch_str rest, item;
    const char *comma;
    unsigned m = 0;
    size_t i, len;
    int rc = CH_EINVAL;

    if (!csv) {
        ch_error_set(err, rc, "no scopes given (valid: chat, send, read, admin)");
        goto out;
    }
    len = strnlen(csv, MAX_SCOPES_CSV_BYTES + 1);
    if (len > MAX_SCOPES_CSV_BYTES) {
        ch_error_set(err, rc, "scope list longer than %d bytes", MAX_SCOPES_CSV_BYTES);
        goto out;
    }
    if (ch_str_trim((struct ch_str){csv, len}).len == 0) {
        ch_error_set(err, rc, "no scopes given (valid: chat, send, read, admin)");
        goto out;
    }
    rest = (struct ch_str){csv, len};
    for (;;) {
        comma = memchr(rest.p, ',', rest.len);
        item = ch_str_trim((struct ch_str){rest.p, comma ? (size_t)(comma - rest.p) : rest.len});
        if (item.len == 0) {
            ch_error_set(err, rc, "empty entry in scope list '%s'", csv);
            goto out;
        }
        for (i = 0; i < CH_ARRAY_SIZE(scope_names); i++)
            if (ch_str_eq_cstr(item, scope_names[i].name))
                break;
        if (i == CH_ARRAY_SIZE(scope_names)) {
            ch_error_set(err, rc, "unknown scope '%.*s' (valid: chat, send, read, admin)", (int)CH_MIN(item.len, 32),
                         item.p);
            goto out;
        }
        m |= scope_names[i].bit;
        if (!comma)
            break;
        rest.len -= (size_t)(comma + 1 - rest.p);
        rest.p = comma + 1;
    }
    rc = 0;
out:
    if (rc == 0)
        *mask = m;
    return rc;
}

void ch_scopes_format(unsigned mask, char *out, size_t outcap)
{
    size_t i, used = 0, n;

    if (!out || outcap == 0)
        return;
    out[0] = '\0';
    for (i = 0; i < CH_ARRAY_SIZE(scope_names); i++) {
        if (!(mask & scope_names[i].bit))
            continue;
        n = strlen(scope_names[i].name);
        if (used + (used ? 1 : 0) + n + 1 > outcap)
            break; /* too small: a clean prefix rather than a cut word */
        if (used)
            out[used++] = ',';
        memcpy(out + used, scope_names[i].name, n);
        used += n;
        out[used] = '\0';
    }
}

/* ------------------------------------------------------------------ */
/* Records                                                              */
/* ------------------------------------------------------------------ */

void ch_token_rec_release(struct ch_token_rec *t)
{
    if (!t)
        return;
    ch_free(t->name);
    ch_free(t->source);
    memset(t, 0, sizeof(*t));
}

void ch_token_list_release(struct ch_token_list *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->count; i++)
        ch_token_rec_release(&l->items[i]);
    ch_free(l->items);
    l->items = NULL;
    l->count = 0;
}

static bool is_hash_hex(const char *h)
{
    size_t i;

    for (i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return h[64] == '\0';
}

static bool is_printable(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int token_validate(const struct ch_token_rec *t, struct ch_error *err)
{
    size_t n;

    if (!t->name || (n = strnlen(t->name, MAX_TOKEN_NAME_BYTES + 1)) == 0)
        return ch_error_set(err, CH_EINVAL, "token name is empty");
    if (n > MAX_TOKEN_NAME_BYTES)
        return ch_error_set(err, CH_EINVAL, "token name longer than %d bytes", MAX_TOKEN_NAME_BYTES);
    if (!is_printable(t->name, n))
        return ch_error_set(err, CH_EINVAL, "token name contains control characters");
    /* Revoke takes "a name or a secret"; a name shaped like a secret would
     * be ambiguous (and would put secret-looking text in logs). */
    if (strncmp(t->name, TOKEN_SECRET_PREFIX, strlen(TOKEN_SECRET_PREFIX)) == 0)
        return ch_error_set(err, CH_EINVAL, "token name must not start with '%s'", TOKEN_SECRET_PREFIX);
    if (!is_hash_hex(t->hash_hex))
        return ch_error_set(err, CH_EINVAL, "token hash is not 64 lowercase hex digits");
    if (t->scopes == 0 || (t->scopes & ~(unsigned)SCOPE_ALL))
        return ch_error_set(err, CH_EINVAL, "token scopes 0x%x are empty or unknown", t->scopes);
    if (t->rate_limit_rpm < 0 || t->created_ms < 0 || t->expires_ms < 0 || t->last_used_ms < 0 || t->revoked_ms < 0)
        return ch_error_set(err, CH_EINVAL, "token has a negative rate limit or time");
    if (t->source && (n = strnlen(t->source, MAX_TOKEN_SOURCE_BYTES + 1),
                      n == 0 || n > MAX_TOKEN_SOURCE_BYTES || !is_printable(t->source, n)))
        return ch_error_set(err, CH_EINVAL, "token source must be 1-%d printable bytes", MAX_TOKEN_SOURCE_BYTES);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

/* 1 if a live token called `name` exists, 0 if not, negative on error. */
static int live_name_exists(struct ch_db *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = ch_db_prepare(db, "SELECT 1 FROM tokens WHERE name = ?1 AND revoked_ms = 0", &st);
    int src;

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : ch_db_err_code(src);
    sqlite3_finalize(st);
    return rc;
}

int ch_tokens_insert(struct ch_db *db, const struct ch_token_rec *t, struct ch_error *err)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (!db || !t)
        return ch_error_set(err, CH_EINVAL, "no token given");
    rc = token_validate(t, err);
    if (rc)
        return rc;
    rc = ch_db_atomic_begin(db, &a);
    if (rc)
        return ch_error_set(err, rc, "begin token insert: %s", sqlite3_errmsg(db->h));
    /* Checked first for a clear message; the unique index still guards
     * against a race with another process. */
    rc = live_name_exists(db, t->name);
    if (rc > 0) {
        rc = ch_error_set(err, CH_EEXIST, "a live token named '%s' already exists", t->name);
        goto out;
    }
    if (rc < 0) {
        ch_error_set(err, rc, "look up token name: %s", sqlite3_errmsg(db->h));
        goto out;
    }
    rc = ch_db_prepare(db,
                       "INSERT INTO tokens(name, hash, scopes, rate_limit, created_ms,"
                       " last_used_ms, expires_ms, revoked_ms, source)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       &st);
    if (rc) {
        ch_error_set(err, rc, "prepare token insert: %s", sqlite3_errmsg(db->h));
        goto out;
    }
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->hash_hex, 64, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)t->scopes);
    sqlite3_bind_int64(st, 4, t->rate_limit_rpm);
    sqlite3_bind_int64(st, 5, t->created_ms);
    sqlite3_bind_int64(st, 6, t->last_used_ms);
    sqlite3_bind_int64(st, 7, t->expires_ms);
    sqlite3_bind_int64(st, 8, t->revoked_ms);
    sqlite3_bind_text(st, 9, t->source ? t->source : "cli", -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = 0;
    } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
        rc = ch_error_set(err, CH_EEXIST, "token '%s' clashes with an existing token (%s)", t->name,
                          sqlite3_errmsg(db->h));
    } else {
        rc = ch_db_fail(db, src, err, "insert token");
    }
out:
    sqlite3_finalize(st);
    return ch_db_atomic_end(db, &a, rc);
}

static int row_to_rec(sqlite3_stmt *st, struct ch_token_rec *t)
{
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *hash = (const char *)sqlite3_column_text(st, 2);
    const char *source = (const char *)sqlite3_column_text(st, 9);

    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(st, 0);
    t->name = ch_strdup(name ? name : "");
    t->source = ch_strdup(source ? source : "");
    if (!t->name || !t->source) {
        ch_token_rec_release(t);
        return CH_ENOMEM;
    }
    /* The column is UNIQUE NOT NULL text; copy at most 64 bytes anyway. */
    if (hash)
        memcpy(t->hash_hex, hash, strnlen(hash, 64));
    t->scopes = (unsigned)sqlite3_column_int64(st, 3);
    t->rate_limit_rpm = sqlite3_column_int64(st, 4);
    t->created_ms = sqlite3_column_int64(st, 5);
    t->last_used_ms = sqlite3_column_int64(st, 6);
    t->expires_ms = sqlite3_column_int64(st, 7);
    t->revoked_ms = sqlite3_column_int64(st, 8);
    return 0;
}

int ch_tokens_list(struct ch_db *db, bool include_revoked, struct ch_token_list *out)
{
    struct ch_token_list l = {NULL, 0};
    struct ch_token_rec *grown;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = CH_EINVAL, src;

    if (!db || !out)
        goto out;
    rc = ch_db_prepare(db,
                       include_revoked ? "SELECT id, name, hash, scopes, rate_limit, created_ms,"
                                         " last_used_ms, expires_ms, revoked_ms, source"
                                         " FROM tokens ORDER BY id"
                                       : "SELECT id, name, hash, scopes, rate_limit, created_ms,"
                                         " last_used_ms, expires_ms, revoked_ms, source"
                                         " FROM tokens WHERE revoked_ms = 0 ORDER BY id",
                       &st);
    if (rc)
        goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (l.count == cap) {
            rc = CH_E_TOO_LARGE;
            if (cap >= MAX_TOKEN_LIST)
                goto out;
            cap = cap ? cap * 2 : 16;
            rc = CH_ENOMEM;
            grown = ch_realloc(l.items, cap * sizeof(*grown));
            if (!grown)
                goto out;
            l.items = grown;
        }
        rc = row_to_rec(st, &l.items[l.count]);
        if (rc)
            goto out;
        l.count++;
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_token_list_release(&l);
    else
        *out = l;
    return rc;
}

int ch_tokens_revoke(struct ch_db *db, const char *name_or_secret, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    char hash[65];
    bool by_secret;
    int rc = CH_EINVAL, src;

    if (!db || !name_or_secret || !name_or_secret[0])
        goto out;
    by_secret = strncmp(name_or_secret, TOKEN_SECRET_PREFIX, strlen(TOKEN_SECRET_PREFIX)) == 0;
    if (by_secret)
        ch_sha256_hex(name_or_secret, strlen(name_or_secret), hash); /* never stored or logged */
    else if (strnlen(name_or_secret, MAX_TOKEN_NAME_BYTES + 1) > MAX_TOKEN_NAME_BYTES) {
        rc = CH_ENOTFOUND; /* no stored name can be this long */
        goto out;
    }
    rc = ch_db_prepare(db,
                       by_secret ? "UPDATE tokens SET revoked_ms = ?1"
                                   " WHERE hash = ?2 AND revoked_ms = 0"
                                 : "UPDATE tokens SET revoked_ms = ?1"
                                   " WHERE name = ?2 AND revoked_ms = 0",
                       &st);
    if (rc)
        goto out;
    /* revoked_ms = 0 means live, so a revocation needs a nonzero stamp. */
    sqlite3_bind_int64(st, 1, now_ms > 0 ? now_ms : 1);
    if (by_secret)
        sqlite3_bind_text(st, 2, hash, 64, SQLITE_STATIC);
    else
        sqlite3_bind_text(st, 2, name_or_secret, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src != SQLITE_DONE)
        rc = ch_db_err_code(src);
    else
        rc = sqlite3_changes(db->h) > 0 ? 0 : CH_ENOTFOUND;
out:
    sqlite3_finalize(st);
    ch_wipe(hash, sizeof(hash));
    return rc;
}

int ch_tokens_touch(struct ch_db *db, const char (*hashes)[65], const int64_t *when_ms, size_t n)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st;
    size_t i;
    int rc, src;

    if (!db || (n > 0 && (!hashes || !when_ms)))
        return CH_EINVAL;
    if (n == 0)
        return 0;
    rc = ch_db_atomic_begin(db, &a);
    if (rc)
        return rc;
    for (i = 0; i < n; i++) {
        /* MAX(): touches may arrive out of order from different batches;
         * last_used_ms never moves backwards. */
        rc = ch_db_stmt(db, CH_STMT_TOKEN_TOUCH,
                        "UPDATE tokens SET last_used_ms = MAX(last_used_ms, ?1) WHERE hash = ?2", &st);
        if (rc)
            break;
        sqlite3_bind_int64(st, 1, when_ms[i]);
        sqlite3_bind_text(st, 2, hashes[i], (int)strnlen(hashes[i], 64), SQLITE_STATIC);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE) {
            rc = ch_db_err_code(src);
            break;
        }
    }
    return ch_db_atomic_end(db, &a, rc);
}

int64_t ch_tokens_count_live(struct ch_db *db)
{
    sqlite3_stmt *st = NULL;
    int64_t count;
    int rc, src;

    if (!db)
        return CH_EINVAL;
    rc = ch_db_prepare(db, "SELECT COUNT(*) FROM tokens WHERE revoked_ms = 0", &st);
    if (rc)
        return rc;
    src = sqlite3_step(st);
    count = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : ch_db_err_code(src);
    sqlite3_finalize(st);
    return count;
}
