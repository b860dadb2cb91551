#!/usr/bin/env bash
# keel serve's throughput with many idle or slow-loris connections open,
# against its own throughput without them, in one run.
#
#   benchmarks/serve/idle_loris.sh [--keel PATH] [--model FILE] [--rows FILE]
#       [--idle N] [--loris N] [--reps R] [--duration S] [--conns C]
#
# Defaults: build/release/keel, the 500-tree model of ../shared/bench/serve
# (single-row OIP bodies from its make_requests.py), --idle 10000 --loris 1000
# --reps 3 --duration 5 --conns 64. Each rep runs wrk -t1 -cC four times,
# A B A C: no extra connections (A), N idle keep-alive connections held by
# hold_conns.py (B), A again, N slow-loris connections dribbling a header
# byte a second and reopened when the server closes them (C). Prints each
# run (with the CPU the holder used), then the medians, and each B and C
# against the A just before it. One server process
# serves everything (its max_connections raised to fit, its header timeout
# cut to 3 s so that slow-loris connections churn, idempotency records kept
# 1 ms so that every request is scored); loopback only.
set -euo pipefail

CONNS=64
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
IDLE=10000
LORIS=1000
common_flags "$@"
set -- "${EXTRA[@]+"${EXTRA[@]}"}"
while (($#)); do
    case $1 in
        --idle) IDLE=$2; shift 2 ;;
        --loris) LORIS=$2; shift 2 ;;
        *) echo "idle_loris.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_tools wrk curl "$PY" "$KEEL"
need=$((IDLE > LORIS ? IDLE : LORIS))
need=$((need + CONNS + 100))
if (($(ulimit -n) < need)); then ulimit -n "$need" 2>/dev/null || {
    echo "idle_loris.sh: needs $need open files (ulimit -n is $(ulimit -n))" >&2; exit 2; }
fi

make_work idle-loris

"$PY" "$SHARED/bench/serve/make_requests.py" "$MODEL" "$ROWS" "$WORK/req" --name clf --batches 1 >/dev/null
PORT=$(free_port)
# header_timeout 3 s (default 10): the slow-loris connections are cut with
# 408 and reopened during every run, so the churn is part of the figure.
printf '{"limits": {"max_connections": %d, "header_timeout_ms": 3000}}\n' "$need" >"$WORK/serve.json"
scored_repo "$WORK/repo" clf "$MODEL"
SERVE_ARGS=(--models "$WORK/repo")
start_serve "$PORT" "$WORK/serve.log" --config "$WORK/serve.json"

run_wrk() {  # prints "rps non200 p99_us"
    local line
    line=$(wrk -t1 -c"$CONNS" -d"${1}s" --timeout 10s --latency -s "$WORK/req/infer_1row.lua" \
        "http://127.0.0.1:$PORT/v2/models/clf/infer" | grep '^RESULT')
    "$PY" - "$line" <<'EOF'
import sys
kv = dict(p.split("=", 1) for p in sys.argv[1].split()[1:])
print(kv["rps"], int(kv["non200"]) + int(kv["connect_err"]) + int(kv["read_err"]) + int(kv["timeouts"]), kv["p99_us"])
EOF
}

hold() {  # hold MODE N: starts hold_conns.py and waits until it holds N
    "$PY" "$HERE/hold_conns.py" 127.0.0.1 "$PORT" "$1" "$2" >"$WORK/hold.out" 2>&1 &
    HOLDER_PID=$!
    for _ in $(seq 600); do
        grep -q '^holding' "$WORK/hold.out" && return 0
        kill -0 "$HOLDER_PID" 2>/dev/null || { cat "$WORK/hold.out" >&2; exit 1; }
        sleep 0.1
    done
    echo "idle_loris.sh: hold_conns.py did not open $2 connections" >&2
    exit 1
}
unhold() {  # stops hold_conns.py; HELD is its summary line and the CPU it used
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$HOLDER_PID/stat")
    kill "$HOLDER_PID"
    wait "$HOLDER_PID" || true
    HOLDER_PID=
    HELD="$(sed -n '2p' "$WORK/hold.out"); its CPU $((ticks * 10)) ms"
}

run_wrk 2 >/dev/null  # warm-up
: >"$WORK/results"
echo "wrk -t1 -c$CONNS -d${DURATION}s, single-row infer, $(basename "$MODEL")"
for rep in $(seq "$REPS"); do
    r=$(run_wrk "$DURATION"); echo "base $r" >>"$WORK/results"; echo "rep $rep  none:        $r (req/s errors p99_us)"
    hold idle "$IDLE"
    r=$(run_wrk "$DURATION"); echo "idle $r" >>"$WORK/results"; unhold; echo "rep $rep  $IDLE idle:  $r   [$HELD]"
    r=$(run_wrk "$DURATION"); echo "base $r" >>"$WORK/results"; echo "rep $rep  none:        $r"
    hold loris "$LORIS"
    sleep 1  # the first dribble
    r=$(run_wrk "$DURATION"); echo "loris $r" >>"$WORK/results"; unhold; echo "rep $rep  $LORIS loris: $r   [$HELD]"
done
"$PY" - "$WORK/results" "$IDLE" "$LORIS" <<'PYEOF'
import statistics, sys
runs, pairs, last_base = {}, {"idle": [], "loris": []}, None
for line in open(sys.argv[1]):
    kind, rps, errors, p99 = line.split()
    runs.setdefault(kind, []).append((float(rps), int(errors), float(p99)))
    if kind == "base":
        last_base = float(rps)
    else:
        pairs[kind].append(float(rps) / last_base)  # against the run just before it
def med(kind, i):
    return statistics.median(r[i] for r in runs[kind])
print("median req/s: none %.0f, %s idle %.0f, %s slow-loris %.0f" % (
    med("base", 0), sys.argv[2], med("idle", 0), sys.argv[3], med("loris", 0)))
print("each against the run just before it: idle %s, slow-loris %s; medians %.1f%% and %.1f%%" % (
    " ".join("%.0f%%" % (100 * r) for r in pairs["idle"]), " ".join("%.0f%%" % (100 * r) for r in pairs["loris"]),
    100 * statistics.median(pairs["idle"]), 100 * statistics.median(pairs["loris"])))
print("median p99 us: none %.0f, idle %.0f, slow-loris %.0f; errors (non-200, socket, timeouts): %d" % (
    med("base", 2), med("idle", 2), med("loris", 2), sum(r[1] for v in runs.values() for r in v)))
PYEOF
