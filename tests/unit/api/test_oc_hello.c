/*
 * Unit tests for src/api/oc_hello.c: the handshake frames written as
 * text must be byte for byte what json_dumps(JSON_COMPACT) prints for the
 * jansson builders the methods use (ch_oc_presence_json,
 * ch_oc_health_json), strings escaped as jansson escapes them, and
 * hello-ok must carry the v3/v4 shapes in the order the old builder had.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/oc_internal.h"

struct tr {
    struct ch_buf last; /* the last frame sent, as text */
    json_t *frames;
};

static int tr_send(struct oc_conn *c, const char *p, size_t n)
{
    struct tr *t = c->transport;
    json_t *f = json_loadb(p, n, 0, NULL);

    assert_non_null(f);
    json_array_append_new(t->frames, f);
    ch_buf_reset(&t->last);
    return ch_buf_append(&t->last, p, n);
}

static void tr_close(struct oc_conn *c, uint16_t code, const char *reason)
{
    (void)c;
    fail_msg("unexpected close %u %s", code, reason);
}

static const struct oc_conn_ops tr_ops = {tr_send, tr_close, NULL};

static struct ch_api *api_new(void)
{
    static struct ch_limits limits;
    struct ch_config_errors errs = {0};
    struct ch_config *cfg = NULL;
    struct ch_api_opts o = {0};
    struct ch_api *a = NULL;
    struct ch_error err = {0};

    setenv("CHELA_GATEWAY_TOKEN", "unit-token", 1);
    assert_int_equal(ch_config_load(NULL, &cfg, &errs), 0);
    ch_config_limits(cfg, &limits);
    o.cfg = cfg;
    o.limits = &limits;
    o.state_dir = "/tmp/odd \"dir\"\\";
    assert_int_equal(ch_api_new(&o, &a, &err), 0);
    return a;
}

static void api_free(struct ch_api *a)
{
    const struct ch_config *cfg = a->cfg;

    ch_api_free(a);
    ch_config_free((struct ch_config *)cfg);
}

/* text must equal json_dumps(want, JSON_COMPACT); want is stolen. */
static void assert_same_text(const char *text, json_t *want)
{
    char *s = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);

    assert_non_null(s);
    if (strcmp(s, text) != 0)
        fail_msg("text differs:\n got: %s\nwant: %s", text, s);
    ch_free(s);
    json_decref(want);
}

static void test_jstr(void **state)
{
    static const char *const cases[] = {
        "",
        "plain",
        "q\"uote",
        "back\\slash",
        "sl/ash",
        "tab\tnl\ncr\rbs\bff\f",
        "\x01\x02\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    };
    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(cases); i++) {
        struct ch_buf b;
        ch_buf_init(&b, 1024);
        assert_int_equal(ch_buf_append_json_str(&b, cases[i], strlen(cases[i])), 0); /* core, as oc_hello uses it */
        assert_same_text(b.data, json_string(cases[i]));
        ch_buf_release(&b);
    }
}

static struct oc_conn *connect_one(struct ch_api *a, struct tr *t, int proto, const char *client_extra)
{
    char frame[2048];
    struct oc_conn *c = ch_oc_conn_open(a->oc, &tr_ops, t, true, "127.0.0.1");

    ch_oc_send_challenge(c);
    snprintf(frame, sizeof(frame),
             "{\"type\":\"req\",\"id\":\"id \\\"%d\\\"\",\"method\":\"connect\",\"params\":{\"minProtocol\":%d,"
             "\"maxProtocol\":%d,\"client\":{\"id\":\"gateway-client\",\"version\":\"1.\\u0001\",\"platform\":"
             "\"linux\",\"mode\":\"backend\"%s},\"auth\":{\"token\":\"unit-token\"},\"scopes\":[\"operator.read\","
             "\"operator.write\"]}}",
             proto, proto, proto, client_extra);
    ch_oc_conn_on_text(c, frame, strlen(frame));
    return c;
}

static void test_presence_health(void **state)
{
    struct ch_api *a = api_new();
    struct oc_conn *cs[20];
    struct tr t = {0};
    struct ch_buf b;
    (void)state;

    t.frames = json_array();
    ch_buf_init(&t.last, 1 << 20);
    ch_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < CH_ARRAY_SIZE(cs); i++)
        cs[i] = connect_one(a, &t, 4, i % 3 ? ",\"displayName\":\"h\\\"o\\\\st\\n\",\"instanceId\":\"i\xc3\xa9\"" : "");
    /* Over the cap of 16, newest first, empty strings left out. */
    assert_int_equal(ch_oc_presence_append(a->oc, &b), 0);
    assert_same_text(b.data, ch_oc_presence_json(a->oc));
    /* Health with no sessions read yet, then with some. */
    ch_buf_reset(&b);
    assert_int_equal(ch_oc_health_append(a->oc, &b, 1234), 0);
    {
        json_t *h = ch_oc_health_json(a->oc);
        json_object_set_new(h, "ts", json_integer(1234));
        assert_same_text(b.data, h);
    }
    a->oc->health_sessions = json_pack("{s:s, s:i, s:[{s:s, s:I, s:n}]}", "path", "/x/\"db\"", "count", 1, "recent",
                                       "key", "agent:main:\x01", "updatedAt", (json_int_t)5, "x");
    ch_buf_reset(&b);
    assert_int_equal(ch_oc_health_append(a->oc, &b, 99), 0);
    {
        json_t *h = ch_oc_health_json(a->oc);
        json_object_set_new(h, "ts", json_integer(99));
        assert_same_text(b.data, h);
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(cs); i++)
        ch_oc_conn_closed(cs[i]);
    ch_buf_release(&b);
    ch_buf_release(&t.last);
    json_decref(t.frames);
    api_free(a);
}

/* The keys of object o, in order, joined by ','. */
static void keys_of(const json_t *o, char *out, size_t n)
{
    const char *k;
    json_t *v;
    size_t len = 0;

    out[0] = '\0';
    json_object_foreach((json_t *)o, k, v) len += (size_t)snprintf(out + len, n - len, "%s%s", len ? "," : "", k);
}

static void test_hello_ok_shape(void **state)
{
    struct ch_api *a = api_new();
    struct tr t = {0};
    char keys[512];
    (void)state;

    t.frames = json_array();
    ch_buf_init(&t.last, 1 << 20);
    for (int proto = 3; proto <= 4; proto++) {
        struct oc_conn *c = connect_one(a, &t, proto, ",\"displayName\":\"d\"");
        json_t *f = json_loadb(t.last.data, t.last.len, JSON_DECODE_ANY, NULL);
        json_t *p = json_object_get(f, "payload"), *snap = json_object_get(p, "snapshot"), *m;

        /* Canonical jansson text: loading and dumping gives it back. */
        assert_same_text(t.last.data, json_incref(f));
        assert_string_equal(json_string_value(json_object_get(f, "id")), proto == 3 ? "id \"3\"" : "id \"4\"");
        keys_of(f, keys, sizeof(keys));
        assert_string_equal(keys, "type,id,ok,payload");
        keys_of(p, keys, sizeof(keys));
        assert_string_equal(keys, "type,protocol,server,features,snapshot,auth,policy");
        keys_of(json_object_get(p, "server"), keys, sizeof(keys));
        assert_string_equal(keys, proto == 4 ? "version,connId,bootId" : "version,connId");
        keys_of(json_object_get(p, "features"), keys, sizeof(keys));
        assert_string_equal(keys, proto == 4 ? "methods,events,capabilities" : "methods,events");
        keys_of(snap, keys, sizeof(keys));
        assert_string_equal(keys, "presence,health,stateVersion,uptimeMs,stateDir,sessionDefaults,authMode");
        assert_string_equal(json_string_value(json_object_get(snap, "stateDir")), "/tmp/odd \"dir\"\\");
        m = ch_oc_methods_json();
        assert_true(json_equal(m, json_object_get(json_object_get(p, "features"), "methods")));
        json_decref(m);
        {
            char *auth = json_dumps(json_object_get(p, "auth"), JSON_COMPACT);
            assert_same_text(
                auth, json_pack("{s:s, s:[s, s]}", "role", "operator", "scopes", "operator.read", "operator.write"));
            ch_free(auth);
        }
        assert_int_equal(json_integer_value(json_object_get(p, "protocol")), proto);
        assert_string_equal(json_string_value(json_object_get(json_object_get(p, "server"), "connId")), c->conn_id);
        json_decref(f);
        ch_oc_conn_closed(c);
    }
    ch_buf_release(&t.last);
    json_decref(t.frames);
    api_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jstr),
        cmocka_unit_test(test_presence_health),
        cmocka_unit_test(test_hello_ok_shape),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
