/*
 * log.c: the process-wide logger.  Lines are formatted into a buffer under
 * a mutex and written to stderr by ch_log_flush(), which the loop calls
 * before it sleeps, so a busy access log costs one write(2) per loop
 * iteration.  Every line passes through ch_log_mask() so tokens, keys and
 * Authorization values never reach the log (STYLE.md 8.3 rule 9).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

#define LOG_BUF_FLUSH (64 * 1024)
#define LOG_LINE_MAX 8192

static enum ch_log_level g_level = CH_LOG_INFO;
static enum ch_log_format g_format = CH_LOG_TEXT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_buf[LOG_BUF_FLUSH + LOG_LINE_MAX + 256];
static size_t g_len;

static const char *level_name[] = {"debug", "info", "warn", "error", "off"};

/* The tail ring: slot i holds line number seq with seq % LINES == i. */
#define RING_LINE_MAX 1024
static char *g_ring[CH_LOG_RING_LINES]; /* owned, lazily allocated */
static uint16_t g_ring_len[CH_LOG_RING_LINES];
static uint64_t g_ring_next; /* sequence of the next line */

void ch_log_setup(enum ch_log_level level, enum ch_log_format fmt)
{
    g_level = level;
    g_format = fmt;
}

int ch_log_level_parse(const char *s, enum ch_log_level *out)
{
    for (int i = 0; i <= CH_LOG_OFF; i++)
        if (s && !strcmp(s, level_name[i])) {
            *out = (enum ch_log_level)i;
            return 0;
        }
    if (s && !strcmp(s, "warning")) {
        *out = CH_LOG_WARN;
        return 0;
    }
    return CH_EINVAL;
}

bool ch_log_enabled(enum ch_log_level level)
{
    return level >= g_level && level != CH_LOG_OFF;
}

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return; /* stderr gone: nothing sensible left to do */
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void)
{
    if (g_len) {
        write_all(g_buf, g_len);
        g_len = 0;
    }
}

void ch_log_flush(void)
{
    pthread_mutex_lock(&g_mu);
    flush_locked();
    pthread_mutex_unlock(&g_mu);
}

static bool is_tok_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

/* A secret prefix starts a secret unless it continues a word: after
 * '/', '=', ':', '.', '"' or '-' (a URL path, key=value, JSON) it does. */
static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Mask the secret at s[start, end) wholly: "****" (or as many stars as it
 * has characters, when shorter).  Even a few leading characters are a part
 * of the secret a log reader should not get.  Returns the bytes removed. */
static size_t mask_span(char *s, size_t len, size_t start, size_t end)
{
    size_t n = end - start;

    if (n <= 4) {
        memset(s + start, '*', n);
        return 0;
    }
    memcpy(s + start, "****", 4);
    memmove(s + start + 4, s + end, len - end);
    return n - 4;
}

static bool match_ci(const char *s, size_t len, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    if (i + n > len)
        return false;
    for (size_t k = 0; k < n; k++) {
        char a = s[i + k], b = lit[k];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/*
 * Patterns, checked at each position: prefixes that start a secret
 * (oc_tok_, sk-ant-, sk-, AIza) wherever a word does not go on before
 * them (so also in a path or after '='), and keywords after which a secret follows
 * (bearer, x-api-key:, and JSON "token"/"password"/"apiKey"/"secret" keys).
 */
#define ENCODED_TOK "oc%5ftok%5f" /* oc_tok_ percent-encoded, any case */

size_t ch_log_mask(char *s, size_t len)
{
    static const char *prefixes[] = {"oc_tok_", "sk-ant-", "sk-", "AIza", "xoxb-", "ghp_"};
    static const char *keywords[] = {
        "bearer ",         "x-api-key: ",   "x-api-key=",    "x-openclaw-token: ", "\"token\":\"",
        "\"password\":\"", "\"apikey\":\"", "\"secret\":\"", "\"localtoken\":\""};
    size_t i = 0, orig = len;

    while (i < len) {
        bool hit = false;
        for (size_t k = 0; k < CH_ARRAY_SIZE(prefixes) && !hit; k++) {
            size_t pl = strlen(prefixes[k]);
            if (i + pl <= len && memcmp(s + i, prefixes[k], pl) == 0 && (i == 0 || !is_word_char(s[i - 1]))) {
                size_t end = i + pl;
                while (end < len && is_tok_char(s[end]))
                    end++;
                if (end - i >= pl + 6) { /* the prefix stays: it names the kind, not the secret */
                    len -= mask_span(s, len, i + pl, end);
                    i += pl + 4;
                    hit = true;
                }
            }
        }
        /* A secret sent percent-encoded (oc%5Ftok%5F...) is refused once
         * decoded, but the raw path is what the access log and audit see. */
        if (!hit && match_ci(s, len, i, ENCODED_TOK) && (i == 0 || !is_word_char(s[i - 1]))) {
            size_t pl = strlen(ENCODED_TOK), end = i + pl;
            while (end < len && (is_tok_char(s[end]) || s[end] == '%'))
                end++;
            if (end - i >= pl + 6) {
                len -= mask_span(s, len, i + pl, end);
                i += pl + 4;
                hit = true;
            }
        }
        for (size_t k = 0; k < CH_ARRAY_SIZE(keywords) && !hit; k++) {
            if (match_ci(s, len, i, keywords[k])) {
                size_t start = i + strlen(keywords[k]), end = start;
                while (end < len && is_tok_char(s[end]))
                    end++;
                len -= mask_span(s, len, start, end);
                i = start + CH_MIN(end - start, (size_t)4);
                hit = true;
            }
        }
        if (!hit)
            i++;
    }
    if (len < orig)
        s[len] = '\0'; /* within the original bytes */
    return len;
}

/* Called with g_mu held.  Memory is bounded: 512 lines of at most 1 KiB. */
static void ring_put(const char *line, size_t len)
{
    size_t slot = (size_t)(g_ring_next % CH_LOG_RING_LINES);

    char *p;

    /* Exactly the line's size: a ring of typical 150-byte lines costs
     * ~75 KiB, not 512 KiB.  The system allocator, not ch_malloc: the
     * ring is bounded and lives as long as the process, and a log line
     * must not show up in a caller's byte accounting (tests compare
     * ch_alloc_live_bytes before and after an operation that logs). */
    len = CH_MIN(len, (size_t)RING_LINE_MAX);
    p = realloc(g_ring[slot], len ? len : 1);
    if (!p)
        return; /* the tail loses a line; logging goes on */
    g_ring[slot] = p;
    memcpy(p, line, len);
    g_ring_len[slot] = (uint16_t)len;
    g_ring_next++;
}

size_t ch_log_tail(uint64_t *cursor, size_t limit, size_t max_bytes, bool *reset,
                   void (*each)(const char *line, size_t len, void *data), void *data)
{
    uint64_t first, seq;
    size_t n = 0, bytes = 0;

    pthread_mutex_lock(&g_mu);
    first = g_ring_next > CH_LOG_RING_LINES ? g_ring_next - CH_LOG_RING_LINES : 0;
    *reset = *cursor < first || *cursor > g_ring_next;
    seq = *reset ? first : *cursor;
    for (; seq < g_ring_next && n < limit; seq++) {
        size_t slot = (size_t)(seq % CH_LOG_RING_LINES);
        if (!g_ring[slot])
            continue;
        if (bytes + g_ring_len[slot] > max_bytes && n > 0)
            break;
        each(g_ring[slot], g_ring_len[slot], data);
        bytes += g_ring_len[slot];
        n++;
    }
    *cursor = seq;
    pthread_mutex_unlock(&g_mu);
    return n;
}

static size_t format_prefix(char *out, size_t cap, enum ch_log_level level)
{
    char ts[32];
    int n;

    ch_time_iso8601(ch_now_ms(), ts);
    if (g_format == CH_LOG_JSON)
        n = snprintf(out, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_name[level]);
    else
        n = snprintf(out, cap, "%s %-5s ", ts, level_name[level]);
    return n < 0 ? 0 : CH_MIN((size_t)n, cap - 1);
}

static void emit(enum ch_log_level level, const char *body, size_t n, bool now)
{
    char line[LOG_LINE_MAX + 128];
    size_t len = format_prefix(line, sizeof(line), level);
    struct ch_buf b;

    if (g_format == CH_LOG_JSON) {
        /* body is a complete JSON remainder when it starts with '\x01'. */
        if (n && body[0] == '\x01') {
            n = CH_MIN(n - 1, sizeof(line) - len - 2);
            memcpy(line + len, body + 1, n);
            len += n;
        } else {
            ch_buf_init(&b, LOG_LINE_MAX);
            if (ch_buf_append_json_str(&b, body, CH_MIN(n, (size_t)LOG_LINE_MAX - 64)) == 0) {
                n = CH_MIN(b.len, sizeof(line) - len - 3);
                memcpy(line + len, b.data, n);
                len += n;
            }
            ch_buf_release(&b);
            line[len++] = '}';
        }
    } else {
        if (n && body[0] == '\x01')
            body++, n--;
        n = CH_MIN(n, sizeof(line) - len - 2);
        memcpy(line + len, body, n);
        len += n;
    }
    line[len] = '\0';
    len = ch_log_mask(line, len);
    /* len <= sizeof(line) - 2 here (every branch above caps it). */
    /* cppcheck-suppress arrayIndexOutOfBoundsCond */
    line[len++] = '\n';

    pthread_mutex_lock(&g_mu);
    ring_put(line, len - 1);
    if (g_len + len > sizeof(g_buf))
        flush_locked();
    memcpy(g_buf + g_len, line, len);
    g_len += len;
    if (now || g_len >= LOG_BUF_FLUSH || level >= CH_LOG_WARN)
        flush_locked();
    pthread_mutex_unlock(&g_mu);
}

static void vlog(enum ch_log_level level, bool now, const char *fmt, va_list ap)
{
    char body[LOG_LINE_MAX];
    int n;

    if (!now && !ch_log_enabled(level))
        return;
    n = vsnprintf(body, sizeof(body), fmt, ap);
    if (n < 0)
        return;
    emit(level, body, CH_MIN((size_t)n, sizeof(body) - 1), now);
}

void ch_log(enum ch_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, false, fmt, ap);
    va_end(ap);
}

void ch_log_now(enum ch_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, true, fmt, ap);
    va_end(ap);
}

/* Structured line.  Text: "msg k=v k=v" (values with spaces are quoted);
 * JSON: "msg", then the pairs as string members. */
void ch_log_kv(enum ch_log_level level, const char *msg, ...)
{
    struct ch_buf b;
    va_list ap;
    const char *k;

    if (!ch_log_enabled(level))
        return;
    ch_buf_init(&b, LOG_LINE_MAX - 16);
    ch_buf_append_char(&b, '\x01');
    if (g_format == CH_LOG_JSON)
        ch_buf_append_json_str(&b, msg, strlen(msg));
    else
        ch_buf_append_str(&b, msg);
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            v = "-";
        if (g_format == CH_LOG_JSON) {
            ch_buf_append_char(&b, ',');
            ch_buf_append_json_str(&b, k, strlen(k));
            ch_buf_append_char(&b, ':');
            ch_buf_append_json_str(&b, v, strlen(v));
        } else if (strpbrk(v, " \"=") || !*v) {
            ch_buf_appendf(&b, " %s=", k);
            ch_buf_append_json_str(&b, v, strlen(v));
        } else {
            ch_buf_appendf(&b, " %s=%s", k, v);
        }
    }
    va_end(ap);
    if (g_format == CH_LOG_JSON)
        ch_buf_append_char(&b, '}');
    if (b.data)
        emit(level, b.data, b.len, false);
    ch_buf_release(&b);
}
