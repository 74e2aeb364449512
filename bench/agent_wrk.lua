-- bench/agent_wrk.lua: wrk script for bench/agent.sh.
--
-- BENCH_MODE=chat (default): POST a chat body to the URL (/api/v1/chat or
-- /api/v1/chat/stream) with a distinct conversationId per request,
-- "<BENCH_PREFIX>-<thread>-<n>", so every run is a new session and runs
-- proceed in parallel (the same session would serialise).
-- BENCH_MODE=direct: POST the upstream body chela itself sends (OpenAI
-- Chat Completions, streamed) straight to the fake LLM: the baseline
-- (BENCH_DIRECT_BODY below; without it a bare body without tools).
-- BENCH_TOKEN: the gateway's bearer token.
--
-- done() prints one machine-readable line:
--   BENCH requests=N errors=E non2xx=X rps=R p50_us=A p99_us=B

local mode = os.getenv("BENCH_MODE") or "chat"
local prefix = os.getenv("BENCH_PREFIX") or "b"
local token = os.getenv("BENCH_TOKEN") or ""
local direct_body = '{"model":"fake-model","messages":[{"role":"user","content":"hi"}],' ..
    '"stream":true,"stream_options":{"include_usage":true}}'
-- BENCH_DIRECT_BODY: a file with the exact body (bench/agent.sh captures
-- the one chela sends, tool definitions included).
local body_file = os.getenv("BENCH_DIRECT_BODY")
if body_file and body_file ~= "" then
    local f = io.open(body_file, "rb")
    if f then
        direct_body = f:read("*a")
        f:close()
    end
end

local threads = {}
local nthreads = 0

function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end

function init(args)
    n = 0
    headers = { ["Content-Type"] = "application/json" }
    if token ~= "" then
        headers["Authorization"] = "Bearer " .. token
    end
end

function request()
    n = n + 1
    if mode == "direct" then
        return wrk.format("POST", nil, headers, direct_body)
    end
    local body = string.format('{"message":"hello %d","conversationId":"%s-%d-%d"}', n, prefix, tid, n)
    return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.timeout
    io.write(string.format("BENCH requests=%d errors=%d non2xx=%d rps=%.1f p50_us=%d p99_us=%d\n",
        summary.requests, errors, e.status, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99)))
end
