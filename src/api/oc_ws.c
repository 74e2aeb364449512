/*
 * oc_ws.c: the OpenClaw gateway WebSocket connections (spec 1.1-1.3, 1.6).
 *
 * State machine, one setter (conn_set_state), STYLE.md 8.5:
 *   CHALLENGED --connect ok--> AUTHED --close/error--> CLOSING
 *        \------------------ bad handshake/timeout ----^
 * A connection is CHALLENGED from the upgrade on: it got connect.challenge
 * and may send nothing but `connect`, in at most 64 KiB, within
 * gateway.ws.handshakeTimeoutMs (checked by the 1 Hz net tick, oldest
 * first, so no timer per connection).  AUTHED raises the message cap to
 * policy.maxPayload and receives events; one uv timer ticks every AUTHED
 * connection.  The transport is behind struct oc_conn_ops, so the unit
 * tests and the fuzzer drive the same code without sockets.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"
#include "ws/ws.h"

#define PREAUTH_MAX_BYTES (64 * 1024) /* spec 1.1: MAX_PREAUTH_PAYLOAD_BYTES */

static const char *const state_name[] = {"challenged", "authed", "closing"};

/* ---- lists ---- */

static void list_init(struct oc_conn *head)
{
    head->next = head->prev = head;
}

static void list_unlink(struct oc_conn *c)
{
    if (!c->listed)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->listed = false;
}

static void list_append(struct oc_conn *head, struct oc_conn *c)
{
    c->prev = head->prev;
    c->next = head;
    head->prev->next = c;
    head->prev = c;
    c->listed = true;
}

/* The only place that changes c->state. */
static void conn_set_state(struct oc_conn *c, enum oc_state s)
{
    struct ch_oc *oc = c->oc;

    if (c->state == s)
        return;
    ch_log_debug("ws %s: %s -> %s", c->conn_id, state_name[c->state], state_name[s]);
    if (c->listed) {
        if (c->state == OC_CHALLENGED)
            oc->n_pending--;
        else if (c->state == OC_AUTHED)
            oc->n_authed--;
        list_unlink(c);
    }
    c->state = (uint8_t)s;
    if (s == OC_AUTHED) {
        list_append(&oc->authed, c);
        oc->n_authed++;
    }
}

/* ---- refs ---- */

void ch_oc_conn_ref(struct oc_conn *c)
{
    c->refs++;
}

void ch_oc_conn_unref(struct oc_conn *c)
{
    if (!c || --c->refs > 0)
        return;
    ch_free(c->strs);
    ch_free(c->auth_name);
    ch_auth_entry_unref(c->auth);
    ch_free(c);
}

bool ch_oc_conn_is_open(const struct oc_conn *c)
{
    return c && c->state != OC_CLOSING;
}

void ch_oc_conn_close(struct oc_conn *c, uint16_t code, const char *reason)
{
    char cut[124];

    if (c->state == OC_CLOSING)
        return;
    /* A close reason is at most 123 bytes (RFC 6455 5.5); cut on a
     * character boundary, as OpenClaw's truncateCloseReason does. */
    snprintf(cut, sizeof(cut), "%s", reason ? reason : "");
    for (size_t n = strlen(cut); n > 0 && ((unsigned char)cut[n - 1] & 0xC0) == 0x80; n--)
        cut[n - 1] = '\0';
    if (strlen(cut) < strlen(reason ? reason : "") && cut[0]) {
        size_t n = strlen(cut);
        if (n > 0 && ((unsigned char)cut[n - 1] & 0xC0) == 0xC0)
            cut[n - 1] = '\0';
    }
    ch_log_debug("ws %s: closing %u %s", c->conn_id, code, cut);
    conn_set_state(c, OC_CLOSING);
    c->ops->close(c, code, cut);
}

void ch_oc_conn_set_authed(struct oc_conn *c)
{
    conn_set_state(c, OC_AUTHED);
    if (c->ops->set_max_message)
        c->ops->set_max_message(c, (size_t)c->oc->max_payload);
}

struct oc_conn *ch_oc_conn_open(struct ch_oc *oc, const struct oc_conn_ops *ops, void *transport, bool loopback,
                                const char *addr)
{
    struct oc_conn *c = ch_calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->oc = oc;
    c->ops = ops;
    c->transport = transport;
    c->refs = 1; /* the transport's */
    c->loopback = loopback;
    c->opened_ms = ch_now_ms();
    c->state = OC_CHALLENGED;
    snprintf(c->addr, sizeof(c->addr), "%s", addr ? addr : "");
    ch_uuid4(c->conn_id);
    list_append(&oc->pending, c);
    oc->n_pending++;
    return c;
}

void ch_oc_conn_closed(struct oc_conn *c)
{
    bool was_present = c->in_presence;

    conn_set_state(c, OC_CLOSING);
    c->transport = NULL;
    if (was_present) {
        c->in_presence = false;
        c->oc->n_presence--;
        c->oc->presence_version++;
        if (!c->oc->stopped)
            ch_oc_broadcast_presence(c->oc);
    }
    ch_oc_conn_unref(c);
}

/* ---- sending ---- */

int ch_oc_send_text(struct oc_conn *c, const char *p, size_t n)
{
    int rc;

    if (!ch_oc_conn_is_open(c) || !c->transport)
        return CH_ECLOSED;
    rc = c->ops->send(c, p, n);
    if (rc == CH_E_TOO_LARGE)
        conn_set_state(c, OC_CLOSING); /* the transport closes it: slow consumer */
    return rc;
}

int ch_oc_send_json(struct oc_conn *c, json_t *frame)
{
    char *s;
    int rc;

    if (!frame)
        return CH_ENOMEM;
    if (!ch_oc_conn_is_open(c) || !c->transport) {
        json_decref(frame);
        return CH_ECLOSED;
    }
    s = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    if (!s)
        return CH_ENOMEM;
    rc = ch_oc_send_text(c, s, strlen(s));
    ch_free(s);
    return rc;
}

int ch_oc_res_ok(struct oc_conn *c, const char *id, json_t *payload)
{
    json_t *f = json_pack("{s:s, s:s, s:b}", "type", "res", "id", id, "ok", 1);

    if (f && payload)
        json_object_set_new(f, "payload", payload);
    else
        json_decref(payload);
    return ch_oc_send_json(c, f);
}

static json_t *error_shape(const char *code, const char *message, json_t *details)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message && *message ? message : code);

    if (e && details)
        json_object_set_new(e, "details", details);
    else
        json_decref(details);
    return e;
}

int ch_oc_res_err_payload(struct oc_conn *c, const char *id, json_t *payload, const char *code, const char *message,
                          json_t *details)
{
    json_t *f = json_pack("{s:s, s:s, s:b}", "type", "res", "id", id && *id ? id : "invalid", "ok", 0);
    json_t *e = error_shape(code, message, details);

    if (!f || !e) {
        json_decref(f);
        json_decref(e);
        json_decref(payload);
        return CH_ENOMEM;
    }
    if (payload)
        json_object_set_new(f, "payload", payload);
    json_object_set_new(f, "error", e);
    return ch_oc_send_json(c, f);
}

int ch_oc_res_err(struct oc_conn *c, const char *id, const char *code, const char *message, json_t *details)
{
    return ch_oc_res_err_payload(c, id, NULL, code, message, details);
}

int ch_oc_event_to(struct oc_conn *c, const char *event, json_t *payload)
{
    json_t *f =
        json_pack("{s:s, s:s, s:o}", "type", "event", "event", event, "payload", payload ? payload : json_object());

    if (f && c->protocol >= 4)
        json_object_set_new(f, "seq", json_integer((json_int_t)++c->seq));
    return ch_oc_send_json(c, f);
}

/* ---- frames in ---- */

static int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int ch = (unsigned char)p[i];
        int d = ch >= '0' && ch <= '9'                     ? ch - '0'
                : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10
                                                           : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/*
 * JSON.parse, which the reference reads frames with, takes two escapes
 * jansson refuses: a lone UTF-16 surrogate ("\ud83d", which a JS client
 * sends after cutting a string between the halves of a pair) and
 * "\u0000".  Returns a copy with each of them turned into "\ufffd" (the
 * same length), *nul set when a "\u0000" was among them; NULL when there
 * is nothing to change (or no memory).
 */
static char *fix_escapes(const char *p, size_t n, bool *nul)
{
    char *out = NULL;
    bool in_str = false;

    *nul = false;
    for (size_t i = 0; i < n; i++) {
        int cp, lo;
        if (p[i] == '"') {
            in_str = !in_str;
            continue;
        }
        if (!in_str || p[i] != '\\' || i + 1 >= n)
            continue;
        i++; /* the escaped character */
        if (p[i] != 'u' || i + 4 >= n || (cp = hex4(p + i + 1)) < 0)
            continue;
        lo = cp >= 0xD800 && cp <= 0xDBFF && i + 10 < n && p[i + 5] == '\\' && p[i + 6] == 'u' ? hex4(p + i + 7) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            i += 10; /* a whole pair */
            continue;
        }
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
            if (!out && (out = ch_malloc(n + 1)) != NULL) {
                memcpy(out, p, n);
                out[n] = '\0';
            }
            if (!out)
                return NULL;
            memcpy(out + i + 1, "fffd", 4);
            *nul = *nul || cp == 0;
        }
        i += 4;
    }
    return out;
}

void ch_oc_conn_on_text(struct oc_conn *c, const char *p, size_t n)
{
    json_error_t jerr, jerr2;
    json_t *frame;
    char *fixed;
    bool nul = false;

    if (!ch_oc_conn_is_open(c))
        return;
    if (c->state == OC_CHALLENGED && n > PREAUTH_MAX_BYTES) {
        /* The transport caps this too; a transport without a cap (tests,
         * the fuzzer) gets the same answer. */
        ch_oc_conn_close(c, 1009, "preauth payload too large");
        return;
    }
    frame = json_loadb(p, n, JSON_DECODE_ANY, &jerr);
    if (!frame && (fixed = fix_escapes(p, n, &nul)) != NULL) {
        frame = json_loadb(fixed, n, JSON_DECODE_ANY, &jerr2);
        ch_free(fixed);
    }
    if (frame && nul && c->state == OC_CHALLENGED) {
        json_decref(frame); /* a connect is never served with a string changed */
        frame = NULL;
    }
    ch_oc_conn_ref(c);
    if (c->parked) {
        /* Its connect is still waiting for the pairing registry: the
         * handshake is one request, anything sent meanwhile is dropped. */
    } else if (c->state == OC_CHALLENGED) {
        if (!ch_oc_pairing_park(c, frame))
            ch_oc_connect_frame(c, frame);
    } else if (!frame) {
        char msg[256];
        /* The reference only logs unparsable frames after connect; an
         * answer tells the client why nothing else came back. */
        snprintf(msg, sizeof(msg), "invalid request frame: not JSON (%s at offset %d)", jerr.text, (int)jerr.position);
        ch_oc_res_err(c, "invalid", "INVALID_REQUEST", msg, NULL);
    } else if (nul) {
        /* Answered under the request's own id, so the client is not left
         * waiting; the reference refuses NUL in a chat message too. */
        const json_t *idv = json_object_get(frame, "id");
        ch_oc_res_err(c, json_is_string(idv) && json_string_length(idv) ? json_string_value(idv) : "invalid",
                      "INVALID_REQUEST", "invalid request frame: strings must not contain \\u0000", NULL);
    } else {
        ch_oc_dispatch(c, frame);
    }
    json_decref(frame);
    ch_oc_conn_unref(c);
}

/* ---- the WebSocket transport ---- */

static int ws_send(struct oc_conn *c, const char *p, size_t n)
{
    return ch_ws_send_text(c->transport, p, n);
}

static void ws_close(struct oc_conn *c, uint16_t code, const char *reason)
{
    if (c->transport)
        ch_ws_close(c->transport, code, reason);
}

static void ws_set_max(struct oc_conn *c, size_t max_bytes)
{
    if (c->transport) {
        ch_ws_set_max_message(c->transport, max_bytes);
        ch_ws_set_too_big_reason(c->transport, "payload too large");
    }
}

static const struct oc_conn_ops ws_ops = {ws_send, ws_close, ws_set_max};

static void ws_on_open(struct ch_ws_conn *w, void *data)
{
    struct oc_conn *c = data;

    c->transport = w;
    ch_ws_set_too_big_reason(w, "preauth payload too large"); /* spec 1.1: 1009 before connect */
    ch_oc_send_challenge(c);
}

static void ws_on_text(struct ch_ws_conn *w, const char *p, size_t n, void *data)
{
    (void)w;
    ch_oc_conn_on_text(data, p, n);
}

static void ws_on_close(struct ch_ws_conn *w, uint16_t code, const char *reason, void *data)
{
    struct oc_conn *c = data;

    (void)w;
    ch_log_debug("ws %s: closed %u %s", c->conn_id, code, reason ? reason : "");
    ch_oc_conn_closed(c);
}

static const struct ch_ws_handler ws_handler = {ws_on_open, ws_on_text, ws_on_close};

void ch_oc_ws_upgrade(struct ch_http_req *r, struct ch_api *a)
{
    struct ch_oc *oc = a->oc;
    const json_t *origins = ch_config_get(a->cfg, "gateway.controlUi.allowedOrigins");
    const char *list[65];
    struct ch_ws_opts o = {0};
    struct ch_ws_conn *w = NULL;
    struct oc_conn *c;
    size_t k = 0, i;
    json_t *v;

    if (!oc || oc->stopped) {
        ch_http_respond_error(r, 503, "shutting_down", "the gateway is shutting down");
        return;
    }
    /* Browsers send Origin; a page outside the allowlist must not drive
     * the gateway with the user's loopback access (ClawJacked). */
    json_array_foreach(origins, i, v)
    {
        if (k < CH_ARRAY_SIZE(list) - 1 && json_is_string(v))
            list[k++] = json_string_value(v);
    }
    list[k] = NULL;
    o.max_message_bytes = PREAUTH_MAX_BYTES;
    o.max_queued_bytes = (size_t)oc->max_buffered;
    o.allowed_origins = list;
    o.require_origin_match = true;
    o.loop = a->net ? a->net->loop : NULL;
    c = ch_oc_conn_open(oc, &ws_ops, NULL, ch_net_sockaddr_is_loopback((const struct sockaddr *)&r->peer),
                        r->remote_addr);
    if (!c) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    if (ch_ws_accept(r, &o, &ws_handler, c, &w) != 0) {
        /* Answered (400/403/426) by the ws layer; no callback fires. */
        conn_set_state(c, OC_CLOSING);
        ch_oc_conn_unref(c);
        return;
    }
    if (!c->transport)
        c->transport = w;
}

/* ---- periodic work ---- */

/* 1 Hz: close CHALLENGED connections past the handshake timeout.  The
 * list is in open order, so only its head is ever due. */
static void on_sweep(void *data)
{
    struct ch_oc *oc = data;
    int64_t now = ch_now_ms();

    while (oc->pending.next != &oc->pending) {
        struct oc_conn *c = oc->pending.next;
        if (now - c->opened_ms < oc->handshake_timeout_ms)
            break;
        ch_log_info("ws %s from %s: no connect within %lld ms; closing", c->conn_id, c->addr,
                    (long long)oc->handshake_timeout_ms);
        ch_oc_conn_close(c, 1008, "handshake timeout"); /* unlinks it */
    }
    ch_oc_auth_recheck(oc->api); /* API tokens that expired meanwhile */
}

static void on_tick(uv_timer_t *t)
{
    struct ch_oc *oc = t->data;

    ch_oc_broadcast(oc, "tick", json_pack("{s:I}", "ts", (json_int_t)ch_now_ms()), 0, false, false);
}

static void tick_closed(uv_handle_t *h)
{
    struct ch_oc *oc = h->data;
    oc->tick_on = false;
}

int ch_oc_new(struct ch_api *a)
{
    struct ch_oc *oc = ch_calloc(1, sizeof(*oc));

    if (!oc)
        return CH_ENOMEM;
    oc->api = a;
    list_init(&oc->pending);
    list_init(&oc->authed);
    ch_map_init(&oc->runs);
    ch_map_init(&oc->dedupe);
    oc->events = json_array();
    oc->tick_interval_ms = ch_config_int(a->cfg, "gateway.ws.tickIntervalMs", 30000);
    oc->max_payload = ch_config_int(a->cfg, "gateway.ws.maxPayload", 26214400);
    oc->max_buffered = ch_config_int(a->cfg, "gateway.ws.maxBufferedBytes", 52428800);
    /* The ws queue shares the http connection's write queue: above
     * limits.writeQueueHardBytes http would drop the socket without the
     * 1008 "slow consumer" close, so the policy we announce is the lower. */
    if (a->limits && oc->max_buffered > a->limits->v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] - 65536)
        oc->max_buffered = CH_MAX(a->limits->v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] - 65536, 65536);
    oc->handshake_timeout_ms = ch_config_int(a->cfg, "gateway.ws.handshakeTimeoutMs", 15000);
    oc->started_ms = ch_now_ms();
    ch_uuid4(oc->boot_id);
    oc->presence_version = oc->health_version = 1;
    a->oc = oc;
    if (!oc->events)
        return CH_ENOMEM;
    if (a->net) {
        uv_timer_init(a->net->loop, &oc->tick);
        oc->tick.data = oc;
        oc->tick_on = true;
        uv_timer_start(&oc->tick, on_tick, (uint64_t)oc->tick_interval_ms, (uint64_t)oc->tick_interval_ms);
        uv_unref((uv_handle_t *)&oc->tick); /* never keeps the loop alive by itself */
        ch_net_on_tick(a->net, on_sweep, oc);
    }
    if (ch_oc_pairing_start(oc) != 0) /* device pairing (issue #5): load the registry */
        return CH_ENOMEM;
    return ch_oc_events_start(oc);
}

static void close_list(struct oc_conn *head, uint16_t code, const char *reason)
{
    while (head->next != head)
        ch_oc_conn_close(head->next, code, reason); /* unlinks it */
}

void ch_oc_shutdown(struct ch_api *a)
{
    struct ch_oc *oc = a->oc;

    if (!oc || oc->stopped)
        return;
    ch_oc_broadcast(oc, "shutdown", json_pack("{s:s}", "reason", "gateway stopping"), 0, false, false);
    oc->stopped = true;
    close_list(&oc->authed, CH_WS_CLOSE_RESTART, "service restart");
    close_list(&oc->pending, CH_WS_CLOSE_RESTART, "service restart");
    ch_oc_events_stop(oc);
    if (a->net)
        ch_net_off_tick(a->net, on_sweep, oc);
    if (oc->tick_on && !uv_is_closing((uv_handle_t *)&oc->tick)) {
        uv_timer_stop(&oc->tick);
        uv_close((uv_handle_t *)&oc->tick, tick_closed);
    }
}

void ch_oc_free(struct ch_api *a)
{
    struct ch_oc *oc = a ? a->oc : NULL;
    struct ch_map_entry *me;
    size_t it = 0;

    if (!oc)
        return;
    if (!oc->stopped)
        ch_oc_shutdown(a);
    ch_oc_pairing_free(oc);
    if (oc->tick_on || oc->runs.count) {
        /* Handles still closing: freeing now would be a use-after-free
         * in their callbacks (only when the loop never ran them). */
        ch_log_error("ws: freed with handles still open; leaking the WS state");
        a->oc = NULL;
        return;
    }
    while ((me = ch_map_next(&oc->runs, &it)) != NULL)
        ch_free(me->value);
    ch_map_release(&oc->runs);
    ch_oc_dedupe_release(oc);
    json_decref(oc->events);
    json_decref(oc->health_sessions);
    ch_free(oc);
    a->oc = NULL;
}

size_t ch_oc_conn_count(const struct ch_api *a)
{
    return a->oc ? a->oc->n_pending + a->oc->n_authed : 0;
}
