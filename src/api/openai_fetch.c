/*
 * openai_fetch.c: one batch of URL fetches for the OpenAI-compatible
 * endpoints (image URLs for the agent models, openai_images.c; file URLs
 * of /v1/responses, openai_resp_fetch.c).  Each URL goes through the
 * hidden `fetch_image` tool (web_fetch's SSRF checks and pinning, every
 * redirect re-checked, tools.web.fetch.allowHosts admitting internal
 * hosts) with the limits configured under one prefix (`<prefix>urlAllowlist`
 * on every hop, `maxBytes`, `maxRedirects`, `timeoutMs`), all in parallel
 * on the loop.  The caller's `take` turns each answer into its part;
 * `done` runs once, after the last, with the first failure or NULL.
 */
#include <stdio.h>
#include <string.h>

#include "api/openai.h"
#include "tools/tools.h"

struct fetch_slot {
    struct ch_oa_fetch *b;
    json_t *target;
};

struct ch_oa_fetch {
    const char *label; /* static: the subject of error messages */
    ch_oa_fetch_take take;
    ch_oa_fetch_done done;
    void *data;
    size_t pending;
    char err[600]; /* the first failure */
    struct fetch_slot slots[CH_OA_FETCH_MAX];
};

static void on_fetched(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct fetch_slot *s = data;
    struct ch_oa_fetch *b = s->b;
    const char *mime = json_string_value(json_object_get(res->json, "mediaType"));
    const json_t *b64 = json_object_get(res->json, "data");
    const char *c = res->content ? res->content : "the fetch failed";

    (void)call;
    if (b->err[0]) {
        ;
    } else if (res->is_error || !mime || !json_is_string(b64)) {
        /* The tool speaks of an "image URL"; say what it was for. */
        if (!strncmp(c, "image URL", 9)) {
            c += 9;
            c += *c == ':';
            c += strspn(c, " ");
        }
        snprintf(b->err, sizeof(b->err), "%s: %s", b->label, c);
    } else {
        b->take(s->target, mime, b64, json_string_value(json_object_get(res->json, "url")), b->err, sizeof(b->err),
                b->data);
    }
    if (--b->pending == 0) {
        b->done(b->err[0] ? b->err : NULL, b->data);
        ch_free(b);
    }
}

int ch_oa_fetch_start(struct ch_api *a, const char *prefix, int64_t max_bytes_cap, const char *label,
                      const struct ch_oa_fetch_item *items, size_t n, ch_oa_fetch_take take, ch_oa_fetch_done done,
                      void *data)
{
    struct ch_tools *tools = a->agent ? ch_agent_tools(a->agent) : NULL;
    const json_t *allow;
    int64_t max_bytes, redirects, timeout;
    char key[128];
    struct ch_oa_fetch *b;
    size_t i;

    if (!tools)
        return CH_ESTATE;
    if (n == 0 || n > CH_OA_FETCH_MAX)
        return CH_EINVAL;
    if (!(b = ch_calloc(1, sizeof(*b))))
        return CH_ENOMEM;
    b->label = label;
    b->take = take;
    b->done = done;
    b->data = data;
    max_bytes = CH_MIN(ch_oa_setting(a->cfg, prefix, "maxBytes", max_bytes_cap), max_bytes_cap);
    redirects = ch_oa_setting(a->cfg, prefix, "maxRedirects", 3);
    timeout = ch_oa_setting(a->cfg, prefix, "timeoutMs", 10000);
    snprintf(key, sizeof(key), "%surlAllowlist", prefix);
    allow = ch_config_get(a->cfg, key);
    /* Counted before any start: a callback never runs inside this call. */
    b->pending = n;
    for (i = 0; i < n; i++) {
        json_t *in = json_pack("{s:s, s:I, s:I, s:I}", "url", items[i].url, "maxBytes", (json_int_t)max_bytes,
                               "maxRedirects", (json_int_t)redirects, "timeoutMs", (json_int_t)timeout);

        b->slots[i] = (struct fetch_slot){b, items[i].target};
        if (in && json_array_size(allow))
            json_object_set(in, "allowHosts", (json_t *)allow);
        /* The tool's own deadline stops the fetch; the call's is a backstop. */
        if (!in || ch_tool_call_start_internal(tools, "fetch_image", in, (uint64_t)timeout + 1000, on_fetched,
                                               &b->slots[i], NULL) != 0) {
            if (!b->err[0])
                snprintf(b->err, sizeof(b->err), "%s: the fetch could not start", label);
            b->pending--;
        }
        json_decref(in);
    }
    if (b->pending == 0) { /* none started: nothing will call back */
        ch_free(b);
        return CH_ENOMEM;
    }
    return 0;
}
