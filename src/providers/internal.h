/*
 * providers/internal.h: private declarations shared by the provider wire
 * layer's .c files.  Nothing outside src/providers/ includes this.
 *
 * It defines struct ch_llm_decoder (opaque in providers.h), the per-API
 * decoder table each <api>_stream.c fills, the helpers every decoder uses
 * to emit events and accumulate the final message (decoder.c), the shared
 * request-building helpers (request.c) and the error classifier that both
 * HTTP error bodies and in-stream error events go through (errors.c).
 */
#ifndef CH_PROVIDERS_INTERNAL_H
#define CH_PROVIDERS_INTERNAL_H

#include "providers/providers.h"

/* ------------------------------------------------------------------ */
/* Decoder state (decoder.c)                                            */
/* ------------------------------------------------------------------ */

/* One tool call of the response, in the order calls started. */
struct llm_tool {
    long key;           /* the provider's index for it (block index, tool_calls index) */
    char *id;           /* owned; NULL until known */
    char *name;         /* owned; NULL until known */
    struct ch_buf args; /* JSON argument text; capped at CH_LLM_MAX_TOOL_ARGS_BYTES */
    bool started;       /* TOOL_START emitted (needs the name) */
    bool ended;         /* TOOL_END emitted */
};

struct ch_llm_decoder;

/* What differs per API.  Each returns 0 or the decoder's terminal error
 * (which the callee has already reported with llm_fail). */
struct llm_dec_ops {
    /* One SSE event of a streamed body. */
    int (*on_sse)(struct ch_llm_decoder *d, const struct ch_sse_event *ev);
    /* The whole parsed body of a non-streamed response (borrowed). */
    int (*on_body)(struct ch_llm_decoder *d, json_t *body);
    /* The stream ended with no explicit end marker: complete it if what
     * was seen is a whole response (OpenAI without [DONE], Gemini). */
    int (*on_eof)(struct ch_llm_decoder *d);
    /* Optional: the whole body as text, before on_body; returns 1 to
     * have it parsed with jansson and given to on_body instead. */
    int (*on_body_text)(struct ch_llm_decoder *d, const char *p, size_t n);
};

extern const struct llm_dec_ops llm_anthropic_ops, llm_openai_ops, llm_gemini_ops;

struct ch_llm_decoder {
    enum ch_llm_api api;
    bool stream;
    const struct llm_dec_ops *ops; /* static table */
    ch_llm_event_cb cb;
    void *cb_data;            /* borrowed */
    struct ch_sse_parser sse; /* stream mode */
    struct ch_buf body;       /* JSON mode: the whole body */

    json_t *content;    /* owned: finished content blocks */
    json_t *message;    /* owned: built by finish() */
    struct ch_buf text; /* the open text block */
    bool text_open;
    struct llm_tool *tools; /* owned array of ntools, cap CH_LLM_MAX_TOOL_CALLS */
    size_t ntools, tools_cap;

    struct ch_llm_usage usage;
    enum ch_llm_stop stop;
    char raw_stop[48]; /* provider's word, truncated */
    bool has_stop;     /* a stop reason arrived (not yet emitted) */
    bool complete;     /* STOP emitted; later input is ignored */
    bool failed;       /* ERROR emitted; rc holds the code */
    bool finished;     /* finish() ran */
    int rc;
    char model[128];

    /* Per-API scratch, reset by nothing: one response per decoder. */
    long block;     /* Anthropic: the open content block index */
    int block_kind; /* Anthropic: LLM_BLOCK_* of that block */
    bool saw_start; /* Anthropic: message_start arrived */
};

enum { LLM_BLOCK_NONE, LLM_BLOCK_TEXT, LLM_BLOCK_TOOL, LLM_BLOCK_OTHER };

/* Report a terminal error: emit ERROR once, remember rc, return rc. */
int llm_fail(struct ch_llm_decoder *d, int rc, enum ch_llm_err err, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Report a provider error object (Anthropic/OpenAI/Gemini shapes) as an
 * ERROR event classified by errors.c; returns CH_EIO. */
int llm_fail_provider(struct ch_llm_decoder *d, json_t *error_obj);
/* Parse an SSE data field or body as JSON; on failure report it (CH_EINVAL). */
int llm_parse_json(struct ch_llm_decoder *d, const char *p, size_t n, json_t **out);

int llm_text(struct ch_llm_decoder *d, const char *p, size_t n);
int llm_text_close(struct ch_llm_decoder *d);
/* Start a tool call under the provider's key.  name may be NULL (START
 * waits for it, see llm_tool_name); id NULL gets "call_<n>". */
int llm_tool_begin(struct ch_llm_decoder *d, long key, const char *id, const char *name, struct llm_tool **out);
int llm_tool_name(struct ch_llm_decoder *d, struct llm_tool *t, const char *name);
struct llm_tool *llm_tool_find(struct ch_llm_decoder *d, long key); /* open calls only */
int llm_tool_args(struct ch_llm_decoder *d, struct llm_tool *t, const char *p, size_t n);
int llm_tool_end(struct ch_llm_decoder *d, struct llm_tool *t);
/* Emit a complete call at once: START, one ARGS delta, END (Gemini, JSON bodies). */
int llm_tool_whole(struct ch_llm_decoder *d, const char *id, const char *name, json_t *args);
void llm_usage(struct ch_llm_decoder *d, const struct ch_llm_usage *u);
void llm_set_stop(struct ch_llm_decoder *d, enum ch_llm_stop s, const char *raw);
/* Close the text block and open tool calls, then emit STOP. */
int llm_complete(struct ch_llm_decoder *d);
void llm_set_model(struct ch_llm_decoder *d, const char *model);

/* Small JSON accessors: NULL / 0 when absent or of another type. */
const char *llm_jstr(const json_t *o, const char *key);
uint64_t llm_jtokens(const json_t *o, const char *key); /* negative counts as 0 */

/* ------------------------------------------------------------------ */
/* Non-allocating JSON scanner (json_scan.c)                            */
/* ------------------------------------------------------------------ */

#define LLM_JSCAN_MAX_DEPTH 32
#define LLM_JSCAN_MAX_TOKENS 256 /* what a stream chunk may need; more: jansson */

enum llm_jtype { LLM_J_OBJ = 1, LLM_J_ARR, LLM_J_STR, LLM_J_NUM, LLM_J_TRUE, LLM_J_FALSE, LLM_J_NULL };

/* One value; an object's children alternate key and value tokens. */
struct llm_jtok {
    uint8_t type;   /* enum llm_jtype */
    bool escaped;   /* STR: holds a backslash escape */
    bool is_int;    /* NUM: no fraction, no exponent */
    uint32_t start; /* STR: first byte inside the quotes; else the literal */
    uint32_t len;   /* STR: raw (escaped) length; else the literal's */
    uint32_t end;   /* index of the first token past this value */
    uint32_t count; /* OBJ: members; ARR: elements */
};

struct llm_jdoc {
    const char *src;       /* borrowed: the scanned text */
    struct llm_jtok *toks; /* borrowed: cap entries */
    size_t count, cap;
};

/* Scan p[0..n) into doc (toks and cap set by the caller).  0, or CH_EINVAL
 * when the text is malformed or outside the subset (see json_scan.c): the
 * caller then parses it with jansson. */
int llm_jscan(struct llm_jdoc *doc, const char *p, size_t n);
/* The value token of key in object token obj (the last duplicate, as
 * jansson keeps), or -1 (absent, or obj is -1 or not an object). */
int llm_jget(const struct llm_jdoc *d, int obj, const char *key);
/* Iterate the elements of array token parent: cur -1 gives the first;
 * -1 at the end. */
int llm_jnext(const struct llm_jdoc *d, int parent, int cur);
/* The decoded text of string token ti into out (room for len + 1 bytes:
 * decoding never lengthens), NUL-terminated; returns its length. */
size_t llm_jstr_decode(const struct llm_jdoc *d, int ti, char *out);
bool llm_jstr_eq(const struct llm_jdoc *d, int ti, const char *s, size_t n);
/* p[0..n) is valid UTF-8 (what jansson accepts in a string). */
bool llm_utf8_valid(const unsigned char *p, size_t n);
/* An integer token's value (false for a real, another type, or -1). */
bool llm_jint(const struct llm_jdoc *d, int ti, int64_t *out);

/* ------------------------------------------------------------------ */
/* Errors (errors.c)                                                    */
/* ------------------------------------------------------------------ */

/* Classify from the already-extracted fields of an error.  Any may be
 * NULL; status 0 when there is none (an in-stream error event). */
void llm_classify_fields(int status, const char *type, const char *code, const char *message,
                         struct ch_llm_failure *out);
/* Classify an error object of any provider's shape ({"error":{...}} or the
 * inner object). */
void llm_classify_json(int status, json_t *root, struct ch_llm_failure *out);

/* ------------------------------------------------------------------ */
/* Request helpers (request.c)                                          */
/* ------------------------------------------------------------------ */

/* A neutral message/content walk shared by the builders.  Validates the
 * conversation once (llm_check_messages) so each builder can trust it. */
int llm_check_messages(const json_t *messages, struct ch_error *err);
/* Set out->url to base (default when NULL, trailing '/' dropped) + path,
 * skipping `dup_prefix` in path when base already ends with it. */
int llm_set_url(struct ch_llm_http *out, enum ch_llm_api api, const char *base, const char *dup_prefix,
                const char *path, struct ch_error *err);
int llm_add_header(struct ch_llm_http *out, const char *name, const char *value, bool secret, struct ch_error *err);
/* Extra headers from the config (object of strings), after the built-ins. */
int llm_add_extra_headers(struct ch_llm_http *out, const json_t *headers, struct ch_error *err);

/* ------------------------------------------------------------------ */
/* Direct body writing (req_body.c)                                     */
/* ------------------------------------------------------------------ */

/* A neutral content block, its fields read in one walk over the object:
 * at a hundred messages of history, separate lookups per field were
 * most of the cost of building a request.  Strings are NULL when absent
 * or not strings, as llm_jstr gives them. */
enum llm_block_type { LLM_B_OTHER, LLM_B_TEXT, LLM_B_TOOL_USE, LLM_B_TOOL_RESULT, LLM_B_IMAGE };
struct llm_block {
    enum llm_block_type type;
    const char *type_name;                    /* NULL: no string type */
    const json_t *text;                       /* "text" as found (any JSON type) */
    const char *id, *name, *tool_use_id;      /* borrowed */
    const json_t *input, *content, *is_error; /* as found, or NULL */
    const json_t *source;                     /* image: as found, or NULL */
};
void llm_block_read(const json_t *b, struct llm_block *out);
/* An image block's source (checked by llm_check_messages): base64 data
 * with its media type, or a URL (then *media_type and *data are NULL). */
void llm_image_source(const struct llm_block *k, const char **media_type, const char **data, const char **url);
/* A message's blocks (a string content is one text block); n = 0 when
 * content is neither.  Up to CH_ARRAY_SIZE(one) blocks need no allocation. */
struct llm_blocks {
    struct llm_block *v; /* one, or owned */
    size_t n;
    struct llm_block one[8];
};
int llm_blocks_read(const json_t *content, struct llm_blocks *out);
/* A message's role (NULL unless a string) and content, in one walk. */
void llm_message_read(const json_t *m, const char **role, const json_t **content);
void llm_blocks_release(struct llm_blocks *bl);

/* A body written straight into a capped buffer; rc is sticky (the first
 * failure), so a builder checks it once at the end. */
struct llm_wr {
    struct ch_buf b; /* capped at CH_LLM_MAX_BODY_BYTES */
    int rc;
};
void llm_wr_raw(struct llm_wr *w, const char *s);
/* A JSON string as jansson's json_dumps writes it (ch_buf_append_json_str),
 * so a directly written body is byte for byte the body the tree builders
 * produced. */
void llm_wr_jstr(struct llm_wr *w, const char *s, size_t n);
/* A jansson value, compact (json_dump_callback). */
void llm_wr_json(struct llm_wr *w, const json_t *v);

/*
 * The rendered tool list (",\"tools\":[...]") of the last call, per API
 * and prompt-cache flag.  The agent passes the same tools array to every
 * call until its tools change; rendering the schemas again was a tenth of
 * a turn.  A slot holds a reference to its array, so the address cannot
 * be reused by another array while it is the key; tool arrays are never
 * modified once handed to a call (ch_llm_call_start takes a reference).
 */
struct llm_tools_slot {
    json_t *tools; /* ref: the key */
    char *text;    /* owned */
    size_t len;
};
struct llm_tools_memo {
    struct llm_tools_slot slot[CH_LLM_API__COUNT][2]; /* [api][want_prompt_cache] */
};
void llm_tools_memo_release(struct llm_tools_memo *m);
typedef void (*llm_tools_render_cb)(struct llm_wr *w, const struct ch_llm_request *req);
/* Write the tool list through the memo (render on a miss, keep a copy). */
void llm_wr_tools(struct llm_wr *w, const struct ch_llm_request *req, enum ch_llm_api api, llm_tools_render_cb render);

/* req_sampling.c: ch_llm_request.sampling in each API's terms, each
 * written as ",key:value" members. */
void llm_wr_sampling_openai(struct llm_wr *w, const json_t *s);
void llm_wr_sampling_anthropic(struct llm_wr *w, const json_t *s, bool has_tools);
void llm_wr_sampling_gemini_config(struct llm_wr *w, const json_t *s);                /* in generationConfig */
void llm_wr_sampling_gemini_tools(struct llm_wr *w, const json_t *s, bool has_tools); /* toolConfig */

/* "/v1beta/models/<id, escaped>" + method (":generateContent", ...); owned. */
char *llm_gemini_model_path(const char *model, const char *method);

int llm_build_anthropic(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err);
int llm_build_openai(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err);
int llm_build_gemini(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err);

#endif
