/*
 * openai_resp_fetch.c: /v1/responses `input_file` parts by URL (OpenClaw's
 * `source {type: "url", url}`, OpenAI's `file_url`).  OpenClaw fetches
 * them (gateway.http.endpoints.responses.files.allowUrl, on by default);
 * so does chela, before the request is translated: each through the
 * hidden `fetch_image` tool (web_fetch's SSRF checks and pinning,
 * urlAllowlist on every hop, maxBytes at most 5 MB, maxRedirects,
 * timeoutMs), in parallel, and the part becomes the base64 source the
 * file reader takes (openai_files.c), its media type the response's.
 * Then the request goes on (ch_oa_resp_go), for agent and provider
 * models alike.  A client that leaves meanwhile ends it there.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/openai.h"
#include "tools/tools.h"

#define KEY "gateway.http.endpoints.responses.files."
#define MAX_URL_PARTS 8 /* OpenClaw's maxUrlParts */

struct rf_slot {
    struct rf_fetch *st;
    json_t *part; /* borrowed from st->body */
};

struct rf_fetch {
    struct ch_api *api;
    struct ch_http_req *req; /* ref held */
    json_t *body;
    size_t pending;
    char err[600];
    struct rf_slot slots[MAX_URL_PARTS];
};

/* The URL of an input_file part by URL, or NULL. */
static const char *file_url(const json_t *p)
{
    const json_t *src = json_object_get(p, "source");
    const char *t = json_string_value(json_object_get(p, "type"));
    const char *st = json_string_value(json_object_get(src, "type"));

    if (!t || strcmp(t, "input_file"))
        return NULL;
    if (st && !strcmp(st, "url"))
        return json_string_value(json_object_get(src, "url"));
    return src ? NULL : json_string_value(json_object_get(p, "file_url"));
}

/* An input_image or input_file part by http(s) URL (OpenClaw counts them
 * against responses.maxUrlParts in every item, not only the newest). */
static bool url_part(const json_t *p)
{
    const char *t = json_string_value(json_object_get(p, "type"));
    const json_t *src = json_object_get(p, "source");
    const char *u = NULL, *st = json_string_value(json_object_get(src, "type"));

    if (!t || (strcmp(t, "input_image") && strcmp(t, "input_file")))
        return false;
    if (st && !strcmp(st, "url"))
        u = json_string_value(json_object_get(src, "url"));
    else if (!src)
        u = json_string_value(json_object_get(p, !strcmp(t, "input_image") ? "image_url" : "file_url"));
    return u && (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8));
}

/* The last path segment of url (for the file block's name), or "file". */
static char *url_name(const char *url)
{
    const char *p = strstr(url, "://"), *end, *s;

    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        return ch_strdup("file");
    end = p + strcspn(p, "?#");
    for (s = end; s > p && s[-1] != '/'; s--)
        ;
    return s < end ? ch_strndup(s, (size_t)(end - s)) : ch_strdup("file");
}

/* The tool's words without its "image URL" subject (this was a file). */
static const char *tool_words(const char *c)
{
    if (!c)
        return "the file could not be fetched";
    if (!strncmp(c, "image URL", 9)) {
        c += 9;
        c += *c == ':';
        while (*c == ' ')
            c++;
    }
    return c;
}

static void on_fetched(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct rf_slot *s = data;
    struct rf_fetch *st = s->st;
    const char *mime = json_string_value(json_object_get(res->json, "mediaType"));
    const char *url = json_string_value(json_object_get(res->json, "url"));
    const json_t *b64 = json_object_get(res->json, "data");

    (void)call;
    if (st->err[0]) {
        ;
    } else if (res->is_error || !mime || !json_is_string(b64)) {
        snprintf(st->err, sizeof(st->err), "input_file: %s", tool_words(res->content));
    } else {
        char *name = url_name(url ? url : "");
        json_object_set_new(s->part, "source",
                            json_pack("{s:s, s:s, s:O, s:s}", "type", "base64", "media_type", mime, "data", b64,
                                      "filename", name ? name : "file"));
        json_object_del(s->part, "file_url");
        ch_free(name);
    }
    if (--st->pending)
        return;
    if (ch_http_req_is_closed(st->req) || st->api->shutting_down) {
        if (!ch_http_req_is_closed(st->req))
            ch_openai_error(st->req, 503, "api_error", "unavailable", "the gateway is shutting down");
    } else if (st->err[0]) {
        ch_openai_param_error(st->req, "invalid_input", "input", st->err);
    } else {
        ch_oa_resp_go(st->api, st->req, st->body);
    }
    ch_http_req_unref(st->req);
    json_decref(st->body);
    ch_free(st);
}

int ch_oa_resp_prefetch(struct ch_api *a, struct ch_http_req *r, json_t *body)
{
    const struct ch_config *cfg = a->cfg;
    struct ch_tools *tools = a->agent ? ch_agent_tools(a->agent) : NULL;
    const json_t *allow = ch_config_get(cfg, KEY "urlAllowlist");
    json_t *it, *p;
    size_t i, j, n = 0;
    struct rf_fetch *st;

    size_t urls = 0;
    int64_t max_urls = ch_config_int(cfg, "gateway.http.endpoints.responses.maxUrlParts", MAX_URL_PARTS);
    char msg[120];

    json_array_foreach(json_object_get(body, "input"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), j, p)
        {
            n += file_url(p) != NULL;
            urls += url_part(p);
        }
    }
    if ((int64_t)urls > max_urls) { /* OpenClaw's words */
        snprintf(msg, sizeof(msg), "Too many URL-based input sources: %zu (limit: %lld)", urls, (long long)max_urls);
        ch_openai_param_error(r, "invalid_input", "input", msg);
        return -1;
    }
    if (n == 0)
        return 0;
    if (!ch_config_bool(cfg, KEY "allowUrl", true)) {
        ch_openai_param_error(r, "invalid_input", "input",
                              "input_file URL sources are disabled by config (" KEY "allowUrl); send the file's data");
        return -1;
    }
    if (n > MAX_URL_PARTS) {
        ch_openai_param_error(r, "invalid_input", "input", "Too many URL-based input sources (limit: 8)");
        return -1;
    }
    if (!tools || !(st = ch_calloc(1, sizeof(*st)))) {
        ch_openai_error(r, tools ? 500 : 503, "api_error", "internal",
                        tools ? "out of memory" : "this gateway cannot fetch file URLs (no tool registry)");
        return -1;
    }
    st->api = a;
    st->req = r;
    ch_http_req_ref(r);
    st->body = json_incref(body);
    json_array_foreach(json_object_get(body, "input"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), j, p)
        {
            const char *url = file_url(p);
            struct rf_slot *s = &st->slots[st->pending];
            json_t *in;

            if (!url || st->err[0])
                continue;
            s->st = st;
            s->part = p;
            in = json_pack("{s:s, s:I, s:I, s:I}", "url", url, "maxBytes",
                           (json_int_t)ch_config_int(cfg, KEY "maxBytes", 5242880), "maxRedirects",
                           (json_int_t)ch_config_int(cfg, KEY "maxRedirects", 3), "timeoutMs",
                           (json_int_t)ch_config_int(cfg, KEY "timeoutMs", 10000));
            if (in && json_array_size(allow))
                json_object_set(in, "allowHosts", (json_t *)allow);
            if (!in || ch_tool_call_start(tools, "fetch_image", in,
                                          (uint64_t)ch_config_int(cfg, KEY "timeoutMs", 10000) + 1000, on_fetched, s,
                                          NULL) != 0)
                snprintf(st->err, sizeof(st->err), "the file fetch could not start");
            else
                st->pending++;
            json_decref(in);
        }
    }
    if (st->pending == 0) {
        ch_openai_error(r, 500, "api_error", "internal", "%s", st->err);
        ch_http_req_unref(st->req);
        json_decref(st->body);
        ch_free(st);
        return -1;
    }
    return 1;
}
