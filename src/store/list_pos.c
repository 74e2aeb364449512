/*
 * store/list_pos.c: a keyset position of the newest-first lists (struct
 * ch_list_pos) as an opaque cursor: its two numbers, 8 bytes big-endian
 * each, in base64url.  Opaque so that clients do not build cursors (the
 * order behind them may change); fixed-length so a cursor is told from
 * the decimal offsets the lists gave before.
 */
#include <string.h>

#include "store/internal.h"

void ch_list_pos_encode(const struct ch_list_pos *p, char out[CH_LIST_CURSOR_LEN + 1])
{
    uint8_t raw[16];

    for (int i = 0; i < 8; i++) {
        raw[i] = (uint8_t)((uint64_t)p->ms >> (56 - 8 * i));
        raw[8 + i] = (uint8_t)((uint64_t)p->rowid >> (56 - 8 * i));
    }
    ch_base64url_encode(raw, sizeof(raw), out);
}

int ch_list_pos_decode(const char *text, struct ch_list_pos *out)
{
    uint8_t raw[16];
    uint64_t ms = 0, rowid = 0;
    size_t n = 0;

    /* Only what encode makes: base64url (no padding) of exactly 16 bytes. */
    if (!text || strlen(text) != CH_LIST_CURSOR_LEN ||
        strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-_") != CH_LIST_CURSOR_LEN)
        return CH_EINVAL;
    if (ch_base64_decode(text, CH_LIST_CURSOR_LEN, raw, sizeof(raw), &n) != 0 || n != sizeof(raw))
        return CH_EINVAL;
    for (int i = 0; i < 8; i++) {
        ms = ms << 8 | raw[i];
        rowid = rowid << 8 | raw[8 + i];
    }
    /* A row's position: a time and a rowid, both positive in SQLite. */
    if (ms > INT64_MAX || rowid > INT64_MAX || rowid == 0)
        return CH_EINVAL;
    out->ms = (int64_t)ms;
    out->rowid = (int64_t)rowid;
    return 0;
}
