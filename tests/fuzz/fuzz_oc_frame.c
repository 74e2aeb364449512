/*
 * fuzz_oc_frame.c: libFuzzer driver for the OpenClaw frame dispatcher
 * (src/api/oc_ws.c, oc_connect.c, oc_schema.c, oc_methods_*.c), with no
 * socket: a buffer transport records what the gateway answers.
 *
 * Input: byte 0 picks the phase (even: the frame is the first one, i.e.
 * the handshake; odd: a valid v3/v4 connect happens first, so the frame
 * reaches the method dispatcher), the rest is one text frame.  Every
 * answer must be a JSON object (res or event), the connection must end up
 * answered or closed, and nothing may leak (LeakSanitizer).  The api has
 * no store, agent or loop: store-backed methods answer UNAVAILABLE, the
 * rest run for real.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/oc_internal.h"

struct tr {
    size_t frames;
    int close_code;
};

static int tr_send(struct oc_conn *c, const char *p, size_t n)
{
    struct tr *t = c->transport;
    json_t *f = json_loadb(p, n, 0, NULL);

    if (!json_is_object(f))
        abort(); /* the gateway must only ever send JSON objects */
    json_decref(f);
    t->frames++;
    return 0;
}

static void tr_close(struct oc_conn *c, uint16_t code, const char *reason)
{
    struct tr *t = c->transport;

    if (strlen(reason) > 123 || code < 1000 || code > 4999)
        abort();
    t->close_code = code;
}

static const struct oc_conn_ops ops = {tr_send, tr_close, NULL};
static struct ch_api *api;

static void setup(void)
{
    static struct ch_limits limits;
    struct ch_config_errors errs = {0};
    struct ch_config *cfg = NULL;
    struct ch_api_opts o = {0};
    struct ch_error err = {0};

    ch_alloc_install();
    ch_log_setup(CH_LOG_OFF, CH_LOG_TEXT);
    setenv("CHELA_GATEWAY_TOKEN", "fuzz-token", 1);
    if (ch_config_load(NULL, &cfg, &errs) != 0)
        abort();
    ch_config_limits(cfg, &limits);
    o.cfg = cfg;
    o.limits = &limits;
    o.state_dir = "/tmp";
    if (ch_api_new(&o, &api, &err) != 0)
        abort();
    /* Fuzzed handshakes fail auth often: without this the per-address
     * limiter would lock out the connects that odd inputs rely on. */
    api->auth.max_attempts = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char connect3[] =
        "{\"type\":\"req\",\"id\":\"c\",\"method\":\"connect\",\"params\":{\"minProtocol\":3,\"maxProtocol\":4,"
        "\"client\":{\"id\":\"cli\",\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\"},"
        "\"auth\":{\"token\":\"fuzz-token\"},\"scopes\":[\"operator.admin\"]}}";
    struct tr t = {0};
    struct oc_conn *c;

    if (!api)
        setup();
    if (size < 1)
        return 0;
    c = ch_oc_conn_open(api->oc, &ops, &t, true, "127.0.0.1");
    if (!c)
        return 0;
    ch_oc_send_challenge(c);
    if (data[0] & 1) {
        ch_oc_conn_on_text(c, connect3, strlen(connect3));
        if (c->state != OC_AUTHED)
            abort();
    }
    ch_oc_conn_on_text(c, (const char *)data + 1, size - 1);
    /* A handshake frame is answered by hello-ok, or closes. */
    if (!(data[0] & 1) && c->state == OC_CHALLENGED)
        abort();
    ch_oc_conn_closed(c);
    return 0;
}
