/*
 * core.h: the leaf layer every other layer stands on.
 *
 * Allocation (counting, fault-injectable), capped buffers, string slices,
 * errors, logging with secret masking, clocks, ids, crypto helpers, the
 * string map and the single limits table.  Nothing here knows about the
 * gateway; nothing here touches the network.  See docs/architecture.md.
 *
 * Conventions (STYLE.md 8.2-8.4): functions return 0 or a negative CH_E*;
 * `_take` steals its argument even on failure; `_get`/`_find` return
 * borrowed values; `_dup` an owned copy.
 */
#ifndef CH_CORE_H
#define CH_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

enum {
    CH_OK = 0,
    CH_AGAIN = -1, /* not yet: not an error (nginx NGX_AGAIN) */
    CH_ENOMEM = -2,
    CH_EINVAL = -3,      /* bad input; a ch_error says what */
    CH_E_TOO_LARGE = -4, /* a cap was reached */
    CH_EIO = -5,
    CH_ENOTFOUND = -6,
    CH_EEXIST = -7,
    CH_EBUSY = -8, /* a bounded queue is full */
    CH_ETIMEDOUT = -9,
    CH_ECANCELED = -10,
    CH_EPERM = -11,
    CH_ECLOSED = -12,
    CH_EVERSION = -13, /* e.g. a database newer than this binary */
    CH_EADDRINUSE = -14,
    CH_ESTATE = -15, /* called in the wrong state */
    CH_ENOSPC = -16, /* the store's disk is full: worth a retry later, unlike CH_EIO */
};

/* Static text for a CH_E* code ("out of memory", ...). */
const char *ch_strerror(int rc);

/*
 * User-facing detail for a failure (jansson json_error_t).  Functions that
 * can explain a failure take an optional `struct ch_error *`; NULL is fine.
 * line/column are 1-based, 0 when unknown.
 */
struct ch_error {
    int code; /* CH_E* */
    int line;
    int column;
    size_t offset;
    char msg[160];
};

/* Fill err (if non-NULL) with code and a printf-formatted message.
 * Returns code, so callers can write `return ch_error_set(err, ...)`. */
int ch_error_set(struct ch_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* Allocation (core/alloc.c)                                            */
/* ------------------------------------------------------------------ */

/*
 * The one allocator (STYLE.md 8.3 rule 8).  Every block carries a small
 * header so the live byte count is exact.  ch_alloc_install() registers it
 * with libuv, jansson, SQLite and OpenSSL; call it first thing in main()
 * and in test main()s.  Thread-safe (atomic counters).
 */
void *ch_malloc(size_t n);
void *ch_calloc(size_t count, size_t n);
void *ch_realloc(void *p, size_t n);
void ch_free(void *p);
char *ch_strdup(const char *s);            /* NULL in, NULL out */
char *ch_strndup(const char *s, size_t n); /* always NUL-terminates */
char *ch_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrite then free: for anything that held a secret. */
void ch_free_secret(char *s);
void ch_wipe(void *p, size_t n);

size_t ch_alloc_live_bytes(void); /* bytes currently allocated */
size_t ch_alloc_live_blocks(void);
/* Fault injection for tests: the n-th allocation from now fails (1 = the
 * next one); 0 disables.  Returns nothing; see tests/unit/core. */
void ch_alloc_fail_after(long n);
int ch_alloc_install(void);
/* Housekeeping, once a second from one thread (the loop's tick): returns
 * freed heap memory to the kernel (malloc_trim) when the live bytes have
 * fallen well below their recent high, and every 30 calls regardless.
 * Returns whether it trimmed.  ch_alloc_trim_stats: trims run so far and
 * the time spent in them. */
bool ch_alloc_tick(void);
void ch_alloc_trim_stats(unsigned long *trims, uint64_t *ns);

/* ------------------------------------------------------------------ */
/* Slices and strings (core/str.c)                                      */
/* ------------------------------------------------------------------ */

/* A borrowed, not necessarily NUL-terminated byte range (h2o_iovec_t). */
struct ch_str {
    const char *p;
    size_t len;
};

#define CH_STR(lit) ((struct ch_str){(lit), sizeof(lit) - 1})
struct ch_str ch_str_from(const char *cstr); /* NULL gives {NULL,0} */
bool ch_str_eq(struct ch_str a, struct ch_str b);
bool ch_str_eq_cstr(struct ch_str a, const char *b);
bool ch_str_eq_ci(struct ch_str a, const char *b); /* ASCII case-insensitive */
bool ch_str_has_prefix(struct ch_str a, const char *prefix);
char *ch_str_dup(struct ch_str s); /* owned, NUL-terminated */
/* snprintf(dst, cap, "%s", src) without the printf machinery (~600
 * instructions a call): copies at most cap - 1 bytes, always terminates
 * (cap > 0), returns the bytes copied. */
/* url as logs and read-scope answers may show it: scheme://host[:port]/path,
 * without userinfo, query or fragment ("?" when it is no URL). */
void ch_url_for_log(const char *url, char *out, size_t cap);
size_t ch_str_copy(char *dst, size_t cap, const char *src);
/* Owned a followed by b, NUL-terminated ("%.*s%s" without printf). */
char *ch_str_join(struct ch_str a, const char *b);
struct ch_str ch_str_trim(struct ch_str s); /* spaces and tabs */
/* Parse a non-negative decimal; CH_EINVAL on junk or overflow past max. */
int ch_str_to_u64(struct ch_str s, uint64_t max, uint64_t *out);
/* Parse "1MB", "256KB", "512", "1.5MiB" style sizes. */
int ch_parse_size(const char *s, uint64_t *out);
/* Parse durations "90d", "12h", "30m", "45s", "500ms"; plain number = s. */
int ch_parse_duration_ms(const char *s, int64_t *out);
/* Percent-decode a query component into out (capped at outcap-1); '+'
 * is a space (form encoding). */
int ch_url_decode(struct ch_str in, char *out, size_t outcap, size_t *outlen);
/* Percent-decode a path segment: '+' stays '+'; a decoded NUL is CH_EINVAL. */
int ch_url_decode_path(struct ch_str in, char *out, size_t outcap, size_t *outlen);

/* ------------------------------------------------------------------ */
/* Capped buffer (core/buf.c), curl dynbuf                              */
/* ------------------------------------------------------------------ */

/*
 * A growable byte buffer with a cap fixed at init.  Appending past `max`
 * returns CH_E_TOO_LARGE and leaves the buffer unchanged (it is not freed,
 * unlike curl: callers decide).  data is always NUL-terminated when
 * non-NULL, so printable content can be used as a C string.
 */
struct ch_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* cap on len; fixed at init */
};

void ch_buf_init(struct ch_buf *b, size_t max);
void ch_buf_release(struct ch_buf *b); /* free contents; keeps max */
void ch_buf_reset(struct ch_buf *b);   /* len = 0, keeps memory */
int ch_buf_reserve(struct ch_buf *b, size_t extra);
int ch_buf_append(struct ch_buf *b, const void *p, size_t n);
int ch_buf_append_str(struct ch_buf *b, const char *s);
int ch_buf_append_char(struct ch_buf *b, char c);
/* The decimal text of v, as "%lld" writes it, without printf. */
int ch_buf_append_i64(struct ch_buf *b, int64_t v);
int ch_buf_appendf(struct ch_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ch_buf_vappendf(struct ch_buf *b, const char *fmt, va_list ap);
/* Append s (n bytes, NULs allowed) as a JSON string literal, quotes
 * included, escaped exactly as jansson's json_dumps escapes it ('"', '\\',
 * \b \f \n \r \t, other controls \u00XX in capitals; UTF-8 as is), so a
 * body written directly is byte for byte the one a jansson tree dumps.
 * The bytes are not checked for UTF-8.  b is unchanged on failure. */
int ch_buf_append_json_str(struct ch_buf *b, const char *s, size_t n);
/* Bytes at s[0..n) before the first '"', '\\', control or, with
 * stop_non_ascii, byte >= 0x80: what a JSON string holds unescaped. */
size_t ch_json_plain_len(const char *s, size_t n, bool stop_non_ascii);
/* The length of the UTF-8 sequence at s (avail bytes there, s[0] >= 0x80)
 * if it is valid as jansson's utf8_check_full and RFC 3629 have it (no
 * overlong form, surrogate or code point past U+10FFFF), else 0. */
size_t ch_utf8_len(const unsigned char *s, size_t avail);
/* Append s[0..n) with each ill-formed UTF-8 subpart (counted as the
 * WHATWG decoder counts them) and each NUL replaced by U+FFFD: text from
 * the network made fit for JSON.  b is unchanged on failure. */
int ch_buf_append_utf8_clean(struct ch_buf *b, const char *s, size_t n);
/* The longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence: where to cut valid text to at most n bytes. */
size_t ch_utf8_cut(const char *s, size_t n);
/* s[0..n) is UTF-8 as jansson accepts it (NUL included). */
bool ch_utf8_valid(const char *s, size_t n);
/* The NUL-terminated s made valid UTF-8 in place: a sequence cut at its
 * end is dropped, any other ill-formed byte becomes '?'. */
void ch_str_utf8_fix(char *s);
/*
 * OpenClaw's canonical form of a session key a client sent (s[0..n)), in
 * out (cap bytes, NUL-terminated), core/session_key.c: trimmed, `agent:main:`
 * put before a key outside an agent's namespace, ASCII letters lowercased
 * (but a Signal group id's or a Matrix room's own case), `main` or nothing
 * as `agent:main:main`, `global` and `unknown` as they are.  CH_EINVAL for
 * an `agent:` key without an id or a rest ("malformed session key"),
 * CH_E_TOO_LARGE past CH_SESSION_KEY_MAX bytes or cap.
 */
#define CH_SESSION_KEY_MAX 512
int ch_session_key_canon(const char *s, size_t n, char *out, size_t cap);
/* Why ch_session_key_canon refused the key raw with rc, in OpenClaw's
 * words where it has them (`malformed session key "<raw, trimmed>"`), into
 * why: every surface refuses a key alike. */
void ch_session_key_why(int rc, const char *raw, char *why, size_t cap);
/* A canonical key of a session made for one run (a hook's, a cron job's,
 * a stateless /v1 call's...), which retention may delete once stale
 * (session.maintenance); never the main session or a conversation. */
bool ch_session_key_disposable(const char *key);
/* Drop the first n bytes (n > len drops all). */
void ch_buf_consume(struct ch_buf *b, size_t n);
/* Hand the data to the caller (caller frees with ch_free); b becomes empty. */
char *ch_buf_detach(struct ch_buf *b, size_t *len);

/* ------------------------------------------------------------------ */
/* String-keyed hash map (core/map.c)                                   */
/* ------------------------------------------------------------------ */

/*
 * Open-addressing map from owned copies of string keys to borrowed void*
 * values.  The map never frees values; iterate and free them yourself.
 * Not thread-safe.
 */
struct ch_map_entry {
    char *key; /* owned; NULL = empty slot; (char*)1 = tombstone */
    size_t keylen;
    uint64_t hash;
    void *value; /* borrowed */
};

struct ch_map {
    struct ch_map_entry *slots;
    size_t cap;   /* power of two */
    size_t count; /* live entries */
    size_t used;  /* live + tombstones */
};

void ch_map_init(struct ch_map *m);
void ch_map_release(struct ch_map *m);
/* Insert or replace; *old (if non-NULL) gets the replaced value or NULL. */
int ch_map_set(struct ch_map *m, const char *key, size_t keylen, void *value, void **old);
void *ch_map_get(const struct ch_map *m, const char *key, size_t keylen);
/* Remove; returns the removed value or NULL. */
void *ch_map_del(struct ch_map *m, const char *key, size_t keylen);
/* Iterate: start with *iter = 0; returns NULL at the end. */
struct ch_map_entry *ch_map_next(const struct ch_map *m, size_t *iter);
uint64_t ch_hash_bytes(const void *p, size_t n); /* FNV-1a 64 */

/* ------------------------------------------------------------------ */
/* Logging (core/log.c)                                                 */
/* ------------------------------------------------------------------ */

enum ch_log_level { CH_LOG_DEBUG, CH_LOG_INFO, CH_LOG_WARN, CH_LOG_ERROR, CH_LOG_OFF };
enum ch_log_format { CH_LOG_TEXT, CH_LOG_JSON };

/*
 * One process-wide logger writing to stderr (the one deliberate global: the
 * logger must work before any context exists).  Lines are buffered and
 * flushed by ch_log_flush() (the loop calls it before sleeping) or when the
 * buffer passes 64 KiB, so a busy access log costs one write(2) per loop
 * iteration, not one per request.  Every line goes through ch_log_mask().
 * Thread-safe (a mutex around the buffer).
 */
void ch_log_setup(enum ch_log_level level, enum ch_log_format fmt);
int ch_log_level_parse(const char *s, enum ch_log_level *out);
bool ch_log_enabled(enum ch_log_level level);
void ch_log(enum ch_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A structured line: msg plus key/value pairs given as a NULL-terminated
 * list of (const char *key, const char *value) string pairs. In text
 * format: `msg k=v k=v`; in JSON: {"ts","level","msg",k:v...}. */
void ch_log_kv(enum ch_log_level level, const char *msg, ...);
void ch_log_flush(void);
/*
 * The newest log lines (already masked) stay in a bounded in-memory ring
 * (CH_LOG_RING_LINES lines of at most 1 KiB each) for `logs.tail`.  Each
 * line has a sequence number; ch_log_tail calls each() for lines with
 * sequence >= *cursor (all retained lines if the cursor fell out of the
 * ring: *reset is set then), at most limit lines and max_bytes bytes,
 * and sets *cursor past the last one delivered.  Returns the count.
 */
#define CH_LOG_RING_LINES 512
size_t ch_log_tail(uint64_t *cursor, size_t limit, size_t max_bytes, bool *reset,
                   void (*each)(const char *line, size_t len, void *data), void *data);
/* Unbuffered: write now (startup banners, fatal errors). */
void ch_log_now(enum ch_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ch_log_debug(...)                                                                                              \
    do {                                                                                                               \
        if (ch_log_enabled(CH_LOG_DEBUG))                                                                              \
            ch_log(CH_LOG_DEBUG, __VA_ARGS__);                                                                         \
    } while (0)
#define ch_log_info(...) ch_log(CH_LOG_INFO, __VA_ARGS__)
#define ch_log_warn(...) ch_log(CH_LOG_WARN, __VA_ARGS__)
#define ch_log_error(...) ch_log(CH_LOG_ERROR, __VA_ARGS__)

/*
 * Mask secrets in place: chela tokens (oc_tok_...), `Bearer <x>`,
 * `x-api-key: <x>`, provider keys (sk-..., sk-ant-..., AIza...), and
 * `"token":"..."`/`"password":"..."`/`"apiKey":"..."` JSON values become
 * "****" (a known prefix such as oc_tok_ stays).  Prefixes are caught
 * wherever no word goes on before them: after '/', '=', ':', '.', ...
 * Returns the new length.
 */
size_t ch_log_mask(char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Time (core/time.c)                                                   */
/* ------------------------------------------------------------------ */

int64_t ch_now_ms(void);   /* wall clock, ms since the epoch */
uint64_t ch_mono_ns(void); /* monotonic */
uint64_t ch_mono_ms(void);
/* "Sun, 06 Nov 1994 08:49:37 GMT"; out must hold 30 bytes. Cached per second. */
const char *ch_http_date(char out[30]);
/* RFC 3339 UTC with milliseconds, "2026-11-21T10:30:00.123Z"; 32 bytes. */
void ch_time_iso8601(int64_t ms, char out[32]);

/* Name the calling thread (core/thread.c), as ps, top -H and perf show it;
 * Linux keeps the first 15 bytes.  "chela-writer", "chela-ckpt",
 * "chela-pool"; the event loop keeps the process's name. */
void ch_thread_set_name(const char *name);

/* Busy polling before a sleep (core/spin.c): the budget a thread polls for
 * before it blocks, learnt from its recent waits as cpuidle-haltpoll does. */
struct ch_spin {
    uint64_t max_ns;    /* 0: never poll */
    uint64_t budget_ns; /* poll this long next time, 0..max_ns */
    uint64_t hits;      /* waits that ended while polling */
    uint64_t grows;     /* waits that slept and ended within max_ns */
    uint64_t shrinks;   /* waits that outlasted max_ns */
    uint64_t spin_ns;   /* time spent polling, in total */
    /* Saturation (ch_spin_note): the current window's start, and the
     * thread's CPU time and polling time then. */
    uint64_t win_start_ns, win_cpu_ns, win_spin_ns;
    bool saturated;   /* the last window was over the limit */
    bool publish;     /* this thread's saturation is the process's */
    uint64_t skipped; /* waits not polled because the gateway was saturated */
    /* The core taken (ch_spin_yielded): no polling until this monotonic
     * time (ch_mono_ns), and how often it happened. */
    uint64_t taken_until_ns, taken;
};

void ch_spin_init(struct ch_spin *sp, uint64_t max_ns);
/* The budget after a wait that outlasted it but not max_ns, from 0. */
uint64_t ch_spin_grow_start(const struct ch_spin *sp);
/* Learn from one wait: `waited_ns` from the start of the poll to the work's
 * arrival, or more than max_ns (UINT64_MAX) for a wait that outlasted it. */
void ch_spin_learn(struct ch_spin *sp, uint64_t waited_ns);
/* The thread is about to wait, at `now_ns`.  At the end of each window of
 * CH_SPIN_WINDOW_NS its busy share is its CPU time (`cpu_ns`, read once a
 * window; ch_spin_thread_cpu_ns) less its polling; above
 * CH_SPIN_SATURATED_PCT the thread is saturated, and with `publish` set so
 * is the process (ch_spin_process_saturated). */
#define CH_SPIN_WINDOW_NS (10u * 1000u * 1000u)
#define CH_SPIN_SATURATED_PCT 70u
void ch_spin_note(struct ch_spin *sp, uint64_t now_ns, uint64_t (*cpu_ns)(void));
uint64_t ch_spin_thread_cpu_ns(void);
bool ch_spin_process_saturated(void);
/* The budget to poll for this wait: 0 while the process is saturated
 * (counted in `skipped`), when polling would take a core from the threads
 * that produce the work being waited for, and for CH_SPIN_WINDOW_NS after
 * a yield lost the core (ch_spin_yielded). */
uint64_t ch_spin_budget(struct ch_spin *sp);
/* A polling thread's sched_yield() returned after `gap_ns`.  Past
 * CH_SPIN_TAKEN_NS another thread ran a whole time slice on this core (a
 * CPU-bound one; 1.5-3 ms here): returns true, and the caller stops
 * polling and sleeps, so its work wakes it with a waker's priority instead
 * of waiting out the next slice too.  No polling then for
 * CH_SPIN_WINDOW_NS (counted in `taken`).  Not less: the runners of a
 * request's own path (the upstream, the store writer, a checkpoint pass)
 * often hold the core 200-900 us, and pausing for them took polling away
 * where it pays (at 200 us the rule fired 82 and 166 times in a 6 s c=1
 * run against the Python fake, at 1 ms 5 and 8). */
#define CH_SPIN_TAKEN_NS (1000u * 1000u)
bool ch_spin_yielded(struct ch_spin *sp, uint64_t gap_ns);

/* ------------------------------------------------------------------ */
/* Ids and crypto (core/crypto.c, core/id.c)                            */
/* ------------------------------------------------------------------ */

/* OpenSSL RAND_bytes; CH_EIO when the CSPRNG fails. */
int ch_random_bytes(void *out, size_t n);
void ch_uuid4(char out[37]); /* lowercase, hyphenated */
void ch_uuid7(char out[37]); /* the same, time-ordered (RFC 9562 version 7) */
/* prefix + `nchars` url-safe base64 chars of fresh randomness, owned. */
char *ch_random_token(const char *prefix, size_t nchars);
void ch_sha256(const void *p, size_t n, uint8_t out[32]);
void ch_sha256_hex(const void *p, size_t n, char out[65]);
void ch_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n, uint8_t out[32]);
void ch_hmac_sha256_hex(const void *key, size_t keylen, const void *p, size_t n, char out[65]);
/* Constant-time comparison of equal-length buffers (CRYPTO_memcmp). */
bool ch_ct_eq(const void *a, const void *b, size_t n);
/* Constant time over the longer of the two lengths; false if lengths differ. */
bool ch_ct_streq(const char *a, size_t alen, const char *b, size_t blen);
void ch_hex_encode(const uint8_t *p, size_t n, char *out); /* out: 2n+1 */
/* base64url without padding; out must hold 4*ceil(n/3)+1. Returns length. */
size_t ch_base64url_encode(const uint8_t *p, size_t n, char *out);
/* Standard base64 with padding (data: URLs); out must hold 4*ceil(n/3)+1. */
size_t ch_base64_encode(const uint8_t *p, size_t n, char *out);
/* Accepts base64 and base64url, with or without padding. */
int ch_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen);

/* ------------------------------------------------------------------ */
/* Limits (core/limits.c): the single table, STYLE.md 8.6               */
/* ------------------------------------------------------------------ */

enum ch_limit_id {
    CH_LIMIT_MAX_CONNECTIONS,
    CH_LIMIT_MAX_HEAD_BYTES,
    CH_LIMIT_MAX_HEADERS,
    CH_LIMIT_MAX_URI_BYTES,
    CH_LIMIT_HEAD_TIMEOUT_MS,
    CH_LIMIT_BODY_TIMEOUT_MS,
    CH_LIMIT_MAX_BODY_BYTES,
    CH_LIMIT_KEEPALIVE_TIMEOUT_MS,
    CH_LIMIT_KEEPALIVE_REQUESTS,
    CH_LIMIT_WRITE_QUEUE_SOFT_BYTES,
    CH_LIMIT_WRITE_QUEUE_SOFT_MS,
    CH_LIMIT_WRITE_QUEUE_HARD_BYTES,
    CH_LIMIT_MAX_PIPELINED,
    CH_LIMIT_SHUTDOWN_GRACE_MS,
    CH_LIMIT_STORE_WRITE_QUEUE,
    CH_LIMIT_LOOP_LAG_READY_MS,
    CH_LIMIT__COUNT
};

struct ch_limit_def {
    const char *name; /* config key under `limits.`, camelCase */
    int64_t def, min, max;
    const char *unit; /* "bytes", "ms", "count" */
    const char *doc;  /* one line for docs/configuration.md */
};

struct ch_limits {
    int64_t v[CH_LIMIT__COUNT];
};

const struct ch_limit_def *ch_limit_def_get(enum ch_limit_id id);
/* Fill with the defaults. */
void ch_limits_init(struct ch_limits *l);
/* Set by name; CH_ENOTFOUND for an unknown name, CH_EINVAL out of range. */
int ch_limits_set(struct ch_limits *l, const char *name, int64_t value, struct ch_error *err);

#define CH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CH_MAX(a, b) ((a) > (b) ? (a) : (b))
#define ch_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define CH_VERSION "0.1.0"

#endif
