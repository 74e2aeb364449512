/*
 * curl_dl.h: libcurl, loaded on first use instead of linked.  Linking
 * -lcurl made the dynamic loader map Debian libcurl's whole dependency
 * tree (krb5, ldap, ssh2, nghttp2, psl, idn2...) at every start: about
 * 6 ms of a 10 ms start and ~3 MB of file-backed pages, even for a gateway
 * that never calls out (docs/performance.md).  Now the first caller of
 * ch_curl_load dlopens libcurl.so.4 and fills `ch_curl`, a table of the
 * functions chela uses; the macros below send every curl_* call in chela
 * through it, so call sites read as plain libcurl.
 *
 * Rules for every file that calls libcurl:
 *  - include this header, never <curl/curl.h> alone (without the macros
 *    a call names the real symbol, which no longer links: the build
 *    fails, so a missed call site cannot slip through);
 *  - call ch_curl_load (it is cheap once loaded) before the first curl
 *    call of a path that may run first; every function that takes a handle
 *    needs a handle, and having one means the table is filled;
 *  - curl_easy_cleanup, curl_slist_free_all, curl_url_cleanup, curl_free,
 *    curl_multi_cleanup and curl_share_cleanup accept NULL even when
 *    libcurl was never loaded, so cleanup paths need no extra care.
 * The variadic setopt/getinfo macros lose the argument checks of curl's
 * typecheck-gcc.h (that header's macros call the real symbols).
 *
 * Threading: ch_curl_load runs curl_global_init, which is not thread-safe
 * (it must not run while any other thread calls libcurl or the libraries
 * it initialises).  Only one thread per process ever calls libcurl: the
 * gateway's loop thread, or the CLI's main thread.  Keep it so.
 *
 * A second public header of the net layer (docs/architecture.md), for the
 * few places outside src/net that use libcurl's easy and URL APIs.
 */
#ifndef CH_NET_CURL_DL_H
#define CH_NET_CURL_DL_H

#include <curl/curl.h>

#include "core/core.h"

/* Oldest libcurl chela runs against: CURLOPT_PROTOCOLS_STR is 7.85.0. */
#define CH_CURL_MIN_VERSION 0x075500
/* The soname dlopen asks for (Debian's libcurl4 / libcurl4-openssl-dev). */
#define CH_CURL_SONAME "libcurl.so.4"

/* The functions chela calls, each of the exact type curl.h declares. */
struct ch_curl_api {
    __typeof__(curl_global_init_mem) *global_init_mem;
    __typeof__(curl_global_cleanup) *global_cleanup;
    __typeof__(curl_version_info) *version_info;
    __typeof__(curl_free) *free;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_reset) *easy_reset;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
    __typeof__(curl_multi_init) *multi_init;
    __typeof__(curl_multi_setopt) *multi_setopt;
    __typeof__(curl_multi_add_handle) *multi_add_handle;
    __typeof__(curl_multi_remove_handle) *multi_remove_handle;
    __typeof__(curl_multi_assign) *multi_assign;
    __typeof__(curl_multi_socket_action) *multi_socket_action;
    __typeof__(curl_multi_info_read) *multi_info_read;
    __typeof__(curl_multi_cleanup) *multi_cleanup;
    __typeof__(curl_multi_strerror) *multi_strerror;
    __typeof__(curl_share_init) *share_init;
    __typeof__(curl_share_setopt) *share_setopt;
    __typeof__(curl_share_cleanup) *share_cleanup;
    __typeof__(curl_share_strerror) *share_strerror;
    __typeof__(curl_url) *url;
    __typeof__(curl_url_set) *url_set;
    __typeof__(curl_url_get) *url_get;
    __typeof__(curl_url_cleanup) *url_cleanup;
    __typeof__(curl_url_strerror) *url_strerror;
};

/* Filled by ch_curl_load, all at once; all NULL before.  Read-only. */
extern struct ch_curl_api ch_curl;

/*
 * Make libcurl usable: on the first call dlopen CH_CURL_SONAME (RTLD_NOW |
 * RTLD_LOCAL), resolve every function of struct ch_curl_api, check the
 * version, then curl_global_init_mem with chela's allocator (ch_malloc,
 * ch_free, ch_realloc, ch_strdup, ch_calloc, the four that allocate
 * wrapped to count failures), which must precede any other
 * curl call.  Later calls return 0 at once; after a failure the next call
 * tries again.  libcurl is never unloaded (OpenSSL keeps exit handlers in
 * it).  Call only from the one thread that uses libcurl (see above).
 * Returns 0, or CH_EIO with err saying "libcurl could not be loaded: ..."
 * (err may be NULL).
 */
int ch_curl_load(struct ch_error *err);
/* True once ch_curl_load has succeeded (and no cleanup since). */
bool ch_curl_loaded(void);
/* How many allocations libcurl asked chela's allocator for and did not
 * get, since the process started.  A CURLE_OUT_OF_MEMORY while this stood
 * still was one of curl's own size caps, met by what a server sent. */
unsigned long ch_curl_alloc_failures(void);
/* Tests: dlopen soname (a name or a path) instead of CH_CURL_SONAME from
 * the next load attempt on; NULL restores the default.  Borrowed: must
 * outlive the loading.  No effect once libcurl is open. */
void ch_curl_set_soname(const char *soname);

/* ------------------------------------------------------------------ */
/* libcurl's names, through the table                                  */
/* ------------------------------------------------------------------ */

static inline void ch_curl_easy_cleanup_(CURL *h)
{
    if (h)
        ch_curl.easy_cleanup(h);
}
static inline void ch_curl_slist_free_all_(struct curl_slist *l)
{
    if (l)
        ch_curl.slist_free_all(l);
}
static inline void ch_curl_url_cleanup_(CURLU *u)
{
    if (u)
        ch_curl.url_cleanup(u);
}
static inline void ch_curl_free_(void *p)
{
    if (p)
        ch_curl.free(p);
}
static inline CURLMcode ch_curl_multi_cleanup_(CURLM *m)
{
    return m ? ch_curl.multi_cleanup(m) : CURLM_BAD_HANDLE;
}
static inline CURLSHcode ch_curl_share_cleanup_(CURLSH *s)
{
    return s ? ch_curl.share_cleanup(s) : CURLSHE_INVALID;
}

/* curl/typecheck-gcc.h defines these four as checking macros. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#undef curl_share_setopt

#define curl_free(p) ch_curl_free_(p)
#define curl_easy_init() ch_curl.easy_init()
#define curl_easy_setopt(h, opt, val) ch_curl.easy_setopt(h, opt, val)
#define curl_easy_getinfo(h, info, out) ch_curl.easy_getinfo(h, info, out)
#define curl_easy_perform(h) ch_curl.easy_perform(h)
#define curl_easy_cleanup(h) ch_curl_easy_cleanup_(h)
#define curl_easy_reset(h) ch_curl.easy_reset(h)
#define curl_easy_strerror(cc) ch_curl.easy_strerror(cc)
#define curl_slist_append(l, s) ch_curl.slist_append(l, s)
#define curl_slist_free_all(l) ch_curl_slist_free_all_(l)
#define curl_multi_init() ch_curl.multi_init()
#define curl_multi_setopt(m, opt, val) ch_curl.multi_setopt(m, opt, val)
#define curl_multi_add_handle(m, h) ch_curl.multi_add_handle(m, h)
#define curl_multi_remove_handle(m, h) ch_curl.multi_remove_handle(m, h)
#define curl_multi_assign(m, fd, p) ch_curl.multi_assign(m, fd, p)
#define curl_multi_socket_action(m, fd, ev, running) ch_curl.multi_socket_action(m, fd, ev, running)
#define curl_multi_info_read(m, left) ch_curl.multi_info_read(m, left)
#define curl_multi_cleanup(m) ch_curl_multi_cleanup_(m)
#define curl_multi_strerror(mc) ch_curl.multi_strerror(mc)
#define curl_share_init() ch_curl.share_init()
#define curl_share_setopt(s, opt, val) ch_curl.share_setopt(s, opt, val)
#define curl_share_cleanup(s) ch_curl_share_cleanup_(s)
#define curl_share_strerror(sc) ch_curl.share_strerror(sc)
#define curl_url() ch_curl.url()
#define curl_url_set(u, part, s, flags) ch_curl.url_set(u, part, s, flags)
#define curl_url_get(u, part, out, flags) ch_curl.url_get(u, part, out, flags)
#define curl_url_cleanup(u) ch_curl_url_cleanup_(u)
#define curl_url_strerror(uc) ch_curl.url_strerror(uc)

#endif
