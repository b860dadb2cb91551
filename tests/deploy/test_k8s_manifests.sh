# Every manifest in deploy/kubernetes/ against the Kubernetes 1.27 and
# Prometheus Operator schemas, strictly (unknown fields are errors), and
# against each other; the PrometheusRule is the rules file's; and the
# checker refuses deliberately broken copies.
source "$(dirname "$0")/lib.sh" "$@"
node_tools
K="$SRC/deploy/kubernetes"
timeout 60 node "$HERE/check_manifests.cjs" "$K"/*.yaml
timeout 30 bash "$K/gen-prometheusrule.sh" --check

# mutate NAME FILE SED PATTERN: a copy of the folder with FILE edited must be refused.
mutate() {
  local name="$1" file="$2" script="$3" pattern="$4"
  rm -rf "$TMP/k" && cp -r "$K" "$TMP/k"
  sed -i -e "$script" "$TMP/k/$file"
  cmp -s "$K/$file" "$TMP/k/$file" && fail "mutation $name changed nothing"
  expect_fail "$name" "$pattern" timeout 60 node "$HERE/check_manifests.cjs" "$TMP/k"/*.yaml
}
mutate "unknown field" deployment.yaml 's/periodSeconds: 10/periodSecond: 10/' "unknown field .*periodSecond"
mutate "wrong type" deployment.yaml 's/replicas: 6/replicas: six/' "spec/replicas: type {\"type\":\"integer\"}"
mutate "unknown CRD field" podmonitor.yaml 's/scrapeTimeout:/scrapeTimout:/' "unknown field .*scrapeTimout"
mutate "unknown kind" pvc-models.yaml 's/kind: PersistentVolumeClaim/kind: PersistentVolumeClam/' "no schema for"
mutate "grace period too short" deployment.yaml 's/terminationGracePeriodSeconds: 40/terminationGracePeriodSeconds: 30/' "must exceed"
mutate "probe on a missing port" deployment.yaml '0,/port: http$/s//port: htp/' "is not a container port"
mutate "service selects nothing" service.yaml 's/app.kubernetes.io\/name: keel$/app.kubernetes.io\/name: keal/' "selects no pod"
mutate "no zone spread" deployment.yaml 's/topology.kubernetes.io\/zone/example.com\/rack/' "no topology spread"
mutate "config map key missing" configmap-engines.yaml 's/churn.engine.json:/churn.json:/' "is not a key of ConfigMap"
mutate "engine config not JSON" configmap-engines.yaml 's/"name": "churn",/"name": "churn"/' "not JSON"
echo "test_k8s_manifests: passed"
