/*
 * call.c: one LLM call across its model chain: the attempt loop, the
 * decision after each failed attempt, the call's deadline and its end.
 *
 * States (call_set_state is the only writer):
 *   SENDING  a transfer is in flight (call_xfer.c runs it);
 *   WAITING  the backoff timer runs before the next attempt;
 *   DONE     the result is final; on_done fired or is about to.
 * After a failed attempt, in this order: nothing is retried once an event
 * reached the caller; a 429 or 401/403 moves at once to another key that
 * is free; a retryable failure (429, 5xx, 408, timeouts, connection
 * errors, a stream that broke before any event) waits a full-jitter
 * backoff (at least the server's Retry-After) while retries remain; then
 * the next model of the chain; then the call fails with the last reason.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "providers/client_int.h"

static const char *const state_names[] = {"waiting", "sending", "done"};

static void call_set_state(struct ch_llm_call *c, enum llm_call_state s)
{
    if (c->state == s)
        return;
    ch_log_debug("llm call %p: %s -> %s", (void *)c, state_names[c->state], state_names[s]);
    c->state = s;
}

void llm_failure_set(struct llm_failure *f, int rc, enum ch_llm_err err, bool retryable, const char *fmt, ...)
{
    va_list ap;

    memset(f, 0, sizeof(*f));
    f->rc = rc;
    f->err = err;
    f->retryable = retryable;
    f->retry_after_ms = -1;
    /* A plain text (every transfer starts with "no verdict") needs no printf. */
    if (!strchr(fmt, '%')) {
        ch_str_copy(f->message, sizeof(f->message), fmt);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    /* It may quote an upstream's words, cut at a byte: every surface puts
     * it in a JSON answer. */
    ch_str_utf8_fix(f->message);
}

/* ------------------------------------------------------------------ */
/* Freeing                                                              */
/* ------------------------------------------------------------------ */

void llm_call_unref(struct ch_llm_call *c)
{
    if (--c->refs > 0)
        return;
    llm_call_release_attempt(c, false);
    ch_llm_decoder_free(c->dec);
    ch_buf_release(&c->errbody);
    json_decref(c->messages);
    json_decref(c->tools);
    json_decref(c->sampling);
    ch_free(c->system);
    llm_gen_unref(c->gen);
    ch_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    llm_call_unref(h->data);
}

static void unlink_call(struct ch_llm_call *c)
{
    struct ch_llm_call **pp;

    if (!c->client)
        return;
    for (pp = &c->client->calls; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->client->live_calls--;
    c->client = NULL;
}

void ch_llm_call_free(struct ch_llm_call *c)
{
    if (!c || c->freed)
        return;
    c->freed = true;
    if (c->breaker && c->is_probe) /* the breaker is the client's: settle it now */
        ch_llm_breaker_release(c->breaker, true);
    c->is_probe = false;
    c->breaker = NULL;
    if (c->req)
        ch_curlm_abort(c->req); /* its on_done drops the transfer's reference */
    unlink_call(c);
    uv_close((uv_handle_t *)&c->wait_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, on_timer_closed);
    llm_call_unref(c);
}

/* ------------------------------------------------------------------ */
/* The end                                                              */
/* ------------------------------------------------------------------ */

static void deliver(struct ch_llm_call *c)
{
    if (c->freed)
        return;
    /* Last thing touching c: on_done may free it. */
    c->on_done(c, &c->result, c->data);
}

static void on_deliver_timer(uv_timer_t *t)
{
    deliver(t->data);
}

static void account(struct ch_llm_call *c)
{
    struct ch_llm_stats *s = &c->client->stats;
    struct ch_llm_result *r = &c->result;

    if (r->rc == 0)
        s->calls_ok++;
    else if (r->rc == CH_ECANCELED)
        s->calls_aborted++;
    else
        s->calls_failed++;
    if (r->rc && r->rc != CH_ECANCELED && (unsigned)r->err <= CH_LLM_ERR_UNKNOWN)
        s->failures[r->err]++;
    ch_llm_usage_add(&s->tokens, &r->usage);
    s->cost_usd += r->cost_usd;
}

/* Set the result and report it.  f NULL: success. */
static void finish(struct ch_llm_call *c, const struct llm_failure *f)
{
    struct ch_llm_result *r = &c->result;
    const struct ch_llm_target *t = NULL;
    size_t i;

    call_set_state(c, LLM_CALL_DONE);
    uv_timer_stop(&c->wait_timer);
    uv_timer_stop(&c->deadline_timer);
    memset(r, 0, sizeof(*r));
    r->provider = r->model = r->ref = r->reported_model = "";
    for (i = c->nattempts; i > 0 && !t; i--) /* the model of the last attempt */
        for (size_t k = 0; k < c->ntargets && !t; k++)
            if (c->attempts[i - 1].ref == c->targets[k].ref)
                t = &c->targets[k];
    if (t) {
        r->provider = t->provider->id;
        r->model = t->model_id;
        r->ref = t->ref;
    }
    r->rc = f ? f->rc : 0;
    r->err = f ? f->err : CH_LLM_ERR_UNKNOWN;
    r->stop = f ? CH_LLM_STOP_ERROR : CH_LLM_STOP_END_TURN;
    if (f)
        ch_str_copy(r->message, sizeof(r->message), f->message);
    if (c->dec) {
        r->message_json = ch_llm_decoder_message(c->dec);
        r->usage = *ch_llm_decoder_usage(c->dec);
        r->reported_model = ch_llm_decoder_model(c->dec);
        if (!f)
            r->stop = ch_llm_decoder_stop(c->dec);
        if (t)
            r->cost_usd = ch_llm_cost_usd(&t->pricing, &r->usage);
    }
    r->attempts = c->attempts;
    r->attempt_count = c->nattempts;
    r->fallbacks = c->fallbacks;
    r->latency_ms = ch_mono_ms() - c->start_ms;
    r->first_token_ms = c->first_token_ms;
    if (c->client)
        account(c);
    if (f && f->rc != CH_ECANCELED)
        ch_log_warn("llm: call failed after %zu attempt%s: %s: %s", c->nattempts, c->nattempts == 1 ? "" : "s",
                    ch_llm_err_name(f->err), f->message);
    if (c->in_start) /* never inside ch_llm_call_start */
        uv_timer_start(&c->wait_timer, on_deliver_timer, 0, 0);
    else
        deliver(c);
}

/* ------------------------------------------------------------------ */
/* Attempts and decisions                                               */
/* ------------------------------------------------------------------ */

enum next_step { NEXT_RETRY_NOW, NEXT_WAIT, NEXT_MODEL, NEXT_FINISH };

/* libuv's loop clock may be CLOCK_MONOTONIC_COARSE (a few ms behind). */
#define KEY_SLACK_MS 20

static struct ch_llm_attempt *note_attempt(struct ch_llm_call *c, const struct ch_llm_target *t, int key_index,
                                           bool sent)
{
    struct ch_llm_attempt *a = &c->attempts[c->nattempts++];

    memset(a, 0, sizeof(*a));
    a->ref = t->ref;
    a->key_index = key_index;
    a->sent = sent;
    return a;
}

/* Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"):
 * uniform in [0, min(max, base * 2^(n-1))] for the n-th retry. */
static int64_t backoff_ms(struct ch_llm_call *c, uint32_t n)
{
    const struct ch_llm_settings *s = &c->gen->cat->settings;
    int64_t cap = (int64_t)s->backoff_base_ms << CH_MIN(n - 1, 20u);

    cap = CH_MIN(cap, (int64_t)s->backoff_max_ms);
    return (int64_t)(llm_client_rand(c->client) % (uint64_t)(cap + 1));
}

static enum next_step decide(struct ch_llm_call *c, const struct llm_failure *f, bool sent, int64_t *wait_ms)
{
    const struct ch_llm_settings *s = &c->gen->cat->settings;
    const struct ch_llm_target *t = &c->targets[c->pos];
    struct ch_llm_keyring *ring = llm_gen_ring(c->gen, t->provider);
    bool last_model = c->pos + 1 >= c->ntargets;
    int64_t now = (int64_t)ch_mono_ms(), wait, jitter;

    c->last = *f;
    if (c->delivered || f->rc == CH_EINVAL || f->rc == CH_ENOMEM || f->rc == CH_ECLOSED)
        return NEXT_FINISH;
    if (c->nattempts >= CH_LLM_MAX_ATTEMPTS)
        return NEXT_FINISH;
    /* Another key may serve at once (seed 000).  Bounded by the ring size
     * so a zero Retry-After cannot spin. */
    if (sent && (f->err == CH_LLM_ERR_RATE_LIMIT || f->err == CH_LLM_ERR_AUTH) && ring && c->rotations < ring->count &&
        ch_llm_keyring_has_free(ring, llm_client_now(c->client), SIZE_MAX)) {
        c->rotations++;
        c->client->stats.key_rotations++;
        return NEXT_RETRY_NOW;
    }
    if (f->retryable && c->retries < s->retry_count) {
        jitter = backoff_ms(c, c->retries + 1);
        wait = CH_MAX(jitter, f->retry_after_ms);
        /* Rate-limited: what matters is when any key of the ring serves
         * again, which may be sooner than the key that just failed. */
        if (f->err == CH_LLM_ERR_RATE_LIMIT && ring && ring->count)
            wait = CH_MAX(jitter, ch_llm_keyring_wait_ms(ring, llm_client_now(c->client)));
        /* A long wait is worth it only when nothing else can serve. */
        if (now + wait < (int64_t)c->deadline_ms &&
            (wait <= s->backoff_max_ms || (last_model && wait <= CH_LLM_MAX_KEY_COOLDOWN_MS))) {
            *wait_ms = wait;
            return NEXT_WAIT;
        }
        ch_log_info("llm: %s: not waiting %lld ms to retry", t->ref, (long long)wait);
    }
    return last_model ? NEXT_FINISH : NEXT_MODEL;
}

static void attempt(struct ch_llm_call *c);

static void on_wait_timer(uv_timer_t *t)
{
    struct ch_llm_call *c = t->data;

    if (c->state != LLM_CALL_WAITING)
        return;
    attempt(c);
}

/* Act on a failure of targets[pos].  Returns true when attempt() should
 * go round again at once (a key rotation or the next model). */
static bool act(struct ch_llm_call *c, const struct llm_failure *f, bool sent)
{
    int64_t wait = 0;

    switch (decide(c, f, sent, &wait)) {
    case NEXT_RETRY_NOW:
        ch_log_info("llm: %s: %s; trying another key", c->targets[c->pos].ref, f->message);
        return true;
    case NEXT_WAIT:
        c->retries++;
        c->client->stats.retries++;
        ch_log_info("llm: %s failed (%s: %s); retry %u of %u in %lld ms", c->targets[c->pos].ref,
                    ch_llm_err_name(f->err), f->message, c->retries, c->gen->cat->settings.retry_count,
                    (long long)wait);
        call_set_state(c, LLM_CALL_WAITING);
        /* Loop time may lag the clock cooldowns use; one more ms ensures a
         * key that asked for exactly `wait` is usable when we come back. */
        uv_update_time(c->client->loop);
        uv_timer_start(&c->wait_timer, on_wait_timer, (uint64_t)wait + (wait ? 1 : 0), 0);
        return false;
    case NEXT_MODEL:
        ch_log_warn("llm: %s failed (%s: %s); falling back to %s", c->targets[c->pos].ref, ch_llm_err_name(f->err),
                    f->message, c->targets[c->pos + 1].ref);
        c->pos++;
        c->retries = c->rotations = 0;
        c->fallbacks++;
        c->client->stats.fallbacks++;
        return true;
    case NEXT_FINISH: break;
    }
    finish(c, f);
    return false;
}

static void attempt(struct ch_llm_call *c)
{
    const struct ch_llm_target *t;
    struct ch_llm_keyring *ring;
    struct llm_failure f;
    struct ch_llm_attempt *a;
    int64_t retry_in = 0, now;
    size_t key = 0;
    int rc, key_index;

    for (;;) {
        if (!c->client) {
            llm_failure_set(&f, CH_ECLOSED, CH_LLM_ERR_UNKNOWN, false, "the client is gone");
            finish(c, &f);
            return;
        }
        if (c->nattempts >= CH_LLM_MAX_ATTEMPTS) {
            finish(c, &c->last);
            return;
        }
        t = &c->targets[c->pos];
        now = llm_client_now(c->client);
        c->breaker = llm_client_breaker(c->client, t->provider->base_url);
        c->is_probe = false;
        if (c->breaker && ch_llm_breaker_allow(c->breaker, now, &c->is_probe, &retry_in)) {
            c->client->stats.breaker_rejections++;
            a = note_attempt(c, t, -1, false);
            llm_failure_set(&f, CH_EIO, CH_LLM_ERR_UNKNOWN, false, "circuit open for %s (retry in %lld s)",
                            t->provider->id, (long long)((retry_in + 999) / 1000));
            a->rc = f.rc;
            a->err = f.err;
            c->breaker = NULL;
            if (act(c, &f, false))
                continue;
            return;
        }
        ring = llm_gen_ring(c->gen, t->provider);
        key_index = -1;
        rc = ring ? ch_llm_keyring_pick(ring, now, &key, &retry_in) : CH_ENOTFOUND;
        if (rc == CH_AGAIN || rc == CH_EPERM) {
            if (c->breaker)
                ch_llm_breaker_release(c->breaker, c->is_probe);
            c->is_probe = false;
            if (rc == CH_AGAIN && retry_in <= KEY_SLACK_MS) {
                /* A wait for this key just ended by the loop's coarser
                 * clock but not by ours: finish it, costing no retry. */
                call_set_state(c, LLM_CALL_WAITING);
                uv_timer_start(&c->wait_timer, on_wait_timer, (uint64_t)retry_in + 1, 0);
                return;
            }
            a = note_attempt(c, t, -1, false);
            if (rc == CH_AGAIN)
                llm_failure_set(&f, CH_EIO, CH_LLM_ERR_RATE_LIMIT, true,
                                "all %zu key%s of %s are cooling down (next in %lld ms)", ring->count,
                                ring->count == 1 ? "" : "s", t->provider->id, (long long)retry_in);
            else
                llm_failure_set(&f, CH_EIO, CH_LLM_ERR_AUTH, false, "every key of %s was rejected (auth)",
                                t->provider->id);
            f.retry_after_ms = retry_in;
            a->rc = f.rc;
            a->err = f.err;
            if (act(c, &f, false))
                continue;
            return;
        }
        if (rc == 0)
            key_index = (int)key;
        c->attempt_start_ms = ch_mono_ms();
        rc = llm_call_send(c, t, key_index, &f);
        if (rc == 0) {
            call_set_state(c, LLM_CALL_SENDING);
            return;
        }
        if (c->breaker)
            ch_llm_breaker_release(c->breaker, c->is_probe);
        c->is_probe = false;
        a = note_attempt(c, t, key_index, false);
        a->rc = f.rc;
        a->err = f.err;
        if (act(c, &f, false))
            continue;
        return;
    }
}

/* call_xfer.c: the transfer of the current attempt ended without success
 * (ok false) or with it. */
void llm_call_after_attempt(struct ch_llm_call *c, bool ok, struct llm_failure *f)
{
    if (c->aborted) {
        llm_failure_set(f, CH_ECANCELED, CH_LLM_ERR_UNKNOWN, false, "aborted");
        finish(c, f);
    } else if (c->timed_out) {
        llm_failure_set(f, CH_ETIMEDOUT, CH_LLM_ERR_TIMEOUT, false, "the call timed out after %llu ms",
                        (unsigned long long)(ch_mono_ms() - c->start_ms));
        finish(c, f);
    } else if (!c->client) {
        llm_failure_set(f, CH_ECLOSED, CH_LLM_ERR_UNKNOWN, false, "the client is gone");
        finish(c, f);
    } else if (ok) {
        finish(c, NULL);
    } else if (act(c, f, true)) {
        attempt(c);
    }
}

/* ------------------------------------------------------------------ */
/* Start, deadline, abort                                               */
/* ------------------------------------------------------------------ */

static void on_deadline(uv_timer_t *t)
{
    struct ch_llm_call *c = t->data;
    struct llm_failure f;

    if (c->state == LLM_CALL_DONE || c->timed_out)
        return;
    c->timed_out = true;
    if (c->state == LLM_CALL_SENDING && c->req) {
        ch_curlm_abort_rc(c->req, CH_ETIMEDOUT); /* the transfer's on_done finishes */
        return;
    }
    llm_failure_set(&f, CH_ETIMEDOUT, CH_LLM_ERR_TIMEOUT, false, "the call timed out after %llu ms",
                    (unsigned long long)(ch_mono_ms() - c->start_ms));
    finish(c, &f);
}

static void on_abort_timer(uv_timer_t *t)
{
    struct ch_llm_call *c = t->data;
    struct llm_failure f;

    llm_failure_set(&f, CH_ECANCELED, CH_LLM_ERR_UNKNOWN, false, "aborted");
    finish(c, &f);
}

void ch_llm_call_abort(struct ch_llm_call *c)
{
    if (!c || c->freed || c->aborted || c->state == LLM_CALL_DONE)
        return;
    c->aborted = true;
    if (c->state == LLM_CALL_SENDING && c->req) {
        ch_curlm_abort(c->req);
        return;
    }
    /* Waiting: report on the next iteration, never inside this call. */
    uv_timer_stop(&c->wait_timer);
    call_set_state(c, LLM_CALL_WAITING);
    uv_timer_start(&c->wait_timer, on_abort_timer, 0, 0);
}

int ch_llm_call_start(struct ch_llm_client *client, const struct ch_llm_call_opts *opts, struct ch_llm_call **out)
{
    struct ch_llm_call *c;
    struct ch_error e = {0};
    struct llm_failure f;
    uint64_t timeout;
    int rc;

    if (!client)
        return CH_ECLOSED;
    if (!opts || !opts->on_done || !json_is_array(opts->messages))
        return CH_EINVAL;
    c = ch_calloc(1, sizeof(*c));
    if (!c)
        return CH_ENOMEM;
    c->system = opts->system ? ch_strdup(opts->system) : NULL;
    if (opts->system && !c->system) {
        ch_free(c);
        return CH_ENOMEM;
    }
    c->client = client;
    c->gen = llm_gen_ref(client->gen);
    c->refs = 3; /* the owner and the two timers */
    c->messages = json_incref(opts->messages);
    c->tools = json_incref(opts->tools);
    c->sampling = json_incref((json_t *)opts->sampling);
    c->max_tokens = opts->max_tokens;
    c->temperature = opts->temperature;
    c->has_temperature = opts->has_temperature;
    c->prompt_cache = opts->prompt_cache;
    c->whole_body = opts->whole_body;
    c->on_event = opts->on_event;
    c->on_done = opts->on_done;
    c->data = opts->data;
    c->state = LLM_CALL_WAITING;
    ch_buf_init(&c->errbody, CH_LLM_MAX_ERROR_BODY);
    uv_timer_init(client->loop, &c->wait_timer);
    uv_timer_init(client->loop, &c->deadline_timer);
    c->wait_timer.data = c->deadline_timer.data = c;
    c->next = client->calls;
    client->calls = c;
    client->live_calls++;
    client->stats.calls++;
    c->start_ms = ch_mono_ms();
    *out = c;

    c->in_start = true;
    rc = ch_llm_catalog_chain(c->gen->cat, opts->model, opts->fallbacks, opts->fallbacks ? opts->fallback_count : 0,
                              c->targets, &c->ntargets, &e);
    if (rc) {
        llm_failure_set(&f, rc, CH_LLM_ERR_UNKNOWN, false, "%s", e.msg);
        finish(c, &f);
    } else {
        timeout = opts->timeout_ms ? opts->timeout_ms : c->gen->cat->settings.call_timeout_ms;
        c->deadline_ms = c->start_ms + timeout;
        /* Loop time is cached from the last wakeup; a stale base would
         * shorten the caller's timeout. */
        uv_update_time(client->loop);
        uv_timer_start(&c->deadline_timer, on_deadline, timeout, 0);
        attempt(c);
    }
    c->in_start = false;
    return 0;
}
