/*
 * pump.c: the wslay glue, with no sockets (RFC 6455 sections 5-7).  Bytes
 * given to ch_ws_pump_feed are served to wslay's recv callback from
 * memory; frames wslay produces go to ops->write at once.  wslay parses
 * frames, checks masking, RSV bits, opcodes, fragmentation and UTF-8
 * (1007), answers pings and echoes the peer's close; this file adds the
 * message cap across fragments (1009, with a reason), refuses binary
 * messages (1003), reassembles text in a capped ch_buf and records the
 * close code that ends the connection.  The connection (conn.c) and the
 * fuzzer (tests/fuzz/fuzz_ws.c) drive it the same way.
 *
 * wslay's context (~8.5 KiB: two 4 KiB buffers) exists only while it
 * holds state: it is made when bytes arrive or a close is queued and
 * freed when a feed ends between frames with nothing queued, so an idle
 * connection holds none.  Text and ping frames are framed here (a server
 * frame is a 2-10 byte header and the payload, unmasked) and go straight
 * to ops->write, without wslay's copy of the message.
 */
#include <string.h>

#include "ws/internal.h"

/* A close is under way or the transport is gone: deliver nothing more. */
static bool stopped(const struct ch_ws_pump *p)
{
    return p->closing || p->failed;
}

static void record_close(struct ch_ws_pump *p, uint16_t code, const char *reason, size_t n)
{
    if (p->close_code)
        return; /* the first close (ours or the peer's) is the one that counts */
    p->close_code = code;
    n = CH_MIN(n, (size_t)CH_WS_MAX_REASON);
    if (n)
        memcpy(p->close_reason, reason, n);
    p->close_reason[n] = '\0';
}

void ch_ws_reason_copy(char *out, size_t max, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;

    if (n > max) {
        /* Cut before the character that straddles the limit: a close
         * reason must stay valid UTF-8 or the peer fails us with 1007. */
        n = max;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(out, reason, n);
    out[n] = '\0';
}

/* RFC 6455 7.4: 1005, 1006 and 1015 are reserved for reporting, never sent. */
static bool code_is_sendable(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if (s[i] < 0x80)
            k = 1;
        else if ((k = ch_utf8_len(s + i, n - i)) == 0)
            return false;
        i += k;
    }
    return true;
}

/*
 * Fail the connection past wslay: stop it reading and writing (a close
 * it queued is never sent) and write our own close frame, so the code
 * is the right one.  For wslay's fatal errors and for close frames it
 * should have refused.
 */
static void fail_now(struct ch_ws_pump *p, uint16_t code)
{
    uint8_t frame[4] = {0x88, 2, (uint8_t)(code >> 8), (uint8_t)(code & 0xff)};

    wslay_event_shutdown_read(p->ctx);
    wslay_event_shutdown_write(p->ctx);
    if (stopped(p))
        return;
    p->closing = true;
    record_close(p, code, "", 0);
    if (p->ops->write(p->data, frame, sizeof(frame)) != 0)
        p->failed = true;
    else
        p->bytes_out += sizeof(frame);
}

/* Queue a close and stop reading; the caller flushes.  From inside wslay
 * callbacks too: wslay ends its recv loop once reading is off. */
static void queue_close(struct ch_ws_pump *p, uint16_t code, const char *reason)
{
    char r[CH_WS_MAX_REASON + 1];
    size_t n;

    if (stopped(p))
        return;
    if (code && !code_is_sendable(code))
        code = CH_WS_CLOSE_INTERNAL;
    ch_ws_reason_copy(r, CH_WS_MAX_REASON, code ? reason : NULL);
    n = strlen(r);
    record_close(p, code ? code : 1005, r, n);
    p->closing = true;
    p->in_data_frame = false;
    /* NO_MORE_MSG (wslay already queued one) and NOMEM leave nothing to
     * send; the transport then closes without a close frame. */
    wslay_event_queue_close(p->ctx, code, (const uint8_t *)r, code ? n : 0);
    wslay_event_shutdown_read(p->ctx);
}

static void too_big(struct ch_ws_pump *p)
{
    queue_close(p, CH_WS_CLOSE_TOO_BIG, p->too_big_reason);
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    struct ch_ws_pump *p = ud;
    size_t n;

    if (p->in_len == 0) {
        /* "Would block" is how wslay learns that the input is used up. */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    n = CH_MIN(len, p->in_len);
    memcpy(buf, p->in, n);
    p->in += n;
    p->in_len -= n;
    p->rx_given += n;
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct ch_ws_pump *p = ud;

    /* The write never blocks (the transport queues, capped), so wslay's
     * queue is emptied on every flush. */
    if (p->failed || p->ops->write(p->data, data, len) != 0) {
        /* The transport is gone (a handler's send may have hit the http
         * cap while wslay still iterates over buffered frames): stop the
         * recv loop too. */
        p->failed = true;
        wslay_event_shutdown_read(ctx);
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    p->bytes_out += len;
    return (ssize_t)len;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    /* Only clients mask; wslay never calls this for a server context. */
    return ch_random_bytes(buf, len) == 0 ? 0 : -1;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a, void *ud)
{
    struct ch_ws_pump *p = ud;

    p->in_data_frame = false;
    p->frame_opcode = a->opcode;
    /* wslay refuses non-minimal lengths and unmasked client frames, so
     * the frame's size on the wire follows from its payload length. */
    p->frame_bytes = 2 + 4 + a->payload_length + (a->payload_length < 126 ? 0 : a->payload_length < 65536 ? 2 : 8);
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME || a->opcode == WSLAY_CONTINUATION_FRAME)
        p->in_message = !a->fin;
    if (stopped(p))
        return;
    switch (a->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_CONTINUATION_FRAME:
        if (a->opcode == WSLAY_TEXT_FRAME)
            ch_buf_reset(&p->msg); /* wslay refuses a text frame inside a message */
        /* The cap covers the whole message and is checked against the
         * announced length, before a payload byte is stored. */
        if ((uint64_t)p->msg.len + a->payload_length > p->msg.max) {
            too_big(p);
            return;
        }
        p->in_data_frame = true;
        return;
    case WSLAY_BINARY_FRAME: queue_close(p, CH_WS_CLOSE_UNSUPPORTED, "binary messages are not supported"); return;
    default: return; /* control frames: wslay buffers (<= 125 bytes) and answers */
    }
}

static void on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a, void *ud)
{
    struct ch_ws_pump *p = ud;
    int rc;

    if (!p->in_data_frame || stopped(p))
        return;
    rc = ch_buf_append(&p->msg, a->data, a->data_length);
    if (rc == CH_E_TOO_LARGE)
        too_big(p); /* the cap was lowered mid-message */
    else if (rc)
        queue_close(p, CH_WS_CLOSE_INTERNAL, "out of memory");
}

static void on_frame_end(wslay_event_context_ptr ctx, void *ud)
{
    struct ch_ws_pump *p = ud;

    p->rx_framed += p->frame_bytes;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *ud)
{
    struct ch_ws_pump *p = ud;

    switch (a->opcode) {
    case WSLAY_TEXT_FRAME:
        p->in_data_frame = false;
        if (stopped(p))
            return; /* nothing is delivered once a close is under way */
        p->messages_in++;
        p->ops->on_text(p->data, p->msg.data ? p->msg.data : "", p->msg.len);
        /* Freed, not kept: most connections sit idle between messages. */
        ch_buf_release(&p->msg);
        return;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay has queued the echo (same code and reason) and stopped
         * reading.  msg holds the code in its first two bytes.  wslay
         * 1.1.1 checks the reason's UTF-8 per received chunk, skipping the
         * first two bytes of each, so a close frame split across reads
         * can carry invalid UTF-8 past it: check the whole reason here,
         * where wslay hands it over in one piece, rather than echo it. */
        if (a->msg_length > 2 && !utf8_valid(a->msg + 2, a->msg_length - 2)) {
            fail_now(p, CH_WS_CLOSE_INVALID_DATA);
            return;
        }
        record_close(p, a->status_code ? a->status_code : 1005, a->msg_length > 2 ? (const char *)a->msg + 2 : "",
                     a->msg_length > 2 ? a->msg_length - 2 : 0);
        p->closing = true;
        return;
    case WSLAY_PONG:
        if (p->ops->on_pong)
            p->ops->on_pong(p->data);
        return;
    default: return;
    }
}

/* Everything wslay has queued goes to ops->write now. */
static void flush(struct ch_ws_pump *p)
{
    if (!p->ctx)
        return;
    if (!p->failed && wslay_event_want_write(p->ctx) && wslay_event_send(p->ctx) != 0) {
        p->failed = true; /* our write failed, or wslay ran out of memory */
        wslay_event_shutdown_read(p->ctx);
    }
    if (wslay_event_get_close_sent(p->ctx)) {
        /* A close wslay queued by itself (1002 or 1007) or the echo of
         * the peer's; recorded here unless one is already. */
        p->closing = true;
        record_close(p, wslay_event_get_status_code_sent(p->ctx), "", 0);
    }
}

/*
 * wslay_event_recv failed: a frame-level protocol error (a control frame
 * over 125 bytes or fragmented, a non-minimal length) or no memory.
 * wslay queued a close frame without a code; send 1002 (or 1011) instead,
 * so the peer learns why.
 */
static void recv_failed(struct ch_ws_pump *p, int wrc)
{
    fail_now(p, wrc == WSLAY_ERR_NOMEM ? CH_WS_CLOSE_INTERNAL : CH_WS_CLOSE_PROTOCOL);
}

static void close_without_ctx(struct ch_ws_pump *p, uint16_t code, const char *reason);

/* wslay's context, made on demand: 0 or CH_ENOMEM. */
static int ensure_ctx(struct ch_ws_pump *p)
{
    static const struct wslay_event_callbacks cbs = {
        on_recv, on_send, on_genmask, on_frame_start, on_frame_chunk, on_frame_end, on_msg,
    };

    if (p->ctx)
        return 0;
    if (wslay_event_context_server_init(&p->ctx, &cbs, p) != 0) {
        p->ctx = NULL;
        return CH_ENOMEM;
    }
    /* Data frames come to us as chunks, so a message costs what has
     * arrived (not what its header claims) and sits in counted memory. */
    wslay_event_config_set_no_buffering(p->ctx, 1);
    /* No extension is negotiated, so every RSV bit is a protocol error. */
    wslay_event_config_set_allowed_rsv_bits(p->ctx, WSLAY_RSV_NONE);
    /*
     * Set explicitly, never wslay's 2 GiB default (STYLE.md 8.10 item 7),
     * but to "any frame": in no-buffering mode wslay checks it per frame,
     * allocates nothing for a data frame whatever its length, and runs the
     * check before our frame callback, closing 1009 without a reason.  So
     * the cap is on_frame_start's, over the whole message and with the
     * configured reason ("preauth payload too large"); control frames are
     * held to 125 bytes by wslay's frame parser.
     */
    wslay_event_config_set_max_recv_msg_length(p->ctx, CH_WS_WSLAY_MAX_FRAME);
    p->rx_given = p->rx_framed = 0;
    return 0;
}

/*
 * Free wslay's context when a fresh one would behave the same: open,
 * between frames (every byte wslay took belongs to a finished frame, so
 * its buffer holds no partial header) and between messages, nothing
 * queued.  Once closing it stays: it knows what was sent and received.
 */
static void maybe_drop_ctx(struct ch_ws_pump *p)
{
    if (!p->ctx || stopped(p) || p->rx_given != p->rx_framed || p->in_message || !wslay_event_want_read(p->ctx) ||
        wslay_event_want_write(p->ctx) || wslay_event_get_queued_msg_count(p->ctx) != 0)
        return;
    wslay_event_context_free(p->ctx);
    p->ctx = NULL;
}

int ch_ws_pump_feed(struct ch_ws_pump *p, const void *buf, size_t n)
{
    size_t in_before;
    uint64_t out_before;
    int rounds, wrc;

    if (p->failed)
        return CH_ECLOSED;
    if (n == 0 || stopped(p))
        return 0; /* reading stopped: a closing pump drops what comes */
    if (ensure_ctx(p) != 0) {
        close_without_ctx(p, CH_WS_CLOSE_INTERNAL, "out of memory");
        return p->failed ? CH_ECLOSED : 0;
    }
    p->in = buf;
    p->in_len = n;
    /*
     * Pump until nothing changes (h2o lib/websocket.c): recv delivers
     * messages whose handlers queue output, send hands it over.  recv
     * drains its input and our send never blocks, so this settles in one
     * round; the bound only guards against a wslay surprise.
     */
    for (rounds = 0; rounds < 4; rounds++) {
        in_before = p->in_len;
        out_before = p->bytes_out;
        if (p->in_len && wslay_event_want_read(p->ctx) && (wrc = wslay_event_recv(p->ctx)) != 0)
            recv_failed(p, wrc);
        flush(p);
        if (p->in_len == in_before && p->bytes_out == out_before)
            break;
        if (!wslay_event_want_read(p->ctx))
            p->in_len = 0; /* reading stopped (a close): the rest is dropped */
    }
    p->in = NULL;
    p->in_len = 0;
    maybe_drop_ctx(p);
    return p->failed ? CH_ECLOSED : 0;
}

/* One unmasked frame (RFC 6455 5.2), header and payload, to ops->write. */
static int write_frame(struct ch_ws_pump *p, uint8_t opcode, const void *s, size_t n)
{
    uint8_t h[CH_WS_MAX_HEADER_BYTES];
    size_t hl = 2;

    /* Whatever wslay still holds (a pong) goes first. */
    flush(p);
    if (p->failed)
        return CH_ECLOSED;
    h[0] = (uint8_t)(0x80 | opcode); /* FIN: messages are never fragmented */
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (p->ops->write(p->data, h, hl) != 0 || (n && p->ops->write(p->data, s, n) != 0)) {
        p->failed = true;
        if (p->ctx)
            wslay_event_shutdown_read(p->ctx);
        return CH_ECLOSED;
    }
    p->bytes_out += hl + n;
    return 0;
}

/*
 * No memory for wslay's context: write the close frame ourselves and
 * stop.  Nothing is read after it, so the peer's answer is not awaited;
 * the transport closes once it is written (ch_ws_pump_is_done).
 */
static void close_without_ctx(struct ch_ws_pump *p, uint16_t code, const char *reason)
{
    char r[2 + CH_WS_MAX_REASON + 1];
    size_t n = 0;

    if (stopped(p))
        return;
    if (code && !code_is_sendable(code))
        code = CH_WS_CLOSE_INTERNAL;
    if (code) {
        r[0] = (char)(code >> 8);
        r[1] = (char)(code & 0xff);
        ch_ws_reason_copy(r + 2, CH_WS_MAX_REASON, reason);
        n = 2 + strlen(r + 2);
    }
    record_close(p, code ? code : 1005, r + 2, code ? n - 2 : 0);
    write_frame(p, WSLAY_CONNECTION_CLOSE, r, n);
    p->closing = true;
}

int ch_ws_pump_send_text(struct ch_ws_pump *p, const char *s, size_t n)
{
    int rc;

    if (stopped(p))
        return CH_ECLOSED;
    rc = write_frame(p, WSLAY_TEXT_FRAME, s, n);
    if (rc == 0)
        p->messages_out++;
    return rc;
}

int ch_ws_pump_ping(struct ch_ws_pump *p)
{
    if (stopped(p))
        return CH_ECLOSED;
    return write_frame(p, WSLAY_PING, NULL, 0);
}

void ch_ws_pump_close(struct ch_ws_pump *p, uint16_t code, const char *reason)
{
    if (stopped(p))
        return;
    if (ensure_ctx(p) != 0) {
        close_without_ctx(p, code, reason);
        return;
    }
    queue_close(p, code, reason);
    flush(p);
}

void ch_ws_pump_set_max(struct ch_ws_pump *p, size_t max_bytes)
{
    /* wslay's own limit is "any frame" (ensure_ctx); this is the cap. */
    p->msg.max = max_bytes;
}

bool ch_ws_pump_want_read(const struct ch_ws_pump *p)
{
    if (p->failed)
        return false;
    return p->ctx ? wslay_event_want_read(p->ctx) : !p->closing;
}

bool ch_ws_pump_is_done(const struct ch_ws_pump *p)
{
    if (p->failed)
        return true;
    if (!p->ctx)
        return p->closing; /* no context: idle, or closed by close_without_ctx */
    return !wslay_event_want_read(p->ctx) && !wslay_event_want_write(p->ctx);
}

size_t ch_ws_pump_queued_bytes(const struct ch_ws_pump *p)
{
    return p->ctx ? wslay_event_get_queued_msg_length(p->ctx) : 0;
}

size_t ch_ws_pump_memory_bytes(const struct ch_ws_pump *p)
{
    return (p->ctx ? CH_WS_WSLAY_CTX_BYTES : 0) + p->msg.cap + ch_ws_pump_queued_bytes(p);
}

int ch_ws_pump_init(struct ch_ws_pump *p, size_t max_message_bytes, const struct ch_ws_pump_ops *ops, void *data)
{
    memset(p, 0, sizeof(*p));
    p->ops = ops;
    p->data = data;
    ch_buf_init(&p->msg, max_message_bytes);
    p->too_big_reason = "message too large";
    return 0;
}

void ch_ws_pump_release(struct ch_ws_pump *p)
{
    wslay_event_context_free(p->ctx); /* NULL-safe */
    p->ctx = NULL;
    ch_buf_release(&p->msg);
}
