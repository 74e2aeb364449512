/*
 * openai.h: private declarations of the OpenAI-compatible surface
 * (openai_compat.c, openai_conv.c, openai_stream.c), part of the api layer.
 */
#ifndef CH_API_OPENAI_H
#define CH_API_OPENAI_H

#include <jansson.h>

#include "api/internal.h"
#include "providers/client.h"

/* OpenAI messages -> neutral messages and a system prompt (owned, NULL if
 * none).  CH_EINVAL with err on bad input. */
int ch_openai_to_neutral(const json_t *messages, json_t **out_msgs, char **out_system, char *err, size_t errcap);
/* OpenAI tools -> neutral tools (new ref), NULL when absent or on error
 * (then err is set). */
json_t *ch_openai_tools_to_neutral(const json_t *tools, char *err, size_t errcap);
const char *ch_openai_finish_reason(enum ch_llm_stop s);
/* openai_errors.c: {"error":{"message","type","code","param":null}}, the
 * message cleaned and cut as ch_oa_err_msg does. */
void ch_openai_error(struct ch_http_req *r, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The longest error message, in bytes (what the messages were cut to). */
#define CH_OA_ERR_MSG_MAX 511
/* Append s[0..n) as at most max bytes of UTF-8 fit for JSON: each byte
 * that starts no valid sequence, and each NUL, as U+FFFD; cut at a
 * character boundary; a character split at the end (s cut by bytes
 * before) dropped, not replaced.  b is unchanged on failure. */
int ch_oa_clean_text(struct ch_buf *b, const char *s, size_t n, size_t max);
/* Whether s[0..n) is valid UTF-8 without NULs (a header's value). */
bool ch_oa_utf8_ok(const char *s, size_t n);
/* An error message as every OpenAI error carries it: cleaned, at most
 * CH_OA_ERR_MSG_MAX bytes (a new string; NULL when out of memory). */
json_t *ch_oa_err_msg(const char *msg);
/* Token counts as the answers carry them: an upstream's absurd count
 * saturates at INT64_MAX instead of wrapping (or overflowing a sum). */
static inline int64_t ch_oa_tokens(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}
static inline int64_t ch_oa_tokens_add(int64_t a, int64_t b)
{
    return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b;
}
/* input + cache_read + cache_write: the prompt's tokens. */
static inline int64_t ch_oa_prompt_tokens(const struct ch_llm_usage *u)
{
    return ch_oa_tokens_add(ch_oa_tokens_add(ch_oa_tokens(u->input_tokens), ch_oa_tokens(u->cache_read_tokens)),
                            ch_oa_tokens(u->cache_write_tokens));
}

/* openai_params.c: the request's parameters beyond the conversation
 * (top_p, stop, seed, response_format, tool_choice, any other key), checked,
 * as a new object for ch_llm_call_opts.sampling (NULL: none).  0, or -1
 * once r was answered: 400 invalid_request_error with "param" naming the
 * parameter, as OpenAI does, or 500 out of memory. */
int ch_openai_sampling(struct ch_http_req *r, const json_t *body, json_t **out);

/* One in-flight /v1/chat/completions request. */
struct oa_req {
    struct ch_api *api;
    struct ch_http_req *req;  /* ref held until done */
    struct ch_llm_call *call; /* pass-through */
    struct ch_agent_sub *sub; /* agent mode */
    char id[48];              /* chatcmpl-... */
    char model[256];          /* as the client named it */
    char run_id[40];
    char tool_required[130]; /* agent mode: "" none, "*" any client tool, or its name */
    int64_t created;
    bool stream, include_usage, started, finished, agent_mode;
    size_t tool_index_base;
    struct ch_buf text; /* agent mode, non-stream */
    struct ch_buf out;  /* rendered replies and chunks; a stream keeps its
                           `data: {"id":..,"model":..,"choices":[{"index":0,
                           "delta":` prefix in [0, prefix_len) */
    size_t prefix_len;
    /* /v1/responses (openai_responses.c, openai_resp_render.c) */
    bool responses, item_open;
    json_t *rs_body;     /* the Responses request: echoed in the response */
    const json_t *reply; /* pass-through stream: the final message, at finish */
    uint64_t seq;        /* the next event's sequence_number */
};

/* Rendering without jansson (openai_conv.c), byte-compatible with what
 * jansson's compact dump of the same objects gave.  0 or CH_E_TOO_LARGE,
 * CH_ENOMEM. */
int ch_oa_put_int(struct ch_buf *b, int64_t v);
/* "usage":{"prompt_tokens":..,"completion_tokens":..,"total_tokens":..} */
int ch_oa_put_usage(struct ch_buf *b, const struct ch_llm_usage *u);
/* {"id":..,"object":"<kind>","created":..,"model":.., */
int ch_oa_put_head(struct ch_buf *b, const struct oa_req *o, const char *kind);
/* A whole chat.completion: the message from a neutral reply, or from
 * text when reply is NULL (agent mode). */
int ch_oa_render_completion(struct ch_buf *b, const struct oa_req *o, const json_t *reply, const char *text,
                            const char *finish, const struct ch_llm_usage *u);

/* openai_compat.c: the routes */
/* Either endpoint switch is on (what /v1/models and /v1/embeddings need). */
bool ch_openai_enabled(struct ch_api *a);
/* The request's JSON object, or NULL once r was answered: 404 naming the
 * switch `key` when `on` is false (or there is no agent), 400 invalid_json. */
json_t *ch_openai_body(struct ch_api *a, struct ch_http_req *r, bool on, const char *what, const char *key);
/* openai_embed.c: POST /v1/embeddings */
void ch_openai_embeddings(struct ch_http_req *r, void *data);
/* `openclaw`, `openclaw/<id>`, `openclaw:<id>`, `agent:<id>`: the agent
 * (*agent_id: its id), not a provider model. */
bool ch_openai_is_agent_model(const char *m, const char **agent_id);
/* Start a request given as a Chat Completions body.  rs: the Responses
 * request it was translated from (then rendered as a response), or NULL;
 * session: the session to continue (previous_response_id), else NULL and
 * the x-openclaw-session-key header decides. */
void ch_openai_start(struct ch_api *a, struct ch_http_req *r, const json_t *body, json_t *rs, const char *session);
void ch_openai_models(struct ch_http_req *r, void *data);
void ch_openai_model(struct ch_http_req *r, void *data);
void ch_openai_completions(struct ch_http_req *r, void *data);
/* openai_usage.c: add a pass-through call's usage (loop thread). */
void ch_openai_record_usage(struct ch_api *a, const struct ch_llm_result *res);
/* Write the pass-through usage summed since the last flush (tick, stop). */
void ch_openai_flush_usage(struct ch_api *a);
/* Free what was never flushed (api free). */
void ch_openai_release(struct ch_api *a);

/* openai_compat.c: a request's end */
void ch_oa_free(struct oa_req *o);
/* An upstream or run failure, by error class: 429, 504, 400 or 502 (or
 * the stream's error object once it began). */
void ch_oa_error_for(struct oa_req *o, const char *cls, const char *msg);
/* A whole chat.completion or response (reply: a neutral message, or NULL
 * and text). */
void ch_oa_respond(struct oa_req *o, const json_t *reply, const char *text, const char *finish,
                   const struct ch_llm_usage *u);
/* openai_agent.c: run the agent for the request (answers and frees o). */
void ch_oa_agent_mode(struct oa_req *o, const json_t *body, json_t *msgs, char *system, const char *session_hdr);
/* openai_images.c: the newest turn's image URLs fetched into data blocks
 * (gateway.http.endpoints.*.images); 0: none, go on; 1: fetching, and
 * ch_oa_agent_mode runs again once they are data (or o is answered and
 * freed); -1: answered (400 when URLs are disabled), the caller frees o. */
/* openai_files.c: an OpenResponses input_image (OpenAI's image_url or
 * OpenClaw's source) as a Chat Completions image_url part, and a text
 * input_file as a text part holding its <file> block; NULL with err
 * ("<where>: ...") on a part chela cannot take. */
json_t *ch_oa_resp_image(const json_t *p, char *err, size_t cap, const char *where);
/* mime is in list (case-insensitive), or list is empty and mime in def. */
bool ch_oa_mime_listed(const json_t *list, const char *const *def, size_t ndef, const char *mime);
/* The settings of the files each endpoint takes (their keys under it). */
#define CH_OA_RESP_FILES "gateway.http.endpoints.responses.files."
#define CH_OA_CHAT_FILES "gateway.http.endpoints.chatCompletions.files."
/* The integer setting `name` under such a prefix ("maxBytes", "pdf.maxPages"). */
int64_t ch_oa_setting(const struct ch_config *cfg, const char *prefix, const char *name, int64_t def);
/* A text file part as its {"type":"text","text":<file block>} part, with
 * the limits under prefix; NULL with err naming `where`. */
json_t *ch_oa_resp_file(const struct ch_config *cfg, const char *prefix, const json_t *p, char *err, size_t cap,
                        const char *where);
/* An input_file part's name, media type and base64 data, in either form
 * (OpenClaw's source, OpenAI's file_data); false with err when it has
 * none.  Whether files.allowedMimes takes mime.  The escaped
 * <file name=.. mime=..> block of text, cut to max_chars code points. */
bool ch_oa_file_source(const json_t *p, const char **name, char *mime, size_t mcap, const char **data, char *err,
                       size_t cap, const char *where);
bool ch_oa_file_mime_ok(const struct ch_config *cfg, const char *prefix, const char *mime);
int ch_oa_file_block(struct ch_buf *b, const char *name, const char *mime, const char *text, size_t len,
                     size_t max_chars);
/* openai_pdf.c: the PDF file parts of a /v1/responses body (input_file)
 * or a /v1/chat/completions one (file, chat) made text parts holding the
 * file block, and page images, by poppler's readers, files side by side:
 * 0 none (go on), 1 reading (the request goes on after: ch_oa_resp_go or
 * ch_openai_start, or r is answered), -1 answered.  At most
 * CH_OA_PDF_MAX_RUNNING files at once. */
#define CH_OA_PDF_MAX_RUNNING 8
int ch_oa_pdfs(struct ch_api *a, struct ch_http_req *r, json_t *body, bool chat);
/* Whether part p is a PDF file part with data the endpoint takes. */
bool ch_oa_pdf_part(const struct ch_config *cfg, const char *prefix, const json_t *p, bool chat);
/* openai_files.c: /v1/chat/completions' file parts ({type: "file", file:
 * {file_data, filename}}), text files made file blocks there and PDFs by
 * ch_oa_pdfs; answers as it does. */
int ch_oa_chat_files(struct ch_api *a, struct ch_http_req *r, json_t *body);

/* openai_proc.c: one child process, the input on its stdin, its stdout
 * read up to out_cap bytes; killed (with its process group) after
 * timeout_ms, once stdout passes out_cap, by ch_oa_proc_kill, and by
 * ch_oa_proc_shutdown.  done fires once, on a later loop iteration, after
 * every handle closed; in is borrowed until then, *out until then too.
 * CH_ENOMEM, else 0 (a failed spawn is reported by done). */
struct ch_oa_proc;
#define CH_OA_PROC_ERR_BYTES 1024
struct ch_oa_proc_result {
    int spawn_err;                /* a libuv error: the program did not start */
    bool timed_out, killed, full; /* full: stdout passed out_cap (cut there) */
    int64_t status;               /* exit status, or -signal */
    struct ch_buf *out;           /* stdout; the callee's, valid during done */
    const char *err;              /* the start of stderr, NUL-terminated; the callee's */
};
typedef void (*ch_oa_proc_done)(const struct ch_oa_proc_result *res, void *data);
int ch_oa_proc_start(struct ch_api *a, char *const argv[], const void *in, size_t in_len, size_t out_cap,
                     uint64_t timeout_ms, ch_oa_proc_done done, void *data, struct ch_oa_proc **out);
void ch_oa_proc_kill(struct ch_oa_proc *p); /* NULL-safe */
void ch_oa_proc_shutdown(struct ch_api *a);
/* openai_responses.c: a /v1/responses body from translation on (body
 * borrowed). */
void ch_oa_resp_go(struct ch_api *a, struct ch_http_req *r, json_t *body);
/* openai_resp_fetch.c: input_file parts by URL fetched into base64 sources
 * (gateway.http.endpoints.responses.files.allowUrl); 0: none, go on; 1:
 * fetching, ch_oa_resp_go follows (or r is answered); -1: answered. */
int ch_oa_resp_prefetch(struct ch_api *a, struct ch_http_req *r, json_t *body);
/* openai_fetch.c: a batch of URL fetches through the hidden fetch_image
 * tool, with the limits under prefix ("gateway.http.endpoints.responses.
 * files."): maxBytes (at most max_bytes_cap), maxRedirects, timeoutMs,
 * urlAllowlist.  take turns each answer into its target (or fills err);
 * done runs once, after the last, with the first failure ("<label>: ...")
 * or NULL.  0: started (done follows, never inside this call);
 * CH_ESTATE (no tool registry), CH_ENOMEM: nothing will call back. */
#define CH_OA_FETCH_MAX 8 /* OpenClaw's maxImageParts and maxUrlParts */
struct ch_oa_fetch_item {
    json_t *target;  /* the caller's: the part the answer goes into */
    const char *url; /* borrowed until this call returns */
};
typedef void (*ch_oa_fetch_take)(json_t *target, const char *mime, const json_t *b64, const char *url, char *err,
                                 size_t cap, void *data);
typedef void (*ch_oa_fetch_done)(const char *err, void *data);
int ch_oa_fetch_start(struct ch_api *a, const char *prefix, int64_t max_bytes_cap, const char *label,
                      const struct ch_oa_fetch_item *items, size_t n, ch_oa_fetch_take take, ch_oa_fetch_done done,
                      void *data);
int ch_oa_fetch_images(struct oa_req *o, const json_t *body, json_t *msgs, const char *system, const char *session);

/* openai_errors.c: 400 invalid_request_error with code and "param": param
 * (the message cleaned as ch_openai_error's). */
void ch_openai_param_error(struct ch_http_req *r, const char *code, const char *param, const char *msg);

/* openai_responses.c */
#define CH_OPENAI_RESPONSES_SOURCE "openai-responses" /* runs.source */
void ch_openai_responses(struct ch_http_req *r, void *data);

/* openai_resp_render.c: a response object, and its SSE events */
void ch_rs_respond(struct oa_req *o, const json_t *reply, const char *text, const char *finish,
                   const struct ch_llm_usage *u);
int ch_rs_stream_start(struct oa_req *o);
void ch_rs_stream_delta(struct oa_req *o, const char *text, size_t len);
void ch_rs_stream_finish(struct oa_req *o, const char *finish, const struct ch_llm_usage *u);
void ch_rs_stream_error(struct oa_req *o, const char *code, const char *msg);

/* openai_stream.c */
int ch_oa_stream_start(struct oa_req *o);
void ch_oa_stream_delta(struct oa_req *o, const char *text, size_t len);
void ch_oa_stream_tool(struct oa_req *o, const struct ch_llm_event *e);
void ch_oa_stream_finish(struct oa_req *o, const char *finish_reason, const struct ch_llm_usage *u);
void ch_oa_stream_error(struct oa_req *o, const char *type, const char *code, const char *msg);

#endif
