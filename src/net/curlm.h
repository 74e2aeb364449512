/*
 * curlm.h: outbound HTTP on the loop: libcurl's multi interface driven by
 * libuv (STYLE.md 8.10 item 8; docs/internals/outbound-http.md).
 *
 * One `struct ch_curlm` per loop owns a curl multi handle (the connection
 * cache: keep-alive reuse per host, HTTP/2 multiplexing), a share object
 * (DNS cache and TLS sessions), one uv_timer_t for curl's timeouts and one
 * uv_poll_t per socket curl asks to watch.  Nothing here blocks the loop;
 * name resolution runs on curl's resolver thread.  Nothing is armed while
 * no transfer is in flight, so an idle manager costs no CPU and does not
 * keep the loop alive.
 *
 * Threading: every function here, and every callback, runs on the loop
 * thread, except ch_curlm_global_init/_cleanup (process start and end).
 * The loop thread is also the only one that calls libcurl, which the lazy
 * curl_global_init at the first submit relies on.
 *
 * A temporary second header of the net layer; its declarations move into
 * net.h.  Layer: core <- net.
 */
#ifndef CH_NET_CURLM_H
#define CH_NET_CURLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"

/* Defaults; a zero field in the options below means "use this". */
#define CH_CURLM_DEF_MAX_TOTAL_CONNS 64 /* STYLE.md 8.6: outbound conns */
/* A streamed LLM call holds its HTTP/1.1 connection for the whole reply,
 * so past this many calls to one plain-HTTP server queue inside curl.
 * The gateway passes gateway.outbound.maxConnectionsPerHost, by default
 * agents.defaults.maxConcurrent (cli/gateway_runtime.c); this is the
 * default of other users (tests).
 * Raising it (64) was measured: thread-per-connection servers (Python's
 * http.server, the e2e fake) then serve a third fewer requests a second
 * (docs/performance.md); h2 providers multiplex and never reach it. */
#define CH_CURLM_DEF_MAX_HOST_CONNS 8
#define CH_CURLM_DEF_CONNECT_TIMEOUT_MS 10000     /* STYLE.md 8.6: outbound connect */
#define CH_CURLM_DEF_FIRST_BYTE_TIMEOUT_MS 120000 /* a non-streamed LLM reply is slow */
#define CH_CURLM_DEF_IDLE_TIMEOUT_MS 60000        /* STYLE.md 8.6: stall */
#define CH_CURLM_DEF_TOTAL_TIMEOUT_MS 600000      /* the run timeout's default */
#define CH_CURLM_DEF_MAX_HEADER_BYTES (64 * 1024)
#define CH_CURLM_DEF_MAX_BODY_BYTES (16 * 1024 * 1024) /* STYLE.md 8.6: provider response */
#define CH_CURLM_DEF_KEEPALIVE_S 60                    /* TCP keepalive idle and interval */
/* A timeout field set to this is disabled.  Use it sparingly: libcurl
 * itself has no total timeout (STYLE.md 8.11). */
#define CH_CURLM_NO_TIMEOUT UINT32_MAX

struct ch_curlm;
struct ch_curlm_req;

/* ------------------------------------------------------------------ */
/* Process-wide setup                                                   */
/* ------------------------------------------------------------------ */

/*
 * libcurl is not linked but loaded at first use (net/curl_dl.h): the first
 * ch_curlm_submit (or ch_curl_load, for the CLI's own easy handles) dlopens
 * it and runs curl_global_init_mem with chela's allocator (ch_malloc,
 * ch_free, ch_realloc, ch_strdup, ch_calloc), so curl's memory is counted
 * and fault-injectable like the rest (STYLE.md 8.3 rule 8), before any
 * other curl call.  ch_curlm_global_init only records, at process start
 * and after ch_alloc_install(), that libcurl will be wanted; it loads
 * nothing and cannot fail (0).  curl_global_init is not thread-safe: only
 * the loop thread (the CLI: the main thread) ever calls libcurl.
 */
int ch_curlm_global_init(void);
/* curl_global_cleanup if libcurl was loaded; at process exit, after every
 * manager has closed, on the thread that used libcurl. */
void ch_curlm_global_cleanup(void);

/* ------------------------------------------------------------------ */
/* The manager                                                          */
/* ------------------------------------------------------------------ */

struct ch_curlm_opts {
    uint32_t max_total_connections; /* 0: 64; further transfers queue in curl */
    uint32_t max_host_connections;  /* 0: 8 per host:port */
    uint32_t keepalive_s;           /* 0: 60; TCP keepalive idle and interval */
    /* Proxy URL ("http://host:3128"); NULL or "": no proxy, and the
     * http_proxy/https_proxy environment is ignored.  Copied. */
    const char *proxy;
    const char *user_agent; /* NULL: "chela/" CH_VERSION; copied */
    /* PEM bundle used instead of the system CAs (CURLOPT_CAINFO): a
     * private CA, or tests.  NULL: the system store.  Copied. */
    const char *ca_file;
    bool no_http2; /* true: never offer h2 in TLS ALPN */
};

/*
 * Create a manager on loop.  opts may be NULL (all defaults).  HTTP/2 is
 * used when the server offers it in TLS ALPN (CURL_HTTP_VERSION_2TLS), and
 * an https transfer waits for a connection that may multiplex rather than
 * opening another one (pipewait); cleartext stays HTTP/1.1 with keep-alive.
 * Connections are reused per host:port across requests.  Owns no handle
 * that keeps the loop alive while idle.  Makes no curl call: the multi
 * handle is created (and libcurl loaded) by the first ch_curlm_submit.
 * *out is set only on success.  CH_ENOMEM.
 */
int ch_curlm_new(uv_loop_t *loop, const struct ch_curlm_opts *opts, struct ch_curlm **out);

/*
 * Close the manager: every unfinished request gets on_done with
 * CH_ECANCELED (on a later loop iteration, never inside this call), then
 * the multi handle, cached connections and every poll/timer handle close,
 * and cb(data) runs once the last handle is closed; m is freed before cb.
 * No new request is accepted after this call (CH_ECLOSED).  May be called
 * from inside any callback of m.  cb may be NULL.  Call at most once.
 */
void ch_curlm_close(struct ch_curlm *m, void (*cb)(void *data), void *data);

struct ch_curlm_stats {
    uint64_t in_flight; /* submitted, on_done not yet fired */
    uint64_t total;     /* requests accepted by ch_curlm_submit */
    uint64_t failed;    /* finished with rc != 0 (including canceled) */
    uint64_t canceled;  /* finished with CH_ECANCELED */
    uint64_t timed_out; /* finished with CH_ETIMEDOUT */
    uint64_t bytes_in;  /* response head + body bytes received */
    uint64_t bytes_out; /* request head + body bytes sent */
};
void ch_curlm_stats_get(const struct ch_curlm *m, struct ch_curlm_stats *out);

/* ------------------------------------------------------------------ */
/* Responses                                                            */
/* ------------------------------------------------------------------ */

/*
 * The final response head (never a 1xx interim one, never a redirect that
 * was followed).  Borrowed: valid from on_headers until on_done returns.
 */
struct ch_curlm_head {
    long status;       /* 200, 429, ... */
    int http_version;  /* 10, 11, 20 or 30 */
    struct ch_str raw; /* status line and header lines, CRLF-separated */
};

/*
 * The first header named name (ASCII case-insensitive), value trimmed of
 * spaces and tabs; {NULL, 0} when absent.  Borrowed from head.
 */
struct ch_str ch_curlm_head_get(const struct ch_curlm_head *head, const char *name);
/*
 * Iterate the header fields in order: start with *iter = 0; returns false
 * at the end.  Folded continuation lines (obsolete, RFC 9112 5.2) and lines
 * without a colon are skipped.
 */
bool ch_curlm_head_next(const struct ch_curlm_head *head, size_t *iter, struct ch_str *name, struct ch_str *value);

/* Which deadline ended a transfer with CH_ETIMEDOUT. */
enum ch_curlm_timeout {
    CH_CURLM_TIMEOUT_NONE = 0,
    CH_CURLM_TIMEOUT_CONNECT,    /* DNS + TCP + TLS (curl's connect phase) */
    CH_CURLM_TIMEOUT_FIRST_BYTE, /* the final response head did not arrive */
    CH_CURLM_TIMEOUT_IDLE,       /* no byte received for idle_timeout_ms */
    CH_CURLM_TIMEOUT_TOTAL,
};
const char *ch_curlm_timeout_name(enum ch_curlm_timeout t); /* "connect", ... */

/* What on_done receives.  Every pointer is borrowed: valid during on_done. */
struct ch_curlm_result {
    /*
     * 0: a complete response arrived (any HTTP status: a 500 is rc 0 with
     * status 500).  CH_ETIMEDOUT (see timeout), CH_ECANCELED (ch_curlm_abort,
     * close, or on_headers/on_data returned CH_ECANCELED), CH_E_TOO_LARGE (a
     * response cap: ours, or one of curl's such as its 100 KiB header line;
     * a body over max_body_bytes by its Content-Length comes with the head
     * and status), CH_EIO (connection refused, reset, TLS, truncated body,
     * too many redirects, an answer that is not HTTP: msg has curl's text),
     * CH_EINVAL (an option curl refused), CH_ENOMEM, or the code
     * on_headers/on_data returned.
     */
    int rc;
    enum ch_curlm_timeout timeout;    /* set when rc == CH_ETIMEDOUT */
    long status;                      /* final HTTP status; 0 if head is NULL */
    const struct ch_curlm_head *head; /* NULL if no final head arrived */
    const char *msg;                  /* "" on success, else a short reason */
    /* Microseconds.  first_byte_us and total_us are measured from submit;
     * connect_us and tls_us are curl's (from the transfer's start, about
     * 0 on a reused connection).  0: did not happen. */
    uint64_t connect_us;
    uint64_t tls_us;
    uint64_t first_byte_us; /* first response byte (head) */
    uint64_t total_us;
    uint64_t head_bytes;       /* response head bytes, interim heads too */
    uint64_t body_bytes;       /* body bytes passed to on_data */
    uint64_t bytes_out;        /* request head + body sent */
    long new_connections;      /* connections opened for it; 0: reused */
    const char *primary_ip;    /* address connected to, "" if none */
    const char *effective_url; /* last URL used, "" if never started */
};

/*
 * Callbacks, all on the loop thread, all with the submit's data pointer.
 * Order: on_headers at most once, then on_data zero or more times, then
 * on_done exactly once.  None fires inside ch_curlm_submit, ch_curlm_abort
 * or ch_curlm_close; none but on_done fires after ch_curlm_abort(req).
 *
 * on_headers: the final head is complete (a deferred redirect head fires
 * with the first body byte or at the end).  on_data: one body chunk as it
 * arrived (not NUL-terminated, valid during the call; no buffering here).
 * Both return 0 to go on, or a negative CH_E* to stop the transfer; on_done
 * then reports that code (a positive value counts as CH_ECANCELED).  They may call ch_curlm_abort, ch_curlm_submit
 * (the new transfer starts on the next loop iteration) and ch_curlm_close.
 * on_done: the end.  req is valid until on_done returns; it may submit new
 * requests (a retry) or close the manager.
 */
typedef int (*ch_curlm_headers_cb)(struct ch_curlm_req *req, const struct ch_curlm_head *head, void *data);
typedef int (*ch_curlm_data_cb)(struct ch_curlm_req *req, const char *p, size_t len, void *data);
typedef void (*ch_curlm_done_cb)(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data);

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

struct ch_curlm_header {
    const char *name;  /* "Content-Type" */
    const char *value; /* "application/json"; "" sends an empty value */
};

enum ch_curlm_body_mode {
    CH_CURLM_BODY_COPY = 0, /* copied at submit */
    CH_CURLM_BODY_BORROW,   /* caller keeps it valid until on_done returns */
    CH_CURLM_BODY_TAKE,     /* a ch_malloc block; freed by us, even if submit fails */
};

/*
 * One request.  Everything is copied at submit except a borrowed body, so
 * the struct and its strings may be stack memory.  Zero timeouts and caps
 * take the CH_CURLM_DEF_* values.
 */
struct ch_curlm_request {
    /* NULL: "GET", or "POST" when body_len > 0.  Upper-case letters only.
     * POST, PUT and PATCH always send a body (maybe empty); HEAD sends
     * none and gets no on_data. */
    const char *method;
    const char *url; /* required; checked at submit */
    /* Request headers, sent as given.  Names must be tokens and values
     * free of CR/LF (CH_EINVAL otherwise).  "Expect:" is suppressed and,
     * with a body but no Content-Type, curl's form default is dropped.
     * Copied, and the copies wiped when freed (they may hold API keys). */
    const struct ch_curlm_header *headers;
    size_t header_count;
    const void *body; /* may be NULL when body_len == 0 */
    size_t body_len;
    enum ch_curlm_body_mode body_mode;

    uint32_t connect_timeout_ms;    /* DNS + TCP + TLS; NO_TIMEOUT: curl's 300 s */
    uint32_t first_byte_timeout_ms; /* from submit until the final head */
    uint32_t idle_timeout_ms;       /* no byte received for this long */
    uint32_t total_timeout_ms;      /* from submit until the end */
    size_t max_header_bytes;        /* all response heads together */
    size_t max_body_bytes;          /* body bytes; a larger Content-Length is refused after on_headers */

    /*
     * CURLOPT_RESOLVE pins, "host:port:addr" (SSRF-safe fetches: the caller
     * checked addr).  A pinned request never reuses a cached connection nor
     * leaves one behind, and resolves outside the shared DNS cache, so a
     * pin cannot be bypassed by, nor leak into, other requests.  With
     * redirects, only pinned hosts are pinned: follow redirects yourself.
     */
    const char *const *resolve;
    size_t resolve_count;
    long max_redirects;      /* 0: redirects are returned, not followed */
    bool allow_any_protocol; /* false: http and https only, redirects too */

    ch_curlm_headers_cb on_headers; /* optional */
    ch_curlm_data_cb on_data;       /* optional: the body is then discarded */
    ch_curlm_done_cb on_done;       /* required */
    void *data;
};

/*
 * Start a request.  On success *out (if non-NULL) is a borrowed handle,
 * valid until on_done returns, for ch_curlm_abort.  On failure no callback
 * ever fires and a CH_CURLM_BODY_TAKE body is freed: CH_EINVAL (no URL or
 * on_done, a malformed URL, a scheme other than http/https unless
 * allow_any_protocol, a malformed header or pin; err says which),
 * CH_ECLOSED (the manager is closing), CH_ENOMEM, CH_EIO (the first
 * request of a manager loads libcurl and makes the multi handle; when
 * libcurl cannot be loaded, err says "libcurl could not be loaded: ...").
 */
int ch_curlm_submit(struct ch_curlm *m, const struct ch_curlm_request *r, struct ch_curlm_req **out,
                    struct ch_error *err);

/*
 * Stop a request: on_done fires with CH_ECANCELED after the caller's
 * current callback returns (normally on the next loop iteration), never
 * inside this call, and no on_headers/on_data fires in between.  A no-op
 * when the request already finished or was aborted (while req is valid).
 */
void ch_curlm_abort(struct ch_curlm_req *req);

/* Abort with a specific code (CH_ETIMEDOUT from a caller's own deadline). */
void ch_curlm_abort_rc(struct ch_curlm_req *req, int rc);

#endif
