/*
 * ws.h: WebSocket (RFC 6455) connections on the gateway port, with wslay
 * doing the framing.  An HTTP request that asks for an upgrade is handed
 * to ch_ws_accept(), which validates the handshake (GET, HTTP/1.1,
 * Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13, a
 * 16-byte base64 Sec-WebSocket-Key), answers 101 through the http layer's
 * upgrade seam and from then on pumps frames through wslay (h2o's
 * lib/websocket.c pattern: pump until nothing changes, read only while
 * wslay wants to).
 *
 * Only text messages are delivered (one complete message per callback);
 * a binary message closes the connection with 1003.  Pings are answered
 * by wslay; the server may send its own pings (ch_ws_ping).  Every
 * message has a size cap (set per connection, lowered before the
 * protocol's own handshake), and the send queue is bounded: past
 * max_queued_bytes the connection is closed with 1008 "slow consumer"
 * and further sends fail with CH_E_TOO_LARGE.  Memory for frames is
 * accounted per connection.
 *
 * Threading: loop thread only.  Layer: core <- net <- http <- ws.
 */
#ifndef CH_WS_H
#define CH_WS_H

#include <stdint.h>

#include "core/core.h"
#include "http/http.h"

struct ch_ws_conn;

/* Close codes used by the gateway (RFC 6455 section 7.4.1). */
enum {
    CH_WS_CLOSE_NORMAL = 1000,
    CH_WS_CLOSE_GOING_AWAY = 1001,
    CH_WS_CLOSE_PROTOCOL = 1002,
    CH_WS_CLOSE_UNSUPPORTED = 1003,
    CH_WS_CLOSE_INVALID_DATA = 1007,
    CH_WS_CLOSE_POLICY = 1008,
    CH_WS_CLOSE_TOO_BIG = 1009,
    CH_WS_CLOSE_INTERNAL = 1011,
    CH_WS_CLOSE_RESTART = 1012,
};

struct ch_ws_handler {
    /* The handshake is done; the connection can send.  Optional. */
    void (*on_open)(struct ch_ws_conn *c, void *data);
    /* One complete text message (valid UTF-8 is checked: invalid text
     * closes with 1007 before this is called).  p is valid during the call. */
    void (*on_text)(struct ch_ws_conn *c, const char *p, size_t n, void *data);
    /* Called exactly once, last: code/reason of the close frame received
     * or sent (1006 when the TCP connection just went away).  The
     * connection is freed after it returns.  May be NULL. */
    void (*on_close)(struct ch_ws_conn *c, uint16_t code, const char *reason, void *data);
};

struct ch_ws_opts {
    size_t max_message_bytes; /* initial cap per message (e.g. 64 KiB before connect); 0: 1 MiB */
    /* Send queue cap: beyond it, close 1008 "slow consumer"; 0: 1 MiB.
     * It counts ws and http output; keep it under the http limits
     * writeQueueHardBytes (http drops the socket, no close frame) and
     * writeQueueSoftBytes if a burst may stay queued writeQueueSoftMs. */
    size_t max_queued_bytes;
    uint64_t idle_timeout_ms;           /* 0: none; no frame received for this long: close 1001 */
    const char *const *allowed_origins; /* NULL-terminated; NULL: no Origin check */
    bool require_origin_match;          /* an Origin header not in the list is refused (403) */
    /* Added by ws/: required.  The loop the http server runs on; it owns
     * the connection's one timer (idle timeout, deferred on_close).  The
     * public request does not expose its loop, hence this field. */
    uv_loop_t *loop;
};

/*
 * Take over r (a request for which ch_http_req_wants_upgrade() is true):
 * check the handshake and the Origin, answer 101 and start the
 * connection.  On a bad handshake answers 400 (or 403 for a refused
 * Origin, 426 for a wrong version) itself and returns CH_EINVAL/CH_EPERM;
 * no callback fires.  data is passed to every callback.
 *
 * Also: CH_EINVAL with a 500 when o->loop or h->on_text is missing;
 * CH_ENOMEM with a 503.  An absent Origin always passes (non-browser
 * clients send none).  No subprotocol and no extension is negotiated.
 * On success *out is set and on_open has run (from inside this call);
 * on_close never runs inside this call or any other ch_ws_* call: a
 * close decided there is reported later, from the loop.  o and h are
 * copied; the allowed_origins strings are only read during this call.
 */
int ch_ws_accept(struct ch_http_req *r, const struct ch_ws_opts *o, const struct ch_ws_handler *h, void *data,
                 struct ch_ws_conn **out);

/* Queue one text message (p must be UTF-8; it is copied, not checked).
 * 0, CH_ECLOSED (closing), CH_E_TOO_LARGE (the queue cap was passed: the
 * connection is now closing with 1008), CH_ENOMEM (closing with 1011). */
int ch_ws_send_text(struct ch_ws_conn *c, const char *p, size_t n);
/* Send a ping (keepalive); the pong is consumed by the library (see
 * ch_ws_last_pong_ms).  0, CH_ECLOSED, CH_E_TOO_LARGE as for a message. */
int ch_ws_ping(struct ch_ws_conn *c);
/* Start the closing handshake with code and reason (<= 123 bytes, cut
 * at a UTF-8 boundary; NULL for none); on_close follows once it
 * completes or the peer vanishes.  Messages sent before it leave before
 * the close frame; no message is delivered after it.  A code that must
 * not be sent (1005, 1006, 1015, outside 1000-4999) becomes 1011.  Once
 * closing, a second call does nothing. */
void ch_ws_close(struct ch_ws_conn *c, uint16_t code, const char *reason);
/* Change the message cap (after the protocol handshake).  It applies to
 * the next frame; a message in progress is checked against it too. */
void ch_ws_set_max_message(struct ch_ws_conn *c, size_t max_bytes);
/* Reason sent with 1009 when a message passes the cap (cut at 123 bytes
 * when sent), e.g. "preauth payload too large"; default "message too
 * large".  Not copied: pass a string that outlives c (a literal). */
void ch_ws_set_too_big_reason(struct ch_ws_conn *c, const char *reason);
size_t ch_ws_queued_bytes(const struct ch_ws_conn *c);
bool ch_ws_is_closing(const struct ch_ws_conn *c);
/* Peer address ("127.0.0.1") and whether it is loopback. */
const char *ch_ws_remote_addr(const struct ch_ws_conn *c);
bool ch_ws_is_loopback(const struct ch_ws_conn *c);
/* The http connection's id, so ws and access-log lines correlate. */
uint64_t ch_ws_id(const struct ch_ws_conn *c);
/* uv_now() of the last pong received, 0 before the first (for a
 * keepalive that closes peers that stop answering pings). */
uint64_t ch_ws_last_pong_ms(const struct ch_ws_conn *c);
/* Memory this connection holds now: its struct, the message being
 * received, what is queued for sending (ws and http) and an estimate of
 * wslay's context (libc malloc, ~8.5 KiB) while it has one: only in the
 * middle of a frame or a fragmented message and once closing, so an idle
 * connection holds none. */
size_t ch_ws_memory_bytes(const struct ch_ws_conn *c);

/* Per process, loop thread.  open/memory_bytes are current values, the
 * rest count since start.  refused: handshakes answered 400/403/426. */
struct ch_ws_stats {
    uint64_t open, total, messages_in, messages_out, closed_slow, closed_too_big;
    uint64_t refused, memory_bytes;
};
void ch_ws_stats_get(struct ch_ws_stats *out);

#endif
