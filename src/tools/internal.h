/*
 * internal.h: what the files of the tools layer share (not for other
 * layers).  The registry and call lifecycle (registry.c), the I/O-free
 * helpers (text.c, hosts.c, html.c, tz.c) and the built-in tools
 * (time_tool.c, http_tool.c, fetch.c, fetch_body.c).
 */
#ifndef CH_TOOLS_INTERNAL_H
#define CH_TOOLS_INTERNAL_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "tools/tools.h"

/* ------------------------------------------------------------------ */
/* Registry and calls (registry.c)                                      */
/* ------------------------------------------------------------------ */

struct tool_entry {
    char *name;        /* owned */
    char *description; /* owned */
    json_t *schema;    /* owned; passed ch_tools_schema_check */
    int (*start)(struct ch_tool_call *call, const json_t *input);
    void (*abort)(struct ch_tool_call *call);
    void *data;              /* borrowed */
    size_t max_result_bytes; /* 0: the registry's cap */
    bool hidden;
    bool internal;
};

/* One allowHosts entry, parsed once (hosts.c). */
struct host_pat {
    char *host;    /* owned, lower-case, IPv6 without brackets, no trailing dot */
    bool wildcard; /* "*.domain": host holds "domain" */
    int port;      /* -1: any port */
};

struct host_list {
    struct host_pat *v; /* owned array of n */
    size_t n;
};

/*
 * Test hook: a synchronous resolver replacing uv_getaddrinfo for web_fetch
 * (fills up to cap addresses, returns how many, or a negative uv error).
 */
typedef int (*tools_resolve_fn)(const char *host, struct sockaddr_storage *out, size_t cap);

struct ch_tools {
    uv_loop_t *loop;                              /* borrowed */
    struct ch_curlm *curlm;                       /* borrowed */
    struct tool_entry *tools[CH_TOOLS_MAX_TOOLS]; /* owned entries, registration order */
    size_t ntools;
    json_t *defs;                 /* owned: the offered definitions */
    struct host_list http_allow;  /* tools.http.allowHosts */
    struct host_list fetch_allow; /* tools.web.fetch.allowHosts */
    uint64_t timeout_ms;          /* default per call */
    size_t max_result_bytes;      /* default content cap */
    char *tz_dir;                 /* owned */
    struct ch_tool_call *calls;   /* live calls (doubly linked) */
    size_t ncalls;
    bool closing;
    uv_timer_t close_timer; /* initialised only by ch_tools_close */
    void (*close_cb)(void *data);
    void *close_data;
    /* Tests only (tests/unit/tools): see tools_resolve_fn; and let
     * loopback addresses pass the SSRF check so a pinned fetch can reach
     * the in-test server under a name that does not exist in DNS. */
    tools_resolve_fn test_resolve;
    bool test_loopback_is_public;
};

enum call_state {
    CALL_RUNNING,  /* the tool works; the timer is the deadline */
    CALL_ABORTING, /* abort requested; waiting for the tool's reply */
    CALL_REPLIED,  /* result known; the timer (0 ms) will deliver it */
    CALL_DONE,     /* delivered; the timer is closing, then free */
};

struct ch_tool_call {
    struct ch_tools *tools;        /* borrowed */
    const struct tool_entry *tool; /* borrowed; NULL: never started */
    uv_timer_t timer;              /* deadline, then deferred delivery */
    enum call_state state;
    ch_tool_done_cb cb;
    void *cb_data;
    void *impl;           /* the tool's state (owned by the tool) */
    uint64_t start_ms;    /* uv_now at start */
    uint64_t deadline_ms; /* uv_now-based */
    uint64_t timeout_ms;
    size_t max_result_bytes;
    bool is_error, timed_out, aborted, refused;
    char *text; /* owned, NUL-terminated, valid UTF-8 */
    size_t text_len;
    json_t *json; /* owned, may be NULL */
    struct ch_tool_call *prev, *next;
};

/* The built-in tools (time_tool.c, http_tool.c, fetch.c). */
int tools_register_builtin(struct ch_tools *t, bool with_http, bool with_fetch, struct ch_error *err);
extern const struct ch_tool_spec tools_current_time_spec;
extern const struct ch_tool_spec tools_http_request_spec;
extern const struct ch_tool_spec tools_web_fetch_spec;
extern const struct ch_tool_spec tools_fetch_image_spec;
extern const int tools_fetch_image_tag;
/* fetch.c: web_fetch and fetch_image (told apart by the spec's data). */
int tools_fetch_start(struct ch_tool_call *call, const json_t *in);
void tools_fetch_abort(struct ch_tool_call *call);
#define TOOLS_FETCH_MAX_CHARS 100000

/* ------------------------------------------------------------------ */
/* Text helpers (text.c)                                                */
/* ------------------------------------------------------------------ */

/* Append p[0..n) to b with every invalid UTF-8 sequence (and NUL)
 * replaced by U+FFFD.  CH_E_TOO_LARGE / CH_ENOMEM from the buffer. */
int text_append_utf8(struct ch_buf *b, const char *p, size_t n);
/* Number of code points in a valid UTF-8 string. */
size_t text_count_chars(const char *p, size_t n);
/* Byte length of the longest prefix of p holding at most max_chars code
 * points and not splitting a sequence. */
size_t text_prefix_chars(const char *p, size_t n, size_t max_chars);
/* Byte length of the longest prefix of at most max_bytes that does not
 * split a UTF-8 sequence. */
size_t text_prefix_bytes(const char *p, size_t n, size_t max_bytes);
/* Append code point cp as UTF-8 (U+FFFD for surrogates, 0, > 0x10FFFF). */
int text_append_cp(struct ch_buf *b, uint32_t cp);
/* Convert p from charset to UTF-8 (iconv), replacing what does not
 * convert; an unknown charset is treated as UTF-8.  Result in out. */
int text_to_utf8(const char *charset, const char *p, size_t n, struct ch_buf *out);
/* ASCII case-insensitive search of needle in p[0..n). */
const char *text_find_ci(const char *p, size_t n, const char *needle);

/* ------------------------------------------------------------------ */
/* Hosts, URLs and addresses (hosts.c)                                  */
/* ------------------------------------------------------------------ */

/* Parse allowHosts entries; setting names the config key in errors. */
int host_list_init(struct host_list *l, const char *const *v, size_t n, const char *setting, struct ch_error *err);
void host_list_release(struct host_list *l);
/* Does host (as tool_url gives it) on port match an entry? */
bool host_list_match(const struct host_list *l, const char *host, int port);

/* A URL as libcurl parses it: the same parser the transfer uses, so the
 * host checked here is the host curl connects to (no parser differential:
 * "http://2130706433/" and "http://0x7f.1/" are both 127.0.0.1). */
struct tool_url {
    char *url;      /* owned: curl's normalised form, used for the transfer */
    char *host;     /* owned: lower-case, IPv6 without brackets, no trailing dot */
    char scheme[8]; /* "http" or "https" */
    int port;       /* explicit or the scheme's default */
    int ip_family;  /* AF_INET / AF_INET6 when host is a literal, else 0 */
    uint8_t ip[16]; /* the literal's bytes */
};

/*
 * Parse url (absolute), or resolve it against base when base is non-NULL
 * (a redirect's Location).  Only http and https; no user info, no IPv6
 * zone, ASCII host names only.  CH_EINVAL with msg, CH_ENOMEM, or CH_EIO
 * with msg when libcurl (its URL parser) cannot be loaded.
 */
int tool_url_parse(const char *base, const char *url, struct tool_url *out, char *msg, size_t msgcap);
void tool_url_release(struct tool_url *u);

/*
 * Why an address must not be fetched: "loopback", "private", "link-local",
 * "CGNAT (shared address space)", "multicast", "unspecified", "reserved",
 * "documentation", ... or NULL when it is a public unicast address.
 * IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms are judged by the
 * IPv4 address they carry.  family is AF_INET (4 bytes) or AF_INET6 (16).
 */
const char *addr_block_reason(int family, const uint8_t *bytes);
const char *sockaddr_block_reason(const struct sockaddr *sa);

/* ------------------------------------------------------------------ */
/* Content types (fetch_body.c)                                         */
/* ------------------------------------------------------------------ */

enum body_kind { BODY_TEXT, BODY_HTML, BODY_BINARY, BODY_UNKNOWN };

/* Split a Content-Type value into the lower-case media type ("text/html")
 * and the charset parameter ("" when absent). */
void ctype_parse(struct ch_str ct, char *mime, size_t mcap, char *charset, size_t ccap);
/* What a media type holds; "" is BODY_UNKNOWN (sniff the bytes). */
enum body_kind ctype_kind(const char *mime);
/* Guess from the first bytes: NUL or other binary control bytes give
 * BODY_BINARY, "<!doctype html" / "<html" give BODY_HTML. */
enum body_kind body_sniff(const char *p, size_t n);

/* A fetched body made readable (fetch_body.c; runs on the thread pool). */
struct fetch_text {
    char *text; /* owned, UTF-8, at most max_chars code points plus a marker */
    size_t len;
    char *title;  /* owned, may be NULL (HTML only) */
    size_t chars; /* code points before the cut */
    bool truncated;
};
/*
 * Convert body (charset, "" for UTF-8 or unknown) to UTF-8, HTML to text
 * when kind is BODY_HTML, and cut to max_chars code points with a
 * "[truncated: ...]" marker.  CH_ENOMEM, CH_E_TOO_LARGE.
 */
int fetch_render(const char *body, size_t len, const char *charset, enum body_kind kind, size_t max_chars,
                 struct fetch_text *out);
void fetch_text_release(struct fetch_text *ft);

/* ------------------------------------------------------------------ */
/* HTML to text (html.c) and time zones (tz.c): I/O-free                */
/* ------------------------------------------------------------------ */

/*
 * Readable text from HTML: the title first, then the body text with
 * script, style, nav, header, footer, noscript, svg, template, iframe and
 * head content dropped, entities decoded, whitespace collapsed, block
 * elements on their own lines, list items as "- ", headings as "# ", link
 * text kept.  html is UTF-8.  out's cap bounds the result
 * (CH_E_TOO_LARGE); *title (optional) gets an owned copy of the title.
 */
int html_to_text(const char *html, size_t len, struct ch_buf *out, char **title);

/* A parsed TZif file (RFC 8536). */
struct tz_info;
int tz_parse(const uint8_t *p, size_t n, struct tz_info **out);
void tz_free(struct tz_info *z);
struct tz_local {
    int32_t utoff_s; /* local = UTC + utoff */
    bool is_dst;
    char abbr[16];
};
/* Local time type in effect at unix time t (seconds). */
void tz_lookup(const struct tz_info *z, int64_t t, struct tz_local *out);
/* Is name a safe zoneinfo path ("Asia/Seoul", "UTC", "Etc/GMT+9")? */
bool tz_name_valid(const char *name);

#define TOOLS_FETCH_MAX_BODY_BYTES (5 * 1024 * 1024)
#define TOOLS_FETCH_MAX_REDIRECTS 5
#define TOOLS_FETCH_TIMEOUT_MS 10000
#define TOOLS_FETCH_MAX_PIN_BYTES 500 /* curlm accepts 512 */

/* One web_fetch or fetch_image call (fetch.c, fetch_image.c). */
enum fetch_phase { F_RESOLVING, F_FETCHING, F_CONVERTING };

struct fetch {
    struct ch_tool_call *call; /* borrowed */
    struct ch_tools *t;        /* borrowed */
    struct tool_url url;       /* the current hop */
    char *first_url;           /* owned: as the model gave it, normalised */
    char *prev_url;            /* owned: the hop that redirected here, or NULL */
    int hops;                  /* redirects followed so far */
    size_t max_chars;
    uint64_t deadline_ms; /* uv_now-based: FETCH_TIMEOUT_MS for all hops */
    enum fetch_phase phase;
    bool aborted;
    bool allowlisted; /* this hop's host is in tools.web.fetch.allowHosts */
    uv_getaddrinfo_t gai;
    struct ch_curlm_req *req; /* borrowed, valid until on_done */
    uv_work_t work;
    char pin[TOOLS_FETCH_MAX_PIN_BYTES + 1];
    /* The response of the current hop. */
    long status;
    char mime[96], charset[40];
    enum body_kind kind;
    char *location; /* owned: a redirect's Location */
    bool binary;
    struct ch_buf body;    /* capped at FETCH_MAX_BODY_BYTES */
    struct fetch_text out; /* filled on the thread pool */
    int render_rc;
    /* fetch_image: the bytes, base64, instead of text; its own limits. */
    bool image;
    size_t max_bytes;
    int max_redirects;
    uint64_t timeout_ms;
    bool has_only; /* the caller's host allowlist (every hop) */
    struct host_list only;
    char *b64; /* owned: the image, base64 (the thread pool's) */
    size_t b64_len;
};

/* Report and free: the single way a fetch ends. */
void tools_fetch_end(struct fetch *f, bool is_error, json_t *json, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* fetch_image.c: its limits from the input (CH_EINVAL with msg), and the
 * end of a transfer that succeeded (status checked, base64 queued). */
int tools_fetch_image_limits(struct fetch *f, const json_t *in, char *msg, size_t cap);
void tools_fetch_image_done(struct fetch *f);

#endif
