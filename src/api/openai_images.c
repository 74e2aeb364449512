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
 * The fetches (openai_fetch.c) run in parallel on the loop; the request
 * stays with them and the agent run starts when the last has answered.  A
 * client that leaves meanwhile ends it there (the fetches are bounded by
 * timeoutMs).
 */
#include <stdio.h>
#include <string.h>

#include "api/openai.h"

#define MAX_RAW_BYTES (2304 * 1024) /* 3 MB of base64: what the agent models take per turn */

/* What the request needs when the images are data. */
struct img_fetch {
    struct oa_req *o; /* owned until the continuation */
    json_t *body, *msgs;
    char *system, *session;
    const json_t *mimes; /* borrowed from the config: allowedMimes */
};

static bool is_url_image(const json_t *blk)
{
    const char *t = json_string_value(json_object_get(blk, "type"));
    const char *st = json_string_value(json_object_get(json_object_get(blk, "source"), "type"));

    return t && !strcmp(t, "image") && st && !strcmp(st, "url");
}

static void st_free(struct img_fetch *st)
{
    json_decref(st->body);
    json_decref(st->msgs);
    ch_free(st->system);
    ch_free(st->session);
    ch_free(st);
}

/* A fetched image becomes the block's base64 source, if its type is allowed. */
static void take(json_t *block, const char *mime, const json_t *b64, const char *url, char *err, size_t cap, void *data)
{
    struct img_fetch *st = data;

    if (!ch_oa_mime_listed(st->mimes, ch_llm_image_types, CH_LLM_IMAGE_TYPE_COUNT, mime))
        snprintf(err, cap, "image URL: %.300s is %.100s, not an allowed image type", url ? url : "?", mime);
    else
        json_object_set_new(block, "source",
                            json_pack("{s:s, s:s, s:O}", "type", "base64", "media_type", mime, "data", b64));
}

static void finish(const char *err, void *data)
{
    struct img_fetch *st = data;
    struct oa_req *o = st->o;

    if (o->finished || o->api->shutting_down) {
        if (!o->finished && !ch_http_req_is_closed(o->req))
            ch_openai_error(o->req, 503, "api_error", "unavailable", "the gateway is shutting down");
        ch_oa_free(o);
    } else if (err) {
        ch_openai_param_error(o->req, "invalid_image", o->responses ? "input" : "messages", err);
        ch_oa_free(o);
    } else {
        ch_oa_agent_mode(o, st->body, st->msgs, st->system, st->session); /* no URL left: goes on */
    }
    st_free(st);
}

int ch_oa_fetch_images(struct oa_req *o, const json_t *body, json_t *msgs, const char *system, const char *session)
{
    const char *ep = o->responses ? "responses" : "chatCompletions", *param = o->responses ? "input" : "messages";
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1), *blk;
    struct ch_oa_fetch_item items[CH_OA_FETCH_MAX];
    struct img_fetch *st;
    char key[96], msg[200];
    size_t i, n = 0;
    int rc;

    json_array_foreach(json_object_get(last, "content"), i, blk)
    {
        if (!is_url_image(blk))
            continue;
        if (n == CH_OA_FETCH_MAX) { /* OpenClaw's maxImageParts */
            ch_openai_param_error(o->req, "invalid_image", param, "at most 8 images per turn for the agent models");
            return -1;
        }
        items[n++] =
            (struct ch_oa_fetch_item){blk, json_string_value(json_object_get(json_object_get(blk, "source"), "url"))};
    }
    if (n == 0)
        return 0;
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.allowUrl", ep);
    if (!ch_config_bool(o->api->cfg, key, o->responses)) { /* OpenClaw's defaults: on for responses only */
        snprintf(msg, sizeof(msg), "image URL sources are disabled by config (%s); send the image as data", key);
        ch_openai_param_error(o->req, "invalid_image", param, msg);
        return -1;
    }
    if (!(st = ch_calloc(1, sizeof(*st)))) {
        ch_openai_error(o->req, 500, "api_error", "internal", "out of memory");
        return -1;
    }
    st->o = o;
    st->body = json_incref((json_t *)body);
    st->msgs = json_incref(msgs);
    st->system = system ? ch_strdup(system) : NULL;
    st->session = session ? ch_strdup(session) : NULL;
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.allowedMimes", ep);
    st->mimes = ch_config_get(o->api->cfg, key);
    snprintf(key, sizeof(key), "gateway.http.endpoints.%s.images.", ep);
    rc = ch_oa_fetch_start(o->api, key, MAX_RAW_BYTES, "image URL", items, n, take, finish, st);
    if (rc) {
        ch_openai_error(o->req, rc == CH_ESTATE ? 503 : 500, "api_error", "internal",
                        rc == CH_ESTATE ? "this gateway cannot fetch image URLs (no tool registry)"
                                        : "the image fetch could not start");
        st_free(st);
        return -1;
    }
    return 1;
}
