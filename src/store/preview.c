/*
 * store/preview.c: sessions.preview (spec section 2.2): the readable text
 * of the last few messages of a session key's current transcript.
 *
 * Content is provider-neutral JSON blocks; the preview joins text blocks
 * with newlines, shows a compaction entry as its summary and a tool call
 * as "[tool: name]", and cuts the result at a character (not byte) count
 * so a UTF-8 sequence is never split.
 */
#include <jansson.h>
#include <string.h>

#include "store/internal.h"

#define MAX_PREVIEW_LIMIT 1000
#define MAX_PREVIEW_CHARS (1024 * 1024)

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

static int text_join(struct ch_buf *b, const char *s)
{
    int rc = 0;

    if (!s || !s[0])
        return 0;
    if (b->len)
        rc = ch_buf_append_char(b, '\n');
    return rc ? rc : ch_buf_append_str(b, s);
}

/* The readable text of one content block; `depth` bounds the recursion
 * into tool results that carry blocks of their own. */
static int block_text(struct ch_buf *b, json_t *blk, int depth)
{
    const char *type = json_string_value(json_object_get(blk, "type"));
    const char *name = json_string_value(json_object_get(blk, "name"));
    json_t *inner = json_object_get(blk, "content");
    size_t i;
    int rc;

    if (json_is_string(blk))
        return text_join(b, json_string_value(blk));
    if (!json_is_object(blk))
        return 0;
    if (json_is_string(json_object_get(blk, "text")))
        return text_join(b, json_string_value(json_object_get(blk, "text")));
    if (type && strcmp(type, "compaction") == 0)
        return text_join(b, json_string_value(json_object_get(blk, "summary")));
    if (name && type && strstr(type, "tool") && !strstr(type, "result")) {
        char *label = ch_sprintf("[tool: %.64s]", name);

        rc = label ? text_join(b, label) : CH_ENOMEM;
        ch_free(label);
        return rc;
    }
    if (json_is_string(inner))
        return text_join(b, json_string_value(inner));
    if (json_is_array(inner) && depth < 2)
        for (i = 0; i < json_array_size(inner); i++)
            if ((rc = block_text(b, json_array_get(inner, i), depth + 1)))
                return rc;
    return 0;
}

/* Byte length of the first max_chars UTF-8 characters of s (len bytes). */
static size_t utf8_prefix(const char *s, size_t len, size_t max_chars)
{
    size_t i, chars = 0;

    for (i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) { /* a lead byte starts a character */
            if (chars == max_chars)
                return i;
            chars++;
        }
    }
    return len;
}

static int preview_text(const char *content, size_t len, size_t max_chars, char **out)
{
    struct ch_buf b;
    json_t *root;
    size_t i;
    int rc = 0;

    *out = NULL;
    ch_buf_init(&b, CH_STORE_MAX_CONTENT_BYTES);
    root = json_loadb(content, len, JSON_DECODE_ANY, NULL);
    /* The CHECK constraint makes content valid JSON; an unreadable one (a
     * jansson limit such as nesting depth) just previews as empty. */
    if (json_is_array(root)) {
        for (i = 0; i < json_array_size(root) && rc == 0; i++)
            rc = block_text(&b, json_array_get(root, i), 0);
    } else if (root) {
        rc = block_text(&b, root, 0);
    }
    json_decref(root);
    if (rc == 0) {
        *out = ch_strndup(b.data ? b.data : "", utf8_prefix(b.data ? b.data : "", b.len, max_chars));
        rc = *out ? 0 : CH_ENOMEM;
    }
    ch_buf_release(&b);
    return rc;
}

int ch_messages_preview(struct ch_db *db, const char *key, size_t limit, size_t max_chars,
                        struct ch_preview_list *out)
{
    struct ch_preview_list l = { 0 };
    struct ch_preview_item tmp, *it;
    sqlite3_stmt *st = NULL;
    const unsigned char *role;
    size_t cap = 0, i;
    bool found = false;
    int rc, src;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!db || !out || limit == 0 || limit > MAX_PREVIEW_LIMIT || max_chars == 0
        || max_chars > MAX_PREVIEW_CHARS)
        return CH_EINVAL;
    if ((rc = ch_store_check_text(key, CH_STORE_MAX_KEY_BYTES, true, false, "session key", NULL,
                                  NULL)))
        return rc;
    /* One statement, one snapshot: a key without messages still gives one
     * row (NULL role), a missing key none. */
    rc = ch_db_prepare(db, "SELECT m.role, m.content FROM sessions s"
                           " LEFT JOIN messages m ON m.session_id = s.session_id"
                           " WHERE s.key = ?1 ORDER BY m.seq DESC LIMIT ?2",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
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
        rc = sqlite3_column_text(st, 1) ? 0 : CH_ENOMEM; /* NOT NULL column */
        if (rc == 0)
            rc = preview_text((const char *)sqlite3_column_text(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1), max_chars, &it->text);
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
