/*
 * test_pump.c: the frame pump (src/ws/pump.c) with no sockets.
 *
 * Case directories tests/unit/data/ws/<case>/: `input` describes the
 * client's bytes after the handshake, one frame a line (below), and
 * `expect` is the transcript: each message delivered, each frame the
 * pump wrote, the final state and close code.  Every case runs twice,
 * fed whole and then one byte at a time, and both transcripts must match
 * `expect`.  The handler echoes every message, so echoes show up as
 * frames written.  Also: the Sec-WebSocket-Accept vector of RFC 6455,
 * close reasons cut at a UTF-8 boundary, and a fail-allocation-N loop.
 *
 * input lines ('#' starts a comment; PAYLOAD is "C-escaped" or *N<char>):
 *   max N | reason "..."          options, before the frames
 *   text PAYLOAD                  masked final text frame
 *   frame B0 PAYLOAD              masked frame, first byte B0 (hex)
 *   unmasked B0 PAYLOAD           the same, not masked
 *   announce B0 LEN PAYLOAD       masked header claiming LEN, then PAYLOAD
 *   close CODE PAYLOAD            masked close frame (CODE 0: no code)
 *   raw HEX...                    bytes as they are
 *
 * `test_pump --corpus DIR` writes each case's bytes to DIR/<case> (the
 * seeds of tests/fuzz/fuzz_ws.c) and exits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ws/internal.h"

#define DATA_DIR "tests/unit/data/ws"

struct run {
    struct ch_ws_pump p;
    struct ch_buf out; /* frames the pump wrote */
    struct ch_buf log; /* the transcript */
};

static void escape(struct ch_buf *b, const char *p, size_t n)
{
    ch_buf_append_char(b, '"');
    for (size_t i = 0; i < n && i < 40; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            ch_buf_append_char(b, (char)ch);
        else
            ch_buf_appendf(b, "\\x%02x", ch);
    }
    ch_buf_appendf(b, "\"%s", n > 40 ? "..." : "");
}

static int run_write(void *data, const void *p, size_t n)
{
    struct run *r = data;
    return ch_buf_append(&r->out, p, n);
}

static void run_text(void *data, const char *p, size_t n)
{
    struct run *r = data;

    ch_buf_appendf(&r->log, "text %zu ", n);
    escape(&r->log, p, n);
    ch_buf_append_char(&r->log, '\n');
    ch_ws_pump_send_text(&r->p, p, n);
}

static void run_pong(void *data)
{
    struct run *r = data;
    ch_buf_append_str(&r->log, "pong received\n");
}

static const struct ch_ws_pump_ops run_ops = {run_write, run_text, run_pong};

/* Render the server's frames; a masked one or a torn one is a failure. */
static void render_out(struct run *r)
{
    const uint8_t *b = (const uint8_t *)r->out.data;
    size_t off = 0, n = r->out.len;
    static const char *const names[16] = {"cont",  "text", "binary", "op3",  "op4",  "op5",  "op6",  "op7",
                                          "close", "ping", "pong",   "op11", "op12", "op13", "op14", "op15"};

    while (off < n) {
        uint64_t len;
        size_t hl = 2;

        assert_true(n - off >= 2);
        assert_int_equal(b[off + 1] & 0x80, 0); /* a server never masks */
        assert_int_equal(b[off] & 0x70, 0);     /* nor sets RSV bits */
        len = b[off + 1] & 0x7f;
        if (len >= 126) {
            hl = len == 126 ? 4 : 10;
            assert_true(n - off >= hl);
            len = 0;
            for (size_t i = 2; i < hl; i++)
                len = len << 8 | b[off + i];
        }
        assert_true(n - off - hl >= len);
        ch_buf_appendf(&r->log, "out %s%s %" PRIu64, names[b[off] & 0x0f], b[off] & 0x80 ? "" : " nofin", len);
        if ((b[off] & 0x0f) == 8 && len >= 2) {
            ch_buf_appendf(&r->log, " %u ", b[off + hl] << 8 | b[off + hl + 1]);
            escape(&r->log, (const char *)b + off + hl + 2, (size_t)len - 2);
        } else if ((b[off] & 0x0f) >= 8) {
            ch_buf_append_char(&r->log, ' ');
            escape(&r->log, (const char *)b + off + hl, (size_t)len);
        }
        ch_buf_append_char(&r->log, '\n');
        off += hl + (size_t)len;
    }
}

/* Feed bytes in pieces of `piece` (0: whole); returns the transcript. */
static char *run_case(const struct ch_buf *in, size_t piece, size_t max, const char *reason)
{
    struct run r;

    ch_buf_init(&r.out, 64 << 20);
    ch_buf_init(&r.log, 1 << 20);
    assert_int_equal(ch_ws_pump_init(&r.p, max, &run_ops, &r), 0);
    if (reason)
        r.p.too_big_reason = reason; /* outlives the pump */
    if (piece == 0) {
        ch_ws_pump_feed(&r.p, in->data, in->len);
    } else {
        for (size_t off = 0; off < in->len; off += piece)
            ch_ws_pump_feed(&r.p, in->data + off, CH_MIN(piece, in->len - off));
    }
    render_out(&r);
    ch_buf_appendf(&r.log, "state %s\ncode %u ", ch_ws_pump_is_done(&r.p) ? "done" : "open", r.p.close_code);
    escape(&r.log, r.p.close_reason, strlen(r.p.close_reason));
    ch_buf_append_char(&r.log, '\n');
    ch_ws_pump_release(&r.p);
    ch_buf_release(&r.out);
    return ch_buf_detach(&r.log, NULL);
}

/* ---------------------------------------------------------------- case input */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* "C-escaped" or *N<char>: appended to out; returns the rest of the line. */
static const char *parse_payload(const char *s, struct ch_buf *out)
{
    s = skip_ws(s);
    if (*s == '*') {
        char *end;
        unsigned long n = strtoul(s + 1, &end, 10);
        for (unsigned long i = 0; i < n; i++)
            assert_int_equal(ch_buf_append_char(out, *end), 0);
        return end + 1;
    }
    assert_int_equal(*s, '"');
    for (s++; *s && *s != '"'; s++) {
        char ch = *s;
        if (ch == '\\') {
            s++;
            if (*s == 'x') {
                char hex[3] = {s[1], s[2], 0};
                ch = (char)strtoul(hex, NULL, 16);
                s += 2;
            } else {
                ch = *s == 'n' ? '\n' : *s;
            }
        }
        assert_int_equal(ch_buf_append_char(out, ch), 0);
    }
    assert_int_equal(*s, '"');
    return s + 1;
}

static void add_frame(struct ch_buf *in, unsigned b0, bool masked, uint64_t announce, const struct ch_buf *pl)
{
    static const uint8_t key[4] = {0xa1, 0x5e, 0x07, 0x3c};
    uint64_t len = announce != UINT64_MAX ? announce : pl->len;

    ch_buf_append_char(in, (char)b0);
    if (len < 126) {
        ch_buf_append_char(in, (char)((masked ? 0x80 : 0) | len));
    } else if (len < 65536) {
        ch_buf_append_char(in, (char)((masked ? 0x80 : 0) | 126));
        ch_buf_append_char(in, (char)(len >> 8));
        ch_buf_append_char(in, (char)len);
    } else {
        ch_buf_append_char(in, (char)((masked ? 0x80 : 0) | 127));
        for (int i = 7; i >= 0; i--)
            ch_buf_append_char(in, (char)(len >> (8 * i)));
    }
    if (masked)
        ch_buf_append(in, key, 4);
    for (size_t i = 0; i < pl->len; i++)
        ch_buf_append_char(in, (char)(pl->data[i] ^ (masked ? key[i % 4] : 0)));
}

static void parse_input(const char *path, struct ch_buf *in, size_t *max, char *reason)
{
    char line[4096];
    FILE *f = fopen(path, "r");

    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        struct ch_buf pl;
        char word[16];
        unsigned b0 = 0, code = 0;
        unsigned long long announce = UINT64_MAX;
        int used = 0;

        if (line[0] == '#' || line[0] == '\n' || sscanf(line, "%15s%n", word, &used) != 1)
            continue;
        ch_buf_init(&pl, 16 << 20);
        if (strcmp(word, "max") == 0) {
            *max = strtoul(line + used, NULL, 10);
        } else if (strcmp(word, "reason") == 0) {
            parse_payload(line + used, &pl);
            snprintf(reason, CH_WS_MAX_REASON + 1, "%s", pl.data ? pl.data : "");
        } else if (strcmp(word, "text") == 0) {
            parse_payload(line + used, &pl);
            add_frame(in, 0x81, true, UINT64_MAX, &pl);
        } else if (strcmp(word, "frame") == 0 || strcmp(word, "unmasked") == 0) {
            int n = 0;
            assert_int_equal(sscanf(line + used, "%x%n", &b0, &n), 1);
            parse_payload(line + used + n, &pl);
            add_frame(in, b0, word[0] == 'f', UINT64_MAX, &pl);
        } else if (strcmp(word, "announce") == 0) {
            int n = 0;
            assert_int_equal(sscanf(line + used, "%x %llu%n", &b0, &announce, &n), 2);
            parse_payload(line + used + n, &pl);
            add_frame(in, b0, true, announce, &pl);
        } else if (strcmp(word, "close") == 0) {
            struct ch_buf body;
            int n = 0;
            assert_int_equal(sscanf(line + used, "%u%n", &code, &n), 1);
            ch_buf_init(&body, 1024);
            if (code) {
                ch_buf_append_char(&body, (char)(code >> 8));
                ch_buf_append_char(&body, (char)code);
            }
            parse_payload(line + used + n, &body);
            add_frame(in, 0x88, true, UINT64_MAX, &body);
            ch_buf_release(&body);
        } else if (strcmp(word, "raw") == 0) {
            char *s = line + used, *end;
            for (unsigned long v = strtoul(s, &end, 16); end != s; v = strtoul(s, &end, 16)) {
                ch_buf_append_char(in, (char)v);
                s = end;
            }
        } else {
            fail_msg("%s: unknown line %s", path, line);
        }
        ch_buf_release(&pl);
    }
    fclose(f);
}

static char *read_file(const char *path)
{
    struct ch_buf b;
    char tmp[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    if (!f)
        return NULL;
    ch_buf_init(&b, 1 << 20);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        ch_buf_append(&b, tmp, n);
    fclose(f);
    if (b.len == 0) {
        ch_buf_release(&b);
        return ch_strdup("");
    }
    return ch_buf_detach(&b, NULL);
}

/* Calls fn for each case directory, in name order. */
static int for_each_case(void (*fn)(const char *name, void *arg), void *arg)
{
    struct dirent **list;
    int n = scandir(DATA_DIR, &list, NULL, alphasort), count = 0;

    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        if (list[i]->d_name[0] != '.') {
            fn(list[i]->d_name, arg);
            count++;
        }
        free(list[i]); /* scandir's memory comes from libc */
    }
    free(list);
    return count;
}

static void case_bytes(const char *name, struct ch_buf *in, size_t *max, char *reason)
{
    char path[512];

    snprintf(path, sizeof(path), DATA_DIR "/%s/input", name);
    ch_buf_init(in, 64 << 20);
    *max = 1 << 20;
    reason[0] = '\0';
    parse_input(path, in, max, reason);
}

static void check_case(const char *name, void *arg)
{
    struct ch_buf in;
    size_t max;
    char reason[CH_WS_MAX_REASON + 1], path[512];
    char *whole, *bytewise, *expect;

    case_bytes(name, &in, &max, reason);
    whole = run_case(&in, 0, max, reason[0] ? reason : NULL);
    bytewise = run_case(&in, 1, max, reason[0] ? reason : NULL);
    snprintf(path, sizeof(path), DATA_DIR "/%s/expect", name);
    if (getenv("CH_UPDATE_EXPECT")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(whole, f);
        fclose(f);
    }
    expect = read_file(path);
    if (!expect || strcmp(whole, expect) != 0)
        fail_msg("case %s, fed whole:\n%s--- expected:\n%s", name, whole, expect ? expect : "(no expect file)\n");
    if (strcmp(bytewise, expect) != 0)
        fail_msg("case %s, fed byte by byte:\n%s--- expected:\n%s", name, bytewise, expect);
    ch_free(whole);
    ch_free(bytewise);
    ch_free(expect);
    ch_buf_release(&in);
}

static void test_cases(void **state)
{
    size_t base = ch_alloc_live_bytes();

    assert_true(for_each_case(check_case, NULL) >= 20);
    assert_int_equal(ch_alloc_live_bytes(), base);
}

/* ---------------------------------------------------------------- small units */

static void test_accept_key(void **state)
{
    char out[29];

    /* RFC 6455 section 1.3. */
    assert_int_equal(ch_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ch_ws_accept_key("x", 100, out), CH_EINVAL);
}

static void test_reason_copy(void **state)
{
    char out[8];

    ch_ws_reason_copy(out, 7, "abcdefghij");
    assert_string_equal(out, "abcdefg");
    /* "ab" then three 2-byte characters: the third would straddle 7. */
    ch_ws_reason_copy(out, 7, "ab\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_string_equal(out, "ab\xc3\xa9\xc3\xa9");
    ch_ws_reason_copy(out, 7, NULL);
    assert_string_equal(out, "");
}

/* Every allocation the pump makes may fail: the result is the echo or a
 * close 1011, never a crash or a leak. */
static void test_alloc_failure(void **state)
{
    struct ch_buf in, pl;
    char *big = ch_malloc(3000);
    size_t base;
    bool done = false;

    memset(big, 'z', 3000);
    ch_buf_init(&in, 1 << 20);
    ch_buf_init(&pl, 1 << 20);
    ch_buf_append(&pl, big, 1000);
    add_frame(&in, 0x01, true, UINT64_MAX, &pl);
    add_frame(&in, 0x00, true, UINT64_MAX, &pl);
    add_frame(&in, 0x80, true, UINT64_MAX, &pl);
    base = ch_alloc_live_bytes();
    for (long n = 1; n < 64 && !done; n++) {
        struct run r;

        ch_buf_init(&r.out, 1 << 20);
        ch_buf_init(&r.log, 1 << 20);
        assert_int_equal(ch_buf_reserve(&r.out, 8192), 0);
        assert_int_equal(ch_buf_reserve(&r.log, 8192), 0);
        assert_int_equal(ch_ws_pump_init(&r.p, 1 << 20, &run_ops, &r), 0);
        ch_alloc_fail_after(n);
        ch_ws_pump_feed(&r.p, in.data, in.len);
        ch_alloc_fail_after(0);
        if (r.p.close_code == 0) {
            assert_int_equal(r.p.messages_in, 1);
            assert_true(r.out.len > 3000);
            done = true;
        } else {
            assert_int_equal(r.p.close_code, CH_WS_CLOSE_INTERNAL);
            assert_string_equal(r.p.close_reason, "out of memory");
            assert_true(ch_ws_pump_is_done(&r.p));
        }
        ch_ws_pump_release(&r.p);
        ch_buf_release(&r.out);
        ch_buf_release(&r.log);
        assert_int_equal(ch_alloc_live_bytes(), base);
    }
    assert_true(done);
    ch_buf_release(&in);
    ch_buf_release(&pl);
    ch_free(big);
}

/* wslay's context (8.5 KiB of libc memory) is held only mid-frame,
 * mid-message and from a close on; text and pings are framed by the pump
 * with the header sizes RFC 6455 5.2 asks for. */
static void test_ctx_lifetime(void **state)
{
    struct ch_buf in, pl, frag;
    struct run r;
    char *big = ch_malloc(70000);

    memset(big, 'y', 70000);
    ch_buf_init(&in, 1 << 20);
    ch_buf_init(&pl, 1 << 20);
    ch_buf_init(&frag, 1 << 20);
    ch_buf_init(&r.out, 1 << 20);
    ch_buf_init(&r.log, 1 << 20);
    assert_int_equal(ch_ws_pump_init(&r.p, 1 << 20, &run_ops, &r), 0);
    assert_null(r.p.ctx);
    assert_int_equal(ch_ws_pump_memory_bytes(&r.p), 0);
    assert_true(ch_ws_pump_want_read(&r.p));
    assert_false(ch_ws_pump_is_done(&r.p));

    /* A whole message: delivered, echoed, nothing held after. */
    ch_buf_append_str(&pl, "hello");
    add_frame(&in, 0x81, true, UINT64_MAX, &pl);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data, in.len), 0);
    assert_int_equal(r.p.messages_in, 1);
    assert_null(r.p.ctx);
    assert_int_equal(r.out.len, 7);
    assert_memory_equal(r.out.data, "\x81\x05hello", 7);

    /* Part of a header, then the rest: held in between. */
    ch_buf_reset(&r.out);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data, 1), 0);
    assert_non_null(r.p.ctx);
    assert_int_equal(ch_ws_pump_memory_bytes(&r.p), CH_WS_WSLAY_CTX_BYTES);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data + 1, in.len - 1), 0);
    assert_int_equal(r.p.messages_in, 2);
    assert_null(r.p.ctx);

    /* A fragmented message: held from the first fragment to the last,
     * across a ping in the middle (answered). */
    ch_buf_reset(&r.out);
    ch_buf_reset(&in);
    ch_buf_append_str(&frag, "ab");
    add_frame(&in, 0x01, true, UINT64_MAX, &frag);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data, in.len), 0);
    assert_non_null(r.p.ctx);
    ch_buf_reset(&in);
    add_frame(&in, 0x89, true, UINT64_MAX, &frag);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data, in.len), 0);
    assert_non_null(r.p.ctx);
    assert_int_equal(r.out.len, 4);
    assert_memory_equal(r.out.data,
                        "\x8a\x02"
                        "ab",
                        4);
    ch_buf_reset(&in);
    add_frame(&in, 0x80, true, UINT64_MAX, &frag);
    assert_int_equal(ch_ws_pump_feed(&r.p, in.data, in.len), 0);
    assert_int_equal(r.p.messages_in, 3);
    assert_null(r.p.ctx);
    assert_memory_equal(r.out.data + 4,
                        "\x81\x04"
                        "abab",
                        6);

    /* Sends without a context: 16-bit and 64-bit lengths, a ping. */
    ch_buf_reset(&r.out);
    assert_int_equal(ch_ws_pump_send_text(&r.p, big, 300), 0);
    assert_memory_equal(r.out.data, "\x81\x7e\x01\x2c", 4);
    assert_int_equal(r.out.len, 304);
    ch_buf_reset(&r.out);
    assert_int_equal(ch_ws_pump_send_text(&r.p, big, 70000), 0);
    assert_memory_equal(r.out.data, "\x81\x7f\0\0\0\0\0\x01\x11\x70", 10);
    assert_int_equal(r.out.len, 70010);
    ch_buf_reset(&r.out);
    assert_int_equal(ch_ws_pump_ping(&r.p), 0);
    assert_memory_equal(r.out.data, "\x89\0", 2);
    assert_null(r.p.ctx);
    assert_int_equal(r.p.messages_out, 5);

    /* A close made without a context: wslay's is made and kept. */
    ch_buf_reset(&r.out);
    ch_ws_pump_close(&r.p, 1000, "bye");
    assert_non_null(r.p.ctx);
    assert_memory_equal(r.out.data,
                        "\x88\x05\x03\xe8"
                        "bye",
                        7);
    assert_int_equal(ch_ws_pump_send_text(&r.p, "x", 1), CH_ECLOSED);
    assert_true(ch_ws_pump_is_done(&r.p));

    ch_ws_pump_release(&r.p);
    ch_buf_release(&r.out);
    ch_buf_release(&r.log);
    ch_buf_release(&in);
    ch_buf_release(&pl);
    ch_buf_release(&frag);
    ch_free(big);
}

static void write_seed(const char *name, void *arg)
{
    struct ch_buf in;
    size_t max;
    char reason[CH_WS_MAX_REASON + 1], path[512];
    FILE *f;

    case_bytes(name, &in, &max, reason);
    snprintf(path, sizeof(path), "%s/%s", (const char *)arg, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    /* fuzz_ws.c's two option bytes: the cap in 16-byte units (0: 1 MiB)
     * and the piece size (0: whole). */
    fputc(max >= (1 << 20) ? 0 : (int)CH_MAX(CH_MIN(max / 16, 255), 1), f);
    fputc(0, f);
    fwrite(in.data, 1, in.len, f);
    fclose(f);
    ch_buf_release(&in);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),         cmocka_unit_test(test_accept_key),   cmocka_unit_test(test_reason_copy),
        cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_ctx_lifetime),
    };
    char warm[29];

    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    ch_ws_accept_key("k", 1, warm); /* OpenSSL's one-time SHA-1 setup */
    if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
        return for_each_case(write_seed, argv[2]) > 0 ? 0 : 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
