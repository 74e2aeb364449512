/*
 * store/sessions.c: the `sessions` table, one row per session key
 * (OpenClaw's SessionEntry, spec section 5), and the input checks and row
 * helpers that messages.c, runs.c and usage.c share.
 *
 * A key points at its current transcript through session_id (a uuid):
 * ensure creates the row on first use, reset swaps in a fresh id (the old
 * transcript stays under the old id), delete removes the row and, through
 * the messages foreign key, every transcript stored under the key.  Usage
 * counters grow with one UPDATE per turn.
 */
#include <math.h>
#include <string.h>

#include "store/internal.h"

/* Every token count is far below this; the bound keeps sums in int64. */
#define MAX_USAGE_TOKENS ((int64_t)1 << 40)
#define DEFAULT_LIST_LIMIT 100

/* ------------------------------------------------------------------ */
/* Shared helpers (declared in internal.h)                              */
/* ------------------------------------------------------------------ */

int ch_store_check_usage(const struct ch_usage *u)
{
    if (!u)
        return CH_EINVAL;
    if (u->input_tokens < 0 || u->input_tokens > MAX_USAGE_TOKENS || u->output_tokens < 0 ||
        u->output_tokens > MAX_USAGE_TOKENS || u->cache_read_tokens < 0 || u->cache_read_tokens > MAX_USAGE_TOKENS ||
        u->cache_write_tokens < 0 || u->cache_write_tokens > MAX_USAGE_TOKENS)
        return CH_EINVAL;
    if (!isfinite(u->cost_usd) || u->cost_usd < 0)
        return CH_EINVAL;
    return 0;
}

void ch_store_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

int ch_store_col_dup(sqlite3_stmt *st, int col, char **out)
{
    const unsigned char *p;
    int n;

    *out = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    p = sqlite3_column_text(st, col);
    n = sqlite3_column_bytes(st, col);
    if (!p) /* not NULL by type, so SQLite ran out of memory converting it */
        return CH_ENOMEM;
    *out = ch_strndup((const char *)p, (size_t)n);
    return *out ? 0 : CH_ENOMEM;
}

int ch_store_step_done(sqlite3_stmt *st)
{
    int src = sqlite3_step(st);

    return src == SQLITE_DONE ? 0 : ch_db_err_code(src == SQLITE_ROW ? SQLITE_MISUSE : src);
}

int ch_store_row_err(int sqlite_rc)
{
    int rc = ch_db_err_code(sqlite_rc);

    if (sqlite_rc == SQLITE_DONE)
        return CH_ENOTFOUND;
    return rc ? rc : CH_EIO; /* SQLITE_ROW/OK where a row was expected: misuse */
}

int ch_store_grow(void **items, size_t *cap, size_t count, size_t size)
{
    size_t ncap;
    void *grown;

    if (count < *cap)
        return 0;
    if (*cap >= CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    ncap = *cap ? CH_MIN(*cap * 2, (size_t)CH_STORE_MAX_LIST) : 16;
    grown = ch_realloc(*items, ncap * size);
    if (!grown)
        return CH_ENOMEM;
    *items = grown;
    *cap = ncap;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Records                                                              */
/* ------------------------------------------------------------------ */

void ch_session_rec_release(struct ch_session_rec *s)
{
    if (!s)
        return;
    ch_free(s->key);
    ch_free(s->session_id);
    ch_free(s->agent_id);
    ch_free(s->label);
    ch_free(s->display_name);
    ch_free(s->channel);
    ch_free(s->model_override);
    ch_free(s->thinking_level);
    ch_free(s->last_run_id);
    ch_free(s->origin);
    ch_free(s->extra);
    memset(s, 0, sizeof(*s));
}

void ch_session_list_release(struct ch_session_list *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->count; i++)
        ch_session_rec_release(&l->items[i]);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

#define SESSION_COLS                                                                                                   \
    "key, session_id, agent_id, created_ms, updated_ms, label, display_name, channel,"                                 \
    " model_override, thinking_level, input_tokens, output_tokens, cache_read_tokens,"                                 \
    " cache_write_tokens, total_tokens, context_tokens, compaction_count,"                                             \
    " estimated_cost_usd, last_run_id, origin, extra"

static int row_to_session(sqlite3_stmt *st, struct ch_session_rec *s)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if ((rc = ch_store_col_dup(st, 0, &s->key)) || (rc = ch_store_col_dup(st, 1, &s->session_id)) ||
        (rc = ch_store_col_dup(st, 2, &s->agent_id)) || (rc = ch_store_col_dup(st, 5, &s->label)) ||
        (rc = ch_store_col_dup(st, 6, &s->display_name)) || (rc = ch_store_col_dup(st, 7, &s->channel)) ||
        (rc = ch_store_col_dup(st, 8, &s->model_override)) || (rc = ch_store_col_dup(st, 9, &s->thinking_level)) ||
        (rc = ch_store_col_dup(st, 18, &s->last_run_id)) || (rc = ch_store_col_dup(st, 19, &s->origin)) ||
        (rc = ch_store_col_dup(st, 20, &s->extra))) {
        ch_session_rec_release(s);
        return rc;
    }
    /* NOT NULL columns; a NULL here means a file edited by hand. */
    if (!s->key || !s->session_id || !s->agent_id) {
        ch_session_rec_release(s);
        return CH_EIO;
    }
    s->created_ms = sqlite3_column_int64(st, 3);
    s->updated_ms = sqlite3_column_int64(st, 4);
    s->usage.input_tokens = sqlite3_column_int64(st, 10);
    s->usage.output_tokens = sqlite3_column_int64(st, 11);
    s->usage.cache_read_tokens = sqlite3_column_int64(st, 12);
    s->usage.cache_write_tokens = sqlite3_column_int64(st, 13);
    s->total_tokens = sqlite3_column_int64(st, 14);
    s->context_tokens = sqlite3_column_int64(st, 15);
    s->compaction_count = sqlite3_column_int64(st, 16);
    s->usage.cost_usd = sqlite3_column_double(st, 17);
    return 0;
}

static int check_key(const char *key)
{
    return ch_store_check_text(key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

int ch_sessions_get(struct ch_db *db, const char *key, struct ch_session_rec *out)
{
    struct ch_session_rec s = {0};
    sqlite3_stmt *st;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_key(key)))
        return rc;
    rc = ch_db_stmt(db, CH_STMT_SESSION_GET, "SELECT " SESSION_COLS " FROM sessions WHERE key = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = row_to_session(st, &s);
    else
        rc = ch_store_row_err(src);
    sqlite3_reset(st);
    if (rc == 0)
        *out = s;
    return rc;
}

/* The row ch_sessions_ensure just inserted, as ch_sessions_get would read
 * it (every other column has its default: NULL or 0), without the read:
 * a new session per agent turn is the common case (bench/agent.sh). */
static int new_session_rec(const char *key, const char *session_id, const char *agent_id, int64_t now_ms,
                           struct ch_session_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->created_ms = out->updated_ms = now_ms;
    if (!(out->key = ch_strdup(key)) || !(out->session_id = ch_strdup(session_id)) ||
        !(out->agent_id = ch_strdup(agent_id))) {
        ch_session_rec_release(out);
        return CH_ENOMEM;
    }
    return 0;
}

int ch_sessions_ensure(struct ch_db *db, const char *key, const char *agent_id, int64_t now_ms,
                       struct ch_session_rec *out, bool *created)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st;
    char uuid[37];
    bool made = false, own;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db)
        return CH_EINVAL;
    if ((rc = check_key(key)) ||
        (rc = ch_store_check_text(agent_id, CH_STORE_MAX_ID_BYTES, false, false, "agent id", NULL, NULL)))
        return rc;
    if (agent_id && !agent_id[0])
        return CH_EINVAL;
    /* Time-ordered (v7), like run ids: the transcript index
     * UNIQUE(session_id, seq) then grows at its right edge.  With v4 ids
     * every new session's first messages landed on a random leaf: one more
     * page to journal, log and checkpoint per message, and under a steady
     * stream of new sessions the writer's page cache missed (a pread). */
    ch_uuid7(uuid);
    /* Inside a transaction (the writer's batch) the insert and the read
     * are atomic already, and a failed INSERT undoes only itself. */
    own = sqlite3_get_autocommit(db->h) != 0;
    rc = own ? ch_db_atomic_begin(db, &a) : 0;
    if (rc)
        return rc;
    /* DO NOTHING on an existing key: the row (and its session id) is
     * whatever the first caller made; changes() tells us which case. */
    rc = ch_db_stmt(db, CH_STMT_SESSION_INSERT,
                    "INSERT INTO sessions(key, session_id, agent_id, created_ms, updated_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(key) DO NOTHING",
                    &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, agent_id ? agent_id : "main", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    rc = ch_store_step_done(st);
    sqlite3_reset(st);
    if (rc)
        goto out;
    made = sqlite3_changes(db->h) > 0;
    if (out && made)
        rc = new_session_rec(key, uuid, agent_id ? agent_id : "main", now_ms, out);
    else if (out)
        rc = ch_sessions_get(db, key, out);
out:
    if (own)
        rc = ch_db_atomic_end(db, &a, rc);
    if (rc) {
        ch_session_rec_release(out);
        return rc;
    }
    if (created)
        *created = made;
    return 0;
}

#define SESSIONS_AFTER " AND updated_ms <= ?5 AND (updated_ms < ?5 OR rowid < ?6)"
#define SESSIONS_ORDER " ORDER BY updated_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4"

int ch_sessions_list(struct ch_db *db, const struct ch_session_query *q, struct ch_session_list *out)
{
    struct ch_session_list l = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0, limit;
    bool by_agent;
    int rc = CH_EINVAL, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !q || !out || q->updated_since_ms < 0)
        return CH_EINVAL;
    limit = q->limit ? q->limit : DEFAULT_LIST_LIMIT;
    if (limit > CH_STORE_MAX_LIST)
        return CH_E_TOO_LARGE;
    if ((rc = ch_store_check_text(q->agent_id, CH_STORE_MAX_ID_BYTES, false, false, "agent id", NULL, NULL)))
        return rc;
    by_agent = q->agent_id != NULL;
    /* Two fixed texts rather than "?2 IS NULL OR ...", which would keep
     * the planner from using an index for the filter. */
    rc = ch_db_prepare(db,
                       by_agent ? "SELECT COUNT(*) FROM sessions"
                                  " WHERE updated_ms >= ?1 AND agent_id = ?2"
                                : "SELECT COUNT(*) FROM sessions WHERE updated_ms >= ?1",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_int64(st, 1, q->updated_since_ms);
    if (by_agent)
        sqlite3_bind_text(st, 2, q->agent_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
        goto out;
    }
    l.total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;

    /* Keyset order (struct ch_list_pos): sessions_updated ends in the
     * rowid, and the position test is a range on updated_ms for the
     * planner (?5 INT64_MAX: from the newest row).  One row more than the
     * page tells whether more follow. */
    rc = ch_db_prepare(db,
                       by_agent ? "SELECT " SESSION_COLS ", rowid FROM sessions"
                                  " WHERE updated_ms >= ?1 AND agent_id = ?2" SESSIONS_AFTER SESSIONS_ORDER
                                : "SELECT " SESSION_COLS ", rowid FROM sessions"
                                  " WHERE updated_ms >= ?1" SESSIONS_AFTER SESSIONS_ORDER,
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_int64(st, 1, q->updated_since_ms);
    if (by_agent)
        sqlite3_bind_text(st, 2, q->agent_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)CH_MIN(q->offset, (size_t)INT64_MAX));
    sqlite3_bind_int64(st, 5, q->after.rowid ? q->after.ms : INT64_MAX);
    sqlite3_bind_int64(st, 6, q->after.rowid);
    while ((src = sqlite3_step(st)) == SQLITE_ROW && !(l.more = l.count == limit)) {
        rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items));
        if (rc)
            goto out;
        rc = row_to_session(st, &l.items[l.count]);
        if (rc)
            goto out;
        l.next = (struct ch_list_pos){l.items[l.count].updated_ms, sqlite3_column_int64(st, 21)};
        l.count++;
    }
    if (l.more)
        src = SQLITE_DONE;
    rc = src == SQLITE_DONE ? 0 : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc)
        ch_session_list_release(&l);
    else
        *out = l;
    return rc;
}

static int check_patch(const struct ch_session_patch *p)
{
    const char *slash;
    int rc;

    if ((rc = ch_store_check_text(p->label, CH_STORE_MAX_NAME_BYTES, false, false, "label", NULL, NULL)) ||
        (rc =
             ch_store_check_text(p->display_name, CH_STORE_MAX_NAME_BYTES, false, false, "display name", NULL, NULL)) ||
        (rc = ch_store_check_text(p->channel, CH_STORE_MAX_ID_BYTES, false, false, "channel", NULL, NULL)) ||
        (rc = ch_store_check_text(p->model_override, CH_STORE_MAX_NAME_BYTES, false, false, "model override", NULL,
                                  NULL)) ||
        (rc = ch_store_check_text(p->thinking_level, CH_STORE_MAX_ID_BYTES, false, false, "thinking level", NULL,
                                  NULL)) ||
        (rc = ch_store_check_text(p->origin, CH_STORE_MAX_META_JSON_BYTES, false, true, "origin", NULL, NULL)) ||
        (rc = ch_store_check_text(p->extra, CH_STORE_MAX_META_JSON_BYTES, false, true, "extra", NULL, NULL)))
        return rc;
    /* The store keeps resolved "provider/model" only: aliases ("gpt") are
     * resolved against the config before they get here. */
    if (p->model_override) {
        slash = strchr(p->model_override, '/');
        if (!slash || slash == p->model_override || slash[1] == '\0')
            return CH_EINVAL;
    }
    return 0;
}

int ch_sessions_patch(struct ch_db *db, const char *key, const struct ch_session_patch *p, int64_t now_ms,
                      struct ch_session_rec *out)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !p)
        return CH_EINVAL;
    if ((rc = check_key(key)) || (rc = check_patch(p)))
        return rc;
    rc = ch_db_atomic_begin(db, &a);
    if (rc)
        return rc;
    /* One fixed statement for every combination of fields: each flag
     * selects between the bound value (NULL clears) and the old one. */
    rc = ch_db_prepare(db,
                       "UPDATE sessions SET"
                       " label = CASE WHEN ?2 THEN ?3 ELSE label END,"
                       " display_name = CASE WHEN ?4 THEN ?5 ELSE display_name END,"
                       " channel = CASE WHEN ?6 THEN ?7 ELSE channel END,"
                       " model_override = CASE WHEN ?8 THEN ?9 ELSE model_override END,"
                       " thinking_level = CASE WHEN ?10 THEN ?11 ELSE thinking_level END,"
                       " origin = CASE WHEN ?12 THEN ?13 ELSE origin END,"
                       " extra = CASE WHEN ?14 THEN ?15 ELSE extra END,"
                       " updated_ms = ?16"
                       " WHERE key = ?1",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->set_label);
    ch_store_bind_text(st, 3, p->label);
    sqlite3_bind_int(st, 4, p->set_display_name);
    ch_store_bind_text(st, 5, p->display_name);
    sqlite3_bind_int(st, 6, p->set_channel);
    ch_store_bind_text(st, 7, p->channel);
    sqlite3_bind_int(st, 8, p->set_model_override);
    ch_store_bind_text(st, 9, p->model_override);
    sqlite3_bind_int(st, 10, p->set_thinking_level);
    ch_store_bind_text(st, 11, p->thinking_level);
    sqlite3_bind_int(st, 12, p->set_origin);
    ch_store_bind_text(st, 13, p->origin);
    sqlite3_bind_int(st, 14, p->set_extra);
    ch_store_bind_text(st, 15, p->extra);
    sqlite3_bind_int64(st, 16, now_ms);
    rc = ch_store_step_done(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = CH_ENOTFOUND;
    if (rc == 0 && out)
        rc = ch_sessions_get(db, key, out);
out:
    sqlite3_finalize(st);
    rc = ch_db_atomic_end(db, &a, rc);
    if (rc)
        ch_session_rec_release(out);
    return rc;
}

int ch_sessions_reset(struct ch_db *db, const char *key, const char *expected_session_id, int64_t now_ms,
                      struct ch_session_rec *out)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st = NULL;
    char uuid[37];
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db)
        return CH_EINVAL;
    if ((rc = check_key(key)) || (rc = ch_store_check_text(expected_session_id, CH_STORE_MAX_ID_BYTES, false, false,
                                                           "expected session id", NULL, NULL)))
        return rc;
    ch_uuid7(uuid); /* time-ordered: see ch_sessions_ensure */
    rc = ch_db_atomic_begin(db, &a);
    if (rc)
        return rc;
    rc = ch_db_prepare(db,
                       "UPDATE sessions SET session_id = ?2, input_tokens = 0,"
                       " output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0,"
                       " total_tokens = 0, context_tokens = 0, compaction_count = 0,"
                       " estimated_cost_usd = 0, last_run_id = NULL, updated_ms = ?3"
                       " WHERE key = ?1 AND (?4 IS NULL OR session_id = ?4)",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    ch_store_bind_text(st, 4, expected_session_id);
    rc = ch_store_step_done(st);
    if (rc)
        goto out;
    if (sqlite3_changes(db->h) == 0) {
        struct ch_session_rec cur;

        /* Tell "no such key" from "someone else reset it first". */
        rc = ch_sessions_get(db, key, &cur);
        ch_session_rec_release(&cur);
        if (rc == 0)
            rc = CH_ESTATE;
        goto out;
    }
    if (out)
        rc = ch_sessions_get(db, key, out);
out:
    sqlite3_finalize(st);
    rc = ch_db_atomic_end(db, &a, rc);
    if (rc)
        ch_session_rec_release(out);
    return rc;
}

int ch_sessions_delete(struct ch_db *db, const char *key, bool *existed)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = check_key(key)))
        return rc;
    /* One statement, so atomic on its own: ON DELETE CASCADE removes the
     * messages of every session id the key ever had. */
    rc = ch_db_prepare(db, "DELETE FROM sessions WHERE key = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = ch_store_step_done(st);
    if (rc == 0 && existed)
        *existed = sqlite3_changes(db->h) > 0;
    sqlite3_finalize(st);
    return rc;
}

int ch_sessions_add_usage(struct ch_db *db, const char *key, const struct ch_usage *u, int64_t context_tokens,
                          const char *run_id, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc;

    if (!db)
        return CH_EINVAL;
    if ((rc = check_key(key)) || (rc = ch_store_check_usage(u)) ||
        (rc = ch_store_check_text(run_id, CH_STORE_MAX_ID_BYTES, false, false, "run id", NULL, NULL)))
        return rc;
    if (context_tokens > MAX_USAGE_TOKENS)
        return CH_EINVAL;
    rc = ch_db_stmt(db, CH_STMT_SESSION_ADD_USAGE,
                    "UPDATE sessions SET input_tokens = input_tokens + ?2,"
                    " output_tokens = output_tokens + ?3,"
                    " cache_read_tokens = cache_read_tokens + ?4,"
                    " cache_write_tokens = cache_write_tokens + ?5,"
                    " total_tokens = total_tokens + ?2 + ?3 + ?4 + ?5,"
                    " estimated_cost_usd = estimated_cost_usd + ?6,"
                    " context_tokens = CASE WHEN ?7 >= 0 THEN ?7 ELSE context_tokens END,"
                    " last_run_id = COALESCE(?8, last_run_id), updated_ms = ?9"
                    " WHERE key = ?1",
                    &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, u->input_tokens);
    sqlite3_bind_int64(st, 3, u->output_tokens);
    sqlite3_bind_int64(st, 4, u->cache_read_tokens);
    sqlite3_bind_int64(st, 5, u->cache_write_tokens);
    sqlite3_bind_double(st, 6, u->cost_usd);
    sqlite3_bind_int64(st, 7, context_tokens);
    ch_store_bind_text(st, 8, run_id);
    sqlite3_bind_int64(st, 9, now_ms);
    rc = ch_store_step_done(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = CH_ENOTFOUND;
    sqlite3_reset(st);
    return rc;
}
