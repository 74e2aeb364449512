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

int ch_messages_load_before(struct ch_db *db, const char *session_id, int64_t before_seq, size_t max_count,
                            size_t max_bytes, size_t max_one, struct ch_message_list *out)
{
    struct ch_message_list l = {0};
    struct ch_message_rec tmp;
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = ch_messages_check_load(db, session_id, max_count, max_bytes, out)))
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
    /* Newest first, so the byte cap leaves out the oldest rows of the page. */
    rc = ch_messages_collect(st, max_count, max_bytes, max_one, &l);
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
