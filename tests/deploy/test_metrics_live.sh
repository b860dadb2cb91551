# deploy/monitoring/metrics.txt against a live `keel serve` (metrics_live.py):
# every family exported is listed with its type and labels, and every
# engine/validate/server family listed is exported.
source "$(dirname "$0")/lib.sh" "$@"
need promtool prometheus
[ -x "$BUILD/keel" ] || fail "$BUILD/keel not built (KEEL_BUILD_CLI)"
/usr/bin/python3 -c 'import requests' || fail "python3-requests missing"
timeout 120 /usr/bin/python3 "$HERE/metrics_live.py" "$BUILD/keel" "$SRC" "$TMP"
