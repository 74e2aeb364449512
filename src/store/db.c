/*
 * store/db.c: one SQLite connection (struct ch_db) and the helpers every
 * store module shares.
 *
 * Opening sets WAL, the synchronous level, the busy timeout and foreign
 * keys, refuses a schema newer than this binary, and (for read-write
 * openers that ask) runs the migrations in migrate.c.  SQLite result codes
 * are mapped to CH_E* in exactly one place, ch_db_err_code().  Each
 * connection keeps a small cache of prepared statements for hot paths.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "store/internal.h"

/* Valid SQL identifiers only ever reach these (no user input). */
static const char *const sql_begin_immediate = "BEGIN IMMEDIATE";
static const char *const sql_begin_deferred = "BEGIN";
static const char *const sql_commit = "COMMIT";
static const char *const sql_rollback = "ROLLBACK";

void ch_db_yield_point(struct ch_db *db)
{
    if (!db->slice_ns || !db->in_batch || ch_mono_ns() - db->slice_start_ns < db->slice_ns)
        return;
    (void)sched_yield(); /* cannot fail on Linux */
    db->yields++;
    db->slice_start_ns = ch_mono_ns();
}

int ch_db_err_code(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_NOMEM: return CH_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return CH_EBUSY;
    case SQLITE_CONSTRAINT:
        /* Uniqueness is the one constraint callers branch on. */
        if (sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return CH_EEXIST;
        return CH_EINVAL;
    case SQLITE_TOOBIG: return CH_E_TOO_LARGE;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return CH_EPERM;
    case SQLITE_NOTFOUND: return CH_ENOTFOUND;
    case SQLITE_INTERRUPT:
    case SQLITE_ABORT: return CH_ECANCELED;
    case SQLITE_RANGE:
    case SQLITE_MISMATCH: return CH_EINVAL;
    case SQLITE_FULL: return CH_ENOSPC; /* the disk (ENOSPC): callers answer 503, retry later */
    default:
        /* CANTOPEN, IOERR, CORRUPT, NOTADB, PROTOCOL, generic ERROR... */
        return CH_EIO;
    }
}

int ch_db_fail(struct ch_db *db, int sqlite_rc, struct ch_error *err, const char *what)
{
    int code = ch_db_err_code(sqlite_rc);

    if (code == 0)
        code = CH_EIO; /* a caller treating success as failure: still fail */
    if (err)
        ch_error_set(err, code, "%s: %s", what, db && db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(sqlite_rc));
    return code;
}

int ch_db_prepare(struct ch_db *db, const char *sql, sqlite3_stmt **out)
{
    int src = sqlite3_prepare_v2(db->h, sql, -1, out, NULL);

    if (src != SQLITE_OK) {
        ch_log_debug("store: prepare failed (%s): %s", sqlite3_errmsg(db->h), sql);
        *out = NULL;
        return ch_db_err_code(src);
    }
    return 0;
}

int ch_db_stmt(struct ch_db *db, enum ch_db_stmt_id id, const char *sql, sqlite3_stmt **out)
{
    sqlite3_stmt *st = db->cache[id];
    int src;

    if (!st) {
        /* PERSISTENT: these live as long as the connection. */
        src = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (src != SQLITE_OK) {
            ch_log_debug("store: prepare failed (%s): %s", sqlite3_errmsg(db->h), sql);
            *out = NULL;
            return ch_db_err_code(src);
        }
        db->cache[id] = st;
    } else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    *out = st;
    return 0;
}

int ch_db_run_cached(struct ch_db *db, enum ch_db_stmt_id id, const char *sql)
{
    sqlite3_stmt *st;
    int rc = ch_db_stmt(db, id, sql, &st);
    int src;

    if (rc)
        return rc;
    src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE || src == SQLITE_ROW ? 0 : ch_db_err_code(src);
}

int ch_db_exec(struct ch_db *db, const char *sql, struct ch_error *err, const char *what)
{
    int src = sqlite3_exec(db->h, sql, NULL, NULL, NULL);

    return src == SQLITE_OK ? 0 : ch_db_fail(db, src, err, what);
}

void ch_db_reset_busy(struct ch_db *db)
{
    sqlite3_stmt *st = NULL;

    while ((st = sqlite3_next_stmt(db->h, st)) != NULL)
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
}

/* Run a pragma that returns one integer row. */
static int pragma_int(struct ch_db *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = ch_db_prepare(db, sql, &st);
    int src;

    if (rc)
        return rc;
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
    }
    sqlite3_finalize(st);
    return rc;
}

int ch_db_user_version(struct ch_db *db)
{
    int64_t v = 0;
    int rc = pragma_int(db, "PRAGMA user_version", &v);

    if (rc)
        return rc;
    /* user_version is a 32-bit signed field; a negative one is foreign. */
    return v < 0 ? CH_EIO : (int)v;
}

int ch_db_schema_version(struct ch_db *db)
{
    return db ? ch_db_user_version(db) : CH_EINVAL;
}

int ch_db_data_version(struct ch_db *db, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = ch_db_stmt(db, CH_STMT_DATA_VERSION, "PRAGMA data_version", &st);
    int src;

    if (rc)
        return rc;
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
    }
    sqlite3_reset(st);
    return rc;
}

int ch_db_begin(struct ch_db *db)
{
    /* No nesting (use a job or ch_db_atomic_* for that); inside a writer
     * batch the transaction belongs to the batch. */
    if (db->in_batch || !sqlite3_get_autocommit(db->h))
        return CH_ESTATE;
    /* Immediate on writers: take the write lock now, so the transaction can
     * never fail later with BUSY_SNAPSHOT when it first writes. */
    if (db->readonly)
        return ch_db_run_cached(db, CH_STMT_BEGIN_DEFERRED, sql_begin_deferred);
    return ch_db_run_cached(db, CH_STMT_BEGIN_IMMEDIATE, sql_begin_immediate);
}

int ch_db_commit(struct ch_db *db)
{
    if (db->in_batch || sqlite3_get_autocommit(db->h))
        return CH_ESTATE;
    return ch_db_run_cached(db, CH_STMT_COMMIT, sql_commit);
}

int ch_db_rollback(struct ch_db *db)
{
    if (db->in_batch || sqlite3_get_autocommit(db->h))
        return CH_ESTATE;
    return ch_db_run_cached(db, CH_STMT_ROLLBACK, sql_rollback);
}

void *ch_db_handle(struct ch_db *db)
{
    return db ? db->h : NULL;
}

int ch_db_atomic_begin(struct ch_db *db, struct ch_db_atomic *a)
{
    a->own_txn = sqlite3_get_autocommit(db->h) != 0;
    if (a->own_txn)
        return ch_db_run_cached(db, db->readonly ? CH_STMT_BEGIN_DEFERRED : CH_STMT_BEGIN_IMMEDIATE,
                                db->readonly ? sql_begin_deferred : sql_begin_immediate);
    return ch_db_run_cached(db, CH_STMT_SP_ATOMIC, "SAVEPOINT ch_atomic");
}

int ch_db_atomic_end(struct ch_db *db, struct ch_db_atomic *a, int rc)
{
    int rc2;

    /* No ch_db_reset_busy() here: a caller may be mid-way through its own
     * SELECT on this connection; our statements were reset as they ran. */
    if (a->own_txn) {
        if (rc == 0) {
            rc = ch_db_run_cached(db, CH_STMT_COMMIT, sql_commit);
            if (rc == 0)
                return 0;
        }
        /* After a failed COMMIT the transaction may still be open. */
        if (!sqlite3_get_autocommit(db->h))
            ch_db_run_cached(db, CH_STMT_ROLLBACK, sql_rollback);
        return rc;
    }
    if (rc != 0) {
        rc2 = ch_db_run_cached(db, CH_STMT_SP_ATOMIC_ROLLBACK, "ROLLBACK TO ch_atomic");
        if (rc2)
            ch_log_error("store: rollback to savepoint failed: %s", ch_strerror(rc2));
    }
    /* RELEASE also after ROLLBACK TO: the savepoint stays on the stack. */
    rc2 = ch_db_run_cached(db, CH_STMT_SP_ATOMIC_RELEASE, "RELEASE ch_atomic");
    return rc ? rc : rc2;
}

/* chela_session_key(key): ch_session_key_canon in SQL, for the migration
 * that moves stored keys to their canonical form (migrate.c); NULL for a
 * key it cannot canonicalize, which then stays as it is. */
static void sql_session_key(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *in = (const char *)sqlite3_value_text(argv[0]);
    char out[CH_SESSION_KEY_MAX + 1];

    (void)argc;
    if (in && ch_session_key_canon(in, (size_t)sqlite3_value_bytes(argv[0]), out, sizeof(out)) == 0)
        sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
    else
        sqlite3_result_null(ctx);
}

/* chela_session_disposable(key): ch_session_key_disposable in SQL, for
 * session retention (retention.c). */
static void sql_session_disposable(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_result_int(ctx, ch_session_key_disposable((const char *)sqlite3_value_text(argv[0])));
}

/* Set the pragmas every connection needs.  The first statement is also
 * where SQLite first reads the file, so "not a database" surfaces here. */
static int db_configure(struct ch_db *db, const struct ch_db_opts *o, struct ch_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *mode;
    bool is_memory = strcmp(o->path, ":memory:") == 0;
    int src, rc;

    sqlite3_extended_result_codes(db->h, 1);
    src = sqlite3_busy_timeout(db->h, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
    if (src != SQLITE_OK)
        return ch_db_fail(db, src, err, "set busy timeout");

    /* Readers never switch modes (they cannot write the header); WAL is a
     * persistent property of the file that the read-write opener set. */
    rc = ch_db_prepare(db, o->readonly ? "PRAGMA journal_mode" : "PRAGMA journal_mode=WAL", &st);
    src = rc ? SQLITE_ERROR : sqlite3_step(st);
    if (src != SQLITE_ROW) {
        /* Out of memory and a lock held by another process are worth
         * telling apart; everything else means the file is unusable. */
        rc = ch_db_err_code(src);
        if (rc != CH_ENOMEM && rc != CH_EBUSY)
            rc = CH_EIO;
        if (sqlite3_errcode(db->h) == SQLITE_NOMEM)
            rc = CH_ENOMEM;
        ch_error_set(err, rc, "cannot use database '%s': %s", o->path, sqlite3_errmsg(db->h));
        sqlite3_finalize(st);
        return rc;
    }
    mode = (const char *)sqlite3_column_text(st, 0);
    rc = 0;
    if (!mode || (strcmp(mode, "wal") != 0 && !(is_memory && strcmp(mode, "memory") == 0)))
        rc = ch_error_set(err, CH_EIO, "database '%s' is in journal mode '%s', not WAL", o->path, mode ? mode : "?");
    sqlite3_finalize(st);
    if (rc)
        return rc;

    rc = ch_db_exec(db, o->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err, "set synchronous");
    if (rc == 0)
        rc = ch_db_exec(db, "PRAGMA foreign_keys=ON", err, "enable foreign keys");
    if (rc == 0 && sqlite3_create_function(db->h, "chela_session_key", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                           sql_session_key, NULL, NULL) != SQLITE_OK)
        rc = ch_error_set(err, CH_ENOMEM, "cannot register chela_session_key: %s", sqlite3_errmsg(db->h));
    if (rc == 0 && sqlite3_create_function(db->h, "chela_session_disposable", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                           NULL, sql_session_disposable, NULL, NULL) != SQLITE_OK)
        rc = ch_error_set(err, CH_ENOMEM, "cannot register chela_session_disposable: %s", sqlite3_errmsg(db->h));
    /* Commits on this connection never checkpoint.  SQLite before 3.51.3 (Debian 12
     * ships 3.40.1) can lose committed frames when one connection starts a
     * checkpoint right after another's finished while a third connection's
     * commit starts the log over (sqlite.org/wal.html, "the WAL-reset
     * bug").  The gateway checkpoints only from its store (a writer's WAL
     * hook and one checkpointer thread, store/checkpoint.c, which never
     * overlap that way), so every other writer, such as `chela token` while
     * the gateway runs, must not add a checkpoint of its own.  The last
     * connection to close still checkpoints and removes the log. */
    if (rc == 0 && !o->readonly)
        sqlite3_wal_autocheckpoint(db->h, 0);
    return rc;
}

int ch_db_open(const struct ch_db_opts *o, struct ch_db **out, struct ch_error *err)
{
    struct ch_db *db = NULL;
    int flags, src, rc = CH_EINVAL, v;

    if (!o || !o->path || !o->path[0]) {
        ch_error_set(err, rc, "database path is empty");
        goto out;
    }
    if (o->readonly && o->migrate) {
        ch_error_set(err, rc, "cannot migrate database '%s' opened read-only", o->path);
        goto out;
    }
    rc = CH_ENOMEM;
    db = ch_calloc(1, sizeof(*db));
    if (!db || !(db->path = ch_strdup(o->path)))
        goto out;
    db->readonly = o->readonly;

    /* NOMUTEX: each connection belongs to one thread at a time (STYLE 8.3
     * rule 7), so SQLite's per-connection mutex would be pure cost. */
    flags = SQLITE_OPEN_NOMUTEX;
    flags |= o->readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    src = sqlite3_open_v2(o->path, &db->h, flags, o->readonly ? NULL : ch_wal_vfs());
    if (src != SQLITE_OK) {
        int sys = db->h ? sqlite3_system_errno(db->h) : 0;

        rc = src == SQLITE_NOMEM ? CH_ENOMEM : CH_EIO;
        if (sys)
            ch_error_set(err, rc, "cannot open database '%s': %s (%s)", o->path,
                         db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(src), strerror(sys));
        else
            ch_error_set(err, rc, "cannot open database '%s': %s", o->path,
                         db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(src));
        goto out;
    }
    rc = db_configure(db, o, err);
    if (rc)
        goto out;

    if (o->migrate) {
        rc = ch_db_migrate(db, err);
        goto out;
    }
    /* Without migrating, still refuse a schema this binary cannot read. */
    v = ch_db_user_version(db);
    if (v < 0) {
        rc = v;
        ch_error_set(err, rc, "cannot read schema version of '%s': %s", o->path, sqlite3_errmsg(db->h));
    } else if (v > ch_db_latest_version()) {
        rc = ch_db_version_error(v, err);
    } else {
        rc = 0;
    }
out:
    if (rc) {
        ch_db_close(db);
        db = NULL;
    }
    *out = db;
    return rc;
}

void ch_db_close(struct ch_db *db)
{
    sqlite3_stmt *st;
    size_t i;
    int src;

    if (!db)
        return;
    for (i = 0; i < CH_STMT__COUNT; i++)
        sqlite3_finalize(db->cache[i]);
    if (db->h) {
        /* A statement still alive here is a caller's leak; finalize it so
         * the connection really closes (and the WAL is checkpointed). */
        while ((st = sqlite3_next_stmt(db->h, NULL)) != NULL) {
            ch_log_warn("store: finalizing leaked statement: %s", sqlite3_sql(st));
            sqlite3_finalize(st);
        }
        src = sqlite3_close(db->h);
        if (src != SQLITE_OK)
            ch_log_error("store: closing '%s' failed: %s", db->path ? db->path : "?", sqlite3_errstr(src));
    }
    ch_free(db->usage_notes);
    ch_free(db->path);
    ch_free(db);
}
