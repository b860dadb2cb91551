#!/usr/bin/env bash
# keel drift: table and JSON against a profile; the shifted feature (and
# only it) above 0.25; --fail-above; errors. Usage: test_drift.sh <keel binary> <tests/data dir>
set -euo pipefail
KEEL=$1
D=$2/validate
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$KEEL" profile -i "$D/train.csv" --exclude label -o "$TMP/p.json" > /dev/null

# Same distribution: every feature stable.
"$KEEL" drift --profile "$TMP/p.json" --input "$D/recent.csv" > "$TMP/table"
grep -q "^2000 rows against" "$TMP/table" || fail "table header: $(cat "$TMP/table")"
[ "$(grep -c ' stable$' "$TMP/table")" = 4 ] || fail "not all stable: $(cat "$TMP/table")"

# Shifted: income on top of the table, marked SHIFT; --top limits the rows.
"$KEEL" drift -p "$TMP/p.json" -i "$D/recent_shifted.csv" --top 2 > "$TMP/table"
sed -n 3p "$TMP/table" | grep -qE '^ +1  income +1 +[0-9.]+ .* SHIFT$' || fail "shifted table: $(cat "$TMP/table")"
[ "$(wc -l < "$TMP/table")" = 4 ] || fail "--top 2: $(cat "$TMP/table")"

"$KEEL" drift -p "$TMP/p.json" -i "$D/recent_shifted.csv" --json > "$TMP/d.json"
[ "$(wc -l < "$TMP/d.json")" = 1 ] || fail "--json is not one line"
python3 - "$TMP/d.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["features"], list(d)
f = d["features"]
assert len(f) == 4
for x in f:
    assert set(x) == {"name", "index", "psi", "missing_rate", "reference_missing_rate"}, set(x)
psi = [x["psi"] for x in f]
assert psi == sorted(psi, reverse=True), psi
assert f[0]["name"] == "income" and f[0]["index"] == 1 and f[0]["psi"] > 0.25, f[0]
assert all(x["psi"] < 0.1 for x in f[1:]), f
score = next(x for x in f if x["name"] == "score")
assert abs(score["missing_rate"] - 0.4) < 1e-9 and abs(score["reference_missing_rate"] - 0.1) < 1e-9, score
print("ok  drift JSON")
PY

# --fail-above: exit status 3 when the highest PSI is above it.
set +e
"$KEEL" drift -p "$TMP/p.json" -i "$D/recent_shifted.csv" --fail-above 0.25 > /dev/null 2>&1; rc=$?
"$KEEL" drift -p "$TMP/p.json" -i "$D/recent.csv" --fail-above 0.25 > /dev/null 2>&1; rc_ok=$?
set -e
[ "$rc" = 3 ] || fail "--fail-above on shifted data exited $rc"
[ "$rc_ok" = 0 ] || fail "--fail-above on stable data exited $rc_ok"

# Errors: a ragged row names its line; a column the profile needs is absent; a bad profile.
if "$KEEL" drift -p "$TMP/p.json" -i "$D/ragged.csv" 2> "$TMP/err"; then fail "ragged row accepted"; fi
grep -q "line 4: 3 fields" "$TMP/err" || fail "ragged error: $(cat "$TMP/err")"
"$KEEL" drift -p "$TMP/p.json" -i "$D/ragged.csv" --on-error skip --json > /dev/null 2> "$TMP/err"
grep -q "skipped 1 bad rows" "$TMP/err" || fail "skip: $(cat "$TMP/err")"
printf 'age,income\n1,2\n' > "$TMP/narrow.csv"
if "$KEEL" drift -p "$TMP/p.json" -i "$TMP/narrow.csv" 2> "$TMP/err"; then fail "missing column accepted"; fi
grep -q "no column 'score'" "$TMP/err" || fail "missing column error: $(cat "$TMP/err")"
echo '{"format": "keel-profile", "version": 1}' > "$TMP/bad.json"
if "$KEEL" drift -p "$TMP/bad.json" -i "$D/recent.csv" 2> "$TMP/err"; then fail "bad profile accepted"; fi
grep -q "missing key 'rows'" "$TMP/err" || fail "bad profile error: $(cat "$TMP/err")"
echo "test_drift.sh: all passed"
