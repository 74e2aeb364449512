/*
 * test_devices.c: OpenClaw device pairing tables (store/devices.c, schema
 * version 4): a device with its hashed tokens round-trips, an update
 * replaces the tokens, the token compare (constant time on the hash),
 * input checks and caps, delete taking tokens and requests along, pending
 * requests (upsert, list from a cutoff, delete, prune), deep copies, and
 * the v3 -> v4 migration of an existing file.  Version 7: a token's tie to
 * an API token and a request's source round-trip, and a version-6 file's
 * rows come through untied and without a source.
 */
#include "store_test.h"

#include "store/internal.h"

struct fx {
    struct tmpdir dir;
    char path[512];
    struct ch_db *db;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

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
    free(f);
    return 0;
}

static const char *ID_A = "a3f1c0ffee00000000000000000000000000000000000000000000000000000a";

static struct ch_device_rec device(const char *id)
{
    struct ch_device_rec d = {0};

    d.device_id = (char *)id;
    d.public_key = "AAAAC3NzaC1lZDI1NTE5AAAAIA";
    d.platform = "linux";
    d.client_id = "cli";
    d.client_mode = "cli";
    d.remote_ip = "10.1.2.3";
    d.roles = "operator";
    d.scopes = "operator.read,operator.write";
    d.approved_via = "manual";
    d.created_ms = 1000;
    d.approved_ms = 2000;
    d.last_seen_ms = 3000;
    d.token_count = 1;
    snprintf(d.tokens[0].role, sizeof(d.tokens[0].role), "operator");
    ch_device_token_hash("secret-token", d.tokens[0].hash_hex);
    d.tokens[0].scopes = "operator.read";
    d.tokens[0].created_ms = 2000;
    d.tokens[0].api_token_id = 42;
    return d;
}

static void test_device_round_trip(void **state)
{
    struct fx *f = *state;
    struct ch_device_rec d = device(ID_A), copy;
    struct ch_device_list l;
    struct ch_error e = {0};

    assert_int_equal(ch_devices_put(f->db, &d, &e), 0);
    assert_int_equal(ch_devices_list(f->db, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].device_id, ID_A);
    assert_string_equal(l.items[0].scopes, "operator.read,operator.write");
    assert_null(l.items[0].display_name);
    assert_string_equal(l.items[0].remote_ip, "10.1.2.3");
    assert_int_equal(l.items[0].last_seen_ms, 3000);
    assert_int_equal(l.items[0].token_count, 1);
    assert_int_equal(l.items[0].tokens[0].api_token_id, 42);
    /* Only the hash is stored; the token matches it, others do not. */
    assert_true(ch_device_token_matches(&l.items[0].tokens[0], "secret-token"));
    assert_false(ch_device_token_matches(&l.items[0].tokens[0], "secret-tokeN"));
    assert_false(ch_device_token_matches(&l.items[0].tokens[0], ""));
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM device_tokens WHERE hash LIKE '%secret%'"), 0);

    /* Deep copy, then the update path: a second role's token, a revoked
     * first one; the token rows are replaced, not added. */
    assert_int_equal(ch_device_rec_copy(&copy, &l.items[0]), 0);
    ch_device_list_release(&l);
    assert_int_equal(copy.tokens[0].api_token_id, 42);
    copy.tokens[0].revoked_ms = 5000;
    copy.token_count = 2;
    memset(&copy.tokens[1], 0, sizeof(copy.tokens[1]));
    snprintf(copy.tokens[1].role, sizeof(copy.tokens[1].role), "node");
    ch_device_token_hash("node-token", copy.tokens[1].hash_hex);
    copy.tokens[1].scopes = ch_strdup("");
    ch_free(copy.roles);
    copy.roles = ch_strdup("operator,node");
    assert_int_equal(ch_devices_put(f->db, &copy, &e), 0);
    ch_device_rec_release(&copy);
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM device_tokens"), 2);
    assert_int_equal(ch_devices_list(f->db, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].roles, "operator,node");
    assert_int_equal(l.items[0].token_count, 2);
    for (size_t i = 0; i < 2; i++) {
        if (!strcmp(l.items[0].tokens[i].role, "operator")) {
            assert_int_equal(l.items[0].tokens[i].revoked_ms, 5000);
            assert_int_equal(l.items[0].tokens[i].api_token_id, 42);
        } else {
            assert_true(ch_device_token_matches(&l.items[0].tokens[i], "node-token"));
            assert_int_equal(l.items[0].tokens[i].api_token_id, 0);
        }
    }
    ch_device_list_release(&l);

    assert_int_equal(ch_devices_delete(f->db, ID_A), 0);
    assert_int_equal(ch_devices_delete(f->db, ID_A), CH_ENOTFOUND);
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM device_tokens"), 0);
    assert_int_equal(ch_devices_list(f->db, &l), 0);
    assert_int_equal(l.count, 0);
    ch_device_list_release(&l);
}

static void test_device_checks(void **state)
{
    struct fx *f = *state;
    struct ch_device_rec d = device(ID_A);
    struct ch_error e = {0};
    char big[CH_STORE_MAX_DEVICE_FIELD_BYTES + 2];

    d.device_id = NULL;
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    d = device(ID_A);
    d.public_key = "";
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    d = device(ID_A);
    d.platform = "lin\x01ux";
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    d = device(ID_A);
    d.display_name = big;
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_E_TOO_LARGE);
    d = device(ID_A);
    snprintf(d.tokens[0].role, sizeof(d.tokens[0].role), "root");
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    d = device(ID_A);
    d.tokens[0].hash_hex[3] = 'Z';
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    d = device(ID_A);
    d.token_count = 2;
    d.tokens[1] = d.tokens[0]; /* the same role twice */
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    d = device(ID_A);
    d.token_count = CH_DEVICE_MAX_TOKENS + 1;
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_EINVAL);
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM devices"), 0);
    assert_int_equal(ch_devices_delete(f->db, ""), CH_EINVAL);
}

static void test_device_cap(void **state)
{
    struct fx *f = *state;
    struct ch_device_rec d = device(ID_A);
    struct ch_error e = {0};
    char id[65];

    db_exec_or_fail(f->db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
                           " INSERT INTO devices(device_id, public_key, created_ms, approved_ms)"
                           " SELECT printf('%064d', i), 'k', 0, i FROM n");
    snprintf(id, sizeof(id), "%064d", 7);
    d.device_id = id; /* an update of an existing device still works */
    assert_int_equal(ch_devices_put(f->db, &d, &e), 0);
    d.device_id = (char *)ID_A;
    assert_int_equal(ch_devices_put(f->db, &d, &e), CH_E_TOO_LARGE);
    assert_non_null(strstr(e.msg, "at most 1000 devices"));
}

static struct ch_device_request_rec request(const char *rid, const char *dev, int64_t at)
{
    struct ch_device_request_rec r = {0};

    r.request_id = (char *)rid;
    r.device_id = (char *)dev;
    r.public_key = "key";
    r.client_id = "cli";
    r.remote_ip = "10.0.0.9";
    r.role = "operator";
    r.roles = "operator";
    r.scopes = "operator.read";
    r.is_repair = true;
    r.created_ms = at;
    return r;
}

static void test_requests(void **state)
{
    struct fx *f = *state;
    struct ch_device_request_rec r1 = request("r1", ID_A, 100), r2 = request("r2", "other", 200), copy;
    struct ch_device_request_list l;
    struct ch_error e = {0};
    int64_t removed = -1;

    r1.source = "token:5";
    assert_int_equal(ch_device_requests_put(f->db, &r1, &e), 0);
    assert_int_equal(ch_device_requests_put(f->db, &r2, &e), 0);
    r1.scopes = "operator.read,operator.admin"; /* upsert */
    assert_int_equal(ch_device_requests_put(f->db, &r1, &e), 0);
    assert_int_equal(ch_device_requests_list(f->db, 0, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].request_id, "r1");
    assert_string_equal(l.items[0].scopes, "operator.read,operator.admin");
    assert_true(l.items[0].is_repair);
    assert_null(l.items[0].platform);
    assert_string_equal(l.items[0].source, "token:5");
    assert_int_equal(ch_device_request_rec_copy(&copy, &l.items[1]), 0);
    ch_device_request_list_release(&l);
    assert_string_equal(copy.device_id, "other");
    assert_string_equal(copy.source, ""); /* none given */
    ch_device_request_rec_release(&copy);
    r2.source = "lin\x01ux";
    assert_int_equal(ch_device_requests_put(f->db, &r2, &e), CH_EINVAL);
    r2.source = NULL;

    assert_int_equal(ch_device_requests_list(f->db, 150, &l), 0); /* the cutoff */
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].request_id, "r2");
    ch_device_request_list_release(&l);

    r2.role = "admin";
    assert_int_equal(ch_device_requests_put(f->db, &r2, &e), CH_EINVAL);
    r2 = request("", "x", 1);
    assert_int_equal(ch_device_requests_put(f->db, &r2, &e), CH_EINVAL);

    assert_int_equal(ch_device_requests_delete(f->db, "r2"), 0);
    assert_int_equal(ch_device_requests_delete(f->db, "r2"), CH_ENOTFOUND);
    assert_int_equal(ch_device_requests_prune(f->db, 150, &removed), 0);
    assert_int_equal(removed, 1);

    /* Deleting a device drops its requests too. */
    r1 = request("r3", ID_A, 300);
    assert_int_equal(ch_device_requests_put(f->db, &r1, &e), 0);
    r1 = request("r4", "other", 300);
    assert_int_equal(ch_device_requests_put(f->db, &r1, &e), 0);
    struct ch_device_rec d = device(ID_A);
    assert_int_equal(ch_devices_put(f->db, &d, &e), 0);
    assert_int_equal(ch_devices_delete(f->db, ID_A), 0);
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM device_pairing_requests"), 1);
}

static void test_request_cap(void **state)
{
    struct fx *f = *state;
    struct ch_device_request_rec r = request("new", ID_A, 5);
    struct ch_device_request_list l;
    struct ch_error e = {0};

    db_exec_or_fail(f->db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 256)"
                           " INSERT INTO device_pairing_requests(request_id, device_id, public_key, role, created_ms)"
                           " SELECT 'q' || i, 'd', 'k', 'operator', i FROM n");
    assert_int_equal(ch_device_requests_put(f->db, &r, &e), CH_E_TOO_LARGE);
    r.request_id = "q3"; /* replacing one is fine */
    assert_int_equal(ch_device_requests_put(f->db, &r, &e), 0);
    db_exec_or_fail(f->db, "INSERT INTO device_pairing_requests(request_id, device_id, public_key, role, created_ms)"
                           " VALUES ('extra', 'd', 'k', 'operator', 999)");
    assert_int_equal(ch_device_requests_list(f->db, 0, &l), 0);
    assert_int_equal(l.count, CH_STORE_MAX_DEVICE_REQUESTS); /* the loader stays bounded */
    ch_device_request_list_release(&l);
}

/* A file at schema version 3 (before devices) migrates and keeps its data. */
static void test_migration_from_v3(void **state)
{
    struct fx *f = *state;
    struct ch_device_rec d = device(ID_A);
    struct ch_error e = {0};

    ch_db_close(f->db);
    f->db = db_open_or_fail(f->path, false, false);
    db_exec_or_fail(f->db, "DROP TABLE device_pairing_requests; DROP TABLE device_tokens; DROP TABLE devices;"
                           " PRAGMA user_version = 3;");
    db_exec_or_fail(f->db, "INSERT INTO meta(key, value) VALUES ('keep', 'me')");
    ch_db_close(f->db);
    f->db = db_open_or_fail(f->path, false, true);
    assert_true(ch_db_latest_version() >= 4);
    assert_int_equal(ch_db_schema_version(f->db), ch_db_latest_version());
    assert_int_equal(db_query_int(f->db, "SELECT count(*) FROM meta WHERE key = 'keep'"), 1);
    assert_int_equal(ch_devices_put(f->db, &d, &e), 0);
}

/* A version-6 file's devices and requests: untied and without a source,
 * so they behave as before; new rows take both. */
static void test_migration_from_v6(void **state)
{
    struct fx *f = *state;
    struct ch_device_rec d = device(ID_A);
    struct ch_device_request_rec r = request("r7", ID_A, 700);
    struct ch_device_list l;
    struct ch_device_request_list rl;
    struct ch_error e = {0};
    char path[512], hash[65], sql[512];
    struct ch_db *db;

    tmpdir_file(&f->dir, "v6.db", path, sizeof(path));
    db = db_open_or_fail(path, false, false);
    assert_int_equal(ch_db_migrate_to(db, 6, &e), 0);
    ch_device_token_hash("old-token", hash);
    db_exec_or_fail(db, "INSERT INTO devices(device_id, public_key, roles, scopes, approved_via, created_ms,"
                        " approved_ms) VALUES ('dev6', 'k', 'operator', 'operator.read', 'silent', 1, 2);"
                        "INSERT INTO device_pairing_requests(request_id, device_id, public_key, role, created_ms)"
                        " VALUES ('req6', 'dev7', 'k', 'operator', 5);");
    snprintf(sql, sizeof(sql),
             "INSERT INTO device_tokens(device_id, role, hash, scopes, created_ms)"
             " VALUES ('dev6', 'operator', '%s', 'operator.read', 3)",
             hash);
    db_exec_or_fail(db, sql);
    ch_db_close(db);

    db = db_open_or_fail(path, false, true);
    assert_true(ch_db_latest_version() >= 7);
    assert_int_equal(ch_db_schema_version(db), ch_db_latest_version());
    assert_int_equal(ch_devices_list(db, &l), 0);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.items[0].token_count, 1);
    assert_int_equal(l.items[0].tokens[0].api_token_id, 0);
    assert_true(ch_device_token_matches(&l.items[0].tokens[0], "old-token"));
    ch_device_list_release(&l);
    assert_int_equal(ch_device_requests_list(db, 0, &rl), 0);
    assert_int_equal(rl.count, 1);
    assert_string_equal(rl.items[0].source, "");
    ch_device_request_list_release(&rl);
    r.source = "addr:10.0.0.9";
    assert_int_equal(ch_devices_put(db, &d, &e), 0);
    assert_int_equal(ch_device_requests_put(db, &r, &e), 0);
    assert_int_equal(db_query_int(db, "SELECT api_token_id FROM device_tokens WHERE device_id = 'a3f1c0ffee"
                                      "00000000000000000000000000000000000000000000000000000a'"),
                     42);
    assert_int_equal(db_query_int(db, "SELECT count(*) FROM device_pairing_requests WHERE source = 'addr:10.0.0.9'"),
                     1);
    ch_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v6, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
