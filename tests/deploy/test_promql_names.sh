# Every PromQL expression in the alert rules, the PrometheusRule and the
# Grafana dashboard parses (lezer grammar, and promtool for the dashboard's
# as recording rules) and names only metrics and labels listed in
# deploy/monitoring/metrics.txt; the checker refuses names not there.
source "$(dirname "$0")/lib.sh" "$@"
need promtool prometheus
node_tools
M="$SRC/deploy/monitoring"
check() { timeout 60 node "$HERE/check_promql.cjs" "$@"; }
check "$M/metrics.txt" "$M/keel-alerts.yml" "$SRC/deploy/kubernetes/prometheusrule.yaml" \
  "$M/grafana-dashboard.json" --emit-rules "$TMP/dashboard-rules.yml"
timeout 60 promtool check rules "$TMP/dashboard-rules.yml"
# The engine's names in metrics.txt are the ones its source registers.
for name in $(awk '!/^#/ && $4 == "engine" {print $1}' "$M/metrics.txt"); do
  grep -q "\"$name\"" "$SRC/src/engine/scoring_engine.cpp" || fail "$name: not registered in src/engine/scoring_engine.cpp"
done
for name in $(awk '!/^#/ && $4 == "validate" {print $1}' "$M/metrics.txt"); do
  grep -q "\"$name\"" "$SRC/src/validate/drift_monitor.cpp" || fail "$name: not in src/validate/drift_monitor.cpp"
done
for name in $(grep -o '"keel_[a-z_]*"' "$SRC/src/engine/scoring_engine.cpp" "$SRC/src/validate/drift_monitor.cpp" | cut -d'"' -f2 | sort -u); do
  grep -q "^$name " "$M/metrics.txt" || fail "$name is registered by the engine but missing from metrics.txt"
done
cp "$M/grafana-dashboard.json" "$TMP/d.json"
sed -i 's/keel_breaker_state{/keel_breaker_status{/' "$TMP/d.json"
expect_fail "unknown metric" "keel_breaker_status is not one Keel exports" check "$M/metrics.txt" "$TMP/d.json"
cp "$M/keel-alerts.yml" "$TMP/r.yml"
sed -i 's/sum by (job, instance, engine)/sum by (job, instance, engnie)/' "$TMP/r.yml"
expect_fail "unknown grouping label" "groups by engnie" check "$M/metrics.txt" "$TMP/r.yml"
cp "$M/keel-alerts.yml" "$TMP/r.yml"
sed -i 's/outcome="degraded"/outcme="degraded"/' "$TMP/r.yml"
expect_fail "unknown matcher label" "has no label outcme" check "$M/metrics.txt" "$TMP/r.yml"
cp "$M/keel-alerts.yml" "$TMP/r.yml"
sed -i 's/keel_breaker_state == 1 or/keel_breaker_state == 1 or or/' "$TMP/r.yml"
expect_fail "expression that does not parse" "does not parse" check "$M/metrics.txt" "$TMP/r.yml"
echo "test_promql_names: passed"
