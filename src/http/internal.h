/*
 * internal.h: private to src/http/.  The I/O-free request parser
 * (parse.c), the connection struct and its state machine (conn.c), the
 * write queue (write.c), the server (server.c) and the response builders
 * (respond.c, stream.c) share these declarations.  Nothing outside
 * src/http includes this file; see docs/internals/http-connection.md.
 */
#ifndef CH_HTTP_INTERNAL_H
#define CH_HTTP_INTERNAL_H

#include <http_parser.h>

#include "http/http.h"

/* The shared per-server read buffer: one read(2) takes at most this. */
#define CH_HTTP_READ_BYTES (64 * 1024)
/* After a final response with Connection: close, read and drop what the
 * client still sends for this long (nginx lingering_timeout), so closing
 * with unread bytes does not RST the response away. */
#define CH_HTTP_LINGER_MS 2000
#define CH_HTTP_LINGER_MAX_BYTES (256 * 1024)
/* Buffers above this are freed, not kept, once a request is done, so an
 * idle keep-alive connection holds a few hundred bytes, not 64 KiB. */
#define CH_HTTP_KEEP_BYTES (16 * 1024)
/* Extra response headers per request (ch_http_add_header). */
#define CH_HTTP_MAX_RESP_HEADER_BYTES (16 * 1024)

/* ------------------------------------------------------------------ */
/* parse.c: http-parser glue, no sockets                                */
/* ------------------------------------------------------------------ */

enum ch_http_ev {
    CH_HTTP_EV_MORE,  /* all input consumed; feed more */
    CH_HTTP_EV_HEAD,  /* the head is complete: call ch_http_parse_fill */
    CH_HTTP_EV_DONE,  /* the message (head and body) is complete */
    CH_HTTP_EV_ERROR, /* err_status/err_code/err_msg say why; stop */
};

enum ch_http_phase { CH_HTTP_PH_HEAD, CH_HTTP_PH_BODY, CH_HTTP_PH_DONE, CH_HTTP_PH_ERROR };

/* A header as offsets into the head buffer, which may move while it grows. */
struct ch_http_hdr_off {
    uint32_t name_off, name_len, value_off, value_len;
};

struct ch_http_parse {
    http_parser hp;
    size_t max_head_bytes; /* from the limits table */
    size_t max_headers;
    size_t max_uri_bytes;
    enum ch_http_phase phase;
    enum ch_http_phase next_phase; /* applied once the bytes are counted */
    enum ch_http_ev ev;            /* what the last pause signalled */
    struct ch_buf head;            /* owned: target, names, values; capped */
    struct ch_http_hdr_off *offs;  /* owned; grows up to max_headers */
    size_t nhdr, offs_cap;
    struct ch_http_header *hdrs; /* owned; slices built at HEAD */
    size_t hdrs_cap;
    size_t url_len;
    size_t head_bytes;       /* raw head bytes consumed (431 check) */
    uint64_t body_raw_bytes; /* raw bytes after the head, framing included */
    uint64_t max_body_raw;   /* cap on body_raw_bytes (chunk framing) */
    size_t trailer_bytes;
    struct ch_buf *body;  /* borrowed sink (the request's body); NULL drops */
    bool in_value;        /* the last header callback was a value */
    bool prev_lf;         /* the last head byte seen was LF (obs-fold) */
    int err_status;       /* 0, or the HTTP status to answer */
    const char *err_code; /* static: "bad_request", ... */
    char err_msg[128];
};

void ch_http_parse_init(struct ch_http_parse *p, const struct ch_limits *l);
void ch_http_parse_release(struct ch_http_parse *p);
/* Forget the previous message (its slices die) and expect a new one.
 * Buffers above CH_HTTP_KEEP_BYTES are freed, smaller ones reused. */
void ch_http_parse_next(struct ch_http_parse *p);
/*
 * Feed bytes.  *used tells how many were consumed; the rest must be fed
 * again after handling the event.  HEAD and DONE pause the parser, so
 * the caller decides (limits, 100-continue) before any body byte is
 * parsed.  After DONE, call ch_http_parse_next before feeding again.
 */
enum ch_http_ev ch_http_parse_feed(struct ch_http_parse *p, const char *data, size_t len, size_t *used);
/* After HEAD: fill method, target, path, query, headers, version and
 * keep_alive of r (slices borrow the head buffer), and echo a sane
 * X-Request-Id into r->request_id (empty when there is none). */
void ch_http_parse_fill(struct ch_http_parse *p, struct ch_http_req *r);
/*
 * After fill: the checks no owner may skip.  Returns 0, or an HTTP
 * status with *code and *msg set: 505 (not HTTP/1.x), 400 (an unknown
 * Transfer-Encoding), 411 (POST/PUT/PATCH without a length), 417 (an
 * Expect other than 100-continue).  *want_continue tells whether the
 * client waits for "100 Continue".
 */
int ch_http_parse_check(const struct ch_http_parse *p, const struct ch_http_req *r, bool *want_continue,
                        const char **code, const char **msg);
bool ch_http_parse_has_body(const struct ch_http_parse *p);
/* The announced Content-Length, or UINT64_MAX (none, or chunked). */
uint64_t ch_http_parse_content_length(const struct ch_http_parse *p);
/* Accept a body of at most max bytes into sink (NULL: drop it). */
void ch_http_parse_set_body(struct ch_http_parse *p, struct ch_buf *sink, uint64_t max);
bool ch_http_parse_is_upgrade(const struct ch_http_parse *p);
/* True when s is a sane X-Request-Id: 1-64 of [A-Za-z0-9._:-]. */
bool ch_http_request_id_ok(struct ch_str s);
/* CH_M_* for an http_parser method. */
unsigned ch_http_method_bit(unsigned hp_method);

/* ------------------------------------------------------------------ */
/* The connection (conn.c) and the server (server.c)                    */
/* ------------------------------------------------------------------ */

enum ch_http_state {
    CH_HTTP_READ_HEAD, /* waiting for (the rest of) a head; total deadline */
    CH_HTTP_READ_BODY, /* reading the body; idle deadline */
    CH_HTTP_DISPATCH,  /* the owner has the request; not reading */
    CH_HTTP_WRITE,     /* streaming, or flushing a final response before close */
    CH_HTTP_KEEPALIVE, /* between requests; idle deadline */
    CH_HTTP_UPGRADED,  /* bytes belong to another protocol (ch_http_upgrade) */
    CH_HTTP_LINGER,    /* response sent, write side shut; draining input */
    CH_HTTP_CLOSING,   /* uv_close called; freed once closed and unreferenced */
    CH_HTTP_NSTATES
};

/* An intrusive doubly linked list node; a list is a node used as head. */
struct ch_http_link {
    struct ch_http_link *prev, *next;
};

struct ch_http_conn {
    uv_tcp_t tcp;               /* handle 1 */
    uv_timer_t timer;           /* handle 2: the state's deadline, armed lazily */
    uint64_t deadline_ms;       /* uv_now time the state expires; 0 = none */
    uint64_t armed_ms;          /* when timer fires; 0 = not armed */
    uv_write_t wreq;            /* at most one write in flight */
    uv_shutdown_t sreq;         /* LINGER's half-close */
    struct ch_http_server *srv; /* borrowed: outlives every conn */
    uint64_t id;
    enum ch_http_state state;   /* changed only by ch_http_conn_set_state */
    int handles;                /* open libuv handles, 2 .. 0 */
    int refs;                   /* async holders (ch_http_req_ref) */
    struct ch_http_link all;    /* in srv->conns while allocated */
    struct ch_http_link flushq; /* in srv->flushq while it has work */
    struct ch_http_parse parse;
    struct ch_http_req req; /* the current request; reused */
    struct ch_buf in;       /* owned: bytes read but not parsed yet */
    struct ch_buf out;      /* owned: output not yet given to the kernel */
    struct ch_buf inflight; /* owned: output the pending uv_write points into */
    size_t inflight_off;    /* bytes of inflight uv_try_write already sent */
    struct ch_buf rhdrs;    /* owned: ch_http_add_header lines, current request */
    struct ch_buf scratch;  /* owned: JSON rendering */
    unsigned requests;      /* heads parsed on this connection */
    uint64_t soft_since_ms; /* uv_now when the queue passed the soft cap; 0 = under */
    size_t linger_bytes;    /* dropped in LINGER */
    /* The current request. */
    bool has_req;     /* a head was parsed (or an error stands in) */
    bool responded;   /* the response head is queued */
    bool req_done;    /* the response is complete */
    bool done_called; /* on_done ran for this request */
    bool head_only;   /* HEAD: headers only */
    bool streaming;   /* between stream_begin and stream_end */
    bool chunked;     /* the stream uses chunked framing */
    bool resp_keep;   /* the response said keep-alive */
    bool is_upgrade;  /* the request asked for another protocol */
    bool dispatched;  /* on_request was called */
    /* The connection. */
    bool reading;     /* uv_read_start is in effect */
    bool writing;     /* wreq is in flight */
    bool want_close;  /* close once the current response is flushed */
    bool peer_eof;    /* the client half-closed */
    bool in_process;  /* conn_process is walking a buffer */
    bool want_resume; /* parse c->in from the flush hook */
    bool up_reading;  /* UPGRADED: the owner wants bytes */
    void (*on_close)(struct ch_http_req *r, void *data);
    void *on_close_data;
    /* ch_http_req_on_too_large: the route's own 413 for a body that grows
     * past its cap while being read (chunked), instead of the generic one */
    void (*on_too_large)(struct ch_http_req *r, void *data);
    void *on_too_large_data;
    const struct ch_http_upgrade_ops *up; /* borrowed; set in UPGRADED */
    void *up_data;
};

struct ch_http_server {
    struct ch_net *net;           /* borrowed */
    struct ch_http_server_opts o; /* copy; o.limits borrowed */
    const struct ch_limits *limits;
    uv_tcp_t listener;
    uv_timer_t grace; /* shutdown's deadline */
    int handles;      /* open: grace, and listener once listening */
    bool listening;
    bool stopping;
    bool in_flush;          /* the flush hook is walking flushq */
    bool accept_pending;    /* a connection waits for memory to accept */
    uint64_t accept_err_ms; /* last accept failure logged (loop time) */
    uint64_t accept_errs;   /* failures since, not logged yet */
    int port;
    char *rbuf;                 /* owned: shared read buffer, CH_HTTP_READ_BYTES */
    struct ch_http_link conns;  /* every allocated conn */
    struct ch_http_link flushq; /* conns with output or deferred input */
    size_t nconns;
    size_t nrejects;              /* refused sockets still closing */
    size_t soft_over;             /* conns over the soft write cap */
    struct ch_http_reject *spare; /* owned: used when allocation fails */
    uint64_t next_id;
    char rid_prefix[9]; /* random hex, per process */
    uint64_t rid_seq;
    struct ch_http_stats stats;
    void (*stop_cb)(void *data);
    void *stop_data;
};

static inline void ch_http_link_init(struct ch_http_link *l)
{
    l->prev = l->next = l;
}
static inline bool ch_http_link_empty(const struct ch_http_link *l)
{
    return l->next == l;
}
static inline void ch_http_link_add(struct ch_http_link *head, struct ch_http_link *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void ch_http_link_del(struct ch_http_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* conn.c */
int ch_http_conn_accept(struct ch_http_server *s);
void ch_http_conn_set_state(struct ch_http_conn *c, enum ch_http_state st);
/* Restart the current state's deadline (READ_BODY's idle timer). */
void ch_http_conn_rearm(struct ch_http_conn *c);
/* Per-request fields back to empty; the connection's own survive. */
void ch_http_conn_req_clear(struct ch_http_conn *c);
/* After the response to a fully read request: next request or close. */
void ch_http_conn_after_response(struct ch_http_conn *c);
void ch_http_conn_update_reading(struct ch_http_conn *c);
/* Close now: fires on_close/on_done for an unfinished request. */
void ch_http_conn_drop(struct ch_http_conn *c, const char *why);
/* Answer a server-side error with the JSON shape and close after it. */
void ch_http_conn_fail(struct ch_http_conn *c, int status, const char *code, const char *msg);
/* The response to the current request is complete. */
void ch_http_conn_finish(struct ch_http_conn *c);

/* read.c */
void ch_http_conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
void ch_http_conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
/* Parse deferred input (flush hook). */
void ch_http_conn_resume(struct ch_http_conn *c);
bool ch_http_conn_is_idle(const struct ch_http_conn *c);
/* Once the write side is flushed: close, or half-close and linger. */
void ch_http_conn_after_flush(struct ch_http_conn *c);

/* req.c */
/* uv_close callback of both handles; frees once closed and unreferenced. */
void ch_http_conn_on_closed(uv_handle_t *h);
const char *ch_http_state_name(enum ch_http_state st);

/* write.c */
/* Append to the output queue; CH_E_TOO_LARGE (conn closed) over the hard cap. */
int ch_http_conn_queue(struct ch_http_conn *c, const void *p, size_t n);
/* Schedule a flush before the loop sleeps. */
void ch_http_conn_enlist(struct ch_http_conn *c);
/* Hand queued output to the kernel now (try_write, else one uv_write). */
void ch_http_conn_flush(struct ch_http_conn *c);
size_t ch_http_conn_queued(const struct ch_http_conn *c);
/* Re-check the soft/hard caps after the queue changed. 0 or CH_E_TOO_LARGE. */
int ch_http_conn_check_queue(struct ch_http_conn *c);
void ch_http_server_flush(void *data);

/* respond.c */
/* Queue a response head for the current request into c->out. */
int ch_http_write_head(struct ch_http_conn *c, int status, const char *content_type, uint64_t content_length,
                       bool stream);
void ch_http_req_request_id(struct ch_http_conn *c);

/* server.c */
void ch_http_server_conn_gone(struct ch_http_server *s);

#endif
