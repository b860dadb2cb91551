#!/usr/bin/python3
"""keel serve against hostile and unlucky clients, as real processes on
loopback: slow-loris headers and bodies (408 within the bound while other
clients are served), idle connections up to max_connections then 503,
thousands of idle connections while scoring, oversize and malformed bodies
(413, 400 naming the byte offset) with the process still serving, and
SIGTERM under load (every request the server accepted is answered; the rest
are refused with a retryable status or never accepted). Time-bounded.
Usage: test_serve_hostile.py KEEL_BINARY MODEL_JSON"""
import json
import os
import socket
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_hostile_")
MAX_CONN = 64


def config(**kw):
    path = os.path.join(tmp, "serve-%d.json" % len(os.listdir(tmp)))
    with open(path, "w") as f:
        json.dump(kw, f)
    return path


def recv_all(sock, timeout):
    """Bytes until the peer closes or `timeout` seconds pass."""
    sock.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def small_body(features):
    return {"inputs": [{"name": "input-0", "shape": [1, features], "datatype": "FP32", "data": [0.5] * features}]}


srv = Server(keel, "--model", "m=" + model, "--config", config(
    limits={"header_timeout_ms": 1000, "body_timeout_ms": 1000, "max_connections": MAX_CONN,
            "max_body_bytes": 1 << 20}, access_log=False), "--drain-delay-ms", "0")
try:
    features = requests.get(srv.base + "/v2/models/m", timeout=10).json()["inputs"][0]["shape"][1]
    body = small_body(features)

    # Slow loris: a header dribbled a byte at a time, and a body likewise.
    def loris(first, dribble, result, key):
        s = socket.create_connection((srv.host, srv.port), timeout=10)
        t0 = time.monotonic()
        s.sendall(first)
        got = b""
        s.settimeout(0.1)
        while time.monotonic() - t0 < 5:
            try:
                s.sendall(dribble)
            except OSError:
                break
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    got += recv_all(s, 1)
                    break
            except socket.timeout:
                pass
            except OSError:
                break
        result[key] = (time.monotonic() - t0, got)
        s.close()

    res = {}
    threads = [threading.Thread(target=loris, args=(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nX-A: ", b"a",
                                                   res, "header")),
               threading.Thread(target=loris, args=(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                                                   b"Content-Length: 100000\r\n\r\n{", b" ", res, "body"))]
    for t in threads:
        t.start()
    s = requests.Session()
    served = 0
    while any(t.is_alive() for t in threads):
        served += s.post(srv.base + "/v2/models/m/infer", json=body, timeout=10).status_code == 200
    for key, what in [("header", "request header not received in time"), ("body", "request body not received in time")]:
        elapsed, got = res[key]
        check(got.startswith(b"HTTP/1.1 408") and what.encode() in got and 0.9 <= elapsed < 3.0,
              "slow-loris %s: 408 '%s' after %.2f s (bound 1 s + 0.2 s sweep)" % (key, what, elapsed))
    check(served > 10, "other clients served meanwhile (%d requests)" % served)

    # Idle connections up to max_connections, then 503 + Retry-After.
    s.close()
    time.sleep(0.3)
    idle = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(MAX_CONN)]
    time.sleep(0.3)
    extra = socket.create_connection((srv.host, srv.port), timeout=10)
    got = recv_all(extra, 3)
    extra.close()
    check(got.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in got and b"too many open connections" in got,
          "connection %d beyond max_connections=%d: 503 with Retry-After (%r)" % (MAX_CONN + 1, MAX_CONN, got[:40]))
    for sock in idle[:4]:
        sock.close()
    time.sleep(0.3)
    r = requests.post(srv.base + "/v2/models/m/infer", json=body, timeout=10)
    check(r.status_code == 200, "a slot freed: served again")
    for sock in idle[4:]:
        sock.close()

    # Oversize and malformed bodies: their own status, the byte offset, still serving.
    s = requests.Session()
    r = s.post(srv.base + "/v2/models/m/infer", data=b"x" * ((1 << 20) + 1), timeout=10)
    check(r.status_code == 413 and "larger than 1048576 bytes" in r.json()["error"], "oversize body -> 413")
    chunked = socket.create_connection((srv.host, srv.port), timeout=10)
    chunked.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(300):  # 1.2 MB in 4 KiB chunks; the server answers and closes midway
            chunked.sendall(b"1000\r\n" + b"y" * 4096 + b"\r\n")
    except OSError:
        pass
    got = recv_all(chunked, 3)
    chunked.close()
    check(got.startswith(b"HTTP/1.1 413"), "oversize chunked body -> 413 (%r)" % got[:20])
    s = requests.Session()
    r = s.post(srv.base + "/v2/models/m/infer", data=b'{"inputs": [}', timeout=10)
    check(r.status_code == 400 and "malformed JSON at byte 12" in r.json()["error"],
          "malformed JSON names the byte offset (%s)" % r.text)
    bad = json.dumps(body).replace("0.5,", "0.5,,", 1).encode()
    r = s.post(srv.base + "/v2/models/m/infer", data=bad, timeout=10)
    at = bad.index(b",,") + 1
    check(r.status_code == 400 and ("at byte %d" % at) in r.json()["error"],
          "stray comma at byte %d named (%s)" % (at, r.text))
    head = json.dumps({"inputs": [{"name": "input-0", "shape": [1, features], "datatype": "FP32",
                                   "parameters": {"binary_data_size": features * 4}}]}).encode()
    r = s.post(srv.base + "/v2/models/m/infer", data=head + b"\0" * (features * 4 - 3),
               headers={"Inference-Header-Content-Length": str(len(head))}, timeout=10)
    check(r.status_code == 400 and "binary data at byte 0" in r.json()["error"], "short binary tensor (%s)" % r.text)
    r = s.post(srv.base + "/v2/models/m/infer", data=b"{\"inputs\": [" + b"[" * 5000, timeout=10)
    check(r.status_code == 400, "deeply nested body -> 400")
    garbage = socket.create_connection((srv.host, srv.port), timeout=10)
    garbage.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n")
    got = recv_all(garbage, 3)
    garbage.close()
    check(got.startswith(b"HTTP/1.1 400"), "non-HTTP bytes -> 400 and close")
    check(requests.post(srv.base + "/v2/models/m/infer", json=body, timeout=10).status_code == 200,
          "still serving after the bad input")
finally:
    srv.stop()

# Thousands of idle keep-alive connections while scoring.
IDLE = 3000
srv = Server(keel, "--model", "m=" + model, "--config", config(access_log=False), "--drain-delay-ms", "0")
try:
    idle = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(IDLE)]
    s = requests.Session()
    t0 = time.monotonic()
    codes = [s.post(srv.base + "/v2/models/m/infer", json=body, timeout=10).status_code for _ in range(200)]
    check(all(c == 200 for c in codes), "200 requests scored with %d idle connections open (%.2f s)" % (
        IDLE, time.monotonic() - t0))
    metrics = s.get(srv.base + "/metrics", timeout=10).text
    conns = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("keel_server_connections")]
    check(conns and conns[0] >= IDLE, "keel_server_connections counts them (%s)" % conns)
    for sock in idle:
        sock.close()
finally:
    srv.stop()

# SIGTERM under load: every accepted request answered, the rest refused retryably.
DELAY, TIMEOUT = 500, 5000
srv = Server(keel, "--model", "m=" + model, "--drain-delay-ms", str(DELAY), "--drain-timeout-ms", str(TIMEOUT))
outcomes = {}
lock = threading.Lock()
stop_at = [None]


# Batches of some milliseconds each, so that requests are in flight at any moment.
ROWS = 4000
batch_head = json.dumps({"inputs": [{"name": "input-0", "shape": [ROWS, features], "datatype": "FP32",
                                     "parameters": {"binary_data_size": ROWS * features * 4}}],
                         "parameters": {"binary_data_output": True}}).encode()
batch = batch_head + bytes(ROWS * features * 4)


def client(n):
    """Sends until refused, as a client behind a load balancer would then go elsewhere."""
    s = requests.Session()
    k = 0
    while stop_at[0] is None or time.monotonic() < stop_at[0]:
        rid = "c%d-%d" % (n, k)
        k += 1
        try:
            r = s.post(srv.base + "/v2/models/m/infer", data=batch, timeout=10, headers={
                "X-Request-Id": rid, "Inference-Header-Content-Length": str(len(batch_head))})
            out = (r.status_code, r.headers.get("Retry-After"))
        except requests.exceptions.ConnectionError as e:
            # Refused: a new connection after accepting stopped (never
            # accepted). Anything else on an open connection may be a lost request.
            out = ("connection", "refused" if "Connection refused" in str(e) else str(e)[:120])
            s = requests.Session()
            time.sleep(0.01)
        with lock:
            outcomes[rid] = out
        if out[0] != 200:
            return


try:
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t_sig = time.monotonic()
    srv.signal()
    rc = srv.wait(timeout=(DELAY + TIMEOUT) / 1000 + 5)
    exited = time.monotonic() - t_sig
    stop_at[0] = time.monotonic() + 0.3
    for t in threads:
        t.join(timeout=15)
    logged = {e["request_id"]: e["status"] for e in srv.log() if e.get("event") == "access" and
              e.get("request_id", "").startswith("c")}
    answered = [rid for rid, o in outcomes.items() if o[0] == 200]
    lost = [rid for rid, st in logged.items() if outcomes.get(rid, (None,))[0] != st]
    not_retryable = [(rid, o) for rid, o in outcomes.items()
                     if o[0] != 200 and o[0] != "connection" and not (o[0] == 503 and o[1])]
    broken = [(rid, o[1]) for rid, o in outcomes.items() if o[0] == "connection" and (rid in logged or
                                                                                      o[1] != "refused")]
    check(rc == 0 and exited < (DELAY + TIMEOUT) / 1000, "exit 0 within drain_delay + drain_timeout (%.2f s)" % exited)
    check(len(answered) > 20, "%d batches of %d rows answered 200 under load" % (len(answered), ROWS))
    check(not lost, "every request the server logged was answered to its client as logged (%d logged, lost: %s)" % (
        len(logged), lost[:5]))
    check(not not_retryable, "every other answer is 503 with Retry-After (%s)" % not_retryable[:5])
    check(any(o[0] == 503 for o in outcomes.values()), "requests after the drain delay refused with 503")
    check(not broken, "a connection error only when a new connection was refused, never on an open one (%s)" %
          broken[:3])
finally:
    stop_at[0] = time.monotonic()
    srv.stop()
check.exit()
