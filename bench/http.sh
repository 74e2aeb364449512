#!/usr/bin/env bash
# bench/http.sh: HTTP throughput, latency, memory, start time and idle CPU
# of the chela gateway, next to nginx serving a fixed 200 on the same core.
#
# Builds nothing (`make bench` builds first).  chela and nginx are pinned
# to core 0 (`taskset -c 0`, nginx: 1 worker, worker_cpu_affinity), wrk to
# core 1.  Everything listens on 127.0.0.1 only; every process started here
# is stopped by the EXIT trap.  It prints a summary table and never fails
# on a missed target: benchmarks are not tests.  Access logging is OFF on
# both sides by default (chela `log.access: false`, nginx `access_log off`);
# BENCH_ACCESS_LOG=1 turns it on for both (to files in the temp dir).
#
# Knobs (environment): CHELA_BIN, BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2),
# BENCH_CONNECTIONS (256), BENCH_IDLE_SECONDS (60), BENCH_STARTS (20),
# BENCH_ACCESS_LOG (0), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

BIN=${CHELA_BIN:-$REPO/build/chela}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-256}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
STARTS=${BENCH_STARTS:-20}
ACCESS_LOG=${BENCH_ACCESS_LOG:-0}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-/usr/bin/wrk}

for tool in "$BIN" "$WRK" /usr/bin/taskset /usr/bin/curl "$PY"; do
    [[ -x $tool ]] || { echo "bench/http.sh: $tool not found (make bench builds chela)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/chela-bench.XXXXXX)
CHELA_PID=
NGINX_PID=
cleanup() {
    [[ -n $CHELA_PID ]] && bench_stop "$CHELA_PID" 15
    [[ -n $NGINX_PID ]] && bench_stop "$NGINX_PID" 10
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A R # results, printed at the end
R[load_before]=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ chela

STATE=$TMP/state
mkdir -m 700 "$STATE"
if [[ $ACCESS_LOG == 1 ]]; then access=true; else access=false; fi
cat >"$STATE/chela.json5" <<EOF
// bench/http.sh: no rate limit in the way of the load, access log $access.
{
  log: { access: $access },
  api: { rateLimit: { perToken: { maxRequests: 0 }, global: { maxRequests: 0 } } },
}
EOF

start_chela() {
    : >"$TMP/chela.out"
    taskset -c "$SCPU" "$BIN" gateway --port 0 --bind 127.0.0.1 --state "$STATE" \
        >"$TMP/chela.out" 2>"$TMP/chela.err" </dev/null &
    CHELA_PID=$!
    local line
    if ! line=$(bench_wait_line "$TMP/chela.out" '^chela listening on http://' 10); then
        echo "bench/http.sh: chela did not start; stderr:" >&2
        cat "$TMP/chela.err" >&2
        exit 1
    fi
    CHELA_URL=${line#chela listening on }
}

start_chela
sleep 1
R[chela_idle_rssanon_kb]=$(bench_status_kb "$CHELA_PID" RssAnon)
R[chela_idle_rss_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)

TOKEN=$("$BIN" token create --name bench-read --scope read --state "$STATE" |
    awk '/^Token: / { print $2 }')
[[ $TOKEN == oc_tok_* ]] || { echo "bench/http.sh: token create failed" >&2; exit 1; }
# A CLI-created token reaches the gateway's cache on its next 1 Hz sync;
# poll slowly: every refused try counts toward the failed-auth lockout
# (gateway.auth.rateLimit.maxAttempts, 10 by default).
sleep 1
bench_wait_200 "$CHELA_URL/health/detail" 6 "Authorization: Bearer $TOKEN" 0.4 ||
    { echo "bench/http.sh: the read token is not accepted" >&2; exit 1; }
umask 077
cat >"$TMP/auth.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF

# run_wrk NAME PID URL [LUA]: warm up, then measure; fills R[NAME_rps],
# R[NAME_p99] and R[NAME_cpu], the server's CPU use during the run in % of
# one core (PID's utime+stime; for nginx the worker), which tells whether
# the server or the one-core load generator was the bottleneck.
run_wrk() {
    local name=$1 pid=$2 url=$3 lua=${4:-} args=() t0 t1 w0 w1
    bench_settle
    [[ -n $lua ]] && args=(-s "$lua")
    if ((WARMUP > 0)); then
        taskset -c "$CCPU" "$WRK" -t1 -c"$CONNS" -d"${WARMUP}s" "${args[@]}" "$url" >/dev/null 2>&1 || true
    fi
    t0=$(bench_cpu_ticks "$pid")
    w0=$(date +%s%N)
    taskset -c "$CCPU" "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" "$url" \
        >"$TMP/wrk-$name.txt" 2>&1 || true
    w1=$(date +%s%N)
    t1=$(bench_cpu_ticks "$pid")
    R[${name}_cpu]=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v ns=$((w1 - w0)) \
        'BEGIN { printf "%.0f", 100 * (d / hz) / (ns / 1e9) }')
    R[${name}_rps]=$(bench_wrk_rps "$TMP/wrk-$name.txt")
    R[${name}_p99]=$(bench_wrk_p99_ms "$TMP/wrk-$name.txt")
    echo "== wrk $name: $url"
    sed -n '/Thread Stats/,$p' "$TMP/wrk-$name.txt" | grep -v '^ *[0-9]*% *[0-9.]*[a-z]*$' || true
    local errs
    errs=$(bench_wrk_errors "$TMP/wrk-$name.txt")
    [[ -n $errs ]] && echo "   (!) $errs"
    return 0
}

run_wrk chela_health "$CHELA_PID" "$CHELA_URL/health"
run_wrk chela_detail "$CHELA_PID" "$CHELA_URL/health/detail" "$TMP/auth.lua"
R[chela_load_rss_kb]=$(bench_status_kb "$CHELA_PID" VmRSS)
R[chela_load_rssanon_kb]=$(bench_status_kb "$CHELA_PID" RssAnon)

# Idle CPU after the load: wrk's connections are gone; only the 1 Hz tick.
sleep 1
t0=$(bench_cpu_ticks "$CHELA_PID")
c0=$(bench_ctxsw "$CHELA_PID")
echo "== idle CPU: sampling chela for ${IDLE_SECONDS}s"
sleep "$IDLE_SECONDS"
t1=$(bench_cpu_ticks "$CHELA_PID")
c1=$(bench_ctxsw "$CHELA_PID")
HZ=$(getconf CLK_TCK)
R[chela_idle_cpu_ticks]=$((t1 - t0))
R[chela_idle_cpu_pct]=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.3f", 100 * d / hz / s }')
R[chela_idle_wakeups]=$((c1 - c0))
R[chela_after_idle_rssanon_kb]=$(bench_status_kb "$CHELA_PID" RssAnon)

bench_stop "$CHELA_PID" 15
CHELA_PID=

# ------------------------------------------------------------------ start time

cat >"$TMP/starts.py" <<'EOF'
# Start chela N times on a warm state dir; time spawn -> first /health 200.
import os, signal, socket, statistics, subprocess, sys, time
bin_, state, n, scpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def once():
    p = port()
    argv = [bin_, "gateway", "--port", str(p), "--bind", "127.0.0.1", "--state", state]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    # Pin the child to the server core (no taskset exec in the timed path).
    try:
        os.sched_setaffinity(proc.pid, {int(scpu)})
    except OSError:
        pass
    took = None
    deadline = t0 + 5
    while time.perf_counter() < deadline and took is None:
        try:
            with socket.create_connection(("127.0.0.1", p), timeout=1) as s:
                s.sendall(req)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    took = time.perf_counter() - t0
        except OSError:
            pass
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill(); proc.wait()
    return took
once()  # the first start of a state dir creates it: not counted
xs = [once() for _ in range(n)]
ok = sorted(x * 1000 for x in xs if x is not None)
if not ok:
    print("nan nan nan 0"); sys.exit(0)
print(f"{statistics.median(ok):.2f} {ok[0]:.2f} {ok[-1]:.2f} {len(ok)}")
EOF
rm -f "$STATE/gateway.json"
read -r 'R[start_median_ms]' 'R[start_min_ms]' 'R[start_max_ms]' 'R[start_n]' < <(
    taskset -c "$CCPU" "$PY" "$TMP/starts.py" "$BIN" "$TMP/state-starts" "$STARTS" "$SCPU")
echo "== start to first /health 200: median ${R[start_median_ms]} ms over ${R[start_n]} starts"

# ------------------------------------------------------------------ nginx

HAVE_NGINX=0
if [[ -x $NGINX ]]; then
    HAVE_NGINX=1
    NPORT=$(bench_free_port)
    mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
    if [[ $ACCESS_LOG == 1 ]]; then alog="access_log $TMP/nginx/logs/access.log;"; else alog="access_log off;"; fi
    user_line=""
    [[ $(id -u) == 0 ]] && user_line="user root root;"
    # worker_cpu_affinity takes a bit string: "1" for core 0, "10" for core 1.
    mask=1
    for ((i = 0; i < SCPU; i++)); do mask+=0; done
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
    $alog
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
}
EOF
    taskset -c "$SCPU" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
        >"$TMP/nginx/stdout" 2>&1 </dev/null &
    NGINX_PID=$!
    if bench_wait_200 "http://127.0.0.1:$NPORT/health" 100; then
        sleep 1
        nworker=$(pgrep -P "$NGINX_PID" | head -1 || true)
        R[nginx_idle_rss_kb]=$(($(bench_status_kb "$NGINX_PID" VmRSS) + $(bench_status_kb "${nworker:-$NGINX_PID}" VmRSS)))
        run_wrk nginx_health "${nworker:-$NGINX_PID}" "http://127.0.0.1:$NPORT/health"
        run_wrk nginx_auth "${nworker:-$NGINX_PID}" "http://127.0.0.1:$NPORT/health/detail" "$TMP/auth.lua"
        R[nginx_load_rss_kb]=$(($(bench_status_kb "$NGINX_PID" VmRSS) + $(bench_status_kb "${nworker:-$NGINX_PID}" VmRSS)))
    else
        echo "bench/http.sh: nginx did not start:" >&2
        cat "$TMP/nginx/stdout" "$TMP/nginx/logs/error.log" >&2 2>/dev/null || true
        HAVE_NGINX=0
    fi
    bench_stop "$NGINX_PID" 10
    NGINX_PID=
fi

# ------------------------------------------------------------------ summary

# proj RPS CPU%: requests/s scaled to 100% of one server core.
proj() { awk -v r="${1:-}" -v c="${2:-}" 'BEGIN { if (r > 0 && c > 0) printf "%.0f", r * 100 / c; else print "n/a" }'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
mb() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
# verdict A OP B: "met" when the number A compares OP (<, <=, >=) to B.
verdict() {
    if awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a") exit 1
        a += 0; b += 0
        exit !((op == "<" && a < b) || (op == "<=" && a <= b) || (op == ">=" && a >= b)) }'
    then echo "met"; else echo "MISSED"; fi
}
v() { echo "${R[$1]:-n/a}"; }

echo
echo "chela HTTP benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -m)"
echo "wrk -t1 -c$CONNS -d${DURATION}s on core $CCPU; servers on core $SCPU; access log: $([[ $ACCESS_LOG == 1 ]] && echo on || echo off)"
echo "load average before: ${R[load_before]}; after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-38s %16s %16s %10s\n' "measure" "chela" "nginx" "target"
printf '%-38s %16s %16s %10s\n' "--------------------------------------" "----------------" "----------------" "----------"
printf '%-38s %16s %16s %10s\n' "GET /health requests/s" "$(v chela_health_rps)" "$(v nginx_health_rps)" ">=1.0x"
printf '%-38s %16s %16s %10s\n' "  ratio chela/nginx" "$(ratio "${R[chela_health_rps]:-}" "${R[nginx_health_rps]:-}")" "" ""
printf '%-38s %16s %16s %10s\n' "GET /health p99 (ms)" "$(v chela_health_p99)" "$(v nginx_health_p99)" "<10"
printf '%-38s %16s %16s %10s\n' "  server CPU during the run (% core)" "$(v chela_health_cpu)" "$(v nginx_health_cpu)" ""
printf '%-38s %16s %16s %10s\n' "  requests/s per server core (proj.)" "$(proj "${R[chela_health_rps]:-}" "${R[chela_health_cpu]:-}")" "$(proj "${R[nginx_health_rps]:-}" "${R[nginx_health_cpu]:-}")" ""
printf '%-38s %16s %16s %10s\n' "GET /health/detail+auth requests/s" "$(v chela_detail_rps)" "$(v nginx_auth_rps)" ""
printf '%-38s %16s %16s %10s\n' "  ratio chela/nginx" "$(ratio "${R[chela_detail_rps]:-}" "${R[nginx_auth_rps]:-}")" "" ""
printf '%-38s %16s %16s %10s\n' "GET /health/detail+auth p99 (ms)" "$(v chela_detail_p99)" "$(v nginx_auth_p99)" "<10"
printf '%-38s %16s %16s %10s\n' "  server CPU during the run (% core)" "$(v chela_detail_cpu)" "$(v nginx_auth_cpu)" ""
printf '%-38s %16s %16s %10s\n' "idle RssAnon after start" "$(mb "${R[chela_idle_rssanon_kb]}")" "" "<=4 MB"
printf '%-38s %16s %16s %10s\n' "RssAnon after load + idle" "$(mb "${R[chela_after_idle_rssanon_kb]}")" "" ""
printf '%-38s %16s %16s %10s\n' "total RSS idle (nginx: master+worker)" "$(mb "${R[chela_idle_rss_kb]}")" "$(mb "${R[nginx_idle_rss_kb]:-0}")" "<=nginx"
printf '%-38s %16s %16s %10s\n' "total RSS after load" "$(mb "${R[chela_load_rss_kb]}")" "$(mb "${R[nginx_load_rss_kb]:-0}")" "<=nginx"
printf '%-38s %16s %16s %10s\n' "start to first 200, median (ms)" "$(v start_median_ms)" "" "<=5"
printf '%-38s %16s %16s %10s\n' "  min / max over $(v start_n) starts (ms)" "$(v start_min_ms) / $(v start_max_ms)" "" ""
printf '%-38s %16s %16s %10s\n' "idle CPU over ${IDLE_SECONDS}s (% of a core)" "$(v chela_idle_cpu_pct)" "" "~0"
printf '%-38s %16s %16s %10s\n' "  CPU ticks / context switches" "$(v chela_idle_cpu_ticks) / $(v chela_idle_wakeups)" "" ""
echo
echo "targets:"
if ((HAVE_NGINX)); then
    echo "  /health rps >= 1.0x nginx:     $(verdict "${R[chela_health_rps]:-}" ">=" "${R[nginx_health_rps]:-}")"
    echo "  total RSS <= nginx (idle):     $(verdict "${R[chela_idle_rss_kb]:-}" "<=" "${R[nginx_idle_rss_kb]:-}")"
    echo "  total RSS <= nginx (loaded):   $(verdict "${R[chela_load_rss_kb]:-}" "<=" "${R[nginx_load_rss_kb]:-}")"
else
    echo "  (nginx not installed: no comparison)"
fi
echo "  p99 < 10 ms (/health):         $(verdict "${R[chela_health_p99]:-}" "<" 10)"
echo "  p99 < 10 ms (/health/detail):  $(verdict "${R[chela_detail_p99]:-}" "<" 10)"
echo "  idle RssAnon <= 4 MB:          $(verdict "${R[chela_idle_rssanon_kb]:-}" "<=" 4096)"
echo "  start to 200 <= 5 ms median:   $(verdict "${R[start_median_ms]:-}" "<=" 5)"
echo "  idle CPU ~0 (< 0.1%):          $(verdict "${R[chela_idle_cpu_pct]:-}" "<" 0.1)"
exit 0
