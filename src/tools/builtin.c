/*
 * builtin.c: the built-in tools' specs that fetch.c serves (web_fetch, and
 * the hidden fetch_image the OpenAI-compatible endpoints use to turn an
 * image URL into data), and the registration of every built-in tool.
 */
#include "tools/internal.h"

const struct ch_tool_spec tools_web_fetch_spec = {
    .name = "web_fetch",
    .description = "Fetch a public web page (HTTP GET) and return its readable text: the title first, then "
                   "the main text without scripts, navigation, headers and footers. Plain-text and JSON "
                   "responses are returned as they are; binary files are refused. Follows up to 5 "
                   "redirects. Internal and private network addresses are refused.",
    .input_schema = "{\"type\":\"object\",\"properties\":{"
                    "\"url\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8192,"
                    "\"description\":\"absolute http or https URL\"},"
                    "\"maxChars\":{\"type\":\"integer\",\"description\":\"maximum characters of text to "
                    "return (default 20000, 100 to 100000)\"}"
                    "},\"required\":[\"url\"],\"additionalProperties\":false}",
    .start = tools_fetch_start,
    .abort = tools_fetch_abort,
    .max_result_bytes = TOOLS_FETCH_MAX_CHARS * 4 + 8192, /* maxChars counts code points */
};

/* fetch_image's spec data: fetch.c tells the two tools apart by it. */
const int tools_fetch_image_tag = 1;

/* The gateway's own: it calls it for an image or file URL in a request
 * (gateway.http.endpoints.*.images / responses.files allowUrl), with
 * web_fetch's SSRF checks, and gets the bytes back as base64 in the
 * result's JSON.  Internal, not just hidden: a model or a tools.invoke
 * client calling it would get a fetcher that works with web_fetch off,
 * and with a host allowlist of its choosing. */
const struct ch_tool_spec tools_fetch_image_spec = {
    .name = "fetch_image",
    .description = "Fetch an image from a public URL (HTTP GET) and return it base64-encoded.",
    .input_schema = "{\"type\":\"object\",\"properties\":{"
                    "\"url\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8192},"
                    "\"maxBytes\":{\"type\":\"integer\"},"
                    "\"maxRedirects\":{\"type\":\"integer\"},"
                    "\"timeoutMs\":{\"type\":\"integer\"},"
                    "\"allowHosts\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"
                    "},\"required\":[\"url\"],\"additionalProperties\":false}",
    .start = tools_fetch_start,
    .abort = tools_fetch_abort,
    .data = (void *)&tools_fetch_image_tag,
    .internal = true,
};

int tools_register_builtin(struct ch_tools *t, bool with_http, bool with_fetch, struct ch_error *err)
{
    struct ch_tool_spec http = tools_http_request_spec, fetch = tools_web_fetch_spec;
    int rc;

    /* http_request stays callable when hidden, so a model that calls it
     * anyway learns which setting to change instead of "unknown tool". */
    http.hidden = !with_http;
    fetch.hidden = !with_fetch;
    rc = ch_tools_register(t, &tools_current_time_spec, err);
    if (rc == 0)
        rc = ch_tools_register(t, &http, err);
    if (rc == 0 && with_fetch)
        rc = ch_tools_register(t, &fetch, err);
    if (rc == 0)
        rc = ch_tools_register(t, &tools_fetch_image_spec, err);
    return rc;
}
