#!/usr/bin/env bash
# bench/openai_proxy.sh: what the OpenAI-compatible pass-through adds.
#
# POST /v1/chat/completions with model "f/fake-model" through chela, next
# to the same body POSTed straight at the upstream, in the same run:
#  - wrk (Lua: the POST body, the Bearer token; --latency-grade p50/p99
#    from wrk's histogram) at concurrency 1 and BENCH_HIGH_CONC (50),
#    non-streaming and `stream: true`, direct and through chela back to
#    back so both sides see the same machine;
#  - time to first byte and to the first complete SSE event of a streamed
#    completion, over BENCH_TTFB_N requests on one keep-alive connection
#    (a small Python client: no process spawn or TCP handshake in the
#    timed path), median and p99.
# Two upstreams:
#  1. nginx serving canned answers recorded from the fake (`return 200
#     '<body>'`): chat completion JSON at /v1/chat/completions, the SSE
#     stream at /sse/v1/chat/completions.  chela's provider `f` points at
#     /sse/v1: chela streams upstream for streaming clients, and for the
#     others asks for one JSON body, which nginx's canned SSE ignores (chela
#     then reads the stream it got), so both phases decode the same SSE.
#     No Python in the path: chela's own cost shows most here.
#  2. the zero-delay Python fake (tests/e2e/fakes/llm.py --zero-delay),
#     provider `py`, for reference: Python spends 10x nginx's CPU per
#     answer, so it dominates the direct figures; the script prints which
#     side saturates at c=50 (BENCH_PYTHON=0 skips it).  This is the
#     upstream the issue's targets name ("the zero-delay fake").
# The targets are graded for both upstreams, each against both direct
# references below.
# For each upstream, the direct calls again from chela's core (chela idle):
# a client that crosses cores as chela must, where the graded direct
# phases share the upstream's core (BENCH_CROSS_CORE=0 skips it).
# Then, with nginx, a same-core diagnostic at c=1: wrk, nginx and chela all
# on core BENCH_SERVER_CPU, so no hop waits for an idle core to wake up;
# the added latency is then chela's own CPU work per request.
# CPU use of chela (all threads, the loop thread alone, and microseconds of
# CPU per request, which other load on the machine disturbs much less than
# rates) and of the upstream is printed per phase: it shows the bottleneck.
# chela's is also given less its busy polling (bench_polling_ms in
# bench/lib.sh): /proc counts polling as CPU while the loop only waits.
#
# Builds nothing (`make bench` builds first).  Not a test: it prints the
# figures, a verdict per target, and exits 0 whether targets are met or
# not.  Everything listens on 127.0.0.1; the EXIT trap stops every process
# started here.  chela is pinned to core BENCH_SERVER_CPU (0), wrk and the
# TTFB client to BENCH_CLIENT_CPU (1), the upstream to BENCH_UPSTREAM_CPU
# (the client core by default).
#
# Knobs (environment): CHELA_BIN, BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2),
# BENCH_HIGH_CONC (50), BENCH_TTFB_N (2000), BENCH_PYTHON (1),
# BENCH_SAME_CORE (1), BENCH_CROSS_CORE (1), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1),
# BENCH_UPSTREAM_CPU (the client core).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

BIN=${CHELA_BIN:-$REPO/build/chela}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
HIGH=${BENCH_HIGH_CONC:-50}
TTFB_N=${BENCH_TTFB_N:-2000}
PYTHON_PHASE=${BENCH_PYTHON:-1}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
UCPU=${BENCH_UPSTREAM_CPU:-$CCPU}
LOADCPU=$CCPU # the load generators' core; the same-core phase moves it
SAME_CORE=${BENCH_SAME_CORE:-1}
CROSS=${BENCH_CROSS_CORE:-1}
REF_PROXY=${BENCH_NGINX_PROXY:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-/usr/bin/wrk}
FAKE=$REPO/tests/e2e/fakes/llm.py
ME=bench/openai_proxy.sh

for tool in "$BIN" "$WRK" /usr/bin/taskset /usr/bin/curl "$PY" "$FAKE"; do
    [[ -e $tool ]] || { echo "$ME: $tool not found (make bench builds chela)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/chela-bench-oa.XXXXXX)
CHELA_PID=
FAKE_PID=
NGINX_PID=
PROXY_PID=
NG_PID=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    [[ -n $CHELA_PID ]] && { bench_stop "$CHELA_PID" 15 || true; }
    [[ -n $NGINX_PID ]] && { bench_stop "$NGINX_PID" 5 || true; }
    [[ -n $PROXY_PID ]] && { bench_stop "$PROXY_PID" 5 || true; }
    [[ -n $FAKE_PID ]] && { bench_stop "$FAKE_PID" 5 || true; }
    # an nginx interrupted while starting (stopping one twice is harmless)
    [[ -n $NG_PID ]] && { bench_stop "$NG_PID" 5 || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A R # results, printed at the end
R[load_before]=$(cut -d' ' -f1-3 /proc/loadavg)

# Request bodies: the client's, sent unchanged to chela and to the upstream.
BODY_FMT='{"model":"%s","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi."}],"max_tokens":16%s}'
STREAM_OPT=',"stream":true,"stream_options":{"include_usage":true}'
# shellcheck disable=SC2059
body() { printf "$BODY_FMT" "$1" "${2:+$STREAM_OPT}"; }

# ------------------------------------------------------------------ helper scripts

umask 077
# wrk: POST $BENCH_BODY (with Bearer $BENCH_TOKEN when set); done() prints
#   BENCH requests=N errors=E non2xx=X rps=R p50_us=A p99_us=B p999_us=C max_us=D
cat >"$TMP/post.lua" <<'EOF'
local body = os.getenv("BENCH_BODY") or "{}"
local token = os.getenv("BENCH_TOKEN") or ""
function init(args)
    local h = { ["Content-Type"] = "application/json" }
    if token ~= "" then h["Authorization"] = "Bearer " .. token end
    req = wrk.format("POST", nil, h, body)
end
function request() return req end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("BENCH requests=%d errors=%d non2xx=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
        summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), latency.max))
end
EOF

# TTFB: one keep-alive connection, N timed streamed requests after a
# warm-up; per request the time from the request's send to the first
# response byte, to the first complete `data:` event, and to the end of
# the response.  Prints one JSON object.
cat >"$TMP/ttfb.py" <<'EOF'
import json, math, socket, sys, time
from urllib.parse import urlsplit

url, body, n, warm, token = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
u = urlsplit(url)
head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
        "Accept: text/event-stream\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "") +
        f"Content-Length: {len(body)}\r\n\r\n").encode()
req = head + body
now = time.perf_counter_ns

def conn():
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def one(s):
    """-> (status, ttfb_ns, first_event_ns, total_ns, saw_done)"""
    raw = b""
    t0 = now()
    s.sendall(req)
    t_first = t_event = None
    hdr_end = -1
    body = b""
    pos = 0          # parse position in raw (after the header)
    clen = None
    chunked = False
    done = False
    while not done:
        data = s.recv(65536)
        t = now()
        if not data:
            raise ConnectionError("connection closed mid-response")
        if t_first is None:
            t_first = t
        raw += data
        if hdr_end < 0:
            hdr_end = raw.find(b"\r\n\r\n")
            if hdr_end < 0:
                continue
            lines = raw[:hdr_end].decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    clen = int(v)
                elif k == "transfer-encoding" and "chunked" in v.lower():
                    chunked = True
            pos = hdr_end + 4
        if chunked:
            while True:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(raw[pos:eol].split(b";")[0], 16)
                if size == 0:
                    if raw.find(b"\r\n", eol + 2) >= 0:  # no trailers expected
                        done = True
                    break
                if len(raw) < eol + 2 + size + 2:
                    break
                body += raw[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
        elif clen is not None:
            body = raw[pos:pos + clen]
            done = len(raw) - pos >= clen
        else:
            raise ValueError("response without a length")
        if t_event is None:
            i = body.find(b"data:")
            if i >= 0 and body.find(b"\n\n", i) >= 0:
                t_event = t
    t_end = now()
    return status, t_first - t0, (t_event or t_end) - t0, t_end - t0, b"data: [DONE]" in body

def pct(xs, p):
    """Nearest-rank percentile."""
    xs = sorted(xs)
    if not xs:
        return None
    return xs[max(0, min(len(xs), math.ceil(p / 100 * len(xs))) - 1)]

s = conn()
bad = 0
ttfb, ev, tot = [], [], []
for i in range(warm + n):
    try:
        st, a, b, c, ok = one(s)
    except (OSError, ValueError):
        bad += 1
        s.close()
        s = conn()
        continue
    if st != 200 or not ok:
        bad += 1
        continue
    if i >= warm:
        ttfb.append(a / 1e3); ev.append(b / 1e3); tot.append(c / 1e3)
out = {"n": len(ttfb), "bad": bad}
for name, xs in (("ttfb", ttfb), ("event", ev), ("total", tot)):
    out[name + "_p50"] = round(pct(xs, 50), 1) if xs else None
    out[name + "_p99"] = round(pct(xs, 99), 1) if xs else None
print(json.dumps(out))
EOF

# ------------------------------------------------------------------ processes

start_fake() {
    taskset -c "$UCPU" "$PY" "$FAKE" --provider openai --port 0 --zero-delay \
        >"$TMP/fake.out" 2>"$TMP/fake.err" </dev/null &
    FAKE_PID=$!
    local line
    line=$(bench_wait_line "$TMP/fake.out" '^fake-llm openai listening on http://' 10) ||
        { echo "$ME: the fake did not start:" >&2; cat "$TMP/fake.err" >&2; exit 1; }
    FAKE_URL=${line#fake-llm openai listening on }
}

# A body nginx can carry in a single-quoted `return` string.
nginx_safe() { [[ -s $1 ]] && ! grep -q "[\\\\'\$]" "$1"; }

# nginx_run NAME CPU PORT LOCATIONS [HTTP_EXTRA]: an nginx with one worker
# pinned to CPU, from the prefix $TMP/NAME, serving LOCATIONS (config text)
# on PORT, HTTP_EXTRA at the http{} level; waits until
# /v1/chat/completions answers 200.  Sets NG_PID (master) and
# NG_WORKER; returns 1 when it does not come up.
nginx_run() {
    local name=$1 cpu=$2 port=$3 locations=$4 extra=${5:-} dir=$TMP/$1 user_line="" mask=1 i
    mkdir -p "$dir/logs" "$dir/tmp"
    [[ $(id -u) == 0 ]] && user_line="user root root;"
    # worker_cpu_affinity takes a bit string: "1" for core 0, "10" for core 1.
    for ((i = 0; i < cpu; i++)); do mask+=0; done
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
worker_cpu_affinity $mask;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
$extra
    server {
        listen 127.0.0.1:$port;
$locations
    }
}
EOF
    taskset -c "$cpu" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        >"$dir/stdout" 2>&1 </dev/null &
    NG_PID=$!
    if ! bench_wait_200 "http://127.0.0.1:$port/v1/chat/completions" 100; then
        echo "$ME: nginx ($name) did not start:" >&2
        cat "$dir/stdout" "$dir/logs/error.log" >&2 2>/dev/null || true
        bench_stop "$NG_PID" 5 || true
        NG_PID=
        return 1
    fi
    NG_WORKER=$(pgrep -P "$NG_PID" | head -1 || true)
    NG_WORKER=${NG_WORKER:-$NG_PID}
}

# The upstream: canned answers, on the upstream core.
start_nginx() {
    local port
    port=$(bench_free_port)
    nginx_run nginx "$UCPU" "$port" "
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$(cat "$TMP/canned.json")';
        }
        location = /sse/v1/chat/completions {
            default_type text/event-stream;
            return 200 '$(cat "$TMP/canned.sse")';
        }" || return 1
    NGINX_PID=$NG_PID
    NGINX_WORKER=$NG_WORKER
    NGINX_URL=http://127.0.0.1:$port
}

# The reference proxy: nginx itself in chela's place (chela's core),
# proxy_pass with upstream keep-alive and no buffering.  It forwards bytes
# and converts nothing: the floor for one more HTTP hop on this machine
# with this pinning.
start_nginx_proxy() {
    local port
    port=$(bench_free_port)
    nginx_run nginx-proxy "$SCPU" "$port" "
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }" "
    upstream up {
        server 127.0.0.1:${NGINX_URL##*:};
        keepalive 64;
    }" || return 1
    PROXY_PID=$NG_PID
    PROXY_WORKER=$NG_WORKER
    PROXY_URL=http://127.0.0.1:$port
}

start_chela() {
    local state=$TMP/state providers
    mkdir -m 700 "$state"
    providers="py: { api: \"openai-completions\", baseUrl: \"$FAKE_URL/v1\", apiKey: \"sk-bench\","
    providers+=" models: [{ id: \"fake-model\", pricing: { input: 1, output: 2 } }] },"
    if [[ -n ${NGINX_URL:-} ]]; then
        providers+=" f: { api: \"openai-completions\", baseUrl: \"$NGINX_URL/sse/v1\", apiKey: \"sk-bench\","
        providers+=" models: [{ id: \"fake-model\", pricing: { input: 1, output: 2 } }] },"
    fi
    cat >"$state/chela.json5" <<EOF
// $ME: the OpenAI-compatible API on; no rate limit or keep-alive cap in
// the way of the load; access log off.
{
  log: { access: false, level: "warn" },
  gateway: { http: { endpoints: { chatCompletions: { enabled: true } } } },
  api: { rateLimit: { perToken: { maxRequests: 0 }, global: { maxRequests: 0 } } },
  limits: { keepaliveRequests: 1000000, maxConnections: 4096 },
  models: { providers: { $providers } },
}
EOF
    taskset -c "$SCPU" "$BIN" gateway --port 0 --bind 127.0.0.1 --state "$state" \
        >"$TMP/chela.out" 2>"$TMP/chela.err" </dev/null &
    CHELA_PID=$!
    local line
    line=$(bench_wait_line "$TMP/chela.out" '^chela listening on http://' 10) ||
        { echo "$ME: chela did not start; stderr:" >&2; cat "$TMP/chela.err" >&2; exit 1; }
    CHELA_URL=${line#chela listening on }
    TOKEN=$(awk '/^Admin token/ { print $NF }' "$TMP/chela.out")
    [[ $TOKEN == oc_tok_* ]] || { echo "$ME: no admin token banner" >&2; exit 1; }
}

# check NAME URL BODY [TOKEN]: one request answers 200 with a completion.
check() {
    local name=$1 url=$2 b=$3 tok=${4:-} code
    local -a h=(-H 'Content-Type: application/json')
    [[ -n $tok ]] && h+=(-H "Authorization: Bearer $tok")
    code=$(curl -s -o "$TMP/check.out" -w '%{http_code}' --noproxy '*' --max-time 10 "${h[@]}" -d "$b" "$url" || true)
    if [[ $code != 200 ]] || ! grep -q '"ok"' "$TMP/check.out"; then
        echo "$ME: $name: $url answered $code:" >&2
        head -c 600 "$TMP/check.out" >&2
        echo >&2
        tail -5 "$TMP/chela.err" >&2 2>/dev/null || true
        exit 1
    fi
}

ticks() { bench_cpu_ticks "$1"; }
# us_per_req TICKS0 TICKS1 REQUESTS: CPU microseconds per request, a figure
# that other load on the machine disturbs much less than rates do.
us_per_req() {
    awk -v d=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v n="${3:-0}" 'BEGIN { if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "n/a" }'
}
# pct_core TICKS0 TICKS1 NS: CPU use in % of one core.
pct_core() {
    awk -v d=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v ns="$3" 'BEGIN { printf "%.0f", 100 * (d / hz) / (ns / 1e9) }'
}

# run_wrk NAME URL BODY CONNS TOKEN UPSTREAM_PID [PROXY_PID]: warm up, then
# measure.  Fills R[NAME_rps|p50|p99|p999|err], the CPU use (% of one core)
# of the proxy (chela unless PROXY_PID is given: R[NAME_cpu]), of its main
# thread (chela's loop: R[NAME_lcpu]) and of the upstream (R[NAME_ucpu]),
# and CPU microseconds per request (R[NAME_cus], R[NAME_uus]).  For chela
# also the part that was not busy polling (R[NAME_wcpu], % of a core, and
# R[NAME_wus], us per request): polling burns the idle time of a gateway
# that waits on its upstream, so only this part says which side is busy.
run_wrk() {
    local name=$1 url=$2 b=$3 conns=$4 tok=$5 upid=$6 mid=${7:-$CHELA_PID} c0 c1 l0 l1 u0 u1 w0 w1 line
    local poll0=0 poll1=0
    bench_settle
    if ((WARMUP > 0)); then
        BENCH_BODY=$b BENCH_TOKEN=$tok taskset -c "$LOADCPU" "$WRK" -t1 -c"$conns" -d"${WARMUP}s" \
            -s "$TMP/post.lua" "$url" >/dev/null 2>&1 || true
    fi
    [[ $mid == "$CHELA_PID" ]] && poll0=$(bench_polling_ms "$CHELA_URL" "$TOKEN")
    c0=$(ticks "$mid")
    l0=$(ticks "$mid/task/$mid")
    u0=$(ticks "$upid")
    w0=$(date +%s%N)
    BENCH_BODY=$b BENCH_TOKEN=$tok taskset -c "$LOADCPU" "$WRK" -t1 -c"$conns" -d"${DURATION}s" --latency \
        -s "$TMP/post.lua" "$url" >"$TMP/wrk-$name.txt" 2>&1 || true
    w1=$(date +%s%N)
    c1=$(ticks "$mid")
    l1=$(ticks "$mid/task/$mid")
    u1=$(ticks "$upid")
    [[ $mid == "$CHELA_PID" ]] && poll1=$(bench_polling_ms "$CHELA_URL" "$TOKEN")
    line=$(grep -m1 '^BENCH ' "$TMP/wrk-$name.txt" || true)
    local k
    for k in rps p50_us p99_us p999_us; do
        R[${name}_${k%_us}]=$(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" <<<"$line")
    done
    R[${name}_err]=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(errors|non2xx)=/) { split($i, a, "="); n += a[2] } }
                         END { print n + 0 }' <<<"$line")
    R[${name}_cpu]=$(pct_core "$c0" "$c1" $((w1 - w0)))
    R[${name}_lcpu]=$(pct_core "$l0" "$l1" $((w1 - w0)))
    R[${name}_ucpu]=$(pct_core "$u0" "$u1" $((w1 - w0)))
    R[${name}_req]=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
    R[${name}_cus]=$(us_per_req "$c0" "$c1" "${R[${name}_req]}")
    R[${name}_uus]=$(us_per_req "$u0" "$u1" "${R[${name}_req]}")
    # The polling counters tick in ms; ticks in 1/CLK_TCK s: both as us.
    read -r "R[${name}_wcpu]" "R[${name}_wus]" < <(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
        -v p=$((poll1 - poll0)) -v ns=$((w1 - w0)) -v n="${R[${name}_req]:-0}" 'BEGIN {
            w = d / hz * 1e6 - p * 1000; if (w < 0) w = 0
            printf("%.0f %s\n", 100 * w / (ns / 1e3), (n > 0 ? sprintf("%.1f", w / n) : "n/a")) }')
    printf '== %-6s %9s req/s  p50 %6s us  p99 %7s us  p99.9 %7s us  err %s  CPU proxy %s%% (not polling %s%%, %s us/req; main thread %s%%, %s us/req) upstream %s%% (%s us/req)\n' \
        "$name" "${R[${name}_rps]:-?}" "${R[${name}_p50]:-?}" "${R[${name}_p99]:-?}" "${R[${name}_p999]:-?}" \
        "${R[${name}_err]}" "${R[${name}_cpu]}" "${R[${name}_wcpu]}" "${R[${name}_wus]}" "${R[${name}_lcpu]}" \
        "${R[${name}_cus]}" "${R[${name}_ucpu]}" "${R[${name}_uus]}"
    [[ -n $line ]] || { echo "   (!) wrk output:"; cat "$TMP/wrk-$name.txt"; }
    return 0
}

# run_ttfb NAME URL BODY TOKEN: fills R[NAME_ttfb50|ttfb99|ev50|ev99|n|bad].
run_ttfb() {
    local name=$1 url=$2 b=$3 tok=$4 out
    out=$(taskset -c "$LOADCPU" "$PY" "$TMP/ttfb.py" "$url" "$b" "$TTFB_N" 200 "$tok" 2>"$TMP/ttfb-$name.err" || true)
    if [[ $out != \{* ]]; then
        echo "== $name: the TTFB client failed:"
        cat "$TMP/ttfb-$name.err"
        return 0
    fi
    read -r 'R['"$name"'_ttfb50]' 'R['"$name"'_ttfb99]' 'R['"$name"'_ev50]' 'R['"$name"'_ev99]' \
        'R['"$name"'_n]' 'R['"$name"'_bad]' < <("$PY" -c '
import json, sys
o = json.loads(sys.argv[1])
print(*(o[k] for k in ("ttfb_p50", "ttfb_p99", "event_p50", "event_p99", "n", "bad")))' "$out")
    printf '== %-6s TTFB p50 %7s us  p99 %7s us; first event p50 %7s us  p99 %7s us (n=%s, failed %s)\n' \
        "$name" "${R[${name}_ttfb50]}" "${R[${name}_ttfb99]}" "${R[${name}_ev50]}" "${R[${name}_ev99]}" \
        "${R[${name}_n]}" "${R[${name}_bad]}"
}

# measure PREFIX DIRECT_URL DIRECT_SSE_URL MODEL UPSTREAM_PID: every phase
# for one upstream, each direct phase right before its gateway twin.
measure() {
    local p=$1 durl=$2 dsse=$3 model=$4 upid=$5 gurl="$CHELA_URL/v1/chat/completions" nb sb
    nb=$(body "$model")
    sb=$(body "$model" stream)
    check "$p direct" "$durl" "$nb"
    check "$p gateway" "$gurl" "$nb" "$TOKEN"
    run_wrk "${p}_d1" "$durl" "$nb" 1 "" "$upid"
    run_wrk "${p}_g1" "$gurl" "$nb" 1 "$TOKEN" "$upid"
    run_wrk "${p}_dh" "$durl" "$nb" "$HIGH" "" "$upid"
    run_wrk "${p}_gh" "$gurl" "$nb" "$HIGH" "$TOKEN" "$upid"
    run_wrk "${p}_sd1" "$dsse" "$sb" 1 "" "$upid"
    run_wrk "${p}_sg1" "$gurl" "$sb" 1 "$TOKEN" "$upid"
    run_wrk "${p}_sdh" "$dsse" "$sb" "$HIGH" "" "$upid"
    run_wrk "${p}_sgh" "$gurl" "$sb" "$HIGH" "$TOKEN" "$upid"
    run_ttfb "${p}_td" "$dsse" "$sb" ""
    run_ttfb "${p}_tg" "$gurl" "$sb" "$TOKEN"
    # The same direct calls from chela's core (chela idle): the client
    # then crosses cores to reach the upstream, as chela must, where the
    # direct phases above share the upstream's core.  A reference only:
    # the targets stay graded against the same-core direct figures.
    if ((CROSS)); then
        LOADCPU=$SCPU
        run_wrk "${p}_xd1" "$durl" "$nb" 1 "" "$upid"
        run_wrk "${p}_xdh" "$durl" "$nb" "$HIGH" "" "$upid"
        LOADCPU=$CCPU
    fi
}

# ------------------------------------------------------------------ run

start_fake
echo "fake: $FAKE_URL (pid $FAKE_PID, core $UCPU)"
# The canned answers nginx serves: the fake's own, recorded once.
curl -s --noproxy '*' -H 'Content-Type: application/json' -d "$(body f/fake-model)" \
    "$FAKE_URL/v1/chat/completions" >"$TMP/canned.json" || true
curl -s --noproxy '*' -H 'Content-Type: application/json' -d "$(body f/fake-model stream)" \
    "$FAKE_URL/v1/chat/completions" >"$TMP/canned.sse" || true

HAVE_NGINX=0
NGINX_URL=
if [[ -x $NGINX ]]; then
    if nginx_safe "$TMP/canned.json" && nginx_safe "$TMP/canned.sse" && grep -q '\[DONE\]' "$TMP/canned.sse"; then
        start_nginx && HAVE_NGINX=1
    else
        echo "$ME: the fake's answers cannot be canned for nginx; Python fake only" >&2
    fi
else
    echo "$ME: no nginx at $NGINX: Python fake only (apt-get install nginx-light)" >&2
fi
((HAVE_NGINX)) && echo "nginx: $NGINX_URL (worker pid $NGINX_WORKER, core $UCPU)"
HAVE_PROXY=0
if ((HAVE_NGINX && REF_PROXY)) && start_nginx_proxy; then
    HAVE_PROXY=1
    echo "nginx proxy_pass: $PROXY_URL (worker pid $PROXY_WORKER, core $SCPU)"
fi

start_chela
echo "chela: $CHELA_URL (pid $CHELA_PID, core $SCPU)"
R[idle_rss_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)

if ((HAVE_NGINX)); then
    echo "-- upstream: nginx, canned answers"
    measure n "$NGINX_URL/v1/chat/completions" "$NGINX_URL/sse/v1/chat/completions" f/fake-model "$NGINX_WORKER"
fi
if ((HAVE_PROXY)); then
    echo "-- reference: nginx proxy_pass in chela's place"
    nb=$(body f/fake-model)
    check "nginx proxy" "$PROXY_URL/v1/chat/completions" "$nb"
    run_wrk x_g1 "$PROXY_URL/v1/chat/completions" "$nb" 1 "" "$NGINX_WORKER" "$PROXY_WORKER"
    run_wrk x_gh "$PROXY_URL/v1/chat/completions" "$nb" "$HIGH" "" "$NGINX_WORKER" "$PROXY_WORKER"
    run_ttfb x_tg "$PROXY_URL/sse/v1/chat/completions" "$(body f/fake-model stream)" ""
fi
# Same-core diagnostic: wrk, nginx and chela all on core SCPU, so no
# request waits for an idle core to wake up (an inter-processor interrupt,
# costly on a VM).  The added latency at c=1 is then chela's own work.
if ((HAVE_NGINX && SAME_CORE)); then
    echo "-- same core: wrk, nginx and chela all on core $SCPU (c=1)"
    taskset -a -p -c "$SCPU" "$NGINX_WORKER" >/dev/null
    LOADCPU=$SCPU
    nb=$(body f/fake-model)
    run_wrk s_d1 "$NGINX_URL/v1/chat/completions" "$nb" 1 "" "$NGINX_WORKER"
    run_wrk s_g1 "$CHELA_URL/v1/chat/completions" "$nb" 1 "$TOKEN" "$NGINX_WORKER"
    ((HAVE_PROXY)) && run_wrk s_x1 "$PROXY_URL/v1/chat/completions" "$nb" 1 "" "$NGINX_WORKER" "$PROXY_WORKER"
    LOADCPU=$CCPU
    taskset -a -p -c "$UCPU" "$NGINX_WORKER" >/dev/null
fi
if ((PYTHON_PHASE)) || ! ((HAVE_NGINX)); then
    echo "-- upstream: the zero-delay Python fake"
    measure p "$FAKE_URL/v1/chat/completions" "$FAKE_URL/v1/chat/completions" py/fake-model "$FAKE_PID"
    HAVE_PY=1
else
    HAVE_PY=0
fi
R[load_rss_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)
bench_stop "$CHELA_PID" 15 || true
CHELA_PID=

# ------------------------------------------------------------------ summary

v() { echo "${R[$1]:-n/a}"; }
sub() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "None" || b == "None") print "n/a"; else printf "%+.0f", a - b }'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
verdict() {
    if awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a") exit 1
        sub(/x$/, "", a); a += 0; b += 0
        exit !((op == "<" && a < b) || (op == "<=" && a <= b) || (op == ">=" && a >= b)) }'
    then echo "met"; else echo "MISSED"; fi
}
row() { printf '%-38s %11s %11s %10s %11s %10s %7s\n' "$@"; }
cpu() { echo "$(v "${1}_cpu")/$(v "${1}_lcpu")/$(v "${1}_ucpu")"; }
# lat LABEL DIRECT VIA_CHELA VIA_PROXY KEY TARGET: a latency row
# (R[<phase>_<KEY>]); the added columns are differences.
lat() {
    local d=${R[${2}_$5]:-} g=${R[${3}_$5]:-} x=${R[${4}_$5]:-}
    row "$1" "${d:-n/a}" "${g:-n/a}" "$(sub "$g" "$d")" "${x:-}" "$([[ -n $x ]] && sub "$x" "$d")" "${6:-}"
}
# rate LABEL DIRECT VIA_CHELA VIA_PROXY TARGET: a requests/s row with ratios.
rate() {
    local d=${R[${2}_rps]:-} g=${R[${3}_rps]:-} x=${R[${4}_rps]:-}
    row "$1" "${d:-n/a}" "${g:-n/a}" "$(ratio "$g" "$d")" "${x:-}" "$([[ -n $x ]] && ratio "$x" "$d")" "${5:-}"
}

# table PREFIX TITLE: the rows for one upstream (n: nginx, p: Python fake);
# the nginx proxy_pass columns only exist for nginx.
table() {
    local p=$1 x=none s=none
    [[ $p == n ]] && x=x
    [[ $p == n ]] && s=s
    echo "$2"
    row "measure (latency in us)" "direct" "via chela" "added" "nginx proxy" "added" "target"
    row "--------------------------------------" "-----------" "-----------" "----------" "-----------" "----------" "-------"
    lat "c=1 p50" "${p}_d1" "${p}_g1" "${x}_g1" p50 "<=50"
    lat "c=1 p99" "${p}_d1" "${p}_g1" "${x}_g1" p99 "<=150"
    rate "c=1 requests/s" "${p}_d1" "${p}_g1" "${x}_g1"
    lat "c=$HIGH p50" "${p}_dh" "${p}_gh" "${x}_gh" p50 "<=50"
    lat "c=$HIGH p99" "${p}_dh" "${p}_gh" "${x}_gh" p99 "<=150"
    rate "c=$HIGH requests/s" "${p}_dh" "${p}_gh" "${x}_gh" ">=0.8x"
    if [[ -n ${R[${s}_g1_p50]:-} ]]; then
        lat "c=1 p50, all on core $SCPU" "${s}_d1" "${s}_g1" "${s}_x1" p50
        lat "c=1 p99, all on core $SCPU" "${s}_d1" "${s}_g1" "${s}_x1" p99
    fi
    if [[ -n ${R[${p}_xd1_p50]:-} ]]; then
        lat "c=1 p50, direct from core $SCPU" "${p}_xd1" "${p}_g1" none p50
        lat "c=1 p99, direct from core $SCPU" "${p}_xd1" "${p}_g1" none p99
        lat "c=$HIGH p50, direct from core $SCPU" "${p}_xdh" "${p}_gh" none p50
        lat "c=$HIGH p99, direct from core $SCPU" "${p}_xdh" "${p}_gh" none p99
        rate "c=$HIGH requests/s, direct from core $SCPU" "${p}_xdh" "${p}_gh" none
        row "upstream CPU us/request, c=$HIGH, from core $SCPU" "$(v "${p}_xdh_uus")" "" "" "" "" ""
    fi
    lat "stream c=1 p50" "${p}_sd1" "${p}_sg1" none p50
    lat "stream c=1 p99" "${p}_sd1" "${p}_sg1" none p99
    lat "stream c=$HIGH p50" "${p}_sdh" "${p}_sgh" none p50
    lat "stream c=$HIGH p99" "${p}_sdh" "${p}_sgh" none p99
    rate "stream c=$HIGH requests/s" "${p}_sdh" "${p}_sgh" none
    lat "stream TTFB p50" "${p}_td" "${p}_tg" "${x}_tg" ttfb50
    lat "stream TTFB p99" "${p}_td" "${p}_tg" "${x}_tg" ttfb99
    lat "stream first event p50" "${p}_td" "${p}_tg" "${x}_tg" ev50
    lat "stream first event p99" "${p}_td" "${p}_tg" "${x}_tg" ev99
    row "proxy CPU us/request, c=1" "" "$(v "${p}_g1_cus")" "" "${R[${x}_g1_cus]:-}" "" ""
    row "  less busy polling" "" "$(v "${p}_g1_wus")" "" "" "" ""
    row "proxy CPU us/request, c=$HIGH" "" "$(v "${p}_gh_cus")" "" "${R[${x}_gh_cus]:-}" "" ""
    row "  less busy polling" "" "$(v "${p}_gh_wus")" "" "" "" ""
    [[ -n ${R[${s}_g1_cus]:-} ]] &&
        row "proxy CPU us/request, c=1, one core" "" "$(v "${s}_g1_cus")" "" "${R[${s}_x1_cus]:-}" "" ""
    row "proxy CPU us/request, stream c=1" "" "$(v "${p}_sg1_cus")" "" "" "" ""
    row "proxy CPU us/request, stream c=$HIGH" "" "$(v "${p}_sgh_cus")" "" "" "" ""
    row "upstream CPU us/request, c=$HIGH" "$(v "${p}_dh_uus")" "$(v "${p}_gh_uus")" "" "${R[${x}_gh_uus]:-}" "" ""
    row "CPU % proxy/main thread/upstream, c=1" "-/-/$(v "${p}_d1_ucpu")" "$(cpu "${p}_g1")" "" \
        "$([[ $x == x ]] && cpu x_g1)" "" ""
    row "  c=$HIGH" "-/-/$(v "${p}_dh_ucpu")" "$(cpu "${p}_gh")" "" "$([[ $x == x ]] && cpu x_gh)" "" ""
    row "  stream c=$HIGH" "-/-/$(v "${p}_sdh_ucpu")" "$(cpu "${p}_sgh")" "" "" "" ""
    row "chela CPU % less busy polling, c=1/c=$HIGH" "" "$(v "${p}_g1_wcpu")/$(v "${p}_gh_wcpu")" "" "" "" ""
    row "wrk errors (non-2xx + socket)" "$(v "${p}_d1_err"),$(v "${p}_dh_err"),$(v "${p}_sd1_err"),$(v "${p}_sdh_err")" \
        "$(v "${p}_g1_err"),$(v "${p}_gh_err"),$(v "${p}_sg1_err"),$(v "${p}_sgh_err")" "" \
        "$([[ $x == x ]] && echo "$(v x_g1_err),$(v x_gh_err)")" "" ""
    echo
}

echo
echo "chela OpenAI-compatible proxy benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -m)"
echo "wrk -t1 -d${DURATION}s (warm-up ${WARMUP}s) on core $CCPU; chela on core $SCPU; upstream on core $UCPU;" \
    "TTFB: $TTFB_N streamed requests on one connection"
echo "load average before: ${R[load_before]}; after: $(cut -d' ' -f1-3 /proc/loadavg); $(bench_idle_note)"
echo "added = via the proxy - direct, per percentile (not a percentile of per-request differences);" \
    "nginx proxy = nginx proxy_pass in chela's place (core $SCPU), the floor for one more HTTP hop"
echo
((HAVE_NGINX)) && table n "upstream: nginx, canned answers (chela's provider f -> /sse/v1; direct JSON at /v1, SSE at /sse/v1)"
((HAVE_PY)) && table p "upstream: zero-delay Python fake (tests/e2e/fakes/llm.py; chela's provider py)"
echo "chela RSS: $(awk -v k="${R[idle_rss_kb]:-0}" 'BEGIN { printf "%.1f MB", k / 1024 }') idle," \
    "$(awk -v k="${R[load_rss_kb]:-0}" 'BEGIN { printf "%.1f MB", k / 1024 }') after the load"
echo
# grade TITLE PREFIX DIRECT: the issue's five targets for upstream PREFIX
# against the direct phases DIRECT (d: wrk beside the upstream on its
# core; xd: wrk on chela's core, crossing cores as chela does).
grade() {
    local t=$2 d=${2}_${3}1 dh=${2}_${3}h
    [[ -n ${R[${t}_g1_p50]:-} && -n ${R[${d}_p50]:-} ]] || return 0
    echo "targets ($1; issue 4):"
    echo "  added p50 <= 50 us, c=1:                $(verdict "$(sub "${R[${t}_g1_p50]:-}" "${R[${d}_p50]:-}")" "<=" 50)"
    echo "  added p99 <= 150 us, c=1:               $(verdict "$(sub "${R[${t}_g1_p99]:-}" "${R[${d}_p99]:-}")" "<=" 150)"
    echo "  added p50 <= 50 us, c=$HIGH:               $(verdict "$(sub "${R[${t}_gh_p50]:-}" "${R[${dh}_p50]:-}")" "<=" 50)"
    echo "  added p99 <= 150 us, c=$HIGH:              $(verdict "$(sub "${R[${t}_gh_p99]:-}" "${R[${dh}_p99]:-}")" "<=" 150)"
    echo "  throughput >= 0.8x direct, c=$HIGH:        $(verdict "$(ratio "${R[${t}_gh_rps]:-}" "${R[${dh}_rps]:-}")" ">=" 0.8)"
}
grade "upstream: nginx, direct beside it on core $UCPU" n d
grade "upstream: nginx, direct from chela's core $SCPU" n xd
grade "upstream: the zero-delay Python fake, direct beside it on core $UCPU" p d
grade "upstream: the zero-delay Python fake, direct from chela's core $SCPU" p xd
if [[ -n ${R[s_g1_p50]:-} ]]; then
    echo "diagnostic:"
    echo "  added p50 <= 50 us, c=1, all on one core: $(verdict "$(sub "${R[s_g1_p50]:-}" "${R[s_d1_p50]:-}")" "<=" 50)" \
        "(nginx proxy_pass: $(sub "${R[s_x1_p50]:-}" "${R[s_d1_p50]:-}") us)"
fi
if ((HAVE_PY)); then
    # Busy polling fills chela's idle time, so the comparison uses its CPU
    # less polling; the fake shares its core with wrk (the load core).
    if awk -v a="${R[p_gh_wcpu]:-0}" -v b="${R[p_gh_ucpu]:-0}" 'BEGIN { exit !(a + 0 >= b + 0) }'; then
        limit="chela"
    else
        limit="the fake (and wrk beside it on core $UCPU)"
    fi
    echo "note: the Python fake alone: $(v p_dh_rps) req/s at c=$HIGH, $(v p_dh_uus) us of CPU per request" \
        "(nginx: $(v n_dh_uus)); through chela $(v p_gh_uus).  Through chela at c=$HIGH: chela $(v p_gh_cpu)% of a core," \
        "$(v p_gh_wcpu)% less busy polling; the fake $(v p_gh_ucpu)%: the limit was $limit."
fi
exit 0
