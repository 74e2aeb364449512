/*
 * internal.h: private to src/ws/.  The I/O-free frame pump (pump.c: wslay
 * over in-memory bytes, used by the connection and by the fuzzer), the
 * handshake checks (handshake.c) and the connection struct (conn.c).
 * See docs/internals/websocket.md.
 */
#ifndef CH_WS_INTERNAL_H
#define CH_WS_INTERNAL_H

#include <wslay/wslay.h>

#include "ws/ws.h"

/* Longest close reason RFC 6455 allows (125-byte control payload - code). */
#define CH_WS_MAX_REASON 123
/* wslay allocates its context with libc malloc, out of ch_alloc's sight:
 * an event context (4 KiB obuf + ~300 B) and a frame context (4 KiB ibuf
 * + ~150 B) plus four queue heads.  Counted as this while a connection
 * holds one (only while frames are in flight or closing, see pump.c). */
#define CH_WS_WSLAY_CTX_BYTES 8800
/* Used when ch_ws_opts leaves a cap at 0 (STYLE.md 8.6 table). */
#define CH_WS_DEFAULT_MAX_MESSAGE_BYTES (1024 * 1024)
#define CH_WS_DEFAULT_MAX_QUEUED_BYTES (1024 * 1024)
/* wslay's max_recv_msg_length: every frame wslay's parser accepts (bit
 * 63 of a length is a protocol error); see ch_ws_pump_set_max. */
#define CH_WS_WSLAY_MAX_FRAME (UINT64_MAX >> 1)
/* The largest frame header a server writes (no mask): 2 + 8 bytes. */
#define CH_WS_MAX_HEADER_BYTES 10

/* ------------------------------------------------------------------ */
/* pump.c: wslay glue with no sockets                                   */
/* ------------------------------------------------------------------ */

struct ch_ws_pump_ops {
    /* Take n output bytes (frames, in order).  0, or a negative CH_E*:
     * the transport is gone and nothing more will be written. */
    int (*write)(void *data, const void *p, size_t n);
    /* One complete, UTF-8-checked text message; p valid during the call
     * (NUL-terminated for convenience).  May call any pump function. */
    void (*on_text)(void *data, const char *p, size_t n);
    void (*on_pong)(void *data); /* may be NULL */
};

/*
 * A pump turns input bytes into messages and queued messages into output
 * bytes.  wslay buffers nothing of ours: data frames arrive as chunks
 * (no_buffering) and are reassembled in `msg`, capped, in ch_alloc
 * memory, freed once delivered; text and pings are framed by the pump
 * and handed to ops->write at once, and what wslay queues itself (pongs,
 * close frames) is flushed at once, so wslay's queue is empty between
 * calls and messages leave in the order they were sent.  wslay's context
 * exists only between the first byte of a frame and the end of the feed
 * that completes it, and from a close on: idle pumps hold none.
 */
struct ch_ws_pump {
    wslay_event_context_ptr ctx;      /* owned (libc malloc inside wslay); NULL while idle */
    const struct ch_ws_pump_ops *ops; /* borrowed: outlives the pump */
    void *data;
    const uint8_t *in; /* borrowed during feed: bytes not yet given to wslay */
    size_t in_len;
    struct ch_buf msg;    /* owned: text message being reassembled; max = the cap */
    bool in_data_frame;   /* the current frame's payload belongs to msg */
    uint8_t frame_opcode; /* of the frame being (or last) received */
    bool in_message;      /* a fragmented data message is under way */
    uint64_t frame_bytes; /* wire size of the frame being received */
    uint64_t rx_given;    /* bytes handed to this wslay context */
    uint64_t rx_framed;   /* of those, bytes of frames wslay finished */
    bool closing;         /* a close frame is queued or sent: no more messages */
    bool failed;          /* ops->write failed: the transport is gone */
    uint16_t close_code;  /* first close sent or received; 0 = none yet */
    char close_reason[CH_WS_MAX_REASON + 1];
    const char *too_big_reason; /* borrowed: a literal (ch_ws_set_too_big_reason) */
    uint64_t messages_in, messages_out;
    uint64_t bytes_out; /* given to ops->write */
};

/* 0 (allocates nothing: wslay's context is made on demand, configured
 * as a server: no masking, no RSV bits, no buffering, max_recv_msg_length
 * set; when that fails the pump fails like a gone transport). */
int ch_ws_pump_init(struct ch_ws_pump *p, size_t max_message_bytes, const struct ch_ws_pump_ops *ops, void *data);
void ch_ws_pump_release(struct ch_ws_pump *p);
/*
 * Give n received bytes to wslay: every complete message is delivered
 * (ops->on_text), pings answered, then all output flushed to ops->write.
 * Bytes after the point where reading stopped (a close, an error) are
 * dropped.  0, or CH_ECLOSED once the transport failed.
 */
int ch_ws_pump_feed(struct ch_ws_pump *p, const void *buf, size_t n);
/* Queue and flush.  CH_ECLOSED once closing or failed, CH_ENOMEM. */
int ch_ws_pump_send_text(struct ch_ws_pump *p, const char *s, size_t n);
int ch_ws_pump_ping(struct ch_ws_pump *p);
/* Queue a close (code 0: an empty one), stop reading, flush.  Records
 * code/reason as the connection's unless one is recorded already.
 * Nothing happens once closing. */
void ch_ws_pump_close(struct ch_ws_pump *p, uint16_t code, const char *reason);
void ch_ws_pump_set_max(struct ch_ws_pump *p, size_t max_bytes);
bool ch_ws_pump_want_read(const struct ch_ws_pump *p);
/* Nothing to read and nothing to write: the transport can be closed. */
bool ch_ws_pump_is_done(const struct ch_ws_pump *p);
size_t ch_ws_pump_queued_bytes(const struct ch_ws_pump *p);
size_t ch_ws_pump_memory_bytes(const struct ch_ws_pump *p);
/* Copy reason, cut to at most max bytes at a UTF-8 boundary. */
void ch_ws_reason_copy(char *out, size_t max, const char *reason);

/* ------------------------------------------------------------------ */
/* handshake.c: RFC 6455 section 4.2 checks, no I/O                     */
/* ------------------------------------------------------------------ */

/* Sec-WebSocket-Accept for a key: base64(SHA1(key + GUID)), 28 chars.
 * CH_EINVAL for a key over 64 bytes, CH_EIO when OpenSSL fails. */
int ch_ws_accept_key(const char *key, size_t keylen, char out[29]);

struct ch_ws_verdict {
    int status;       /* 0 ok, or 400/403/426 (500: SHA-1 failed) */
    const char *code; /* static error code for the JSON shape */
    char msg[128];
    char accept[29]; /* Sec-WebSocket-Accept when status is 0 */
};

/* Check r against RFC 6455 4.2.1 and the Origin policy in o.  Returns 0,
 * CH_EINVAL (400/426/500) or CH_EPERM (403), v filled either way. */
int ch_ws_handshake_check(const struct ch_http_req *r, const struct ch_ws_opts *o, struct ch_ws_verdict *v);

/* ------------------------------------------------------------------ */
/* conn.c                                                               */
/* ------------------------------------------------------------------ */

struct ch_ws_conn {
    struct ch_http_conn *http; /* borrowed: NULL once the transport closed */
    struct ch_ws_pump pump;
    struct ch_ws_handler h; /* copy */
    void *data;
    uv_loop_t *loop;          /* borrowed: outlives the connection */
    uv_timer_t timer;         /* idle timeout, then the deferred on_close */
    uint64_t id;              /* the http connection's id */
    uint64_t idle_timeout_ms; /* 0: none */
    uint64_t last_rx_ms;      /* uv_now of the last bytes received */
    uint64_t last_pong_ms;    /* uv_now of the last pong; 0 = none */
    size_t max_queued_bytes;  /* ws + http output cap: beyond, 1008 */
    size_t mem_counted;       /* this conn's share of the stats' memory_bytes */
    int depth;                /* ws code frames on the stack (redis callHandler) */
    bool transport_closing;   /* ch_http_conn_close was called */
    bool gone;                /* the http side closed: finish at depth 0 */
    bool finished;            /* on_close ran; freed in the timer's close cb */
    bool loopback;
    char remote_addr[48];
};

#endif
