/*
 * schema.c: the one table of configuration keys (redis src/config.c rows).
 *
 * Every key chela reads is one row here: dotted path, type, default (as
 * JSON text), range or allowed values, flags and a doc line.  Validation,
 * default filling, redaction and docs/configuration.md all come from this
 * table, so adding a key is adding a row.  The `limits.*` rows are not
 * typed here: cfg_schema_new() generates them from the core limits table.
 */
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

#define MiB (1024LL * 1024)
#define DAY_MS 86400000LL

/* Row helpers: one line per key.  Defaults are JSON text. */
/* clang-format off */
#define OBJ(path, doc) { path, CFG_OBJECT, NULL, 0, 0, NULL, NULL, 0, doc, NULL }
#define STR(path, def, check, doc) { path, CFG_STRING, def, 0, 0, NULL, check, 0, doc, NULL }
#define REQUIRED(path, doc) { path, CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_REQUIRED, doc, NULL }
#define SECRET(path, flags, doc) \
    { path, CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET | (flags), doc, NULL }
#define INT(path, def, lo, hi, unit, doc) { path, CFG_INT, #def, lo, hi, NULL, NULL, 0, doc, unit }
#define BOOL(path, def, doc) { path, CFG_BOOL, #def, 0, 0, NULL, NULL, 0, doc, NULL }
#define ENUM(path, def, values, doc) \
    { path, CFG_ENUM, "\"" def "\"", 0, 0, values, NULL, 0, doc, NULL }
#define STRINGS(path, def, values, check, doc) \
    { path, CFG_STRINGS, def, 0, 0, values, check, 0, doc, NULL }
#define OBJECTS(path, def, doc) { path, CFG_OBJECTS, def, 0, 0, NULL, NULL, 0, doc, NULL }
#define SIZE(path, def, lo, hi, doc) \
    { path, CFG_SIZE, "\"" def "\"", lo, hi, NULL, NULL, 0, doc, "bytes" }
#define MAP(path, doc) { path, CFG_MAP, NULL, 0, 0, NULL, NULL, 0, doc, NULL }
#define DURATION(path, def, lo, hi, doc) \
    { path, CFG_DURATION, "\"" def "\"", lo, hi, NULL, NULL, 0, doc, "d" } /* a number is days */
#define NUM(path, def, lo, hi, doc) { path, CFG_NUMBER, #def, lo, hi, NULL, NULL, 0, doc, NULL }
#define OPTSTR(path, doc) { path, CFG_STRING, NULL, 0, 0, NULL, NULL, 0, doc, NULL }
#define OPTINT(path, lo, hi, unit, doc) { path, CFG_INT, NULL, lo, hi, NULL, NULL, 0, doc, unit }
#define OPTNUM(path, lo, hi, doc) { path, CFG_NUMBER, NULL, lo, hi, NULL, NULL, 0, doc, NULL }
/* The image URL settings of one OpenAI-compatible endpoint (OpenClaw's
 * shape: the same keys under chatCompletions and responses). */
#define IMAGE_ROWS(ep, allow) /* allow: the default as JSON text */ \
    {"gateway.http.endpoints." ep ".images.allowUrl", CFG_BOOL, allow, 0, 0, NULL, NULL, 0, \
     "Fetch image URLs sent to the agent models (`openclaw...`), with web_fetch's SSRF checks " \
     "(`tools.web.fetch.allowHosts` admits internal hosts); off: such an image is a 400. Provider models get " \
     "the URL as it is.", NULL}, \
    STRINGS("gateway.http.endpoints." ep ".images.urlAllowlist", "[]", NULL, NULL, \
            "Hosts image URLs may name, checked on every redirect (`host`, `*.domain`, either with `:port`); empty: " \
            "any public host."), \
    STRINGS("gateway.http.endpoints." ep ".images.allowedMimes", \
            "[\"image/jpeg\",\"image/png\",\"image/gif\",\"image/webp\"]", NULL, NULL, \
            "Media types a fetched image may have (from its Content-Type, else its bytes)."), \
    INT("gateway.http.endpoints." ep ".images.maxBytes", 10485760, 1, 104857600, "bytes", \
        "Largest image fetched; the agent models take at most 3 MB of base64 per turn, so at most 2.25 MB is " \
        "fetched."), \
    INT("gateway.http.endpoints." ep ".images.maxRedirects", 3, 0, 5, "count", \
        "Redirects followed per image URL."), \
    INT("gateway.http.endpoints." ep ".images.timeoutMs", 10000, 1, 10000, "ms", \
        "Time for one image URL, redirects included.")
/* The file settings of one OpenAI-compatible endpoint (OpenClaw's
 * responses.files keys; chat completions takes OpenAI's file parts). */
#define FILE_ROWS(ep, what, more) \
    INT("gateway.http.endpoints." ep ".files.maxBytes", 5242880, 1, 20971520, "bytes", \
        "Largest file in " what ", decoded; a `file_id` is refused" more "."), \
    INT("gateway.http.endpoints." ep ".files.maxChars", 60000, 1, 2000000, "chars", \
        "Characters of a file's text the model gets (the rest is cut, with a note)."), \
    INT("gateway.http.endpoints." ep ".files.timeoutMs", 10000, 1, 10000, "ms", \
        "Time to read one PDF (its text and page images) and to fetch one file URL."), \
    STRINGS("gateway.http.endpoints." ep ".files.allowedMimes", \
            "[\"text/plain\",\"text/markdown\",\"text/html\",\"text/csv\",\"application/json\",\"application/pdf\"]", \
            NULL, NULL, \
            "Media types of " what ": UTF-8 text, and PDF (read by `pdftotext` and `pdftoppm` from Debian's " \
            "poppler-utils, in child processes)."), \
    INT("gateway.http.endpoints." ep ".files.pdf.maxPages", 4, 1, 1000, "pages", \
        "Pages of a PDF the model gets (from the first), as text cut to `files.maxChars`."), \
    INT("gateway.http.endpoints." ep ".files.pdf.maxPixels", 4000000, 0, 100000000, "pixels", \
        "Pixels of the page images made from one PDF, shared by its pages (at most 96 dpi of an A4 page " \
        "each); 0: no images."), \
    INT("gateway.http.endpoints." ep ".files.pdf.minTextChars", 200, 0, 1000000, "chars", \
        "A page (of the first `maxPages`) with less text than this, trimmed, also reaches the model as a PNG " \
        "image (by `pdftoppm`), as in OpenClaw: a scan, a chart; 0: never.")
/* clang-format on */

static const struct cfg_row rows[] = {
    /* gateway: the listener and how clients authenticate to it. */
    INT("gateway.port", 18789, 0, 65535, NULL,
        "TCP port of the gateway (HTTP, WebSocket, API). 0 picks a free port (tests)."),
    STR("gateway.bind", "\"loopback\"", cfg_check_bind,
        "Listen address: `loopback` (127.0.0.1), `localhost`, `lan` (every interface) or a "
        "literal IPv4/IPv6 address."),
    ENUM("gateway.mode", "local", "local", "Gateway mode; chela runs the local gateway only."),
    ENUM("gateway.auth.mode", "token", "token|password|none",
         "How clients authenticate: shared token, password, or none."),
    SECRET("gateway.auth.token", 0,
           "Shared token for auth mode `token` (`Authorization: Bearer` or `x-openclaw-token`)."),
    SECRET("gateway.auth.password", 0, "Password for auth mode `password`."),
    INT("gateway.auth.rateLimit.maxAttempts", 10, 1, 1000000, "count",
        "Failed authentications per client address within `windowMs` before a lockout."),
    INT("gateway.auth.rateLimit.windowMs", 60000, 1000, DAY_MS, "ms",
        "Window in which failed authentications are counted."),
    INT("gateway.auth.rateLimit.lockoutMs", 300000, 0, DAY_MS, "ms", "How long a client address stays locked out."),
    STRINGS("gateway.controlUi.allowedOrigins", "[]", NULL, cfg_check_origin,
            "Browser origins (`scheme://host[:port]`) allowed to open the control UI "
            "WebSocket."),
    BOOL("gateway.http.endpoints.chatCompletions.enabled", false,
         "Serve the OpenAI-compatible `POST /v1/chat/completions` (and `GET /v1/models`)."),
    IMAGE_ROWS("chatCompletions", "false"),
    FILE_ROWS("chatCompletions", "a `file` part's `file` (OpenAI's `{file_data, filename}`)", ""),
    OPTINT("gateway.outbound.maxConnectionsPerHost", 1, 4096, "count",
           "Outbound connections to one host:port at once (default `agents.defaults.maxConcurrent`, at "
           "least 8). A streamed LLM call holds its HTTP/1.1 connection for the whole reply, so a local "
           "server (vLLM, Ollama) sees at most this many calls at once; HTTP/2 providers multiplex. "
           "Calls past it wait, and the wait counts toward their first-byte timeout."),
    OPTINT("gateway.outbound.maxConnections", 1, 65536, "count",
           "Outbound connections open at once, all hosts (LLM calls, tools, deliveries); default 64, "
           "or the per-host limit plus 16 when that is larger."),
    STRINGS("gateway.tools.deny", "[]", NULL, NULL,
            "Tools `POST /tools/invoke` and `tools.invoke` refuse (not found) besides OpenClaw's default list: `exec`, "
            "`spawn`, "
            "`shell`, `fs_write`, `fs_delete`, `fs_move`, `apply_patch`, `sessions_spawn`, `sessions_send`, "
            "`cron`, `gateway`, `nodes`."),
    STRINGS("gateway.tools.allow", "[]", NULL, NULL,
            "Names taken off that default deny list for `POST /tools/invoke` and the WebSocket `tools.invoke`."),
    BOOL("gateway.http.endpoints.responses.enabled", false,
         "Serve the OpenResponses `POST /v1/responses` (and `GET /v1/models`): agent models with sessions "
         "continued by `previous_response_id`, provider models as pass-through calls."),
    IMAGE_ROWS("responses", "true"),
    INT("gateway.http.endpoints.responses.maxUrlParts", 8, 0, 64, "count",
        "Image and file parts by URL in one request, all items counted (more: 400); at most 8 are fetched."),
    BOOL("gateway.http.endpoints.responses.files.allowUrl", true,
         "Fetch `input_file` parts by URL, with web_fetch's SSRF checks (`tools.web.fetch.allowHosts` admits "
         "internal hosts; at most 5 MB, 8 URLs a request); off: such a part is a 400."),
    STRINGS("gateway.http.endpoints.responses.files.urlAllowlist", "[]", NULL, NULL,
            "Hosts file URLs may name, checked on every redirect (`host`, `*.domain`, either with `:port`); empty: "
            "any public host."),
    INT("gateway.http.endpoints.responses.files.maxRedirects", 3, 0, 5, "count", "Redirects followed per file URL."),
    FILE_ROWS("responses", "an `input_file`", " (a file URL is fetched within `files.timeoutMs` too, at most 5 MB)"),
    INT("gateway.busyPollMicros", 500, 0, 10000, "us",
        "Before the event loop or the store writer sleeps, poll for work this long at most: waking a "
        "sleeping thread costs tens of microseconds on many VMs, several times per request. The budget "
        "is learnt from recent waits (as Linux's haltpoll does), so a thread whose work arrives rarely "
        "stops polling, and none polls while the event loop is over 70% busy (a saturated gateway "
        "needs its cores), nor for 10 ms after another thread took its core mid-poll; "
        "`/health/detail` shows what it caught. 0 never polls."),

    /* api: the REST API and its own tokens. */
    BOOL("api.enabled", true, "Serve the REST API under `/api`."),
    BOOL("api.auth.enabled", true, "Require an API token (`Authorization: Bearer`)."),
    OBJECTS("api.auth.tokens", "[]", "API tokens; each entry is an object with the keys below."),
    REQUIRED("api.auth.tokens[].name", "Label of the token in logs, metrics and the audit trail."),
    SECRET("api.auth.tokens[].token", CFG_REQUIRED, "The token value clients send."),
    STRINGS("api.auth.tokens[].scope", "[\"chat\",\"send\",\"read\"]", "chat|send|read|admin", NULL,
            "What the token may do; `admin` must be granted explicitly."),
    INT("api.auth.tokens[].rateLimit", 0, 0, 1000000, "count",
        "Requests per minute for this token; 0 uses `api.rateLimit.perToken`."),
    INT("api.rateLimit.global.windowMs", 60000, 1000, DAY_MS, "ms", "Window of the global request counter."),
    INT("api.rateLimit.global.maxRequests", 0, 0, 1000000000, "count",
        "Requests per window over all tokens; 0 means unlimited."),
    INT("api.rateLimit.perToken.windowMs", 60000, 1000, DAY_MS, "ms", "Window of each token's request counter."),
    INT("api.rateLimit.perToken.maxRequests", 60, 0, 1000000000, "count",
        "Requests per window per token; 0 means unlimited."),
    STRINGS("api.security.allowedIPs", "[]", NULL, cfg_check_cidr,
            "Client addresses allowed to call the API, as CIDR (`10.0.0.0/8`, `::1`); empty "
            "allows every address."),
    BOOL("api.security.cors.enabled", false, "Answer CORS preflights and add CORS headers."),
    STRINGS("api.security.cors.origins", "[]", NULL, cfg_check_cors_origin,
            "Allowed origins (`scheme://host[:port]`, or `*` for any)."),
    STRINGS("api.security.cors.methods", "[\"GET\",\"POST\",\"DELETE\"]", "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS",
            NULL, "Allowed request methods."),
    STRINGS("api.security.cors.headers", "[\"Authorization\",\"Content-Type\",\"X-Request-Id\",\"x-openclaw-token\"]",
            NULL, cfg_check_header_name, "Allowed request headers."),
    INT("api.security.cors.maxAgeSeconds", 600, 0, 86400, NULL,
        "How long browsers may cache a preflight answer, in seconds."),
    SIZE("api.security.maxBodySize", "1MB", 1024, 1024 * MiB,
         "Largest request body (`512KB`, `1MB`, or bytes); sets `limits.maxBodyBytes` "
         "unless that is given."),
    SIZE("api.broadcast.maxTotalBytes", "16MB", 1024, 1024 * MiB,
         "Largest recipients x text bytes of one `POST /api/messages/broadcast` (each recipient is one "
         "`message.sent` event, stored once per subscribed webhook); over it the request gets 413."),
    /* api.outbox: every delivery attempt (hook callbacks, event webhooks). */
    INT("api.outbox.connectTimeoutMs", 10000, 100, 120000, "ms",
        "DNS, TCP and TLS of one delivery attempt (callbacks and webhooks); past it the attempt is retried."),
    INT("api.outbox.timeoutMs", 30000, 500, 600000, "ms",
        "One delivery attempt from start to its last byte; a receiver slower than that is retried "
        "(at-least-once: use X-OpenClaw-Delivery to drop a repeat)."),
    /* api.webhooks: outgoing event webhooks through the durable outbox
     * (src/api/webhooks.c, docs/internals/outbox.md; seed 002 section 4). */
    OBJECTS("api.webhooks.outgoing", "[]",
            "Outgoing event webhooks: each event is POSTed as `{event, timestamp, data}` to every entry that "
            "lists it, through the durable outbox (retried, kept across restarts). More can be added over REST "
            "(`/api/v1/webhooks`)."),
    REQUIRED("api.webhooks.outgoing[].url", "Receiver URL (`http://` or `https://`); redirects are not followed."),
    SECRET("api.webhooks.outgoing[].secret", 0,
           "HMAC-SHA256 key: signs each attempt (`X-OpenClaw-Signature`, `X-Signature-256: sha256=...`, "
           "`X-OpenClaw-Signature-V2` over `<timestamp>.<body>`). Without it deliveries are unsigned."),
    STRINGS("api.webhooks.outgoing[].events", "[]",
            "message.received|message.sent|conversation.created|run.completed|run.failed|channel.connected|"
            "channel.disconnected|message|status|media",
            NULL, "Events to send; empty sends every event."),
    MAP("api.webhooks.outgoing[].headers", "Extra request headers (name: value; `${ENV}` works)."),
    {"api.webhooks.outgoing[].headers.*", CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET, "A header value.", NULL},
    INT("api.webhooks.outgoing[].retry.maxAttempts", 3, 1, 20, "count",
        "Attempts before a delivery is dead-lettered (2xx succeeds; 4xx other than 408/429 fails at once)."),
    INT("api.webhooks.outgoing[].retry.backoffMs", 5000, 10, 3600000, "ms",
        "Wait before the first retry; doubles on each further attempt (at least the receiver's Retry-After)."),

    /* log */
    ENUM("log.level", "info", "debug|info|warn|error", "Lowest level written to stderr."),
    ENUM("log.format", "text", "text|json", "Log line format."),
    BOOL("log.access", true, "Write one access-log line per HTTP request."),

    /* store: the SQLite database. */
    ENUM("store.sync", "normal", "normal|full",
         "SQLite `synchronous` pragma: `full` survives power loss, `normal` is faster."),
    INT("store.busyTimeoutMs", 5000, 0, 600000, "ms", "How long a database call waits for a lock before failing."),
    INT("store.auditRetentionDays", 30, 0, 36500, NULL,
        "Days audit rows are kept; 0 keeps them forever. Pruned at start and hourly, in batches."),
    INT("store.runRetentionDays", 30, 0, 36500, NULL,
        "Days a finished run (hooks, REST, `/v1`, WebSocket) stays in `GET /api/v1/runs` and `chela runs`, with "
        "its idempotency key; 0 keeps them forever. Runs still queued or running are never pruned."),

    /* session: OpenClaw's session maintenance, for the sessions runs make
     * for themselves (ch_session_key_disposable). */
    ENUM("session.maintenance.mode", "enforce", "enforce|warn",
         "`enforce` deletes stale disposable sessions (below); `warn` only logs how many it would."),
    DURATION("session.maintenance.pruneAfter", "30d", 0, 36500 * DAY_MS,
             "A session made for one run (a hook's `hook:<uuid>`, `cron:`, `subagent:`, `acp:`, `node:`, heartbeat, "
             "a stateless `/v1` call's `openai:<uuid>`) untouched this long is deleted with its transcript, as "
             "OpenClaw's maintenance does; never the main session, a conversation, or one with a run queued or "
             "running. 0 keeps them."),
    INT("store.writerSliceMicros", 20, 0, 10000, "us",
        "The store writer gives up its core (`sched_yield`) between the steps of a batch once it has run this "
        "long, so a request on a core it shares waits for one slice and not the whole batch (a busy gateway's "
        "audit rows: ~100 us a batch). Alone on a core the yield returns at once. 0 never yields."),

    /* metrics */
    BOOL("metrics.public", false, "Serve `/metrics` without authentication."),

    /* models: LLM providers (docs/internals/llm-client.md). */
    MAP("models.providers", "LLM providers by id (`anthropic`, `openai`, `local`...); the id is the "
                            "`provider` part of a `provider/model` reference."),
    {"models.providers.*.api", CFG_ENUM, NULL, 0, 0, "anthropic-messages|openai-completions|google-generative-ai", NULL,
     CFG_REQUIRED,
     "Wire format: Anthropic Messages, OpenAI Chat Completions (also Ollama, vLLM, "
     "OpenRouter, LiteLLM...), or Google Gemini.",
     NULL},
    OPTSTR("models.providers.*.baseUrl", "Endpoint; default the provider's public API. For OpenAI-compatible "
                                         "servers, the URL up to `/chat/completions`."),
    SECRET("models.providers.*.apiKey", 0, "API key (`${ENV}` works); a missing key sends none (local servers)."),
    {"models.providers.*.apiKeys", CFG_STRINGS, NULL, 0, 0, NULL, NULL, CFG_SECRET,
     "Several keys, rotated; a key answering 429 cools down while the others serve.", NULL},
    MAP("models.providers.*.headers", "Extra request headers (name: value)."),
    {"models.providers.*.headers.*", CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET, "A header value.", NULL},
    OBJECTS("models.providers.*.models", "[]",
            "Models of this provider; unlisted models still resolve with "
            "default limits."),
    REQUIRED("models.providers.*.models[].id", "Model id sent to the provider."),
    OPTSTR("models.providers.*.models[].name", "Display name."),
    OPTINT("models.providers.*.models[].contextWindow", 1, 100000000, "tokens", "Context window in tokens."),
    OPTINT("models.providers.*.models[].maxTokens", 1, 10000000, "tokens", "Largest reply in tokens."),
    OPTNUM("models.providers.*.models[].pricing.input", 0, 1000000, "USD per million input tokens."),
    OPTNUM("models.providers.*.models[].pricing.output", 0, 1000000, "USD per million output tokens."),
    OPTNUM("models.providers.*.models[].pricing.cacheRead", 0, 1000000, "USD per million cache-read tokens."),
    OPTNUM("models.providers.*.models[].pricing.cacheWrite", 0, 1000000, "USD per million cache-write tokens."),
    OPTNUM("models.providers.*.models[].cost.input", 0, 1000000, "OpenClaw's spelling of `pricing.input`."),
    OPTNUM("models.providers.*.models[].cost.output", 0, 1000000, "OpenClaw's spelling of `pricing.output`."),
    OPTNUM("models.providers.*.models[].cost.cacheRead", 0, 1000000, "OpenClaw's spelling of `pricing.cacheRead`."),
    OPTNUM("models.providers.*.models[].cost.cacheWrite", 0, 1000000, "OpenClaw's spelling of `pricing.cacheWrite`."),
    OPTINT("models.retry.count", 0, 10, "count",
           "Retries per model on 429, 5xx and connection errors "
           "(default 3, or `LLM_RETRY_COUNT`)."),
    INT("models.retry.baseDelayMs", 500, 1, 60000, "ms", "First backoff delay (exponential, full jitter)."),
    INT("models.retry.maxDelayMs", 30000, 1, 300000, "ms", "Longest backoff delay."),
    INT("models.circuitBreaker.failureThreshold", 5, 1, 1000, "count",
        "Consecutive failures of an endpoint that open its circuit."),
    INT("models.circuitBreaker.cooldownMs", 30000, 10, 3600000, "ms",
        "How long an open circuit fails fast before one probe call."),
    INT("models.timeouts.connectMs", 10000, 10, 300000, "ms", "Connecting to a provider."),
    INT("models.timeouts.firstByteMs", 120000, 10, 3600000, "ms", "Waiting for the response head."),
    INT("models.timeouts.idleMs", 60000, 10, 3600000, "ms", "Longest pause inside a streamed response."),
    INT("models.timeouts.callMs", 600000, 10, 86400000, "ms", "One call, all retries and fallbacks included."),

    /* agents: the agent loop. */
    OPTSTR("agents.defaults.model.primary", "Default model, `provider/model` (else `LLM_PROVIDER`/`LLM_MODEL`)."),
    STRINGS("agents.defaults.model.fallbacks", "[]", NULL, NULL,
            "Models tried in order when the primary fails after its retries."),
    MAP("agents.defaults.models", "Per-model settings keyed by `provider/model`: `alias` (so `model: \"gpt\"` "
                                  "resolves) and `params`."),
    OPTSTR("agents.defaults.models.*.alias", "Short name for the model."),
    MAP("agents.defaults.models.*.params", "Default request parameters (`maxTokens`, `temperature`)."),
    STR("agents.defaults.systemPrompt", "\"\"", cfg_check_system_prompt,
        "System prompt of every run, at most 900 KiB; the workspace's AGENTS.md (its first 64 KiB) is "
        "appended."),
    OPTSTR("agents.defaults.workspace", "Workspace directory (AGENTS.md, skills); default `<state>/workspace`."),
    INT("agents.defaults.maxConcurrent", 32, 1, 100000, "count", "Runs executing at once (all sessions)."),
    INT("agents.defaults.queueSize", 1024, 1, 10000000, "count",
        "Runs waiting to start; beyond it submissions are refused with a clear error."),
    INT("agents.defaults.timeoutSeconds", 600, 1, 86400, NULL, "Longest run, in seconds."),
    OPTINT("agents.defaults.maxToolRounds", 0, 1000, "count",
           "Tool rounds per run (default 10, or `MAX_TOOL_ROUNDS`)."),
    NUM("agents.defaults.compaction.ratio", 0.8, 0, 1,
        "Compact older turns when the history passes this share of the context budget."),
    INT("agents.defaults.compaction.reserveTokensFloor", 4096, 0, 10000000, "tokens",
        "Reply budget kept free in the context window."),
    INT("agents.defaults.compaction.keepMessages", 6, 1, 1000, "count",
        "Newest messages kept verbatim when compacting."),
    INT("agents.defaults.transcriptCacheBytes", 2097152, 0, 1073741824, "bytes",
        "Memory for recent sessions' parsed transcripts, so a turn need not reload its history; 0 disables."),

    /* tools */
    STRINGS("tools.http.allowHosts", "[]", NULL, NULL,
            "Hosts `http_request` may call (`host`, `*.domain`, optional `:port`); empty: the tool is not offered."),
    STRINGS("tools.web.fetch.allowHosts", "[]", NULL, NULL,
            "Hosts `web_fetch` may reach even when they resolve to private or loopback addresses."),
    BOOL("tools.web.fetch.enabled", true, "Offer the `web_fetch` tool."),
    OPTINT("tools.timeoutSeconds", 1, 3600, NULL, "Per tool call (default 30, or `TOOL_TIMEOUT`)."),

    /* gateway.ws: the OpenClaw WebSocket protocol (src/api/oc_ws.c; spec 1.1, 1.5). */
    INT("gateway.ws.tickIntervalMs", 30000, 100, 3600000, "ms",
        "How often every WebSocket client gets a `tick` event (`hello-ok` policy.tickIntervalMs)."),
    INT("gateway.ws.maxPayload", 26214400, 65536, 268435456, "bytes",
        "Largest WebSocket message after `connect` (before it: 64 KiB)."),
    INT("gateway.ws.maxBufferedBytes", 52428800, 65536, 1073741824, "bytes",
        "Send queue per WebSocket client; past it the client is closed with 1008 \"slow consumer\"."),
    INT("gateway.ws.handshakeTimeoutMs", 15000, 100, 600000, "ms",
        "How long a WebSocket client may take to send `connect` after the challenge."),
    BOOL("gateway.nodes.pairing.autoApproveLocal", true,
         "Pair devices connecting over loopback silently; others wait for `chela devices approve` or "
         "`device.pair.approve`."),

    /* hooks: the webhook surface (src/api/hooks*.c; OpenClaw spec section 3, docs/compatibility.md). */
    BOOL("hooks.enabled", false, "Serve `POST <hooks.path>/agent`, `/wake` and mapped names; off: they are 404."),
    SECRET("hooks.token", 0,
           "Token hook callers send (`Authorization: Bearer` or `x-openclaw-token`). Unset: the gateway "
           "token and API tokens with the `chat` scope are accepted instead."),
    STR("hooks.path", "\"/hooks\"", NULL, "Base path of the hooks (not `/`); a bare base path is 404."),
    SIZE("hooks.maxBodyBytes", "256KB", 1024, 64 * MiB, "Largest hook body; a larger one gets 413."),
    STRINGS("hooks.allowedSessionKeyPrefixes", "[]", NULL, NULL,
            "When set, every hook session key (given, default or generated) must start with one of these."),
    OPTSTR("hooks.defaultSessionKey", "Session key of hook runs that name none (default `hook:<uuid>` per run); "
                                      "stored, like every key, in its canonical form (`agent:main:hook:<uuid>`)."),
    BOOL("hooks.allowRequestSessionKey", true,
         "Accept a caller's `sessionKey` (seed 000 relies on it; OpenClaw's default is false). Reserved "
         "prefixes (`agent:`, `cron:`, `subagent:`, `acp:`) are always refused."),
    OPTSTR("hooks.callback.url", "Default callback URL for every `/hooks/agent` run (a body's `callback` wins; "
                                 "`callback: false` opts out)."),
    MAP("hooks.callback.headers",
        "Headers added to callbacks to the origin (scheme, host, port) of `hooks.callback.url` (e.g. "
        "`Authorization: Bearer ${TOKEN}`); a body's own headers win per name. A body's callback to another "
        "origin gets only its own: anyone with the hook token may name a URL."),
    {"hooks.callback.headers.*", CFG_STRING, NULL, 0, 0, NULL, NULL, CFG_SECRET, "A header value.", NULL},
    ENUM("hooks.callback.mode", "envelope", "raw|envelope",
         "`raw` posts the agent's final text (must be JSON), `envelope` posts {runId, status, text, json?, ...}."),
    SECRET("hooks.callback.secret", 0,
           "HMAC-SHA256 key for the callback signature headers (a body's wins); like the headers, only for "
           "`hooks.callback.url`'s origin."),
    INT("hooks.retry.maxAttempts", 3, 1, 100, "count", "Attempts per callback before it is dead-lettered."),
    INT("hooks.retry.backoffMs", 5000, 1, 3600000, "ms", "First retry delay of a callback (doubling after)."),
    OBJECTS("hooks.mappings", "[]",
            "`POST <hooks.path>/<name>` mappings; each entry is an object with the keys below."),
    OPTSTR("hooks.mappings[].id", "Name of the mapping in logs and run metadata."),
    OPTSTR("hooks.mappings[].match.path", "Sub-path it serves (`github` for `/hooks/github`); unset: any."),
    OPTSTR("hooks.mappings[].match.source", "Only bodies whose `source` field equals this."),
    ENUM("hooks.mappings[].action", "agent", "agent|wake", "Start an agent run, or wake the main session."),
    OPTSTR("hooks.mappings[].name", "Run name (template)."),
    OPTSTR("hooks.mappings[].sessionKey", "Session key (template); default as for `/hooks/agent`."),
    OPTSTR("hooks.mappings[].messageTemplate",
           "The run's message: `{{payload.x.y}}`, `{{headers.x}}`, `{{query.x}}`, `{{path}}`, `{{now}}`."),
    OPTSTR("hooks.mappings[].textTemplate", "The wake text (action `wake`), same placeholders."),
    {"hooks.mappings[].deliver", CFG_BOOL, NULL, 0, 0, NULL, NULL, 0, "Deliver the reply to `channel`.", NULL},
    OPTSTR("hooks.mappings[].channel", "Channel of the reply (`webhook` emits `message.sent`)."),
    OPTSTR("hooks.mappings[].to", "Recipient on the channel (template)."),
    OPTSTR("hooks.mappings[].model", "Model or alias (template)."),
    OPTSTR("hooks.mappings[].thinking", "Thinking level, kept on the run."),
    OPTINT("hooks.mappings[].timeoutSeconds", 1, 86400, NULL, "Run timeout in seconds."),
    ENUM("hooks.mappings[].wakeMode", "now", "now|next-heartbeat", "When the run or wake happens."),
    ENUM("hooks.mappings[].sessionMode", "isolated", "isolated|persistent",
         "`isolated`: each run starts its session afresh; `persistent`: runs continue the session's transcript."),
    OPTSTR("hooks.mappings[].agentId", "Agent of the mapping's runs, kept on the run (chela has one agent, `main`)."),
    {"hooks.mappings[].allowUnsafeExternalContent", CFG_BOOL, NULL, 0, 0, NULL, NULL, 0,
     "OpenClaw wraps hook content in a safety envelope unless this is set; chela never wraps it.", NULL},
    {"hooks.allowedAgentIds", CFG_STRINGS, NULL, 0, 0, NULL, NULL, 0,
     "Agents hooks may run (`*`: any). chela has one agent, `main`: a list without `main` or `*` refuses every "
     "hook with 400 `agentId is not allowed by hooks.allowedAgentIds`. Unset: any.",
     NULL},
    OPTSTR("hooks.transformsDir", "OpenClaw's directory of transform modules; chela runs none (a mapping's "
                                  "`transform` is a config error)."),
    OPTSTR("hooks.mappings[].forEach",
           "Fan-out: a top-level payload key holding an array; one run per item (at most 200), each rendered as if "
           "the array held that item alone (`{{messages[0].id}}`); no items: 204."),
    STRINGS("hooks.presets", "[]", "gmail", NULL,
            "Built-in mappings after the configured ones: `gmail` serves `<hooks.path>/gmail` as OpenClaw does (one "
            "run per message of the batch, session `hook:gmail:<message id>`)."),
    INT("hooks.gmail.maxBytes", 20000, 1, 10000000, "bytes",
        "Largest message body the Gmail watcher sends; `<hooks.path>/gmail` takes min(32 MiB, 100 x (3 x this + 8 "
        "KiB)) bytes."),
    OPTSTR("hooks.gmail.model", "Model or alias of the `gmail` preset's runs."),
    {"hooks.gmail.thinking", CFG_ENUM, NULL, 0, 0, "off|minimal|low|medium|high", NULL, 0,
     "Thinking level of the `gmail` preset's runs, kept on the run.", NULL},
    /* OpenClaw starts its Gmail watcher (gog) from these; chela does not
     * start it, but an OpenClaw config that sets them must still load. */
    OPTSTR("hooks.gmail.account", "OpenClaw's Gmail watcher: the account. chela does not start the watcher; run "
                                  "`gog gmail watch serve` with `--hook-url <gateway>/hooks/gmail`."),
    OPTSTR("hooks.gmail.label", "OpenClaw's Gmail watcher: label watched (not used by chela)."),
    OPTSTR("hooks.gmail.topic", "OpenClaw's Gmail watcher: Pub/Sub topic (not used by chela)."),
    OPTSTR("hooks.gmail.subscription", "OpenClaw's Gmail watcher: Pub/Sub subscription (not used by chela)."),
    SECRET("hooks.gmail.pushToken", 0, "OpenClaw's Gmail watcher: push token (not used by chela)."),
    OPTSTR("hooks.gmail.hookUrl", "OpenClaw's Gmail watcher: the hook URL it posts to (not used by chela)."),
    {"hooks.gmail.includeBody", CFG_BOOL, NULL, 0, 0, NULL, NULL, 0,
     "OpenClaw's Gmail watcher: send message bodies (not used by chela).", NULL},
    OPTINT("hooks.gmail.renewEveryMinutes", 1, 1000000, "min",
           "OpenClaw's Gmail watcher: watch renewal period (not used by chela)."),
    {"hooks.gmail.allowUnsafeExternalContent", CFG_BOOL, NULL, 0, 0, NULL, NULL, 0,
     "OpenClaw wraps hook content in a safety envelope unless this is set; chela never wraps it.", NULL},
    OPTSTR("hooks.gmail.serve.bind", "OpenClaw's Gmail watcher: its bind address (not used by chela)."),
    OPTINT("hooks.gmail.serve.port", 1, 65535, NULL, "OpenClaw's Gmail watcher: its port (not used by chela)."),
    OPTSTR("hooks.gmail.serve.path", "OpenClaw's Gmail watcher: its path (not used by chela)."),
    {"hooks.gmail.tailscale.mode", CFG_ENUM, NULL, 0, 0, "off|serve|funnel", NULL, 0,
     "OpenClaw's Gmail watcher: Tailscale exposure (not used by chela).", NULL},
    OPTSTR("hooks.gmail.tailscale.path", "OpenClaw's Gmail watcher: Tailscale path (not used by chela)."),
    OPTSTR("hooks.gmail.tailscale.target", "OpenClaw's Gmail watcher: Tailscale target (not used by chela)."),

    /* limits: generated from the core limits table by cfg_schema_new(). */
    OBJ("limits", "Resource limits; every key is one row of the core limits table."),
};

struct cfg_schema *cfg_schema_new(void)
{
    struct cfg_schema *s;
    size_t n = CH_ARRAY_SIZE(rows), k;

    s = ch_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->rows = ch_malloc((n + CH_LIMIT__COUNT) * sizeof(*s->rows));
    if (!s->rows) {
        ch_free(s);
        return NULL;
    }
    memcpy(s->rows, rows, sizeof(rows));
    for (k = 0; k < CH_LIMIT__COUNT; k++) {
        const struct ch_limit_def *l = ch_limit_def_get((enum ch_limit_id)k);
        struct cfg_row *r = &s->rows[n + k];
        bool bytes = !strcmp(l->unit, "bytes");

        snprintf(s->gen_path[k], sizeof(s->gen_path[k]), "limits.%s", l->name);
        snprintf(s->gen_def[k], sizeof(s->gen_def[k]), "%lld", (long long)l->def);
        memset(r, 0, sizeof(*r));
        r->path = s->gen_path[k];
        /* Byte limits also take "64KB"-style sizes, like api.security.maxBodySize. */
        r->type = bytes ? CFG_SIZE : CFG_INT;
        r->def = s->gen_def[k];
        r->min = l->min;
        r->max = l->max;
        r->doc = l->doc;
        r->unit = l->unit;
    }
    s->count = n + CH_LIMIT__COUNT;
    return s;
}

void cfg_schema_free(struct cfg_schema *s)
{
    if (!s)
        return;
    ch_free(s->rows);
    ch_free(s);
}

const struct cfg_row *cfg_schema_find(const struct cfg_schema *s, const char *pattern)
{
    for (size_t k = 0; k < s->count; k++)
        if (!strcmp(s->rows[k].path, pattern))
            return &s->rows[k];
    return NULL;
}

bool cfg_schema_has_children(const struct cfg_schema *s, const char *pattern)
{
    size_t n = strlen(pattern);

    for (size_t k = 0; k < s->count; k++) {
        const char *path = s->rows[k].path;

        if (n == 0)
            return true; /* everything lies below the root */
        /* Below means "<pattern>.x" or "<pattern>[]...". */
        if (!strncmp(path, pattern, n) && (path[n] == '.' || path[n] == '['))
            return true;
    }
    return false;
}

const char *cfg_type_name(enum cfg_type t)
{
    switch (t) {
    case CFG_OBJECT: return "object";
    case CFG_STRING: return "string";
    case CFG_INT: return "integer";
    case CFG_NUMBER: return "number";
    case CFG_BOOL: return "boolean";
    case CFG_ENUM: return "string";
    case CFG_STRINGS: return "array of strings";
    case CFG_OBJECTS: return "array of objects";
    case CFG_MAP: return "object";
    case CFG_SIZE: return "size";
    case CFG_DURATION: return "duration";
    }
    return "?";
}

bool cfg_enum_has(const char *values, const char *s)
{
    size_t n = strlen(s);
    const char *p = values;

    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == n && !memcmp(p, s, n))
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}
