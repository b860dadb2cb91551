#!/usr/bin/env bash
# keel score on every LightGBM fixture (transformed and --margin) against
# LightGBM's own outputs, and its error handling.
# Usage: test_score.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
DATA=$2
LGB=$DATA/lightgbm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# compare GOT WANT: same shape; every value within 2e-7 relative (float32
# output vs 9-digit double) and so well within the 1e-5 contract.
compare() {
  python3 - "$1" "$2" <<'PY'
import math, sys
got = [l.rstrip("\n").split(",") for l in open(sys.argv[1])][1:]
want = [l.rstrip("\n").split(",") for l in open(sys.argv[2])][1:]
if len(got) != len(want):
    sys.exit(f"{len(got)} rows, expected {len(want)}")
worst = 0.0
for r, (g, w) in enumerate(zip(got, want)):
    if len(g) != len(w):
        sys.exit(f"row {r + 1}: {len(g)} values, expected {len(w)}")
    for a, b in zip(map(float, g), map(float, w)):
        err = abs(a - b)
        if err > 2e-7 * abs(b) + 1e-30:
            sys.exit(f"row {r + 1}: {a!r} vs {b!r}")
        if b != 0:
            worst = max(worst, err / abs(b))
print(f"max rel {worst:.3g}")
PY
}

cases=$(python3 -c "import json,sys; print(' '.join(c['name'] for c in json.load(open(sys.argv[1]))['cases']))" "$LGB/cases.json")
for name in $cases; do
  for kind in pred raw; do
    flag=""
    [ "$kind" = raw ] && flag="--margin"
    if ! "$KEEL" score --model "$LGB/$name.model.txt" --input "$LGB/$name.input.csv" --output "$TMP/out.csv" $flag; then
      fail "$name $kind: keel score failed"
      continue
    fi
    if msg=$(compare "$TMP/out.csv" "$LGB/$name.$kind.csv"); then echo "ok  $name $kind ($msg)"; else fail "$name $kind: $msg"; fi
  done
done

# The early-stopping model at its best iteration.
best=$(python3 -c "import json,sys; print([c for c in json.load(open(sys.argv[1]))['cases'] if c['name']=='early_stopping'][0]['best_iteration'])" "$LGB/cases.json")
"$KEEL" score -m "$LGB/early_stopping.model.txt" -i "$LGB/early_stopping.input.csv" --num-iterations "$best" > "$TMP/best.csv"
compare "$TMP/best.csv" "$LGB/early_stopping.best.pred.csv" >/dev/null || fail "early_stopping best iteration"

# Output header and stdin input.
"$KEEL" score -m "$LGB/multiclass.model.txt" -i - < "$LGB/multiclass.input.csv" > "$TMP/multi.csv"
[ "$(head -1 "$TMP/multi.csv")" = "score_0,score_1,score_2" ] || fail "multiclass header"
"$KEEL" score -m "$LGB/binary.model.txt" -i "$LGB/binary.input.csv" --threads 2 --batch 7 > "$TMP/bin.csv"
[ "$(head -1 "$TMP/bin.csv")" = "score" ] || fail "binary header"
compare "$TMP/bin.csv" "$LGB/binary.pred.csv" >/dev/null || fail "small batches"

# Columns are matched by name: a shuffled header order scores the same.
python3 - "$LGB/regression.input.csv" "$TMP/shuffled.csv" <<'PY'
import sys
rows = [l.rstrip("\n").split(",") for l in open(sys.argv[1])]
order = list(reversed(range(len(rows[0]))))
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(",".join(r[i] for i in order) + "\n")
PY
"$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/shuffled.csv" > "$TMP/shuffled.out"
compare "$TMP/shuffled.out" "$LGB/regression.pred.csv" >/dev/null || fail "shuffled columns"

# A model without names (LightGBM's Column_<i>) matches by position.
sed 's/^feature_names=.*/feature_names=Column_0 Column_1 Column_2 Column_3 Column_4 Column_5 Column_6 Column_7 Column_8 Column_9/' \
  "$LGB/regression.model.txt" > "$TMP/unnamed.txt"
"$KEEL" score -m "$TMP/unnamed.txt" -i "$LGB/regression.input.csv" > "$TMP/unnamed.out"
compare "$TMP/unnamed.out" "$LGB/regression.pred.csv" >/dev/null || fail "positional columns"
cut -d, -f1-9 "$LGB/regression.input.csv" > "$TMP/nine.csv"
if "$KEEL" score -m "$TMP/unnamed.txt" -i "$TMP/nine.csv" > /dev/null 2> "$TMP/err"; then fail "positional: short row accepted"; fi
grep -q "feature 9 is missing" "$TMP/err" || fail "positional: missing message: $(cat "$TMP/err")"

# expect_error NAME PATTERN -- command...: fails, and stderr matches PATTERN.
expect_error() {
  local what=$1 pattern=$2
  shift 2
  if "$@" > "$TMP/out" 2> "$TMP/err"; then fail "$what: exit status 0"; return; fi
  grep -q -- "$pattern" "$TMP/err" || fail "$what: stderr lacks '$pattern': $(cat "$TMP/err")"
}

# Missing column (by name).
cut -d, -f2- "$LGB/regression.input.csv" > "$TMP/missing.csv"
expect_error "missing column" "no column 'age'" "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/missing.csv"
# Extra column.
sed '1s/$/,zzz/; 2,$s/$/,1/' "$LGB/regression.input.csv" > "$TMP/extra.csv"
expect_error "extra column" "column 'zzz' is not a model feature" "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/extra.csv"

# A bad value and a ragged row: fail stops (no output file left), skip scores the others.
awk 'NR == 4 { $0 = "abc" substr($0, index($0, ",")) } NR == 7 { $0 = $0 ",1" } { print }' \
  "$LGB/regression.input.csv" > "$TMP/bad.csv"
expect_error "bad value, fail" "row 3: line 4, column 'age': 'abc' is not a number" \
  "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/bad.csv" -o "$TMP/bad.out"
[ ! -e "$TMP/bad.out" ] || fail "a failed run left its output file"
expect_error "bad value, explicit fail" "'abc' is not a number" \
  "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/bad.csv" --on-error fail
"$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/bad.csv" --on-error skip -o "$TMP/skip.out" 2> "$TMP/err" \
  || fail "skip: exit status"
grep -q "skipped .*line 4, column 'age'" "$TMP/err" || fail "skip: bad value not reported: $(cat "$TMP/err")"
grep -q "skipped .*line 7: 11 fields, expected 10" "$TMP/err" || fail "skip: ragged row not reported"
grep -q "skipped 2 of 138" "$TMP/err" || fail "skip: summary"
# The skipped rows are the 3rd and 6th data rows: drop them from the expectation.
awk 'NR != 4 && NR != 7' "$LGB/regression.pred.csv" > "$TMP/skip.want"
compare "$TMP/skip.out" "$TMP/skip.want" >/dev/null || fail "skip: the other rows"

# Bad model, bad option, missing input.
printf 'tree\nversion=v4\n' > "$TMP/broken.txt"
expect_error "broken model" "num_class" "$KEEL" score -m "$TMP/broken.txt" -i "$LGB/regression.input.csv"
expect_error "missing input" "cannot open" "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/nope.csv"
expect_error "bad on-error" "on-error" "$KEEL" score -m "$LGB/regression.model.txt" -i "$LGB/regression.input.csv" --on-error maybe

if [ "$fails" -ne 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "all keel score checks passed"
