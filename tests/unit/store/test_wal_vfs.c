/*
 * test_wal_vfs.c: read-write connections write each WAL commit with one
 * pwrite() (store/wal_vfs.c), and nothing about what SQLite guarantees
 * changes: every commit is on disk when COMMIT returns (a child that
 * exits right after it, without closing, loses nothing), another
 * connection sees it at once, a commit bigger than one write is written
 * whole, and a failed write fails the COMMIT and leaves the previous state.
 *
 * The unix VFS's pwrite64 is swapped (xSetSystemCall) for one that counts
 * the calls on files whose name ends in "-wal" and can fail the next one
 * with ENOSPC, so what is counted is the system calls themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "store_test.h"

/* store/internal.h; the tests see store.h only. */
void ch_wal_vfs_stats(uint64_t *writes, uint64_t *gathered, uint64_t *dropped);

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int wal_writes;   /* pwrite64 calls on a -wal file */
static int fail_next;    /* fail the next one with ENOSPC */
static size_t max_write; /* the largest count passed to one */

static bool is_wal(int fd)
{
    char link[64], path[512];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n < 4)
        return false;
    path[n] = '\0';
    return !strcmp(path + n - 4, "-wal");
}

static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (is_wal(fd)) {
        wal_writes++;
        max_write = n > max_write ? n : max_write;
        if (fail_next) {
            fail_next = 0;
            errno = ENOSPC;
            return -1;
        }
    }
    return real_pwrite(fd, p, n, off);
}

static int setup(void **state)
{
    static struct tmpdir t;
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");

    assert_non_null(unix_vfs);
    if (!real_pwrite) {
        real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))unix_vfs->xGetSystemCall(unix_vfs, "pwrite64");
        assert_non_null(real_pwrite);
        assert_int_equal(unix_vfs->xSetSystemCall(unix_vfs, "pwrite64", (sqlite3_syscall_ptr)counting_pwrite),
                         SQLITE_OK);
    }
    tmpdir_make(&t);
    wal_writes = fail_next = 0;
    max_write = 0;
    *state = &t;
    return 0;
}

static int teardown(void **state)
{
    tmpdir_remove(*state);
    return 0;
}

static struct ch_db *open_rw(struct tmpdir *t, char *path, size_t cap)
{
    struct ch_db *db;

    tmpdir_file(t, "t.db", path, cap);
    db = db_open_or_fail(path, false, false);
    /* Only the WAL is written: the test checkpoints itself. */
    assert_int_equal(sqlite3_exec(ch_db_handle(db),
                                  "PRAGMA wal_autocheckpoint=0;"
                                  "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT);"
                                  "CREATE INDEX IF NOT EXISTS t_v ON t(v);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static int insert(sqlite3 *h, int from, int count, int width)
{
    char sql[128];
    int rc = sqlite3_exec(h, "BEGIN", NULL, NULL, NULL);

    for (int i = from; rc == SQLITE_OK && i < from + count; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(%d, printf('%%0%dd', %d))", i, width, i);
        rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
}

static int64_t count_rows(const char *path)
{
    sqlite3 *r = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    /* A plain connection on the default VFS, as another process would. */
    assert_int_equal(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(r, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(r);
    return n;
}

static void expect_intact(const char *path)
{
    sqlite3 *r = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(r, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(r);
}

static void test_commit_is_one_write(void **state)
{
    char path[512];
    struct ch_db *db = open_rw(*state, path, sizeof(path));
    sqlite3 *h = ch_db_handle(db);

    for (int c = 0; c < 20; c++) {
        int before = wal_writes;

        /* ~10 pages: table and index leaves, as an agent turn's commit. */
        assert_int_equal(insert(h, c * 30, 30, 400), SQLITE_OK);
        assert_int_equal(wal_writes - before, 1);
        assert_int_equal(count_rows(path), (c + 1) * 30);
    }
    ch_db_close(db);
    expect_intact(path);
}

static void test_big_commit_written_whole(void **state)
{
    char path[512];
    struct ch_db *db = open_rw(*state, path, sizeof(path));
    sqlite3 *h = ch_db_handle(db);
    int before = wal_writes;

    /* ~200 pages: more than one write may hold. */
    assert_int_equal(insert(h, 0, 400, 1500), SQLITE_OK);
    assert_true(wal_writes - before >= 6);
    assert_true(wal_writes - before < 60);
    assert_true(max_write < 128 * 1024);
    assert_int_equal(count_rows(path), 400);
    ch_db_close(db);
    expect_intact(path);
}

static void test_failed_write_fails_commit(void **state)
{
    char path[512];
    struct ch_db *db = open_rw(*state, path, sizeof(path));
    sqlite3 *h = ch_db_handle(db);

    assert_int_equal(insert(h, 0, 30, 400), SQLITE_OK);
    fail_next = 1;
    assert_int_not_equal(insert(h, 100, 30, 400), SQLITE_OK);
    assert_int_equal(fail_next, 0);
    /* Nothing of the failed commit is visible; the next one works. */
    assert_int_equal(count_rows(path), 30);
    assert_int_equal(insert(h, 200, 30, 400), SQLITE_OK);
    assert_int_equal(count_rows(path), 60);
    ch_db_close(db);
    expect_intact(path);
}

/*
 * A transaction bigger than the page cache spills pages to the WAL before
 * it commits; changing such a page again overwrites its frame in place,
 * and the commit then rewrites the checksums of every frame from there on
 * (SQLite's walRewriteChecksums: read each frame, write its header).  The
 * last header written is the commit frame's, with no page after it.
 */
static int spill_and_rewrite(sqlite3 *h, int from)
{
    char sql[160];
    int rc = sqlite3_exec(h, "PRAGMA cache_size=8; BEGIN", NULL, NULL, NULL);

    for (int i = from; rc == SQLITE_OK && i < from + 200; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(%d, printf('%%0800d', %d))", i, i);
        rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql), "UPDATE t SET v = printf('%%0790d', k) WHERE k >= %d AND k < %d", from, from + 200);
        rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    }
    return rc == SQLITE_OK ? sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) : rc;
}

/*
 * A child commits on a connection of its own and dies at once, closing
 * nothing: whatever the VFS still held would be lost.  No connection is
 * open when it dies, so the next opener rebuilds the WAL index from the
 * file (recovery), which keeps a commit only if every frame of it and its
 * checksums reached the file.
 */
static void commit_in_child_and_die(const char *path, bool spill)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct ch_db_opts o = {.path = path};
        struct ch_db *c = NULL;
        struct ch_error e = {0};
        int rc = ch_db_open(&o, &c, &e);

        if (rc == 0)
            rc = spill ? spill_and_rewrite(ch_db_handle(c), 1000) : insert(ch_db_handle(c), 1000, 50, 400);
        if (rc)
            fprintf(stderr, "child: %d %s\n", rc, c ? sqlite3_errmsg(ch_db_handle(c)) : e.msg);
        _exit(rc == SQLITE_OK ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* 30 rows committed and closed, then the child's commit; rows after recovery. */
static void child_commit_survives(void **state, bool spill, int64_t rows)
{
    char path[512];
    struct ch_db *db = open_rw(*state, path, sizeof(path));

    assert_int_equal(insert(ch_db_handle(db), 0, 30, 400), SQLITE_OK);
    ch_db_close(db);
    commit_in_child_and_die(path, spill);
    assert_int_equal(count_rows(path), rows);
    expect_intact(path);
}

static void test_commit_durable_without_close(void **state)
{
    child_commit_survives(state, false, 80);
}

static void test_rewritten_checksums_durable(void **state)
{
    child_commit_survives(state, true, 230);
}

static void test_checkpoint_and_reopen(void **state)
{
    char path[512];
    struct ch_db *db = open_rw(*state, path, sizeof(path));
    sqlite3 *h = ch_db_handle(db);

    for (int c = 0; c < 10; c++)
        assert_int_equal(insert(h, c * 30, 30, 400), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    /* After a truncating checkpoint the WAL starts again from its header. */
    assert_int_equal(insert(h, 1000, 30, 400), SQLITE_OK);
    ch_db_close(db);
    expect_intact(path);
    assert_int_equal(count_rows(path), 330);
}

/*
 * A transaction that spills frames to the WAL and then rolls back leaves
 * frames no commit publishes.  Once it releases the WAL's write lock,
 * another connection (here a plain one, as another process would open)
 * may write its own frames at those offsets; nothing this connection
 * gathered may reach the file after that.  Before the layer dropped such
 * frames at the lock's release, this test found the database corrupt.
 */
static void test_rolled_back_spill_never_written_later(void **state)
{
    char path[512], sql[160];
    struct ch_db *db = open_rw(*state, path, sizeof(path));
    sqlite3 *h = ch_db_handle(db), *other = NULL;
    uint64_t writes, gathered, dropped, dropped_after;
    int rc;

    /* An empty WAL: the rollback then reads nothing back from it. */
    assert_int_equal(sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    rc = sqlite3_exec(h, "PRAGMA cache_size=8; BEGIN", NULL, NULL, NULL);

    /* New overflow pages only: spilled, never read back before the end. */
    snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(1, randomblob(%d))", 300 * 1000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    ch_wal_vfs_stats(&writes, &gathered, &dropped);
    assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ch_wal_vfs_stats(&writes, &gathered, &dropped_after);
    assert_int_equal(dropped_after, dropped + 1); /* the spill's last frames, never written */
    assert_int_equal(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(insert(other, 5000, 600, 800), SQLITE_OK); /* past where the spill ended */
    sqlite3_close(other);
    /* This connection reads and writes again: a late write of what it
     * gathered before the rollback would overwrite the other's frames. */
    assert_int_equal(count_rows(path), 600);
    assert_int_equal(insert(h, 9000, 5, 400), SQLITE_OK);
    ch_db_close(db);
    expect_intact(path);
    assert_int_equal(count_rows(path), 605);
}

/* synchronous=FULL: the commit is written, then synced, as before. */
static void test_full_sync(void **state)
{
    char path[512];
    struct ch_db_opts o = {.sync_full = true};
    struct ch_db *db = NULL;
    struct ch_error e = {0};

    tmpdir_file(*state, "full.db", path, sizeof(path));
    o.path = path;
    assert_int_equal(ch_db_open(&o, &db, &e), 0);
    assert_int_equal(sqlite3_exec(ch_db_handle(db), "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)", NULL, NULL, NULL),
                     SQLITE_OK);
    for (int c = 0; c < 10; c++) {
        int before = wal_writes;

        assert_int_equal(insert(ch_db_handle(db), c * 30, 30, 400), SQLITE_OK);
        assert_true(wal_writes - before >= 1 && wal_writes - before <= 2);
    }
    assert_int_equal(count_rows(path), 300);
    ch_db_close(db);
    commit_in_child_and_die(path, false);
    assert_int_equal(count_rows(path), 350);
    expect_intact(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_is_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_commit_written_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_fails_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_durable_without_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_checksums_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rolled_back_spill_never_written_later, setup, teardown),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
