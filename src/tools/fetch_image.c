/*
 * fetch_image.c: the fetch_image tool's part of fetch.c.  The gateway calls
 * it for an image URL in an OpenAI-compatible request (its
 * gateway.http.endpoints.*.images settings): the same hops and SSRF checks
 * as web_fetch (every address checked, the connection pinned, every
 * redirect re-checked, tools.web.fetch.allowHosts admitting internal
 * hosts), the caller's own host allowlist on every hop, its limits (at
 * most web_fetch's: 5 MB, 5 redirects, 10 s), any media type, and the
 * body back as base64 (encoded on the thread pool) in the result's JSON:
 * {url, finalUrl, status, mediaType, bytes, data, redirects}.
 */
#include <stdio.h>
#include <string.h>

#include "tools/internal.h"

#define FETCH_MAX_BODY_BYTES TOOLS_FETCH_MAX_BODY_BYTES
#define FETCH_MAX_REDIRECTS TOOLS_FETCH_MAX_REDIRECTS
#define FETCH_TIMEOUT_MS TOOLS_FETCH_TIMEOUT_MS

/* fetch_image's limits: at most web_fetch's own (5 MB, 5 redirects, 10 s). */
int tools_fetch_image_limits(struct fetch *f, const json_t *in, char *msg, size_t cap)
{
    const json_t *mb = json_object_get(in, "maxBytes"), *mr = json_object_get(in, "maxRedirects");
    const json_t *to = json_object_get(in, "timeoutMs"), *hosts = json_object_get(in, "allowHosts");
    const char *list[CH_TOOLS_MAX_ALLOW_HOSTS];
    struct ch_error err = {0};
    size_t n = json_array_size(hosts);
    int rc;

    if (mb && json_integer_value(mb) > 0)
        f->max_bytes = (size_t)CH_MIN(json_integer_value(mb), (json_int_t)FETCH_MAX_BODY_BYTES);
    if (mr && json_integer_value(mr) >= 0)
        f->max_redirects = (int)CH_MIN(json_integer_value(mr), (json_int_t)FETCH_MAX_REDIRECTS);
    if (to && json_integer_value(to) > 0)
        f->timeout_ms = (uint64_t)CH_MIN(json_integer_value(to), (json_int_t)FETCH_TIMEOUT_MS);
    if (!hosts || n == 0)
        return 0;
    if (n > CH_TOOLS_MAX_ALLOW_HOSTS) {
        snprintf(msg, cap, "at most %d allowed hosts", CH_TOOLS_MAX_ALLOW_HOSTS);
        return CH_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = json_string_value(json_array_get(hosts, i));
    rc = host_list_init(&f->only, list, n, "the URL allowlist", &err);
    if (rc)
        snprintf(msg, cap, "%s", err.msg);
    f->has_only = rc == 0;
    return rc;
}

static void image_work(uv_work_t *w)
{
    struct fetch *f = ch_container_of(w, struct fetch, work);

    f->b64 = ch_malloc(f->body.len / 3 * 4 + 5);
    if (f->b64)
        f->b64_len = ch_base64_encode((const uint8_t *)(f->body.data ? f->body.data : ""), f->body.len, f->b64);
}

/* The media type as sent, or (none or not an image type) from the bytes. */
static const char *image_mime(const struct fetch *f)
{
    const unsigned char *p = (const unsigned char *)f->body.data;
    size_t n = f->body.len;

    if (!strncmp(f->mime, "image/", 6))
        return f->mime;
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return "image/png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "image/jpeg";
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
        return "image/gif";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return "image/webp";
    return f->mime[0] ? f->mime : "application/octet-stream";
}

static void image_after(uv_work_t *w, int status)
{
    struct fetch *f = ch_container_of(w, struct fetch, work);
    json_t *j;

    if (status == UV_ECANCELED || f->aborted) {
        tools_fetch_end(f, true, NULL, "web_fetch stopped");
        return;
    }
    if (!f->b64) {
        tools_fetch_end(f, true, NULL, "web_fetch: out of memory encoding %s", f->url.url);
        return;
    }
    j = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s%, s:i}", "url", f->first_url, "finalUrl", f->url.url, "status",
                  (json_int_t)f->status, "mediaType", image_mime(f), "bytes", (json_int_t)f->body.len, "data", f->b64,
                  f->b64_len, "redirects", f->hops);
    tools_fetch_end(f, !j, j, "fetched %s: %s, %zu bytes", f->url.url, image_mime(f), f->body.len);
}

void tools_fetch_image_done(struct fetch *f)
{
    if (f->status < 200 || f->status > 299) {
        tools_fetch_end(f, true, NULL, "web_fetch: HTTP %ld from %s", f->status, f->url.url);
        return;
    }
    f->phase = F_CONVERTING;
    if (uv_queue_work(f->t->loop, &f->work, image_work, image_after))
        tools_fetch_end(f, true, NULL, "web_fetch: the thread pool refused the encoding");
}
