# systemd-analyze verify on deploy/hosts/keel.service (ExecStart pointed at
# an existing binary, since verify checks it), and a broken copy is refused.
source "$(dirname "$0")/lib.sh" "$@"
need systemd-analyze systemd
sed "s|/usr/local/bin/keel|/bin/true|" "$SRC/deploy/hosts/keel.service" > "$TMP/keel.service"
out="$(timeout 60 systemd-analyze verify "$TMP/keel.service" 2>&1)" || { echo "$out"; fail "systemd-analyze verify"; }
if grep -q "keel.service" <<<"$out"; then echo "$out"; fail "systemd-analyze warned about the unit"; fi
mkdir -p "$TMP/bad"
sed "s/^Type=notify/Type=notfiy/" "$TMP/keel.service" > "$TMP/bad/keel.service"
out="$(timeout 60 systemd-analyze verify "$TMP/bad/keel.service" 2>&1 || true)"
grep -q "notfiy" <<<"$out" || { echo "$out"; fail "a bad Type= was not reported"; }
echo "ok   refused: bad Type="
echo "test_systemd_unit: passed"
