/*
 * test_tokens.c: scopes parsing and formatting, and the tokens table:
 * insert, list, revoke by name and by secret, duplicate live names, touch,
 * live count, input validation (store/tokens.c).
 */
#include "store_test.h"

struct fixture {
    struct tmpdir dir;
    struct ch_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[512];

    tmpdir_make(&f->dir);
    tmpdir_file(&f->dir, "tokens.db", path, sizeof(path));
    f->db = db_open_or_fail(path, false, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    ch_db_close(f->db);
    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

/* A record for `secret`, hashed as the CLI would. */
static struct ch_token_rec rec_for(const char *name, const char *secret, unsigned scopes)
{
    struct ch_token_rec t = {0};

    t.name = (char *)name;
    ch_sha256_hex(secret, strlen(secret), t.hash_hex);
    t.scopes = scopes;
    t.created_ms = 1000;
    return t;
}

/* ------------------------------------------------------------------ */

static void test_scopes_parse(void **state)
{
    struct ch_error e = {0};
    unsigned m = 0;

    assert_int_equal(ch_scopes_parse("chat", &m, &e), 0);
    assert_int_equal(m, CH_SCOPE_CHAT);
    assert_int_equal(ch_scopes_parse("chat,send,read,admin", &m, &e), 0);
    assert_int_equal(m, CH_SCOPE_CHAT | CH_SCOPE_SEND | CH_SCOPE_READ | CH_SCOPE_ADMIN);
    assert_int_equal(ch_scopes_parse("  read ,\tchat  ", &m, &e), 0);
    assert_int_equal(m, CH_SCOPE_READ | CH_SCOPE_CHAT);
    assert_int_equal(ch_scopes_parse("send,send", &m, &e), 0); /* repeats are harmless */
    assert_int_equal(m, CH_SCOPE_SEND);

    m = 77;
    assert_int_equal(ch_scopes_parse("chat,Admin", &m, &e), CH_EINVAL); /* case-sensitive */
    assert_int_equal(m, 77);                                            /* untouched */
    assert_int_equal(e.code, CH_EINVAL);
    assert_non_null(strstr(e.msg, "'Admin'"));
    assert_non_null(strstr(e.msg, "chat, send, read, admin"));
    assert_int_equal(ch_scopes_parse("chat,,read", &m, &e), CH_EINVAL);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(ch_scopes_parse("chat,", &m, &e), CH_EINVAL);
    assert_int_equal(ch_scopes_parse(",chat", &m, &e), CH_EINVAL);
    assert_int_equal(ch_scopes_parse("chat, ,read", &m, &e), CH_EINVAL);
    assert_int_equal(ch_scopes_parse("", &m, &e), CH_EINVAL);
    assert_int_equal(ch_scopes_parse("   ", &m, &e), CH_EINVAL);
    assert_int_equal(ch_scopes_parse(NULL, &m, NULL), CH_EINVAL);
    assert_int_equal(ch_scopes_parse("chatx", &m, NULL), CH_EINVAL);
    assert_int_equal(ch_scopes_parse("ch at", &m, NULL), CH_EINVAL);
}

static void test_scopes_parse_limit(void **state)
{
    char big[400];
    unsigned m;
    size_t i;

    /* 256 bytes of valid list is fine; past the cap it is refused. */
    for (i = 0; i + 5 + 4 <= 256; i += 5)
        memcpy(big + i, "chat,", 5);
    memcpy(big + i, "chat", 4);
    big[i + 4] = '\0';
    assert_true(strlen(big) <= 256);
    assert_int_equal(ch_scopes_parse(big, &m, NULL), 0);
    for (i = 0; i + 5 < sizeof(big); i += 5)
        memcpy(big + i, "chat,", 5);
    memcpy(big + i - 1, "\0", 1);
    assert_true(strlen(big) > 256);
    assert_int_equal(ch_scopes_parse(big, &m, NULL), CH_EINVAL);
}

static void test_scopes_format(void **state)
{
    char out[32], tiny[10];
    unsigned m;

    ch_scopes_format(CH_SCOPE_ADMIN | CH_SCOPE_CHAT | CH_SCOPE_READ | CH_SCOPE_SEND, out, sizeof(out));
    assert_string_equal(out, "chat,send,read,admin");
    ch_scopes_format(CH_SCOPE_READ | CH_SCOPE_CHAT, out, sizeof(out));
    assert_string_equal(out, "chat,read");
    ch_scopes_format(0, out, sizeof(out));
    assert_string_equal(out, "");
    ch_scopes_format(CH_SCOPE_SEND | 0x100, out, sizeof(out)); /* unknown bits dropped */
    assert_string_equal(out, "send");
    /* Too small: whole names only, always terminated. */
    ch_scopes_format(CH_SCOPE_CHAT | CH_SCOPE_SEND | CH_SCOPE_READ, tiny, sizeof(tiny));
    assert_string_equal(tiny, "chat,send");
    ch_scopes_format(CH_SCOPE_CHAT, tiny, 4);
    assert_string_equal(tiny, "");
    /* Round trip. */
    for (m = 1; m < 16; m++) {
        unsigned back = 0;

        ch_scopes_format(m, out, sizeof(out));
        assert_int_equal(ch_scopes_parse(out, &back, NULL), 0);
        assert_int_equal(back, m);
    }
}

/* ------------------------------------------------------------------ */

static void test_insert_list(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec a = rec_for("ci", "oc_tok_aaaa", CH_SCOPE_CHAT);
    struct ch_token_rec b = rec_for("bot", "oc_tok_bbbb", CH_SCOPE_SEND | CH_SCOPE_READ);
    struct ch_token_list l = {0};
    struct ch_error e = {0};

    b.rate_limit_rpm = 60;
    b.expires_ms = 999999;
    b.source = "bootstrap";
    assert_int_equal(ch_tokens_insert(f->db, &a, &e), 0);
    assert_int_equal(ch_tokens_insert(f->db, &b, &e), 0);
    assert_int_equal(ch_tokens_count_live(f->db), 2);

    assert_int_equal(ch_tokens_list(f->db, false, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].name, "ci");
    assert_string_equal(l.items[0].hash_hex, a.hash_hex);
    assert_int_equal(l.items[0].scopes, CH_SCOPE_CHAT);
    assert_string_equal(l.items[0].source, "cli"); /* default */
    assert_int_equal(l.items[0].created_ms, 1000);
    assert_int_equal(l.items[0].last_used_ms, 0);
    assert_int_equal(l.items[0].revoked_ms, 0);
    assert_string_equal(l.items[1].name, "bot");
    assert_int_equal(l.items[1].rate_limit_rpm, 60);
    assert_int_equal(l.items[1].expires_ms, 999999);
    assert_string_equal(l.items[1].source, "bootstrap");
    assert_true(l.items[0].id < l.items[1].id);
    ch_token_list_release(&l);
    assert_null(l.items);
    assert_int_equal(l.count, 0);
    ch_token_list_release(&l); /* twice is fine */

    /* The secret itself is stored nowhere. */
    assert_int_equal(db_query_int(f->db, "SELECT COUNT(*) FROM tokens WHERE hash LIKE 'oc_tok%'"
                                         " OR name LIKE 'oc_tok%'"),
                     0);
}

static void test_duplicate_live_name(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec a = rec_for("ci", "oc_tok_one", CH_SCOPE_CHAT);
    struct ch_token_rec dup = rec_for("ci", "oc_tok_two", CH_SCOPE_CHAT);
    struct ch_token_rec same_hash = rec_for("other", "oc_tok_one", CH_SCOPE_CHAT);
    struct ch_token_list l = {0};
    struct ch_error e = {0};

    assert_int_equal(ch_tokens_insert(f->db, &a, &e), 0);
    assert_int_equal(ch_tokens_insert(f->db, &dup, &e), CH_EEXIST);
    assert_int_equal(e.code, CH_EEXIST);
    assert_non_null(strstr(e.msg, "'ci'"));
    assert_int_equal(ch_tokens_insert(f->db, &same_hash, &e), CH_EEXIST);
    assert_int_equal(ch_tokens_count_live(f->db), 1);

    /* After revoking, the name is free again; the revoked row stays. */
    assert_int_equal(ch_tokens_revoke(f->db, "ci", 5000), 0);
    assert_int_equal(ch_tokens_insert(f->db, &dup, &e), 0);
    assert_int_equal(ch_tokens_count_live(f->db), 1);
    assert_int_equal(ch_tokens_list(f->db, true, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].revoked_ms, 5000);
    assert_int_equal(l.items[1].revoked_ms, 0);
    ch_token_list_release(&l);
    assert_int_equal(ch_tokens_list(f->db, false, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].hash_hex, dup.hash_hex);
    ch_token_list_release(&l);
}

static void test_duplicate_inside_transaction(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec a = rec_for("x", "oc_tok_1", CH_SCOPE_CHAT);
    struct ch_token_rec dup = rec_for("x", "oc_tok_2", CH_SCOPE_CHAT);
    struct ch_token_rec c = rec_for("y", "oc_tok_3", CH_SCOPE_CHAT);

    /* A failing insert inside a caller's transaction undoes only itself. */
    assert_int_equal(ch_db_begin(f->db), 0);
    assert_int_equal(ch_tokens_insert(f->db, &a, NULL), 0);
    assert_int_equal(ch_tokens_insert(f->db, &dup, NULL), CH_EEXIST);
    assert_int_equal(ch_tokens_insert(f->db, &c, NULL), 0);
    assert_int_equal(ch_db_commit(f->db), 0);
    assert_int_equal(ch_tokens_count_live(f->db), 2);
}

static void test_revoke(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec a = rec_for("ci", "oc_tok_secret_a", CH_SCOPE_CHAT);
    struct ch_token_rec b = rec_for("bot", "oc_tok_secret_b", CH_SCOPE_CHAT);

    assert_int_equal(ch_tokens_insert(f->db, &a, NULL), 0);
    assert_int_equal(ch_tokens_insert(f->db, &b, NULL), 0);

    /* By name. */
    assert_int_equal(ch_tokens_revoke(f->db, "ci", 10), 0);
    assert_int_equal(ch_tokens_revoke(f->db, "ci", 11), CH_ENOTFOUND); /* twice */
    assert_int_equal(ch_tokens_count_live(f->db), 1);
    /* By secret (hashed, matched on the hash). */
    assert_int_equal(ch_tokens_revoke(f->db, "oc_tok_secret_x", 12), CH_ENOTFOUND);
    assert_int_equal(ch_tokens_revoke(f->db, "oc_tok_secret_b", 12), 0);
    assert_int_equal(ch_tokens_revoke(f->db, "oc_tok_secret_b", 13), CH_ENOTFOUND);
    assert_int_equal(ch_tokens_count_live(f->db), 0);
    /* The hash itself is not accepted as a name. */
    assert_int_equal(ch_tokens_revoke(f->db, a.hash_hex, 14), CH_ENOTFOUND);
    assert_int_equal(ch_tokens_revoke(f->db, "nobody", 14), CH_ENOTFOUND);
    assert_int_equal(ch_tokens_revoke(f->db, "", 14), CH_EINVAL);
    assert_int_equal(ch_tokens_revoke(f->db, NULL, 14), CH_EINVAL);
    /* now_ms 0 would mean "live": it is stored as 1. */
    b = rec_for("z", "oc_tok_z", CH_SCOPE_CHAT);
    assert_int_equal(ch_tokens_insert(f->db, &b, NULL), 0);
    assert_int_equal(ch_tokens_revoke(f->db, "z", 0), 0);
    assert_int_equal(db_query_int(f->db, "SELECT revoked_ms FROM tokens WHERE name = 'z'"), 1);
}

static void test_touch(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec a = rec_for("a", "oc_tok_a", CH_SCOPE_CHAT);
    struct ch_token_rec b = rec_for("b", "oc_tok_b", CH_SCOPE_CHAT);
    char hashes[3][65];
    int64_t when[3] = {500, 700, 900};
    struct ch_token_list l = {0};

    assert_int_equal(ch_tokens_insert(f->db, &a, NULL), 0);
    assert_int_equal(ch_tokens_insert(f->db, &b, NULL), 0);
    memcpy(hashes[0], a.hash_hex, 65);
    memcpy(hashes[1], b.hash_hex, 65);
    ch_sha256_hex("unknown", 7, hashes[2]); /* unknown hashes are ignored */
    assert_int_equal(ch_tokens_touch(f->db, (const char(*)[65])hashes, when, 3), 0);
    assert_int_equal(ch_tokens_list(f->db, false, &l), 0);
    assert_int_equal(l.items[0].last_used_ms, 500);
    assert_int_equal(l.items[1].last_used_ms, 700);
    ch_token_list_release(&l);

    /* Never backwards. */
    when[0] = 100;
    assert_int_equal(ch_tokens_touch(f->db, (const char(*)[65])hashes, when, 1), 0);
    assert_int_equal(db_query_int(f->db, "SELECT last_used_ms FROM tokens WHERE name = 'a'"), 500);
    assert_int_equal(ch_tokens_touch(f->db, NULL, NULL, 0), 0);
    assert_int_equal(ch_tokens_touch(f->db, NULL, when, 2), CH_EINVAL);
}

static void test_insert_validation(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec t = rec_for("ok", "oc_tok_v", CH_SCOPE_CHAT);
    struct ch_error e = {0};
    char longname[80];

    t.name = "";
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.name = NULL;
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    t.name = longname;
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    longname[64] = '\0';
    t.name = "oc_tok_looks_like_a_secret";
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    assert_non_null(strstr(e.msg, "oc_tok_"));
    t.name = "tab\there";
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.name = "ok";
    t.scopes = 0;
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.scopes = 0x20;
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.scopes = CH_SCOPE_READ;
    t.hash_hex[3] = 'G';
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    assert_non_null(strstr(e.msg, "hex"));
    ch_sha256_hex("x", 1, t.hash_hex);
    t.rate_limit_rpm = -1;
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.rate_limit_rpm = 0;
    t.source = "";
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), CH_EINVAL);
    t.source = "cli";
    assert_int_equal(ch_tokens_insert(f->db, NULL, &e), CH_EINVAL);
    assert_int_equal(ch_tokens_count_live(f->db), 0);
    t.name = longname; /* exactly 64 bytes */
    assert_int_equal(ch_tokens_insert(f->db, &t, &e), 0);
    assert_int_equal(ch_tokens_revoke(f->db, longname, 1), 0);
}

static void test_readonly_refuses_writes(void **state)
{
    struct fixture *f = *state;
    struct ch_token_rec t = rec_for("ro", "oc_tok_ro", CH_SCOPE_CHAT);
    struct ch_token_list l = {0};
    struct ch_db *ro;
    char path[512];

    assert_int_equal(ch_tokens_insert(f->db, &t, NULL), 0);
    tmpdir_file(&f->dir, "tokens.db", path, sizeof(path));
    ro = db_open_or_fail(path, true, false);
    assert_int_equal(ch_tokens_list(ro, false, &l), 0);
    assert_int_equal(l.count, 1);
    ch_token_list_release(&l);
    assert_int_equal(ch_tokens_revoke(ro, "ro", 5), CH_EPERM);
    t.name = "ro2";
    ch_sha256_hex("oc_tok_ro2", 10, t.hash_hex);
    assert_int_equal(ch_tokens_insert(ro, &t, NULL), CH_EPERM);
    ch_db_close(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes_parse),
        cmocka_unit_test(test_scopes_parse_limit),
        cmocka_unit_test(test_scopes_format),
        cmocka_unit_test_setup_teardown(test_insert_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_live_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_inside_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_refuses_writes, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    ch_log_setup(CH_LOG_ERROR, CH_LOG_TEXT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
