/*
 * test_sse.c: the incremental SSE parser (providers/sse_parse.c).
 *
 * Case directories tests/unit/data/sse/<case>/ hold `input` (raw stream
 * bytes), `expect` (one line per dispatched event, `event=<type> id=<id>
 * data=<data>` with C escapes, then `retry=<ms>` when one was set and
 * `error=<code>` when the parser failed) and optionally `caps`
 * ("<max_line> <max_data>").  Every case is parsed whole, split in two at
 * every byte boundary, and one byte at a time: all must give `expect`.
 */
#include "providers_test.h"

#define SSE_DIR "tests/unit/data/sse"

struct run {
    struct tout out;
    int stop_after; /* >0: the callback returns 99 on that event */
    int seen;
};

static int on_event(const struct ch_sse_event *ev, void *data)
{
    struct run *r = data;

    tout_add(&r->out, "event=", 6);
    tout_esc(&r->out, ev->type.p, ev->type.len);
    tout_add(&r->out, " id=", 4);
    tout_esc(&r->out, ev->id.p, ev->id.len);
    tout_add(&r->out, " data=", 6);
    tout_esc(&r->out, ev->data.p, ev->data.len);
    tout_add(&r->out, "\n", 1);
    if (r->stop_after && ++r->seen == r->stop_after)
        return 99;
    return 0;
}

/* Parse `in` in the chunks given by cut points, render the result. */
static char *parse_chunks(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t max_line,
                          size_t max_data)
{
    struct ch_sse_parser p;
    struct run r = {0};
    size_t i, from = 0;
    int rc = 0;

    ch_sse_parser_init(&p, max_line, max_data, on_event, &r);
    for (i = 0; i <= ncuts && !rc; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        rc = ch_sse_parser_feed(&p, in + from, to - from);
        from = to;
    }
    /* After an error every further feed returns it, without events. */
    if (rc)
        assert_int_equal(ch_sse_parser_feed(&p, "data: x\n\n", 9), rc);
    assert_int_equal(ch_sse_parser_finish(&p), rc);
    if (p.retry_ms >= 0)
        tout_printf(&r.out, "retry=%lld\n", (long long)p.retry_ms);
    if (rc)
        tout_printf(&r.out, "error=%s\n", trc_name(rc));
    ch_sse_parser_release(&p);
    if (!r.out.p)
        tout_add(&r.out, "", 0);
    return r.out.p;
}

static void run_case(const char *name)
{
    char path[512], *in, *want, *caps, *got, what[600];
    size_t len = 0, cut, i, *cuts;
    unsigned long ml = 0, md = 0;

    snprintf(path, sizeof(path), "%s/%s/input", SSE_DIR, name);
    in = tfile_read(path, &len);
    assert_non_null(in);
    snprintf(path, sizeof(path), "%s/%s/expect", SSE_DIR, name);
    want = tfile_read(path, NULL);
    if (!want)
        fail_msg("case %s has no expect file", name);
    snprintf(path, sizeof(path), "%s/%s/caps", SSE_DIR, name);
    caps = tfile_read(path, NULL);
    if (caps)
        assert_int_equal(sscanf(caps, "%lu %lu", &ml, &md), 2);

    got = parse_chunks(in, len, NULL, 0, ml, md);
    snprintf(what, sizeof(what), "sse/%s whole", name);
    texpect_eq(what, got, want);
    free(got);

    for (cut = 0; cut <= len; cut++) {
        got = parse_chunks(in, len, &cut, 1, ml, md);
        snprintf(what, sizeof(what), "sse/%s split at %zu", name, cut);
        texpect_eq(what, got, want);
        free(got);
    }

    cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (i = 0; i < len; i++)
        cuts[i] = i;
    got = parse_chunks(in, len, cuts, len, ml, md);
    snprintf(what, sizeof(what), "sse/%s byte by byte", name);
    texpect_eq(what, got, want);
    free(got);
    free(cuts);
    free(in);
    free(want);
    free(caps);
}

static void test_cases(void **state)
{
    size_t n, i, blocks = ch_alloc_live_blocks();
    char **names = tdir_list(SSE_DIR, &n);

    (void)state;
    assert_true(n >= 15);
    for (i = 0; i < n; i++)
        run_case(names[i]);
    tnames_free(names, n);
    assert_int_equal(ch_alloc_live_blocks(), blocks);
}

/* The callback's non-zero return stops the parser and sticks. */
static void test_callback_stops(void **state)
{
    static const char in[] = "data: a\n\ndata: b\n\ndata: c\n\n";
    struct ch_sse_parser p;
    struct run r = {.stop_after = 2};

    (void)state;
    ch_sse_parser_init(&p, 0, 0, on_event, &r);
    assert_int_equal(ch_sse_parser_feed(&p, in, sizeof(in) - 1), 99);
    assert_string_equal(r.out.p, "event=message id= data=a\nevent=message id= data=b\n");
    assert_int_equal(ch_sse_parser_feed(&p, "data: d\n\n", 9), 99);
    assert_int_equal(ch_sse_parser_finish(&p), 99);
    assert_int_equal(r.seen, 2);
    ch_sse_parser_release(&p);
    tout_free(&r.out);
}

/* Data exactly at the cap passes; one byte more fails, however split. */
static void test_data_cap_edges(void **state)
{
    char in[64];
    char *got;
    size_t cut = 5;

    (void)state;
    /* "data: " + 8 bytes + "\n" + "data: " + 7 bytes: joined 8+1+7 = 16. */
    snprintf(in, sizeof(in), "data: 12345678\ndata: 1234567\n\n");
    got = parse_chunks(in, strlen(in), &cut, 1, 64, 16);
    assert_string_equal(got, "event=message id= data=12345678\\n1234567\n");
    free(got);
    snprintf(in, sizeof(in), "data: 12345678\ndata: 12345678\n\n");
    got = parse_chunks(in, strlen(in), &cut, 1, 64, 16);
    assert_string_equal(got, "error=too_large\n");
    free(got);
    /* A line of exactly max_line bytes is fine; max_line + 1 is not. */
    snprintf(in, sizeof(in), "data: 0123456789\n\n"); /* 16-byte line */
    got = parse_chunks(in, strlen(in), &cut, 1, 16, 64);
    assert_string_equal(got, "event=message id= data=0123456789\n");
    free(got);
    got = parse_chunks(in, strlen(in), &cut, 1, 15, 64);
    assert_string_equal(got, "error=too_large\n");
    free(got);
}

/* The default caps are the header's 1 MiB line and 4 MiB data. */
static void test_default_caps(void **state)
{
    size_t n = CH_SSE_MAX_LINE_BYTES + 16;
    char *in = malloc(n);
    struct ch_sse_parser p;
    struct run r = {0};

    (void)state;
    assert_non_null(in);
    memcpy(in, "data: ", 6);
    memset(in + 6, 'x', n - 6);
    ch_sse_parser_init(&p, 0, 0, on_event, &r);
    assert_int_equal(ch_sse_parser_feed(&p, in, n), CH_E_TOO_LARGE);
    ch_sse_parser_release(&p);

    /* Five 1000000-byte data lines: each fits, together they pass 4 MiB. */
    memset(in, 'y', 1000000);
    ch_sse_parser_init(&p, 0, 0, on_event, &r);
    for (int i = 0; i < 5; i++) {
        int rc;
        assert_int_equal(ch_sse_parser_feed(&p, "data:", 5), 0);
        assert_int_equal(ch_sse_parser_feed(&p, in, 1000000), 0);
        rc = ch_sse_parser_feed(&p, "\n", 1);
        assert_int_equal(rc, i < 4 ? 0 : CH_E_TOO_LARGE);
    }
    ch_sse_parser_release(&p);
    assert_null(r.out.p);
    free(in);
}

/* A parser without a callback parses and drops events. */
static void test_no_callback(void **state)
{
    struct ch_sse_parser p;

    (void)state;
    ch_sse_parser_init(&p, 0, 0, NULL, NULL);
    assert_int_equal(ch_sse_parser_feed(&p, "retry: 250\ndata: x\n\n", 20), 0);
    assert_int_equal(p.retry_ms, 250);
    assert_int_equal(ch_sse_parser_finish(&p), 0);
    ch_sse_parser_release(&p);
}

/* Allocation failure at every step: a clean CH_ENOMEM or success, no leak. */
static void test_alloc_failure(void **state)
{
    static const char in[] = "\xEF\xBB\xBF"
                             "event: a\r\nid: 7\r\ndata: one\r\ndata: two\r\n\r\n"
                             "data: three\n\n";
    size_t blocks = ch_alloc_live_blocks();
    bool ok = false;
    long n;

    (void)state;
    for (n = 1; n < 200 && !ok; n++) {
        struct ch_sse_parser p;
        struct run r = {0};
        int rc = 0;
        size_t i;

        ch_sse_parser_init(&p, 0, 0, on_event, &r);
        ch_alloc_fail_after(n);
        /* Three-byte chunks force the split-line copy path. */
        for (i = 0; i < sizeof(in) - 1 && !rc; i += 3)
            rc = ch_sse_parser_feed(&p, in + i, CH_MIN((size_t)3, sizeof(in) - 1 - i));
        ch_alloc_fail_after(0);
        assert_true(rc == 0 || rc == CH_ENOMEM);
        if (rc == 0) {
            assert_string_equal(r.out.p, "event=a id=7 data=one\\ntwo\n"
                                         "event=message id=7 data=three\n");
            ok = true;
        }
        ch_sse_parser_release(&p);
        tout_free(&r.out);
        assert_int_equal(ch_alloc_live_blocks(), blocks);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),          cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_data_cap_edges), cmocka_unit_test(test_default_caps),
        cmocka_unit_test(test_no_callback),    cmocka_unit_test(test_alloc_failure),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
