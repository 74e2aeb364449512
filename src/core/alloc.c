/*
 * alloc.c: the one allocator (STYLE.md 8.3 rule 8).
 *
 * Each block carries a 16-byte header holding its size, so live bytes are
 * exact and SQLite's xSize can be answered.  The counters are per thread
 * (the store's writer thread and the libuv pool allocate too) and summed
 * when read.  Fault injection (ch_alloc_fail_after) lets tests fail the
 * N-th allocation.
 */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <jansson.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/core.h"

#define HDR 16 /* keeps the user pointer 16-byte aligned */

/*
 * Live bytes and blocks, counted per thread: each thread adds to its own
 * cache line with a plain load and store (one writer), and the totals are
 * the sums.  Shared counters cost two locked read-modify-writes per call
 * and bounced their line between the loop and the store's writer thread
 * on every allocation.  A block freed by another thread than the one
 * that allocated it makes one slot go negative and another positive; the
 * sum stays exact.  Threads past SLOTS share the last slot, atomically.
 */
#define SLOTS 64

struct slot {
    _Alignas(64) atomic_llong bytes;
    atomic_llong blocks;
};

static struct slot slots[SLOTS + 1]; /* [SLOTS]: shared by the rest */
static atomic_int slots_used;
static _Thread_local struct slot *my_slot;
static atomic_long fail_countdown; /* 0: off; n: the n-th call fails */

static void count(long long bytes, long long blocks)
{
    struct slot *s = my_slot;

    if (!s) {
        int i = atomic_fetch_add(&slots_used, 1);
        s = my_slot = &slots[i < SLOTS ? i : SLOTS];
    }
    if (s == &slots[SLOTS]) {
        atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->blocks, blocks, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&s->bytes, atomic_load_explicit(&s->bytes, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
    if (blocks)
        atomic_store_explicit(&s->blocks, atomic_load_explicit(&s->blocks, memory_order_relaxed) + blocks,
                              memory_order_relaxed);
}

static long long sum(bool blocks)
{
    long long t = 0;

    for (int i = 0; i <= SLOTS; i++)
        t += atomic_load_explicit(blocks ? &slots[i].blocks : &slots[i].bytes, memory_order_relaxed);
    return t;
}

static bool should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return false;
    n = atomic_fetch_sub(&fail_countdown, 1);
    return n == 1;
}

void *ch_malloc(size_t n)
{
    unsigned char *p;

    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof(n));
    count((long long)n, 1);
    return p + HDR;
}

static size_t block_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - HDR, sizeof(n));
    return n;
}

void *ch_calloc(size_t count, size_t n)
{
    void *p;

    if (n && count > SIZE_MAX / n)
        return NULL;
    p = ch_malloc(count * n);
    if (p)
        memset(p, 0, count * n);
    return p;
}

void *ch_realloc(void *p, size_t n)
{
    unsigned char *q;
    size_t old;

    if (!p)
        return ch_malloc(n);
    if (n == 0) {
        ch_free(p);
        return NULL;
    }
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    old = block_size(p);
    q = realloc((unsigned char *)p - HDR, n + HDR);
    if (!q)
        return NULL;
    memcpy(q, &n, sizeof(n));
    count((long long)n - (long long)old, 0);
    return q + HDR;
}

void ch_free(void *p)
{
    if (!p)
        return;
    count(-(long long)block_size(p), -1);
    free((unsigned char *)p - HDR);
}

char *ch_strndup(const char *s, size_t n)
{
    char *d;
    size_t len;

    if (!s)
        return NULL;
    len = strnlen(s, n); /* not a byte loop: 2 KB hook messages pass here */
    d = ch_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *ch_strdup(const char *s)
{
    size_t len;
    char *d;

    if (!s)
        return NULL;
    len = strlen(s);
    if (!(d = ch_malloc(len + 1)))
        return NULL;
    memcpy(d, s, len + 1);
    return d;
}

char *ch_sprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = ch_malloc((size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void ch_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void ch_free_secret(char *s)
{
    if (!s)
        return;
    ch_wipe(s, strlen(s));
    ch_free(s);
}

size_t ch_alloc_live_bytes(void)
{
    long long t = sum(false);
    return t > 0 ? (size_t)t : 0;
}

size_t ch_alloc_live_blocks(void)
{
    long long t = sum(true);
    return t > 0 ? (size_t)t : 0;
}

void ch_alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n < 0 ? 0 : n);
}

/*
 * Handing freed heap back to the kernel (malloc_trim).  glibc keeps freed
 * chunks inside its heap, and under a load whose per-request working set
 * grows (an agent turn holds its whole history, decoded and rendered) the
 * heap's footprint follows the largest working set seen, not the bytes in
 * use: over the agent soak RSS rose 1.7-3 MB while the live bytes at rest
 * stayed flat.  malloc_trim(0) releases the top of each heap and every
 * whole free page inside it (MADV_DONTNEED), so RSS at rest comes back
 * towards what is in use.
 *
 * When: a burst of load has ended, i.e. the live bytes (sampled once a
 * second) are back near their floor (within TRIM_DROP / 2 of the lowest
 * sample of the last TRIM_HISTORY seconds) while the anonymous resident
 * memory not in use (RssAnon minus the live bytes: glibc's free pages,
 * plus overheads that do not move) has grown by TRIM_DROP since the last
 * trim, so there is something to give back; and every TRIM_EVERY ticks
 * regardless.  A load that stops reaches its floor at the next tick; one
 * that only fluctuates rarely comes that close to its lowest sample.  The
 * history is short because the level at rest rises too (SQLite's page
 * caches, the transcript cache fill up): a floor from before that would
 * never be reached again.  RSS, not a high-water mark of the live bytes,
 * says what a trim can return: the once-a-second samples miss most of a
 * burst's peak.  A trim walks glibc's free lists under the arena lock
 * (0.1-4 ms at 10 MB of heap) and the pages it releases fault back in on
 * reuse, so it is not run on every tick.
 */
#define TRIM_DROP ((size_t)256 * 1024)
#define TRIM_HISTORY 16
#define TRIM_EVERY 30

static struct {
    size_t hist[TRIM_HISTORY]; /* the last samples of the live bytes */
    unsigned n_hist;           /* how many (up to TRIM_HISTORY) */
    unsigned next;             /* where the next sample goes */
    size_t spare;              /* RssAnon - live bytes just after the last trim */
    unsigned ticks;            /* ticks since the last trim */
    unsigned long n;           /* trims run */
    uint64_t ns;               /* time spent in them */
} trim;

/* RssAnon in bytes from /proc/self/statm (resident minus file-backed and
 * shared pages); 0 if unreadable. */
static size_t rss_anon(void)
{
    char b[128];
    unsigned long long size, res, shared;
    ssize_t n;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, b, sizeof(b) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    b[n] = '\0';
    if (sscanf(b, "%llu %llu %llu", &size, &res, &shared) != 3 || res < shared)
        return 0;
    return (size_t)(res - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t spare_now(size_t live)
{
    size_t anon = rss_anon();
    return anon > live ? anon - live : 0;
}

bool ch_alloc_tick(void)
{
    size_t live = ch_alloc_live_bytes(), floor = live;
    bool due = false;
    uint64_t t0;

    for (unsigned i = 0; i < trim.n_hist; i++)
        floor = trim.hist[i] < floor ? trim.hist[i] : floor;
    trim.hist[trim.next++ % TRIM_HISTORY] = live;
    if (trim.n_hist < TRIM_HISTORY)
        trim.n_hist++;
    if (live <= floor + TRIM_DROP / 2)
        due = spare_now(live) >= trim.spare + TRIM_DROP;
    if (++trim.ticks < TRIM_EVERY && !due)
        return false;
    t0 = ch_mono_ns();
    malloc_trim(0);
    trim.ns += ch_mono_ns() - t0;
    trim.n++;
    trim.ticks = 0;
    trim.spare = spare_now(ch_alloc_live_bytes());
    return true;
}

void ch_alloc_trim_stats(unsigned long *trims, uint64_t *ns)
{
    *trims = trim.n;
    *ns = trim.ns;
}

/* Adapters for the libraries' allocator hooks. */
static void *ossl_malloc(size_t n, const char *f, int l)
{
    (void)f, (void)l;
    return ch_malloc(n);
}
static void *ossl_realloc(void *p, size_t n, const char *f, int l)
{
    (void)f, (void)l;
    return ch_realloc(p, n);
}
static void ossl_free(void *p, const char *f, int l)
{
    (void)f, (void)l;
    ch_free(p);
}

static void *sq_malloc(int n)
{
    return n < 0 ? NULL : ch_malloc((size_t)n);
}
static void *sq_realloc(void *p, int n)
{
    return n < 0 ? NULL : ch_realloc(p, (size_t)n);
}
static int sq_size(void *p)
{
    return p ? (int)block_size(p) : 0;
}
static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}
static int sq_init(void *d)
{
    (void)d;
    return SQLITE_OK;
}
static void sq_shutdown(void *d)
{
    (void)d;
}

/*
 * Install once, before any library allocates.  Safe to call twice (tests
 * call it from every main()).  SQLite refuses reconfiguration after
 * initialisation, and OpenSSL after its first allocation; both failures
 * are harmless (the library keeps the system allocator) and reported.
 */
int ch_alloc_install(void)
{
    static bool done;
    static const sqlite3_mem_methods sq = {
        (void *(*)(int))sq_malloc,
        ch_free,
        (void *(*)(void *, int))sq_realloc,
        sq_size,
        sq_roundup,
        sq_init,
        sq_shutdown,
        NULL,
    };
    int rc = 0;

    if (done)
        return 0;
    done = true;
    if (uv_replace_allocator(ch_malloc, ch_realloc, ch_calloc, ch_free) != 0)
        rc = CH_ESTATE;
    json_set_alloc_funcs(ch_malloc, ch_free);
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK)
        rc = CH_ESTATE;
    /* SQLite's own memory statistics take a global mutex on every
     * allocation; the counting allocator above already keeps the figures
     * /health/detail shows, and nothing reads SQLite's. */
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
        rc = CH_ESTATE;
    /* The store's writer runs a job that can fail after writing inside a
     * SAVEPOINT, whose sub-journal keeps the first copy of every page the
     * job changes.  Past 64 KiB (SQLite's default) it moves to a temporary
     * file: one create, two pwrites per page and an unlink per batch,
     * which were two thirds of the writer's system calls under load when
     * the agent's turn jobs (13-20 pages each) still took a savepoint; a
     * tool round's appends and the outbox's jobs still do.  In memory it
     * is one chunk of this size (SQLite allocates the spill threshold at
     * once), so not much more: a bigger job (a session's cascade delete)
     * still spills to a file.  Under 128 KiB: the spill writes the chunk
     * in one call and the unix VFS keeps only the low 17 bits of a write's
     * count, so a 256 KiB chunk was written as nothing and every statement
     * journal past the limit failed its job with SQLITE_FULL
     * (tests/unit/store/test_wal_vfs.c spills one). */
    if (sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 120 * 1024) != SQLITE_OK)
        rc = CH_ESTATE;
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
        rc = CH_ESTATE;
    return rc;
}
