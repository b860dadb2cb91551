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

# expect_close LABEL GOT WANT: queued; check_close compares every queued
# pair in one python3 run (its start-up is slow on a loaded machine). Same
# shape, and every value within 2e-7 relative (float32 output vs 9-digit
# double), so well within the 1e-5 contract.
: > "$TMP/pairs"
expect_close() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$TMP/pairs"; }
check_close() {
  python3 - "$TMP/pairs" <<'PY'
import sys
bad = 0
for entry in open(sys.argv[1]):
    label, got_path, want_path = entry.rstrip("\n").split("\t")
    def rows(path):
        return [l.rstrip("\n").split(",") for l in open(path)][1:]
    got, want = rows(got_path), rows(want_path)
    worst, err = 0.0, None
    if len(got) != len(want):
        err = f"{len(got)} rows, expected {len(want)}"
    for r, (g, w) in enumerate(zip(got, want)):
        if err:
            break
        if len(g) != len(w):
            err = f"row {r + 1}: {len(g)} values, expected {len(w)}"
            break
        for a, b in zip(map(float, g), map(float, w)):
            if abs(a - b) > 2e-7 * abs(b) + 1e-30:
                err = f"row {r + 1}: {a!r} vs {b!r}"
                break
            if b != 0:
                worst = max(worst, abs(a - b) / abs(b))
    if err:
        print(f"FAIL: {label}: {err}", file=sys.stderr)
        bad += 1
    else:
        print(f"ok  {label} (max rel {worst:.3g})")
sys.exit(1 if bad else 0)
PY
}

# Case names from cases.json, without a python3 start-up per file.
case_names() { grep -o '"name": *"[^"]*"' "$1" | sed 's/.*"\([^"]*\)"$/\1/'; }
cases=$(case_names "$LGB/cases.json")
for name in $cases; do
  for kind in pred raw; do
    flag=""
    [ "$kind" = raw ] && flag="--margin"
    if ! "$KEEL" score --model "$LGB/$name.model.txt" --input "$LGB/$name.input.csv" --output "$TMP/out.csv" $flag; then
      fail "$name $kind: keel score failed"
      continue
    fi
    cp "$TMP/out.csv" "$TMP/$name.$kind.out"
    expect_close "$name $kind" "$TMP/$name.$kind.out" "$LGB/$name.$kind.csv"
  done
done

# XGBoost (JSON and UBJSON) and linear models through the same command.
XGB=$DATA/xgboost
if [ -f "$XGB/cases.json" ]; then
  xcases=$(case_names "$XGB/cases.json")
  for name in $xcases; do
    for ext in json ubj; do
      for kind in pred margin; do
        flag=""
        [ "$kind" = margin ] && flag="--margin"
        if ! "$KEEL" score -m "$XGB/$name.$ext" -i "$XGB/$name.input.csv" -o "$TMP/out.csv" $flag; then
          fail "xgboost $name.$ext $kind: keel score failed"
          continue
        fi
        cp "$TMP/out.csv" "$TMP/xgb.$name.$ext.$kind.out"
        expect_close "xgboost $name.$ext $kind" "$TMP/xgb.$name.$ext.$kind.out" "$XGB/$name.$kind.csv"
      done
    done
  done
fi

# The early-stopping model at its best iteration.
best=$(grep -o '"best_iteration": *[0-9][0-9]*' "$LGB/cases.json" | grep -o '[0-9]*$')
"$KEEL" score -m "$LGB/early_stopping.model.txt" -i "$LGB/early_stopping.input.csv" --num-iterations "$best" > "$TMP/best.csv"
expect_close "early_stopping at iteration $best" "$TMP/best.csv" "$LGB/early_stopping.best.pred.csv"

# Output header and stdin input.
"$KEEL" score -m "$LGB/multiclass.model.txt" -i - < "$LGB/multiclass.input.csv" > "$TMP/multi.csv"
[ "$(head -1 "$TMP/multi.csv")" = "score_0,score_1,score_2" ] || fail "multiclass header"
"$KEEL" score -m "$LGB/binary.model.txt" -i "$LGB/binary.input.csv" --threads 2 --batch 7 > "$TMP/bin.csv"
[ "$(head -1 "$TMP/bin.csv")" = "score" ] || fail "binary header"
expect_close "batches of 7, 2 threads" "$TMP/bin.csv" "$LGB/binary.pred.csv"

# Columns are matched by name: a shuffled header order scores the same.
awk -F, -v OFS=, '{ for (i = NF; i > 0; --i) printf "%s%s", $i, (i > 1 ? OFS : "\n") }' \
  "$LGB/regression.input.csv" > "$TMP/shuffled.csv"
"$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/shuffled.csv" > "$TMP/shuffled.out"
expect_close "columns in reverse order" "$TMP/shuffled.out" "$LGB/regression.pred.csv"

# A model without names (LightGBM's Column_<i>) matches by position.
sed 's/^feature_names=.*/feature_names=Column_0 Column_1 Column_2 Column_3 Column_4 Column_5 Column_6 Column_7 Column_8 Column_9/' \
  "$LGB/regression.model.txt" > "$TMP/unnamed.txt"
"$KEEL" score -m "$TMP/unnamed.txt" -i "$LGB/regression.input.csv" > "$TMP/unnamed.out"
expect_close "columns by position" "$TMP/unnamed.out" "$LGB/regression.pred.csv"
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
expect_close "skip: the other rows" "$TMP/skip.out" "$TMP/skip.want"

# Bad model, bad option, missing input.
printf 'tree\nversion=v4\n' > "$TMP/broken.txt"
expect_error "broken model" "num_class" "$KEEL" score -m "$TMP/broken.txt" -i "$LGB/regression.input.csv"
expect_error "missing input" "cannot open" "$KEEL" score -m "$LGB/regression.model.txt" -i "$TMP/nope.csv"
expect_error "bad on-error" "on-error" "$KEEL" score -m "$LGB/regression.model.txt" -i "$LGB/regression.input.csv" --on-error maybe

check_close || fails=$((fails + 1))
if [ "$fails" -ne 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "all keel score checks passed"
