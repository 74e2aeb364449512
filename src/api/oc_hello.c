/*
 * oc_hello.c: the handshake's two server frames, connect.challenge and
 * hello-ok, written straight into a buffer instead of built as a jansson
 * tree and serialised: they are most of a handshake's CPU time otherwise
 * (hello-ok carries the method list, the presence list and health).  The
 * text is byte for byte what json_dumps(JSON_COMPACT) gave for the same
 * values, key order included (tests/unit/api/test_oc_hello.c checks it
 * against the jansson builders, which the methods still use).  The
 * constant part (features) is rendered once per process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

#define HELLO_MAX_BYTES (4u << 20) /* sessions "recent" is the only unbounded part */

/* A C string as a JSON string, jansson's escapes (core). */
static int jstr(struct ch_buf *b, const char *s)
{
    return ch_buf_append_json_str(b, s, strlen(s));
}

/* The pieces (C strings, a list ended by CAT_END: a typed null pointer,
 * as a bare NULL may be an int) appended with one reservation: printf
 * costs more than all the rest of a frame. */
#define CAT_END ((const char *)NULL)

static int cat(struct ch_buf *b, ...)
{
    const char *s;
    size_t n = 0;
    va_list ap;
    int rc;

    va_start(ap, b);
    while ((s = va_arg(ap, const char *)) != NULL)
        n += strlen(s);
    va_end(ap);
    if ((rc = ch_buf_reserve(b, n + 1)) != 0)
        return rc;
    va_start(ap, b);
    while ((s = va_arg(ap, const char *)) != NULL) {
        size_t k = strlen(s);
        memcpy(b->data + b->len, s, k);
        b->len += k;
    }
    va_end(ap);
    b->data[b->len] = '\0';
    return 0;
}

/* v in decimal, as %lld prints it; out holds 21 bytes. */
static const char *num(char out[21], long long v)
{
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    char *p = out + 20;

    *p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return p;
}

/* json_dumps(v, JSON_COMPACT) appended, without its allocation. */
static int append_json(struct ch_buf *b, const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc;

    if (n == 0)
        return CH_ENOMEM;
    if ((rc = ch_buf_reserve(b, n + 1)) != 0)
        return rc;
    json_dumpb(v, b->data + b->len, n, JSON_COMPACT | JSON_ENCODE_ANY);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* `"methods":[...],"events":[...]`: fixed tables, rendered once (or
 * every time, should they ever outgrow the static copy). */
static int append_features(struct ch_buf *b)
{
    static char text[4096];
    static size_t len;
    struct ch_buf t;
    json_t *m, *e;
    int rc;

    if (len)
        return ch_buf_append(b, text, len);
    m = ch_oc_methods_json();
    e = ch_oc_events_json();
    ch_buf_init(&t, 1 << 20);
    rc = m && e ? 0 : CH_ENOMEM;
    rc = rc ? rc : ch_buf_append_str(&t, "\"methods\":");
    rc = rc ? rc : append_json(&t, m);
    rc = rc ? rc : ch_buf_append_str(&t, ",\"events\":");
    rc = rc ? rc : append_json(&t, e);
    if (rc == 0 && t.len < sizeof(text)) {
        memcpy(text, t.data, t.len);
        len = t.len;
    }
    rc = rc ? rc : ch_buf_append(b, t.data, t.len);
    ch_buf_release(&t);
    json_decref(m);
    json_decref(e);
    return rc;
}

int ch_oc_presence_append(struct ch_oc *oc, struct ch_buf *b)
{
    int rc = ch_buf_append_char(b, '[');
    size_t n = 0;

    /* Newest first, capped: as ch_oc_presence_json. */
    for (struct oc_conn *c = oc->authed.prev; rc == 0 && c != &oc->authed && n < OC_PRESENCE_MAX; c = c->prev) {
        const char *kv[][2] = {{"host", c->display_name},      {"ip", c->addr[0] ? c->addr : NULL},
                               {"version", c->client_version}, {"platform", c->platform},
                               {"mode", c->client_mode},       {"deviceId", c->device_id},
                               {"instanceId", c->instance_id}};

        if (!c->in_presence)
            continue;
        char ts[21];
        const char *at = num(ts, c->opened_ms);

        rc = cat(b, n ? ",{\"ts\":" : "{\"ts\":", at, ",\"roles\":[\"", c->role ? c->role : "operator",
                 "\"],\"scopes\":", CAT_END);
        rc = rc ? rc : ch_oc_scopes_append(b, c->scopes);
        for (size_t i = 0; rc == 0 && i < CH_ARRAY_SIZE(kv); i++) {
            if (!kv[i][1] || !*kv[i][1])
                continue;
            rc = cat(b, ",\"", kv[i][0], "\":", CAT_END);
            rc = rc ? rc : jstr(b, kv[i][1]);
        }
        rc = rc ? rc : cat(b, ",\"onlineSince\":", at, ",\"reason\":\"connect\"}", CAT_END);
        n++;
    }
    return rc ? rc : ch_buf_append_char(b, ']');
}

int ch_oc_health_append(struct ch_oc *oc, struct ch_buf *b, int64_t now_ms)
{
    size_t start, slen;
    char ts[21];
    int rc;

    rc = cat(b, "{\"ok\":true,\"ts\":", num(ts, now_ms),
             ",\"durationMs\":0,\"channels\":{},\"channelOrder\":[],"
             "\"channelLabels\":{},\"heartbeatSeconds\":0,\"defaultAgentId\":\"main\",\"agents\":[{"
             "\"agentId\":\"main\",\"isDefault\":true,\"heartbeat\":{\"enabled\":false,\"every\":\"0m\","
             "\"everyMs\":null,\"prompt\":\"\",\"target\":\"none\",\"ackMaxChars\":300},\"sessions\":",
             CAT_END);
    start = b->len;
    if (rc == 0 && oc->health_sessions) {
        rc = append_json(b, oc->health_sessions);
    } else if (rc == 0) {
        const char *path = oc->api->store ? ch_store_path(oc->api->store) : "";
        rc = ch_buf_append_str(b, "{\"path\":");
        rc = rc ? rc : jstr(b, path ? path : "");
        rc = rc ? rc : ch_buf_append_str(b, ",\"count\":0,\"recent\":[]}");
    }
    slen = b->len - start;
    rc = rc ? rc : ch_buf_append_str(b, "}],\"sessions\":");
    /* The same sessions object again, at the top level: reserved first,
     * so the copy's source does not move under it. */
    rc = rc ? rc : ch_buf_reserve(b, slen + 1);
    rc = rc ? rc : ch_buf_append(b, b->data + start, slen);
    return rc ? rc : ch_buf_append_char(b, '}');
}

void ch_oc_send_challenge(struct oc_conn *c)
{
    char f[256];
    int n;

    ch_uuid4(c->nonce);
    /* v4 adds the server's capabilities; v3 clients ignore the key, and
     * the version is not known yet (the challenge precedes connect). */
    n = snprintf(f, sizeof(f),
                 "{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{\"nonce\":\"%s\",\"ts\":%lld,"
                 "\"capabilities\":[\"model-catalog-snapshot\"]}}",
                 c->nonce, (long long)ch_now_ms());
    if (n > 0 && (size_t)n < sizeof(f))
        ch_oc_send_text(c, f, (size_t)n);
}

/* The snapshot object of hello-ok (spec 1.5). */
static int append_snapshot(struct oc_conn *c, struct ch_buf *b, int64_t now)
{
    struct ch_oc *oc = c->oc;
    struct ch_api *a = oc->api;
    const char *mode = ch_config_str(a->cfg, "gateway.auth.mode", "token");
    char pv[21], hv[21], up[21];
    int rc;

    rc = ch_buf_append_str(b, "{\"presence\":");
    rc = rc ? rc : ch_oc_presence_append(oc, b);
    rc = rc ? rc : ch_buf_append_str(b, ",\"health\":");
    rc = rc ? rc : ch_oc_health_append(oc, b, now);
    rc = rc ? rc
            : cat(b, ",\"stateVersion\":{\"presence\":", num(pv, (long long)oc->presence_version),
                  ",\"health\":", num(hv, (long long)oc->health_version),
                  "},\"uptimeMs\":", num(up, now - oc->started_ms), ",\"stateDir\":", CAT_END);
    rc = rc ? rc : jstr(b, a->state_dir ? a->state_dir : "");
    rc = rc ? rc
            : cat(b,
                  ",\"sessionDefaults\":{\"defaultAgentId\":\"main\",\"mainKey\":\"main\","
                  "\"mainSessionKey\":\"agent:main:main\",\"scope\":\"per-sender\"},\"authMode\":\"",
                  !strcmp(mode, "none")       ? "none"
                  : !strcmp(mode, "password") ? "password"
                                              : "token",
                  "\"", CAT_END);
    if (rc == 0 && a->cfg && a->cfg->path) {
        rc = ch_buf_append_str(b, ",\"configPath\":");
        rc = rc ? rc : jstr(b, a->cfg->path);
    }
    return rc ? rc : ch_buf_append_char(b, '}');
}

int ch_oc_send_hello_ok(struct oc_conn *c, const char *id, const struct oc_pair_grant *g)
{
    struct ch_oc *oc = c->oc;
    char proto[21], mp[21], mb[21], ti[21];
    struct ch_buf b;
    int rc;

    ch_buf_init(&b, HELLO_MAX_BYTES);
    /* Most of it at once: hello-ok is 1.5-8 KiB (16 presence entries). */
    rc = ch_buf_reserve(&b, 4096);
    rc = rc ? rc : ch_buf_append_str(&b, "{\"type\":\"res\",\"id\":");
    rc = rc ? rc : jstr(&b, id ? id : "");
    rc = rc ? rc
            : cat(&b, ",\"ok\":true,\"payload\":{\"type\":\"hello-ok\",\"protocol\":", num(proto, c->protocol),
                  ",\"server\":{\"version\":\"" CH_VERSION "\",\"connId\":\"", c->conn_id, "\"", CAT_END);
    if (rc == 0 && c->protocol >= 4)
        rc = cat(&b, ",\"bootId\":\"", oc->boot_id, "\"", CAT_END);
    rc = rc ? rc : ch_buf_append_str(&b, "},\"features\":{");
    rc = rc ? rc : append_features(&b);
    rc = rc ? rc : ch_buf_append_str(&b, c->protocol >= 4 ? ",\"capabilities\":[]},\"snapshot\":" : "},\"snapshot\":");
    rc = rc ? rc : append_snapshot(c, &b, ch_now_ms());
    rc = rc ? rc : cat(&b, ",\"auth\":{\"role\":\"", c->role ? c->role : "operator", "\",\"scopes\":", CAT_END);
    rc = rc ? rc : ch_oc_scopes_append(&b, c->scopes);
    rc = rc ? rc : ch_oc_pairing_hello_append(&b, g);
    rc = rc ? rc
            : cat(&b, "},\"policy\":{\"maxPayload\":", num(mp, oc->max_payload),
                  ",\"maxBufferedBytes\":", num(mb, oc->max_buffered),
                  ",\"tickIntervalMs\":", num(ti, oc->tick_interval_ms), "}}}", CAT_END);
    if (rc == 0)
        rc = ch_oc_send_text(c, b.data, b.len);
    else
        ch_log_error("ws %s: cannot render hello-ok: %s", c->conn_id, ch_strerror(rc));
    if (g && g->device_token && b.data)
        ch_wipe(b.data, b.cap); /* it held the device token */
    ch_buf_release(&b);
    return rc;
}
