/*
 * test_usage.c: usage per day, provider and model (store/usage.c): UTC
 * day formatting, upserts that add up, totals and groupings over date
 * ranges, input checks, and many adds to one row inside group commits on a
 * real loop.
 */
#include <math.h>

#include "async_test.h"

/* 2026-03-01T00:00:00Z and friends. */
#define DAY_MS 86400000LL
#define MAR01 1772323200000LL

static struct ch_db *open_db(struct fixture *f)
{
    return db_open_or_fail(f->path, false, true);
}

static void add(struct ch_db *db, int64_t at, const char *provider, const char *model, int64_t in, int64_t out,
                double cost)
{
    struct ch_usage u = {in, out, in / 10, in / 100, cost};

    assert_int_equal(ch_usage_add(db, at, provider, model, 1, &u), 0);
}

static void test_day(void **state)
{
    char d[11];

    assert_int_equal(ch_usage_day(0, d), 0);
    assert_string_equal(d, "1970-01-01");
    assert_int_equal(ch_usage_day(MAR01, d), 0);
    assert_string_equal(d, "2026-03-01");
    assert_int_equal(ch_usage_day(MAR01 - 1, d), 0); /* the last ms of the day before */
    assert_string_equal(d, "2026-02-28");
    assert_int_equal(ch_usage_day(MAR01 + DAY_MS - 1, d), 0);
    assert_string_equal(d, "2026-03-01");
    assert_int_equal(ch_usage_day(-1, d), CH_EINVAL);
    assert_int_equal(ch_usage_day(INT64_MAX, d), CH_EINVAL); /* past year 9999 */
}

static void test_upserts_add_up(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_usage_row t;
    int i;

    /* Empty: zeros, not an error. */
    assert_int_equal(ch_usage_totals(db, NULL, NULL, &t), 0);
    assert_int_equal(t.requests, 0);
    assert_true(t.usage.cost_usd == 0);
    assert_null(t.provider);
    assert_string_equal(t.day, "");

    for (i = 0; i < 10; i++)
        add(db, MAR01 + i * 1000, "anthropic", "claude-sonnet-4-5", 1000, 50, 0.01);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM usage_daily"), 1);
    assert_int_equal(ch_usage_totals(db, NULL, NULL, &t), 0);
    assert_int_equal(t.requests, 10);
    assert_int_equal(t.usage.input_tokens, 10000);
    assert_int_equal(t.usage.output_tokens, 500);
    assert_int_equal(t.usage.cache_read_tokens, 1000);
    assert_int_equal(t.usage.cache_write_tokens, 100);
    assert_true(fabs(t.usage.cost_usd - 0.1) < 1e-9);

    /* requests > 1 in one add (a batch of calls) and zero-usage adds. */
    assert_int_equal(ch_usage_add(db, MAR01, "anthropic", "claude-sonnet-4-5", 5, &(struct ch_usage){0}), 0);
    assert_int_equal(ch_usage_totals(db, NULL, NULL, &t), 0);
    assert_int_equal(t.requests, 15);
    assert_int_equal(t.usage.input_tokens, 10000);
    ch_db_close(db);
}

static void test_ranges_and_groups(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_usage_list l;
    struct ch_usage_row t;

    /* Three days, three models. */
    add(db, MAR01, "anthropic", "claude", 100, 10, 1.0);
    add(db, MAR01 + 5, "openai", "gpt-4o", 200, 20, 2.0);
    add(db, MAR01 + DAY_MS, "anthropic", "claude", 300, 30, 3.0);
    add(db, MAR01 + 2 * DAY_MS, "google", "gemini", 400, 40, 4.0);
    add(db, MAR01 + 2 * DAY_MS + 7, "anthropic", "claude", 500, 50, 5.0);

    assert_int_equal(ch_usage_totals(db, "2026-03-02", "2026-03-02", &t), 0);
    assert_int_equal(t.requests, 1);
    assert_int_equal(t.usage.input_tokens, 300);
    assert_int_equal(ch_usage_totals(db, "2026-03-02", NULL, &t), 0); /* open end */
    assert_int_equal(t.requests, 3);
    assert_true(fabs(t.usage.cost_usd - 12.0) < 1e-9);
    assert_int_equal(ch_usage_totals(db, NULL, "2026-03-01", &t), 0);
    assert_int_equal(t.usage.output_tokens, 30);
    assert_int_equal(ch_usage_totals(db, "2026-03-04", "2026-12-31", &t), 0);
    assert_int_equal(t.requests, 0);
    assert_int_equal(ch_usage_totals(db, "2026-03-03", "2026-03-01", &t), 0); /* inverted */
    assert_int_equal(t.requests, 0);

    assert_int_equal(ch_usage_query(db, NULL, NULL, CH_USAGE_BY_DAY, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].day, "2026-03-01");
    assert_int_equal(l.items[0].requests, 2);
    assert_int_equal(l.items[0].usage.input_tokens, 300);
    assert_null(l.items[0].model);
    assert_string_equal(l.items[2].day, "2026-03-03");
    assert_true(fabs(l.items[2].usage.cost_usd - 9.0) < 1e-9);
    ch_usage_list_release(&l);

    assert_int_equal(ch_usage_query(db, "2026-03-01", "2026-03-03", CH_USAGE_BY_MODEL, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].provider, "anthropic");
    assert_string_equal(l.items[0].model, "claude");
    assert_int_equal(l.items[0].requests, 3);
    assert_int_equal(l.items[0].usage.input_tokens, 900);
    assert_string_equal(l.items[0].day, "");
    assert_string_equal(l.items[1].provider, "google");
    assert_string_equal(l.items[2].model, "gpt-4o");
    ch_usage_list_release(&l);

    assert_int_equal(ch_usage_query(db, "2026-03-02", "2026-03-03", CH_USAGE_BY_DAY_MODEL, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].day, "2026-03-02");
    assert_string_equal(l.items[1].day, "2026-03-03");
    assert_string_equal(l.items[1].provider, "anthropic");
    assert_string_equal(l.items[2].provider, "google");
    ch_usage_list_release(&l);

    assert_int_equal(ch_usage_query(db, "2027-01-01", NULL, CH_USAGE_BY_MODEL, &l), 0);
    assert_int_equal(l.count, 0);
    ch_usage_list_release(&l);

    /* Malformed days and groups. */
    assert_int_equal(ch_usage_totals(db, "2026-3-1", NULL, &t), CH_EINVAL);
    assert_int_equal(ch_usage_totals(db, NULL, "2026-13-01", &t), CH_EINVAL);
    assert_int_equal(ch_usage_totals(db, "2026-03-00", NULL, &t), CH_EINVAL);
    assert_int_equal(ch_usage_totals(db, "2026-03-01x", NULL, &t), CH_EINVAL);
    assert_int_equal(ch_usage_totals(db, "' OR 1=1 --", NULL, &t), CH_EINVAL);
    assert_int_equal(ch_usage_query(db, NULL, NULL, (enum ch_usage_group)9, &l), CH_EINVAL);
    assert_int_equal(ch_usage_query(db, "x", NULL, CH_USAGE_BY_DAY, &l), CH_EINVAL);
    assert_int_equal(ch_usage_totals(db, NULL, NULL, NULL), CH_EINVAL);
    ch_db_close(db);
}

static void test_add_checks(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_usage u = {1, 1, 0, 0, 0};
    char model[CH_STORE_MAX_NAME_BYTES + 2];

    assert_int_equal(ch_usage_add(db, MAR01, NULL, "m", 1, &u), CH_EINVAL);
    assert_int_equal(ch_usage_add(db, MAR01, "", "m", 1, &u), CH_EINVAL);
    assert_int_equal(ch_usage_add(db, MAR01, "p", "", 1, &u), CH_EINVAL);
    assert_int_equal(ch_usage_add(db, MAR01, "p", "m", -1, &u), CH_EINVAL);
    assert_int_equal(ch_usage_add(db, -5, "p", "m", 1, &u), CH_EINVAL);
    assert_int_equal(ch_usage_add(db, MAR01, "p", "m", 1, NULL), CH_EINVAL);
    memset(model, 'm', sizeof(model) - 1);
    model[sizeof(model) - 1] = '\0';
    assert_int_equal(ch_usage_add(db, MAR01, "p", model, 1, &u), CH_E_TOO_LARGE);
    assert_int_equal(ch_usage_add(db, MAR01, "p\"; DROP TABLE runs; --", "m", 1, &u), 0);
    u.cost_usd = NAN;
    assert_int_equal(ch_usage_add(db, MAR01, "p", "m", 1, &u), CH_EINVAL);
    u.cost_usd = 0;
    u.cache_read_tokens = -3;
    assert_int_equal(ch_usage_add(db, MAR01, "p", "m", 1, &u), CH_EINVAL);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM usage_daily"), 1);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM runs"), 0); /* still there */
    ch_db_close(db);
}

/* ---- many adds to one row through the writer -------------------------- */

struct usage_job {
    struct ch_store_job base;
    struct fixture *f;
    int idx;
};

static int run_usage(struct ch_db *db, struct ch_store_job *job)
{
    struct usage_job *j = (struct usage_job *)job;
    struct ch_usage u = {10, 2, 1, 0, 0.001};

    /* Two days alternate; every 100th job fails after adding (rolled back). */
    if (j->idx % 100 == 99) {
        int rc = ch_usage_add(db, MAR01, "openai", "gpt-4o", 1, &u);

        return rc ? rc : CH_EIO;
    }
    return ch_usage_add(db, MAR01 + (j->idx % 2) * DAY_MS, "openai", "gpt-4o", 1, &u);
}

static void on_usage_done(struct ch_store_job *job, int rc)
{
    struct usage_job *j = (struct usage_job *)job;

    j->f->done++;
    if (rc == 0)
        j->f->done_ok++;
    ch_free(j);
}

static void test_adds_in_group_commit(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_usage_list l;
    struct ch_usage_row t;
    struct ch_db *db;
    int i;

    open_store(f, 2000, 512);
    for (i = 0; i < 1000; i++) {
        struct usage_job *j = ch_calloc(1, sizeof(*j));

        assert_non_null(j);
        j->base.run = run_usage;
        j->base.done = on_usage_done;
        j->f = f;
        j->idx = i;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 1000);
    assert_int_equal(f->done_ok, 990);
    ch_store_stats(f->store, &st);
    assert_true(st.commits < 1000); /* grouped */
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(ch_usage_totals(db, NULL, NULL, &t), 0);
    assert_int_equal(t.requests, 990);
    assert_int_equal(t.usage.input_tokens, 9900);
    assert_true(fabs(t.usage.cost_usd - 0.99) < 1e-9);
    assert_int_equal(ch_usage_query(db, NULL, NULL, CH_USAGE_BY_DAY, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].requests, 500); /* even idx; none of the failures */
    assert_int_equal(l.items[1].requests, 490);
    ch_usage_list_release(&l);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_day),
        cmocka_unit_test_setup_teardown(test_upserts_add_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges_and_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adds_in_group_commit, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
