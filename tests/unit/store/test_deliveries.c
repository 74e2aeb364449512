/*
 * test_deliveries.c: the durable outbox's tables (store/deliveries.c,
 * store/webhooks.c): insert with binary bodies and the per-run dedupe,
 * input caps, the claim (due rows only, at most max, each handed out
 * once, the next due time), attempt outcomes guarded by status, crash
 * requeue, manual retry with a fresh budget, listing with filters and
 * counts, pruning, and the webhooks table with its cap.
 */
#include "async_test.h"

static struct ch_db *open_db(struct fixture *f)
{
    return db_open_or_fail(f->path, false, true);
}

static struct ch_delivery_rec rec_for(const char *id, const char *run_id, int64_t due)
{
    struct ch_delivery_rec d = {0};

    d.id = (char *)id;
    d.kind = "callback";
    d.run_id = (char *)run_id;
    d.url = "http://127.0.0.1:9/cb";
    d.headers = "{\"Authorization\":\"Bearer t\"}";
    d.body = "{\"ok\":true}";
    d.body_len = 11;
    d.content_type = "application/json";
    d.secret = "s3cret";
    d.status = CH_DELIVERY_PENDING;
    d.max_attempts = 3;
    d.backoff_ms = 100;
    d.next_attempt_ms = due;
    d.created_ms = due;
    return d;
}

static void insert_ok(struct ch_db *db, const char *id, const char *run_id, int64_t due)
{
    struct ch_delivery_rec d = rec_for(id, run_id, due);
    struct ch_error e = {0};

    if (ch_deliveries_insert(db, &d, NULL, &e) != 0)
        fail_msg("insert %s: %s", id, e.msg);
}

static enum ch_delivery_status status_of(struct ch_db *db, const char *id)
{
    struct ch_delivery_rec d;
    enum ch_delivery_status s;

    assert_int_equal(ch_deliveries_get(db, id, &d), 0);
    s = d.status;
    ch_delivery_rec_release(&d);
    return s;
}

static void test_insert_get_dedupe(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    struct ch_delivery_rec d = rec_for("d-1", "run-1", 100), g;
    struct ch_error e = {0};
    char *existing = NULL;

    d.body = (char *)bin;
    d.body_len = sizeof(bin);
    d.content_type = "application/octet-stream";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    assert_int_equal(ch_deliveries_get(db, "d-1", &g), 0);
    assert_int_equal(g.body_len, sizeof(bin));
    assert_memory_equal(g.body, bin, sizeof(bin)); /* byte for byte, NUL included */
    assert_string_equal(g.secret, "s3cret");
    assert_true(g.has_secret);
    assert_string_equal(g.headers, "{\"Authorization\":\"Bearer t\"}");
    assert_int_equal(g.status, CH_DELIVERY_PENDING);
    assert_int_equal(g.updated_ms, 100); /* defaults to created_ms */
    ch_delivery_rec_release(&g);
    /* the same run's delivery to the same url and secret: the first one */
    d.id = "d-2";
    assert_int_equal(ch_deliveries_insert(db, &d, &existing, &e), CH_EEXIST);
    assert_string_equal(existing, "d-1");
    ch_free(existing);
    /* another url, another secret or another event is another delivery */
    d.url = "http://127.0.0.1:9/other";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    d.id = "d-3";
    d.secret = "other";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    d.id = "d-4";
    d.kind = "webhook";
    d.event = "run.completed";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    /* no run: never deduplicated */
    d.run_id = NULL;
    d.id = "d-5";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    d.id = "d-6";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    /* a taken id */
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EEXIST);
    assert_int_equal(ch_deliveries_get(db, "nope", &g), CH_ENOTFOUND);
    ch_db_close(db);
}

static void test_insert_checks(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_delivery_rec d = rec_for("c-1", NULL, 1);
    struct ch_error e = {0};
    char *big;

    d.kind = "email";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EINVAL);
    d.kind = "callback";
    d.url = NULL;
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EINVAL);
    d.url = "http://x/\n";
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EINVAL);
    d.url = "http://x/";
    d.headers = "not json";
    assert_int_not_equal(ch_deliveries_insert(db, &d, NULL, &e), 0); /* CHECK json_valid */
    d.headers = NULL;
    d.max_attempts = 0;
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EINVAL);
    d.max_attempts = CH_STORE_MAX_DELIVERY_ATTEMPTS + 1;
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_EINVAL);
    d.max_attempts = 3;
    d.body_len = CH_STORE_MAX_DELIVERY_BODY_BYTES + 1;
    big = calloc(1, d.body_len);
    d.body = big;
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), CH_E_TOO_LARGE);
    free(big);
    d.body = NULL;
    d.body_len = 0; /* an empty body is fine */
    assert_int_equal(ch_deliveries_insert(db, &d, NULL, &e), 0);
    assert_int_equal(db_query_int(db, "SELECT count(*) FROM deliveries"), 1);
    ch_db_close(db);
}

static void test_claim_finish_retry(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_delivery_list l;
    struct ch_delivery_outcome o = {0};
    struct ch_delivery_rec r;
    int64_t next;

    insert_ok(db, "a", "r1", 100);
    insert_ok(db, "b", "r2", 200);
    insert_ok(db, "c", "r3", 5000);
    /* at 250: a and b are due, c is next at 5000; max 1 takes the oldest */
    assert_int_equal(ch_deliveries_claim(db, 250, 1, &l, &next), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].id, "a");
    assert_non_null(l.items[0].body); /* claims carry bodies and secrets */
    assert_non_null(l.items[0].secret);
    assert_int_equal(next, 200);
    ch_delivery_list_release(&l);
    assert_int_equal(status_of(db, "a"), CH_DELIVERY_SENDING);
    assert_int_equal(ch_deliveries_claim(db, 250, 10, &l, &next), 0);
    assert_int_equal(l.count, 1); /* a is not handed out twice */
    assert_string_equal(l.items[0].id, "b");
    assert_int_equal(next, 5000);
    ch_delivery_list_release(&l);
    assert_int_equal(ch_deliveries_claim(db, 250, 10, &l, &next), 0);
    assert_int_equal(l.count, 0);
    ch_delivery_list_release(&l);
    /* a: 500, retry at 1000 */
    o.status = CH_DELIVERY_PENDING;
    o.attempted = true;
    o.last_status = 500;
    o.last_error = "HTTP 500: boom";
    o.next_attempt_ms = 1000;
    o.now_ms = 300;
    assert_int_equal(ch_deliveries_finish(db, "a", &o), 0);
    /* only a `sending` row takes an outcome */
    assert_int_equal(ch_deliveries_finish(db, "a", &o), CH_ESTATE);
    assert_int_equal(ch_deliveries_finish(db, "zz", &o), CH_ENOTFOUND);
    assert_int_equal(ch_deliveries_get(db, "a", &r), 0);
    assert_int_equal(r.status, CH_DELIVERY_PENDING);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.last_status, 500);
    assert_string_equal(r.last_error, "HTTP 500: boom");
    assert_int_equal(r.next_attempt_ms, 1000);
    ch_delivery_rec_release(&r);
    /* b: done */
    o.status = CH_DELIVERY_DONE;
    o.last_status = 204;
    o.last_error = NULL;
    o.now_ms = 400;
    assert_int_equal(ch_deliveries_finish(db, "b", &o), 0);
    assert_int_equal(ch_deliveries_get(db, "b", &r), 0);
    assert_int_equal(r.delivered_ms, 400);
    assert_null(r.last_error);
    ch_delivery_rec_release(&r);
    o.status = CH_DELIVERY_SENDING;
    assert_int_equal(ch_deliveries_finish(db, "b", &o), CH_EINVAL);
    /* done and sending rows cannot be retried; dead and pending can */
    assert_int_equal(ch_deliveries_retry(db, "b", 500, NULL), CH_ESTATE);
    assert_int_equal(ch_deliveries_retry(db, "nope", 500, NULL), CH_ENOTFOUND);
    assert_int_equal(ch_deliveries_retry(db, "a", 500, &r), 0); /* pending: due now */
    assert_int_equal(r.next_attempt_ms, 500);
    assert_int_equal(r.retry_base, 0);
    ch_delivery_rec_release(&r);
    /* a dies; a manual retry gives it a fresh budget */
    assert_int_equal(ch_deliveries_claim(db, 600, 10, &l, &next), 0);
    assert_int_equal(l.count, 1);
    ch_delivery_list_release(&l);
    o.status = CH_DELIVERY_DEAD;
    o.last_status = 404;
    o.now_ms = 700;
    assert_int_equal(ch_deliveries_finish(db, "a", &o), 0);
    assert_int_equal(ch_deliveries_retry(db, "a", 800, &r), 0);
    assert_int_equal(r.status, CH_DELIVERY_PENDING);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.retry_base, 2);
    assert_null(r.body); /* the answer is the light row */
    ch_delivery_rec_release(&r);
    ch_db_close(db);
}

static void test_requeue_list_count_prune(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_delivery_query q = {0};
    struct ch_delivery_outcome o = {.status = CH_DELIVERY_DONE, .attempted = true, .now_ms = 10};
    struct ch_delivery_list l;
    int64_t next, n, counts[4];

    insert_ok(db, "x1", "r1", 1);
    insert_ok(db, "x2", "r2", 2);
    {
        struct ch_delivery_rec d = rec_for("x3", "r2", 3);
        d.url = "http://other/"; /* the same run, another receiver */
        assert_int_equal(ch_deliveries_insert(db, &d, NULL, NULL), 0);
    }
    assert_int_equal(ch_deliveries_claim(db, 10, 2, &l, &next), 0);
    ch_delivery_list_release(&l);
    assert_int_equal(ch_deliveries_finish(db, "x1", &o), 0);
    /* a crash left x2 `sending`: it goes back to pending, due at once */
    assert_int_equal(ch_deliveries_requeue_sending(db, 20, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(status_of(db, "x2"), CH_DELIVERY_PENDING);
    assert_int_equal(ch_deliveries_count(db, counts), 0);
    assert_int_equal(counts[CH_DELIVERY_PENDING], 2);
    assert_int_equal(counts[CH_DELIVERY_DONE], 1);
    assert_int_equal(counts[CH_DELIVERY_SENDING], 0);
    /* newest first, light rows */
    q.status = -1;
    assert_int_equal(ch_deliveries_list(db, &q, &l), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.total, 3);
    assert_string_equal(l.items[0].id, "x3");
    assert_null(l.items[0].body);
    assert_null(l.items[0].secret);
    assert_true(l.items[0].has_secret);
    assert_int_equal(l.items[0].body_len, 11);
    ch_delivery_list_release(&l);
    q.status = CH_DELIVERY_PENDING;
    q.run_id = "r2";
    q.limit = 1;
    assert_int_equal(ch_deliveries_list(db, &q, &l), 0);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.total, 2);
    ch_delivery_list_release(&l);
    q.status = 7;
    assert_int_equal(ch_deliveries_list(db, &q, &l), CH_EINVAL);
    /* prune: done rows before 100 go, pending ones stay */
    assert_int_equal(ch_deliveries_prune(db, 100, 0, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(db_query_int(db, "SELECT count(*) FROM deliveries"), 2);
    ch_db_close(db);
}

static void test_webhooks_table(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_webhook_rec w = {0};
    struct ch_webhook_list l;
    struct ch_error e = {0};
    char id[32];

    w.url = "http://127.0.0.1:9/hook";
    w.secret = "whsec_x";
    w.events = "[\"run.completed\"]";
    w.max_attempts = 3;
    w.backoff_ms = 5000;
    for (int i = 0; i < CH_STORE_MAX_WEBHOOKS; i++) {
        snprintf(id, sizeof(id), "wh_%d", i);
        w.id = id;
        w.created_ms = i;
        if (ch_webhooks_insert(db, &w, &e) != 0)
            fail_msg("insert %s: %s", id, e.msg);
    }
    w.id = "wh_over";
    assert_int_equal(ch_webhooks_insert(db, &w, &e), CH_E_TOO_LARGE);
    assert_int_equal(ch_webhooks_delete(db, "wh_5"), 0);
    assert_int_equal(ch_webhooks_delete(db, "wh_5"), CH_ENOTFOUND);
    assert_int_equal(ch_webhooks_insert(db, &w, &e), 0);
    assert_int_equal(ch_webhooks_delete(db, "wh_6"), 0);
    w.id = "wh_1"; /* room again, but the id is taken */
    assert_int_equal(ch_webhooks_insert(db, &w, &e), CH_EEXIST);
    w.id = "wh_bad";
    w.events = "nope";
    assert_int_not_equal(ch_webhooks_insert(db, &w, &e), 0); /* CHECK json_valid */
    assert_int_equal(ch_webhooks_list(db, false, &l), 0);
    assert_int_equal(l.count, CH_STORE_MAX_WEBHOOKS - 1);
    assert_string_equal(l.items[0].id, "wh_0"); /* oldest first */
    assert_null(l.items[0].secret);
    ch_webhook_list_release(&l);
    assert_int_equal(ch_webhooks_list(db, true, &l), 0);
    assert_string_equal(l.items[0].secret, "whsec_x");
    ch_webhook_list_release(&l);
    ch_db_close(db);
}

static void test_status_names(void **state)
{
    enum ch_delivery_status s;
    (void)state;

    assert_string_equal(ch_delivery_status_name(CH_DELIVERY_DEAD), "dead");
    assert_string_equal(ch_delivery_status_name((enum ch_delivery_status)9), "unknown");
    assert_int_equal(ch_delivery_status_parse("sending", &s), 0);
    assert_int_equal(s, CH_DELIVERY_SENDING);
    assert_int_equal(ch_delivery_status_parse("DEAD", &s), CH_EINVAL);
    assert_int_equal(ch_delivery_status_parse(NULL, &s), CH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_finish_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_list_count_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhooks_table, setup, teardown),
        cmocka_unit_test(test_status_names),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
