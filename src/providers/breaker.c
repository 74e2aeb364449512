/*
 * breaker.c: a circuit breaker per provider endpoint (base URL).
 *
 *   CLOSED --threshold consecutive failures--> OPEN
 *   OPEN --cooldown elapsed, next allow()--> HALF_OPEN (that call is the probe)
 *   HALF_OPEN --probe succeeds--> CLOSED;  --probe fails--> OPEN (cooldown again)
 *   HALF_OPEN --probe released (aborted)--> HALF_OPEN, next allow() probes
 *
 * Only endpoint faults count (5xx, 408, timeouts, connection errors, broken
 * streams); rate limits and auth are per key (keys.c) and any other
 * response proves the endpoint is up.  While open, calls fail fast and the
 * caller moves to its fallback model.  The clock is the caller's.
 */
#include "providers/client_int.h"

const char *ch_llm_breaker_state_name(enum ch_llm_breaker_state s)
{
    switch (s) {
    case CH_LLM_BREAKER_CLOSED: return "closed";
    case CH_LLM_BREAKER_OPEN: return "open";
    case CH_LLM_BREAKER_HALF_OPEN: return "half_open";
    }
    return "closed";
}

void ch_llm_breaker_init(struct ch_llm_breaker *b, uint32_t threshold, int64_t cooldown_ms)
{
    b->state = CH_LLM_BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold ? threshold : 1;
    b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 1;
    b->open_until_ms = 0;
    b->probe_in_flight = false;
    b->opened = b->rejected = 0;
}

static void trip(struct ch_llm_breaker *b, int64_t now_ms)
{
    b->state = CH_LLM_BREAKER_OPEN;
    b->open_until_ms = now_ms + b->cooldown_ms;
    b->probe_in_flight = false;
    b->opened++;
    ch_log_warn("llm: circuit open for %s after %u failure%s; next probe in %lld ms", b->endpoint ? b->endpoint : "?",
                b->failures, b->failures == 1 ? "" : "s", (long long)b->cooldown_ms);
}

int ch_llm_breaker_allow(struct ch_llm_breaker *b, int64_t now_ms, bool *is_probe, int64_t *retry_in_ms)
{
    *is_probe = false;
    if (b->state == CH_LLM_BREAKER_CLOSED)
        return 0;
    if (b->state == CH_LLM_BREAKER_OPEN) {
        if (now_ms < b->open_until_ms) {
            *retry_in_ms = b->open_until_ms - now_ms;
            b->rejected++;
            return CH_EBUSY;
        }
        b->state = CH_LLM_BREAKER_HALF_OPEN; /* this call is the probe */
        b->probe_in_flight = false;
        ch_log_info("llm: circuit half-open for %s: probing", b->endpoint ? b->endpoint : "?");
    }
    if (b->probe_in_flight) {
        /* Exactly one probe: the others wait for its verdict.  Retry in
         * about a second; the probe may well take longer. */
        *retry_in_ms = 1000;
        b->rejected++;
        return CH_EBUSY;
    }
    b->probe_in_flight = true;
    *is_probe = true;
    return 0;
}

void ch_llm_breaker_success(struct ch_llm_breaker *b, bool is_probe)
{
    if (b->state == CH_LLM_BREAKER_HALF_OPEN && is_probe) {
        ch_log_info("llm: circuit closed for %s: the probe succeeded", b->endpoint ? b->endpoint : "?");
        b->state = CH_LLM_BREAKER_CLOSED;
        b->probe_in_flight = false;
    }
    /* A success while open (a call that started before the trip) proves
     * the endpoint answers, but the cooldown still gives it air: only the
     * probe closes the circuit. */
    if (b->state == CH_LLM_BREAKER_CLOSED)
        b->failures = 0;
}

void ch_llm_breaker_failure(struct ch_llm_breaker *b, int64_t now_ms, bool is_probe)
{
    switch (b->state) {
    case CH_LLM_BREAKER_CLOSED:
        if (b->failures < UINT32_MAX)
            b->failures++;
        if (b->failures >= b->threshold)
            trip(b, now_ms);
        break;
    case CH_LLM_BREAKER_HALF_OPEN:
        if (is_probe)
            trip(b, now_ms);
        break;
    case CH_LLM_BREAKER_OPEN: break; /* late failures of calls from before the trip change nothing */
    }
}

void ch_llm_breaker_release(struct ch_llm_breaker *b, bool is_probe)
{
    if (is_probe && b->state == CH_LLM_BREAKER_HALF_OPEN)
        b->probe_in_flight = false;
}
