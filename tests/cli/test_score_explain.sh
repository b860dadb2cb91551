#!/usr/bin/env bash
# keel score --contribs / --leaf / --reason-codes against the training
# libraries' own explanations (XGBoost 1.7.4 pred_contribs and pred_leaf,
# LightGBM's leaf indices), and its errors for models that cannot explain.
# Usage: test_score_explain.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
DATA=$2
XGB=$DATA/xgboost
LGB=$DATA/lightgbm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# Jobs for the one python3 run at the end: KIND<TAB>LABEL<TAB>GOT<TAB>WANT<TAB>INPUT.
: > "$TMP/jobs"
job() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$TMP/jobs"; }
case_names() { grep -o '"name": *"[^"]*"' "$1" | sed 's/.*"\([^"]*\)"$/\1/'; }

# XGBoost: every tree case, JSON and UBJSON; contributions with the margin
# (each block must sum to it), leaves, and reason codes.
for name in $(case_names "$XGB/cases.json"); do
  [ -f "$XGB/$name.contribs.csv" ] || continue
  for ext in json ubj; do
    got=$TMP/$name.$ext.csv
    if ! "$KEEL" score --model "$XGB/$name.$ext" --input "$XGB/$name.explain.input.csv" --output "$got" \
        --margin --contribs --leaf --reason-codes 3 --batch 7; then
      fail "$name.$ext: keel score --contribs --leaf exited non-zero"
      continue
    fi
    job contribs "$name.$ext" "$got" "$XGB/$name.contribs.csv" "$XGB/$name.explain.input.csv"
    job leaf "$name.$ext" "$got" "$XGB/$name.leaf.csv" -
    job reasons "$name.$ext" "$got" "$XGB/$name.contribs.csv" "$XGB/$name.explain.input.csv"
  done
  # Only the codes pushing the score up.
  got=$TMP/$name.up.csv
  if "$KEEL" score --model "$XGB/$name.json" --input "$XGB/$name.explain.input.csv" --output "$got" \
      --reason-codes 4 --reason-mode up; then
    job reasons_up "$name" "$got" "$XGB/$name.contribs.csv" "$XGB/$name.explain.input.csv"
  else
    fail "$name: --reason-mode up exited non-zero"
  fi
done

# LightGBM leaf indices (float64 rows, as keel score reads them).
for name in $(case_names "$LGB/cases.json"); do
  [ -f "$LGB/$name.leaf.csv" ] || continue
  got=$TMP/lgb_$name.csv
  if "$KEEL" score --model "$LGB/$name.model.txt" --input "$LGB/$name.input.csv" --output "$got" --leaf; then
    job leaf "lightgbm $name" "$got" "$LGB/$name.leaf.csv" -
  else
    fail "lightgbm $name: keel score --leaf exited non-zero"
  fi
done

python3 - "$TMP/jobs" <<'PY' || fails=$((fails + 1))
import csv, math, sys

def table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]

def num(s):
    return math.nan if s == "" else float(s)

def close(a, b):
    return abs(a - b) <= 1e-5 or abs(a - b) <= 1e-5 * abs(b)

bad = 0
def report(label, err, extra=""):
    global bad
    if err:
        print(f"FAIL: {label}: {err}", file=sys.stderr)
        bad += 1
    else:
        print(f"ok  {label}{extra}")

def blocks(want_head):
    # Column groups of the fixture: one per margin output, bias last.
    bias = [i for i, h in enumerate(want_head) if h == "bias" or (h.startswith("c") and h.endswith("_bias"))]
    start, out = 0, []
    for b in bias:
        out.append((start, b + 1))
        start = b + 1
    return out

for entry in open(sys.argv[1]):
    kind, label, got_path, want_path, in_path = entry.rstrip("\n").split("\t")
    ghead, grows = table(got_path)
    whead, wrows = table(want_path)
    label = f"{kind} {label}"
    err = None
    if len(grows) != len(wrows):
        report(label, f"{len(grows)} rows, expected {len(wrows)}")
        continue
    if kind in ("contribs", "leaf"):
        missing = [h for h in whead if h not in ghead]
        if missing:
            report(label, f"no output column {missing[0]!r}")
            continue
        col = [ghead.index(h) for h in whead]
        worst = 0.0
        for r, (g, w) in enumerate(zip(grows, wrows)):
            for c, h in zip(col, whead):
                a, b = num(g[c]), num(w[whead.index(h)])
                ok = (a == b) if kind == "leaf" else close(a, b)
                if not ok:
                    err = f"row {r + 1} column {h}: {g[c]} vs {w[whead.index(h)]}"
                    break
                if kind == "contribs":
                    worst = max(worst, abs(a - b))
            if err:
                break
        if kind == "contribs" and not err:
            # Efficiency: each block sums to its margin (the score columns, --margin).
            scores = [i for i, h in enumerate(ghead) if h == "score" or h.startswith("score_")]
            bl = blocks(whead)
            for r, g in enumerate(grows):
                for k, (s, e) in enumerate(bl):
                    total = sum(num(g[col[i]]) for i in range(s, e))
                    margin = num(g[scores[k]])
                    if abs(total - margin) > 1e-4 * max(1.0, abs(margin)):
                        err = f"row {r + 1} output {k}: contributions sum to {total}, margin {margin}"
                        break
                if err:
                    break
        report(label, err, f" (max abs diff {worst:.2g})" if kind == "contribs" else "")
        continue
    # Reason codes, against XGBoost's contributions and the input row.
    ihead, irows = table(in_path)
    bl = blocks(whead)
    k_codes = 3 if kind == "reasons" else 4
    up = kind == "reasons_up"
    for r, (g, w) in enumerate(zip(grows, wrows)):
        for k, (s, e) in enumerate(bl):
            pre = f"c{k}_" if len(bl) > 1 else ""
            contrib = {}  # feature name -> XGBoost's contribution
            for i in range(s, e - 1):
                contrib[whead[i][len(pre):]] = float(w[i])
            named = []
            for i in range(1, k_codes + 1):
                c = ghead.index(f"{pre}reason_{i}")
                name, value, cval = g[c], g[c + 1], g[c + 2]
                if name == "":
                    named.append(None)
                    continue
                if name not in contrib:
                    err = f"row {r + 1}: reason {i} names unknown feature {name!r}"
                    break
                if not close(float(cval), contrib[name]):
                    err = f"row {r + 1}: reason {i} {name} contribution {cval}, XGBoost {contrib[name]}"
                    break
                x = irows[r][ihead.index(name)]
                if (value == "") != (x == "") or (value != "" and float(value) != float(x)):
                    err = f"row {r + 1}: reason {i} {name} value {value!r}, input {x!r}"
                    break
                if up and not float(cval) > 0:
                    err = f"row {r + 1}: reason {i} {name} pushes down ({cval}) in up mode"
                    break
                named.append((name, float(cval)))
            if err:
                break
            key = (lambda v: v) if up else abs
            got = [n for n in named if n]
            if any(named[i] is None and named[i + 1] is not None for i in range(len(named) - 1)):
                err = f"row {r + 1}: an empty reason before a filled one"
            for a, b in zip(got, got[1:]):
                if key(a[1]) < key(b[1]):
                    err = f"row {r + 1}: reasons out of order: {a} before {b}"
            # Nothing left out beats the last code given (within the 1e-5 tolerance).
            chosen = {n for n, _ in got}
            rest = [key(v) for n, v in contrib.items() if n not in chosen and (v > 0 if up else v != 0)]
            floor = key(got[-1][1]) if len(got) == k_codes else 0.0
            if rest and len(got) < k_codes and max(rest) > 1e-5:
                err = f"row {r + 1}: only {len(got)} reasons but {len(rest)} more features qualify"
            elif rest and max(rest) > floor + 1e-5 and len(got) == k_codes:
                err = f"row {r + 1}: a feature with {max(rest)} left out, last reason {floor}"
            if err:
                break
        if err:
            break
    report(label, err)
sys.exit(1 if bad else 0)
PY

# Errors: clear, naming the model and the reason, exit 1, no output file.
expect_error() {  # LABEL WANT_TEXT ARGS...
  local label=$1 want=$2
  shift 2
  rm -f "$TMP/err.csv"
  set +e
  "$KEEL" score "$@" --output "$TMP/err.csv" 2> "$TMP/stderr"
  local rc=$?
  set -e
  if [ $rc -ne 1 ]; then fail "$label: exit code $rc, expected 1"; fi
  if ! grep -qF -- "$want" "$TMP/stderr"; then fail "$label: stderr lacks '$want': $(cat "$TMP/stderr")"; fi
  if [ -e "$TMP/err.csv" ]; then fail "$label: wrote an output file"; fi
  echo "ok  error: $label: $(head -c 200 "$TMP/stderr")"
}
# A file without node covers (sum_hessian removed) scores but cannot explain.
python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
for t in m["learner"]["gradient_booster"]["model"]["trees"]:
    del t["sum_hessian"]
json.dump(m, open(sys.argv[2], "w"))' "$XGB/binary_logistic.json" "$TMP/nocover.json"
"$KEEL" score --model "$TMP/nocover.json" --input "$XGB/binary_logistic.explain.input.csv" --output "$TMP/plain.csv" \
  || fail "a model without covers no longer scores"
"$KEEL" score --model "$TMP/nocover.json" --input "$XGB/binary_logistic.explain.input.csv" --output "$TMP/leaf.csv" \
  --leaf || fail "a model without covers no longer gives leaf indices"
expect_error "no covers, --contribs" "tree 0: the model file has no node covers" \
  --model "$TMP/nocover.json" --input "$XGB/binary_logistic.explain.input.csv" --contribs
expect_error "no covers, --reason-codes" "no node covers" \
  --model "$TMP/nocover.json" --input "$XGB/binary_logistic.explain.input.csv" --reason-codes 2
expect_error "linear model, --leaf" "has no leaf indices (not a tree model)" \
  --model "$XGB/gblinear.json" --input "$XGB/gblinear.input.csv" --leaf
# Linear models do explain: x * w per feature.
"$KEEL" score --model "$XGB/gblinear.json" --input "$XGB/gblinear.input.csv" --output "$TMP/lin.csv" --contribs \
  --margin || fail "gblinear --contribs exited non-zero"

# Option errors are CLI11's (usage, non-zero exit).
for args in "--reason-codes 0" "--reason-mode up" "--reason-codes 2 --reason-mode down"; do
  set +e
  # shellcheck disable=SC2086
  "$KEEL" score --model "$XGB/binary_logistic.json" --input "$XGB/binary_logistic.explain.input.csv" $args \
    > /dev/null 2> "$TMP/stderr"
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then fail "'$args' was accepted"; else echo "ok  option error: $args: $(head -n 1 "$TMP/stderr")"; fi
done

if [ $fails -gt 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "all explain checks passed"
