/*
 * providers.h: the I/O-free LLM provider wire layer.
 *
 * Requests go in as one provider-neutral conversation (Anthropic-like JSON
 * blocks) and come out as the method, URL, headers and body of the chosen
 * API kind; response bytes go in and come out as one stream of neutral
 * events, whatever the provider.  Nothing here opens a socket: the
 * transport (net/) moves the bytes.  See docs/internals/providers.md.
 *
 * Neutral conversation (jansson, borrowed by the builders):
 *   messages: [{role:"user"|"assistant", content: string | [block...]}]
 *   block:    {type:"text", text} | {type:"tool_use", id, name, input:{}}
 *             | {type:"tool_result", tool_use_id, content:string, is_error?}
 *   tools:    [{name, description, input_schema}]
 * Token counts are normalised: input_tokens never includes cached tokens,
 * so cost = input*in + output*out + cache_read*cr + cache_write*cw.
 */
#ifndef CH_PROVIDERS_H
#define CH_PROVIDERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

/* Caps (STYLE.md 8.6).  Exceeding one is a clean CH_E_TOO_LARGE. */
#define CH_SSE_MAX_LINE_BYTES (1u << 20)      /* one SSE line */
#define CH_SSE_MAX_DATA_BYTES (4u << 20)      /* one event's joined data */
#define CH_LLM_MAX_BODY_BYTES (16u << 20)     /* a non-streamed response */
#define CH_LLM_MAX_TEXT_BYTES (16u << 20)     /* one text block */
#define CH_LLM_MAX_TOOL_ARGS_BYTES (4u << 20) /* one tool call's arguments */
#define CH_LLM_MAX_TOOL_CALLS 128             /* tool calls in one response */

/* ------------------------------------------------------------------ */
/* Incremental SSE parser (sse_parse.c), WHATWG "event stream" rules     */
/* ------------------------------------------------------------------ */

struct ch_sse_event {
    struct ch_str type; /* `event:` value, "message" when absent */
    struct ch_str data; /* `data:` lines joined by "\n", final newline removed */
    struct ch_str id;   /* the last event id seen so far ("" if none) */
};

/* Called once per dispatched event; the slices are valid only during the
 * call.  Returning non-zero stops the parser: feed returns that value and
 * every later call returns it too. */
typedef int (*ch_sse_event_cb)(const struct ch_sse_event *ev, void *data);

struct ch_sse_parser {
    ch_sse_event_cb cb;
    void *cb_data;      /* borrowed */
    struct ch_buf line; /* a line split across feeds; capped at max_line */
    struct ch_buf data; /* pending event data; capped at max_data */
    struct ch_buf type; /* pending event type */
    struct ch_buf id;   /* last event id; survives dispatch (WHATWG) */
    int64_t retry_ms;   /* last valid `retry:` value, -1 if none */
    int rc;             /* sticky: 0, a cap error or the callback's value */
    uint8_t bom_seen;   /* bytes of a leading UTF-8 BOM matched so far */
    bool started;       /* past the BOM check */
    bool skip_lf;       /* last byte was CR: a following LF ends nothing */
};

/* Zero max_* selects the CH_SSE_MAX_* defaults.  Never fails. */
void ch_sse_parser_init(struct ch_sse_parser *p, size_t max_line, size_t max_data, ch_sse_event_cb cb, void *data);
void ch_sse_parser_release(struct ch_sse_parser *p);
/* Feed any chunk of the stream (split anywhere).  0, CH_E_TOO_LARGE (line or
 * data over its cap), CH_ENOMEM, or the callback's non-zero value. */
int ch_sse_parser_feed(struct ch_sse_parser *p, const void *buf, size_t n);
/* End of stream: an unterminated final event is discarded, as WHATWG says.
 * Returns the sticky rc. */
int ch_sse_parser_finish(struct ch_sse_parser *p);

/* ------------------------------------------------------------------ */
/* API kinds, events                                                     */
/* ------------------------------------------------------------------ */

enum ch_llm_api { CH_LLM_ANTHROPIC, CH_LLM_OPENAI, CH_LLM_GEMINI, CH_LLM_API__COUNT };

/* "anthropic-messages", "openai-completions", "google-generative-ai". */
const char *ch_llm_api_name(enum ch_llm_api api);
int ch_llm_api_parse(const char *name, enum ch_llm_api *out); /* CH_EINVAL */
/* The public endpoint used when the config gives no baseUrl. */
const char *ch_llm_api_default_base_url(enum ch_llm_api api);

/* Normalised stop reasons; ch_llm_stop_name() gives the wire words. */
enum ch_llm_stop {
    CH_LLM_STOP_END_TURN,
    CH_LLM_STOP_TOOL_USE,
    CH_LLM_STOP_MAX_TOKENS,
    CH_LLM_STOP_STOP_SEQUENCE,
    CH_LLM_STOP_REFUSAL,
    CH_LLM_STOP_ERROR,
};
const char *ch_llm_stop_name(enum ch_llm_stop s);

/* Error classes, reported in exactly these words (ch_llm_err_name). */
enum ch_llm_err {
    CH_LLM_ERR_RATE_LIMIT,
    CH_LLM_ERR_TIMEOUT,
    CH_LLM_ERR_CONTEXT_LENGTH,
    CH_LLM_ERR_AUTH,
    CH_LLM_ERR_REFUSAL,
    CH_LLM_ERR_UNKNOWN,
};
const char *ch_llm_err_name(enum ch_llm_err e);

struct ch_llm_usage {
    uint64_t input_tokens;  /* not cached */
    uint64_t output_tokens; /* includes reasoning/thinking tokens */
    uint64_t cache_read_tokens;
    uint64_t cache_write_tokens;
};

enum ch_llm_event_type {
    CH_LLM_EV_TEXT_DELTA,      /* text */
    CH_LLM_EV_TOOL_START,      /* index, tool_id, tool_name */
    CH_LLM_EV_TOOL_ARGS_DELTA, /* index, text: a fragment of the JSON arguments */
    CH_LLM_EV_TOOL_END,        /* index, tool_id, tool_name, tool_input or tool_error */
    CH_LLM_EV_USAGE,           /* usage: running totals; later ones replace earlier */
    CH_LLM_EV_STOP,            /* stop, raw_stop; the last event of a good response */
    CH_LLM_EV_ERROR,           /* err, retryable, message; terminal, no STOP follows */
};

/* Every pointer is borrowed and valid only during the callback. */
struct ch_llm_event {
    enum ch_llm_event_type type;
    struct ch_str text;
    int index; /* tool calls numbered 0, 1, ... in this response;
                  START waits for the call's name, so a call
                  named late can start after a later one */
    const char *tool_id;
    const char *tool_name;
    json_t *tool_input;     /* TOOL_END: an object, or NULL with tool_error */
    const char *tool_error; /* TOOL_END: why the arguments were rejected */
    struct ch_llm_usage usage;
    enum ch_llm_stop stop;
    const char *raw_stop; /* the provider's own word, "" if none was sent */
    enum ch_llm_err err;
    bool retryable;
    const char *message;
};

typedef void (*ch_llm_event_cb)(const struct ch_llm_event *ev, void *data);

/* ------------------------------------------------------------------ */
/* Request builders (request.c, <api>_req.c): pure functions             */
/* ------------------------------------------------------------------ */

struct ch_llm_request {
    const char *base_url;  /* NULL: the API's default; a trailing "/v1"
                              (Anthropic) or "/v1beta" (Gemini) is kept,
                              not doubled */
    const char *api_key;   /* sent in a header, never in the URL; NULL or
                              "" sends none (local servers) */
    const json_t *headers; /* optional object of extra string headers */
    const char *model;
    const char *system;     /* optional */
    const json_t *messages; /* neutral messages, see the top of the file */
    const json_t *tools;    /* optional neutral tool list */
    const json_t *sampling; /* optional: see ch_llm_call_opts.sampling */
    int64_t max_tokens;     /* > 0 */
    double temperature;     /* used when has_temperature */
    bool has_temperature;
    bool stream;
    bool want_prompt_cache;            /* Anthropic: cache_control on system and tools */
    bool want_max_completion_tokens;   /* OpenAI: send the limit as max_completion_tokens
                                          (o-series and gpt-5 refuse max_tokens; most
                                          compatible servers know only max_tokens) */
    struct llm_tools_memo *tools_memo; /* optional (the client's): the tool list
                                          rendered by an earlier call, reused while
                                          `tools` is the same, unchanged array */
};

struct ch_llm_header {
    char *name;     /* owned */
    char *value;    /* owned; wiped on release when is_secret */
    bool is_secret; /* the API key: never log it */
};

/* A built request.  Owned by the caller; ch_llm_http_release() frees it. */
struct ch_llm_http {
    const char *method;            /* static "POST" */
    char *url;                     /* owned */
    struct ch_llm_header *headers; /* owned array */
    size_t header_count;
    char *body; /* owned, NUL-terminated JSON */
    size_t body_len;
};

/* json_loadb(p, n, flags, err), faster for the usual request body: the
 * stream decoder's scanner validates it and the tree is built from its
 * tokens; what the scanner declines, and flags other than
 * JSON_REJECT_DUPLICATES, go to jansson (json_tree.c). */
json_t *ch_llm_json_loadb(const char *p, size_t n, size_t flags, json_error_t *err);

/* The neutral text block {"type":"text","text":p[0..n)}, and a content
 * array holding just that block (decoder.c).  NULL on text that is not
 * UTF-8 (as json_stringn) or no memory. */
json_t *ch_llm_text_block(const char *p, size_t n);
json_t *ch_llm_text_content(const char *p, size_t n);

/* The image media types every provider's API takes as data (Anthropic's
 * four): what a neutral image block may carry, and the default of the
 * OpenAI-compatible endpoints' images.allowedMimes (request.c). */
#define CH_LLM_IMAGE_TYPE_COUNT 4
extern const char *const ch_llm_image_types[CH_LLM_IMAGE_TYPE_COUNT];
bool ch_llm_image_type_ok(const char *mime);

/* Build the HTTP request for `req` in the wire format of `api`.  The
 * inputs are borrowed.  On success *out is filled; on failure it is left
 * zeroed.  CH_EINVAL (err says which message or block is wrong), CH_ENOMEM,
 * CH_E_TOO_LARGE (body over CH_LLM_MAX_BODY_BYTES). */
int ch_llm_build_request(enum ch_llm_api api, const struct ch_llm_request *req, struct ch_llm_http *out,
                         struct ch_error *err);
void ch_llm_http_release(struct ch_llm_http *h); /* NULL-safe, idempotent */

/* ------------------------------------------------------------------ */
/* Response decoders (decoder.c, <api>_stream.c)                         */
/* ------------------------------------------------------------------ */

struct ch_llm_decoder;

/* A decoder for one 2xx response body: SSE when `stream`, else one JSON
 * document.  cb fires synchronously from feed()/finish() on the caller's
 * thread.  CH_ENOMEM. */
int ch_llm_decoder_new(struct ch_llm_decoder **out, enum ch_llm_api api, bool stream, ch_llm_event_cb cb, void *data);
void ch_llm_decoder_free(struct ch_llm_decoder *d); /* NULL-safe */
/* Feed body bytes as they arrive, split anywhere.  Returns 0, or the
 * decoder's terminal error after it emitted ERROR: CH_EINVAL (malformed
 * stream), CH_EIO (the provider reported an error), CH_E_TOO_LARGE,
 * CH_ENOMEM.  After an error further input is ignored. */
int ch_llm_decoder_feed(struct ch_llm_decoder *d, const void *p, size_t n);
/* The body ended.  A response that did not complete emits ERROR "stream
 * ended before the response was complete" (retryable) and returns CH_EIO.
 * Idempotent: a second call returns the same value and emits nothing. */
int ch_llm_decoder_finish(struct ch_llm_decoder *d);

/* Results, borrowed from the decoder, valid after finish() until free.
 * message: {role:"assistant", content:[...]}, what was received even on
 * error; a tool_use whose arguments did not parse has input {} and an
 * extra "input_error" string.  NULL before finish(). */
json_t *ch_llm_decoder_message(const struct ch_llm_decoder *d);
const struct ch_llm_usage *ch_llm_decoder_usage(const struct ch_llm_decoder *d);
/* The STOP reason, or CH_LLM_STOP_ERROR when the response failed. */
enum ch_llm_stop ch_llm_decoder_stop(const struct ch_llm_decoder *d);
/* Model id the provider reported ("" if none).  Valid at any time. */
const char *ch_llm_decoder_model(const struct ch_llm_decoder *d);

/* ------------------------------------------------------------------ */
/* Error classification and retry hints (errors.c)                       */
/* ------------------------------------------------------------------ */

struct ch_llm_failure {
    enum ch_llm_err err;
    bool retryable;         /* 429, 5xx, 408, no response at all */
    int64_t retry_after_ms; /* from the body (Gemini RetryInfo), -1 if none */
    char message[256];      /* the provider's message, or a description */
};

/* Classify a non-2xx response (status 0: no HTTP response; then body may
 * hold the transport's error text).  The body is borrowed and need not be
 * JSON or NUL-terminated.  Never fails. */
void ch_llm_classify_http(enum ch_llm_api api, int status, const char *body, size_t body_len,
                          struct ch_llm_failure *out);
/* Classify a transport failure (CH_ETIMEDOUT: timeout; other codes:
 * unknown).  Both are retryable. */
void ch_llm_classify_transport(int rc, const char *detail, struct ch_llm_failure *out);
/* STOP reasons that are failures for the caller: refusal and error. */
bool ch_llm_stop_is_failure(enum ch_llm_stop s, enum ch_llm_err *err);
/* The delay asked by the `retry-after-ms` header (preferred) or
 * `Retry-After` (delta seconds or an HTTP date, compared to now_ms).
 * Either header may be NULL.  0 with *out_ms set (capped at one day), or
 * CH_ENOTFOUND when neither header is usable. */
int ch_llm_retry_after(const char *retry_after, const char *retry_after_ms, int64_t now_ms, int64_t *out_ms);

/* ------------------------------------------------------------------ */
/* Pricing and cost (usage.c)                                            */
/* ------------------------------------------------------------------ */

/* USD per million tokens, as in the config's models[].pricing. */
struct ch_llm_pricing {
    double input, output, cache_read, cache_write;
};

/* The built-in price of a model id: exact match first, then the longest
 * known prefix (so dated ids like claude-sonnet-4-20250514 resolve), also
 * after a "provider/" prefix.  false (and *out zeroed) when unknown. */
bool ch_llm_pricing_default(const char *model, struct ch_llm_pricing *out);
double ch_llm_cost_usd(const struct ch_llm_pricing *p, const struct ch_llm_usage *u);
/* a += b, field by field (per-run, per-session totals). */
void ch_llm_usage_add(struct ch_llm_usage *a, const struct ch_llm_usage *b);

#endif
