/*
 * rest_send.c: outbound messages (issue #4 item 4).
 *   POST /api/v1/send {channel, chatId, message}            [send] seed 002
 *   POST /api/messages/send {sessionId, text, attachments?} [send] seed 004
 *   POST /api/messages/broadcast {platform, recipients[], text} [send] seed 004
 *   POST /api/sessions/:id/reset                            [admin] seed 004
 * chela has no chat channels yet; the one channel is `webhook`, which
 * hands the message to the outgoing webhooks as a `message.sent` event
 * (durable outbox, signed).  A send to a session records the text as an
 * assistant turn of that session (it is the bot speaking) and emits the
 * event on the session's channel.  A reset emits seed 004's `status`
 * event.  docs/compatibility.md has the semantics.
 */
#include <string.h>

#include "api/hooks.h"

#define MAX_CHAT_ID 512
#define MAX_TEXT (1024 * 1024)
#define MAX_RECIPIENTS 1000
/* api.broadcast.maxTotalBytes's default: recipients x text bytes. */
#define DEFAULT_MAX_BROADCAST_BYTES (16 * 1024 * 1024)
#define MAX_ATTACHMENTS 32

/* The channels a send can use today. */
static const char *const channels[] = {"webhook"};

static bool channel_known(const char *c)
{
    for (size_t i = 0; i < CH_ARRAY_SIZE(channels); i++)
        if (!strcmp(c, channels[i]))
            return true;
    return false;
}

/* 400 naming the channels a send can use, as text and as a list. */
static void refuse_channel(struct ch_http_req *r, const char *c)
{
    json_t *list = json_array();
    char names[128] = "", msg[256];
    size_t n = 0;

    for (size_t i = 0; i < CH_ARRAY_SIZE(channels); i++) {
        json_array_append_new(list, json_string(channels[i]));
        n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "", channels[i]);
    }
    snprintf(msg, sizeof(msg), "unknown channel '%.64s'; configured channels: %s", c, names);
    ch_http_respond_json(r, 400,
                         json_pack("{s:s, s:s, s:o}", "error", "unknown_channel", "message", msg, "channels", list));
}

/* A chat id: a string, or an integer (Telegram ids are numbers). */
static char *chat_id(const json_t *v)
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= MAX_CHAT_ID &&
        strlen(json_string_value(v)) == json_string_length(v))
        return ch_strdup(json_string_value(v));
    if (json_is_integer(v))
        return ch_sprintf("%lld", (long long)json_integer_value(v));
    return NULL;
}

static bool text_ok(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= MAX_TEXT &&
           strlen(json_string_value(v)) == json_string_length(v);
}

/* Emit one message.sent; returns the message id (in id, 37 bytes). */
static void emit_sent(struct ch_api *a, const char *channel, const char *to, const char *text,
                      const json_t *attachments, const char *session, char id[37])
{
    json_t *d;
    char ts[32];

    ch_uuid4(id);
    ch_time_iso8601(ch_now_ms(), ts);
    d = json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s}", "messageId", id, "channel", channel, "chatId", to, "message",
                  text, "sessionId", session, "sentAt", ts);
    if (d && attachments)
        json_object_set(d, "attachments", (json_t *)attachments);
    ch_webhooks_emit(a, "message.sent", d);
}

/* ---- POST /api/v1/send ---- */

void ch_rest_send(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    json_t *body = NULL;
    const char *ch;
    char *to = NULL, id[37];

    if (ch_api_json_body(r, &body) != 0)
        return;
    ch = json_string_value(json_object_get(body, "channel"));
    if (!ch || !*ch) {
        ch_http_respond_error(r, 400, "invalid_request", "channel is required (configured channels: webhook)");
        goto out;
    }
    if (!channel_known(ch)) {
        refuse_channel(r, ch);
        goto out;
    }
    to = chat_id(json_object_get(body, "chatId"));
    if (!to) {
        ch_http_respond_error(r, 400, "invalid_request", "chatId is required: a string of 1-%d bytes or an integer",
                              MAX_CHAT_ID);
        goto out;
    }
    if (!text_ok(json_object_get(body, "message"))) {
        ch_http_respond_error(r, 400, "invalid_request", "message is required: a non-empty string of at most %d bytes",
                              MAX_TEXT);
        goto out;
    }
    emit_sent(a, ch, to, json_string_value(json_object_get(body, "message")), NULL, NULL, id);
    ch_http_respond_json(r, 200,
                         json_pack("{s:b, s:s, s:s, s:s, s:s}", "ok", 1, "messageId", id, "channel", ch, "chatId", to,
                                   "status", "queued"));
out:
    ch_free(to);
    json_decref(body);
}

/* ---- POST /api/messages/broadcast ---- */

void ch_rest_messages_broadcast(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    json_t *body = NULL, *results = NULL;
    const json_t *rcpt, *v;
    const char *platform, *text;
    uint64_t cap, total;
    char id[37];
    size_t i;

    if (ch_api_json_body(r, &body) != 0)
        return;
    platform = json_string_value(json_object_get(body, "platform"));
    rcpt = json_object_get(body, "recipients");
    text = json_string_value(json_object_get(body, "text"));
    if (!platform || !*platform) {
        ch_http_respond_error(r, 400, "invalid_request", "platform is required (configured channels: webhook)");
        goto out;
    }
    if (!channel_known(platform)) {
        refuse_channel(r, platform);
        goto out;
    }
    if (!json_is_array(rcpt) || json_array_size(rcpt) == 0 || json_array_size(rcpt) > MAX_RECIPIENTS) {
        ch_http_respond_error(r, 400, "invalid_request", "recipients must be an array of 1-%d chat ids",
                              MAX_RECIPIENTS);
        goto out;
    }
    json_array_foreach(rcpt, i, v)
    {
        char *to = chat_id(v);
        if (!to) {
            ch_http_respond_error(r, 400, "invalid_request", "recipients[%zu] must be a string or an integer", i);
            goto out;
        }
        ch_free(to);
    }
    if (!text_ok(json_object_get(body, "text"))) {
        ch_http_respond_error(r, 400, "invalid_request", "text is required: a non-empty string of at most %d bytes",
                              MAX_TEXT);
        goto out;
    }
    /* Each recipient is its own event, queued now on the loop thread and
     * stored once per subscribed webhook: the product is what it costs. */
    cap = ch_config_size(a->cfg, "api.broadcast.maxTotalBytes", DEFAULT_MAX_BROADCAST_BYTES);
    total = (uint64_t)json_array_size(rcpt) * (uint64_t)json_string_length(json_object_get(body, "text"));
    if (total > cap) {
        ch_http_respond_error(r, 413, "payload_too_large",
                              "%zu recipients x %zu bytes of text is %llu bytes; api.broadcast.maxTotalBytes "
                              "allows %llu: send fewer recipients or a shorter text",
                              json_array_size(rcpt), json_string_length(json_object_get(body, "text")),
                              (unsigned long long)total, (unsigned long long)cap);
        goto out;
    }
    /* Validated first, then sent: a bad recipient sends nothing. */
    results = json_array();
    json_array_foreach(rcpt, i, v)
    {
        char *to = chat_id(v);
        if (!to)
            continue;
        emit_sent(a, platform, to, text, NULL, NULL, id);
        json_array_append_new(results,
                              json_pack("{s:s, s:s, s:s}", "recipient", to, "messageId", id, "status", "queued"));
        ch_free(to);
    }
    ch_http_respond_json(r, 200,
                         json_pack("{s:b, s:s, s:I, s:I, s:O}", "ok", 1, "platform", platform, "sent",
                                   (json_int_t)json_array_size(results), "failed", (json_int_t)0, "results", results));
out:
    json_decref(results);
    json_decref(body);
}

/* ---- POST /api/messages/send and POST /api/sessions/:id/reset ---- */

struct send_job {
    struct ch_store_job job;
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held */
    char *key;               /* owned: the session key (canonical) */
    char *id;                /* owned: seed 004's sessionId as sent, echoed */
    char *text;              /* owned: send */
    char *content;           /* owned JSON: the transcript entry */
    json_t *attachments;     /* owned or NULL */
    char *channel;           /* owned: the session's channel, from the job */
    char *old_id, *new_id;   /* owned: reset */
    bool reset;
};

static void send_job_free(struct send_job *j)
{
    ch_http_req_unref(j->req);
    ch_free(j->key);
    ch_free(j->id);
    ch_free(j->text);
    ch_free(j->content);
    json_decref(j->attachments);
    ch_free(j->channel);
    ch_free(j->old_id);
    ch_free(j->new_id);
    ch_free(j);
}

static int send_run(struct ch_db *db, struct ch_store_job *job)
{
    struct send_job *j = (struct send_job *)job;
    struct ch_session_rec s = {0}, after = {0};
    struct ch_message_rec m = {0};
    int rc = ch_sessions_get(db, j->key, &s);

    if (rc)
        goto out;
    j->channel = s.channel ? ch_strdup(s.channel) : NULL;
    if (j->reset) {
        rc = ch_sessions_reset(db, j->key, NULL, ch_now_ms(), &after);
        if (rc == 0 && (!(j->old_id = ch_strdup(s.session_id)) || !(j->new_id = ch_strdup(after.session_id))))
            rc = CH_ENOMEM;
        goto out;
    }
    /* The operator's message is the bot speaking: an assistant turn, so
     * the agent sees what was said in the next run of the session. */
    m.session_key = s.key;
    m.session_id = s.session_id;
    snprintf(m.role, sizeof(m.role), "assistant");
    m.content = j->content;
    m.created_ms = ch_now_ms();
    rc = ch_messages_append(db, &m, NULL);
out:
    ch_session_rec_release(&s);
    ch_session_rec_release(&after);
    return rc;
}

static void send_done(struct ch_store_job *job, int rc)
{
    struct send_job *j = (struct send_job *)job;
    const char *ch = j->channel && channel_known(j->channel) ? j->channel : "webhook";
    char id[37];

    if (rc == 0 && j->reset)
        ch_webhooks_emit(j->api, "status",
                         json_pack("{s:s, s:s, s:s?, s:s?}", "sessionId", j->id, "status", "reset",
                                   "previousTranscriptId", j->old_id, "transcriptId", j->new_id));
    else if (rc == 0)
        emit_sent(j->api, ch, NULL, j->text, j->attachments, j->id, id);
    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND)
        ch_http_respond_error(j->req, 404, "not_found", "no session '%s'", j->id);
    else if (rc)
        ch_http_respond_error(j->req, 500, "store_error", "the session could not be updated: %s", ch_strerror(rc));
    else if (j->reset)
        ch_http_respond_json(j->req, 200,
                             json_pack("{s:b, s:s, s:s, s:s, s:s?, s:s?}", "ok", 1, "status", "reset", "key", j->key,
                                       "sessionId", j->id, "transcriptId", j->new_id, "previousTranscriptId",
                                       j->old_id));
    else
        ch_http_respond_json(j->req, 200,
                             json_pack("{s:b, s:s, s:s, s:s, s:s}", "ok", 1, "status", "sent", "messageId", id,
                                       "sessionId", j->id, "channel", ch));
out:
    send_job_free(j);
}

static void submit_send(struct send_job *j)
{
    j->job.run = send_run;
    j->job.done = send_done;
    if (ch_store_write(j->api->store, &j->job) != 0) {
        ch_http_add_header(j->req, "Retry-After", "1");
        ch_http_respond_error(j->req, 503, "store_busy", "the store cannot take the request now; retry shortly");
        send_job_free(j);
    }
}

/* A session id is looked up by its canonical key (OpenClaw's store key:
 * `S1` is agent:main:s1) and echoed as sent. */
static struct send_job *send_job_new(struct ch_http_req *r, struct ch_api *a, const char *id)
{
    struct send_job *j;
    char key[CH_SESSION_KEY_MAX + 1];
    int krc;

    if ((krc = ch_api_session_key(id, key)) != 0) {
        char why[CH_SESSION_KEY_MAX + 64];

        ch_session_key_why(krc, id, why, sizeof(why));
        ch_http_respond_error(r, 400, "invalid_request", "%s", why);
        return NULL;
    }
    j = ch_calloc(1, sizeof(*j));
    if (!j || !(j->key = ch_strdup(key)) || !(j->id = ch_strdup(id))) {
        if (j)
            ch_free(j->key);
        ch_free(j);
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    j->api = a;
    j->req = r;
    ch_http_req_ref(r);
    return j;
}

void ch_rest_messages_send(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const json_t *key, *text, *att;
    struct send_job *j;
    json_t *body = NULL, *c;

    if (ch_api_json_body(r, &body) != 0)
        return;
    key = json_object_get(body, "sessionId");
    text = json_object_get(body, "text");
    att = json_object_get(body, "attachments");
    if (!json_is_string(key) || !ch_agent_session_key_valid(json_string_value(key))) {
        ch_http_respond_error(r, 400, "invalid_request",
                              "sessionId is required: a session key (1-%d printable "
                              "characters without spaces)",
                              CH_STORE_MAX_KEY_BYTES);
        goto out;
    }
    if (!text_ok(text)) {
        ch_http_respond_error(r, 400, "invalid_request", "text is required: a non-empty string of at most %d bytes",
                              MAX_TEXT);
        goto out;
    }
    if (att && !json_is_null(att) && (!json_is_array(att) || json_array_size(att) > MAX_ATTACHMENTS)) {
        ch_http_respond_error(r, 400, "invalid_request", "attachments must be an array of at most %d items",
                              MAX_ATTACHMENTS);
        goto out;
    }
    if (!(j = send_job_new(r, a, json_string_value(key))))
        goto out;
    c = json_pack("[{s:s, s:s}]", "type", "text", "text", json_string_value(text));
    j->content = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    j->text = ch_strdup(json_string_value(text));
    if (json_is_array(att))
        j->attachments = json_deep_copy(att);
    if (!j->content || !j->text || (json_is_array(att) && !j->attachments)) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        send_job_free(j);
        goto out;
    }
    submit_send(j);
out:
    json_decref(body);
}

void ch_rest_seed_session_reset(struct ch_http_req *r, void *data)
{
    char key[CH_STORE_MAX_KEY_BYTES + 1];
    struct send_job *j;

    if (ch_api_path_param(r, 0, key, sizeof(key)) != 0)
        return;
    if (!(j = send_job_new(r, data, key)))
        return;
    j->reset = true;
    submit_send(j);
}
