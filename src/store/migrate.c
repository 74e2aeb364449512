/*
 * store/migrate.c: versioned schema migrations.
 *
 * `steps` is append-only: step i (0-based) takes a database from
 * user_version i to i + 1.  Each step runs in its own BEGIN IMMEDIATE
 * transaction together with the user_version bump, so a crash leaves the
 * file at a whole version, and a second process migrating the same file at
 * the same time waits for the lock and then re-reads the version.  Never
 * edit a shipped step; add a new one.
 */
#include <stdio.h>

#include "store/internal.h"

struct migration {
    const char *name; /* one line, for logs and errors */
    const char *sql;  /* one or more statements */
};

static const struct migration steps[] = {
    {
        "initial schema: meta, tokens, audit",
        "CREATE TABLE meta ("
        "  key   TEXT PRIMARY KEY,"
        "  value TEXT NOT NULL"
        ");"
        /* Only the SHA-256 of a secret is ever stored (hash); names are
         * unique among live tokens only, so a revoked name can be reused. */
        "CREATE TABLE tokens ("
        "  id           INTEGER PRIMARY KEY,"
        "  name         TEXT NOT NULL,"
        "  hash         TEXT NOT NULL UNIQUE,"
        "  scopes       INTEGER NOT NULL,"
        "  rate_limit   INTEGER NOT NULL DEFAULT 0,"
        "  created_ms   INTEGER NOT NULL,"
        "  last_used_ms INTEGER NOT NULL DEFAULT 0,"
        "  expires_ms   INTEGER NOT NULL DEFAULT 0,"
        "  revoked_ms   INTEGER NOT NULL DEFAULT 0,"
        "  source       TEXT NOT NULL DEFAULT 'cli'"
        ");"
        "CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_ms = 0;"
        "CREATE TABLE audit ("
        "  id         INTEGER PRIMARY KEY,"
        "  ts_ms      INTEGER NOT NULL,"
        "  request_id TEXT NOT NULL DEFAULT '',"
        "  token_name TEXT NOT NULL DEFAULT '',"
        "  address    TEXT NOT NULL DEFAULT '',"
        "  method     TEXT NOT NULL DEFAULT '',"
        "  path       TEXT NOT NULL DEFAULT '',"
        "  status     INTEGER NOT NULL DEFAULT 0,"
        "  latency_us INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX audit_ts ON audit(ts_ms);",
    },
    {
        "sessions, messages, runs, usage_daily",
        /* One row per session key (OpenClaw's SessionEntry).  Counters are
         * cumulative over the current session_id; a reset zeroes them. */
        "CREATE TABLE sessions ("
        "  key                TEXT PRIMARY KEY,"
        "  session_id         TEXT NOT NULL,"
        "  agent_id           TEXT NOT NULL DEFAULT 'main',"
        "  created_ms         INTEGER NOT NULL,"
        "  updated_ms         INTEGER NOT NULL,"
        "  label              TEXT,"
        "  display_name       TEXT,"
        "  channel            TEXT,"
        "  model_override     TEXT,"
        "  thinking_level     TEXT,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  total_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  context_tokens     INTEGER NOT NULL DEFAULT 0,"
        "  compaction_count   INTEGER NOT NULL DEFAULT 0,"
        "  estimated_cost_usd REAL NOT NULL DEFAULT 0,"
        "  last_run_id        TEXT,"
        "  origin             TEXT CHECK (origin IS NULL OR json_valid(origin)),"
        "  extra              TEXT CHECK (extra IS NULL OR json_valid(extra))"
        ");"
        /* sessions.list and health's "recent": newest first. */
        "CREATE INDEX sessions_updated ON sessions(updated_ms);"
        /* Transcripts.  seq is dense per session_id except below a
         * compaction entry (the replaced prefix is deleted).  The foreign
         * key makes deleting a session delete all of its transcripts, and
         * refuses messages for a key that has no session. */
        "CREATE TABLE messages ("
        "  id                 INTEGER PRIMARY KEY,"
        "  session_key        TEXT NOT NULL REFERENCES sessions(key) ON DELETE CASCADE,"
        "  session_id         TEXT NOT NULL,"
        "  seq                INTEGER NOT NULL CHECK (seq >= 1),"
        "  role               TEXT NOT NULL"
        "    CHECK (role IN ('user', 'assistant', 'tool', 'system', 'compaction')),"
        "  content            TEXT NOT NULL CHECK (json_valid(content)),"
        "  model              TEXT,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  latency_ms         INTEGER NOT NULL DEFAULT 0,"
        "  created_ms         INTEGER NOT NULL,"
        "  run_id             TEXT,"
        "  UNIQUE (session_id, seq)"
        ");"
        /* UNIQUE(session_id, seq) serves loads and MAX(seq); this one
         * serves the cascade from sessions. */
        "CREATE INDEX messages_session_key ON messages(session_key);"
        /* Runs outlive their session (no foreign key): they are history,
         * and a queued run may precede its session's first row. */
        "CREATE TABLE runs ("
        "  run_id             TEXT PRIMARY KEY,"
        "  session_key        TEXT NOT NULL,"
        "  source             TEXT NOT NULL,"
        "  status             TEXT NOT NULL DEFAULT 'queued' CHECK (status IN"
        "    ('queued', 'running', 'ok', 'error', 'aborted', 'timeout')),"
        "  request            TEXT NOT NULL CHECK (json_valid(request)),"
        "  result             TEXT CHECK (result IS NULL OR json_valid(result)),"
        "  error              TEXT,"
        "  error_class        TEXT,"
        "  created_ms         INTEGER NOT NULL,"
        "  started_ms         INTEGER NOT NULL DEFAULT 0,"
        "  finished_ms        INTEGER NOT NULL DEFAULT 0,"
        "  attempts           INTEGER NOT NULL DEFAULT 0,"
        "  idempotency_key    TEXT,"
        "  model              TEXT,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  cost_usd           REAL NOT NULL DEFAULT 0,"
        "  delivery           TEXT CHECK (delivery IS NULL OR json_valid(delivery))"
        ");"
        /* Unfinished runs at start (oldest first) and status filters. */
        "CREATE INDEX runs_status ON runs(status, created_ms);"
        "CREATE INDEX runs_session ON runs(session_key, created_ms);"
        "CREATE INDEX runs_created ON runs(created_ms);"
        "CREATE UNIQUE INDEX runs_idempotency ON runs(idempotency_key)"
        "  WHERE idempotency_key IS NOT NULL;"
        /* Small and keyed by its whole primary key: no rowid needed. */
        "CREATE TABLE usage_daily ("
        "  day                TEXT NOT NULL,"
        "  provider           TEXT NOT NULL,"
        "  model              TEXT NOT NULL,"
        "  requests           INTEGER NOT NULL DEFAULT 0,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  cost_usd           REAL NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (day, provider, model)"
        ") WITHOUT ROWID;",
    },
    {
        "deliveries (durable outbox), webhooks",
        /* One row per POST chela owes someone (issue #4): a hook run's
         * callback or an event webhook.  The body is a BLOB: sent byte for
         * byte.  secret stays here (not a hash) because every attempt is
         * signed again with a fresh timestamp.  dedupe_key makes a
         * run's delivery unique so a re-enqueue after a crash is a no-op. */
        "CREATE TABLE deliveries ("
        "  id              TEXT PRIMARY KEY,"
        "  kind            TEXT NOT NULL CHECK (kind IN ('callback', 'webhook')),"
        "  run_id          TEXT,"
        "  event           TEXT,"
        "  webhook_id      TEXT,"
        "  url             TEXT NOT NULL,"
        "  headers         TEXT CHECK (headers IS NULL OR json_valid(headers)),"
        "  body            BLOB NOT NULL,"
        "  content_type    TEXT NOT NULL,"
        "  secret          TEXT,"
        "  status          TEXT NOT NULL DEFAULT 'pending'"
        "    CHECK (status IN ('pending', 'sending', 'done', 'dead')),"
        "  attempts        INTEGER NOT NULL DEFAULT 0,"
        "  max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),"
        "  retry_base      INTEGER NOT NULL DEFAULT 0,"
        "  backoff_ms      INTEGER NOT NULL,"
        "  next_attempt_ms INTEGER NOT NULL,"
        "  last_status     INTEGER NOT NULL DEFAULT 0,"
        "  last_error      TEXT,"
        "  created_ms      INTEGER NOT NULL,"
        "  updated_ms      INTEGER NOT NULL,"
        "  delivered_ms    INTEGER NOT NULL DEFAULT 0,"
        "  dedupe_key      TEXT"
        ");"
        /* The engine's two questions: what is due, and when is the next. */
        "CREATE INDEX deliveries_due ON deliveries(status, next_attempt_ms);"
        "CREATE INDEX deliveries_created ON deliveries(created_ms);"
        "CREATE INDEX deliveries_run ON deliveries(run_id) WHERE run_id IS NOT NULL;"
        "CREATE UNIQUE INDEX deliveries_dedupe ON deliveries(dedupe_key) WHERE dedupe_key IS NOT NULL;"
        /* Webhooks created over REST; configured ones are read from the
         * config file each time and never stored. */
        "CREATE TABLE webhooks ("
        "  id           TEXT PRIMARY KEY,"
        "  url          TEXT NOT NULL,"
        "  secret       TEXT NOT NULL,"
        "  events       TEXT NOT NULL CHECK (json_valid(events)),"
        "  headers      TEXT CHECK (headers IS NULL OR json_valid(headers)),"
        "  description  TEXT,"
        "  max_attempts INTEGER NOT NULL,"
        "  backoff_ms   INTEGER NOT NULL,"
        "  created_ms   INTEGER NOT NULL"
        ");",
    },
    {
        "devices, device tokens, device pairing requests",
        /* OpenClaw device pairing (issue #5, spec 1.4): one row per paired
         * device (its id is the SHA-256 of its public key); roles and
         * scopes are comma-separated names. */
        "CREATE TABLE devices ("
        "  device_id     TEXT PRIMARY KEY,"
        "  public_key    TEXT NOT NULL,"
        "  display_name  TEXT,"
        "  platform      TEXT,"
        "  device_family TEXT,"
        "  client_id     TEXT,"
        "  client_mode   TEXT,"
        "  remote_ip     TEXT,"
        "  roles         TEXT NOT NULL DEFAULT '',"
        "  scopes        TEXT NOT NULL DEFAULT '',"
        "  approved_via  TEXT NOT NULL DEFAULT 'manual',"
        "  created_ms    INTEGER NOT NULL,"
        "  approved_ms   INTEGER NOT NULL,"
        "  last_seen_ms  INTEGER NOT NULL DEFAULT 0"
        ") WITHOUT ROWID;"
        /* One token per device and role; only its SHA-256 is stored, like
         * API tokens.  revoked_ms > 0: refused until rotated. */
        "CREATE TABLE device_tokens ("
        "  device_id    TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
        "  role         TEXT NOT NULL,"
        "  hash         TEXT NOT NULL,"
        "  scopes       TEXT NOT NULL DEFAULT '',"
        "  created_ms   INTEGER NOT NULL,"
        "  rotated_ms   INTEGER NOT NULL DEFAULT 0,"
        "  revoked_ms   INTEGER NOT NULL DEFAULT 0,"
        "  last_used_ms INTEGER NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (device_id, role)"
        ") WITHOUT ROWID;"
        /* Pending requests expire (the api drops them after a few
         * minutes); the device need not be paired yet, so no foreign key. */
        "CREATE TABLE device_pairing_requests ("
        "  request_id    TEXT PRIMARY KEY,"
        "  device_id     TEXT NOT NULL,"
        "  public_key    TEXT NOT NULL,"
        "  display_name  TEXT,"
        "  platform      TEXT,"
        "  device_family TEXT,"
        "  client_id     TEXT,"
        "  client_mode   TEXT,"
        "  remote_ip     TEXT,"
        "  role          TEXT NOT NULL,"
        "  roles         TEXT NOT NULL DEFAULT '',"
        "  scopes        TEXT NOT NULL DEFAULT '',"
        "  is_repair     INTEGER NOT NULL DEFAULT 0,"
        "  created_ms    INTEGER NOT NULL"
        ");"
        "CREATE INDEX device_pairing_requests_device ON device_pairing_requests(device_id);",
    },
    {
        "runs, messages, deliveries without costly CHECKs",
        /* Issue #3/#4 profile: `x IN (...)` in a CHECK makes SQLite build
         * an ephemeral index on every insert and status change (3-4 per
         * agent turn), and json_valid parses every run request/result and
         * message in full.  The lists become plain comparisons (no
         * ephemeral table: see EXPLAIN), and runs.request, runs.result
         * and messages.content are checked by the store in C before the
         * statement runs (json_check.c).  Rebuilt the documented way
         * (sqlite.org/lang_altertable.html#otheralter): new table, copy,
         * drop, rename, indexes again; nothing references these tables,
         * so the foreign keys need no change.  Same columns, same order,
         * same rowids. */
        "CREATE TABLE runs_v5 ("
        "  run_id             TEXT PRIMARY KEY,"
        "  session_key        TEXT NOT NULL,"
        "  source             TEXT NOT NULL,"
        "  status             TEXT NOT NULL DEFAULT 'queued' CHECK (status = 'queued'"
        "    OR status = 'running' OR status = 'ok' OR status = 'error'"
        "    OR status = 'aborted' OR status = 'timeout'),"
        "  request            TEXT NOT NULL,"
        "  result             TEXT,"
        "  error              TEXT,"
        "  error_class        TEXT,"
        "  created_ms         INTEGER NOT NULL,"
        "  started_ms         INTEGER NOT NULL DEFAULT 0,"
        "  finished_ms        INTEGER NOT NULL DEFAULT 0,"
        "  attempts           INTEGER NOT NULL DEFAULT 0,"
        "  idempotency_key    TEXT,"
        "  model              TEXT,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  cost_usd           REAL NOT NULL DEFAULT 0,"
        "  delivery           TEXT CHECK (delivery IS NULL OR json_valid(delivery))"
        ");"
        "INSERT INTO runs_v5 SELECT * FROM runs;"
        "DROP TABLE runs;"
        "ALTER TABLE runs_v5 RENAME TO runs;"
        "CREATE INDEX runs_status ON runs(status, created_ms);"
        "CREATE INDEX runs_session ON runs(session_key, created_ms);"
        "CREATE INDEX runs_created ON runs(created_ms);"
        "CREATE UNIQUE INDEX runs_idempotency ON runs(idempotency_key)"
        "  WHERE idempotency_key IS NOT NULL;"
        "CREATE TABLE messages_v5 ("
        "  id                 INTEGER PRIMARY KEY,"
        "  session_key        TEXT NOT NULL REFERENCES sessions(key) ON DELETE CASCADE,"
        "  session_id         TEXT NOT NULL,"
        "  seq                INTEGER NOT NULL CHECK (seq >= 1),"
        "  role               TEXT NOT NULL CHECK (role = 'user' OR role = 'assistant'"
        "    OR role = 'tool' OR role = 'system' OR role = 'compaction'),"
        "  content            TEXT NOT NULL,"
        "  model              TEXT,"
        "  input_tokens       INTEGER NOT NULL DEFAULT 0,"
        "  output_tokens      INTEGER NOT NULL DEFAULT 0,"
        "  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,"
        "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        "  latency_ms         INTEGER NOT NULL DEFAULT 0,"
        "  created_ms         INTEGER NOT NULL,"
        "  run_id             TEXT,"
        "  UNIQUE (session_id, seq)"
        ");"
        "INSERT INTO messages_v5 SELECT * FROM messages;"
        "DROP TABLE messages;"
        "ALTER TABLE messages_v5 RENAME TO messages;"
        "CREATE INDEX messages_session_key ON messages(session_key);"
        "CREATE TABLE deliveries_v5 ("
        "  id              TEXT PRIMARY KEY,"
        "  kind            TEXT NOT NULL CHECK (kind = 'callback' OR kind = 'webhook'),"
        "  run_id          TEXT,"
        "  event           TEXT,"
        "  webhook_id      TEXT,"
        "  url             TEXT NOT NULL,"
        "  headers         TEXT CHECK (headers IS NULL OR json_valid(headers)),"
        "  body            BLOB NOT NULL,"
        "  content_type    TEXT NOT NULL,"
        "  secret          TEXT,"
        "  status          TEXT NOT NULL DEFAULT 'pending' CHECK (status = 'pending'"
        "    OR status = 'sending' OR status = 'done' OR status = 'dead'),"
        "  attempts        INTEGER NOT NULL DEFAULT 0,"
        "  max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),"
        "  retry_base      INTEGER NOT NULL DEFAULT 0,"
        "  backoff_ms      INTEGER NOT NULL,"
        "  next_attempt_ms INTEGER NOT NULL,"
        "  last_status     INTEGER NOT NULL DEFAULT 0,"
        "  last_error      TEXT,"
        "  created_ms      INTEGER NOT NULL,"
        "  updated_ms      INTEGER NOT NULL,"
        "  delivered_ms    INTEGER NOT NULL DEFAULT 0,"
        "  dedupe_key      TEXT"
        ");"
        "INSERT INTO deliveries_v5 SELECT * FROM deliveries;"
        "DROP TABLE deliveries;"
        "ALTER TABLE deliveries_v5 RENAME TO deliveries;"
        "CREATE INDEX deliveries_due ON deliveries(status, next_attempt_ms);"
        "CREATE INDEX deliveries_created ON deliveries(created_ms);"
        "CREATE INDEX deliveries_run ON deliveries(run_id) WHERE run_id IS NOT NULL;"
        "CREATE UNIQUE INDEX deliveries_dedupe ON deliveries(dedupe_key) WHERE dedupe_key IS NOT NULL;",
    },
    {
        "runs_status without the runs that ended ok",
        /* Issue #3 profile: every agent turn inserted its run as running,
         * then moved the entry to ok (a delete and an insert): a third of
         * the index's cost, ~8,000 instructions a turn on the writer, for
         * an index that is nearly all `ok` rows.  Partial, it holds only
         * the unfinished and failed runs: a turn inserts one entry and
         * deletes it.  The queries that need it (start-up recovery, the
         * status filters other than ok) say `status <> 'ok'` so that
         * SQLite may use it; ok is listed through runs_created and counted
         * as all runs minus the others (runs.c). */
        "DROP INDEX runs_status;"
        "CREATE INDEX runs_status ON runs(status, created_ms) WHERE status <> 'ok';",
    },
    {
        "device tokens tied to API tokens, pairing request sources",
        /* A device token minted by a silent (loopback) pairing answers to
         * the API token that paired it (tokens.id; 0: none, as every
         * existing row: those keep working as before).  A pending request
         * remembers who asked, so one source's flood of requests replaces
         * its own, not another's ('': unknown, as every existing row). */
        "ALTER TABLE device_tokens ADD COLUMN api_token_id INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE device_pairing_requests ADD COLUMN source TEXT NOT NULL DEFAULT '';",
    },
    {
        "canonical session keys",
        /* OpenClaw names every session by its canonical key (`main` is
         * `agent:main:main`, `s1` is `agent:main:s1`, lowercased), and so
         * does chela from this version (core/session_key.c); keys stored
         * as clients sent them move to that form, with their transcripts
         * and runs, so a session carries on under the key clients now
         * reach it by.  A key whose canonical form another session holds
         * already (both `main` and `agent:main:main`), or that has none
         * (`agent:main`), moves to the canonical form of `legacy:<key>`
         * instead (`agent:main:legacy:main`): nothing is merged or lost,
         * and every surface still reaches it.  Foreign keys are checked
         * at COMMIT: messages move before their session row does. */
        "PRAGMA defer_foreign_keys=ON;"
        "CREATE TEMP TABLE key_move(old TEXT PRIMARY KEY, new TEXT);"
        "INSERT INTO key_move SELECT key, chela_session_key(key) FROM sessions"
        "  WHERE chela_session_key(key) IS NOT NULL AND chela_session_key(key) <> key;"
        "DELETE FROM key_move WHERE new IN (SELECT key FROM sessions)"
        "  OR rowid NOT IN (SELECT min(rowid) FROM key_move GROUP BY new);"
        "INSERT INTO key_move SELECT key, chela_session_key('legacy:' || key) FROM sessions"
        "  WHERE (chela_session_key(key) IS NULL OR chela_session_key(key) <> key)"
        "  AND key NOT IN (SELECT old FROM key_move);"
        "DELETE FROM key_move WHERE new IS NULL OR new IN (SELECT key FROM sessions)"
        "  OR rowid NOT IN (SELECT min(rowid) FROM key_move GROUP BY new);"
        "UPDATE messages SET session_key = (SELECT new FROM key_move WHERE old = session_key)"
        "  WHERE session_key IN (SELECT old FROM key_move);"
        "UPDATE runs SET session_key = (SELECT new FROM key_move WHERE old = session_key)"
        "  WHERE session_key IN (SELECT old FROM key_move);"
        "UPDATE sessions SET key = (SELECT new FROM key_move WHERE old = key)"
        "  WHERE key IN (SELECT old FROM key_move);"
        /* A run whose key has no session row (queued before its first
         * start) takes the canonical key. */
        "UPDATE runs SET session_key = chela_session_key(session_key)"
        "  WHERE chela_session_key(session_key) IS NOT NULL AND chela_session_key(session_key) <> session_key"
        "  AND session_key NOT IN (SELECT key FROM sessions);"
        "DROP TABLE key_move;",
    },
};

int ch_db_latest_version(void)
{
    return (int)CH_ARRAY_SIZE(steps);
}

int ch_db_version_error(int found, struct ch_error *err)
{
    return ch_error_set(err, CH_EVERSION,
                        "database schema version %d is newer than this chela (knows up to %d); "
                        "upgrade chela or use another --state directory",
                        found, ch_db_latest_version());
}

/* Bookkeeping rows written inside the step's transaction.  created_* are
 * written once (INSERT OR IGNORE); migrated_* track the latest step. */
static int record_meta(struct ch_db *db, int version, struct ch_error *err)
{
    char sql[512];
    int64_t now = ch_now_ms();

    snprintf(sql, sizeof(sql),
             "INSERT OR IGNORE INTO meta(key, value) VALUES"
             " ('created_ms', '%lld'), ('created_version', '%s');"
             "INSERT OR REPLACE INTO meta(key, value) VALUES"
             " ('migrated_ms', '%lld'), ('migrated_version', '%s'), ('schema_version', '%d');",
             (long long)now, CH_VERSION, (long long)now, CH_VERSION, version);
    return ch_db_exec(db, sql, err, "record migration in meta");
}

/* Apply the step that takes the file from `from` to `from + 1`, or nothing
 * if another process got there first (or it is at `target`).  *now_at gets
 * the version after. */
static int apply_one(struct ch_db *db, int target, int *now_at, struct ch_error *err)
{
    const struct migration *m;
    char sql[64];
    int v, rc;

    rc = ch_db_exec(db, "BEGIN IMMEDIATE", err, "begin migration");
    if (rc) {
        ch_error_set(err, rc, "cannot lock database '%s' for migration: %s", db->path, sqlite3_errmsg(db->h));
        return rc;
    }
    /* Re-read inside the lock: the version may have moved since open. */
    v = ch_db_user_version(db);
    if (v < 0) {
        rc = ch_error_set(err, v, "cannot read schema version of '%s': %s", db->path, sqlite3_errmsg(db->h));
        goto out;
    }
    if (v > ch_db_latest_version()) {
        rc = ch_db_version_error(v, err);
        goto out;
    }
    *now_at = v;
    if (v >= target)
        goto out; /* nothing to do; rollback of an empty transaction is free */

    m = &steps[v];
    rc = ch_db_exec(db, m->sql, NULL, NULL);
    if (rc) {
        ch_error_set(err, rc, "migration %d (%s) of '%s' failed: %s", v + 1, m->name, db->path, sqlite3_errmsg(db->h));
        goto out;
    }
    rc = record_meta(db, v + 1, err);
    if (rc)
        goto out;
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
    rc = ch_db_exec(db, sql, err, "set schema version");
    if (rc)
        goto out;
    rc = ch_db_exec(db, "COMMIT", err, "commit migration");
    if (rc == 0) {
        *now_at = v + 1;
        ch_log_info("store: migrated '%s' to schema version %d (%s)", db->path, v + 1, m->name);
        return 0;
    }
out:
    if (!sqlite3_get_autocommit(db->h))
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int ch_db_migrate_to(struct ch_db *db, int target, struct ch_error *err)
{
    int at = -1, rc;

    if (db->readonly)
        return ch_error_set(err, CH_EPERM, "cannot migrate read-only database '%s'", db->path);
    if (target < 1 || target > ch_db_latest_version())
        return ch_error_set(err, CH_EINVAL, "no schema version %d", target);
    /* One transaction per step; the loop ends when a step finds the file
     * already at the target.  Bounded: each pass advances `at`. */
    for (;;) {
        int before = at;

        rc = apply_one(db, target, &at, err);
        if (rc)
            return rc;
        if (at >= target)
            return 0;
        if (at == before) /* cannot happen: apply_one advances or stops */
            return ch_error_set(err, CH_EIO, "migration of '%s' made no progress", db->path);
    }
}

int ch_db_migrate(struct ch_db *db, struct ch_error *err)
{
    return ch_db_migrate_to(db, ch_db_latest_version(), err);
}
