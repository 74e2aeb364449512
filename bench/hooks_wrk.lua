-- bench/hooks_wrk.lua: wrk script for bench/hooks.sh.
--
-- POSTs auto_trader's /hooks/agent request (seed-integrations.md 1.2-1.3:
-- the four keys, a ~2 KB multi-line message with JSON inside, Bearer
-- token) with a distinct request_id and sessionKey per request, as
-- auto_trader does (uuid4 per call).  BENCH_TOKEN: the hooks token.
--
-- The request is rendered once, in init(), around a placeholder for the
-- request id, and split there; request() only joins the pieces with the
-- new id.  Escaping the 2 KB message and wrk.format() per request cost
-- wrk ~60 us of CPU a request, which capped it near 16,000 requests/s on
-- a core of its own: the load generator, not the gateway, was the limit.
-- The bytes sent are the same as rendering each request from scratch
-- (the id has a fixed width, so Content-Length is constant).
--
-- done() prints one machine-readable line:
--   BENCH requests=N errors=E non2xx=X rps=R p50_us=A p99_us=B body_bytes=L

local token = os.getenv("BENCH_TOKEN") or ""
local threads = {}
local nthreads = 0

function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end

local function json_str(s)
    s = s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('\n', '\\n'):gsub('\t', '\\t')
    return '"' .. s .. '"'
end

local prompt = "Samsung Electronics daily chart: judge the trend from RSI, MACD and volume.\n" ..
    "Mark \"overbought\" when RSI > 70 and keep {\"key\": \"value\"} pairs as they are.\n" ..
    string.rep("Consider the last 120 trading days, the 20/60/120 moving averages and the sector. ", 12)

local schema = '{"request_id": "%s", "symbol": "005930", "name": "Samsung Electronics", ' ..
    '"instrument_type": "equity_kr", "decision": "buy|hold|sell", "confidence": 0, "reasons": ["..."], ' ..
    '"price_analysis": {"appropriate_buy_range": {"min": 0, "max": 0}, "appropriate_sell_range": ' ..
    '{"min": 0, "max": 0}, "buy_hope_range": {"min": 0, "max": 0}, "sell_target_range": {"min": 0, ' ..
    '"max": 0}}, "detailed_text": "...", "model_name": "..."}'

-- The request id's width: "%08x-0000-4000-8000-%012x".
local RID_MARK = "\1RID\1"

local function render(rid)
    local msg = "Analyze the following trading instrument and return a JSON result via HTTP callback.\n\n" ..
        "request_id: " .. rid .. "\nsymbol: 005930\nname: Samsung Electronics\ninstrument_type: equity_kr\n\n" ..
        "USER_PROMPT:\n" .. prompt .. "\n\n" ..
        "CALLBACK:\nPOST http://127.0.0.1:9/api/v1/openclaw/callback\nContent-Type: application/json\n" ..
        "Authorization: Bearer bench-callback-token\n\n" ..
        "RESPONSE_JSON_SCHEMA (example):\n" .. string.format(schema, rid) .. "\n"
    return '{"message": ' .. json_str(msg) .. ', "name": "auto-trader:analysis", "sessionKey": ' ..
        '"auto-trader:openclaw:' .. rid .. '", "wakeMode": "now"}'
end

function init(args)
    n = 0
    local rid_len = #string.format("%08x-0000-4000-8000-%012x", 0, 0)
    local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
    -- The whole request with a placeholder id of the real id's width, so
    -- Content-Length is right; then the placeholder's positions.
    local filler = string.rep("#", rid_len)
    local req = wrk.format("POST", nil, headers, render(filler))
    blen = #render(filler)
    pieces = {}
    local pos = 1
    while true do
        local s, e = req:find(filler, pos, true)
        if not s then break end
        table.insert(pieces, req:sub(pos, s - 1))
        pos = e + 1
    end
    table.insert(pieces, req:sub(pos))
    parts = {}
end

function request()
    n = n + 1
    local rid = string.format("%08x-0000-4000-8000-%012x", tid, n)
    for i = 1, #pieces - 1 do
        parts[2 * i - 1] = pieces[i]
        parts[2 * i] = rid
    end
    parts[2 * #pieces - 1] = pieces[#pieces]
    return table.concat(parts)
end

function done(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.timeout
    io.write(string.format("BENCH requests=%d errors=%d non2xx=%d rps=%.1f p50_us=%d p99_us=%d body_bytes=%d\n",
        summary.requests, errors, e.status, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), threads[1]:get("blen") or 0))
end
