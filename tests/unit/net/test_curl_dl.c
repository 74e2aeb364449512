/*
 * test_curl_dl.c: libcurl is loaded at first use (src/net/curl_dl.c).  A
 * manager that never submits makes no curl call and loads nothing; a
 * library that cannot be loaded (missing, or not libcurl) fails the
 * request with CH_EIO and a clear message, never a crash, and a later
 * attempt with the real library succeeds.  The cases run in order in one
 * process, since loading is process-wide and one-way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "net/curl_dl.h"
#include "net/curlm.h"

struct done {
    int calls;
    int rc;
};

static void on_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct done *d = data;

    (void)req;
    d->calls++;
    d->rc = res->rc;
}

static void on_closed(void *data)
{
    (*(int *)data)++;
}

static void close_and_drain(uv_loop_t *loop, struct ch_curlm *m)
{
    int closed = 0;

    ch_curlm_close(m, on_closed, &closed);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
}

/* Nothing loaded: the NULL-accepting cleanups must not touch the table. */
static void test_cleanups_before_load(void **state)
{
    (void)state;
    assert_false(ch_curl_loaded());
    assert_null(ch_curl.easy_init);
    curl_easy_cleanup(NULL);
    curl_slist_free_all(NULL);
    curl_url_cleanup(NULL);
    curl_free(NULL);
    assert_int_equal(curl_multi_cleanup(NULL), CURLM_BAD_HANDLE);
    assert_int_equal(curl_share_cleanup(NULL), CURLSHE_INVALID);
    assert_false(ch_curl_loaded());
}

/* Creating and closing a manager is all libuv: libcurl stays unloaded. */
static void test_idle_manager_loads_nothing(void **state)
{
    size_t live = ch_alloc_live_bytes();
    uv_loop_t loop;
    struct ch_curlm *m = NULL;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ch_curlm_new(&loop, NULL, &m), 0);
    assert_false(ch_curl_loaded());
    close_and_drain(&loop, m);
    assert_false(ch_curl_loaded());
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(ch_alloc_live_bytes(), live);
}

static void submit_fails_with(const char *soname, const char *want)
{
    struct ch_curlm_request r = {.url = "http://127.0.0.1:9/", .on_done = on_done};
    struct ch_error err = {0};
    struct done d = {0};
    uv_loop_t loop;
    struct ch_curlm *m = NULL;
    struct ch_curlm_req *req = NULL;

    r.data = &d;
    ch_curl_set_soname(soname);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ch_curlm_new(&loop, NULL, &m), 0);
    for (int i = 0; i < 2; i++) { /* each attempt fails the same way */
        memset(&err, 0, sizeof(err));
        assert_int_equal(ch_curlm_submit(m, &r, &req, &err), CH_EIO);
        assert_int_equal(err.code, CH_EIO);
        assert_true(strncmp(err.msg, "libcurl could not be loaded: ", 29) == 0);
        assert_non_null(strstr(err.msg, want));
        assert_null(req);
    }
    assert_false(ch_curl_loaded());
    close_and_drain(&loop, m);
    assert_int_equal(d.calls, 0); /* a refused submit never calls back */
    assert_int_equal(uv_loop_close(&loop), 0);
    ch_curl_set_soname(NULL);
}

static void test_missing_library(void **state)
{
    (void)state;
    submit_fails_with("libchela-no-such-curl.so.4", "libchela-no-such-curl.so.4");
}

/* A library that loads but is not libcurl is refused and closed again. */
static void test_not_libcurl(void **state)
{
    (void)state;
    submit_fails_with("libm.so.6", "has no curl_global_init_mem");
}

/* The real library: the first submit loads it; the transfer then runs
 * (port 9, discard, is closed here: connection refused, CH_EIO). */
static void test_load_on_first_submit(void **state)
{
    struct ch_curlm_request r = {.url = "http://127.0.0.1:9/", .on_done = on_done, .connect_timeout_ms = 2000};
    struct ch_error err = {0};
    struct done d = {0};
    uv_loop_t loop;
    struct ch_curlm *m = NULL;

    (void)state;
    r.data = &d;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ch_curlm_new(&loop, NULL, &m), 0);
    assert_false(ch_curl_loaded());
    assert_int_equal(ch_curlm_submit(m, &r, NULL, &err), 0);
    assert_true(ch_curl_loaded());
    assert_non_null(ch_curl.easy_init);
    while (d.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(d.calls, 1);
    assert_int_not_equal(d.rc, 0);
    /* Loaded once: later loads are no-ops, even with a bad name set. */
    ch_curl_set_soname("libchela-no-such-curl.so.4");
    assert_int_equal(ch_curl_load(NULL), 0);
    ch_curl_set_soname(NULL);
    close_and_drain(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    ch_curlm_global_cleanup();
    assert_false(ch_curl_loaded());
    assert_null(ch_curl.easy_init);
    /* After cleanup a load initialises again (the library stays open). */
    assert_int_equal(ch_curl_load(NULL), 0);
    assert_true(ch_curl_loaded());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cleanups_before_load), cmocka_unit_test(test_idle_manager_loads_nothing),
        cmocka_unit_test(test_missing_library),      cmocka_unit_test(test_not_libcurl),
        cmocka_unit_test(test_load_on_first_submit),
    };
    int rc;

    ch_alloc_install();
    /* Records the wish only: nothing may be loaded before a request. */
    if (ch_curlm_global_init() != 0 || ch_curl_loaded())
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ch_curlm_global_cleanup();
    return rc;
}
