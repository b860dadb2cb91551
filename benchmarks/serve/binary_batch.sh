#!/usr/bin/env bash
# keel serve's rows/s on 256-row requests in Triton's binary-tensor form,
# against the same model's in-process batch rate, in one run.
#
#   benchmarks/serve/binary_batch.sh [--keel PATH] [--model FILE] [--rows FILE]
#       [--batch B] [--conns C] [--reps R] [--duration S]
#
# Defaults: build/release/keel, the 500-tree model of ../shared/bench/serve,
# --batch 256 --conns 16 --reps 3 --duration 5. Each rep runs, in turn:
#   in-process  `keel bench --batch B --threads T` for T = 1 and 2 (the
#               model's own batch call, to which score_batch adds about 10 ns
#               a row: bench_engine's EngineBatch - BareBatch);
#   REST binary wrk -t1 -cC POSTing B rows as one FP32 binary tensor
#               (Inference-Header-Content-Length; the scores asked back as
#               binary_data), the 1,024 rows of the model's rows file in
#               1024/B bodies.
# Prints every run, then medians and REST binary as a share of in-process.
set -euo pipefail

CONNS=16
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
BATCH=256
common_flags "$@"
set -- "${EXTRA[@]+"${EXTRA[@]}"}"
while (($#)); do
    case $1 in
        --batch) BATCH=$2; shift 2 ;;
        *) echo "binary_batch.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_tools wrk curl "$PY" "$KEEL"

make_work binary-batch

# The bodies (JSON header + raw little-endian floats), and the CSV for keel bench.
"$PY" - "$MODEL" "$ROWS" "$BATCH" "$WORK" <<'PYEOF'
import json, struct, sys
model, rows_file, batch, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = json.load(open(model))
f = int(m["learner"]["learner_model_param"]["num_feature"])
raw = open(rows_file, "rb").read()
n = len(raw) // (4 * f)
if n < batch:
    sys.exit("binary_batch.sh: %s holds %d rows, fewer than --batch %d" % (rows_file, n, batch))
header = json.dumps({"inputs": [{"name": "input-0", "shape": [batch, f], "datatype": "FP32",
                                 "parameters": {"binary_data_size": batch * f * 4}}],
                     "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}]},
                    separators=(",", ":")).encode()
paths = []
for b in range(n // batch):
    p = "%s/body%d.bin" % (work, b)
    open(p, "wb").write(header + raw[b * batch * f * 4:(b + 1) * batch * f * 4])
    paths.append(p)
open(work + "/bodies", "w").write(" ".join(paths))
open(work + "/hlen", "w").write(str(len(header)))
vals = struct.unpack("<%df" % (n * f), raw[:n * f * 4])
with open(work + "/rows.csv", "w") as out:
    out.write(",".join("f%d" % i for i in range(f)) + "\n")
    for r in range(n):
        out.write(",".join(repr(v) for v in vals[r * f:(r + 1) * f]) + "\n")
PYEOF
HLEN=$(cat "$WORK/hlen")
cat >"$WORK/binary.lua" <<LUAEOF
local bodies, idx = {}, 0
function init(args)
  for i, path in ipairs(args) do
    local f = assert(io.open(path, "rb")); bodies[i] = f:read("*a"); f:close()
  end
end
function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/octet-stream",
                                   ["Inference-Header-Content-Length"] = "$HLEN"}, bodies[idx])
end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f errors=%d p99_us=%d\n", summary.requests / secs,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(99)))
end
LUAEOF

PORT=$(free_port)
start_serve "$PORT" "$WORK/serve.log"
# One request checked first: 200, and the scores back as a binary tensor.
first=$(cut -d' ' -f1 "$WORK/bodies")
code=$(curl -s -o "$WORK/answer" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
    -H "Inference-Header-Content-Length: $HLEN" --data-binary @"$first" \
    "http://127.0.0.1:$PORT/v2/models/clf/infer")
if [[ $code != 200 ]]; then
    echo "binary_batch.sh: infer answered $code: $(head -c 300 "$WORK/answer")" >&2
    exit 1
fi

inproc() {  # rows/s of keel bench at $1 threads
    "$KEEL" bench --model "$MODEL" --input "$WORK/rows.csv" --batch "$BATCH" --threads "$1" --seconds "$DURATION" \
        --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(round(d["rows_per_second"]))'
}
rest() {
    # shellcheck disable=SC2046  # the body files, one argument each
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency -s "$WORK/binary.lua" \
        "http://127.0.0.1:$PORT/v2/models/clf/infer" -- $(cat "$WORK/bodies") | grep '^RESULT'
}
rest >/dev/null  # warm-up
: >"$WORK/results"
echo "batch $BATCH rows, $(basename "$MODEL"); REST: wrk -t1 -c$CONNS -d${DURATION}s"
for rep in $(seq "$REPS"); do
    a=$(inproc 1)
    b=$(inproc 2)
    line=$(rest)
    rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$line")
    rows=$("$PY" -c "print(round($rps * $BATCH))")
    echo "rep $rep  in-process: 1 thread $a rows/s, 2 threads $b; REST binary $rows rows/s ($line)"
    echo "$a $b $rows" >>"$WORK/results"
done
"$PY" - "$WORK/results" <<'PYEOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
one, two, rest = (statistics.median(r[i] for r in rows) for i in range(3))
print("median rows/s: in-process 1 thread %.0f, 2 threads %.0f; REST binary %.0f = %.0f%% of 1 thread, %.0f%% of 2" % (
    one, two, rest, 100 * rest / one, 100 * rest / two))
PYEOF
