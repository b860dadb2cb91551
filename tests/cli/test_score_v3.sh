#!/usr/bin/env bash
# keel score / inspect on models as people save them today: category strings
# mapped by the model's own vocabulary (XGBoost 3.1+ cats), --num-iterations
# N|best and its errors, multi-target outputs, float64 outputs of LightGBM
# linear leaves. Expected values worked out by hand (see cats.json: tree 0
# sends blue right (+1) else left (-1), missing color left; tree 1 adds 0.5
# when size < 10, else 2, missing size right).
# Usage: test_score_v3.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
V3=$2/xgboost/v3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
expect_out() {  # LABEL FILE WANT (the lines after the header)
  got=$(tail -n +2 "$2" | tr '\n' ' ')
  [ "$got" = "$3" ] || fail "$1: got '$got', want '$3'"
}

printf 'color,size\nred,5\nblue,20\ngreen,\n2,5\n,1\n' > "$TMP/strings.csv"
"$KEEL" score -m "$V3/cats.json" -i "$TMP/strings.csv" -o "$TMP/out.csv" || fail "strings: keel score failed"
expect_out "category strings" "$TMP/out.csv" "-0.5 3 1 1.5 -0.5 "

"$KEEL" score -m "$V3/cats.json" -i "$TMP/strings.csv" -o "$TMP/out.csv" --num-iterations best || fail "best failed"
expect_out "--num-iterations best (1 round)" "$TMP/out.csv" "-1 1 -1 1 -1 "
"$KEEL" score -m "$V3/cats.json" -i "$TMP/strings.csv" -o "$TMP/out.csv" --num-iterations 2 || fail "2 rounds failed"
expect_out "--num-iterations 2" "$TMP/out.csv" "-0.5 3 1 1.5 -0.5 "

# Errors, never a no-op: past the model, a bad value, an unseen category.
if "$KEEL" score -m "$V3/cats.json" -i "$TMP/strings.csv" -o "$TMP/out.csv" --num-iterations 3 2> "$TMP/err"; then
  fail "3 of 2 rounds accepted"
fi
grep -q "num_iterations 3 exceeds the 2 boosting rounds" "$TMP/err" || fail "past length: $(cat "$TMP/err")"
if "$KEEL" score -m "$V3/cats.json" -i "$TMP/strings.csv" --num-iterations soon 2> "$TMP/err"; then fail "soon accepted"; fi
grep -q "'soon' is neither a number nor 'best'" "$TMP/err" || fail "bad value: $(cat "$TMP/err")"
printf 'color,size\nred,5\npurple,5\n' > "$TMP/unseen.csv"
if "$KEEL" score -m "$V3/cats.json" -i "$TMP/unseen.csv" -o "$TMP/out.csv" 2> "$TMP/err"; then fail "unseen accepted"; fi
grep -q "row 2: line 3, column 'color': 'color': category 'purple' is not in the model's vocabulary of 3" "$TMP/err" ||
  fail "unseen: $(cat "$TMP/err")"
"$KEEL" score -m "$V3/cats.json" -i "$TMP/unseen.csv" -o "$TMP/out.csv" --on-error skip 2> /dev/null || fail "skip failed"
expect_out "unseen skipped" "$TMP/out.csv" "-0.5 "
if "$KEEL" score -m "$2/xgboost/gblinear.json" -i "$2/xgboost/gblinear.input.csv" --num-iterations 1 2> "$TMP/err"; then
  fail "gblinear limit accepted"
fi
grep -q "iteration limit cannot apply" "$TMP/err" || fail "gblinear: $(cat "$TMP/err")"

# Multi-target: two columns.
"$KEEL" score -m "$V3/multitarget.json" -i "$V3/input.csv" -o "$TMP/mt.csv" || fail "multitarget failed"
[ "$(head -1 "$TMP/mt.csv")" = "score_0,score_1" ] || fail "multitarget header: $(head -1 "$TMP/mt.csv")"

# LightGBM computes doubles: a linear leaf on 1e300 is 0.5 + 1.6e300, not inf.
printf 'tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\nobjective=regression\nfeature_names=x0\nfeature_infos=[-1e300:1e300]\ntree_sizes=1\n\nTree=0\nnum_leaves=1\nnum_cat=0\nleaf_value=7\nis_linear=1\nleaf_const=0.5\nnum_features=1\nleaf_features=0\nleaf_coeff=1.6\nshrinkage=1\n\n\nend of trees\n' > "$TMP/lin.txt"
printf 'x0\n1e300\n2\n\n' > "$TMP/lin.csv"
"$KEEL" score -m "$TMP/lin.txt" -i "$TMP/lin.csv" -o "$TMP/out.csv" || fail "linear leaf failed"
expect_out "float64 linear leaf" "$TMP/out.csv" "1.6000000000000001e+300 3.7000000000000002 7 "

# inspect: targets, iterations, best iteration, vocabulary sizes.
"$KEEL" inspect -m "$V3/cats.json" > "$TMP/inspect"
for want in "iterations:    2 (of 2 in the file)" "best iteration: 0 (0-based; --num-iterations best scores 1 rounds)" \
            "category strings not in a vocabulary: an error (XGBoost)"; do
  grep -qF "$want" "$TMP/inspect" || fail "inspect lacks '$want': $(cat "$TMP/inspect")"
done
grep -qE "^ +0  color +categorical +3$" "$TMP/inspect" || fail "inspect vocabulary size: $(cat "$TMP/inspect")"
"$KEEL" inspect -m "$V3/multitarget.json" --json | python3 -c "
import json, sys
j = json.load(sys.stdin)
assert j['num_targets'] == 2 and j['num_outputs'] == 2 and j['best_iteration'] == 4, j
assert j['num_iterations'] == 5 and j['iterations_in_file'] == 5, j" || fail "inspect --json multitarget"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all keel score v3 checks passed"
