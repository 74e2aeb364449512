#!/usr/bin/env bash
# bench/wakeup.sh: the cost of waking a thread on another core, sleeping
# versus polling (bench/wakeup.c), with no pause and with 100 and 500 us
# between round trips.  The figure behind gateway.busyPollMicros
# (docs/architecture.md, "Busy polling before a sleep"; docs/performance.md).
# Not a test: prints and exits 0.  Needs gcc and two CPUs; about 10 s.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cc -std=c17 -O2 -pthread -o "$TMP/wakeup" "$REPO/bench/wakeup.c" || { echo "wakeup.sh: cannot build bench/wakeup.c"; exit 0; }
echo "guest halt polling: $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a) ns;" \
    "cpuidle driver: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo n/a)"
for pause in 0 100 500; do
    timeout 60 "$TMP/wakeup" "$pause" || echo "wakeup.sh: run with pause $pause failed"
done
exit 0
