#!/usr/bin/env bash
# keel profile: statistics checked against Python, stdin equals file, a
# ragged row fails (or is skipped), --model types and score, no progress bar
# off a terminal. Usage: test_profile.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
D=$2/validate
LGB=$2/lightgbm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$KEEL" profile --input "$D/train.csv" --exclude label --output "$TMP/p.json" > "$TMP/out" 2> "$TMP/err"
grep -q "profiled 3000 rows, 4 features" "$TMP/out" || fail "summary: $(cat "$TMP/out")"
[ ! -s "$TMP/err" ] || fail "stderr not empty off a terminal (progress bar?): $(cat "$TMP/err")"

python3 - "$TMP/p.json" "$D/train.csv" <<'PY'
import csv, json, math, statistics, sys
p = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
assert p["format"] == "keel-profile" and p["rows"] == 3000, (p["format"], p["rows"])
assert [f["name"] for f in p["features"]] == ["age", "income", "score", "flag"]
for f in p["features"]:
    vals = [float(r[f["name"]]) for r in rows if r[f["name"]] != ""]
    vals32 = sorted(vals)
    assert f["count"] == 3000, f
    assert f["missing"] == 3000 - len(vals), (f["name"], f["missing"])
    assert math.isclose(f["mean"], statistics.fmean(vals), rel_tol=1e-6), (f["name"], f["mean"])
    assert math.isclose(f["std"], statistics.stdev(vals), rel_tol=1e-5), (f["name"], f["std"])
    assert math.isclose(f["min"], vals32[0], rel_tol=1e-6) and math.isclose(f["max"], vals32[-1], rel_tol=1e-6)
    for level, q in f["quantiles"]:
        exact = vals32[int(math.floor(level * (len(vals32) - 1)))]
        assert abs(q - exact) <= abs(exact) / 64 + 1e-9, (f["name"], level, q, exact)
    assert sum(f["histogram"]["counts"]) == len(vals), f["name"]
score = p["features"][2]
assert score["missing"] == 300 and abs(score["missing_rate"] - 0.1) < 1e-12, score["missing"]
flag = p["features"][3]
assert flag["histogram"]["counts"][0] + flag["histogram"]["counts"][1] == 3000 and len(flag["histogram"]["counts"]) == 2
print("ok  statistics match Python")
PY

# On a terminal (faked with script(1), when present) a progress bar is drawn.
if command -v script > /dev/null; then
  script -qec "'$KEEL' profile -i '$D/train.csv' -o '$TMP/tty.json'" /dev/null > "$TMP/tty" 2>&1 || true
  grep -q '100%  3000 rows' "$TMP/tty" || fail "no progress bar on a terminal: $(cat "$TMP/tty")"
fi

# One streaming pass from stdin gives the same profile as from the file.
"$KEEL" profile -i - --exclude label -o "$TMP/stdin.json" < "$D/train.csv" > /dev/null
cmp -s "$TMP/p.json" "$TMP/stdin.json" || fail "stdin profile differs from the file's"

# A ragged row: an error naming the line, no output file; --on-error skip goes on.
if "$KEEL" profile -i "$D/ragged.csv" -o "$TMP/r.json" 2> "$TMP/err"; then fail "ragged row accepted"; fi
grep -q "line 4: 3 fields, expected 5" "$TMP/err" || fail "ragged error: $(cat "$TMP/err")"
[ ! -e "$TMP/r.json" ] || fail "output written despite the error"
"$KEEL" profile -i "$D/ragged.csv" -o "$TMP/r.json" --on-error skip > /dev/null 2> "$TMP/err"
grep -q "skipped 1 bad rows of 4" "$TMP/err" || fail "skip summary: $(cat "$TMP/err")"
python3 -c "import json,sys; p=json.load(open(sys.argv[1])); assert p['rows'] == 3, p['rows']" "$TMP/r.json"

# With a model: its feature names pick the columns, its types are used, its score is profiled.
"$KEEL" profile -i "$LGB/categorical.input.csv" -m "$LGB/categorical.model.txt" -o "$TMP/m.json" > "$TMP/out"
grep -q "and the score" "$TMP/out" || fail "model summary: $(cat "$TMP/out")"
python3 - "$TMP/m.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
types = {f["name"]: f["type"] for f in p["features"]}
assert types["cat0"] == "categorical" and types["num0"] == "numeric", types
cat1 = next(f for f in p["features"] if f["name"] == "cat1")
assert len(cat1["categories"]) > 0 and sum(c for _, c in cat1["categories"]) + cat1["other_categories"] == cat1["count"] - cat1["missing"]
assert p["score"]["count"] == p["rows"] == 218
PY

# Errors: missing file, unknown excluded column, a column that is not numeric.
if "$KEEL" profile -i "$TMP/nope.csv" -o "$TMP/x.json" 2> "$TMP/err"; then fail "missing input accepted"; fi
grep -q "cannot open" "$TMP/err" || fail "missing input error: $(cat "$TMP/err")"
if "$KEEL" profile -i "$D/train.csv" --exclude nolabel -o "$TMP/x.json" 2> "$TMP/err"; then fail "bad --exclude accepted"; fi
grep -q "no column 'nolabel'" "$TMP/err" || fail "exclude error: $(cat "$TMP/err")"
printf 'a,b\n1,2\n3,x\n' > "$TMP/text.csv"
if "$KEEL" profile -i "$TMP/text.csv" -o "$TMP/x.json" 2> "$TMP/err"; then fail "text value accepted"; fi
grep -q "line 3" "$TMP/err" || fail "text value error: $(cat "$TMP/err")"
echo "test_profile.sh: all passed"
