# bench/lib.sh: helpers shared by the bench/*.sh scripts (sourced, not run).
#
# Everything here talks to 127.0.0.1 only and every wait is bounded.  `make
# bench` runs every bench/*.sh with bash, this file included, so running it
# directly does nothing.
[[ "${BASH_SOURCE[0]}" == "$0" ]] && exit 0

PY=/usr/bin/python3

# A TCP port on 127.0.0.1 that was free a moment ago.
bench_free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_line FILE REGEX SECONDS: print the first line of FILE matching
# the extended REGEX, waiting at most SECONDS; returns 1 on timeout.
bench_wait_line() {
    local file=$1 re=$2 secs=$3 i line
    for ((i = 0; i < secs * 100; i++)); do
        line=$(grep -m1 -E "$re" "$file" 2>/dev/null || true)
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.01
    done
    return 1
}

# bench_wait_200 URL TRIES [HEADER] [INTERVAL]: poll until URL answers 200,
# at most TRIES times, INTERVAL seconds apart (default 0.05).
bench_wait_200() {
    local url=$1 tries=$2 hdr=${3:-} pause=${4:-0.05} i code
    for ((i = 0; i < tries; i++)); do
        if [[ -n $hdr ]]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' -H "$hdr" "$url" || true)
        else
            code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "$url" || true)
        fi
        [[ $code == 200 ]] && return 0
        sleep "$pause"
    done
    return 1
}

# bench_status_kb PID FIELD: a /proc/PID/status field in kB (VmRSS, RssAnon).
bench_status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# bench_cpu_ticks PID: utime + stime in clock ticks (fields 14 and 15; the
# command name in field 2 may contain spaces, so cut after the last ')').
bench_cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat") || { echo 0; return; }
    s=${s##*) }
    # After ')': field 3 is the first word, so utime (14) is word 12.
    awk '{ print $12 + $13 }' <<<"$s"
}

# bench_polling_ms URL TOKEN: milliseconds chela's loop and store writer
# have spent busy polling since start (/health/detail eventLoop.busyPoll
# and store.busyPoll pollingMs; 0 if unreadable).  /proc counts that as
# CPU use, so a phase whose gateway idles half the time still reads ~100%
# of a core: subtracting it tells the work from the waiting (which side of
# a proxy is the bottleneck).  The polls are timed in wall-clock time, so
# where pollers get preempted (more runnable threads than cores: unpinned
# on 2 cores at c=1) CPU less polling understates the work; pinned alone
# on its core (bench/openai_proxy.sh) the loop's polling is its CPU.
bench_polling_ms() {
    curl -s --noproxy '*' --max-time 5 -H "Authorization: Bearer $2" "$1/health/detail" 2>/dev/null |
        "$PY" -c 'import json, sys
try:
    d = json.load(sys.stdin)
    print(int(d["eventLoop"]["busyPoll"]["pollingMs"]) + int(d["store"]["busyPoll"]["pollingMs"]))
except Exception:
    print(0)'
}

# bench_settle: write back every dirty page before a measured phase, so the
# disk writes an earlier phase left behind (a soak's 100,000 turns leave
# hundreds of MB, which the kernel wrote back at 60-180 MB/s in vmstat)
# do not share the CPUs and the disk with this one.  The phase's own
# writes still count: they start from a clean page cache.
bench_settle() {
    sync
}

# bench_ctxsw PID: voluntary + involuntary context switches (wakeups).
bench_ctxsw() {
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }' "/proc/$1/status"
}

# bench_wrk_rps FILE / bench_wrk_p99_ms FILE: figures from wrk --latency output.
bench_wrk_rps() {
    awk '/^Requests\/sec:/ { print $2 }' "$1"
}
bench_wrk_p99_ms() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
        printf "%.2f\n", v }' "$1"
}
bench_wrk_errors() {
    awk '/Socket errors:/ { print } /Non-2xx or 3xx responses:/ { print }' "$1"
}

# bench_stop PID [SECONDS]: SIGTERM, wait (bounded), then SIGKILL.
bench_stop() {
    local pid=$1 secs=${2:-15} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < secs * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# bench_idle_note: how this machine's idle cores wake, for the report.  A
# message to a core that sleeps waits for it to wake; a VM guest's
# haltpoll cpuidle driver first polls for up to guest_halt_poll_ns (Linux's
# default 200000) before it halts, and a halted vCPU is woken through the
# hypervisor, tens of microseconds.  Every hop between processes on
# different cores pays that, so cross-core latency figures depend on it.
# Read only: the benchmarks never change it.
bench_idle_note() {
    local d=/sys/devices/system/cpu/cpuidle p=/sys/module/haltpoll/parameters/guest_halt_poll_ns
    printf 'cpuidle: %s/%s' "$(cat $d/current_driver 2>/dev/null || echo none)" \
        "$(cat $d/current_governor_ro 2>/dev/null || cat $d/current_governor 2>/dev/null || echo none)"
    [[ -r $p ]] && printf ', guest_halt_poll_ns %s' "$(cat $p)"
    echo
}
