/*
 * oc_history.c: transcripts as OpenClaw reads them: the Pi message shape,
 * the WebSocket methods chat.history and sessions.get (spec 2.2), and the
 * sizing every transcript answer shares (the WS methods, REST's
 * GET /sessions/:key/history and GET /api/v1/sessions/:key).
 *
 * An answer is built in full before it is queued, and a connection whose
 * output passes its cap (limits.writeQueueHardBytes for HTTP,
 * gateway.ws.maxBufferedBytes for WebSocket) is closed with nothing sent.
 * So each answer keeps the newest messages whose JSON, measured as it will
 * be written (escaping counted), fits in a room derived from the cap in
 * force; a message too large for any answer comes as OpenClaw's
 * placeholder.
 */
#include <string.h>

#include "api/internal.h"
#include "api/oc_internal.h"

/* The `{"type":"res","id":,"ok":true,"payload":}` around a WS answer, and
 * the WebSocket frame header, with room to spare. */
#define FRAME_BYTES 128u

/* ---- the message shape ---- */

json_t *ch_oc_message_json(const struct ch_message_rec *m)
{
    json_t *doc = json_loads(m->content, JSON_DECODE_ANY, NULL), *content = json_array(), *b;
    const char *role = !strcmp(m->role, "tool") ? "toolResult" : m->role;
    size_t i;

    if (json_is_string(doc))
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text", doc));
    json_array_foreach(doc, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type)
            continue;
        if (!strcmp(type, "text"))
            json_array_append_new(content,
                                  json_pack("{s:s, s:O?}", "type", "text", "text", json_object_get(b, "text")));
        else if (!strcmp(type, "compaction"))
            json_array_append_new(content,
                                  json_pack("{s:s, s:O?}", "type", "text", "text", json_object_get(b, "summary")));
        else if (!strcmp(type, "tool_result"))
            json_array_append_new(content, json_pack("{s:s, s:O?, s:O?}", "type", "toolResult", "toolCallId",
                                                     json_object_get(b, "tool_use_id"), "content",
                                                     json_object_get(b, "content")));
        else if (json_object_get(b, "name"))
            json_array_append_new(content, json_pack("{s:s, s:O?, s:O, s:O?}", "type", "toolCall", "id",
                                                     json_object_get(b, "id"), "name", json_object_get(b, "name"),
                                                     "arguments", json_object_get(b, "input")));
    }
    json_decref(doc);
    return json_pack("{s:s, s:o, s:I, s:I, s:s?, s:s?, s:{s:I, s:I}}", "role",
                     !strcmp(role, "compaction") ? "system" : role, "content", content ? content : json_array(),
                     "timestamp", (json_int_t)m->created_ms, "seq", (json_int_t)m->seq, "model", m->model, "runId",
                     m->run_id, "__openclaw", "id", (json_int_t)m->id, "seq", (json_int_t)m->seq);
}

json_t *ch_oc_history_message(const struct ch_message_rec *m, bool omit)
{
    struct ch_message_rec placeholder;
    json_t *o;

    if (!omit && m->content)
        return ch_oc_message_json(m);
    /* The same row with OpenClaw's one text block in place of its content
     * (too large for any answer, or read without it). */
    placeholder = *m;
    placeholder.content = "[{\"type\":\"text\",\"text\":\"" CH_HISTORY_OMITTED "\"}]";
    o = ch_oc_message_json(&placeholder);
    json_object_set_new(json_object_get(o, "__openclaw"), "truncated", json_true());
    return o;
}

/* ---- sizing (declared in internal.h) ---- */

json_t *ch_api_fit_messages(const struct ch_message_list *ml, size_t room, bool skip_system,
                            ch_api_fit_render_cb render, struct ch_api_fit *fit)
{
    json_t **objs = ml->count ? ch_calloc(ml->count, sizeof(*objs)) : NULL, *msgs = json_array();
    size_t used = 0, from = ml->count, n;

    memset(fit, 0, sizeof(*fit));
    if ((ml->count && !objs) || !msgs)
        goto fail;
    for (size_t i = ml->count; i-- > 0;) {
        const struct ch_message_rec *m = &ml->items[i];
        if (!skip_system || strcmp(m->role, "system") != 0) {
            if (!(objs[i] = render(m, false)))
                goto fail;
            n = json_dumpb(objs[i], NULL, 0, JSON_COMPACT) + 1; /* and a comma */
            if (n > room || !m->content) {
                fit->omitted = true;
                json_decref(objs[i]);
                if (!(objs[i] = render(m, true)))
                    goto fail;
                n = json_dumpb(objs[i], NULL, 0, JSON_COMPACT) + 1;
            }
            if (n > room - used) {
                json_decref(objs[i]);
                objs[i] = NULL;
                fit->cut = true;
                break;
            }
            used += n;
        }
        from = i;
        fit->first = m->seq;
    }
    for (size_t i = from; i < ml->count; i++)
        if (objs[i])
            json_array_append_new(msgs, objs[i]);
    ch_free(objs);
    return msgs;
fail:
    for (size_t i = 0; objs && i < ml->count; i++)
        json_decref(objs[i]);
    ch_free(objs);
    json_decref(msgs);
    return NULL;
}

size_t ch_api_room_left(size_t budget, const json_t *envelope, size_t extra)
{
    size_t env = json_dumpb(envelope, NULL, 0, JSON_COMPACT) + extra;

    return budget > env ? budget - env : 0;
}

/* ---- chat.history, sessions.get ---- */

/*
 * Bytes of message JSON a frame may carry: the whole frame (answer holds
 * everything but the messages) stays within half of the send-queue cap,
 * which leaves room for events already queued before it, as REST's history
 * does with the HTTP cap, and within OpenClaw's ~6 MiB.  max_buffered is
 * set once at startup, so reading it here, off the loop, is safe.
 */
static size_t frame_room(const struct oc_sjob *j, const json_t *answer)
{
    size_t budget = CH_MIN((size_t)CH_MAX(j->oc->max_buffered, 0) / 2, (size_t)CH_OC_HISTORY_BYTES);
    json_t *id = json_string(j->req_id);
    /* The id as written (escaped), else its worst case. */
    size_t id_bytes = id ? json_dumpb(id, NULL, 0, JSON_ENCODE_ANY) : 6 * strlen(j->req_id) + 2;

    json_decref(id);
    return ch_api_room_left(budget, answer, id_bytes + FRAME_BYTES);
}

static int history_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    bool chat = !strcmp(j->method, "chat.history");
    /* Echoed as the client sent it (the reference's chat.history does),
     * looked up by its canonical form. */
    const char *key = json_string_value(json_object_get(j->params, chat ? "sessionKey" : "key"));
    const json_t *lim = json_object_get(j->params, "limit");
    struct ch_session_rec s = {0};
    struct ch_message_list ml = {0};
    struct ch_api_fit fit;
    size_t room, content;
    json_t *msgs;
    int rc = j->key[0] ? ch_sessions_get(db, j->key, &s) : CH_ENOTFOUND;

    if (rc == CH_E_TOO_LARGE || rc == CH_EINVAL)
        rc = CH_ENOTFOUND; /* a key the store cannot hold names no session */
    if (rc && rc != CH_ENOTFOUND)
        return rc;
    /* An unknown key has an empty history, as in the reference. */
    j->answer = chat ? json_pack("{s:s, s:s, s:[], s:s, s:s}", "sessionKey", key, "sessionId", rc ? "" : s.session_id,
                                 "messages", "thinkingLevel", s.thinking_level ? s.thinking_level : "off",
                                 "verboseLevel", "off")
                     : json_pack("{s:[]}", "messages");
    if (rc == CH_ENOTFOUND || !j->answer) {
        ch_session_rec_release(&s);
        return j->answer ? 0 : CH_ENOMEM;
    }
    room = frame_room(j, j->answer);
    content = CH_MIN(room, (size_t)CH_OC_HISTORY_BYTES);
    /* Oversize rows come without their content (a placeholder here), so
     * they cost nothing to load. */
    rc = ch_messages_load_before(db, s.session_id, INT64_MAX, lim ? (size_t)CH_MIN(json_integer_value(lim), 1000) : 200,
                                 content, content, &ml);
    if (rc == 0)
        rc = (msgs = ch_api_fit_messages(&ml, room, true, ch_oc_history_message, &fit)) ? 0 : CH_ENOMEM;
    if (rc == 0)
        json_object_set_new(j->answer, "messages", msgs);
    ch_message_list_release(&ml);
    ch_session_rec_release(&s);
    return rc;
}

/* A malformed key is refused as the reference does; one too long for
 * chela's store names no session (an empty history, j->key ""). */
static void history_submit(struct oc_req *q, const char *param)
{
    char key[CH_SESSION_KEY_MAX + 1], why[CH_SESSION_KEY_MAX + 64];
    int rc = ch_oc_key_canon(json_string_value(json_object_get(q->params, param)), key, sizeof(key), why, sizeof(why));
    struct oc_sjob *j;

    if (rc == CH_EINVAL) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", why, NULL);
        return;
    }
    if ((j = ch_oc_sjob_new(q, history_run)) != NULL) {
        if (rc == 0)
            memcpy(j->key, key, sizeof(key));
        ch_oc_sjob_submit(j, false);
    }
}

void ch_oc_m_sessions_get(struct oc_req *q)
{
    history_submit(q, "key");
}

void ch_oc_m_chat_history(struct oc_req *q)
{
    history_submit(q, "sessionKey");
}
