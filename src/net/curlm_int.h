/*
 * curlm_int.h: what curlm.c (the manager: multi handle, socket and timer
 * wiring) and curlm_req.c (one transfer: options, callbacks, deadlines)
 * share.  Private to src/net; belongs in src/net/internal.h once the
 * layer has one.  See docs/internals/outbound-http.md.
 */
#ifndef CH_NET_CURLM_INT_H
#define CH_NET_CURLM_INT_H

#include "net/curl_dl.h"
#include "net/curlm.h"

/* Idle easy handles kept for reuse.  Each keeps curl's ~16 KB receive
 * buffer, but making one (curl_easy_init) and freeing one cost ~13,000
 * instructions together: with 8, a burst of 64 concurrent LLM calls made
 * and freed a handle for two calls in three.  64 matches the default cap
 * on outbound connections (CH_CURLM_DEF_MAX_TOTAL_CONNS): ~1.5 MB at most. */
#define CURLM_IDLE_EASY_MAX 64

/* One socket curl asked us to watch (multi-uv.c's curl_context). */
struct curlm_sock {
    uv_poll_t poll;                 /* embedded; the struct is freed in its close cb */
    curl_socket_t fd;               /* borrowed: curl owns and closes the socket */
    struct ch_curlm *m;             /* borrowed */
    struct curlm_sock *prev, *next; /* m->socks, while the poll is open */
    int events;                     /* UV_READABLE/UV_WRITABLE the poll watches now */
    /* The fd came from our CURLOPT_OPENSOCKETFUNCTION, so its close will
     * come through CURLOPT_CLOSESOCKETFUNCTION: only such a poll may
     * outlive curl's REMOVE (parked), since we hear when the fd goes. */
    bool conn;
    /* curl removed the fd (its connection went idle in the cache) but the
     * poll stays registered, unreferenced, so the next transfer on that
     * connection costs no epoll_ctl; readiness while parked stops it. */
    bool parked;
};

/* A URL check_url parsed, handed to curl as CURLOPT_CURLU: curl then
 * copies the parts instead of parsing the text again (curl_url_set and a
 * curl_url_get of the whole URL per transfer, ~6,000 instructions).  Each
 * request holds a reference while its easy handle may point at uh. */
struct curlm_url {
    CURLU *uh;  /* owned */
    char *text; /* owned: what check_url compared */
    /* owned: curl's own rendering of uh (what it would make of text).
     * Given as CURLOPT_URL next to CURLOPT_CURLU, it spares the transfer
     * setup a curl_url_get of the whole URL (~8,000 instructions); curl
     * takes the parts for the request from uh either way. */
    char *norm;
    bool https;
    int refs;
};

/* What a request set on its easy handle beyond the per-request options
 * (curlm_submit.c, setup_easy): a handle put back keeps its options, and
 * the next request of the same shape sets only its own (URL, headers,
 * body, callbacks' data, limits) instead of curl_easy_reset and ~25
 * setopts (~6,500 instructions a transfer). */
struct curlm_shape {
    char method[17]; /* checked: at most 16 letters */
    bool has_body;
    bool pipewait;     /* https and h2 allowed */
    bool follow;       /* max_redirects > 0 */
    bool any_protocol; /* no PROTOCOLS_STR */
};

/* A request's header list for curl, shared by the requests that give the
 * same headers (an LLM provider's are the same on every call: the key,
 * content type, accept): a hit compares the strings instead of checking
 * and copying each into a new list (~3,000 instructions a transfer).
 * Wiped when freed: it holds API keys. */
struct curlm_hdrs {
    struct curl_slist *list; /* owned; what CURLOPT_HTTPHEADER gets */
    char *key;               /* owned: name NUL value NUL ..., as given */
    size_t key_len, count;
    bool has_body; /* added "Content-Type:" when the caller gave none */
    int refs;
};

void curlm_hdrs_unref(struct curlm_hdrs *h); /* accepts NULL */

struct curlm_url *curlm_url_ref(struct curlm_url *u);
void curlm_url_unref(struct curlm_url *u); /* accepts NULL */

struct ch_curlm {
    uv_loop_t *loop;           /* borrowed */
    CURLM *multi;              /* owned; NULL until the first submit (curlm_start) */
    CURLSH *share;             /* owned: DNS cache and TLS sessions; as multi */
    uv_timer_t timer;          /* curl's single timeout; stopped when curl says -1 */
    struct curlm_sock *socks;  /* open poll handles */
    struct ch_curlm_req *reqs; /* requests not yet freed (finished ones too) */
    size_t live_reqs;          /* length of reqs */
    char *user_agent;          /* owned */
    char *proxy;               /* owned; "" means no proxy */
    char *ca_file;             /* owned; NULL: the system CA store */
    long keepalive_s;
    long max_total, max_host; /* connection limits, applied by curlm_start */
    bool no_http2;
    int in_curl;      /* >0 while curl_multi_socket_action runs */
    int open_handles; /* timer + polls not yet closed */
    bool closing;     /* ch_curlm_close was called */
    bool torn_down;   /* multi cleaned up, handles closing */
    bool in_cleanup;  /* inside curl_multi_cleanup */
    uint64_t next_id;
    /* Idle easy handles kept for reuse, with the shape each was last set
     * up for: creating and freeing one per request costs more than the
     * request's own setup. */
    CURL *idle_easy[CURLM_IDLE_EASY_MAX];
    struct curlm_shape idle_shape[CURLM_IDLE_EASY_MAX];
    size_t idle_easy_count;
    /* The last URL check_url accepted (http/https only), parsed: an LLM
     * provider's URL is the same on every call. */
    struct curlm_url *last_url;   /* ref */
    struct curlm_hdrs *last_hdrs; /* ref: the last header list built */
    struct ch_curlm_stats stats;
    void (*close_cb)(void *data);
    void *close_data;
};

enum curlm_req_state {
    CURLM_REQ_QUEUED,  /* submitted from inside curl; added on the next iteration */
    CURLM_REQ_RUNNING, /* in the multi handle */
    CURLM_REQ_DONE,    /* on_done fired; the timer is closing, then freed */
};

struct ch_curlm_req {
    struct ch_curlm *m;               /* borrowed: outlives every request */
    struct ch_curlm_req *prev, *next; /* m->reqs */
    uint64_t id;                      /* for logs */
    enum curlm_req_state state;
    bool in_multi;              /* added to m->multi and not yet removed */
    CURL *easy;                 /* owned until finish */
    struct curlm_hdrs *hdrs;    /* ref */
    struct curl_slist *headers; /* hdrs->list */
    struct curl_slist *resolve; /* owned */
    struct curlm_url *url;      /* ref, or NULL (CURLOPT_URL) */
    struct curlm_shape shape;   /* what easy is set up for */
    void *body;                 /* owned copy or taken body; NULL when borrowed */
    uv_timer_t timer;           /* deadlines; also defers adds and aborts (0 ms) */

    /* Why we stopped curl (0: we did not): it wins over curl's own code. */
    int stop_rc;
    enum ch_curlm_timeout stop_timeout;
    char msg[CURL_ERROR_SIZE];    /* our reason when stop_rc != 0 */
    char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER */

    /* Response head: the current head's lines, capped at max_header_bytes. */
    struct ch_buf head;
    struct ch_curlm_head view; /* points into head once complete */
    bool head_done;            /* the final head arrived (first-byte deadline met) */
    bool head_pending;         /* complete but maybe a redirect curl follows */
    bool head_fired;           /* delivered (on_headers called, if any) */
    bool got_byte;             /* any response byte: the idle deadline runs */
    uint64_t head_bytes;       /* all heads, interim and trailers too */
    uint64_t body_bytes;
    uint64_t max_header_bytes;
    uint64_t max_body_bytes;
    long max_redirects; /* 0: curl does not follow */
    /* ch_curl_alloc_failures() at submit: unchanged at the end, a curl
     * CURLE_OUT_OF_MEMORY was a curl cap the response hit, not memory. */
    unsigned long alloc_failures;

    /* Deadlines, loop clock (uv_now) in ms. */
    uint64_t start_ms;
    uint64_t last_rx_ms;
    uint64_t armed_ms;                         /* when the timer fires next; UINT64_MAX: not armed */
    uint32_t first_byte_ms, idle_ms, total_ms; /* CH_CURLM_NO_TIMEOUT: off */
    /* Timings, uv_hrtime() in ns. */
    uint64_t t_start_ns, t_first_ns;

    ch_curlm_headers_cb on_headers;
    ch_curlm_data_cb on_data;
    ch_curlm_done_cb on_done;
    void *data;
};

/* curlm_req.c: a transfer curl reported done (from curl_multi_info_read). */
void curlm_req_finish_curl(struct ch_curlm_req *req, CURLcode cc);
/* curlm_req.c: CURLOPT_HEADERFUNCTION and CURLOPT_WRITEFUNCTION. */
size_t curlm_req_on_header(char *p, size_t size, size_t nitems, void *userdata);
size_t curlm_req_on_write(char *p, size_t size, size_t nmemb, void *userdata);
/* curlm_req.c: after submit: arm the deadlines, or the deferred add of a
 * QUEUED request.  req->timer must be initialised. */
void curlm_req_launch(struct ch_curlm_req *req);
/* curlm.c: load libcurl if needed and create m's multi and share handles,
 * once; the first ch_curlm_submit calls it.  0, CH_ENOMEM or CH_EIO with
 * err set ("libcurl could not be loaded: ..."). */
int curlm_start(struct ch_curlm *m, struct ch_error *err);
/* curlm.c: an easy handle for a new request: a reset idle one, else a new
 * one (NULL when out of memory); and the way back to the idle list (or
 * curl_easy_cleanup when it is full or the manager is closing). */
/* An idle handle set up for shape (*same = true: set only the
 * per-request options), else a reset or new one (*same = false). */
CURL *curlm_easy_get(struct ch_curlm *m, const struct curlm_shape *shape, bool *same);
/* Back to the pool, keeping its options for the next request of shape;
 * the pointers into the finished request are cleared. */
void curlm_easy_put(struct ch_curlm *m, CURL *easy, const struct curlm_shape *shape);
/* curlm.c: a request was freed; tears the manager down if it is closing. */
void curlm_req_gone(struct ch_curlm *m);
/* curlm.c: CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION
 * (clientp: the manager), set on every easy handle by curlm_submit.c. */
curl_socket_t curlm_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr);
int curlm_close_socket(void *clientp, curl_socket_t fd);

#endif
