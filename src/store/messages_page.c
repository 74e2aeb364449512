/*
 * store/messages_page.c: paging back through a transcript from its newest
 * end, for readers that show it a page at a time (GET
 * /sessions/:key/history and its cursor).  Apart from messages.c, which
 * loads for the agent: a page must always move on, so a message too large
 * for any page comes without its content instead of stopping the paging,
 * and a page is the newest rows below the cursor that fit, never rows cut
 * from its newer end.
 */
#include <string.h>

#include "store/internal.h"

void ch_messages_row_fixed(sqlite3_stmt *st, struct ch_message_rec *m)
{
    const unsigned char *role = sqlite3_column_text(st, 4);

    /* The CHECK constraint bounds role; copy at most the field anyway. */
    if (role)
        memcpy(m->role, role, strnlen((const char *)role, sizeof(m->role) - 1));
    m->id = sqlite3_column_int64(st, 0);
    m->seq = sqlite3_column_int64(st, 3);
    m->input_tokens = sqlite3_column_int64(st, 7);
    m->output_tokens = sqlite3_column_int64(st, 8);
    m->cache_read_tokens = sqlite3_column_int64(st, 9);
    m->cache_write_tokens = sqlite3_column_int64(st, 10);
    m->latency_ms = sqlite3_column_int64(st, 11);
    m->created_ms = sqlite3_column_int64(st, 12);
}

static int page_row(sqlite3_stmt *st, bool with_content, struct ch_message_rec *m)
{
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = ch_store_col_dup(st, 1, &m->session_key)) || (rc = ch_store_col_dup(st, 2, &m->session_id)) ||
        (with_content && (rc = ch_store_col_dup(st, CH_MESSAGE_COL_CONTENT, &m->content))) ||
        (rc = ch_store_col_dup(st, 6, &m->model)) || (rc = ch_store_col_dup(st, 13, &m->run_id))) {
        ch_message_rec_release(m);
        return rc;
    }
    ch_messages_row_fixed(st, m);
    return 0;
}

/* Newest first, so the byte cap leaves out the oldest rows of the page. */
static int page_collect(sqlite3_stmt *st, size_t max_count, size_t max_bytes, size_t max_one, struct ch_message_list *l)
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
        if ((rc = ch_store_grow((void **)&l->items, &cap, l->count, sizeof(*l->items))) ||
            (rc = page_row(st, !big, &l->items[l->count])))
            return rc;
        l->count++;
        used += big ? 0 : bytes;
    }
    return src == SQLITE_DONE ? 0 : ch_db_err_code(src);
}

int ch_messages_load_before(struct ch_db *db, const char *session_id, int64_t before_seq, size_t max_count,
                            size_t max_bytes, size_t max_one, struct ch_message_list *out)
{
    struct ch_message_list l = {0};
    struct ch_message_rec tmp;
    sqlite3_stmt *st = NULL;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || max_count == 0)
        return CH_EINVAL;
    if (max_count > CH_STORE_MAX_LIST || max_bytes > CH_STORE_MAX_LOAD_BYTES)
        return CH_E_TOO_LARGE;
    if ((rc = ch_store_check_text(session_id, CH_STORE_MAX_ID_BYTES, true, false, "session id", NULL, NULL)))
        return rc;
    rc = ch_db_prepare(db,
                       "SELECT " CH_MESSAGE_COLS " FROM messages WHERE session_id = ?1 AND seq < ?2"
                       " ORDER BY seq DESC LIMIT ?3",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max_count + 1);
    rc = page_collect(st, max_count, max_bytes, max_one, &l);
    sqlite3_finalize(st);
    if (rc) {
        ch_message_list_release(&l);
        return rc;
    }
    for (size_t i = 0; i < l.count / 2; i++) { /* hand back in transcript order */
        tmp = l.items[i];
        l.items[i] = l.items[l.count - 1 - i];
        l.items[l.count - 1 - i] = tmp;
    }
    *out = l;
    return 0;
}
