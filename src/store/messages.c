/*
 * store/messages.c: transcripts (the `messages` table), one per session id.
 *
 * Each entry has a seq, 1, 2, ... per session_id, assigned by the INSERT
 * itself (MAX(seq) + 1 inside the writer's transaction), so concurrent
 * appends serialised by the writer never collide.  Loads come newest-first
 * (the agent fits the newest turns into the context window) or from a seq,
 * always under a byte cap.  Compaction (spec section 5) deletes a prefix and
 * puts one `compaction` entry holding the summary and first_kept_seq in its
 * place; see docs/internals/store.md.
 */
#include <string.h>

#include "store/internal.h"

/* A summary is a few thousand tokens; this cap keeps the escaped JSON of
 * the compaction entry (at most 6 bytes per input byte) under the content
 * cap. */
#define MAX_SUMMARY_BYTES (512 * 1024)

static const char *const roles[] = {"user", "assistant", "tool", "system", "compaction"};

void ch_message_rec_release(struct ch_message_rec *m)
{
    if (!m)
        return;
    ch_free(m->session_key);
    ch_free(m->session_id);
    ch_free(m->content);
    ch_free(m->model);
    ch_free(m->run_id);
    memset(m, 0, sizeof(*m));
}

void ch_message_list_release(struct ch_message_list *l)
{
    size_t i;

    if (!l)
        return;
    if (!l->text)
        for (i = 0; i < l->count; i++)
            ch_message_rec_release(&l->items[i]);
    ch_free(l->text);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

/*
 * A loaded transcript's strings go into one block (l->text), not five
 * allocations per row.  Loads run on the writer (a turn whose session is
 * not in the agent's cache loads up to 400 rows) and are freed on the
 * loop: thousands of small chunks of the writer's glibc arena freed from
 * another thread, whose sizes grow with the transcripts, were what kept
 * that arena's resident pages growing in the soak (bench/agent.sh step 5)
 * while the live heap stayed flat.  While the block grows it may move, so
 * the items hold offsets + 1 (0: NULL) until text_fix turns them into
 * pointers.
 */
static int text_col(sqlite3_stmt *st, int col, struct ch_buf *b, char **out)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t off = b->len;
    int rc;

    if (!v) {
        if (sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM)
            return CH_ENOMEM;
        *out = NULL;
        return 0;
    }
    if ((rc = ch_buf_append(b, v, (size_t)sqlite3_column_bytes(st, col))) || (rc = ch_buf_append_char(b, '\0')))
        return rc;
    *out = (char *)(uintptr_t)(off + 1);
    return 0;
}

static char *text_ptr(char *base, char *off)
{
    return off ? base + ((uintptr_t)off - 1) : NULL;
}

static void text_fix(struct ch_message_list *l, char *base)
{
    for (size_t i = 0; i < l->count; i++) {
        struct ch_message_rec *m = &l->items[i];
        m->session_key = text_ptr(base, m->session_key);
        m->session_id = text_ptr(base, m->session_id);
        m->content = text_ptr(base, m->content);
        m->model = text_ptr(base, m->model);
        m->run_id = text_ptr(base, m->run_id);
    }
    l->text = base;
}

static int row_to_message(sqlite3_stmt *st, struct ch_message_rec *m, struct ch_buf *text, bool with_content)
{
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = text_col(st, 1, text, &m->session_key)) || (rc = text_col(st, 2, text, &m->session_id)) ||
        (with_content && (rc = text_col(st, CH_MESSAGE_COL_CONTENT, text, &m->content))) ||
        (rc = text_col(st, 6, text, &m->model)) || (rc = text_col(st, 13, text, &m->run_id)))
        return rc;
    if (!m->session_key || !m->session_id || (with_content && !m->content))
        return CH_EIO; /* NOT NULL columns */
    ch_messages_row_fixed(st, m);
    return 0;
}

static int check_session_id(const char *session_id)
{
    return ch_store_check_text(session_id, CH_STORE_MAX_ID_BYTES, true, false, "session id", NULL, NULL);
}

/* A role append accepts: anything of `roles` but compaction. */
static bool append_role_ok(const char *role)
{
    size_t i;

    for (i = 0; i + 1 < CH_ARRAY_SIZE(roles); i++)
        if (strcmp(role, roles[i]) == 0)
            return true;
    return false;
}

int ch_messages_append(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out)
{
    return ch_messages_append_ids(db, m, seq_out, NULL);
}

/* first: the caller just made session_id (a fresh one): seq 1, unread. */
static int append(struct ch_db *db, const struct ch_message_rec *m, bool first, int64_t *seq_out, int64_t *id_out)
{
    struct ch_db_atomic a;
    sqlite3_stmt *st;
    size_t content_len;
    int64_t seq = 0, id = 0;
    bool own;
    int rc, src;

    if (!db || !m)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(m->session_key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL, NULL)) ||
        (rc = check_session_id(m->session_id)) ||
        (rc = ch_store_check_text(m->content, CH_STORE_MAX_CONTENT_BYTES, true, true, "message content", &content_len,
                                  NULL)) ||
        (rc = ch_store_check_text(m->model, CH_STORE_MAX_NAME_BYTES, false, false, "model", NULL, NULL)) ||
        (rc = ch_store_check_text(m->run_id, CH_STORE_MAX_ID_BYTES, false, false, "run id", NULL, NULL)))
        return rc;
    /* Schema v5 has no json_valid CHECK on content: it is checked here. */
    if (!append_role_ok(m->role) || !ch_store_json_valid(m->content, content_len) || m->input_tokens < 0 ||
        m->output_tokens < 0 || m->cache_read_tokens < 0 || m->cache_write_tokens < 0 || m->latency_ms < 0)
        return CH_EINVAL;
    /* Next seq, then a plain INSERT: INSERT ... SELECT FROM the same table
     * and RETURNING each cost SQLite an ephemeral table per call.  Inside
     * a transaction (the writer's batch) the two are atomic and a failed
     * INSERT undoes only itself; alone, they get their own transaction.
     * UNIQUE(session_id, seq) still catches any other writer. */
    own = sqlite3_get_autocommit(db->h) != 0;
    if (own && (rc = ch_db_atomic_begin(db, &a)))
        return rc;
    seq = 1; /* first: nothing to read; UNIQUE refuses an id that was not fresh */
    if (!first) {
        rc = ch_db_stmt(db, CH_STMT_MESSAGE_NEXT_SEQ,
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?1", &st);
        if (rc)
            goto out;
        sqlite3_bind_text(st, 1, m->session_id, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        seq = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (src != SQLITE_ROW) {
            rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
            goto out;
        }
    }
    rc = ch_db_stmt(db, CH_STMT_MESSAGE_APPEND,
                    "INSERT INTO messages(session_key, session_id, seq, role, content, model,"
                    " input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,"
                    " latency_ms, created_ms, run_id)"
                    " VALUES (?1, ?2, ?13, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, m->session_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->content, (int)content_len, SQLITE_STATIC);
    ch_store_bind_text(st, 5, m->model);
    sqlite3_bind_int64(st, 6, m->input_tokens);
    sqlite3_bind_int64(st, 7, m->output_tokens);
    sqlite3_bind_int64(st, 8, m->cache_read_tokens);
    sqlite3_bind_int64(st, 9, m->cache_write_tokens);
    sqlite3_bind_int64(st, 10, m->latency_ms);
    sqlite3_bind_int64(st, 11, m->created_ms);
    ch_store_bind_text(st, 12, m->run_id);
    sqlite3_bind_int64(st, 13, seq);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        id = sqlite3_last_insert_rowid(db->h);
        rc = 0;
    } else if (src == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = CH_ENOTFOUND; /* no session under that key */
    } else {
        rc = ch_db_err_code(src);
    }
    sqlite3_reset(st);
out:
    if (own)
        rc = ch_db_atomic_end(db, &a, rc);
    if (rc == 0 && seq_out)
        *seq_out = seq;
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

int ch_messages_append_ids(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out, int64_t *id_out)
{
    return append(db, m, false, seq_out, id_out);
}

int ch_messages_append_first(struct ch_db *db, const struct ch_message_rec *m, int64_t *seq_out, int64_t *id_out)
{
    return append(db, m, true, seq_out, id_out);
}

/* Shared by the loads and the history pages: collect rows from a prepared
 * statement while they fit under max_count and max_bytes; truncated when a
 * row was left out.  A row over max_one comes without its content and
 * costs none of max_bytes (a page must move on past it). */
static int collect_rows(sqlite3_stmt *st, size_t max_count, size_t max_bytes, size_t max_one, struct ch_message_list *l,
                        struct ch_buf *text)
{
    size_t cap = 0, used = 0, bytes;
    bool big;
    int rc, src;

    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        /* The query asks for max_count + 1 rows to see whether more exist. */
        if (l->count == max_count) {
            l->truncated = true;
            return 0;
        }
        bytes = (size_t)sqlite3_column_bytes(st, CH_MESSAGE_COL_CONTENT);
        big = bytes > max_one;
        if (!big && bytes > max_bytes - used) {
            l->truncated = true;
            return 0;
        }
        rc = ch_store_grow((void **)&l->items, &cap, l->count, sizeof(*l->items));
        if (rc)
            return rc;
        rc = row_to_message(st, &l->items[l->count], text, !big);
        if (rc)
            return rc;
        l->count++;
        used += big ? 0 : bytes;
    }
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

int ch_messages_collect(sqlite3_stmt *st, size_t max_count, size_t max_bytes, size_t max_one, struct ch_message_list *l)
{
    struct ch_buf text;
    int rc;

    /* Every string of the rows: the contents under max_bytes, and per row
     * the key, id, model and run id, each bounded by the store's caps. */
    ch_buf_init(&text, max_bytes + max_count * (CH_STORE_MAX_KEY_BYTES + 2 * CH_STORE_MAX_ID_BYTES +
                                                CH_STORE_MAX_NAME_BYTES + 5));
    rc = collect_rows(st, max_count, max_bytes, max_one, l, &text);
    if (rc || !l->count) {
        ch_buf_release(&text);
        l->count = 0; /* the items hold offsets, nothing to free */
        return rc;
    }
    text_fix(l, ch_buf_detach(&text, NULL));
    return 0;
}

int ch_messages_check_load(struct ch_db *db, const char *session_id, size_t max_count, size_t max_bytes,
                           struct ch_message_list *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || max_count == 0)
        return CH_EINVAL;
    if (max_count > CH_STORE_MAX_LIST || max_bytes > CH_STORE_MAX_LOAD_BYTES)
        return CH_E_TOO_LARGE;
    return check_session_id(session_id);
}

int ch_messages_load_last(struct ch_db *db, const char *session_id, size_t max_count, size_t max_bytes,
                          struct ch_message_list *out)
{
    return ch_messages_load_before(db, session_id, INT64_MAX, max_count, max_bytes, SIZE_MAX, out);
}

int ch_messages_bounds(struct ch_db *db, const char *session_id, struct ch_message_bounds *out)
{
    sqlite3_stmt *st;
    const unsigned char *role;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_session_id(session_id)))
        return rc;
    /* Two probes of UNIQUE(session_id, seq); no row for an empty
     * transcript.  Separate statements: one joining both as subqueries
     * materialises each in an ephemeral table. */
    rc = ch_db_stmt(db, CH_STMT_MESSAGE_FIRST,
                    "SELECT seq, id FROM messages WHERE session_id = ?1 ORDER BY seq LIMIT 1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->first_seq = sqlite3_column_int64(st, 0);
        out->first_id = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
    rc = ch_db_stmt(db, CH_STMT_MESSAGE_LAST,
                    "SELECT seq, id, role FROM messages WHERE session_id = ?1 ORDER BY seq DESC LIMIT 1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->last_seq = sqlite3_column_int64(st, 0);
        out->last_id = sqlite3_column_int64(st, 1);
        role = sqlite3_column_text(st, 2);
        if (role)
            memcpy(out->last_role, role, strnlen((const char *)role, sizeof(out->last_role) - 1));
        rc = 0;
    } else {
        rc = ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src); /* a row vanished: not in one transaction */
    }
    sqlite3_reset(st);
    return rc;
}

bool ch_message_bounds_equal(const struct ch_message_bounds *a, const struct ch_message_bounds *b)
{
    return a->first_seq == b->first_seq && a->first_id == b->first_id && a->last_seq == b->last_seq &&
           a->last_id == b->last_id && strcmp(a->last_role, b->last_role) == 0;
}

int ch_messages_load_since(struct ch_db *db, const char *session_id, int64_t from_seq, size_t max_count,
                           size_t max_bytes, struct ch_message_list *out)
{
    struct ch_message_list l = {0};
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = ch_messages_check_load(db, session_id, max_count, max_bytes, out)))
        return rc;
    rc = ch_db_prepare(db,
                       "SELECT " CH_MESSAGE_COLS " FROM messages"
                       " WHERE session_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max_count + 1);
    rc = ch_messages_collect(st, max_count, max_bytes, SIZE_MAX, &l);
    sqlite3_finalize(st);
    if (rc) {
        ch_message_list_release(&l);
        return rc;
    }
    *out = l;
    return 0;
}

int ch_messages_count(struct ch_db *db, const char *session_id, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if (!db || !out)
        return CH_EINVAL;
    if ((rc = check_session_id(session_id)))
        return rc;
    rc = ch_db_prepare(db, "SELECT COUNT(*) FROM messages WHERE session_id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    rc = src == SQLITE_ROW ? 0 : ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Compaction                                                           */
/* ------------------------------------------------------------------ */

static int check_compaction(const struct ch_compaction *c)
{
    int rc;

    if ((rc = ch_store_check_text(c->session_key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL, NULL)) ||
        (rc = check_session_id(c->session_id)) ||
        (rc = ch_store_check_text(c->summary, MAX_SUMMARY_BYTES, true, true, "summary", NULL, NULL)) ||
        (rc = ch_store_check_text(c->model, CH_STORE_MAX_NAME_BYTES, false, false, "model", NULL, NULL)) ||
        (rc = ch_store_check_text(c->run_id, CH_STORE_MAX_ID_BYTES, false, false, "run id", NULL, NULL)))
        return rc;
    /* seq 1 has nothing before it to replace. */
    if (c->first_kept_seq < 2 || c->tokens_before < 0 || c->input_tokens < 0 || c->output_tokens < 0)
        return CH_EINVAL;
    return 0;
}

/* [{"type":"compaction","summary":S,"first_kept_seq":K,"tokens_before":N}] */
static int compaction_content(const struct ch_compaction *c, struct ch_buf *b)
{
    int rc;

    if ((rc = ch_buf_append_str(b, "[{\"type\":\"compaction\",\"summary\":")) ||
        (rc = ch_buf_append_json_str(b, c->summary, strlen(c->summary))) ||
        (rc = ch_buf_appendf(b, ",\"first_kept_seq\":%lld,\"tokens_before\":%lld}]", (long long)c->first_kept_seq,
                             (long long)c->tokens_before)))
        return rc;
    return 0;
}

/* Count the transcript's rows, its last seq and the rows below the cut. */
static int compaction_scan(struct ch_db *db, const struct ch_compaction *c, int64_t *total, int64_t *last,
                           int64_t *below)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = ch_db_prepare(db,
                       "SELECT COUNT(*), COALESCE(MAX(seq), 0), COALESCE(SUM(seq < ?3), 0)"
                       " FROM messages WHERE session_id = ?1 AND session_key = ?2",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, c->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->session_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->first_kept_seq);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *total = sqlite3_column_int64(st, 0);
        *last = sqlite3_column_int64(st, 1);
        *below = sqlite3_column_int64(st, 2);
    }
    rc = src == SQLITE_ROW ? 0 : ch_db_err_code(src == SQLITE_DONE ? SQLITE_ERROR : src);
    sqlite3_finalize(st);
    return rc;
}

/* Run one fixed statement binding session id, key and first kept seq as
 * ?1 ?2 ?3 (a statement that has no ?3 ignores it: SQLITE_RANGE). */
static int exec_sid_key_seq(struct ch_db *db, const char *sql, const struct ch_compaction *c)
{
    sqlite3_stmt *st = NULL;
    int rc = ch_db_prepare(db, sql, &st);

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, c->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->session_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->first_kept_seq);
    rc = ch_store_step_done(st);
    sqlite3_finalize(st);
    return rc;
}

int ch_messages_compact(struct ch_db *db, const struct ch_compaction *c, int64_t *seq_out, int64_t *replaced_out)
{
    struct ch_db_atomic a;
    struct ch_buf content;
    sqlite3_stmt *st = NULL;
    int64_t total = 0, last = 0, below = 0;
    int rc;

    if (!db || !c)
        return CH_EINVAL;
    if ((rc = check_compaction(c)))
        return rc;
    ch_buf_init(&content, CH_STORE_MAX_CONTENT_BYTES);
    if ((rc = compaction_content(c, &content)))
        goto done;
    if ((rc = ch_db_atomic_begin(db, &a)))
        goto done;
    if ((rc = compaction_scan(db, c, &total, &last, &below)))
        goto out;
    if (total == 0) {
        rc = CH_ENOTFOUND;
        goto out;
    }
    if (c->first_kept_seq > last + 1) {
        rc = CH_EINVAL; /* cannot keep from a seq that does not exist yet */
        goto out;
    }
    if (below == 0) {
        rc = CH_ESTATE; /* an earlier compaction already went past this point */
        goto out;
    }
    /* Delete first: the entry then takes the freed seq first_kept_seq - 1,
     * which sorts it just before the first kept message. */
    rc = exec_sid_key_seq(db,
                          "DELETE FROM messages WHERE session_id = ?1 AND session_key = ?2"
                          " AND seq < ?3",
                          c);
    if (rc)
        goto out;
    rc = ch_db_prepare(db,
                       "INSERT INTO messages(session_key, session_id, seq, role, content,"
                       " model, input_tokens, output_tokens, created_ms, run_id)"
                       " VALUES (?1, ?2, ?3, 'compaction', ?4, ?5, ?6, ?7, ?8, ?9)",
                       &st);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, c->session_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->first_kept_seq - 1);
    sqlite3_bind_text(st, 4, content.data, (int)content.len, SQLITE_STATIC);
    ch_store_bind_text(st, 5, c->model);
    sqlite3_bind_int64(st, 6, c->input_tokens);
    sqlite3_bind_int64(st, 7, c->output_tokens);
    sqlite3_bind_int64(st, 8, c->created_ms);
    ch_store_bind_text(st, 9, c->run_id);
    rc = ch_store_step_done(st);
    if (rc)
        goto out;
    /* Count it on the session only if this transcript is still current. */
    rc = exec_sid_key_seq(db,
                          "UPDATE sessions SET compaction_count = compaction_count + 1"
                          " WHERE key = ?2 AND session_id = ?1",
                          c);
out:
    sqlite3_finalize(st);
    rc = ch_db_atomic_end(db, &a, rc);
done:
    ch_buf_release(&content);
    if (rc == 0) {
        if (seq_out)
            *seq_out = c->first_kept_seq - 1;
        if (replaced_out)
            *replaced_out = below;
    }
    return rc;
}
