/*
 * fuzz_ws.c: libFuzzer driver for the wslay glue (src/ws/pump.c), with no
 * sockets: arbitrary bytes as if a client sent them after a valid
 * handshake.  Byte 0 picks the message cap (16-byte units, 0: 1 MiB),
 * byte 1 a piece size (0: all at once); the rest is fed whole to one
 * pump and in pieces to another, as reads would deliver it.  The handler
 * echoes every message.  Besides "no crash, no leak", it aborts when an
 * invariant breaks:
 *   - every frame written is a well-formed server frame: unmasked, no RSV
 *     bit, a known opcode, control frames final and <= 125 bytes, a
 *     close carries no code or a sendable one, nothing follows a close;
 *   - a delivered message is valid UTF-8, within the cap, and none comes
 *     after the close; a finished pump has a close code;
 *   - both feedings deliver the same messages and end the same way, but
 *     for one known wslay 1.1.1 flaw: it checks a close frame's reason
 *     per received chunk, so its verdict on the peer's close frame (echo,
 *     1002 or 1007) can depend on how the frame was split.  The codes
 *     may then differ, only when both runs ended on a close frame.
 * Build: scripts/run-fuzz.  Seeds: tests/fuzz/corpus/ws/ (written by
 * `build/debug/unit/ws/test_pump --corpus tests/fuzz/corpus/ws`).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/internal.h"

struct side {
    struct ch_ws_pump p;
    struct ch_buf out;
    uint64_t hash;
    size_t messages;
    size_t cap;
    bool closed_seen; /* a close was recorded when a message came */
};

static void mix(uint64_t *h, const void *p, size_t n)
{
    *h ^= ch_hash_bytes(p, n) + 0x9e3779b97f4a7c15ULL + (*h << 6) + (*h >> 2);
}

/* An independent strict UTF-8 check (not the pump's). */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k;

        if (s[i] < 0x80) {
            i++;
            continue;
        }
        k = (s[i] & 0xe0) == 0xc0 ? 1 : (s[i] & 0xf0) == 0xe0 ? 2 : (s[i] & 0xf8) == 0xf0 ? 3 : 0;
        if (k == 0 || n - i < k + 1)
            return false;
        cp = s[i] & (0x7f >> (k + 1));
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int side_write(void *data, const void *p, size_t n)
{
    struct side *s = data;
    return ch_buf_append(&s->out, p, n);
}

static void side_text(void *data, const char *p, size_t n)
{
    struct side *s = data;

    if (n > s->cap || !utf8_ok((const uint8_t *)p, n) || s->p.closing || s->p.close_code)
        abort();
    s->messages++;
    mix(&s->hash, p, n);
    ch_ws_pump_send_text(&s->p, p, n);
}

static const struct ch_ws_pump_ops ops = {side_write, side_text, NULL};

static bool code_sendable(unsigned code)
{
    return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

static void check_output(const struct side *s)
{
    const uint8_t *b = (const uint8_t *)s->out.data;
    size_t off = 0, n = s->out.len;
    bool closed = false;

    while (off < n) {
        uint64_t len;
        size_t hl = 2;
        unsigned op;

        if (closed || n - off < 2 || (b[off] & 0x70) || (b[off + 1] & 0x80))
            abort();
        op = b[off] & 0x0f;
        len = b[off + 1] & 0x7f;
        if (len >= 126) {
            hl = len == 126 ? 4 : 10;
            if (n - off < hl)
                abort();
            len = 0;
            for (size_t i = 2; i < hl; i++)
                len = len << 8 | b[off + i];
        }
        if (n - off - hl < len)
            abort();
        if (op != 1 && op != 8 && op != 9 && op != 10)
            abort();
        if (op >= 8 && (len > 125 || !(b[off] & 0x80)))
            abort();
        if (op == 8) {
            if (len == 1 || (len >= 2 && !code_sendable((unsigned)b[off + hl] << 8 | b[off + hl + 1])))
                abort();
            closed = true;
        }
        off += hl + (size_t)len;
    }
    if (ch_ws_pump_is_done(&s->p) && !s->p.close_code && !s->p.failed)
        abort();
}

static void side_run(struct side *s, const uint8_t *data, size_t size, size_t cap, size_t piece)
{
    memset(s, 0, sizeof(*s));
    s->cap = cap;
    ch_buf_init(&s->out, 64u << 20);
    if (ch_ws_pump_init(&s->p, cap, &ops, s) != 0)
        abort();
    if (piece == 0) {
        ch_ws_pump_feed(&s->p, data, size);
    } else {
        for (size_t off = 0; off < size; off += piece)
            ch_ws_pump_feed(&s->p, data + off, CH_MIN(piece, size - off));
    }
    /* The owner's calls after whatever state the input left. */
    if (ch_ws_pump_send_text(&s->p, "{}", 2) == 0 && s->p.closing)
        abort();
    ch_ws_pump_ping(&s->p);
    ch_ws_pump_close(&s->p, 1000, "fuzz done");
    if (!ch_ws_pump_is_done(&s->p) || ch_ws_pump_send_text(&s->p, "x", 1) != CH_ECLOSED)
        abort();
    check_output(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    struct side *a, *b;
    size_t cap, piece;

    if (!init) {
        ch_alloc_install();
        init = true;
    }
    if (size < 2)
        return 0;
    cap = data[0] ? (size_t)data[0] * 16 : (1u << 20);
    piece = data[1];
    a = ch_calloc(1, sizeof(*a));
    b = ch_calloc(1, sizeof(*b));
    if (!a || !b)
        abort();
    side_run(a, data + 2, size - 2, cap, 0);
    side_run(b, data + 2, size - 2, cap, piece ? piece : 1);
    if (a->messages != b->messages || a->hash != b->hash)
        abort();
    if (a->p.close_code != b->p.close_code &&
        !(a->p.frame_opcode == WSLAY_CONNECTION_CLOSE && b->p.frame_opcode == WSLAY_CONNECTION_CLOSE))
        abort();
    ch_ws_pump_release(&a->p);
    ch_ws_pump_release(&b->p);
    ch_buf_release(&a->out);
    ch_buf_release(&b->out);
    ch_free(a);
    ch_free(b);
    return 0;
}
