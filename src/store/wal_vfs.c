/*
 * store/wal_vfs.c: a VFS over SQLite's default one that writes each WAL
 * commit with one system call.
 *
 * Why: SQLite appends a commit to the write-ahead log one frame at a time,
 * and each frame as two pwrite()s, its 24-byte header and then its page.
 * An agent turn's two commits touch 9-10 pages each, so the store writer
 * made about 20 pwrite()s per commit, 2-4 us each in ext4's buffered write
 * path: 60-85 us per commit, most of the time a turn waits for the store
 * at concurrency 1, and the largest part of the writer's system time under
 * load (docs/internals/store.md, "One write per WAL commit").
 *
 * How: the WAL file's writes are gathered in a buffer while they are
 * contiguous and written with one pwrite() when the commit frame's page is
 * in it.  The WAL format says which frame that is: a frame header's second
 * word ("the size of the database file in pages after the commit") is zero
 * for every frame but a commit's.  So the commit's own xWrite does the
 * write and reports its error: a failed write fails the COMMIT, as it
 * would have unbuffered, before the wal-index makes the frames visible.
 *
 * Everything else that could observe the file first writes out what is
 * gathered: a read, a sync, a truncate, the size, a file-control, close,
 * a non-contiguous write and a full buffer.  One write is never gathered:
 * a header SQLite rewrites in place right after reading its frame (the
 * checksums it recomputes after a commit whose spilled frames changed),
 * since no page follows it.
 *
 * A transaction too big for the page cache spills frames before it
 * commits; if it rolls back, those frames are garbage that no commit will
 * publish, and once the WAL's write lock is free another connection or
 * process may write its own frames over them.  The database file is
 * therefore opened through this layer too (forwarded as is), so that the
 * release of that lock, in the database's shared memory, drops whatever
 * its WAL still holds (d_shm_lock): a commit has written everything by
 * then.  A WAL whose database is not layered is written straight through.
 *
 * tests/unit/store/test_wal_vfs.c kills a process right after its commits
 * (the checksum-rewriting one included) and recovers, and writes over a
 * rolled-back spill from another connection (the database was corrupt
 * before the drop).  Other files (journals, temporary files) are opened
 * straight on the default VFS.
 */
#include <pthread.h>
#include <string.h>

#include "store/internal.h"

#define CH_WAL_VFS_NAME "chela-wal"

#define BUF_MIN (16 * 1024)
/* Under 128 KiB: the unix VFS's pwrite() wrapper keeps only the low 17
 * bits of a count (SQLite never writes more at once), so a bigger write
 * would be cut short, or to nothing, and fail as SQLITE_FULL. */
#define BUF_MAX (128 * 1024 - 1)
#define FRAME_HDR 24 /* WAL_FRAME_HDRSIZE in SQLite's file format */

/* What both kinds of file this layer opens start with. */
struct layer {
    sqlite3_file base;  /* pMethods: ctx.io (a WAL) or ctx.db_io (a database) */
    sqlite3_file *real; /* the default VFS's file, right after this layer's struct */
};

struct db_file {
    struct layer l;
    struct wal_file *wal; /* its WAL, while open through this layer */
};

struct wal_file {
    sqlite3_file base; /* as struct layer */
    sqlite3_file *real;
    struct db_file *db; /* its database, whose shared memory holds the WAL's locks */
    unsigned char *buf; /* gathered writes: bytes [off, off + len) of the file */
    size_t len, cap;
    sqlite3_int64 off;
    bool commit_next;       /* the last write was a commit frame's header */
    bool has_commit;        /* a commit frame's header is among the gathered bytes */
    sqlite3_int64 read_off; /* where the last read began, until a write */
    struct wal_stats *stats;
};

struct wal_stats {
    atomic_uint_fast64_t writes;   /* pwrite()s made of gathered bytes */
    atomic_uint_fast64_t gathered; /* xWrite calls gathered */
    atomic_uint_fast64_t dropped;  /* gatherings of rolled-back frames dropped */
};

static struct vfs_ctx {
    sqlite3_vfs vfs;
    sqlite3_vfs *base;
    sqlite3_io_methods io, db_io;
    struct wal_stats stats;
} ctx;

static int flush(struct wal_file *f)
{
    int rc;

    if (!f->len)
        return SQLITE_OK;
    rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    f->len = 0;
    f->has_commit = false;
    if (f->stats)
        atomic_fetch_add_explicit(&f->stats->writes, 1, memory_order_relaxed);
    return rc;
}

/* A frame header of a commit: its second big-endian word is nonzero. */
static bool commit_header(const void *p, int amt)
{
    const unsigned char *h = p;
    return amt == FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int w_write(sqlite3_file *pf, const void *p, int amt, sqlite3_int64 ofs)
{
    struct wal_file *f = (struct wal_file *)pf;
    bool commit = f->commit_next;
    int rc;

    /* A write where SQLite just read rewrites a frame's header in place
     * (walRewriteChecksums, after a commit whose spilled frames changed):
     * no page follows it, so it must not wait in the buffer.  Nor may
     * anything wait without the database's layer to drop it (d_shm_lock). */
    if (ofs == f->read_off || !f->db) {
        f->read_off = -1;
        f->commit_next = false;
        rc = flush(f);
        return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, p, amt, ofs);
    }
    f->read_off = -1;
    f->commit_next = commit_header(p, amt);
    if (f->len && (ofs != f->off + (sqlite3_int64)f->len || f->len + (size_t)amt > BUF_MAX)) {
        if ((rc = flush(f)) != SQLITE_OK)
            return rc;
    }
    if ((size_t)amt > BUF_MAX)
        return f->real->pMethods->xWrite(f->real, p, amt, ofs);
    if (f->len + (size_t)amt > f->cap) {
        size_t cap = f->cap ? f->cap : BUF_MIN;
        unsigned char *b;

        while (cap < f->len + (size_t)amt)
            cap *= 2;
        if (!(b = ch_realloc(f->buf, cap))) {
            /* No room to gather: write what is gathered, then this. */
            if ((rc = flush(f)) != SQLITE_OK)
                return rc;
            return f->real->pMethods->xWrite(f->real, p, amt, ofs);
        }
        f->buf = b;
        f->cap = cap;
    }
    if (!f->len)
        f->off = ofs;
    memcpy(f->buf + f->len, p, (size_t)amt);
    f->len += (size_t)amt;
    f->has_commit |= f->commit_next;
    if (f->stats)
        atomic_fetch_add_explicit(&f->stats->gathered, 1, memory_order_relaxed);
    /* The page after a commit header ends the commit: write it now. */
    return commit && !f->commit_next ? flush(f) : SQLITE_OK;
}

/* Plain forwarding to the default VFS's file, for both kinds. */
static int l_read(sqlite3_file *pf, void *p, int amt, sqlite3_int64 ofs)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xRead(f->real, p, amt, ofs);
}

static int l_write(sqlite3_file *pf, const void *p, int amt, sqlite3_int64 ofs)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xWrite(f->real, p, amt, ofs);
}

static int l_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xTruncate(f->real, size);
}

static int l_sync(sqlite3_file *pf, int flags)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xSync(f->real, flags);
}

static int l_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int l_file_control(sqlite3_file *pf, int op, void *arg)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int l_fetch(sqlite3_file *pf, sqlite3_int64 ofs, int amt, void **pp)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xFetch(f->real, ofs, amt, pp);
}

static int w_close(sqlite3_file *pf)
{
    struct wal_file *f = (struct wal_file *)pf;
    int rc = flush(f), rc2 = f->real->pMethods->xClose(f->real);

    if (f->db)
        f->db->wal = NULL;

    ch_free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *pf, void *p, int amt, sqlite3_int64 ofs)
{
    struct wal_file *f = (struct wal_file *)pf;
    int rc = flush(f);

    f->read_off = ofs;
    return rc != SQLITE_OK ? rc : l_read(pf, p, amt, ofs);
}

static int w_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    int rc = flush((struct wal_file *)pf);
    return rc != SQLITE_OK ? rc : l_truncate(pf, size);
}

static int w_sync(sqlite3_file *pf, int flags)
{
    int rc = flush((struct wal_file *)pf);
    return rc != SQLITE_OK ? rc : l_sync(pf, flags);
}

static int w_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    int rc = flush((struct wal_file *)pf);
    return rc != SQLITE_OK ? rc : l_file_size(pf, size);
}

static int l_lock(sqlite3_file *pf, int lock)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xLock(f->real, lock);
}

static int l_unlock(sqlite3_file *pf, int lock)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int l_check_reserved(sqlite3_file *pf, int *out)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int w_file_control(sqlite3_file *pf, int op, void *arg)
{
    int rc = flush((struct wal_file *)pf);
    return rc != SQLITE_OK ? rc : l_file_control(pf, op, arg);
}

static int l_sector_size(sqlite3_file *pf)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int l_device_chars(sqlite3_file *pf)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int l_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int l_shm_lock(sqlite3_file *pf, int ofs, int n, int flags)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xShmLock(f->real, ofs, n, flags);
}

static void l_shm_barrier(sqlite3_file *pf)
{
    struct layer *f = (struct layer *)pf;
    f->real->pMethods->xShmBarrier(f->real);
}

static int l_shm_unmap(sqlite3_file *pf, int del)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int w_fetch(sqlite3_file *pf, sqlite3_int64 ofs, int amt, void **pp)
{
    int rc = flush((struct wal_file *)pf);
    return rc != SQLITE_OK ? rc : l_fetch(pf, ofs, amt, pp);
}

static int l_unfetch(sqlite3_file *pf, sqlite3_int64 ofs, void *p)
{
    struct layer *f = (struct layer *)pf;
    return f->real->pMethods->xUnfetch(f->real, ofs, p);
}

/* ---- the database file: forwarded (l_*), but for the WAL's write lock ---- */

static int d_close(sqlite3_file *pf)
{
    struct db_file *d = (struct db_file *)pf;

    if (d->wal)
        d->wal->db = NULL;
    return d->l.real->pMethods->xClose(d->l.real);
}

/*
 * SQLite writes WAL frames only while it holds the WAL's write lock (slot
 * 0 of the locks in the database's shared memory).  A commit has written
 * everything out by the time it lets go; what is still gathered then
 * belongs to a transaction that spilled frames and rolled back, and once
 * the lock is free another connection or process may write its own frames
 * at those offsets.  So it is dropped here, before the lock is released.
 */
static int d_shm_lock(sqlite3_file *pf, int ofs, int n, int flags)
{
    struct db_file *d = (struct db_file *)pf;
    struct wal_file *w = d->wal;

    if (w && w->len && (flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && ofs == 0 && n >= 1) {
        if (w->has_commit) {
            /* Never expected (a commit frame ends with its own write), but
             * committed frames are written, not dropped; an unlock cannot
             * fail, so an error is only logged. */
            if (flush(w) != SQLITE_OK)
                ch_log_error("store: writing a commit to the write-ahead log failed");
        } else {
            atomic_fetch_add_explicit(&w->stats->dropped, 1, memory_order_relaxed);
            w->len = 0;
        }
        w->commit_next = false;
    }
    return d->l.real->pMethods->xShmLock(d->l.real, ofs, n, flags);
}

/* Open `name` on the default VFS inside the layer struct `l` (of `size`
 * bytes); *wrapped is false when the default VFS's file lacks what is
 * forwarded (the file is then the default VFS's own, in `l`). */
static int layer_open(struct vfs_ctx *c, struct layer *l, size_t size, const char *name, int flags, int *out_flags,
                      bool *wrapped)
{
    int rc;

    memset(l, 0, size);
    l->real = (sqlite3_file *)((char *)l + size);
    rc = c->base->xOpen(c->base, name, l->real, flags, out_flags);
    *wrapped = l->real->pMethods && l->real->pMethods->iVersion >= 3;
    if (l->real->pMethods && !*wrapped) {
        /* Methods this layer would forward are missing: no layer. */
        l->real->pMethods->xClose(l->real);
        return c->base->xOpen(c->base, name, &l->base, flags, out_flags);
    }
    return rc;
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
    struct vfs_ctx *c = vfs->pAppData;
    bool wrapped;
    int rc;

    if (flags & SQLITE_OPEN_MAIN_DB) {
        struct db_file *d = (struct db_file *)pf;

        rc = layer_open(c, &d->l, sizeof(*d), name, flags, out_flags, &wrapped);
        if (wrapped)
            pf->pMethods = &c->db_io;
        return rc;
    }
    if (flags & SQLITE_OPEN_WAL) {
        struct wal_file *f = (struct wal_file *)pf;
        sqlite3_file *dbf = name ? sqlite3_database_file_object(name) : NULL;

        rc = layer_open(c, (struct layer *)f, sizeof(*f), name, flags, out_flags, &wrapped);
        if (!wrapped)
            return rc;
        f->stats = &c->stats;
        f->read_off = -1;
        pf->pMethods = &c->io;
        /* Without its database's layer nothing would drop what a rolled
         * back transaction gathered (d_shm_lock): write straight through. */
        if (dbf && dbf->pMethods == &c->db_io) {
            f->db = (struct db_file *)dbf;
            f->db->wal = f;
        }
        return rc;
    }
    return c->base->xOpen(c->base, name, pf, flags, out_flags);
}

/* The rest is the default VFS's. */
#define BASE(v) (((struct vfs_ctx *)(v)->pAppData)->base)

static int v_delete(sqlite3_vfs *v, const char *n, int sync)
{
    return BASE(v)->xDelete(BASE(v), n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
    return BASE(v)->xAccess(BASE(v), n, flags, out);
}
static int v_full_pathname(sqlite3_vfs *v, const char *n, int len, char *out)
{
    return BASE(v)->xFullPathname(BASE(v), n, len, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *n)
{
    return BASE(v)->xDlOpen(BASE(v), n);
}
static void v_dlerror(sqlite3_vfs *v, int len, char *out)
{
    BASE(v)->xDlError(BASE(v), len, out);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return BASE(v)->xDlSym(BASE(v), h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
    BASE(v)->xDlClose(BASE(v), h);
}
static int v_randomness(sqlite3_vfs *v, int n, char *out)
{
    return BASE(v)->xRandomness(BASE(v), n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
    return BASE(v)->xSleep(BASE(v), us);
}
static int v_current_time(sqlite3_vfs *v, double *out)
{
    return BASE(v)->xCurrentTime(BASE(v), out);
}
static int v_last_error(sqlite3_vfs *v, int len, char *out)
{
    return BASE(v)->xGetLastError ? BASE(v)->xGetLastError(BASE(v), len, out) : 0;
}
static int v_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return BASE(v)->xCurrentTimeInt64(BASE(v), out);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static void register_vfs(void)
{
    sqlite3_vfs *base = sqlite3_vfs_find(NULL);

    /* The default VFS must offer what the wrapper forwards (unix does). */
    if (!base || base->iVersion < 2 || !base->xCurrentTimeInt64)
        return;
    ctx.base = base;
    ctx.io = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = w_close,
        .xRead = w_read,
        .xWrite = w_write,
        .xTruncate = w_truncate,
        .xSync = w_sync,
        .xFileSize = w_file_size,
        .xLock = l_lock,
        .xUnlock = l_unlock,
        .xCheckReservedLock = l_check_reserved,
        .xFileControl = w_file_control,
        .xSectorSize = l_sector_size,
        .xDeviceCharacteristics = l_device_chars,
        .xShmMap = l_shm_map,
        .xShmLock = l_shm_lock,
        .xShmBarrier = l_shm_barrier,
        .xShmUnmap = l_shm_unmap,
        .xFetch = w_fetch,
        .xUnfetch = l_unfetch,
    };
    ctx.db_io = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = d_close,
        .xRead = l_read,
        .xWrite = l_write,
        .xTruncate = l_truncate,
        .xSync = l_sync,
        .xFileSize = l_file_size,
        .xLock = l_lock,
        .xUnlock = l_unlock,
        .xCheckReservedLock = l_check_reserved,
        .xFileControl = l_file_control,
        .xSectorSize = l_sector_size,
        .xDeviceCharacteristics = l_device_chars,
        .xShmMap = l_shm_map,
        .xShmLock = d_shm_lock,
        .xShmBarrier = l_shm_barrier,
        .xShmUnmap = l_shm_unmap,
        .xFetch = l_fetch,
        .xUnfetch = l_unfetch,
    };
    ctx.vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)CH_MAX(sizeof(struct wal_file), sizeof(struct db_file)) + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = CH_WAL_VFS_NAME,
        .pAppData = &ctx,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full_pathname,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_randomness,
        .xSleep = v_sleep,
        .xCurrentTime = v_current_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = v_current_time64,
    };
    register_rc = sqlite3_vfs_register(&ctx.vfs, 0);
}

const char *ch_wal_vfs(void)
{
    pthread_once(&once, register_vfs);
    return register_rc == SQLITE_OK ? CH_WAL_VFS_NAME : NULL;
}

void ch_wal_vfs_stats(uint64_t *writes, uint64_t *gathered, uint64_t *dropped)
{
    *writes = atomic_load_explicit(&ctx.stats.writes, memory_order_relaxed);
    *gathered = atomic_load_explicit(&ctx.stats.gathered, memory_order_relaxed);
    *dropped = atomic_load_explicit(&ctx.stats.dropped, memory_order_relaxed);
}
