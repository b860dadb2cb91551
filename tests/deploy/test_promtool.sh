# promtool: the scrape config and rules are valid, and the alert rules
# pass their unit tests (each alert fires on its series and stays quiet
# below its threshold); a weakened threshold fails them.
source "$(dirname "$0")/lib.sh" "$@"
need promtool prometheus
M="$SRC/deploy/monitoring"
timeout 60 promtool check config "$M/prometheus.yml"
timeout 60 promtool check rules "$M/keel-alerts.yml"
(cd "$M/tests" && timeout 120 promtool test rules keel-alerts.test.yml)
cp -r "$M" "$TMP/m"
sed -i 's/keel_drift_psi > 0.25/keel_drift_psi > 0.5/' "$TMP/m/keel-alerts.yml"
cmp -s "$M/keel-alerts.yml" "$TMP/m/keel-alerts.yml" && fail "mutation changed nothing"
(cd "$TMP/m/tests" && expect_fail "drift threshold 0.5" "KeelInputDrift" timeout 120 promtool test rules keel-alerts.test.yml)
echo "test_promtool: passed"
