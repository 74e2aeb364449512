/*
 * http.h: the HTTP/1.1 server (libuv + http-parser), responses, and the
 * route table.  No thread per connection; one loop.
 *
 * A connection reads a request head, asks the owner whether the body may
 * be read (limits, 413 before reading), reads it, stops parsing, and hands
 * a `struct ch_http_req` to the owner's `on_request`.  The owner answers,
 * now or later, with exactly one ch_http_respond*() or a stream
 * (begin/write/end).  Pipelined requests are parsed ahead but dispatched
 * one at a time, so responses leave in order.  Output is queued and
 * written before the loop sleeps.  Everything here runs on the loop
 * thread.  See docs/internals/http-connection.md for the state machine
 * (STYLE.md 8.5), the limits and the statuses they produce.
 *
 * Layer: core <- net <- http.
 */
#ifndef CH_HTTP_H
#define CH_HTTP_H

#include <jansson.h>
#include <netinet/in.h>
#include <uv.h>

#include "core/core.h"
#include "net/net.h"

#define CH_HTTP_MAX_PARAMS 4

/* Method bits for routes and the Allow header. */
enum {
    CH_M_GET = 1 << 0,
    CH_M_HEAD = 1 << 1,
    CH_M_POST = 1 << 2,
    CH_M_PUT = 1 << 3,
    CH_M_DELETE = 1 << 4,
    CH_M_PATCH = 1 << 5,
    CH_M_OPTIONS = 1 << 6,
    CH_M_OTHER = 1 << 7,
};

struct ch_http_header {
    struct ch_str name;  /* borrowed from the request's head buffer */
    struct ch_str value; /* trimmed */
};

struct ch_http_conn;
struct ch_http_server;

/*
 * One request.  Everything borrowed here stays valid until the response
 * is complete (respond or stream_end); copy out what must live longer.
 */
struct ch_http_req {
    struct ch_http_conn *conn; /* borrowed */
    uint64_t conn_id;
    unsigned method;                /* CH_M_* bit */
    const char *method_name;        /* "GET" ... static */
    struct ch_str target;           /* the request-target as sent */
    struct ch_str path;             /* target up to '?', not decoded */
    struct ch_str query;            /* after '?', may be empty */
    struct ch_http_header *headers; /* borrowed array */
    size_t header_count;
    struct ch_buf body; /* owned by the request; capped */
    int http_major, http_minor;
    bool keep_alive;      /* client wants keep-alive */
    char remote_addr[48]; /* textual peer address, no port */
    struct sockaddr_storage peer;
    char request_id[65]; /* X-Request-Id echoed (1-64 of [A-Za-z0-9._:-]) or generated */
    uint64_t start_ns;   /* ch_mono_ns() when the head completed */
    /* Route match results, filled by ch_router_match. */
    struct ch_str params[CH_HTTP_MAX_PARAMS];
    size_t param_count;
    const struct ch_route *route; /* borrowed: the matched route or NULL */
    /* Free for the owner (api layer): auth result etc. */
    void *owner_data;
    const char *token_name;  /* borrowed; for the access log; NULL = anonymous */
    const char *route_label; /* borrowed; metrics label, e.g. "/api/v1/conversations/:id" */
    int status;              /* set when the response starts */
    uint64_t bytes_out;      /* body bytes written */
};

/* Case-insensitive header lookup; NULL when absent. */
const struct ch_str *ch_http_req_header(const struct ch_http_req *r, const char *name);
/* Decoded query parameter into out; CH_ENOTFOUND if absent. */
int ch_http_req_query(const struct ch_http_req *r, const char *name, char *out, size_t outcap);
/* Path parameter by index (as declared in the route pattern). */
struct ch_str ch_http_req_param(const struct ch_http_req *r, size_t i);

/* ------------------------------------------------------------------ */
/* Responses (http/respond.c)                                           */
/* ------------------------------------------------------------------ */

/*
 * Add a response header before responding (also from on_head for the
 * response on_request sends later).  name/value are copied.  Date,
 * Content-Length, Transfer-Encoding, Connection and X-Request-Id belong
 * to the server: CH_EINVAL for those, for a name that is not a token and
 * for CR/LF in the value.  CH_ESTATE once the response has started;
 * CH_E_TOO_LARGE past 16 KiB of added headers.
 */
int ch_http_add_header(struct ch_http_req *r, const char *name, const char *value);

/*
 * Complete response; body copied into the connection's queue.  HEAD
 * requests get headers only (with the GET Content-Length); 1xx/204/304
 * get no body and no Content-Length.  Returns 0, CH_ECLOSED (the client
 * is gone), CH_ESTATE (no request, or already answered), CH_E_TOO_LARGE
 * (over limits.writeQueueHardBytes: the connection is closed) or
 * CH_ENOMEM (closed too).  The request is complete on return: on_done
 * has run and r must not be used again except to unref.
 */
int ch_http_respond(struct ch_http_req *r, int status, const char *content_type, const void *body, size_t len);
/* JSON response; steals `body` (even on failure). */
int ch_http_respond_json(struct ch_http_req *r, int status, json_t *body);
/*
 * Append v (an object or array) to b as json_dumps(v, JSON_COMPACT)
 * would, byte for byte, at a fraction of the cost (json.c).  CH_AGAIN for
 * what it leaves to jansson (a scalar, invalid UTF-8, nesting past 512),
 * CH_E_TOO_LARGE past b's cap, CH_ENOMEM; b is unchanged on failure.
 */
int ch_http_json_dump(const json_t *v, struct ch_buf *b);
/* The same for any value, a scalar included (JSON_ENCODE_ANY). */
int ch_http_json_put(const json_t *v, struct ch_buf *b);
/* One string (n bytes, NULs allowed) or integer as jansson writes it;
 * a string that is not UTF-8 is CH_AGAIN.  b is unchanged on failure. */
int ch_http_json_str(struct ch_buf *b, const char *s, size_t n);
int ch_http_json_int(struct ch_buf *b, json_int_t v);
/* A real as jansson's json_dumps writes it; CH_AGAIN for NaN/infinity. */
int ch_http_json_real(struct ch_buf *b, double v);
/*
 * The common error shape {"error":"<code>","message":"<msg>"}; the
 * message (printf-formatted, cut at 511 bytes) must not contain secrets.
 * Returns as ch_http_respond.
 */
int ch_http_respond_error(struct ch_http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Streaming (SSE, chunked): begin (from on_request on; CH_ESTATE before)
 * sends the head with Transfer-Encoding: chunked (HTTP/1.1) or
 * Connection: close (HTTP/1.0); each write is flushed before the loop
 * sleeps (no buffering across iterations).  write returns CH_E_TOO_LARGE
 * when the connection's write queue is over its hard cap (the client is
 * too slow; the conn closes), CH_ECLOSED when the client went away; a
 * zero-length write is a no-op.  A connection over
 * limits.writeQueueSoftBytes for writeQueueSoftMs is closed too.
 * on_close, when set, fires once if the connection closes before the
 * response is complete (the client left, a cap, shutdown), for streams
 * and for async handlers alike, so the producer can abort; it runs before
 * on_done, which then sees status 499 if nothing was sent.
 */
int ch_http_stream_begin(struct ch_http_req *r, int status, const char *content_type);
int ch_http_stream_write(struct ch_http_req *r, const void *p, size_t n);
int ch_http_stream_end(struct ch_http_req *r);
void ch_http_req_on_close(struct ch_http_req *r, void (*cb)(struct ch_http_req *r, void *data), void *data);
/* Set from on_head: cb answers (it must respond) when the body outgrows
 * the max_body on_head gave while it is read (a chunked body; a declared
 * Content-Length over it is on_head's to refuse), so a route keeps its own
 * 413 shape.  The connection closes after the answer.  Without it, or if
 * cb does not respond, the generic 413 goes out. */
void ch_http_req_on_too_large(struct ch_http_req *r, void (*cb)(struct ch_http_req *r, void *data), void *data);
/* Output queued on the request's connection and not yet taken by the
 * kernel: a producer can pause above limits.writeQueueSoftBytes. */
size_t ch_http_req_queued_bytes(const struct ch_http_req *r);

/*
 * Async handlers keep the request alive across callbacks by holding a
 * reference on its connection.  After unref, `r` may be gone.  A handler
 * that will answer later must check ch_http_req_is_closed() first.
 */
void ch_http_req_ref(struct ch_http_req *r);
void ch_http_req_unref(struct ch_http_req *r);
bool ch_http_req_is_closed(const struct ch_http_req *r);

const char *ch_http_status_text(int status);

/* ------------------------------------------------------------------ */
/* Upgrade: the seam ws/ plugs into (http/stream.c)                   */
/* ------------------------------------------------------------------ */

/*
 * After ch_http_upgrade the connection is UPGRADED: HTTP parsing stops
 * and its bytes go to these callbacks, on the loop thread.  The
 * connection keeps its socket, its write queue (flushed before the loop
 * sleeps, same hard cap) and its place in graceful shutdown.
 */
struct ch_http_upgrade_ops {
    /* Bytes of the new protocol; bytes the client sent right after the
     * request head come first.  May call ch_http_conn_write/_close. */
    void (*on_read)(struct ch_http_conn *c, const char *p, size_t n, void *data);
    /* The connection is closing, whoever asked; called once and last.
     * c is freed after it returns unless a reference is held
     * (ch_http_req_ref on the upgraded request). */
    void (*on_close)(struct ch_http_conn *c, void *data);
};

/* The request carries Upgrade and Connection: upgrade (or is CONNECT). */
bool ch_http_req_wants_upgrade(const struct ch_http_req *r);
/*
 * Answer r with "101 Switching Protocols" (Upgrade: <protocol>,
 * Connection: Upgrade, plus headers added with ch_http_add_header) and
 * hand the connection to ops.  Only from on_request, before any other
 * response, for a request that wants an upgrade: else CH_ESTATE.  The
 * request is complete afterwards (on_done runs); r->conn stays valid.
 * An upgrade request answered any other way closes the connection.
 */
int ch_http_upgrade(struct ch_http_req *r, const char *protocol, const struct ch_http_upgrade_ops *ops, void *data);
/* Queue bytes on an upgraded connection.  CH_ECLOSED once closing;
 * CH_E_TOO_LARGE over limits.writeQueueHardBytes (the connection closes). */
int ch_http_conn_write(struct ch_http_conn *c, const void *p, size_t n);
/* Start or stop delivering bytes (backpressure towards the client). */
void ch_http_conn_read(struct ch_http_conn *c, bool on);
/* Close after flushing what is queued; on_close follows. */
void ch_http_conn_close(struct ch_http_conn *c);
size_t ch_http_conn_queued_bytes(const struct ch_http_conn *c);

/* ------------------------------------------------------------------ */
/* Server (http/server.c, http/conn.c, http/parse.c)                    */
/* ------------------------------------------------------------------ */

typedef void (*ch_http_request_cb)(struct ch_http_req *r, void *data);
/*
 * Called once the head is parsed, before any body byte is read.  Return 0
 * to continue with max body `*max_body` (pre-set to limits.maxBodyBytes),
 * or answer the request yourself (e.g. 401, 404 for a route that takes no
 * body) and return CH_ECANCELED: the body is then discarded and the
 * connection closed if a body was announced.  Any other error, or
 * CH_ECANCELED without an answer, gets a 500.
 */
typedef int (*ch_http_head_cb)(struct ch_http_req *r, size_t *max_body, void *data);
/*
 * Exactly once per request, after the response is complete or when the
 * connection closes first (status 499 if nothing was sent).  Requests the
 * server refused itself (400, 408, 413, 414, 431...) get it too, with
 * method_name "-" and an empty path when the head was never understood.
 */
typedef void (*ch_http_done_cb)(struct ch_http_req *r, void *data);

struct ch_http_server_opts {
    const struct ch_limits *limits; /* borrowed; outlives the server */
    ch_http_head_cb on_head;        /* may be NULL */
    ch_http_request_cb on_request;
    ch_http_done_cb on_done; /* may be NULL */
    void *data;
};

struct ch_http_stats {
    uint64_t conns_open;
    uint64_t conns_total;
    uint64_t conns_rejected; /* over limits.maxConnections */
    uint64_t requests_total;
    uint64_t bytes_in, bytes_out;
};

/* CH_EINVAL without limits or on_request; registers a flush and a tick
 * hook on net, removed by ch_http_server_free. */
int ch_http_server_new(struct ch_net *net, const struct ch_http_server_opts *o, struct ch_http_server **out);
/*
 * Listen on addr:port (addr is a literal IPv4/IPv6 address).  port 0
 * picks a free port; ch_http_server_port() tells which.  A port in use
 * gives CH_EADDRINUSE, with err saying "address already in use: <addr>:<port>".
 * SO_REUSEADDR (libuv's default) but never SO_REUSEPORT.  Once per server:
 * CH_ESTATE after a listen, failed or not.
 */
int ch_http_server_listen(struct ch_http_server *s, const char *addr, int port, struct ch_error *err);
int ch_http_server_port(const struct ch_http_server *s);
/*
 * Graceful stop: close the listener, close idle keep-alive connections,
 * let in-flight requests finish (their responses say Connection: close);
 * after grace_ms close what is left.  cb runs on the loop thread once
 * every connection is gone (connections held by ch_http_req_ref included).
 * A second call does nothing.  Required before ch_http_server_free, even
 * for a server that never listened; cb may free the server.
 */
void ch_http_server_shutdown(struct ch_http_server *s, uint64_t grace_ms, void (*cb)(void *data), void *data);
void ch_http_server_free(struct ch_http_server *s); /* after shutdown's cb */
void ch_http_server_stats(const struct ch_http_server *s, struct ch_http_stats *out);

/* ------------------------------------------------------------------ */
/* Routing (http/route.c)                                               */
/* ------------------------------------------------------------------ */

/*
 * A table of routes: method mask + pattern with `:name` segments
 * ("/api/v1/conversations/:id") and an optional trailing `*` that matches
 * the rest ("/hooks/" followed by a star).  Literal segments beat parameters; earlier routes
 * win ties.
 */
struct ch_route {
    unsigned methods;    /* CH_M_* mask */
    const char *pattern; /* static */
    ch_http_request_cb handler;
    unsigned flags;  /* owner-defined (the api layer: scope bits, auth) */
    size_t max_body; /* 0 = server default */
};

/* The last answer of ch_router_match: clients repeat the same path (every
 * chat turn is POST /api/v1/chat), and the table is fixed, so one
 * memcmp replaces the scan of every route (~4,800 instructions). */
struct ch_route_memo {
    unsigned method;
    size_t path_len; /* 0: nothing remembered */
    char path[128];
    int rc;
    unsigned allowed;
    const struct ch_route *route;
};

struct ch_router {
    const struct ch_route *routes; /* borrowed array, never changed once set */
    size_t count;
    struct ch_route_memo *memo; /* borrowed, or NULL: no memo */
};

enum { CH_ROUTE_OK = 0, CH_ROUTE_NOT_FOUND = 1, CH_ROUTE_BAD_METHOD = 2 };
/*
 * Match method+path; on CH_ROUTE_OK fills r->route and r->params; on
 * CH_ROUTE_BAD_METHOD sets *allowed to the methods the path accepts.
 * Pure function of its inputs; unit-tested.
 */
int ch_router_match(const struct ch_router *rt, unsigned method, struct ch_str path, struct ch_http_req *r,
                    unsigned *allowed);
/* "GET, HEAD, POST" for an Allow header; out >= 64 bytes. */
void ch_http_methods_format(unsigned mask, char *out, size_t outcap);

#endif
