/*
 * store/preview.c: sessions.preview (spec section 2.2): the readable text
 * of the last few messages of a session key's current transcript.
 *
 * Content is provider-neutral JSON blocks; the preview joins text blocks
 * with newlines, shows a compaction entry as its summary and a tool call
 * as "[tool: name]", and cuts the result at a character (not byte) count.
 * The extraction runs in SQL with SQLite's JSON functions rather than in
 * jansson: jansson 2.14's lexer corrupts its state when an allocation
 * fails mid-token (akheron/jansson#362), and SQLite's JSON code fails
 * cleanly with SQLITE_NOMEM instead.
 */
#include <string.h>

#include "store/internal.h"

#define MAX_PREVIEW_LIMIT 1000
#define MAX_PREVIEW_CHARS (1024 * 1024)

/*
 * The text of one JSON object block `v` (SQL text holding JSON): its
 * "text"; a compaction's summary; "[tool: name]" for a tool call (a type
 * naming a tool that is not a result); else a string "content", or the
 * text blocks of an array "content" (a tool result's blocks).
 */
#define OBJ_TEXT(v)                                                                                                    \
    "CASE"                                                                                                             \
    " WHEN json_type(" v ", '$.text') = 'text' THEN json_extract(" v ", '$.text')"                                     \
    " WHEN json_extract(" v ", '$.type') = 'compaction' THEN json_extract(" v ", '$.summary')"                         \
    " WHEN json_type(" v ", '$.name') = 'text' AND json_extract(" v ", '$.type') LIKE '%tool%'"                        \
    "  AND json_extract(" v ", '$.type') NOT LIKE '%result%'"                                                          \
    "  THEN '[tool: ' || substr(json_extract(" v ", '$.name'), 1, 64) || ']'"                                          \
    " WHEN json_type(" v ", '$.content') = 'text' THEN json_extract(" v ", '$.content')"                               \
    " WHEN json_type(" v ", '$.content') = 'array' THEN"                                                               \
    "  (SELECT group_concat(CASE c.type WHEN 'text' THEN c.value"                                                      \
    "    ELSE json_extract(c.value, '$.text') END, char(10))"                                                          \
    "   FROM json_each(" v ", '$.content') AS c"                                                                       \
    "   WHERE c.type = 'text' OR (c.type = 'object' AND json_type(c.value, '$.text') = 'text'))"                       \
    " END"

/* The text of a whole content value: a string, one object, or an array of
 * blocks (json_each's value is plain text for string elements). */
/* clang-format off */
#define CONTENT_TEXT                                                                   \
    "CASE json_type(m.content)"                                                        \
    " WHEN 'text' THEN json_extract(m.content, '$')"                                   \
    " WHEN 'object' THEN " OBJ_TEXT("m.content")                                       \
    " WHEN 'array' THEN (SELECT group_concat(t, char(10)) FROM"                        \
    "  (SELECT CASE b.type WHEN 'text' THEN b.value"                                   \
    "    WHEN 'object' THEN " OBJ_TEXT("b.value") " END AS t"                          \
    "   FROM json_each(m.content) AS b ORDER BY b.key) WHERE t <> '')"                 \
    " END"
/* clang-format on */

void ch_preview_list_release(struct ch_preview_list *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->count; i++)
        ch_free(l->items[i].text);
    ch_free(l->items);
    memset(l, 0, sizeof(*l));
}

int ch_messages_preview(struct ch_db *db, const char *key, size_t limit, size_t max_chars, struct ch_preview_list *out)
{
    struct ch_preview_list l = {0};
    struct ch_preview_item tmp, *it;
    sqlite3_stmt *st = NULL;
    const unsigned char *role;
    size_t cap = 0, i;
    bool found = false;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || limit == 0 || limit > MAX_PREVIEW_LIMIT || max_chars == 0 || max_chars > MAX_PREVIEW_CHARS)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL, NULL)))
        return rc;
    /* One statement, one snapshot: a key without messages still gives one
     * row (NULL role), a missing key none.  substr() counts characters. */
    rc = ch_db_prepare(db,
                       "SELECT m.role, substr(COALESCE(" CONTENT_TEXT ", ''), 1, ?3)"
                       " FROM sessions s LEFT JOIN messages m ON m.session_id = s.session_id"
                       " WHERE s.key = ?1 ORDER BY m.seq DESC LIMIT ?2",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max_chars);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        found = true;
        if (sqlite3_column_type(st, 0) == SQLITE_NULL)
            continue;
        rc = ch_store_grow((void **)&l.items, &cap, l.count, sizeof(*l.items));
        if (rc)
            goto out;
        it = &l.items[l.count];
        memset(it, 0, sizeof(*it));
        role = sqlite3_column_text(st, 0);
        if (role)
            memcpy(it->role, role, strnlen((const char *)role, sizeof(it->role) - 1));
        rc = ch_store_col_dup(st, 1, &it->text);
        if (rc == 0 && !it->text)
            rc = CH_ENOMEM; /* COALESCE makes it non-NULL */
        if (rc)
            goto out;
        l.count++;
    }
    rc = src == SQLITE_DONE ? (found ? 0 : CH_ENOTFOUND) : ch_db_err_code(src);
out:
    sqlite3_finalize(st);
    if (rc) {
        ch_preview_list_release(&l);
        return rc;
    }
    for (i = 0; i < l.count / 2; i++) { /* oldest first */
        tmp = l.items[i];
        l.items[i] = l.items[l.count - 1 - i];
        l.items[l.count - 1 - i] = tmp;
    }
    *out = l;
    return 0;
}
