/*
 * tools.h: the tools the agent offers to a model, in one registry.
 *
 * A tool is a name, a description, a JSON-schema input definition and an
 * asynchronous start function running on the loop.  The agent sends
 * ch_tools_definitions() to the provider (each provider converts the
 * neutral list to its own format), and runs each tool_use block through
 * ch_tool_call_start().  Whatever happens (unknown tool, input failing the
 * schema, an execution error, a timeout, an abort) the caller's callback
 * fires exactly once with a result the model can act on; nothing the model
 * sends can crash the gateway.  See docs/internals/tools.md.
 *
 * Built-in tools: current_time; http_request (offered only when
 * tools.http.allowHosts is non-empty; exact host or `*.domain`); web_fetch
 * (GET with SSRF protection: every resolved address checked, the
 * connection pinned to it, redirects followed and re-checked here).
 *
 * Threading: every function and callback runs on the loop thread.
 * Layer: core <- net <- tools (STYLE.md 8.1).
 */
#ifndef CH_TOOLS_H
#define CH_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"
#include "net/curlm.h"

#define CH_TOOLS_DEF_TIMEOUT_MS 30000         /* TOOL_TIMEOUT (seed 003) */
#define CH_TOOLS_MAX_TIMEOUT_MS (3600 * 1000) /* a longer value is clamped */
#define CH_TOOLS_DEF_MAX_RESULT_BYTES (64 * 1024)
#define CH_TOOLS_MIN_RESULT_BYTES 1024          /* a smaller cap is raised to this */
#define CH_TOOLS_MAX_RESULT_BYTES (1024 * 1024) /* a larger cap is lowered to this */
#define CH_TOOLS_MAX_TOOLS 64
#define CH_TOOLS_MAX_ALLOW_HOSTS 256 /* per list */
#define CH_TOOLS_MAX_NAME_BYTES 64   /* [a-zA-Z0-9_-]{1,64}, as providers require */

struct ch_tools;
struct ch_tool_call;

struct ch_tools_opts {
    /*
     * tools.http.allowHosts: hosts http_request may call.  Each entry is
     * "host", "*.domain" (any subdomain, not the apex), or either with
     * ":port" (then only that port; without one, any port); IPv6 literals
     * as "[::1]".  Matching is ASCII case-insensitive on the host as
     * libcurl parses the URL.  Empty: http_request is not offered.  "*"
     * alone is refused: list the hosts.  Copied.
     */
    const char *const *http_allow_hosts;
    size_t http_allow_count;
    /*
     * tools.web.fetch.allowHosts: hosts web_fetch may reach even when they
     * resolve to loopback, private, link-local or other internal addresses
     * (same syntax).  Redirect targets are checked again on every hop.
     * Copied.
     */
    const char *const *fetch_allow_hosts;
    size_t fetch_allow_count;
    uint64_t timeout_ms;     /* per call when the caller passes 0; 0: 30000 */
    size_t max_result_bytes; /* content cap; 0: 64 KiB (clamped 1 KiB..1 MiB) */
    const char *tz_dir;      /* zoneinfo directory; NULL: $TZDIR or /usr/share/zoneinfo */
    bool no_web_fetch;       /* true: web_fetch is not offered */
};

/*
 * Create the registry with the built-in tools.  loop and curlm are
 * borrowed and must outlive the registry (close it before the manager).
 * opts may be NULL.  CH_EINVAL (err says which allowHosts entry is
 * malformed), CH_ENOMEM.  *out is set only on success.  Holds no libuv
 * handle while no call is in flight.
 */
int ch_tools_new(uv_loop_t *loop, struct ch_curlm *curlm, const struct ch_tools_opts *opts, struct ch_tools **out,
                 struct ch_error *err);

/*
 * Close: every unfinished call is aborted (its callback fires with an
 * "aborted" error result), and once the last one has reported, t is freed
 * and cb(data) runs (always on a later loop iteration, never inside this
 * call).  No call starts after this (CH_ECLOSED).  cb may be NULL.  Call
 * at most once; may be called from inside a call's callback.
 */
void ch_tools_close(struct ch_tools *t, void (*cb)(void *data), void *data);

/*
 * The neutral definitions of the tools offered, [{name, description,
 * input_schema}], in registration order.  Borrowed: valid until the next
 * ch_tools_register or the close; json_incref it to keep it longer.
 */
const json_t *ch_tools_definitions(const struct ch_tools *t);
bool ch_tools_has(const struct ch_tools *t, const char *name);
/* Would `input` pass tool `name`'s input_schema?  0; CH_ENOTFOUND (no such
 * tool); CH_EINVAL with msg saying what is wrong.  For callers that answer
 * bad input differently from a failing tool (POST /tools/invoke). */
int ch_tools_check_input(const struct ch_tools *t, const char *name, const json_t *input, char *msg, size_t cap);
/* The default per-call timeout in ms (opts.timeout_ms after defaults). */
uint64_t ch_tools_timeout_ms(const struct ch_tools *t);

/* ------------------------------------------------------------------ */
/* Calling a tool                                                       */
/* ------------------------------------------------------------------ */

/*
 * What a call produced.  content is UTF-8 (invalid bytes replaced by
 * U+FFFD), NUL-terminated, and at most max_result_bytes long plus a
 * "[truncated: ...]" marker.  json is optional structured output (status,
 * headers, ...) for surfaces and events; the model gets content.  Both
 * borrowed: valid during the callback (json_incref to keep json).
 */
struct ch_tool_result {
    bool is_error; /* send to the model as an error tool_result */
    const char *content;
    size_t content_len;
    const json_t *json;   /* NULL when the tool gives none */
    bool timed_out;       /* is_error because the call's deadline passed */
    bool aborted;         /* is_error because of ch_tool_call_abort / close */
    bool refused;         /* is_error because the input was turned down before any work (a bad
                             value, an unknown tool, a host or address not allowed): the
                             caller's error, not a failure (POST /tools/invoke: 400, not 500) */
    uint64_t duration_ms; /* from start to the report */
};

/*
 * Fires exactly once per started call, on a later loop iteration (never
 * inside ch_tool_call_start or ch_tool_call_abort).  call is valid until
 * the callback returns; the callback may start new calls, abort others,
 * or close the registry.
 */
typedef void (*ch_tool_done_cb)(struct ch_tool_call *call, const struct ch_tool_result *res, void *data);

/*
 * Run tool `name` with `input` (borrowed during this call only; normally
 * the tool_use block's object).  timeout_ms 0: the registry's default;
 * clamped to CH_TOOLS_MAX_TIMEOUT_MS.  When the deadline passes the tool's
 * work (an HTTP transfer, a DNS lookup) is aborted, and the result, once it
 * has stopped, is an error saying so.
 *
 * An unknown name, input failing the tool's schema, or a tool failing are
 * NOT errors of this function: it returns 0 and cb reports an error result
 * naming the problem (the model can fix its call).  Errors here mean no
 * callback will fire: CH_EINVAL (name or cb NULL), CH_ECLOSED (the
 * registry is closing), CH_ENOMEM.  *out (optional) is a borrowed handle
 * valid until cb returns.
 */
int ch_tool_call_start(struct ch_tools *t, const char *name, const json_t *input, uint64_t timeout_ms,
                       ch_tool_done_cb cb, void *data, struct ch_tool_call **out);
/* The same for the gateway's own calls: internal tools (fetch_image) too. */
int ch_tool_call_start_internal(struct ch_tools *t, const char *name, const json_t *input, uint64_t timeout_ms,
                                ch_tool_done_cb cb, void *data, struct ch_tool_call **out);

/*
 * Abort a call: its work stops and cb fires with an "aborted" error result
 * once it has (a later loop iteration).  A no-op when the result is already
 * known.  Valid only while call is (until cb returns).
 */
void ch_tool_call_abort(struct ch_tool_call *call);

/* ------------------------------------------------------------------ */
/* Implementing a tool                                                  */
/* ------------------------------------------------------------------ */

/*
 * start: begin the work for one call; input has passed input_schema and is
 * borrowed only during start (copy what you need).  Report exactly once
 * with ch_tool_call_reply*(), now or later from a loop callback.  A
 * non-zero return without a reply is reported as "tool failed: <reason>".
 * abort: stop the work (cancel the transfer, the lookup); the tool still
 * replies once the work has actually stopped (typically from the aborted
 * transfer's completion), and the registry substitutes the timeout or
 * abort message.  abort is called at most once and never after the reply.
 */
struct ch_tool_spec {
    const char *name;         /* [a-zA-Z0-9_-]{1,64}, unique; copied */
    const char *description;  /* for the model; copied */
    const char *input_schema; /* JSON text; the subset of ch_tools_schema_check */
    int (*start)(struct ch_tool_call *call, const json_t *input);
    void (*abort)(struct ch_tool_call *call);
    void *data;              /* borrowed; ch_tool_call_spec_data() */
    size_t max_result_bytes; /* 0: the registry's cap; at most CH_TOOLS_MAX_RESULT_BYTES */
    bool hidden;             /* registered but not offered (callable) */
    bool internal;           /* the gateway's own (implies hidden): only
                                ch_tool_call_start_internal runs it; to a model or
                                a client (tools.invoke) it is an unknown tool */
};

/* Add a tool.  CH_EEXIST (name taken), CH_EINVAL (bad name or schema; err
 * says why), CH_E_TOO_LARGE (CH_TOOLS_MAX_TOOLS), CH_ENOMEM. */
int ch_tools_register(struct ch_tools *t, const struct ch_tool_spec *spec, struct ch_error *err);

/* For implementations: the spec's data, the registry, the loop, curlm. */
void *ch_tool_call_spec_data(const struct ch_tool_call *call);
struct ch_tools *ch_tool_call_tools(const struct ch_tool_call *call);
uv_loop_t *ch_tools_loop(const struct ch_tools *t);
struct ch_curlm *ch_tools_curlm(const struct ch_tools *t);
/* A per-call pointer the implementation owns (its state); NULL at start. */
void ch_tool_call_set_state(struct ch_tool_call *call, void *state);
void *ch_tool_call_state(const struct ch_tool_call *call);
/* Milliseconds left before the call's deadline (0 when passed). */
uint64_t ch_tool_call_remaining_ms(const struct ch_tool_call *call);
/* True once abort was requested (deadline or ch_tool_call_abort). */
bool ch_tool_call_is_aborting(const struct ch_tool_call *call);

/*
 * Report the result: text (len bytes; copied, made valid UTF-8 and capped)
 * and json (taken, may be NULL).  Only the first reply counts; a second is
 * ignored (and logged).  Never calls the caller's callback synchronously.
 */
void ch_tool_call_reply(struct ch_tool_call *call, bool is_error, const char *text, size_t len, json_t *json);
void ch_tool_call_replyf(struct ch_tool_call *call, bool is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Before an error reply: the input was refused (ch_tool_result.refused). */
void ch_tool_call_mark_refused(struct ch_tool_call *call);

/* ------------------------------------------------------------------ */
/* JSON schema subset (tools/schema.c)                                  */
/* ------------------------------------------------------------------ */

/*
 * Check that schema uses only the subset validated here: type (a name or
 * an array of names: object, string, integer, number, boolean, array,
 * null), properties, required, additionalProperties (bool or schema),
 * enum, minimum, maximum, minLength, maxLength, items (one schema),
 * minItems, maxItems, and the annotations description, title, default,
 * examples, $schema.  Anything else (pattern, oneOf, $ref, format, ...)
 * is CH_EINVAL with err naming the keyword and its path: a schema that
 * promised more than is checked would mislead.  Depth is capped at 16.
 */
int ch_tools_schema_check(const json_t *schema, struct ch_error *err);

/*
 * Validate value against a schema that passed ch_tools_schema_check.
 * 0, or CH_EINVAL with msg (capacity msgcap, always NUL-terminated) naming
 * the first failure and its JSON path from root, e.g.
 * "input.headers.Authorization: expected string, got integer".  Integral
 * reals (5.0) count as integers; string lengths count code points.
 */
int ch_tools_schema_validate(const json_t *schema, const json_t *value, const char *root, char *msg, size_t msgcap);

#endif
