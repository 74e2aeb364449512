/*
 * chat_render.c: the bodies /api/v1/chat and /api/v1/chat/stream write for
 * every run: the 200 answer and the SSE start and done events.  Byte for
 * byte what json_pack + json_dumps(JSON_COMPACT) write for the same fields
 * (test_chat_render.c compares them), without json_pack parsing its format
 * and building a tree (~15,000 instructions an event).  Anything but 0 (a
 * string that is not UTF-8, a missing required field, out of memory)
 * leaves the body to json_pack in rest_chat.c.
 */
#include <string.h>

#include "api/internal.h"

static int put_usage(struct ch_buf *b, const struct ch_llm_usage *u)
{
    static const char *const k[] = {
        "{\"inputTokens\":", ",\"outputTokens\":", ",\"cacheReadTokens\":", ",\"cacheWriteTokens\":"};
    const json_int_t v[] = {(json_int_t)u->input_tokens, (json_int_t)u->output_tokens, (json_int_t)u->cache_read_tokens,
                            (json_int_t)u->cache_write_tokens};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < 4; i++)
        rc = ch_buf_append_str(b, k[i]) ? CH_ENOMEM : ch_http_json_int(b, v[i]);
    return rc ? rc : ch_buf_append_char(b, '}');
}

/* ,"key":"value", or null for NULL (json_pack's s?). */
static int put_opt(struct ch_buf *b, const char *key, const char *s)
{
    int rc = ch_buf_append_str(b, key);
    if (rc)
        return rc;
    return s ? ch_http_json_str(b, s, strlen(s)) : ch_buf_append(b, "null", 4);
}

/* A required string (json_pack's s): NULL would fail json_pack, so it
 * goes there too. */
static int put_req(struct ch_buf *b, const char *key, const char *s)
{
    return s ? put_opt(b, key, s) : CH_AGAIN;
}

int ch_chat_render_answer(struct ch_buf *b, const char *run_id, const char *conv_id, const struct ch_agent_result *res,
                          int64_t latency_ms)
{
    char id[64];
    size_t n = run_id ? strlen(run_id) : sizeof(id);
    int rc;

    /* "id": "msg_" + the run id (json_pack's s+). */
    if (n > sizeof(id) - 5)
        return CH_AGAIN;
    memcpy(id, "msg_", 4);
    memcpy(id + 4, run_id, n + 1);
    ch_buf_reset(b);
    rc = ch_buf_append_str(b, "{\"id\":");
    rc = rc ? rc : ch_http_json_str(b, id, n + 4);
    rc = rc ? rc : put_req(b, ",\"conversationId\":", conv_id);
    rc = rc ? rc : ch_buf_append_str(b, ",\"role\":\"assistant\"");
    rc = rc ? rc : put_req(b, ",\"content\":", res->text ? res->text : "");
    rc = rc ? rc : put_opt(b, ",\"model\":", res->model);
    rc = rc ? rc : put_opt(b, ",\"provider\":", res->provider);
    rc = rc ? rc : ch_buf_append_str(b, ",\"usage\":");
    rc = rc ? rc : put_usage(b, &res->usage);
    rc = rc ? rc : ch_buf_append_str(b, ",\"costUsd\":");
    rc = rc ? rc : ch_http_json_real(b, res->cost_usd);
    rc = rc ? rc : ch_buf_append_str(b, ",\"latency\":");
    rc = rc ? rc : ch_http_json_int(b, (json_int_t)latency_ms);
    rc = rc ? rc : put_req(b, ",\"runId\":", run_id);
    return rc ? rc : ch_buf_append_char(b, '}');
}

int ch_chat_render_start(struct ch_buf *b, const char *conv_id, const char *run_id)
{
    int rc;

    ch_buf_reset(b);
    rc = ch_buf_append_str(b, "data: {\"type\":\"start\"");
    rc = rc ? rc : put_req(b, ",\"conversationId\":", conv_id);
    rc = rc ? rc : put_req(b, ",\"runId\":", run_id);
    return rc ? rc : ch_buf_append_str(b, "}\n\n");
}

int ch_chat_render_done(struct ch_buf *b, const char *run_id, const char *conv_id, const struct ch_agent_result *res,
                        int64_t latency_ms)
{
    int rc;

    ch_buf_reset(b);
    rc = ch_buf_append_str(b, "data: {\"type\":\"done\",\"usage\":");
    rc = rc ? rc : put_usage(b, &res->usage);
    rc = rc ? rc : put_opt(b, ",\"model\":", res->model);
    rc = rc ? rc : put_opt(b, ",\"provider\":", res->provider);
    rc = rc ? rc : ch_buf_append_str(b, ",\"costUsd\":");
    rc = rc ? rc : ch_http_json_real(b, res->cost_usd);
    rc = rc ? rc : put_req(b, ",\"runId\":", run_id);
    rc = rc ? rc : put_req(b, ",\"conversationId\":", conv_id);
    rc = rc ? rc : ch_buf_append_str(b, ",\"latency\":");
    rc = rc ? rc : ch_http_json_int(b, (json_int_t)latency_ms);
    return rc ? rc : ch_buf_append_str(b, "}\n\n");
}
