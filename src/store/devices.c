/*
 * store/devices.c: OpenClaw device pairing state (issue #5, spec 1.4):
 * paired devices, one hashed token per device and role, and pending
 * pairing requests.  The gateway holds all of it in memory
 * (src/api/oc_pairing.c) and writes every change through these calls, so
 * each write replaces a whole row (a device and its tokens together)
 * rather than patching columns.  The tables are small by design: the caps
 * below bound what a corrupt or hostile file can make the loader allocate.
 * Since schema version 7 a token row carries the API token it depends on
 * and a request its source (store.h says why).
 */
#include <stdio.h>
#include <string.h>

#include "store/internal.h"

/* ---- records ---- */

static void free_fields(char **f[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ch_free(*f[i]);
        *f[i] = NULL;
    }
}

void ch_device_rec_release(struct ch_device_rec *d)
{
    if (!d)
        return;
    char **f[] = {&d->device_id,   &d->public_key, &d->display_name, &d->platform, &d->device_family, &d->client_id,
                  &d->client_mode, &d->remote_ip,  &d->roles,        &d->scopes,   &d->approved_via};
    free_fields(f, CH_ARRAY_SIZE(f));
    for (size_t i = 0; i < CH_DEVICE_MAX_TOKENS; i++)
        ch_free(d->tokens[i].scopes);
    memset(d, 0, sizeof(*d));
}

void ch_device_list_release(struct ch_device_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        ch_device_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

void ch_device_request_rec_release(struct ch_device_request_rec *r)
{
    if (!r)
        return;
    char **f[] = {&r->request_id,    &r->device_id, &r->public_key,  &r->display_name, &r->platform,
                  &r->device_family, &r->client_id, &r->client_mode, &r->remote_ip,    &r->role,
                  &r->roles,         &r->scopes,    &r->source};
    free_fields(f, CH_ARRAY_SIZE(f));
    memset(r, 0, sizeof(*r));
}

void ch_device_request_list_release(struct ch_device_request_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        ch_device_request_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* *dst = copy of src (NULL stays NULL); false when out of memory. */
static bool dup_field(char **dst, const char *src)
{
    *dst = src ? ch_strdup(src) : NULL;
    return !src || *dst;
}

int ch_device_rec_copy(struct ch_device_rec *out, const struct ch_device_rec *d)
{
    bool ok;

    memset(out, 0, sizeof(*out));
    out->created_ms = d->created_ms;
    out->approved_ms = d->approved_ms;
    out->last_seen_ms = d->last_seen_ms;
    out->token_count = CH_MIN(d->token_count, (size_t)CH_DEVICE_MAX_TOKENS);
    ok = dup_field(&out->device_id, d->device_id) && dup_field(&out->public_key, d->public_key) &&
         dup_field(&out->display_name, d->display_name) && dup_field(&out->platform, d->platform) &&
         dup_field(&out->device_family, d->device_family) && dup_field(&out->client_id, d->client_id) &&
         dup_field(&out->client_mode, d->client_mode) && dup_field(&out->remote_ip, d->remote_ip) &&
         dup_field(&out->roles, d->roles) && dup_field(&out->scopes, d->scopes) &&
         dup_field(&out->approved_via, d->approved_via);
    for (size_t i = 0; ok && i < out->token_count; i++) {
        out->tokens[i] = d->tokens[i];
        out->tokens[i].scopes = NULL;
        ok = dup_field(&out->tokens[i].scopes, d->tokens[i].scopes);
    }
    if (!ok) {
        ch_device_rec_release(out);
        return CH_ENOMEM;
    }
    return 0;
}

int ch_device_request_rec_copy(struct ch_device_request_rec *out, const struct ch_device_request_rec *r)
{
    bool ok;

    memset(out, 0, sizeof(*out));
    out->is_repair = r->is_repair;
    out->created_ms = r->created_ms;
    ok = dup_field(&out->request_id, r->request_id) && dup_field(&out->device_id, r->device_id) &&
         dup_field(&out->public_key, r->public_key) && dup_field(&out->display_name, r->display_name) &&
         dup_field(&out->platform, r->platform) && dup_field(&out->device_family, r->device_family) &&
         dup_field(&out->client_id, r->client_id) && dup_field(&out->client_mode, r->client_mode) &&
         dup_field(&out->remote_ip, r->remote_ip) && dup_field(&out->role, r->role) &&
         dup_field(&out->roles, r->roles) && dup_field(&out->scopes, r->scopes) && dup_field(&out->source, r->source);
    if (!ok) {
        ch_device_request_rec_release(out);
        return CH_ENOMEM;
    }
    return 0;
}

/* ---- tokens ---- */

void ch_device_token_hash(const char *token, char out[65])
{
    ch_sha256_hex(token, strlen(token), out);
}

bool ch_device_token_matches(const struct ch_device_token *t, const char *token)
{
    char h[65];

    if (!t || !token || !*token || !t->hash_hex[0])
        return false;
    ch_device_token_hash(token, h);
    return ch_ct_eq(h, t->hash_hex, 64);
}

static bool is_role(const char *r)
{
    return r && (!strcmp(r, "operator") || !strcmp(r, "node") || !strcmp(r, "worker"));
}

static bool is_hex64(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

/* ---- checks ---- */

#define FIELD(s, what, required)                                                                                       \
    ch_store_check_text(s, CH_STORE_MAX_DEVICE_FIELD_BYTES, required, false, what, NULL, err)

static int check_device(const struct ch_device_rec *d, struct ch_error *err)
{
    int rc;

    if ((rc = FIELD(d->device_id, "device id", true)) ||
        (rc = ch_store_check_text(d->public_key, CH_STORE_MAX_PUBKEY_BYTES, true, true, "public key", NULL, err)) ||
        (rc = FIELD(d->display_name, "display name", false)) || (rc = FIELD(d->platform, "platform", false)) ||
        (rc = FIELD(d->device_family, "device family", false)) || (rc = FIELD(d->client_id, "client id", false)) ||
        (rc = FIELD(d->client_mode, "client mode", false)) || (rc = FIELD(d->remote_ip, "remote address", false)) ||
        (rc = FIELD(d->roles, "roles", false)) || (rc = FIELD(d->scopes, "scopes", false)) ||
        (rc = FIELD(d->approved_via, "approved via", false)))
        return rc;
    if (d->token_count > CH_DEVICE_MAX_TOKENS)
        return ch_error_set(err, CH_EINVAL, "at most %d device tokens", CH_DEVICE_MAX_TOKENS);
    for (size_t i = 0; i < d->token_count; i++) {
        const struct ch_device_token *t = &d->tokens[i];
        if (!is_role(t->role) || !is_hex64(t->hash_hex))
            return ch_error_set(err, CH_EINVAL, "device token %zu: bad role or hash", i);
        if ((rc = FIELD(t->scopes, "token scopes", false)))
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->tokens[j].role, t->role))
                return ch_error_set(err, CH_EINVAL, "two device tokens for role %s", t->role);
    }
    return 0;
}

static int check_request(const struct ch_device_request_rec *r, struct ch_error *err)
{
    int rc;

    if ((rc = ch_store_check_text(r->request_id, CH_STORE_MAX_ID_BYTES, true, false, "request id", NULL, err)) ||
        (rc = FIELD(r->device_id, "device id", true)) ||
        (rc = ch_store_check_text(r->public_key, CH_STORE_MAX_PUBKEY_BYTES, true, true, "public key", NULL, err)) ||
        (rc = FIELD(r->display_name, "display name", false)) || (rc = FIELD(r->platform, "platform", false)) ||
        (rc = FIELD(r->device_family, "device family", false)) || (rc = FIELD(r->client_id, "client id", false)) ||
        (rc = FIELD(r->client_mode, "client mode", false)) || (rc = FIELD(r->remote_ip, "remote address", false)) ||
        (rc = FIELD(r->roles, "roles", false)) || (rc = FIELD(r->scopes, "scopes", false)) ||
        (rc = FIELD(r->source, "source", false)))
        return rc;
    if (!is_role(r->role))
        return ch_error_set(err, CH_EINVAL, "request role must be operator, node or worker");
    return 0;
}

#undef FIELD

/* SELECT count(*) ... with one text parameter (may be NULL: none). */
static int count_rows(struct ch_db *db, const char *sql, const char *arg, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = ch_db_prepare(db, sql, &st)))
        return rc;
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = ch_store_row_err(src);
    sqlite3_finalize(st);
    return rc;
}

/* ---- devices ---- */

static int load_tokens(struct ch_db *db, struct ch_device_list *l)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = ch_db_prepare(db,
                       "SELECT device_id, role, hash, scopes, created_ms, rotated_ms, revoked_ms, last_used_ms,"
                       " api_token_id FROM device_tokens ORDER BY device_id, role",
                       &st);
    if (rc)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *role = (const char *)sqlite3_column_text(st, 1);
        const char *hash = (const char *)sqlite3_column_text(st, 2);
        struct ch_device_rec *d = NULL;
        struct ch_device_token *t;

        for (size_t i = 0; id && i < l->count && !d; i++)
            if (!strcmp(l->items[i].device_id, id))
                d = &l->items[i];
        if (!d || !is_role(role) || !hash || !is_hex64(hash) || d->token_count >= CH_DEVICE_MAX_TOKENS)
            continue; /* an orphan or a bad row: never a credential */
        t = &d->tokens[d->token_count];
        memset(t, 0, sizeof(*t));
        snprintf(t->role, sizeof(t->role), "%s", role);
        memcpy(t->hash_hex, hash, 65);
        if ((rc = ch_store_col_dup(st, 3, &t->scopes)))
            goto out;
        t->created_ms = sqlite3_column_int64(st, 4);
        t->rotated_ms = sqlite3_column_int64(st, 5);
        t->revoked_ms = sqlite3_column_int64(st, 6);
        t->last_used_ms = sqlite3_column_int64(st, 7);
        t->api_token_id = sqlite3_column_int64(st, 8);
        d->token_count++;
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    return rc;
}

int ch_devices_list(struct ch_db *db, struct ch_device_list *out)
{
    struct ch_device_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    rc = ch_db_prepare(db,
                       "SELECT device_id, public_key, display_name, platform, device_family, client_id, client_mode,"
                       " remote_ip, roles, scopes, approved_via, created_ms, approved_ms, last_seen_ms"
                       " FROM devices ORDER BY approved_ms, device_id",
                       &st);
    if (rc)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct ch_device_rec *d;

        if (l.count >= CH_STORE_MAX_DEVICES) {
            rc = CH_E_TOO_LARGE;
            goto out;
        }
        if ((rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items))))
            goto out;
        d = &l.items[l.count++];
        memset(d, 0, sizeof(*d));
        char **f[] = {&d->device_id,   &d->public_key, &d->display_name, &d->platform, &d->device_family, &d->client_id,
                      &d->client_mode, &d->remote_ip,  &d->roles,        &d->scopes,   &d->approved_via};
        for (size_t i = 0; i < CH_ARRAY_SIZE(f); i++)
            if ((rc = ch_store_col_dup(st, (int)i, f[i])))
                goto out;
        if (!d->device_id || !d->public_key || !d->roles || !d->scopes || !d->approved_via) {
            rc = CH_EIO;
            goto out;
        }
        d->created_ms = sqlite3_column_int64(st, 11);
        d->approved_ms = sqlite3_column_int64(st, 12);
        d->last_seen_ms = sqlite3_column_int64(st, 13);
    }
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
    if (rc == 0)
        rc = load_tokens(db, &l);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_device_list_release(&l);
    else
        *out = l;
    return rc;
}

static int put_tokens(struct ch_db *db, const struct ch_device_rec *d)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = ch_db_prepare(db, "DELETE FROM device_tokens WHERE device_id = ?1", &st)))
        return rc;
    sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc || d->token_count == 0)
        return rc;
    rc = ch_db_prepare(db,
                       "INSERT INTO device_tokens(device_id, role, hash, scopes, created_ms, rotated_ms, revoked_ms,"
                       " last_used_ms, api_token_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       &st);
    for (size_t i = 0; rc == 0 && i < d->token_count; i++) {
        const struct ch_device_token *t = &d->tokens[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->role, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, t->hash_hex, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, t->scopes ? t->scopes : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, t->created_ms);
        sqlite3_bind_int64(st, 6, t->rotated_ms);
        sqlite3_bind_int64(st, 7, t->revoked_ms);
        sqlite3_bind_int64(st, 8, t->last_used_ms);
        sqlite3_bind_int64(st, 9, t->api_token_id);
        rc = ch_store_step_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int ch_devices_put(struct ch_db *db, const struct ch_device_rec *d, struct ch_error *err)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int64_t n = 0, mine = 0;
    int rc;

    if (!db || !d)
        return ch_error_set(err, CH_EINVAL, "no device given");
    if ((rc = check_device(d, err)))
        return rc;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    /* The cap is checked inside the transaction; an update never hits it. */
    if ((rc = count_rows(db, "SELECT count(*) FROM devices", NULL, &n)) ||
        (rc = count_rows(db, "SELECT count(*) FROM devices WHERE device_id = ?1", d->device_id, &mine)))
        goto out;
    if (!mine && n >= CH_STORE_MAX_DEVICES) {
        rc = ch_error_set(err, CH_E_TOO_LARGE, "at most %d devices can be paired; remove one first",
                          CH_STORE_MAX_DEVICES);
        goto out;
    }
    rc = ch_db_prepare(db,
                       "INSERT INTO devices(device_id, public_key, display_name, platform, device_family, client_id,"
                       " client_mode, remote_ip, roles, scopes, approved_via, created_ms, approved_ms, last_seen_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                       " ON CONFLICT(device_id) DO UPDATE SET public_key = ?2, display_name = ?3, platform = ?4,"
                       " device_family = ?5, client_id = ?6, client_mode = ?7, remote_ip = ?8, roles = ?9,"
                       " scopes = ?10, approved_via = ?11, created_ms = ?12, approved_ms = ?13, last_seen_ms = ?14",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->public_key, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 3, d->display_name);
    ch_store_bind_text(st, 4, d->platform);
    ch_store_bind_text(st, 5, d->device_family);
    ch_store_bind_text(st, 6, d->client_id);
    ch_store_bind_text(st, 7, d->client_mode);
    ch_store_bind_text(st, 8, d->remote_ip);
    sqlite3_bind_text(st, 9, d->roles ? d->roles : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, d->scopes ? d->scopes : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, d->approved_via ? d->approved_via : "manual", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, d->created_ms);
    sqlite3_bind_int64(st, 13, d->approved_ms);
    sqlite3_bind_int64(st, 14, d->last_seen_ms);
    rc = ch_store_step_done(st);
    if (rc)
        ch_error_set(err, rc, "store device: %s", sqlite3_errmsg(db->h));
    else
        rc = put_tokens(db, d);
out:
    sqlite3_finalize(st);
    return ch_db_atomic_end(db, &a, rc);
}

/* DELETE with one text parameter; CH_ENOTFOUND when nothing went. */
static int delete_by(struct ch_db *db, const char *sql, const char *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = ch_db_prepare(db, sql, &st)))
        return rc;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = CH_ENOTFOUND;
    return rc;
}

int ch_devices_delete(struct ch_db *db, const char *device_id)
{
    struct ch_db_atomic a;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(device_id, CH_STORE_MAX_DEVICE_FIELD_BYTES, true, false, "device id", NULL, NULL)))
        return rc;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    /* Tokens first (explicitly: not every connection enables foreign
     * keys), then requests (none is fine), then the device. */
    rc = delete_by(db, "DELETE FROM device_tokens WHERE device_id = ?1", device_id);
    if (rc == 0 || rc == CH_ENOTFOUND)
        rc = delete_by(db, "DELETE FROM device_pairing_requests WHERE device_id = ?1", device_id);
    if (rc == 0 || rc == CH_ENOTFOUND)
        rc = delete_by(db, "DELETE FROM devices WHERE device_id = ?1", device_id);
    return ch_db_atomic_end(db, &a, rc);
}

/* ---- pairing requests ---- */

int ch_device_requests_list(struct ch_db *db, int64_t not_before_ms, struct ch_device_request_list *out)
{
    struct ch_device_request_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    rc = ch_db_prepare(db,
                       "SELECT request_id, device_id, public_key, display_name, platform, device_family, client_id,"
                       " client_mode, remote_ip, role, roles, scopes, is_repair, created_ms, source"
                       " FROM device_pairing_requests WHERE created_ms >= ?1 ORDER BY created_ms, request_id",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, not_before_ms);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct ch_device_request_rec *r;

        if (l.count >= CH_STORE_MAX_DEVICE_REQUESTS)
            break; /* the oldest are kept; the rest expire unseen */
        if ((rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items))))
            goto out;
        r = &l.items[l.count++];
        memset(r, 0, sizeof(*r));
        char **f[] = {&r->request_id, &r->device_id,     &r->public_key, &r->display_name,
                      &r->platform,   &r->device_family, &r->client_id,  &r->client_mode,
                      &r->remote_ip,  &r->role,          &r->roles,      &r->scopes};
        for (size_t i = 0; i < CH_ARRAY_SIZE(f); i++)
            if ((rc = ch_store_col_dup(st, (int)i, f[i])))
                goto out;
        if (!r->request_id || !r->device_id || !r->public_key || !r->role || !r->roles || !r->scopes) {
            rc = CH_EIO;
            goto out;
        }
        r->is_repair = sqlite3_column_int64(st, 12) != 0;
        r->created_ms = sqlite3_column_int64(st, 13);
        if ((rc = ch_store_col_dup(st, 14, &r->source)))
            goto out;
    }
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_device_request_list_release(&l);
    else
        *out = l;
    return rc;
}

int ch_device_requests_put(struct ch_db *db, const struct ch_device_request_rec *r, struct ch_error *err)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int64_t n = 0, mine = 0;
    int rc;

    if (!db || !r)
        return ch_error_set(err, CH_EINVAL, "no pairing request given");
    if ((rc = check_request(r, err)))
        return rc;
    if ((rc = ch_db_atomic_begin(db, &a)))
        return rc;
    if ((rc = count_rows(db, "SELECT count(*) FROM device_pairing_requests", NULL, &n)) ||
        (rc = count_rows(db, "SELECT count(*) FROM device_pairing_requests WHERE request_id = ?1", r->request_id,
                         &mine)))
        goto out;
    if (!mine && n >= CH_STORE_MAX_DEVICE_REQUESTS) {
        rc = ch_error_set(err, CH_E_TOO_LARGE, "at most %d pairing requests can be pending",
                          CH_STORE_MAX_DEVICE_REQUESTS);
        goto out;
    }
    rc = ch_db_prepare(db,
                       "INSERT OR REPLACE INTO device_pairing_requests(request_id, device_id, public_key,"
                       " display_name, platform, device_family, client_id, client_mode, remote_ip, role, roles,"
                       " scopes, is_repair, created_ms, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                       " ?12, ?13, ?14, ?15)",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->public_key, -1, SQLITE_STATIC);
    ch_store_bind_text(st, 4, r->display_name);
    ch_store_bind_text(st, 5, r->platform);
    ch_store_bind_text(st, 6, r->device_family);
    ch_store_bind_text(st, 7, r->client_id);
    ch_store_bind_text(st, 8, r->client_mode);
    ch_store_bind_text(st, 9, r->remote_ip);
    sqlite3_bind_text(st, 10, r->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, r->roles ? r->roles : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, r->scopes ? r->scopes : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, r->is_repair);
    sqlite3_bind_int64(st, 14, r->created_ms);
    sqlite3_bind_text(st, 15, r->source ? r->source : "", -1, SQLITE_STATIC);
    rc = ch_store_step_done(st);
out:
    sqlite3_finalize(st);
    return ch_db_atomic_end(db, &a, rc);
}

int ch_device_requests_delete(struct ch_db *db, const char *request_id)
{
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(request_id, CH_STORE_MAX_ID_BYTES, true, false, "request id", NULL, NULL)))
        return rc;
    return delete_by(db, "DELETE FROM device_pairing_requests WHERE request_id = ?1", request_id);
}

int ch_device_requests_prune(struct ch_db *db, int64_t before_ms, int64_t *removed)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (removed)
        *removed = 0;
    if (!db)
        return CH_EINVAL;
    if ((rc = ch_db_prepare(db, "DELETE FROM device_pairing_requests WHERE created_ms < ?1", &st)))
        return rc;
    sqlite3_bind_int64(st, 1, before_ms);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    if (rc == 0 && removed)
        *removed = sqlite3_changes(db->h);
    return rc;
}
