/*
 * curl_dl.c: loading libcurl at first use (see curl_dl.h for why) and the
 * process-wide curl_global_init_mem/cleanup.  Loading is all or nothing:
 * the symbols go into a local table that is copied to `ch_curl` only once
 * every one resolved, the version is new enough and global init worked,
 * so a half-loaded libcurl is never callable.  All of it runs on the one
 * thread that uses libcurl; nothing here locks.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "net/curl_dl.h"
#include "net/curlm.h"

struct ch_curl_api ch_curl;

static void *lib;          /* the dlopen handle; never closed */
static bool global_done;   /* curl_global_init_mem succeeded, no cleanup since */
static bool global_wanted; /* ch_curlm_global_init was called */
static const char *soname; /* tests' override of CH_CURL_SONAME; borrowed */
/* Allocations libcurl asked for and did not get.  Atomic: curl's resolver
 * threads allocate too. */
static atomic_ulong alloc_failures;

/* chela's allocator as libcurl's, counting failures: curl 7.88 reports a
 * response that breaks one of its own caps (a header line over 100 KiB, a
 * chunk trailer over 4 KiB) as CURLE_OUT_OF_MEMORY too, and only this
 * count tells the two apart (ch_curl_alloc_failures). */
static void *curl_malloc(size_t n)
{
    void *p = ch_malloc(n);

    if (!p)
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
    return p;
}

static void *curl_calloc(size_t count, size_t n)
{
    void *p = ch_calloc(count, n);

    if (!p)
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
    return p;
}

static void *curl_realloc(void *old, size_t n)
{
    void *p = ch_realloc(old, n);

    /* realloc(p, 0) frees and returns NULL: not a failure. */
    if (!p && n)
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
    return p;
}

static char *curl_strdup(const char *s)
{
    char *p = ch_strdup(s);

    if (!p && s)
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
    return p;
}

unsigned long ch_curl_alloc_failures(void)
{
    return atomic_load_explicit(&alloc_failures, memory_order_relaxed);
}

#define SYM(field, name)                                                                                               \
    {                                                                                                                  \
        name, offsetof(struct ch_curl_api, field)                                                                      \
    }
static const struct {
    const char *name;
    size_t off;
} syms[] = {
    SYM(global_init_mem, "curl_global_init_mem"),
    SYM(global_cleanup, "curl_global_cleanup"),
    SYM(version_info, "curl_version_info"),
    SYM(free, "curl_free"),
    SYM(easy_init, "curl_easy_init"),
    SYM(easy_setopt, "curl_easy_setopt"),
    SYM(easy_getinfo, "curl_easy_getinfo"),
    SYM(easy_perform, "curl_easy_perform"),
    SYM(easy_cleanup, "curl_easy_cleanup"),
    SYM(easy_reset, "curl_easy_reset"),
    SYM(easy_strerror, "curl_easy_strerror"),
    SYM(slist_append, "curl_slist_append"),
    SYM(slist_free_all, "curl_slist_free_all"),
    SYM(multi_init, "curl_multi_init"),
    SYM(multi_setopt, "curl_multi_setopt"),
    SYM(multi_add_handle, "curl_multi_add_handle"),
    SYM(multi_remove_handle, "curl_multi_remove_handle"),
    SYM(multi_assign, "curl_multi_assign"),
    SYM(multi_socket_action, "curl_multi_socket_action"),
    SYM(multi_info_read, "curl_multi_info_read"),
    SYM(multi_cleanup, "curl_multi_cleanup"),
    SYM(multi_strerror, "curl_multi_strerror"),
    SYM(share_init, "curl_share_init"),
    SYM(share_setopt, "curl_share_setopt"),
    SYM(share_cleanup, "curl_share_cleanup"),
    SYM(share_strerror, "curl_share_strerror"),
    SYM(url, "curl_url"),
    SYM(url_set, "curl_url_set"),
    SYM(url_get, "curl_url_get"),
    SYM(url_cleanup, "curl_url_cleanup"),
    SYM(url_strerror, "curl_url_strerror"),
};
#undef SYM
/* Every field of the table is in syms: a new field must be resolved too. */
_Static_assert(sizeof(syms) / sizeof(syms[0]) * sizeof(void (*)(void)) == sizeof(struct ch_curl_api),
               "struct ch_curl_api and syms[] differ");

/* dlopen and resolve into *api.  A good handle stays open even if global
 * init then fails (the next attempt reuses it); a library without the
 * symbols or too old is closed again. */
static int resolve(struct ch_curl_api *api, struct ch_error *err)
{
    const curl_version_info_data *v;
    int rc;

    if (!lib) {
        dlerror();
        lib = dlopen(soname ? soname : CH_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char *why = dlerror();
            return ch_error_set(err, CH_EIO, "libcurl could not be loaded: %s", why ? why : CH_CURL_SONAME);
        }
    }
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        void *p;

        dlerror();
        p = dlsym(lib, syms[i].name);
        if (!p) {
            rc = ch_error_set(err, CH_EIO, "libcurl could not be loaded: %s has no %s",
                              soname ? soname : CH_CURL_SONAME, syms[i].name);
            goto fail;
        }
        /* POSIX guarantees a void * from dlsym converts to the function's
         * pointer type; memcpy avoids a type-punned store. */
        memcpy((char *)api + syms[i].off, &p, sizeof(p));
    }
    v = api->version_info(CURLVERSION_NOW);
    if (v && (unsigned)v->version_num >= CH_CURL_MIN_VERSION)
        return 0;
    rc = ch_error_set(err, CH_EIO, "libcurl could not be loaded: version %s is older than %d.%d.%d",
                      v && v->version ? v->version : "?", CH_CURL_MIN_VERSION >> 16, (CH_CURL_MIN_VERSION >> 8) & 0xff,
                      CH_CURL_MIN_VERSION & 0xff);
fail:
    /* Not the library we need: let a later attempt open another. */
    dlclose(lib);
    lib = NULL;
    return rc;
}

int ch_curl_load(struct ch_error *err)
{
    struct ch_curl_api api;
    CURLcode cc;
    int rc;

    if (global_done)
        return 0;
    memset(&api, 0, sizeof(api));
    /* Not logged here: each caller reports err in its own terms. */
    rc = resolve(&api, err);
    if (rc)
        return rc;
    /* Before any other curl call.  The wrappers above are chela's
     * allocator plus a failure count; ch_realloc(p, 0) frees and returns
     * NULL, as curl expects of realloc.  ch_alloc_install() has already
     * given OpenSSL our allocator, so curl initialising OpenSSL changes
     * nothing there. */
    cc = api.global_init_mem(CURL_GLOBAL_ALL, curl_malloc, ch_free, curl_realloc, curl_strdup, curl_calloc);
    if (cc != CURLE_OK)
        return ch_error_set(err, CH_EIO, "libcurl could not be loaded: curl_global_init_mem: %s",
                            api.easy_strerror(cc));
    ch_curl = api;
    global_done = true;
    ch_log_debug("libcurl %s loaded%s", api.version_info(CURLVERSION_NOW)->version,
                 global_wanted ? "" : " (before ch_curlm_global_init)");
    return 0;
}

void ch_curl_set_soname(const char *name)
{
    soname = name;
}

bool ch_curl_loaded(void)
{
    return global_done;
}

int ch_curlm_global_init(void)
{
    global_wanted = true;
    return 0;
}

void ch_curlm_global_cleanup(void)
{
    if (!global_done)
        return;
    ch_curl.global_cleanup();
    /* A later ch_curl_load runs global init again; until then nothing may
     * call libcurl, which a zeroed table enforces (NULL calls crash early
     * instead of using a cleaned-up libcurl). */
    memset(&ch_curl, 0, sizeof(ch_curl));
    global_done = false;
    global_wanted = false;
}
