/*
 * fuzz_sse.c: libFuzzer driver for the SSE parser (providers/sse_parse.c).
 *
 * Input: byte 0 picks the chunking pattern, the rest is the stream.  The
 * stream is parsed twice, whole and in the chunks the pattern gives, and
 * both runs must dispatch the same events and end with the same result:
 * the parser's output may not depend on where the network split the
 * bytes.  Small caps (256-byte lines, 1 KiB data) make the cap paths
 * reachable.  Every event is checked against the WHATWG invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/providers.h"

struct trace {
    uint64_t hash; /* FNV-1a over every event's fields */
    size_t events;
};

static void mix(struct trace *t, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i;

    for (i = 0; i < n; i++)
        t->hash = (t->hash ^ s[i]) * 1099511628211ULL;
}

static int on_event(const struct ch_sse_event *ev, void *data)
{
    struct trace *t = data;

    /* A dispatched event has a type and never a raw line terminator in
     * its type or id (data may hold the "\n" joins). */
    if (ev->type.len == 0 || memchr(ev->type.p, '\n', ev->type.len) || memchr(ev->type.p, '\r', ev->type.len) ||
        memchr(ev->id.p, '\n', ev->id.len) || memchr(ev->id.p, '\0', ev->id.len) || ev->data.len > 1024)
        abort();
    mix(t, ev->type.p, ev->type.len);
    mix(t, "|", 1);
    mix(t, ev->id.p, ev->id.len);
    mix(t, "|", 1);
    mix(t, ev->data.p, ev->data.len);
    t->events++;
    return 0;
}

static int parse(const uint8_t *p, size_t n, uint8_t pattern, struct trace *t, int64_t *retry)
{
    struct ch_sse_parser sp;
    size_t off = 0, step;
    int rc = 0;

    t->hash = 14695981039346656037ULL;
    t->events = 0;
    ch_sse_parser_init(&sp, 256, 1024, on_event, t);
    while (off < n && !rc) {
        /* pattern 0: whole; otherwise chunks of 1..pattern bytes, varying. */
        step = pattern ? 1 + (size_t)((off * 31 + pattern) % pattern) : n;
        if (step > n - off)
            step = n - off;
        rc = ch_sse_parser_feed(&sp, p + off, step);
        off += step;
    }
    if (ch_sse_parser_finish(&sp) != rc)
        abort();
    *retry = sp.retry_ms;
    ch_sse_parser_release(&sp);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ch_alloc_install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace a, b;
    int64_t ra, rb;
    int rca, rcb;

    if (size < 1)
        return 0;
    rca = parse(data + 1, size - 1, 0, &a, &ra);
    rcb = parse(data + 1, size - 1, data[0], &b, &rb);
    if (rca != rcb || a.hash != b.hash || a.events != b.events || ra != rb)
        abort();
    return 0;
}
