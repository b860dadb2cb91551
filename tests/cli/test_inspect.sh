#!/usr/bin/env bash
# keel inspect: text and JSON ModelInfo of LightGBM fixtures, and errors.
# Usage: test_inspect.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
LGB=$2/lightgbm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$KEEL" inspect --model "$LGB/binary.model.txt" > "$TMP/text"
for want in "format:        lightgbm-text" "objective:     binary sigmoid:1" "booster:       gbdt" \
            "features:      30 (named)" "trees:         100" "mean_radius"; do
  grep -qF "$want" "$TMP/text" || { echo "FAIL: text lacks '$want'"; cat "$TMP/text"; exit 1; }
done

"$KEEL" inspect --model "$LGB/multiclassova.model.txt" --json > "$TMP/json"
python3 - "$TMP/json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "lightgbm-text", j["format"]
assert j["objective"] == "multiclassova num_class:4 sigmoid:1", j["objective"]
assert j["num_features"] == 12 and len(j["features"]) == 12
assert j["num_classes"] == 4 and j["num_outputs"] == 4 and j["num_trees"] == 160
assert j["features"][0] == {"name": "f0", "type": "numeric"}, j["features"][0]
assert j["max_depth"] > 0 and j["base_score"] == [0, 0, 0, 0]
PY

"$KEEL" inspect -m "$LGB/categorical.model.txt" --json | python3 -c "
import json, sys
j = json.load(sys.stdin)
assert [f['type'] for f in j['features']][:3] == ['categorical', 'numeric', 'categorical']"

"$KEEL" inspect -m "$LGB/rf.model.txt" | grep -q "booster:       rf"

# Bytes per layout; --no-single-row-copy drops the single-row copy and
# keeps the batch layout.
"$KEEL" inspect -m "$LGB/binary.model.txt" --json > "$TMP/full.json"
"$KEEL" inspect -m "$LGB/binary.model.txt" --json --no-single-row-copy > "$TMP/lean.json"
python3 - "$TMP/full.json" "$TMP/lean.json" <<'PY'
import json, sys
full, lean = (json.load(open(p))["tree_ensemble"] for p in sys.argv[1:3])
fb, lb = full["bytes"], lean["bytes"]
assert fb["spec"] > 0 and fb["total"] == sum(v for k, v in fb.items() if k != "total"), fb
batch = "heap" if full["layout"] == "heap" else "compact_simd" if fb["compact_simd"] else "compact"
assert fb[batch] > 0 and lb[batch] == fb[batch], (full, lean)
if full["layout"] == "heap" or fb["compact_simd"]:
    copy = "single_row_copy" if full["layout"] == "heap" else "compact"
    assert fb[copy] > 0 and lb[copy] == 0 and lb["total"] < fb["total"], (full, lean)
PY
"$KEEL" inspect -m "$LGB/binary.model.txt" | grep -q "^memory (bytes):.* total [0-9]" || { echo "FAIL: no memory line"; exit 1; }
# The binned kernel: either named on the kernel line or the reason it is not used.
"$KEEL" inspect -m "$LGB/binary.model.txt" | grep -Eq "^kernel: .*binned\)$|^binned kernel: no, .+" ||
  { echo "FAIL: no binned kernel line"; exit 1; }
python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['tree_ensemble']; assert isinstance(t['binned'], bool) and (t['binned'] or t['binning_note']), t" "$TMP/full.json"

# A corrupted model: non-zero exit, the message names tree and line.
sed 's/^left_child=1 3 -2 4 6 -4 -1$/left_child=1 3 -2 4 6 -4 -99/' "$LGB/binary.model.txt" > "$TMP/bad.txt"
if "$KEEL" inspect -m "$TMP/bad.txt" 2> "$TMP/err"; then echo "FAIL: corrupted model accepted"; exit 1; fi
grep -q "tree 0, line 19" "$TMP/err" || { echo "FAIL: $(cat "$TMP/err")"; exit 1; }
if "$KEEL" inspect -m "$TMP/nope.txt" 2> /dev/null; then echo "FAIL: missing file accepted"; exit 1; fi
echo "all keel inspect checks passed"
