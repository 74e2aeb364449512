/*
 * test_list_pages.c: paging the store's lists: keyset positions of the
 * newest-first runs and sessions lists (store/list_pos.c, runs.c,
 * sessions.c: no row repeated or skipped when rows arrive or move between
 * pages, the cursor codec) and pages back through a transcript
 * (store/messages_page.c: the newest rows below a seq that fit, a message
 * too large for any page passed without its content).
 */
#include "async_test.h"

static struct ch_db *open_db(struct fixture *f)
{
    return db_open_or_fail(f->path, false, true);
}

static bool plan_has(struct ch_db *db, const char *sql, const char *what)
{
    char explain[1024];
    sqlite3_stmt *st;
    bool found = false;

    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(ch_db_handle(db), explain, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(st, 3), what))
            found = true;
    sqlite3_finalize(st);
    return found;
}

/* ---- the cursor codec ------------------------------------------------ */

static void test_cursor_codec(void **state)
{
    struct ch_list_pos p = {1700000000123, 42}, q = {0};
    char c[CH_LIST_CURSOR_LEN + 1];

    (void)state;
    ch_list_pos_encode(&p, c);
    assert_int_equal(strlen(c), CH_LIST_CURSOR_LEN);
    assert_int_equal(strspn(c, "0123456789"), 0); /* never read as an offset */
    assert_int_equal(ch_list_pos_decode(c, &q), 0);
    assert_true(q.ms == p.ms && q.rowid == p.rowid);
    p = (struct ch_list_pos){INT64_MAX, INT64_MAX};
    ch_list_pos_encode(&p, c);
    assert_int_equal(ch_list_pos_decode(c, &q), 0);
    assert_true(q.ms == INT64_MAX && q.rowid == INT64_MAX);

    assert_int_equal(ch_list_pos_decode("50", &q), CH_EINVAL);
    assert_int_equal(ch_list_pos_decode("", &q), CH_EINVAL);
    assert_int_equal(ch_list_pos_decode(NULL, &q), CH_EINVAL);
    assert_int_equal(ch_list_pos_decode("AAABi8_laHsAAAAAAAAAKg", &q), 0);
    assert_true(q.ms == 1700000000123 && q.rowid == 42);
    assert_int_equal(ch_list_pos_decode("AAABi8_laHsAAAAAAAAAKg==", &q), CH_EINVAL); /* padded */
    assert_int_equal(ch_list_pos_decode("AAABi8/laHsAAAAAAAAAKg", &q), CH_EINVAL);   /* not url-safe */
    assert_int_equal(ch_list_pos_decode("AAABi8_laHsAAAAAAAAAKg ", &q), CH_EINVAL);  /* 23 chars */
    assert_int_equal(ch_list_pos_decode("AAABi8_laHsAAAAAAAAAAA", &q), CH_EINVAL);   /* rowid 0 */
    assert_int_equal(ch_list_pos_decode("gAAAAAAAAAAAAAAAAAAAAQ", &q), CH_EINVAL);   /* ms past INT64_MAX */
    assert_int_equal(ch_list_pos_decode("1234567890123456789012", &q), CH_EINVAL);   /* decodes, ms huge */
}

/* ---- runs ------------------------------------------------------------- */

static void insert_run(struct ch_db *db, const char *id, const char *key, int64_t created)
{
    struct ch_run_rec r = {
        .run_id = (char *)id, .session_key = (char *)key, .source = "hook", .request = "{}", .created_ms = created};
    struct ch_error e = {0};

    if (ch_runs_insert(db, &r, NULL, &e) != 0)
        fail_msg("insert %s: %s", id, e.msg);
}

/* Page through with q until the end; ids seen are appended to seen. */
static size_t page_runs(struct ch_db *db, struct ch_run_query *q, char seen[][16], size_t n)
{
    struct ch_run_list l;
    bool more;

    do {
        assert_int_equal(ch_runs_list_recent(db, q, &l), 0);
        for (size_t i = 0; i < l.count; i++)
            snprintf(seen[n++], 16, "%s", l.items[i].run_id);
        q->after = l.next;
        q->offset = 0;
        more = l.more;
        ch_run_list_release(&l);
        if (n == 2 && q->status < 0 && !q->session_key)
            insert_run(db, "late", "hook:a", 5000); /* newer than all: must not shift the pages */
    } while (more);
    return n;
}

static void test_runs_keyset(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_query q = {.limit = 2, .status = -1};
    struct ch_run_list l;
    char seen[32][16], id[16];
    size_t n;

    /* r0..r6; r3, r4 and r5 share a millisecond (inserted in that order). */
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        insert_run(db, id, i % 2 ? "hook:b" : "hook:a", i >= 3 && i <= 5 ? 1003 : 1000 + i);
    }
    n = page_runs(db, &q, seen, 0);
    assert_int_equal(n, 7);
    for (int i = 0; i < 7; i++) { /* each once, newest first, ties the later-inserted first */
        snprintf(id, sizeof(id), "r%d", 6 - i);
        assert_string_equal(seen[i], id);
    }
    /* The next page from the start has the late run first. */
    q = (struct ch_run_query){.limit = 1, .status = -1};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_string_equal(l.items[0].run_id, "late");
    assert_true(l.more);
    assert_int_equal(l.total, 8);
    ch_run_list_release(&l);

    /* Filters page the same way: by session, by status (the partial index). */
    q = (struct ch_run_query){.limit = 1, .status = -1, .session_key = "hook:b"};
    n = page_runs(db, &q, seen, 0);
    assert_int_equal(n, 3);
    assert_string_equal(seen[0], "r5");
    assert_string_equal(seen[2], "r1");
    q = (struct ch_run_query){.limit = 3, .status = CH_RUN_QUEUED};
    assert_int_equal(page_runs(db, &q, seen, 0), 8);
    q = (struct ch_run_query){.limit = 3, .status = CH_RUN_OK};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_true(l.count == 0 && !l.more);
    ch_run_list_release(&l);
    /* An offset still works (clients paging from before), after a position too. */
    q = (struct ch_run_query){.limit = 2, .offset = 2, .status = -1};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_string_equal(l.items[0].run_id, "r5");
    ch_run_list_release(&l);

    assert_true(plan_has(db,
                         "SELECT run_id, rowid FROM runs WHERE created_ms <= ?5 AND (created_ms < ?5 OR rowid < ?6)"
                         " ORDER BY created_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4",
                         "runs_created"));
    assert_false(plan_has(db,
                          "SELECT run_id, rowid FROM runs WHERE created_ms <= ?5 AND (created_ms < ?5 OR rowid < ?6)"
                          " ORDER BY created_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4",
                          "TEMP B-TREE"));
    ch_db_close(db);
}

/* ---- sessions --------------------------------------------------------- */

static void test_sessions_keyset(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_session_query q = {.limit = 4};
    struct ch_session_list l;
    char key[16];
    int seen[12] = {0}, pages = 0, i;
    bool more;

    /* s00..s11, three to a millisecond. */
    for (i = 0; i < 12; i++) {
        snprintf(key, sizeof(key), "s%02d", i);
        assert_int_equal(ch_sessions_ensure(db, key, NULL, 1000 + i / 3, NULL, NULL), 0);
    }
    do {
        assert_int_equal(ch_sessions_list(db, &q, &l), 0);
        assert_int_equal(l.total, 12);
        for (size_t k = 0; k < l.count; k++)
            seen[atoi(l.items[k].key + 1)]++;
        q.after = l.next;
        more = l.more;
        ch_session_list_release(&l);
        /* After the first page: one shown session and one not yet shown
         * are updated (they move to the front, before the position). */
        if (++pages == 1) {
            assert_int_equal(ch_sessions_add_usage(db, "s11", &(struct ch_usage){0}, -1, NULL, 9000), 0);
            assert_int_equal(ch_sessions_add_usage(db, "s02", &(struct ch_usage){0}, -1, NULL, 9001), 0);
        }
    } while (more);
    assert_int_equal(pages, 3);
    for (i = 0; i < 12; i++) /* none repeated; only the one moved ahead is missed */
        assert_int_equal(seen[i], i == 2 ? 0 : 1);
    q = (struct ch_session_query){.limit = 1};
    assert_int_equal(ch_sessions_list(db, &q, &l), 0);
    assert_string_equal(l.items[0].key, "s02");
    assert_true(l.more);
    ch_session_list_release(&l);
    q = (struct ch_session_query){.limit = 12};
    assert_int_equal(ch_sessions_list(db, &q, &l), 0);
    assert_int_equal(l.count, 12);
    assert_false(l.more);
    assert_string_equal(l.items[11].key, "s00");
    ch_session_list_release(&l);
    assert_false(plan_has(db,
                          "SELECT key, rowid FROM sessions WHERE updated_ms >= ?1 AND updated_ms <= ?5"
                          " AND (updated_ms < ?5 OR rowid < ?6) ORDER BY updated_ms DESC, rowid DESC LIMIT ?3",
                          "TEMP B-TREE"));
    ch_db_close(db);
}

/* ---- transcript pages ------------------------------------------------- */

static void append_text(struct ch_db *db, const char *key, const char *sid, size_t bytes)
{
    struct ch_message_rec m = {.session_key = (char *)key, .session_id = (char *)sid, .role = "user"};
    char *c = malloc(bytes + 1);

    /* A JSON string of exactly `bytes` bytes. */
    memset(c, 'x', bytes);
    c[0] = c[bytes - 1] = '"';
    c[bytes] = '\0';
    m.content = c;
    assert_int_equal(ch_messages_append(db, &m, NULL), 0);
    free(c);
}

static void test_load_before(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    static const size_t sizes[] = {10, 10, 500, 10, 10, 300, 10, 2000, 10, 10};
    struct ch_session_rec s;
    struct ch_message_list l;
    int64_t before = INT64_MAX, covered[16] = {0};
    int pages = 0;
    bool more;

    assert_int_equal(ch_sessions_ensure(db, "k", NULL, 1, &s, NULL), 0);
    for (size_t i = 0; i < CH_ARRAY_SIZE(sizes); i++)
        append_text(db, "k", s.session_id, sizes[i]);
    /* Newest first under 600 bytes a page, anything over 1000 passed. */
    assert_int_equal(ch_messages_load_before(db, s.session_id, INT64_MAX, 100, 600, 1000, &l), 0);
    assert_int_equal(l.count, 7); /* seqs 4..10: 350 bytes, seq 8's 2000 passed without content */
    assert_int_equal(l.items[0].seq, 4);
    assert_null(l.items[4].content);
    assert_int_equal(l.items[4].seq, 8);
    assert_string_equal(l.items[4].role, "user");
    assert_non_null(l.items[3].content);
    assert_true(l.truncated); /* seq 3 (500 bytes) did not fit */
    ch_message_list_release(&l);
    /* Paging from each page's oldest seq returns every message once. */
    do {
        assert_int_equal(ch_messages_load_before(db, s.session_id, before, 3, 600, 1000, &l), 0);
        for (size_t i = 0; i < l.count; i++) {
            assert_true(l.items[i].seq < before);
            covered[l.items[i].seq]++;
        }
        if (l.count)
            before = l.items[0].seq;
        more = l.truncated;
        ch_message_list_release(&l);
        pages++;
    } while (more);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(covered[i], 1);
    assert_int_equal(pages, 4);
    /* Below the first seq, or an unknown transcript: empty. */
    assert_int_equal(ch_messages_load_before(db, s.session_id, 1, 10, 600, 600, &l), 0);
    assert_true(l.count == 0 && !l.truncated);
    assert_int_equal(ch_messages_load_before(db, "nope", INT64_MAX, 10, 600, 600, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(ch_messages_load_before(db, s.session_id, 5, 0, 600, 600, &l), CH_EINVAL);
    assert_int_equal(ch_messages_load_before(db, s.session_id, 5, CH_STORE_MAX_LIST + 1, 1, 1, &l), CH_E_TOO_LARGE);
    ch_session_rec_release(&s);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_codec),
        cmocka_unit_test_setup_teardown(test_runs_keyset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_keyset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_before, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
