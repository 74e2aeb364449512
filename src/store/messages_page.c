/*
 * store/messages_page.c: reading a transcript from its newest end: the
 * agent's load of the last rows (ch_messages_load_last) and the history
 * pages below a cursor (GET /sessions/:key/history, chat.history).  The
 * newest rows are read first so the byte cap leaves out the oldest; a
 * page must always move on, so a row over max_one comes without its
 * content instead of stopping the paging.
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

int ch_messages_load_before(struct ch_db *db, const char *session_id, int64_t before_seq, size_t max_count,
                            size_t max_bytes, size_t max_one, struct ch_message_list *out)
{
    struct ch_message_list l = {0};
    struct ch_message_rec tmp;
    sqlite3_stmt *st;
    int rc;

    if ((rc = ch_messages_check_load(db, session_id, max_count, max_bytes, out)))
        return rc;
    /* Cached: the agent loads a transcript whenever its cache misses. */
    rc = ch_db_stmt(db, CH_STMT_MESSAGE_LOAD_LAST,
                    "SELECT " CH_MESSAGE_COLS " FROM messages WHERE session_id = ?1 AND seq < ?2"
                    " ORDER BY seq DESC LIMIT ?3",
                    &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max_count + 1);
    rc = ch_messages_collect(st, max_count, max_bytes, max_one, &l);
    sqlite3_reset(st);
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
