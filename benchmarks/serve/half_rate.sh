#!/usr/bin/env bash
# keel serve's latency at half its peak rate: single-row infer, one run.
#
#   benchmarks/serve/half_rate.sh [--keel PATH] [--model FILE] [--rows FILE]
#       [--reps R] [--duration S] [--conns C] [--share F]
#
# Each rep measures the peak with wrk -t1 -cC (closed loop, default C 64),
# then finds the fewest connections (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) whose
# closed-loop rate reaches F (default 0.5) of that peak in a 2 s probe, and
# measures that load for the full duration. Prints both runs' rate, p50 and
# p99, then the medians. The engine is given a 1 ms idempotency TTL so that
# the bodies' repeating ids are scored, not replayed. A closed loop slows
# its sender when the server stalls, so its p99 is a lower bound on what an
# open-loop client at the same rate would see. (Pacing every connection with
# wrk's delay() was tried and dropped: its 1 ms timers fire together, and the
# synchronised bursts measure the client, not the server.)
set -euo pipefail

CONNS=64
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
SHARE=0.5
common_flags "$@"
set -- "${EXTRA[@]+"${EXTRA[@]}"}"
while (($#)); do
    case $1 in
        --share) SHARE=$2; shift 2 ;;
        *) echo "half_rate.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_tools wrk curl "$PY" "$KEEL"

make_work half-rate

"$PY" "$SHARED/bench/serve/make_requests.py" "$MODEL" "$ROWS" "$WORK/req" --name clf --batches 1 >/dev/null
scored_repo "$WORK/repo" clf "$MODEL"
PORT=$(free_port)
SERVE_ARGS=(--models "$WORK/repo")
start_serve "$PORT" "$WORK/serve.log"

run() {  # run CONNS SECONDS: prints "rps p50_us p99_us errors"
    local line
    line=$(wrk -t1 -c"$1" -d"${2}s" --timeout 10s --latency -s "$WORK/req/infer_1row.lua" \
        "http://127.0.0.1:$PORT/v2/models/clf/infer" | grep '^RESULT')
    "$PY" - "$line" <<'PYEOF'
import sys
kv = dict(p.split("=", 1) for p in sys.argv[1].split()[1:])
print(kv["rps"], kv["p50_us"], kv["p99_us"], int(kv["non200"]) + int(kv["connect_err"]) + int(kv["read_err"]) + int(kv["timeouts"]))
PYEOF
}

run "$CONNS" 2 >/dev/null  # warm-up
: >"$WORK/results"
for rep in $(seq "$REPS"); do
    read -r peak p50 p99 err < <(run "$CONNS" "$DURATION")
    echo "rep $rep  peak:  $peak req/s on $CONNS connections, p50 $p50 us, p99 $p99 us, errors $err"
    conns=32
    for c in 1 2 3 4 6 8 12 16 24 32; do
        read -r probe _ < <(run "$c" 2)
        if "$PY" -c "import sys; sys.exit(0 if $probe >= $SHARE * $peak else 1)"; then conns=$c; break; fi
    done
    read -r rps hp50 hp99 herr < <(run "$conns" "$DURATION")
    echo "rep $rep  load:  $rps req/s on $conns connections ($("$PY" -c "print(round(100 * $rps / $peak))")% of peak), p50 $hp50 us, p99 $hp99 us, errors $herr"
    echo "$peak $rps $hp50 $hp99" >>"$WORK/results"
done
"$PY" - "$WORK/results" <<'PYEOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
peak, rps, p50, p99 = (statistics.median(r[i] for r in rows) for i in range(4))
print("median: peak %.0f req/s; at the share %.0f req/s (%.0f%% of peak): p50 %.0f us, p99 %.0f us" % (
    peak, rps, 100 * rps / peak, p50, p99))
PYEOF
