/*
 * openai_errors.c: the OpenAI error shape {error: {message, type, code,
 * param}} of every /v1 endpoint, and the text hygiene it depends on.
 *
 * A message often quotes what a client or an upstream sent (a model id
 * from the path, a header, a part's type, a URL in a fetch error) and is
 * cut to a fixed size on the way; jansson refuses a string that is not
 * UTF-8, and a refused error body used to become the generic
 * `500 {"error":"internal_error"}` instead of the documented status.  So
 * each message is cleaned (invalid bytes as U+FFFD) and cut at a
 * character boundary before it is packed, and the status and shape the
 * docs promise always come out.
 */
#include <stdio.h>
#include <string.h>

#include "api/openai.h"

int ch_oa_clean_text(struct ch_buf *b, const char *s, size_t n, size_t max)
{
    size_t old = b->len;
    int rc;

    /* Cleaning never shrinks text, so the first max bytes out come from
     * the first max bytes in; cutting those first (ch_utf8_cut) drops a
     * character split there, or by whoever cut s before, rather than
     * turning its bytes into U+FFFDs. */
    n = ch_utf8_cut(s, CH_MIN(n, max));
    rc = ch_buf_append_utf8_clean(b, s, n);
    if (rc == 0 && b->len > old + max) { /* replacements grew it: cut again */
        b->len = old + ch_utf8_cut(b->data + old, max);
        b->data[b->len] = '\0';
    }
    return rc;
}

bool ch_oa_utf8_ok(const char *s, size_t n)
{
    return !memchr(s, 0, n) && ch_utf8_valid(s, n);
}

json_t *ch_oa_err_msg(const char *msg)
{
    struct ch_buf b;
    json_t *s;

    ch_buf_init(&b, 3 * CH_OA_ERR_MSG_MAX + 4); /* each invalid byte grows to 3 before the cut */
    if (ch_oa_clean_text(&b, msg ? msg : "", msg ? strlen(msg) : 0, CH_OA_ERR_MSG_MAX) != 0) {
        ch_buf_release(&b);
        return NULL;
    }
    s = json_stringn(b.data ? b.data : "", b.len);
    ch_buf_release(&b);
    return s;
}

/* {"error":{"message","type","code","param"}}: code and param null when
 * NULL; the message and param cleaned as above. */
static void error_reply(struct ch_http_req *r, int status, const char *type, const char *code, const char *param,
                        const char *msg)
{
    json_t *m = ch_oa_err_msg(msg), *p = param ? ch_oa_err_msg(param) : json_null();

    ch_http_respond_json(
        r, status,
        m && p ? json_pack("{s:{s:o, s:s, s:s?, s:o}}", "error", "message", m, "type", type, "code", code, "param", p)
               : NULL);
    if (!m || !p) { /* json_pack took them only on success */
        json_decref(m);
        json_decref(p);
    }
}

void ch_openai_error(struct ch_http_req *r, int status, const char *type, const char *code, const char *fmt, ...)
{
    /* Twice the message's room: what is cut here is past the cut above. */
    char msg[2 * CH_OA_ERR_MSG_MAX + 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    error_reply(r, status, type, code, NULL, msg);
}

void ch_openai_param_error(struct ch_http_req *r, const char *code, const char *param, const char *msg)
{
    error_reply(r, 400, "invalid_request_error", code, param, msg);
}
