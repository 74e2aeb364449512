/*
 * openai_images.c: image URLs sent to the agent models (`image_url` parts
 * with an http(s) URL, `input_image` with `image_url`).  OpenClaw fetches
 * them itself, when gateway.http.endpoints.<chatCompletions|responses>.
 * images.allowUrl allows (off for chat completions, on for responses), and
 * gives the model the bytes; so does chela, through the hidden
 * `fetch_image` tool: web_fetch's SSRF checks (every address checked, the
 * connection pinned, every redirect re-checked; tools.web.fetch.allowHosts
 * admits internal hosts), urlAllowlist on every hop, maxBytes,
 * maxRedirects and timeoutMs (at most web_fetch's 5 MB, 5, 10 s).  The
 * fetched image becomes a data block, checked against allowedMimes, and
 * the run goes on as if the client had sent it as data: stored with the
 * run and the transcript, so a replay never fetches again.
 *
 * The fetches run in parallel on the loop; the request stays with them
 * and the agent run starts when the last has answered.  A client that
 * leaves meanwhile ends it there (the fetches are bounded by timeoutMs).
 */
#include <stdio.h>
#include <string.h>

#include "api/openai.h"
#include "tools/tools.h"

#define MAX_URL_IMAGES 8              /* OpenClaw's maxImageParts */
#define MAX_RAW_BYTES (2304u * 1024u) /* 3 MB of base64: what the agent models take per turn */

struct img_slot {
    struct img_fetch *st;
    json_t *block; /* borrowed from st->msgs: its source is replaced */
};

struct img_fetch {
    struct oa_req *o; /* owned until the continuation */
    json_t *body, *msgs;
    char *system, *session;
    const json_t *mimes; /* borrowed from the config: allowedMimes */
    size_t pending;
    char err[600]; /* the first failure */
    struct img_slot slots[MAX_URL_IMAGES];
};

static bool is_url_image(const json_t *blk)
{
    const char *t = json_string_value(json_object_get(blk, "type"));
    const char *st = json_string_value(json_object_get(json_object_get(blk, "source"), "type"));

    return t && !strcmp(t, "image") && st && !strcmp(st, "url");
}

static bool mime_allowed(const json_t *mimes, const char *mime)
{
    static const char *const def[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};

    return ch_oa_mime_listed(mimes, def, CH_ARRAY_SIZE(def), mime);
}

static void st_free(struct img_fetch *st)
{
    json_decref(st->body);
    json_decref(st->msgs);
    ch_free(st->system);
    ch_free(st->session);
    ch_free(st);
}

static void finish(struct img_fetch *st)
{
    struct oa_req *o = st->o;

    if (o->finished || o->api->shutting_down) {
        if (!o->finished && !ch_http_req_is_closed(o->req))
            ch_openai_error(o->req, 503, "api_error", "unavailable", "the gateway is shutting down");
        ch_oa_free(o);
    } else if (st->err[0]) {
        ch_openai_param_error(o->req, "invalid_image", o->responses ? "input" : "messages", st->err);
        ch_oa_free(o);
    } else {
        ch_oa_agent_mode(o, st->body, st->msgs, st->system, st->session); /* no URL left: goes on */
    }
    st_free(st);
}

static void on_fetched(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct img_slot *s = data;
    struct img_fetch *st = s->st;
    const char *mime = json_string_value(json_object_get(res->json, "mediaType"));
    const json_t *b64 = json_object_get(res->json, "data");

    (void)call;
    if (st->err[0]) {
        ;
    } else if (res->is_error || !mime || !json_is_string(b64)) {
        snprintf(st->err, sizeof(st->err), "%s", res->content ? res->content : "the image could not be fetched");
    } else if (!mime_allowed(st->mimes, mime)) {
        snprintf(st->err, sizeof(st->err), "image URL: %.300s is %.100s, not an allowed image type",
                 json_string_value(json_object_get(res->json, "url")), mime);
    } else {
        json_object_set_new(s->block, "source",
                            json_pack("{s:s, s:s, s:O}", "type", "base64", "media_type", mime, "data", b64));
    }
    if (--st->pending == 0)
        finish(st);
}

int ch_oa_fetch_images(struct oa_req *o, const json_t *body, json_t *msgs, const char *system, const char *session)
{
    const struct ch_config *cfg = o->api->cfg;
    const char *ep = o->responses ? "responses" : "chatCompletions", *param = o->responses ? "input" : "messages";
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1), *blk;
    struct ch_tools *tools = o->api->agent ? ch_agent_tools(o->api->agent) : NULL;
    struct img_fetch *st;
    char key[96], msg[200];
    size_t i, n = 0;
    int64_t max_bytes, redirects, timeout;

    json_array_foreach(json_object_get(last, "content"), i, blk) n += is_url_image(blk);
    if (n == 0)
        return 0;
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.allowUrl", ep);
    if (!ch_config_bool(cfg, key, o->responses)) { /* OpenClaw's defaults: on for responses only */
        snprintf(msg, sizeof(msg), "image URL sources are disabled by config (%s); send the image as data", key);
        ch_openai_param_error(o->req, "invalid_image", param, msg);
        return -1;
    }
    if (n > MAX_URL_IMAGES) {
        ch_openai_param_error(o->req, "invalid_image", param, "at most 8 images per turn for the agent models");
        return -1;
    }
    if (!tools || !(st = ch_calloc(1, sizeof(*st)))) {
        ch_openai_error(o->req, tools ? 500 : 503, "api_error", "internal",
                        tools ? "out of memory" : "this gateway cannot fetch image URLs (no tool registry)");
        return -1;
    }
    st->o = o;
    st->body = json_incref((json_t *)body);
    st->msgs = json_incref(msgs);
    st->system = system ? ch_strdup(system) : NULL;
    st->session = session ? ch_strdup(session) : NULL;
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.allowedMimes", ep);
    st->mimes = ch_config_get(cfg, key);
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.maxBytes", ep);
    max_bytes = CH_MIN(ch_config_int(cfg, key, 10485760), (int64_t)MAX_RAW_BYTES);
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.maxRedirects", ep);
    redirects = ch_config_int(cfg, key, 3);
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.timeoutMs", ep);
    timeout = ch_config_int(cfg, key, 10000);
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.urlAllowlist", ep);
    json_array_foreach(json_object_get(last, "content"), i, blk)
    {
        json_t *in;
        struct img_slot *s;

        if (!is_url_image(blk))
            continue;
        s = &st->slots[st->pending];
        s->st = st;
        s->block = blk;
        in =
            json_pack("{s:O, s:I, s:I, s:I}", "url", json_object_get(json_object_get(blk, "source"), "url"), "maxBytes",
                      (json_int_t)max_bytes, "maxRedirects", (json_int_t)redirects, "timeoutMs", (json_int_t)timeout);
        if (in && json_array_size(ch_config_get(cfg, key)))
            json_object_set(in, "allowHosts", (json_t *)ch_config_get(cfg, key));
        /* The tool's own deadline stops the fetch; the call's is a backstop. */
        if (!in || ch_tool_call_start(tools, "fetch_image", in, (uint64_t)timeout + 1000, on_fetched, s, NULL) != 0) {
            json_decref(in);
            snprintf(st->err, sizeof(st->err), "the image fetch could not start");
            break;
        }
        json_decref(in);
        st->pending++;
    }
    if (st->pending == 0) { /* nothing started: answer now */
        ch_openai_error(o->req, 500, "api_error", "internal", "%s", st->err);
        st_free(st);
        return -1;
    }
    return 1;
}
