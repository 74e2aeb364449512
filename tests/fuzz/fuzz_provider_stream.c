/*
 * fuzz_provider_stream.c: libFuzzer driver for the response decoders
 * (providers/decoder.c and <api>_stream.c).
 *
 * Input: byte 0 picks the API (bits 0-1, modulo the API count), streamed
 * SSE or one JSON body (bit 2) and the chunk size (bits 3-7, 0 = whole);
 * the rest is the response body.  The event sequence is checked as the
 * agent loop relies on it: each tool index starts once, before its deltas,
 * and ends once; a response ends with exactly one STOP
 * or one ERROR, after which nothing is emitted; finish() agrees with it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/providers.h"

#define MAX_TRACKED 256

struct check {
    int started;                      /* tool calls started so far */
    unsigned char state[MAX_TRACKED]; /* 0 none, 1 started, 2 ended */
    int stops, errors;
    bool terminal;
};

static void on_event(const struct ch_llm_event *ev, void *data)
{
    struct check *c = data;

    if (c->terminal)
        abort(); /* nothing after STOP or ERROR */
    switch (ev->type) {
    case CH_LLM_EV_TEXT_DELTA:
        if (ev->text.len == 0)
            abort();
        break;
    case CH_LLM_EV_TOOL_START:
        /* Indices are unique; a call whose name came late may start after
         * a later one, so they are not always in order. */
        if (ev->index < 0 || ev->index >= MAX_TRACKED || c->state[ev->index] != 0 || !ev->tool_id || !ev->tool_name ||
            !ev->tool_name[0])
            abort();
        c->state[ev->index] = 1;
        if (ev->index >= c->started)
            c->started = ev->index + 1;
        break;
    case CH_LLM_EV_TOOL_ARGS_DELTA:
        if (ev->index < 0 || ev->index >= c->started || c->state[ev->index] != 1)
            abort();
        break;
    case CH_LLM_EV_TOOL_END:
        if (ev->index < 0 || ev->index >= c->started || c->state[ev->index] != 1 ||
            (!ev->tool_input) == (!ev->tool_error) || (ev->tool_input && !json_is_object(ev->tool_input)))
            abort();
        c->state[ev->index] = 2;
        break;
    case CH_LLM_EV_USAGE: break;
    case CH_LLM_EV_STOP:
        c->stops++;
        c->terminal = true;
        for (int i = 0; i < c->started; i++)
            if (c->state[i] != 2)
                abort(); /* every call is closed before STOP */
        break;
    case CH_LLM_EV_ERROR:
        if (!ev->message)
            abort();
        c->errors++;
        c->terminal = true;
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ch_alloc_install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ch_llm_decoder *d;
    struct check c;
    enum ch_llm_api api;
    size_t off = 0, step, chunk;
    bool stream;
    int rc = 0, frc;
    json_t *msg;

    if (size < 1)
        return 0;
    memset(&c, 0, sizeof(c));
    api = (enum ch_llm_api)((data[0] & 3) % CH_LLM_API__COUNT);
    stream = !(data[0] & 4);
    chunk = data[0] >> 3;
    data++;
    size--;
    if (ch_llm_decoder_new(&d, api, stream, on_event, &c))
        return 0;
    while (off < size && !rc) {
        step = chunk ? chunk : size;
        if (step > size - off)
            step = size - off;
        rc = ch_llm_decoder_feed(d, data + off, step);
        off += step;
    }
    frc = ch_llm_decoder_finish(d);
    if ((rc && frc != rc) || c.stops + c.errors != 1 || (frc != 0) != (c.errors == 1))
        abort();
    msg = ch_llm_decoder_message(d);
    if (!msg || !json_is_array(json_object_get(msg, "content")))
        abort();
    if (c.errors && ch_llm_decoder_stop(d) != CH_LLM_STOP_ERROR)
        abort();
    ch_llm_decoder_free(d);
    return 0;
}
