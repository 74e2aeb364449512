#!/usr/bin/env bash
# bench/hooks.sh: durable /hooks/agent admission (issue #4 benchmarks).
#
# wrk posts auto_trader's request (bench/hooks_wrk.lua: a ~2 KB multi-line
# message with JSON inside, Bearer hooks token, a new sessionKey per
# request) to POST /hooks/agent.  Every 202 means the run's `queued` row is
# committed.  Then the gateway is stopped and the runs table is counted:
# every accepted hook must be there.  nginx's fixed-200 /health in the same
# run is the reference ratio (as in bench/http.sh).
#
# Runs are not what is measured, admission is: agents.defaults.maxConcurrent
# is 1 and queueSize is high, so nearly every accepted run waits queued
# (one at a time runs against the zero-delay fake LLM) and the load is the
# hook path itself: parse, auth, validation, the durable insert (group
# commit on the store's writer thread) and the 202.  Queued runs stay in
# memory until they run, so RSS grows with the count (reported).
#
# chela and nginx are pinned to core 0, wrk to core 1 (BENCH_SERVER_CPU,
# BENCH_CLIENT_CPU; BENCH_SERVER_CPU=all leaves chela unpinned so its store
# writer thread may use the second core).  Prints a table and never fails
# on a missed target: benchmarks are not tests.
#
# Knobs: CHELA_BIN, BENCH_DURATION (s, 5), BENCH_WARMUP (s, 1),
# BENCH_CONNECTIONS (64), BENCH_STORE_SYNC (normal|full), BENCH_SERVER_CPU (0),
# BENCH_CLIENT_CPU (1).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

BIN=${CHELA_BIN:-$REPO/build/chela}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNECTIONS:-64}
SYNC=${BENCH_STORE_SYNC:-normal}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-/usr/bin/wrk}
HOOK_TOKEN=bench-hook-token

for tool in "$BIN" "$WRK" /usr/bin/taskset /usr/bin/curl "$PY"; do
    [[ -x $tool ]] || { echo "bench/hooks.sh: $tool not found (make bench builds chela)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/chela-bench-hooks.XXXXXX)
CHELA_PID=
NGINX_PID=
FAKE_PID=
cleanup() {
    [[ -n $CHELA_PID ]] && bench_stop "$CHELA_PID" 30
    [[ -n $NGINX_PID ]] && bench_stop "$NGINX_PID" 10
    [[ -n $FAKE_PID ]] && bench_stop "$FAKE_PID" 5
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A R
R[load_before]=$(cut -d' ' -f1-3 /proc/loadavg)
# The server pinning prefix (an array, not a function: `func &` would fork a
# subshell and $! would be the subshell, not the server).
if [[ $SCPU == all ]]; then SPIN=(); NSPIN=(taskset -c 0); else SPIN=(taskset -c "$SCPU"); NSPIN=("${SPIN[@]}"); fi

# ------------------------------------------------------------------ fake LLM (zero delay)

FPORT=$(bench_free_port)
"$PY" "$REPO/tests/e2e/fakes/llm.py" --provider openai --port "$FPORT" --zero-delay \
    >"$TMP/fake.out" 2>"$TMP/fake.err" </dev/null &
FAKE_PID=$!
bench_wait_line "$TMP/fake.out" 'listening on' 10 >/dev/null ||
    { echo "bench/hooks.sh: the fake LLM did not start" >&2; cat "$TMP/fake.err" >&2; exit 1; }

# ------------------------------------------------------------------ chela

STATE=$TMP/state
mkdir -m 700 "$STATE"
cat >"$STATE/chela.json5" <<EOF
// bench/hooks.sh: hooks on, runs queue (maxConcurrent 1), no access log.
{
  log: { access: false },
  store: { sync: "$SYNC" },
  hooks: { enabled: true, token: "$HOOK_TOKEN" },
  models: { providers: { fake: { api: "openai-completions", baseUrl: "http://127.0.0.1:$FPORT/v1",
                                 apiKey: "sk-bench", models: [{ id: "fake-model" }] } } },
  agents: { defaults: { model: { primary: "fake/fake-model" }, maxConcurrent: 1, queueSize: 10000000 } },
  limits: { storeWriteQueue: 1000000 },
}
EOF

"${SPIN[@]}" "$BIN" gateway --port 0 --bind 127.0.0.1 --state "$STATE" \
    >"$TMP/chela.out" 2>"$TMP/chela.err" </dev/null &
CHELA_PID=$!
if ! line=$(bench_wait_line "$TMP/chela.out" '^chela listening on http://' 10); then
    echo "bench/hooks.sh: chela did not start; stderr:" >&2
    cat "$TMP/chela.err" >&2
    exit 1
fi
CHELA_URL=${line#chela listening on }
R[rss_idle_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)

# One request by hand: the route works and answers 202.
code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' -H "Authorization: Bearer $HOOK_TOKEN" \
    -H 'Content-Type: application/json' -d '{"message":"bench probe","sessionKey":"bench:probe"}' \
    "$CHELA_URL/hooks/agent" || true)
[[ $code == 202 ]] || { echo "bench/hooks.sh: probe hook answered $code" >&2; cat "$TMP/chela.err" >&2; exit 1; }

# wrk_hooks NAME SECONDS: one wrk run; fills R[NAME_*] from its BENCH line.
wrk_hooks() {
    local name=$1 secs=$2 t0 t1 w0 w1 out
    bench_settle
    out=$TMP/wrk-$name.txt
    t0=$(bench_cpu_ticks "$CHELA_PID")
    w0=$(date +%s%N)
    BENCH_TOKEN=$HOOK_TOKEN taskset -c "$CCPU" "$WRK" -t1 -c"$CONNS" -d"${secs}s" --latency \
        -s "$REPO/bench/hooks_wrk.lua" "$CHELA_URL/hooks/agent" >"$out" 2>&1 || true
    w1=$(date +%s%N)
    t1=$(bench_cpu_ticks "$CHELA_PID")
    R[${name}_cpu]=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v ns=$((w1 - w0)) \
        'BEGIN { printf "%.0f", 100 * (d / hz) / (ns / 1e9) }')
    local b
    b=$(grep -m1 '^BENCH ' "$out" || true)
    for kv in $b; do
        [[ $kv == *=* ]] && R[${name}_${kv%%=*}]=${kv#*=}
    done
    echo "== wrk $name (${secs}s, -c$CONNS): $b"
}

if ((WARMUP > 0)); then wrk_hooks warm "$WARMUP"; fi
wrk_hooks hooks "$DURATION"
R[rss_load_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)
R[rss_anon_kb]=$(bench_status_kb "$CHELA_PID" RssAnon)

# Accepted = wrk's completed responses minus non-2xx, over both runs, plus the probe.
acc=1
for n in warm hooks; do
    [[ -n ${R[${n}_requests]:-} ]] && acc=$((acc + R[${n}_requests] - R[${n}_non2xx]))
done
R[accepted]=$acc

# Stop (queued runs stay queued in the store: they would resume on the next start), then count.
t_stop0=$(date +%s%N)
bench_stop "$CHELA_PID" 60
CHELA_PID=
R[stop_ms]=$((($(date +%s%N) - t_stop0) / 1000000))
read -r 'R[stored]' 'R[stored_queued]' 'R[stored_ok]' < <("$PY" - "$STATE/chela.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda sql: db.execute(sql).fetchone()[0]
print(q("SELECT COUNT(*) FROM runs WHERE source = 'hook'"),
      q("SELECT COUNT(*) FROM runs WHERE source = 'hook' AND status IN ('queued', 'running')"),
      q("SELECT COUNT(*) FROM runs WHERE source = 'hook' AND status = 'ok'"))
EOF
)

# ------------------------------------------------------------------ nginx /health, same run

HAVE_NGINX=0
if [[ -x $NGINX ]]; then
    NPORT=$(bench_free_port)
    mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
    user_line=""
    [[ $(id -u) == 0 ]] && user_line="user root root;"
    mask=1
    if [[ $SCPU != all ]]; then for ((i = 0; i < SCPU; i++)); do mask+=0; done; fi
    cat >"$TMP/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
worker_cpu_affinity $mask;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$NPORT;
        location / { default_type application/json; return 200 '{"ok":true}'; }
    }
}
EOF
    "${NSPIN[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
        >"$TMP/nginx/stdout" 2>&1 </dev/null &
    NGINX_PID=$!
    if bench_wait_200 "http://127.0.0.1:$NPORT/health" 100; then
        HAVE_NGINX=1
        taskset -c "$CCPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$NPORT/health" \
            >"$TMP/wrk-nginx.txt" 2>&1 || true
        R[nginx_rps]=$(bench_wrk_rps "$TMP/wrk-nginx.txt")
        R[nginx_p99]=$(bench_wrk_p99_ms "$TMP/wrk-nginx.txt")
        echo "== wrk nginx /health: ${R[nginx_rps]} req/s"
    fi
    bench_stop "$NGINX_PID" 10
    NGINX_PID=
fi

# ------------------------------------------------------------------ summary

v() { echo "${R[$1]:-n/a}"; }
ms() { awk -v u="${1:-}" 'BEGIN { if (u == "") print "n/a"; else printf "%.2f", u / 1000 }'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
mb() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
ok=$(awk -v s="${R[stored]}" -v a="${R[accepted]}" 'BEGIN { print (s >= a) ? "yes" : "NO" }')
target=$(awk -v r="${R[hooks_rps]:-0}" 'BEGIN { print (r >= 15000) ? "met" : "MISSED" }')

echo
echo "chela hooks benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -m)"
echo "wrk -t1 -c$CONNS -d${DURATION}s on core $CCPU; chela/nginx on core(s) $SCPU; store.sync $SYNC"
echo "body $(v hooks_body_bytes) bytes; load average before: ${R[load_before]}; after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %16s\n' "POST /hooks/agent accepted/s (202, durable)" "$(v hooks_rps)"
printf '%-44s %16s\n' "  p50 / p99 latency (ms)" "$(ms "${R[hooks_p50_us]:-}") / $(ms "${R[hooks_p99_us]:-}")"
printf '%-44s %16s\n' "  non-2xx / socket errors" "$(v hooks_non2xx) / $(v hooks_errors)"
printf '%-44s %16s\n' "  chela CPU during the run (% of a core)" "$(v hooks_cpu)"
printf '%-44s %16s\n' "nginx GET /health req/s (same run)" "$(v nginx_rps)"
printf '%-44s %16s\n' "  ratio hooks/nginx" "$(ratio "${R[hooks_rps]:-}" "${R[nginx_rps]:-}")"
printf '%-44s %16s\n' "hooks accepted (all runs + probe)" "$(v accepted)"
printf '%-44s %16s\n' "hook runs in the store after stop" "$(v stored)"
printf '%-44s %16s\n' "  of which still queued / ok" "$(v stored_queued) / $(v stored_ok)"
printf '%-44s %16s\n' "every accepted run stored" "$ok"
printf '%-44s %16s\n' "RSS idle / after load" "$(mb "${R[rss_idle_kb]}") / $(mb "${R[rss_load_kb]}")"
printf '%-44s %16s\n' "SIGTERM to exit with the queue full (ms)" "$(v stop_ms)"
echo
echo "target >= 15000 accepted/s: $target"
exit 0
