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

#define KEY "gateway.http.endpoints.responses.files."

/* What the request needs when the files are data. */
struct rf_fetch {
    struct ch_api *api;
    struct ch_http_req *req; /* ref held */
    json_t *body;
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

/* A fetched file becomes the part's base64 source, named after its URL. */
static void take(json_t *part, const char *mime, const json_t *b64, const char *url, char *err, size_t cap, void *data)
{
    char *name = url_name(url ? url : "");

    (void)err, (void)cap, (void)data;
    json_object_set_new(part, "source",
                        json_pack("{s:s, s:s, s:O, s:s}", "type", "base64", "media_type", mime, "data", b64, "filename",
                                  name ? name : "file"));
    json_object_del(part, "file_url");
    ch_free(name);
}

static void finish(const char *err, void *data)
{
    struct rf_fetch *st = data;

    if (ch_http_req_is_closed(st->req) || st->api->shutting_down) {
        if (!ch_http_req_is_closed(st->req))
            ch_openai_error(st->req, 503, "api_error", "unavailable", "the gateway is shutting down");
    } else if (err) {
        ch_openai_param_error(st->req, "invalid_input", "input", err);
    } else {
        ch_oa_resp_go(st->api, st->req, st->body);
    }
    ch_http_req_unref(st->req);
    json_decref(st->body);
    ch_free(st);
}

int ch_oa_resp_prefetch(struct ch_api *a, struct ch_http_req *r, json_t *body)
{
    int64_t max_urls = ch_config_int(a->cfg, "gateway.http.endpoints.responses.maxUrlParts", CH_OA_FETCH_MAX);
    struct ch_oa_fetch_item items[CH_OA_FETCH_MAX];
    size_t i, j, n = 0, urls = 0;
    struct rf_fetch *st;
    json_t *it, *p;
    char msg[120];
    int rc;

    json_array_foreach(json_object_get(body, "input"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), j, p)
        {
            urls += url_part(p);
            if (file_url(p) && n < CH_OA_FETCH_MAX)
                items[n] = (struct ch_oa_fetch_item){p, file_url(p)};
            n += file_url(p) != NULL;
        }
    }
    if ((int64_t)urls > max_urls) { /* OpenClaw's words */
        snprintf(msg, sizeof(msg), "Too many URL-based input sources: %zu (limit: %lld)", urls, (long long)max_urls);
        ch_openai_param_error(r, "invalid_input", "input", msg);
        return -1;
    }
    if (n == 0)
        return 0;
    if (!ch_config_bool(a->cfg, KEY "allowUrl", true)) {
        ch_openai_param_error(r, "invalid_input", "input",
                              "input_file URL sources are disabled by config (" KEY "allowUrl); send the file's data");
        return -1;
    }
    if (n > CH_OA_FETCH_MAX) {
        ch_openai_param_error(r, "invalid_input", "input", "Too many URL-based input sources (limit: 8)");
        return -1;
    }
    if (!(st = ch_calloc(1, sizeof(*st)))) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        return -1;
    }
    st->api = a;
    st->req = r;
    ch_http_req_ref(r);
    st->body = json_incref(body);
    rc = ch_oa_fetch_start(a, KEY, 5242880, "input_file", items, n, take, finish, st);
    if (rc) {
        ch_openai_error(r, rc == CH_ESTATE ? 503 : 500, "api_error", "internal",
                        rc == CH_ESTATE ? "this gateway cannot fetch file URLs (no tool registry)"
                                        : "the file fetch could not start");
        ch_http_req_unref(st->req);
        json_decref(st->body);
        ch_free(st);
        return -1;
    }
    return 1;
}
