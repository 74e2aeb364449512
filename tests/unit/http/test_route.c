/* Unit tests for http/route.c: the matching table, parameters, literal
 * over parameter, trailing `*`, 404 versus 405 with the allowed set, HEAD
 * implied by GET, and the Allow header format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "http/http.h"

static void h(struct ch_http_req *r, void *data)
{
    (void)r;
    (void)data;
}

static const struct ch_route routes[] = {
    /* 0 */ {CH_M_GET, "/health", h, 0, 0},
    /* 1 */ {CH_M_GET, "/api/v1/conversations", h, 0, 0},
    /* 2 */ {CH_M_POST, "/api/v1/conversations", h, 0, 0},
    /* 3 */ {CH_M_GET | CH_M_DELETE, "/api/v1/conversations/:id", h, 0, 0},
    /* 4 */ {CH_M_GET, "/api/v1/conversations/search", h, 0, 0},
    /* 5 */ {CH_M_GET, "/api/v1/conversations/:id/messages/:mid", h, 0, 0},
    /* 6 */ {CH_M_POST, "/hooks/*", h, 0, 0},
    /* 7 */ {CH_M_POST, "/hooks/agent", h, 0, 0},
    /* 8 */ {CH_M_GET, "/", h, 0, 0},
    /* 9 */ {CH_M_PUT, "/tie/:a", h, 0, 0},
    /* 10 */ {CH_M_PUT, "/tie/:b", h, 0, 0},
    /* 11 */ {CH_M_GET, "/files/:dir/*", h, 0, 0},
    /* 12 */ {CH_M_OPTIONS | CH_M_PATCH, "/opt", h, 0, 0},
};

static const struct ch_router router = {routes, sizeof(routes) / sizeof(routes[0]), NULL};

struct row {
    unsigned method;
    const char *path;
    int want;            /* CH_ROUTE_* */
    int route;           /* index on OK */
    const char *p0, *p1; /* expected params, NULL = none */
    unsigned allowed;    /* on BAD_METHOD */
};

static const struct row table[] = {
    {CH_M_GET, "/health", CH_ROUTE_OK, 0, NULL, NULL, 0},
    {CH_M_HEAD, "/health", CH_ROUTE_OK, 0, NULL, NULL, 0},
    {CH_M_POST, "/health", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_GET | CH_M_HEAD},
    {CH_M_GET, "/health/", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/healthz", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "health", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/", CH_ROUTE_OK, 8, NULL, NULL, 0},
    {CH_M_GET, "/api/v1/conversations", CH_ROUTE_OK, 1, NULL, NULL, 0},
    {CH_M_POST, "/api/v1/conversations", CH_ROUTE_OK, 2, NULL, NULL, 0},
    {CH_M_DELETE, "/api/v1/conversations", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_GET | CH_M_HEAD | CH_M_POST},
    {CH_M_GET, "/api/v1/conversations/abc", CH_ROUTE_OK, 3, "abc", NULL, 0},
    {CH_M_DELETE, "/api/v1/conversations/abc", CH_ROUTE_OK, 3, "abc", NULL, 0},
    /* The literal wins although it is declared after the parameter. */
    {CH_M_GET, "/api/v1/conversations/search", CH_ROUTE_OK, 4, NULL, NULL, 0},
    /* ... but only among routes that take the method. */
    {CH_M_DELETE, "/api/v1/conversations/search", CH_ROUTE_OK, 3, "search", NULL, 0},
    {CH_M_PUT, "/api/v1/conversations/abc", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_GET | CH_M_HEAD | CH_M_DELETE},
    {CH_M_GET, "/api/v1/conversations/", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/api/v1/conversations/a/messages/7", CH_ROUTE_OK, 5, "a", "7", 0},
    {CH_M_GET, "/api/v1/conversations/a/messages", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/api/v1/conversations/a/messages/7/x", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/api//v1/conversations", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_POST, "/hooks/agent", CH_ROUTE_OK, 7, NULL, NULL, 0},
    {CH_M_POST, "/hooks/wake", CH_ROUTE_OK, 6, "wake", NULL, 0},
    {CH_M_POST, "/hooks/a/b/c", CH_ROUTE_OK, 6, "a/b/c", NULL, 0},
    {CH_M_POST, "/hooks/", CH_ROUTE_OK, 6, "", NULL, 0},
    {CH_M_POST, "/hooks", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_GET, "/hooks/x", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_POST},
    {CH_M_PUT, "/tie/1", CH_ROUTE_OK, 9, "1", NULL, 0},
    {CH_M_GET, "/files/etc/a/b", CH_ROUTE_OK, 11, "etc", "a/b", 0},
    {CH_M_GET, "/files//a", CH_ROUTE_NOT_FOUND, -1, NULL, NULL, 0},
    {CH_M_OPTIONS, "/opt", CH_ROUTE_OK, 12, NULL, NULL, 0},
    /* No GET, so no implied HEAD. */
    {CH_M_HEAD, "/opt", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_OPTIONS | CH_M_PATCH},
    {CH_M_OTHER, "/health", CH_ROUTE_BAD_METHOD, -1, NULL, NULL, CH_M_GET | CH_M_HEAD},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct row *w = &table[i];
        struct ch_http_req r;
        unsigned allowed = 0xdead;
        int m;

        memset(&r, 0, sizeof(r));
        m = ch_router_match(&router, w->method, ch_str_from(w->path), &r, &allowed);
        if (m != w->want)
            fail_msg("row %zu (%s): got %d, want %d", i, w->path, m, w->want);
        if (m == CH_ROUTE_OK) {
            if (r.route != &routes[w->route])
                fail_msg("row %zu (%s): route %td, want %d", i, w->path, r.route - routes, w->route);
            assert_int_equal(r.param_count, (w->p0 ? 1 : 0) + (w->p1 ? 1 : 0));
            if (w->p0)
                assert_true(ch_str_eq_cstr(ch_http_req_param(&r, 0), w->p0));
            if (w->p1)
                assert_true(ch_str_eq_cstr(ch_http_req_param(&r, 1), w->p1));
        } else {
            assert_null(r.route);
        }
        if (m == CH_ROUTE_BAD_METHOD && allowed != w->allowed)
            fail_msg("row %zu (%s): allowed %#x, want %#x", i, w->path, allowed, w->allowed);
        if (m == CH_ROUTE_NOT_FOUND)
            assert_int_equal(allowed, 0xdead);
    }
}

static void test_params_out_of_range(void **state)
{
    struct ch_http_req r;
    unsigned allowed;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(ch_router_match(&router, CH_M_GET, CH_STR("/api/v1/conversations/x"), &r, &allowed), CH_ROUTE_OK);
    assert_int_equal(ch_http_req_param(&r, 1).len, 0);
    assert_non_null(ch_http_req_param(&r, 5).p);
    /* r may be NULL for a bare lookup. */
    assert_int_equal(ch_router_match(&router, CH_M_GET, CH_STR("/health"), NULL, NULL), CH_ROUTE_OK);
    /* An empty table finds nothing. */
    struct ch_router empty = {NULL, 0, NULL};
    assert_int_equal(ch_router_match(&empty, CH_M_GET, CH_STR("/"), &r, &allowed), CH_ROUTE_NOT_FOUND);
}

/* With a memo, a repeated method+path is answered from it: the same
 * verdict, route, allowed set and parameters (pointing into the new
 * path's bytes) as the full scan, for every row, repeated and in turn. */
static void test_memo(void **state)
{
    static struct ch_route_memo memo;
    const struct ch_router mr = {routes, sizeof(routes) / sizeof(routes[0]), &memo};

    (void)state;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
            const struct row *w = &table[pass == 2 ? sizeof(table) / sizeof(table[0]) - 1 - i : i];
            for (int rep = 0; rep < 2; rep++) {
                char copy[256];
                struct ch_http_req want, got;
                unsigned wa = 0xdead, ga = 0xdead;
                int wm, gm;

                snprintf(copy, sizeof(copy), "%s", w->path);
                memset(&want, 0, sizeof(want));
                memset(&got, 0, sizeof(got));
                wm = ch_router_match(&router, w->method, ch_str_from(w->path), &want, &wa);
                gm = ch_router_match(&mr, w->method, ch_str_from(copy), &got, &ga);
                assert_int_equal(gm, wm);
                assert_int_equal(ga, wa);
                assert_ptr_equal(got.route, want.route);
                assert_int_equal(got.param_count, want.param_count);
                for (size_t k = 0; k < want.param_count; k++) {
                    assert_true(ch_str_eq(got.params[k], want.params[k]));
                    assert_true(got.params[k].p >= copy && got.params[k].p <= copy + strlen(copy));
                }
            }
        }
    }
    assert_int_equal(ch_router_match(&mr, CH_M_GET, CH_STR("/health"), NULL, NULL), CH_ROUTE_OK);
    assert_int_equal(ch_router_match(&mr, CH_M_GET, CH_STR("/health"), NULL, NULL), CH_ROUTE_OK);
}

/* The matching rules segment by segment, plainly (route.c adds a literal
 * prefix pre-check in front of its own copy of them). */
static bool ref_match(const char *pat, const char *path)
{
    const char *pp = pat + 1, *sp = path + 1;

    if (pat[0] != '/' || path[0] != '/')
        return false;
    for (;;) {
        const char *pe = strchr(pp, '/'), *sq = strchr(sp, '/');
        size_t plen = pe ? (size_t)(pe - pp) : strlen(pp), slen = sq ? (size_t)(sq - sp) : strlen(sp);

        if (!pe && plen == 1 && pp[0] == '*')
            return true;
        if (plen > 0 && pp[0] == ':') {
            if (slen == 0)
                return false;
        } else if (plen != slen || memcmp(pp, sp, slen) != 0) {
            return false;
        }
        if (!pe)
            return sq == NULL;
        if (!sq)
            return false;
        pp = pe + 1;
        sp = sq + 1;
    }
}

/* Random patterns and paths over a small alphabet (so that prefixes,
 * parameters, stars and empty segments meet often) agree with ref_match. */
static void test_random_against_reference(void **state)
{
    static const char *segs[] = {"a", "b", "ab", "", ":x", "*", ":", "a:b", "*a"};
    unsigned x = 12345;

    (void)state;
    for (int k = 0; k < 200000; k++) {
        char pat[64] = "", path[64] = "";
        struct ch_route one = {CH_M_GET, pat, h, 0, 0};
        struct ch_router rt = {&one, 1, NULL};
        int np, ns;

        x = x * 1103515245u + 12345u;
        np = 1 + (int)(x >> 16) % 4;
        for (int i = 0; i < np; i++) {
            x = x * 1103515245u + 12345u;
            strcat(pat, "/");
            strcat(pat, segs[(x >> 16) % 9]);
        }
        x = x * 1103515245u + 12345u;
        ns = (int)(x >> 16) % 6;
        for (int i = 0; i < ns; i++) {
            x = x * 1103515245u + 12345u;
            if ((x >> 16) % 7 || i) /* now and then a path not starting with '/' */
                strcat(path, "/");
            strcat(path, segs[(x >> 20) % 9]);
        }
        if ((ch_router_match(&rt, CH_M_GET, ch_str_from(path), NULL, NULL) == CH_ROUTE_OK) != ref_match(pat, path))
            fail_msg("pattern %s path %s: router %d, reference %d", pat, path,
                     ch_router_match(&rt, CH_M_GET, ch_str_from(path), NULL, NULL), ref_match(pat, path));
    }
}

static void test_methods_format(void **state)
{
    char out[64];

    (void)state;
    ch_http_methods_format(CH_M_GET | CH_M_HEAD, out, sizeof(out));
    assert_string_equal(out, "GET, HEAD");
    ch_http_methods_format(CH_M_POST | CH_M_GET | CH_M_HEAD, out, sizeof(out));
    assert_string_equal(out, "GET, HEAD, POST");
    ch_http_methods_format(0xff, out, sizeof(out));
    assert_string_equal(out, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    ch_http_methods_format(CH_M_OPTIONS | CH_M_DELETE, out, sizeof(out));
    assert_string_equal(out, "DELETE, OPTIONS");
    ch_http_methods_format(0, out, sizeof(out));
    assert_string_equal(out, "");
    /* A short buffer drops whole names, never cuts one. */
    ch_http_methods_format(CH_M_GET | CH_M_HEAD | CH_M_POST, out, 10);
    assert_string_equal(out, "GET, HEAD");
    ch_http_methods_format(CH_M_GET, out, 3);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),          cmocka_unit_test(test_params_out_of_range),
        cmocka_unit_test(test_memo),           cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_methods_format),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
