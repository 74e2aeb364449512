/*
 * call_xfer.c: one attempt of an LLM call on the wire: build the request
 * for the chosen provider and key, submit it to the curl manager, feed the
 * streamed body to the provider's decoder, forward its events to the
 * caller, and when the transfer ends turn what happened into a verdict for
 * call.c (success, or a classified failure), after settling the key ring
 * and the endpoint's breaker.
 *
 * USAGE events are held back until the first other event: a stream that
 * breaks before any content can then be retried without the caller having
 * seen anything of it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "providers/client_int.h"

/* Drop what belongs to the attempt; keep_decoder keeps the decoder for
 * the result (success, or a broken stream whose events were delivered). */
void llm_call_release_attempt(struct ch_llm_call *c, bool keep_decoder)
{
    ch_llm_http_release(&c->http);
    if (!keep_decoder) {
        ch_llm_decoder_free(c->dec);
        c->dec = NULL;
    }
    ch_buf_reset(&c->errbody);
}

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

static void on_dec_event(const struct ch_llm_event *ev, void *data)
{
    struct ch_llm_call *c = data;
    struct ch_llm_event u;

    if (ev->type == CH_LLM_EV_ERROR) {
        /* Reported through on_done, never as an event: it may be retried. */
        c->ev_error = true;
        c->ev_err = ev->err;
        c->ev_retryable = ev->retryable;
        snprintf(c->ev_message, sizeof(c->ev_message), "%s", ev->message ? ev->message : "");
        ch_str_utf8_fix(c->ev_message);
        return;
    }
    if (c->aborted || c->freed || c->timed_out || !c->on_event)
        return;
    if (!c->delivered) {
        if (ev->type == CH_LLM_EV_USAGE) {
            c->held_usage = ev->usage;
            c->usage_held = true;
            return;
        }
        c->delivered = true;
        c->first_token_ms = ch_mono_ms() - c->start_ms;
        if (c->usage_held) {
            memset(&u, 0, sizeof(u));
            u.type = CH_LLM_EV_USAGE;
            u.usage = c->held_usage;
            c->usage_held = false;
            c->on_event(&u, c->data);
            if (c->aborted || c->freed)
                return;
        }
    }
    c->on_event(ev, c->data);
}

/* ------------------------------------------------------------------ */
/* Transfer callbacks                                                   */
/* ------------------------------------------------------------------ */

static bool is_2xx(long status)
{
    return status >= 200 && status < 300;
}

static void copy_header(const struct ch_curlm_head *head, const char *name, char *out, size_t cap)
{
    struct ch_str v = ch_curlm_head_get(head, name);

    out[0] = '\0';
    if (v.p)
        snprintf(out, cap, "%.*s", (int)CH_MIN(v.len, cap - 1), v.p);
}

static bool is_event_stream(struct ch_str ctype)
{
    static const char want[] = "text/event-stream";

    return ctype.p && ctype.len >= sizeof(want) - 1 && !strncasecmp(ctype.p, want, sizeof(want) - 1);
}

static int on_headers(struct ch_curlm_req *req, const struct ch_curlm_head *head, void *data)
{
    struct ch_llm_call *c = data;

    c->status = head->status;
    if (!is_2xx(head->status)) {
        copy_header(head, "retry-after", c->retry_after, sizeof(c->retry_after));
        copy_header(head, "retry-after-ms", c->retry_after_ms, sizeof(c->retry_after_ms));
        return 0;
    }
    /* Asked for one body, got a stream (a server that always streams):
     * read it as one.  Nothing was fed to the decoder yet. */
    if (c->whole_body_asked && is_event_stream(ch_curlm_head_get(head, "content-type"))) {
        struct ch_llm_decoder *dec = NULL;
        if (ch_llm_decoder_new(&dec, c->targets[c->pos].provider->api, true, on_dec_event, c))
            return CH_ENOMEM;
        ch_llm_decoder_free(c->dec);
        c->dec = dec;
    }
    return 0;
}

static int on_data(struct ch_curlm_req *req, const char *p, size_t len, void *data)
{
    struct ch_llm_call *c = data;
    int rc;

    if (c->freed || c->aborted || c->timed_out)
        return CH_ECANCELED;
    if (!is_2xx(c->status)) {
        size_t room = c->errbody.max - c->errbody.len;

        /* Only the start of an error body matters for classification:
         * once it is kept, stop reading, rather than take in up to the
         * body cap (16 MiB) from a server that never ends its error page.
         * assess() classifies by the status all the same. */
        if (ch_buf_append(&c->errbody, p, CH_MIN(len, room)))
            return CH_ENOMEM;
        return len >= room ? CH_E_TOO_LARGE : 0;
    }
    rc = ch_llm_decoder_feed(c->dec, p, len);
    /* The decoder reported its failure as an ERROR event (ev_*): stop
     * reading, it ignores the rest anyway. */
    return rc;
}

/* What a finished transfer means.  Returns true on success. */
static bool assess(struct ch_llm_call *c, const struct ch_llm_target *t, const struct ch_curlm_result *res,
                   struct llm_failure *f)
{
    struct ch_llm_failure cf;
    enum ch_llm_err err;
    char prefix[32];
    int64_t ra;

    llm_failure_set(f, CH_EIO, CH_LLM_ERR_UNKNOWN, false, "no verdict");
    if (res->rc == 0 && is_2xx(res->status)) {
        if (ch_llm_decoder_finish(c->dec) == 0) {
            if (!ch_llm_stop_is_failure(ch_llm_decoder_stop(c->dec), &err))
                return true;
            llm_failure_set(f, CH_EIO, err, false, "%s stopped with %s", t->ref,
                            ch_llm_stop_name(ch_llm_decoder_stop(c->dec)));
            return false;
        }
    }
    if (c->ev_error && (res->rc == 0 || is_2xx(c->status))) {
        /* The provider's in-stream error, a malformed stream, or a body
         * that ended early (the decoder says whether a retry may help). */
        llm_failure_set(f, CH_EIO, c->ev_err, c->ev_retryable, "%s", c->ev_message);
        f->endpoint_fault = c->ev_retryable && c->ev_err != CH_LLM_ERR_RATE_LIMIT;
    } else if (res->rc == 0 || (res->head && !is_2xx(res->status))) {
        /* An error answer: its status decides, even when its body broke
         * off afterwards (a stall, a reset, a cap, or on_data stopped
         * reading it): a 429 whose body never ends is still a rate limit
         * (the key cools down, Retry-After counts), a 401 cut short still
         * a bad key, not a transport error retried with the same key. */
        ch_llm_classify_http(t->provider->api, (int)res->status, c->errbody.data, c->errbody.len, &cf);
        snprintf(prefix, sizeof(prefix), "HTTP %ld: ", res->status);
        /* Without a body to quote, the message is already "HTTP 502". */
        if (!strncmp(cf.message, prefix, strlen(prefix) - 2))
            prefix[0] = '\0';
        llm_failure_set(f, CH_EIO, cf.err, cf.retryable, "%s%s", prefix, cf.message);
        f->retry_after_ms = cf.retry_after_ms;
        if (ch_llm_retry_after(c->retry_after[0] ? c->retry_after : NULL,
                               c->retry_after_ms[0] ? c->retry_after_ms : NULL, ch_now_ms(), &ra) == 0)
            f->retry_after_ms = ra;
        f->endpoint_fault = res->status >= 500 || res->status == 408;
    } else {
        ch_llm_classify_transport(res->rc, res->msg, &cf);
        llm_failure_set(f, CH_EIO, cf.err, cf.retryable, "%s", cf.message);
        if (res->rc == CH_E_TOO_LARGE || res->rc == CH_ENOMEM)
            f->retryable = false; /* the same answer would be as large */
        f->endpoint_fault = f->retryable;
        /* Let the decoder close what it has: the partial message. */
        if (c->dec && is_2xx(c->status))
            ch_llm_decoder_finish(c->dec);
    }
    if (f->err == CH_LLM_ERR_TIMEOUT)
        f->rc = CH_ETIMEDOUT;
    return false;
}

static void on_xfer_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct ch_llm_call *c = data;
    const struct ch_llm_target *t = &c->targets[c->pos];
    struct ch_llm_attempt *a = &c->attempts[c->nattempts - 1];
    struct ch_llm_keyring *ring = llm_gen_ring(c->gen, t->provider);
    struct llm_failure f;
    bool ok = false, stopped = c->freed || c->aborted || c->timed_out || !c->client;
    int64_t now;

    c->req = NULL;
    if (stopped) {
        llm_failure_set(&f, CH_ECANCELED, CH_LLM_ERR_UNKNOWN, false, "stopped");
        if (c->dec && c->delivered) /* close the partial message; nothing is forwarded */
            ch_llm_decoder_finish(c->dec);
    } else {
        ok = assess(c, t, res, &f);
        now = llm_client_now(c->client);
        if (c->breaker) {
            if (ok || !f.endpoint_fault)
                ch_llm_breaker_success(c->breaker, c->is_probe);
            else
                ch_llm_breaker_failure(c->breaker, now, c->is_probe);
        }
        if (a->key_index >= 0 && ring) {
            if (!ok && f.err == CH_LLM_ERR_RATE_LIMIT)
                ch_llm_keyring_rate_limited(ring, (size_t)a->key_index, f.retry_after_ms, now);
            else if (!ok && f.err == CH_LLM_ERR_AUTH)
                ch_llm_keyring_auth_failed(ring, (size_t)a->key_index, now);
            else if (ok || res->rc == 0)
                ch_llm_keyring_succeeded(ring, (size_t)a->key_index);
        }
    }
    if (c->breaker && c->is_probe && stopped)
        ch_llm_breaker_release(c->breaker, true);
    c->is_probe = false;
    a->http_status = (int)res->status;
    a->rc = ok ? 0 : f.rc;
    a->err = f.err;
    a->latency_ms = ch_mono_ms() - c->attempt_start_ms;
    /* Keep the decoder when its message is the result's. */
    llm_call_release_attempt(c, ok || c->delivered);
    if (!c->freed)
        llm_call_after_attempt(c, ok, &f);
    llm_call_unref(c); /* the transfer's reference, taken in llm_call_send */
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

int llm_call_send(struct ch_llm_call *c, const struct ch_llm_target *t, int key_index, struct llm_failure *f)
{
    const struct ch_llm_settings *s = &c->gen->cat->settings;
    const struct ch_llm_provider *p = t->provider;
    const json_t *temp = json_object_get(t->params, "temperature");
    struct ch_llm_request lr = {0};
    struct ch_curlm_request r = {0};
    struct ch_curlm_header *hdrs = NULL;
    struct ch_llm_attempt *a;
    struct ch_error e = {0};
    uint64_t now = ch_mono_ms();
    size_t i;
    int rc;

    lr.base_url = p->base_url;
    lr.api_key = key_index >= 0 ? p->keys[key_index] : NULL;
    lr.headers = p->headers;
    lr.model = t->model_id;
    lr.system = c->system;
    lr.messages = c->messages;
    lr.tools = c->tools;
    lr.sampling = c->sampling;
    lr.max_tokens = ch_llm_target_reply_budget(c->gen->cat, t, c->max_tokens);
    lr.has_temperature = c->has_temperature || json_is_number(temp);
    lr.temperature = c->has_temperature ? c->temperature : json_number_value(temp);
    /* Streamed unless the caller wants the whole reply anyway and the API
     * is OpenAI's: first tokens sooner, idle timeouts meaningful. */
    c->whole_body_asked = c->whole_body && p->api == CH_LLM_OPENAI;
    lr.stream = !c->whole_body_asked;
    lr.want_prompt_cache = c->prompt_cache;
    lr.tools_memo = c->client ? &c->client->tools_memo : NULL;

    ch_llm_decoder_free(c->dec);
    c->dec = NULL;
    c->status = 0;
    c->ev_error = c->usage_held = false;
    c->retry_after[0] = c->retry_after_ms[0] = '\0';
    ch_buf_reset(&c->errbody);

    rc = ch_llm_build_request(p->api, &lr, &c->http, &e);
    if (rc) {
        llm_failure_set(f, rc, CH_LLM_ERR_UNKNOWN, false, "%s", e.msg);
        goto out;
    }
    rc = ch_llm_decoder_new(&c->dec, p->api, lr.stream, on_dec_event, c);
    if (!rc) {
        hdrs = ch_calloc(c->http.header_count + 1, sizeof(*hdrs));
        rc = hdrs ? 0 : CH_ENOMEM;
    }
    if (rc) {
        llm_failure_set(f, CH_ENOMEM, CH_LLM_ERR_UNKNOWN, false, "out of memory");
        goto out;
    }
    for (i = 0; i < c->http.header_count; i++) {
        hdrs[i].name = c->http.headers[i].name;
        hdrs[i].value = c->http.headers[i].value;
    }
    r.method = c->http.method;
    r.url = c->http.url;
    r.headers = hdrs;
    r.header_count = c->http.header_count;
    r.body = c->http.body;
    r.body_len = c->http.body_len;
    r.body_mode = CH_CURLM_BODY_BORROW; /* c->http lives until on_done */
    r.connect_timeout_ms = s->connect_timeout_ms;
    r.first_byte_timeout_ms = s->first_byte_timeout_ms;
    /* A whole body comes when the reply is done: only the call's own
     * deadline bounds the wait for it. */
    if (c->whole_body_asked)
        r.first_byte_timeout_ms = CH_CURLM_NO_TIMEOUT;
    r.idle_timeout_ms = s->idle_timeout_ms;
    /* The call's deadline timer ends the call; this only keeps a transfer
     * from outliving it should that timer be late. */
    r.total_timeout_ms =
        c->deadline_ms > now ? (uint32_t)CH_MIN(c->deadline_ms - now + 1000, (uint64_t)UINT32_MAX - 1) : 1000;
    r.max_body_bytes = CH_CURLM_DEF_MAX_BODY_BYTES; /* STYLE.md 8.6: provider response */
    r.on_headers = on_headers;
    r.on_data = on_data;
    r.on_done = on_xfer_done;
    r.data = c;
    rc = ch_curlm_submit(c->client->curlm, &r, &c->req, &e);
    if (rc) {
        /* A malformed URL concerns this provider only: other models may
         * still serve (CH_EIO makes decide() move on, not finish). */
        llm_failure_set(f, rc == CH_EINVAL ? CH_EIO : rc, CH_LLM_ERR_UNKNOWN, false, "%s: %s", t->ref,
                        e.msg[0] ? e.msg : ch_strerror(rc));
        goto out;
    }
    c->refs++; /* held by the transfer until on_xfer_done */
    a = &c->attempts[c->nattempts++];
    memset(a, 0, sizeof(*a));
    a->ref = t->ref;
    a->key_index = key_index;
    a->sent = true;
    c->client->stats.attempts++;
    ch_log_debug("llm: %s attempt %zu (key #%d)", t->ref, c->nattempts, key_index);
out:
    ch_free(hdrs);
    if (rc) {
        ch_llm_http_release(&c->http);
        ch_llm_decoder_free(c->dec);
        c->dec = NULL;
    }
    return rc;
}
