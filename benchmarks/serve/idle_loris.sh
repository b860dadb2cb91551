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
# run, then the medians and the ratios B/A and C/A. One server process
# serves everything (its max_connections raised to fit, its header timeout
# cut to 3 s so that slow-loris connections churn); loopback only.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${KEEL_SHARED:-$ROOT/../shared}
KEEL=$ROOT/build/release/keel
MODEL=$SHARED/bench/serve/models/clf_d8_t500_f100.model.json
ROWS=$SHARED/bench/serve/models/clf_d8_t500_f100.rows.f32
IDLE=10000
LORIS=1000
REPS=3
DURATION=5
CONNS=64
while (($#)); do
    case $1 in
        --keel) KEEL=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --rows) ROWS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --loris) LORIS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "idle_loris.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
PY=/usr/bin/python3
for tool in wrk "$PY" "$KEEL"; do
    command -v "$tool" >/dev/null || { echo "idle_loris.sh: $tool not found" >&2; exit 2; }
done
need=$((IDLE > LORIS ? IDLE : LORIS))
need=$((need + CONNS + 100))
if (($(ulimit -n) < need)); then ulimit -n "$need" 2>/dev/null || {
    echo "idle_loris.sh: needs $need open files (ulimit -n is $(ulimit -n))" >&2; exit 2; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-idle-loris.XXXXXX")
SERVER_PID=
HOLDER_PID=
cleanup() {
    [[ -n $HOLDER_PID ]] && kill "$HOLDER_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$PY" "$SHARED/bench/serve/make_requests.py" "$MODEL" "$ROWS" "$WORK/req" --name clf --batches 1 >/dev/null
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# header_timeout 3 s (default 10): the slow-loris connections are cut with
# 408 and reopened during every run, so the churn is part of the figure.
printf '{"limits": {"max_connections": %d, "header_timeout_ms": 3000}}\n' "$need" >"$WORK/serve.json"
"$KEEL" serve --host 127.0.0.1 --http-port "$PORT" --grpc-port -1 --model clf="$MODEL" \
    --config "$WORK/serve.json" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    "$PY" - "$PORT" <<'EOF' && break || sleep 0.1
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:%s/v2/health/ready" % sys.argv[1], timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
done

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
unhold() {  # stops hold_conns.py; HELD is its summary line
    kill "$HOLDER_PID"
    wait "$HOLDER_PID" || true
    HOLDER_PID=
    HELD=$(sed -n '2p' "$WORK/hold.out")
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
"$PY" - "$WORK/results" "$IDLE" "$LORIS" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kind, rps, errors, p99 = line.split()
    runs.setdefault(kind, []).append((float(rps), int(errors), float(p99)))
def med(kind, i):
    return statistics.median(r[i] for r in runs[kind])
base = med("base", 0)
print("median req/s: none %.0f, %s idle %.0f (%.1f%% of none), %s slow-loris %.0f (%.1f%% of none)" % (
    base, sys.argv[2], med("idle", 0), 100 * med("idle", 0) / base, sys.argv[3], med("loris", 0),
    100 * med("loris", 0) / base))
print("median p99 us: none %.0f, idle %.0f, slow-loris %.0f; errors (non-200, socket, timeouts): %d" % (
    med("base", 2), med("idle", 2), med("loris", 2), sum(r[1] for v in runs.values() for r in v)))
EOF
