/*
 * fuzz_http.c: libFuzzer driver for the HTTP request parser glue
 * (src/http/parse.c) and the request accessors, with no sockets.  The
 * first input byte picks a split size; the rest is fed as one buffer and
 * again in pieces of that size, as reads would deliver it.  Besides "no
 * crash, no leak", it aborts when an invariant breaks:
 *   - both runs complete the same messages, with the same method, target,
 *     headers and body (a transcript hash), and both fail or neither;
 *   - every slice points into the parser's head buffer; bodies stay
 *     within their cap; an error always carries a 4xx/5xx status.
 * Build: scripts/run-fuzz (clang -fsanitize=fuzzer,address,undefined,
 * this file plus every src .c, linked like the unit tests).  Seeds:
 * tests/fuzz/corpus/http/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define MAX_BODY 4096

struct transcript {
    uint64_t hash;
    int heads, dones;
    bool failed;
};

static void mix(uint64_t *h, const void *p, size_t n)
{
    *h ^= ch_hash_bytes(p, n) + 0x9e3779b97f4a7c15ULL + (*h << 6) + (*h >> 2);
}

static bool inside(const struct ch_http_parse *p, struct ch_str s)
{
    const char *b = p->head.data;

    if (s.len == 0)
        return true;
    return b && s.p >= b && s.p + s.len <= b + p->head.len;
}

static void check_request(const struct ch_http_parse *p, const struct ch_http_req *r)
{
    char q[64];
    const struct ch_str *v;
    static const struct ch_route routes[] = {
        {CH_M_GET, "/health", NULL, 0, 0},
        {CH_M_GET | CH_M_DELETE, "/api/v1/conversations/:id", NULL, 0, 0},
        {CH_M_POST, "/hooks/*", NULL, 0, 0},
    };
    static const struct ch_router router = {routes, 3, NULL};
    struct ch_http_req m = *r;
    unsigned allowed;

    if (!r->method_name || !inside(p, r->target) || !inside(p, r->query))
        abort();
    /* The path is in the target, or the "/" stand-in for an authority-only target. */
    if (!inside(p, r->path) && !ch_str_eq_cstr(r->path, "/"))
        abort();
    for (size_t i = 0; i < r->header_count; i++) {
        if (!inside(p, r->headers[i].name) || !inside(p, r->headers[i].value) || r->headers[i].name.len == 0)
            abort();
    }
    if (strlen(r->request_id) > 64 || (r->request_id[0] && !ch_http_request_id_ok(ch_str_from(r->request_id))))
        abort();
    v = ch_http_req_header(r, "content-type");
    if (v && !inside(p, *v))
        abort();
    ch_http_req_query(r, "token", q, sizeof(q));
    ch_http_req_query(r, "", q, sizeof(q));
    ch_router_match(&router, r->method, r->path, &m, &allowed);
    for (size_t i = 0; i < m.param_count; i++) {
        if (!inside(p, m.params[i]) && m.params[i].len)
            abort();
    }
}

static void record(uint64_t *h, const struct ch_http_req *r)
{
    mix(h, r->method_name, strlen(r->method_name));
    mix(h, r->target.p, r->target.len);
    for (size_t i = 0; i < r->header_count; i++) {
        mix(h, r->headers[i].name.p, r->headers[i].name.len);
        mix(h, r->headers[i].value.p, r->headers[i].value.len);
    }
    mix(h, r->body.data ? r->body.data : "", r->body.len);
}

static void run(const struct ch_limits *l, const char *data, size_t len, size_t step, struct transcript *t)
{
    struct ch_http_parse p;
    struct ch_http_req r;
    size_t off = 0;

    memset(t, 0, sizeof(*t));
    memset(&r, 0, sizeof(r));
    ch_http_parse_init(&p, l);
    ch_buf_init(&r.body, 0);
    while (off < len && !t->failed) {
        size_t n = step ? CH_MIN(step, len - off) : len - off, pos = 0;
        while (pos < n && !t->failed) {
            size_t used;
            enum ch_http_ev ev = ch_http_parse_feed(&p, data + off + pos, n - pos, &used);
            bool cont;
            const char *code, *msg;

            if (used > n - pos)
                abort();
            pos += used;
            switch (ev) {
            case CH_HTTP_EV_HEAD:
                t->heads++;
                ch_buf_release(&r.body);
                memset(&r, 0, sizeof(r));
                ch_buf_init(&r.body, 0);
                ch_http_parse_fill(&p, &r);
                check_request(&p, &r);
                if (ch_http_parse_check(&p, &r, &cont, &code, &msg) != 0) {
                    t->failed = true;
                    break;
                }
                ch_http_parse_set_body(&p, &r.body, MAX_BODY);
                break;
            case CH_HTTP_EV_DONE:
                t->dones++;
                if (r.body.len > MAX_BODY)
                    abort();
                record(&t->hash, &r);
                ch_http_parse_next(&p);
                break;
            case CH_HTTP_EV_ERROR:
                if (p.err_status < 400 || p.err_status > 599 || !p.err_code)
                    abort();
                t->failed = true;
                break;
            case CH_HTTP_EV_MORE:
                if (pos != n)
                    abort(); /* MORE means everything was taken */
                break;
            }
        }
        off += n;
    }
    ch_buf_release(&r.body);
    ch_http_parse_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ch_limits limits;
    static bool ready;
    struct transcript whole, split;
    size_t step;

    if (!ready) {
        ch_alloc_install();
        ch_limits_init(&limits);
        /* Small caps, so inputs reach them. */
        limits.v[CH_LIMIT_MAX_HEAD_BYTES] = 2048;
        limits.v[CH_LIMIT_MAX_HEADERS] = 16;
        limits.v[CH_LIMIT_MAX_URI_BYTES] = 512;
        ready = true;
    }
    if (size < 1)
        return 0;
    step = data[0] % 17 + 1;
    run(&limits, (const char *)data + 1, size - 1, 0, &whole);
    run(&limits, (const char *)data + 1, size - 1, step, &split);
    if (whole.dones != split.dones || whole.hash != split.hash || whole.failed != split.failed)
        abort();
    return 0;
}
