/*
 * test_runs.c: the runs table (store/runs.c): insert and idempotency
 * conflicts, the status state machine, lists (recent with filters,
 * unfinished oldest first), crash recovery (requeue or fail running
 * runs), attempts, pruning, input caps, and a whole turn's writes plus an
 * idempotency conflict inside one group commit on a real loop.
 */
#include <math.h>

#include "async_test.h"

static struct ch_db *open_db(struct fixture *f)
{
    return db_open_or_fail(f->path, false, true);
}

static struct ch_run_rec run_for(const char *id, const char *idem, int64_t created)
{
    struct ch_run_rec r = {0};

    r.run_id = (char *)id;
    r.session_key = "hook:a";
    r.source = "hook";
    r.request = "{\"message\":\"hi\",\"model\":\"gpt\"}";
    r.idempotency_key = (char *)idem;
    r.model = "openai/gpt-4o";
    r.created_ms = created;
    return r;
}

static void insert_ok(struct ch_db *db, const char *id, const char *idem, int64_t created)
{
    struct ch_run_rec r = run_for(id, idem, created);
    struct ch_error e = {0};

    if (ch_runs_insert(db, &r, NULL, &e) != 0)
        fail_msg("insert %s: %s", id, e.msg);
}

static enum ch_run_status status_of(struct ch_db *db, const char *id)
{
    struct ch_run_rec r;
    enum ch_run_status s;

    assert_int_equal(ch_runs_get(db, id, &r), 0);
    s = r.status;
    ch_run_rec_release(&r);
    return s;
}

/* ---- insert --------------------------------------------------------- */

static void test_insert_get_and_idempotency(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_rec r = run_for("run-1", "idem-1", 100), g;
    struct ch_error e = {0};
    char *existing = NULL;

    r.status = CH_RUN_OK; /* ignored: inserts are queued */
    r.attempts = 9;
    r.delivery = "{\"mode\":\"webhook\"}";
    assert_int_equal(ch_runs_insert(db, &r, &existing, &e), 0);
    assert_null(existing);
    assert_int_equal(ch_runs_get(db, "run-1", &g), 0);
    assert_string_equal(g.run_id, "run-1");
    assert_string_equal(g.session_key, "hook:a");
    assert_string_equal(g.source, "hook");
    assert_int_equal(g.status, CH_RUN_QUEUED);
    assert_string_equal(g.request, r.request);
    assert_null(g.result);
    assert_null(g.error);
    assert_int_equal(g.created_ms, 100);
    assert_int_equal(g.started_ms, 0);
    assert_int_equal(g.finished_ms, 0);
    assert_int_equal(g.attempts, 0);
    assert_string_equal(g.idempotency_key, "idem-1");
    assert_string_equal(g.model, "openai/gpt-4o");
    assert_string_equal(g.delivery, "{\"mode\":\"webhook\"}");
    ch_run_rec_release(&g);

    /* Same idempotency key, new run id: refused, naming the holder. */
    r.run_id = "run-2";
    assert_int_equal(ch_runs_insert(db, &r, &existing, &e), CH_EEXIST);
    assert_string_equal(existing, "run-1");
    assert_non_null(strstr(e.msg, "run-1"));
    ch_free(existing);
    assert_int_equal(ch_runs_get(db, "run-2", &g), CH_ENOTFOUND);
    /* Same run id, another key: refused with that id. */
    r.run_id = "run-1";
    r.idempotency_key = "idem-2";
    assert_int_equal(ch_runs_insert(db, &r, &existing, NULL), CH_EEXIST);
    assert_string_equal(existing, "run-1");
    ch_free(existing);
    assert_int_equal(ch_runs_get_by_idempotency(db, "idem-2", &g), CH_ENOTFOUND);
    /* existing_run_id may be NULL. */
    r.run_id = "run-3";
    r.idempotency_key = "idem-1";
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EEXIST);

    /* Without a key, any number of runs. */
    insert_ok(db, "run-4", NULL, 101);
    insert_ok(db, "run-5", NULL, 102);
    assert_int_equal(ch_runs_get_by_idempotency(db, "idem-1", &g), 0);
    assert_string_equal(g.run_id, "run-1");
    ch_run_rec_release(&g);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM runs"), 3);
    ch_db_close(db);
}

static void test_insert_checks(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_rec r = run_for("run-1", NULL, 1);
    struct ch_error e = {0};
    char *big, *existing = (char *)1;

    r.request = "{not json";
    assert_int_equal(ch_runs_insert(db, &r, &existing, &e), CH_EINVAL);
    assert_null(existing);
    assert_non_null(strstr(e.msg, "insert run"));
    r.request = NULL;
    assert_int_equal(ch_runs_insert(db, &r, NULL, &e), CH_EINVAL);
    assert_non_null(strstr(e.msg, "run request"));
    r.request = "{}";
    r.idempotency_key = "";
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EINVAL);
    r.idempotency_key = NULL;
    r.source = "";
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EINVAL);
    r.source = "hook";
    r.session_key = NULL;
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EINVAL);
    r.session_key = "hook:a";
    r.run_id = "bad\nid";
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EINVAL);
    r.run_id = "run-1";
    r.delivery = "[";
    assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), CH_EINVAL);
    r.delivery = NULL;

    /* Request: 1 MiB is fine, one byte more is not. */
    big = malloc(CH_STORE_MAX_REQUEST_BYTES + 2);
    assert_non_null(big);
    memset(big, 'x', CH_STORE_MAX_REQUEST_BYTES + 1);
    big[0] = '"';
    big[CH_STORE_MAX_REQUEST_BYTES - 1] = '"';
    big[CH_STORE_MAX_REQUEST_BYTES] = '\0';
    r.request = big;
    assert_int_equal(ch_runs_insert(db, &r, NULL, &e), 0);
    big[CH_STORE_MAX_REQUEST_BYTES - 1] = 'x';
    big[CH_STORE_MAX_REQUEST_BYTES] = '"';
    big[CH_STORE_MAX_REQUEST_BYTES + 1] = '\0';
    r.run_id = "run-2";
    assert_int_equal(ch_runs_insert(db, &r, NULL, &e), CH_E_TOO_LARGE);
    free(big);
    assert_int_equal(ch_runs_insert(db, NULL, NULL, &e), CH_EINVAL);
    assert_int_equal(ch_runs_get(db, "", &r), CH_EINVAL);
    assert_int_equal(ch_runs_get(db, "nope", &r), CH_ENOTFOUND);
    ch_db_close(db);
}

/* ---- state machine ---------------------------------------------------- */

static void test_transitions(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_outcome o = {0};
    struct ch_run_rec g;
    char err[CH_STORE_MAX_ERROR_BYTES + 16];

    insert_ok(db, "run-1", NULL, 100);
    assert_int_equal(ch_runs_start(db, "run-1", 110), 0);
    assert_int_equal(ch_runs_start(db, "run-1", 111), CH_ESTATE);
    assert_int_equal(ch_runs_start(db, "nope", 111), CH_ENOTFOUND);
    assert_int_equal(ch_runs_get(db, "run-1", &g), 0);
    assert_int_equal(g.status, CH_RUN_RUNNING);
    assert_int_equal(g.started_ms, 110);
    assert_int_equal(g.attempts, 1);
    ch_run_rec_release(&g);

    o.status = CH_RUN_OK;
    o.result = "{\"payloads\":[{\"text\":\"Hello!\"}]}";
    o.model = "anthropic/claude-sonnet-4-5"; /* the fallback that answered */
    o.usage = (struct ch_usage){1200, 30, 100, 5, 0.0123};
    o.finished_ms = 150;
    assert_int_equal(ch_runs_finish(db, "run-1", &o), 0);
    assert_int_equal(ch_runs_finish(db, "run-1", &o), CH_ESTATE); /* already final */
    assert_int_equal(ch_runs_get(db, "run-1", &g), 0);
    assert_int_equal(g.status, CH_RUN_OK);
    assert_string_equal(g.result, o.result);
    assert_string_equal(g.model, "anthropic/claude-sonnet-4-5");
    assert_int_equal(g.usage.input_tokens, 1200);
    assert_int_equal(g.usage.cache_write_tokens, 5);
    assert_true(fabs(g.usage.cost_usd - 0.0123) < 1e-12);
    assert_int_equal(g.finished_ms, 150);
    ch_run_rec_release(&g);

    /* queued -> ok is not allowed; queued -> aborted is. */
    insert_ok(db, "run-2", NULL, 200);
    assert_int_equal(ch_runs_finish(db, "run-2", &o), CH_ESTATE);
    o = (struct ch_run_outcome){.status = CH_RUN_ABORTED, .finished_ms = 210};
    assert_int_equal(ch_runs_finish(db, "run-2", &o), 0);
    assert_int_equal(ch_runs_start(db, "run-2", 220), CH_ESTATE);
    assert_int_equal(ch_runs_get(db, "run-2", &g), 0);
    assert_int_equal(g.status, CH_RUN_ABORTED);
    assert_string_equal(g.model, "openai/gpt-4o"); /* NULL model kept it */
    ch_run_rec_release(&g);

    /* A long error is cut at a character boundary, not refused. */
    insert_ok(db, "run-3", NULL, 300);
    assert_int_equal(ch_runs_start(db, "run-3", 301), 0);
    memset(err, 'e', sizeof(err));
    /* "é" (2 bytes) straddling the cap. */
    err[CH_STORE_MAX_ERROR_BYTES - 1] = (char)0xc3;
    err[CH_STORE_MAX_ERROR_BYTES] = (char)0xa9;
    err[sizeof(err) - 1] = '\0';
    o = (struct ch_run_outcome){.status = CH_RUN_ERROR, .error = err, .error_class = "rate_limit", .finished_ms = 302};
    assert_int_equal(ch_runs_finish(db, "run-3", &o), 0);
    assert_int_equal(ch_runs_get(db, "run-3", &g), 0);
    assert_int_equal(g.status, CH_RUN_ERROR);
    assert_int_equal(strlen(g.error), CH_STORE_MAX_ERROR_BYTES - 1);
    assert_string_equal(g.error_class, "rate_limit");
    ch_run_rec_release(&g);

    /* Bad outcomes. */
    insert_ok(db, "run-4", NULL, 400);
    o = (struct ch_run_outcome){.status = CH_RUN_QUEUED};
    assert_int_equal(ch_runs_finish(db, "run-4", &o), CH_EINVAL);
    o.status = CH_RUN_RUNNING;
    assert_int_equal(ch_runs_finish(db, "run-4", &o), CH_EINVAL);
    o.status = CH_RUN_TIMEOUT;
    o.result = "not json";
    assert_int_equal(ch_runs_finish(db, "run-4", &o), CH_EINVAL);
    o.result = NULL;
    o.usage.cost_usd = INFINITY;
    assert_int_equal(ch_runs_finish(db, "run-4", &o), CH_EINVAL);
    o.usage.cost_usd = 0;
    o.error_class = "a class name that is far too long to be a class";
    assert_int_equal(ch_runs_finish(db, "run-4", &o), CH_E_TOO_LARGE);
    o.error_class = NULL;
    assert_int_equal(ch_runs_finish(db, "nope", &o), CH_ENOTFOUND);
    assert_int_equal(status_of(db, "run-4"), CH_RUN_QUEUED);
    assert_int_equal(ch_runs_finish(db, "run-4", &o), 0); /* queued -> timeout */
    assert_int_equal(status_of(db, "run-4"), CH_RUN_TIMEOUT);
    ch_db_close(db);
}

static void test_status_names(void **state)
{
    enum ch_run_status s;
    const char *names[] = {"queued", "running", "ok", "error", "aborted", "timeout"};
    size_t i;

    for (i = 0; i < CH_ARRAY_SIZE(names); i++) {
        assert_string_equal(ch_run_status_name((enum ch_run_status)i), names[i]);
        assert_int_equal(ch_run_status_parse(names[i], &s), 0);
        assert_int_equal(s, (enum ch_run_status)i);
    }
    assert_string_equal(ch_run_status_name((enum ch_run_status)42), "unknown");
    assert_int_equal(ch_run_status_parse("done", &s), CH_EINVAL);
    assert_int_equal(ch_run_status_parse(NULL, &s), CH_EINVAL);
}

/* ---- lists and recovery ------------------------------------------------- */

static void test_lists(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_query q = {.status = -1};
    struct ch_run_outcome ok = {.status = CH_RUN_OK, .finished_ms = 1};
    struct ch_run_list l;
    struct ch_run_rec r;
    char id[16];
    int i;

    /* run-0..run-9; run-5 and run-6 share a millisecond. */
    for (i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        r = run_for(id, NULL, i == 6 ? 1005 : 1000 + i);
        if (i >= 8)
            r.session_key = "hook:b";
        assert_int_equal(ch_runs_insert(db, &r, NULL, NULL), 0);
    }
    assert_int_equal(ch_runs_start(db, "run-1", 2000), 0);
    assert_int_equal(ch_runs_start(db, "run-2", 2000), 0);
    assert_int_equal(ch_runs_finish(db, "run-2", &ok), 0);
    assert_int_equal(ch_runs_start(db, "run-3", 2000), 0);

    /* Recent: newest first, light by default. */
    q.limit = 4;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 10);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.items[0].run_id, "run-9");
    assert_string_equal(l.items[1].run_id, "run-8");
    assert_string_equal(l.items[2].run_id, "run-7");
    assert_string_equal(l.items[3].run_id, "run-6"); /* same ms as run-5, inserted later */
    assert_null(l.items[0].request);
    assert_non_null(l.items[0].model);
    assert_false(l.truncated);
    ch_run_list_release(&l);

    q.offset = 8;
    q.with_payloads = true;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1].run_id, "run-0");
    assert_non_null(l.items[1].request);
    ch_run_list_release(&l);

    q = (struct ch_run_query){.status = CH_RUN_RUNNING};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 2);
    assert_string_equal(l.items[0].run_id, "run-3");
    assert_string_equal(l.items[1].run_id, "run-1");
    ch_run_list_release(&l);
    /* ok, which runs_status leaves out (schema v6): listed through
     * runs_created, counted as all runs minus the others. */
    q = (struct ch_run_query){.status = CH_RUN_OK};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 1);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].run_id, "run-2");
    ch_run_list_release(&l);
    q = (struct ch_run_query){.status = -1, .session_key = "hook:b"};
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.total, 2);
    ch_run_list_release(&l);
    q.status = CH_RUN_QUEUED;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.count, 2);
    ch_run_list_release(&l);
    q.status = CH_RUN_OK;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(l.total, 0);
    ch_run_list_release(&l);
    q.status = 17;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), CH_EINVAL);
    q.status = -1;
    q.limit = CH_STORE_MAX_LIST + 1;
    assert_int_equal(ch_runs_list_recent(db, &q, &l), CH_E_TOO_LARGE);

    /* Unfinished: queued and running, oldest first, with payloads. */
    assert_int_equal(ch_runs_list_unfinished(db, 100, &l), 0);
    assert_int_equal(l.count, 9); /* all but run-2 */
    assert_string_equal(l.items[0].run_id, "run-0");
    assert_string_equal(l.items[1].run_id, "run-1");
    assert_int_equal(l.items[1].status, CH_RUN_RUNNING);
    assert_string_equal(l.items[2].run_id, "run-3");
    assert_string_equal(l.items[4].run_id, "run-5");
    assert_string_equal(l.items[5].run_id, "run-6"); /* tie: accepted order */
    assert_string_equal(l.items[8].run_id, "run-9");
    assert_non_null(l.items[0].request);
    ch_run_list_release(&l);
    assert_int_equal(ch_runs_list_unfinished(db, 2, &l), 0);
    assert_int_equal(l.count, 2);
    ch_run_list_release(&l);
    assert_int_equal(ch_runs_list_unfinished(db, 0, &l), CH_EINVAL);
    ch_db_close(db);
}

static void test_recovery(void **state)
{
    struct fixture *f = *state;
    struct ch_db *db = open_db(f);
    struct ch_run_rec g;
    int64_t n = -1;

    insert_ok(db, "q", NULL, 1);
    insert_ok(db, "r1", NULL, 2);
    insert_ok(db, "r2", NULL, 3);
    assert_int_equal(ch_runs_start(db, "r1", 10), 0);
    assert_int_equal(ch_runs_start(db, "r2", 10), 0);

    /* After a crash: put running runs back in the queue... */
    assert_int_equal(ch_runs_requeue_running(db, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(status_of(db, "r1"), CH_RUN_QUEUED);
    assert_int_equal(ch_runs_requeue_running(db, &n), 0);
    assert_int_equal(n, 0);
    /* ...and the replay counts as a second attempt. */
    assert_int_equal(ch_runs_start(db, "r1", 20), 0);
    assert_int_equal(ch_runs_get(db, "r1", &g), 0);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.started_ms, 20);
    ch_run_rec_release(&g);
    assert_int_equal(ch_runs_bump_attempts(db, "r1", &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ch_runs_bump_attempts(db, "r1", NULL), 0);
    assert_int_equal(ch_runs_bump_attempts(db, "nope", &n), CH_ENOTFOUND);
    assert_int_equal(n, 3);

    /* ...or fail them with a reason. */
    assert_int_equal(ch_runs_fail_running(db, "gateway restarted while the run was in flight", "interrupted", 30, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_runs_get(db, "r1", &g), 0);
    assert_int_equal(g.status, CH_RUN_ERROR);
    assert_string_equal(g.error, "gateway restarted while the run was in flight");
    assert_string_equal(g.error_class, "interrupted");
    assert_int_equal(g.finished_ms, 30);
    ch_run_rec_release(&g);
    assert_int_equal(status_of(db, "q"), CH_RUN_QUEUED); /* queued runs untouched */
    assert_int_equal(ch_runs_fail_running(db, "", NULL, 30, &n), CH_EINVAL);
    assert_int_equal(ch_runs_fail_running(db, "x", NULL, 30, NULL), 0);

    /* Prune finished runs before a time; this frees idempotency keys. */
    insert_ok(db, "k", "idem", 4);
    assert_int_equal(ch_runs_start(db, "k", 5), 0);
    assert_int_equal(ch_runs_finish(db, "k", &(struct ch_run_outcome){.status = CH_RUN_OK, .finished_ms = 40}), 0);
    assert_int_equal(ch_runs_prune(db, 35, 0, &n), 0);
    assert_int_equal(n, 1);                            /* r1 (30); not k (40), not the queued q or r2 */
    assert_int_equal(ch_runs_prune(db, 41, 1, &n), 0); /* a batch of one */
    assert_int_equal(n, 1);
    assert_int_equal(ch_runs_prune(db, 41, 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ch_runs_prune(db, 41, -1, &n), CH_EINVAL);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM runs"), 2);
    insert_ok(db, "k2", "idem", 50);
    ch_db_close(db);
}

/* ---- a whole turn in one group commit -------------------------------------- */

struct run_job {
    struct ch_store_job base;
    struct fixture *f;
    int idx;
    char idem[32];
    char *existing;
    int rc;
};

static struct run_job *run_jobs[16];

static int run_accept(struct ch_db *db, struct ch_store_job *job)
{
    struct run_job *j = (struct run_job *)job;
    char id[32];
    struct ch_run_rec r;

    snprintf(id, sizeof(id), "run-%d", j->idx);
    r = run_for(id, j->idem, j->idx);
    return ch_runs_insert(db, &r, &j->existing, NULL);
}

/* What the agent does when a turn ends, all in one job. */
static int run_whole_turn(struct ch_db *db, struct ch_store_job *job)
{
    struct ch_run_outcome o = {
        .status = CH_RUN_OK, .result = "{\"payloads\":[]}", .usage = {100, 10, 0, 0, 0.5}, .finished_ms = 90};
    struct ch_message_rec m = {.session_key = "hook:a", .content = "[]", .created_ms = 80};
    struct ch_session_rec s;
    int rc;

    if ((rc = ch_runs_start(db, "run-1", 70)) || (rc = ch_sessions_ensure(db, "hook:a", NULL, 70, &s, NULL)))
        return rc;
    m.session_id = s.session_id;
    snprintf(m.role, sizeof(m.role), "assistant");
    if ((rc = ch_messages_append(db, &m, NULL)) == 0 &&
        (rc = ch_sessions_add_usage(db, "hook:a", &o.usage, 110, "run-1", 90)) == 0 &&
        (rc = ch_usage_add(db, 90, "openai", "gpt-4o", 1, &o.usage)) == 0)
        rc = ch_runs_finish(db, "run-1", &o);
    ch_session_rec_release(&s);
    return rc;
}

static void on_run_done(struct ch_store_job *job, int rc)
{
    struct run_job *j = (struct run_job *)job;

    j->f->done++;
    j->rc = rc;
    if (rc == 0)
        j->f->done_ok++;
}

static void test_turn_in_group_commit(void **state)
{
    struct fixture *f = *state;
    struct ch_store_stats st;
    struct ch_usage_row tot;
    struct ch_run_rec g;
    struct ch_db *db;
    int i;

    open_store(f, 100, 100);
    submit_blocker(f, -1);
    for (i = 1; i <= 5; i++) {
        struct run_job *j = ch_calloc(1, sizeof(*j));

        assert_non_null(j);
        j->base.run = i == 5 ? run_whole_turn : run_accept;
        j->base.done = on_run_done;
        j->f = f;
        j->idx = i;
        /* Jobs 2 and 4 reuse the key of job 1 inside the same batch. */
        snprintf(j->idem, sizeof(j->idem), "idem-%d", i == 2 || i == 4 ? 1 : i);
        run_jobs[i] = j;
        assert_int_equal(ch_store_write(f->store, &j->base), 0);
    }
    uv_sem_post(&f->release);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->done, 6);
    assert_int_equal(run_jobs[1]->rc, 0);
    assert_int_equal(run_jobs[2]->rc, CH_EEXIST);
    assert_string_equal(run_jobs[2]->existing, "run-1");
    assert_int_equal(run_jobs[3]->rc, 0);
    assert_int_equal(run_jobs[4]->rc, CH_EEXIST);
    assert_int_equal(run_jobs[5]->rc, 0);
    ch_store_stats(f->store, &st);
    assert_int_equal(st.commits, 2);
    for (i = 1; i <= 5; i++) {
        ch_free(run_jobs[i]->existing);
        ch_free(run_jobs[i]);
    }
    close_store(f);

    db = db_open_or_fail(f->path, true, false);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(ch_runs_get(db, "run-1", &g), 0);
    assert_int_equal(g.status, CH_RUN_OK);
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.usage.input_tokens, 100);
    ch_run_rec_release(&g);
    assert_int_equal(db_query_int(db, "SELECT total_tokens FROM sessions"), 110);
    assert_int_equal(db_query_int(db, "SELECT COUNT(*) FROM messages"), 1);
    assert_int_equal(ch_usage_totals(db, NULL, NULL, &tot), 0);
    assert_int_equal(tot.requests, 1);
    assert_true(fabs(tot.usage.cost_usd - 0.5) < 1e-12);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get_and_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_turn_in_group_commit, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
