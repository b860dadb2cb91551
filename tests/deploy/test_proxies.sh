# haproxy -c and nginx -t on deploy/hosts/, and each refuses a broken copy.
source "$(dirname "$0")/lib.sh" "$@"
need haproxy haproxy
need nginx nginx
H="$SRC/deploy/hosts"
timeout 30 haproxy -c -f "$H/haproxy.cfg"
timeout 30 nginx -t -q -c "$H/nginx.conf" -g "pid $TMP/nginx.pid;"
sed 's/retry-on conn-failure/retry-on conn-failur/' "$H/haproxy.cfg" > "$TMP/h.cfg"
expect_fail "haproxy typo" "conn-failur" timeout 30 haproxy -c -f "$TMP/h.cfg"
sed 's/least_conn;/least_con;/' "$H/nginx.conf" > "$TMP/n.conf"
expect_fail "nginx typo" "least_con" timeout 30 nginx -t -q -c "$TMP/n.conf" -g "pid $TMP/nginx.pid;"
echo "test_proxies: passed"
