/*
 * test_run_delivery.c: a run's delivery state (store/run_delivery.c):
 * set, replace and clear runs.delivery, its input checks (unknown run,
 * invalid JSON, the size cap), and the start-up query for finished hook
 * runs whose callback was never queued (status, time window, callback in
 * the request's meta, delivery already recorded, the limit).
 */
#include "store_test.h"

struct fx {
    struct tmpdir dir;
    char path[512];
    struct ch_db *db;
};

static int setup(void **state)
{
    struct fx *f = ch_calloc(1, sizeof(*f));

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "store.db", f->path, sizeof(f->path));
    f->db = db_open_or_fail(f->path, false, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    ch_db_close(f->db);
    tmpdir_remove(&f->dir);
    ch_free(f);
    return 0;
}

#define WITH_CB "{\"message\":\"m\",\"meta\":{\"hook\":{\"name\":\"h\",\"callback\":{\"url\":\"http://x/\"}}}}"
#define NO_CB "{\"message\":\"m\",\"meta\":{\"hook\":{\"name\":\"h\"}}}"

/* Insert a run and, unless status is queued, run it to that end at finished_ms. */
static void add_run(struct ch_db *db, const char *id, const char *request, enum ch_run_status status,
                    int64_t finished_ms)
{
    struct ch_run_rec r = {0};
    struct ch_run_outcome o = {0};
    struct ch_error e = {0};

    r.run_id = (char *)id;
    r.session_key = "hook:s";
    r.source = "hook";
    r.request = (char *)request;
    r.created_ms = finished_ms - 10;
    if (ch_runs_insert(db, &r, NULL, &e) != 0)
        fail_msg("insert %s: %s", id, e.msg);
    if (status == CH_RUN_QUEUED)
        return;
    assert_int_equal(ch_runs_start(db, id, finished_ms - 5), 0);
    if (status == CH_RUN_RUNNING)
        return;
    o.status = status;
    o.result = "{\"text\":\"{}\"}";
    o.finished_ms = finished_ms;
    assert_int_equal(ch_runs_finish(db, id, &o), 0);
}

static void test_set_delivery(void **state)
{
    struct fx *f = *state;
    struct ch_run_rec g;
    char *big;

    add_run(f->db, "r1", WITH_CB, CH_RUN_OK, 1000);
    assert_int_equal(ch_runs_set_delivery(f->db, "r1", "{\"callback\":{\"state\":\"queued\"}}"), 0);
    assert_int_equal(ch_runs_get(f->db, "r1", &g), 0);
    assert_string_equal(g.delivery, "{\"callback\":{\"state\":\"queued\"}}");
    ch_run_rec_release(&g);
    /* replaced whole, and cleared */
    assert_int_equal(ch_runs_set_delivery(f->db, "r1", "{\"callback\":{\"state\":\"invalid_json\"}}"), 0);
    assert_int_equal(ch_runs_get(f->db, "r1", &g), 0);
    assert_non_null(strstr(g.delivery, "invalid_json"));
    ch_run_rec_release(&g);
    assert_int_equal(ch_runs_set_delivery(f->db, "r1", NULL), 0);
    assert_int_equal(ch_runs_get(f->db, "r1", &g), 0);
    assert_null(g.delivery);
    ch_run_rec_release(&g);
    /* refusals */
    assert_int_equal(ch_runs_set_delivery(f->db, "nope", "{}"), CH_ENOTFOUND);
    assert_int_equal(ch_runs_set_delivery(f->db, "r1", "{not json"), CH_EINVAL);
    assert_int_equal(ch_runs_set_delivery(f->db, "", "{}"), CH_EINVAL);
    assert_int_equal(ch_runs_set_delivery(NULL, "r1", "{}"), CH_EINVAL);
    big = ch_malloc(CH_STORE_MAX_META_JSON_BYTES + 16);
    memset(big, ' ', CH_STORE_MAX_META_JSON_BYTES + 15);
    big[0] = '{';
    big[CH_STORE_MAX_META_JSON_BYTES + 14] = '}';
    big[CH_STORE_MAX_META_JSON_BYTES + 15] = '\0';
    assert_int_equal(ch_runs_set_delivery(f->db, "r1", big), CH_E_TOO_LARGE);
    ch_free(big);
}

static void test_list_undelivered(void **state)
{
    struct fx *f = *state;
    struct ch_run_list l;

    add_run(f->db, "ok-cb", WITH_CB, CH_RUN_OK, 1000);
    add_run(f->db, "err-cb", WITH_CB, CH_RUN_ERROR, 1100);
    add_run(f->db, "no-cb", NO_CB, CH_RUN_OK, 1200);
    add_run(f->db, "queued-cb", WITH_CB, CH_RUN_QUEUED, 1300);
    add_run(f->db, "running-cb", WITH_CB, CH_RUN_RUNNING, 1300);
    add_run(f->db, "old-cb", WITH_CB, CH_RUN_OK, 10);
    add_run(f->db, "late-cb", WITH_CB, CH_RUN_OK, 5000);
    add_run(f->db, "done-cb", WITH_CB, CH_RUN_OK, 1400);
    add_run(f->db, "str-cb", "{\"meta\":{\"hook\":{\"callback\":\"http://x/\"}}}", CH_RUN_OK, 1500);
    assert_int_equal(ch_runs_set_delivery(f->db, "done-cb", "{\"callback\":{\"state\":\"queued\"}}"), 0);

    assert_int_equal(ch_runs_list_undelivered(f->db, 500, 2000, 100, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].run_id, "ok-cb"); /* oldest first */
    assert_string_equal(l.items[1].run_id, "err-cb");
    assert_non_null(l.items[0].request); /* with payloads */
    assert_non_null(strstr(l.items[0].result, "text"));
    ch_run_list_release(&l);

    assert_int_equal(ch_runs_list_undelivered(f->db, 500, 2000, 1, &l), 0);
    assert_int_equal(l.count, 1);
    ch_run_list_release(&l);
    assert_int_equal(ch_runs_list_undelivered(f->db, 0, 1000, 100, &l), 0); /* [0, 1000): only old-cb */
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].run_id, "old-cb");
    ch_run_list_release(&l);

    assert_int_equal(ch_runs_list_undelivered(f->db, 0, 1, 0, &l), CH_EINVAL);
    assert_int_equal(ch_runs_list_undelivered(f->db, 0, 1, CH_STORE_MAX_LIST + 1, &l), CH_E_TOO_LARGE);
    assert_int_equal(l.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_undelivered, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
