# A real Prometheus (Debian) scraping two running `keel serve` replicas on
# loopback: its HTTP API must report up == 1 for both targets and a Keel
# metric (keel_http_requests_total, after a few requests) within 60 s.
# Everything started here is stopped by PID.
source "$(dirname "$0")/lib.sh" "$@"
need prometheus prometheus
need curl curl
[ -x "$BUILD/keel" ] || fail "$BUILD/keel not built (KEEL_BUILD_CLI)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Two replicas; each prints {"event":"listening","http":"127.0.0.1:PORT",...} first.
ADDRS=()
for i in 1 2; do
  "$BUILD/keel" serve --model m="$SRC/examples/data/model.json" --http-port 0 --drain-delay-ms 0 \
    >"$TMP/keel$i.out" 2>"$TMP/keel$i.err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '"listening"' "$TMP/keel$i.out" 2>/dev/null && break; sleep 0.1; done
  addr="$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$TMP/keel$i.out" | head -1)"
  [ -n "$addr" ] || { cat "$TMP/keel$i.err" >&2; fail "replica $i did not print its address"; }
  ADDRS+=("$addr")
done
ROW='{"inputs":[{"name":"x","shape":[1,10],"datatype":"FP32","data":[12,15,0.1,0.02,0.4,27,13,18,83,0.05]}]}'
for a in "${ADDRS[@]}"; do
  for _ in 1 2 3; do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$ROW" "http://$a/v2/models/m/infer")"
    [ "$code" = 200 ] || fail "infer on $a: HTTP $code"
  done
done

PORT="$(free_port)"
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: keel
    static_configs:
      - targets: ["${ADDRS[0]}"]
        labels: {zone: zone-a}
      - targets: ["${ADDRS[1]}"]
        labels: {zone: zone-b}
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null || fail "promtool rejects the generated config"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$PORT" >"$TMP/prom.log" 2>&1 &
PIDS+=($!)

# query EXPR: the instant vector's samples, one "instance zone value" per line.
query() {
  curl -s --max-time 2 --get --data-urlencode "query=$1" "http://127.0.0.1:$PORT/api/v1/query" |
    /usr/bin/python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for r in d.get("data", {}).get("result", []):
    print(r["metric"].get("instance", "-"), r["metric"].get("zone", "-"), r["value"][1])'
}
deadline=$((SECONDS + 60))
while :; do
  up="$(query 'up{job="keel"} == 1' || true)"
  metric="$(query 'sum by (instance) (keel_http_requests_total{job="keel"})' || true)"
  if [ "$(wc -l <<<"$up" | tr -d ' ')" = 2 ] && [ -n "$up" ] && [ "$(grep -c . <<<"$metric")" = 2 ]; then break; fi
  if [ $SECONDS -ge $deadline ]; then
    tail -20 "$TMP/prom.log" >&2
    fail "within 60 s: up==1 for [$up], keel_http_requests_total for [$metric] (want both replicas)"
  fi
  kill -0 "${PIDS[2]}" 2>/dev/null || { tail -20 "$TMP/prom.log" >&2; fail "prometheus exited"; }
  sleep 0.5
done
for a in "${ADDRS[@]}"; do
  grep -q "^$a " <<<"$up" || fail "target $a is not up: [$up]"
done
grep -q "^${ADDRS[0]} zone-a " <<<"$up" || fail "zone label missing on ${ADDRS[0]}: [$up]"
grep -q "^${ADDRS[1]} zone-b " <<<"$up" || fail "zone label missing on ${ADDRS[1]}: [$up]"
echo "up:"; echo "$up"
echo "keel_http_requests_total by instance:"; echo "$metric"

# A replica that stops answering must turn its target down (up == 0).
{ kill -KILL "${PIDS[0]}"; wait "${PIDS[0]}"; } 2>/dev/null || true
deadline=$((SECONDS + 30))
until query 'up{job="keel"} == 0' | grep -q "^${ADDRS[0]} "; do
  [ $SECONDS -lt $deadline ] || fail "killed replica ${ADDRS[0]} still up after 30 s"
  sleep 0.5
done
echo "killed replica ${ADDRS[0]} reported down"
echo "test_prometheus_scrape: passed"
