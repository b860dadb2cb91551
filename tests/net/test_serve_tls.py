#!/usr/bin/python3
"""keel serve's REST (HTTP/1.1) listener over TLS and mTLS (serve.json
"http_tls"), with certificates made at test time by the openssl CLI (a CA, a
server certificate for 127.0.0.1, a client certificate signed by the CA, and
a second CA with its own client certificate), against a real process on
loopback:
- infer, health and metrics over https, verified against the test CA; the
  first log line says the listener is https;
- plain http to the TLS port fails and is logged, and the server keeps
  serving;
- a client that opens TCP and sends no ClientHello is closed by the header
  timeout, and meanwhile the only I/O thread serves others;
- SIGTERM with a stalled handshake and an idle keep-alive TLS connection
  open drains and exits within its bound;
- with client_ca_file a client without a certificate, or with one from
  another CA, is refused, and one with a certificate signed by the CA is
  answered;
- a missing or invalid cert/key/CA file, or a key that does not match the
  certificate, fails the start (exit 2) naming the field and the file,
  without printing the key; --check loads the files the same way, and
  grpc_tls's too;
- each answer comes in as few TLS records as its size allows.
Usage: test_serve_tls.py KEEL_BINARY MODEL_JSON"""
import atexit
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_rest_tls_")
atexit.register(shutil.rmtree, tmp, True)
HEADER_TIMEOUT_MS = 1000


def path(name):
    return os.path.join(tmp, name)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


with open(path("san.ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1\n")
for ca in ["ca", "other_ca"]:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path(ca + ".key"), "-out", path(ca + ".pem"),
            "-days", "1", "-subj", "/CN=keel-test-" + ca)
for who, ca in [("server", "ca"), ("client", "ca"), ("stranger", "other_ca")]:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", path(who + ".key"), "-out", path(who + ".csr"),
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", path(who + ".csr"), "-CA", path(ca + ".pem"), "-CAkey", path(ca + ".key"),
            "-CAcreateserial", "-out", path(who + ".pem"), "-days", "1", "-extfile", path("san.ext"))
with open(path("not_pem.txt"), "w") as f:
    f.write("this is not a certificate\n")


def config(name, limits=None, **tls):
    with open(path(name), "w") as f:
        json.dump({"http_tls": tls, "grpc_port": -1, "drain_delay_ms": 0, "drain_timeout_ms": 5000,
                   "io_threads": 1, "limits": dict({"header_timeout_ms": HEADER_TIMEOUT_MS}, **(limits or {}))}, f)
    return path(name)


def refused(fn):
    """True when fn() raises a requests/ssl/socket error (the connection is
    refused in or right after the handshake); False when it gets an answer."""
    try:
        fn()
        return False
    except (requests.exceptions.RequestException, ssl.SSLError, OSError):
        return True


def wait_log(srv, pred, timeout=5.0):
    """The first logged JSON line matching pred, within timeout (the CLI
    flushes stdout every 200 ms)."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        for line in srv.log():
            if pred(line):
                return line
        time.sleep(0.05)
    return None


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def records_per_answer(host, port, ca, raw_requests, max_version):
    """Sends each raw HTTP/1.1 request in turn on one keep-alive TLS
    connection and returns, for each answer, (its length in bytes, the sizes
    of the TLS records it came in). The client's TLS runs over memory BIOs,
    so the records are read off the socket as the server wrote them. The
    first request is a warm-up, not returned: under TLS 1.3 the session
    tickets come after the handshake in records of their own."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.maximum_version = max_version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    sock = socket.create_connection((host, port), timeout=10)
    wire = bytearray()

    def flush():
        data = outgoing.read()
        if data:
            sock.sendall(data)

    def receive():
        data = sock.recv(1 << 20)
        if not data:
            raise EOFError("the server closed the connection")
        wire.extend(data)
        incoming.write(data)

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                receive()
        flush()
        out = []
        for req in raw_requests:
            tls.write(req)
            flush()
            del wire[:]
            answer = bytearray()
            while True:
                try:
                    while True:  # each read gives at most one record's data
                        answer.extend(tls.read(1 << 20))
                except ssl.SSLWantReadError:
                    pass
                end = answer.find(b"\r\n\r\n")
                if end >= 0:
                    length = re.search(rb"\r\ncontent-length: *([0-9]+)", answer[:end], re.I)
                    if length and len(answer) >= end + 4 + int(length.group(1)):
                        break
                receive()
            sizes, at = [], 0
            while at + 5 <= len(wire):  # type (1 byte), version (2), length (2), then the record
                size = int.from_bytes(wire[at + 3:at + 5], "big")
                sizes.append(size)
                at += 5 + size
            out.append((len(answer), sizes))
        return out[1:]
    finally:
        sock.close()


# --- TLS ---------------------------------------------------------------------
srv = Server(keel, "--model", "m=" + model, "--config", config("tls.json", cert_file="server.pem",
                                                                key_file="server.key"))
try:
    check(srv.first.get("http_tls") is True and srv.first.get("http_scheme") == "https",
          "first log line says the REST listener is https: %s" % srv.first)
    base = "https://" + srv.first["http"]
    ca = path("ca.pem")
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment overrides s.verify
    s.verify = ca
    r = s.get(base + "/v2/health/ready", timeout=10)
    check(r.status_code == 200 and r.json() == {"ready": True}, "ready over https, CA verified")
    features = s.get(base + "/v2/models/m", timeout=10).json()["inputs"][0]["shape"][1]
    body = {"id": "t-1", "inputs": [{"name": "input-0", "shape": [2, features], "datatype": "FP32",
                                     "data": [0.25] * (2 * features)}]}
    r = s.post(base + "/v2/models/m/infer", json=body, timeout=10)
    j = r.json() if r.status_code == 200 else {}
    check(r.status_code == 200 and j.get("id") == "t-1" and j["outputs"][0]["shape"] == [2, 1],
          "infer 2 rows over https (%d)" % r.status_code)
    r2 = s.post(base + "/v2/models/m/infer", json=body, timeout=10)  # same keep-alive connection
    check(r2.status_code == 200 and r2.json()["outputs"] == j.get("outputs"), "second infer on the connection")
    # Each answer in as few TLS records as its size allows: header and body
    # share records (one record up to 16 KiB of answer).
    def infer_request(rows):
        b = json.dumps({"inputs": [{"name": "input-0", "shape": [rows, features], "datatype": "FP32",
                                    "data": [0.25] * (rows * features)}]}).encode()
        return (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(b)) + b
    asks = [b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] + [infer_request(n) for n in (1, 900, 2700)]
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        for size, records in records_per_answer(srv.host, srv.port, ca, asks, version):
            want = -(-size // 16384)
            check(len(records) == want, "%s: an answer of %d bytes in %d TLS record(s) %s (want %d)" %
                  (version.name, size, len(records), records, want))
    # A client that connects and never sends a ClientHello (the first
    # handshake failure, so its log line is not rate-limited away).
    t0 = time.monotonic()
    mute = socket.create_connection((srv.host, srv.port), timeout=10)
    # While it waits, the only I/O thread answers others.
    r = requests.get(base + "/v2/health/live", verify=ca, timeout=5)
    check(r.status_code == 200 and time.monotonic() - t0 < HEADER_TIMEOUT_MS / 1000.0,
          "a silent connection holds no worker: another client answered at once")
    try:
        got = mute.recv(100)
    except (socket.timeout, OSError) as e:
        got = e
    elapsed = time.monotonic() - t0
    check(got == b"" or isinstance(got, ConnectionResetError), "silent client closed by the server (%r)" % (got,))
    check(0.8 <= elapsed < 3.0, "closed by the header timeout: %.2f s (bound 1 s + 0.2 s sweep)" % elapsed)
    mute.close()
    logged = wait_log(srv, lambda e: e.get("event") == "tls_handshake_failed")
    check(logged is not None and "in time" in logged.get("error", "") and
          logged.get("peer", "").startswith("127.0.0.1:"), "handshake timeout logged with the peer: %s" % logged)

    # Plain HTTP to the TLS port: fails, is logged, and the server goes on.
    time.sleep(1.1)  # past the log limiter's period (one line a second)
    check(refused(lambda: requests.get("http://" + srv.first["http"] + "/v2/health/live", timeout=5)),
          "plain http to the https port: no answer")
    logged = wait_log(srv, lambda e: e.get("event") == "tls_handshake_failed" and "in time" not in e["error"])
    check(logged is not None and re.search("http request|wrong version", logged.get("error", "")) is not None,
          "plain http logged as a failed handshake: %s" % logged)
    r = requests.get(base + "/v2/health/live", verify=ca, timeout=10)
    check(r.status_code == 200 and r.json() == {"live": True}, "still serving https after the plain request")
    check(refused(lambda: requests.get(base + "/v2/health/live", verify=path("other_ca.pem"), timeout=10)),
          "a client trusting another CA rejects the server")
    # A burst of failures: counted each, logged at most once a second.
    before = len([e for e in srv.log() if e.get("event") == "tls_handshake_failed"])
    for _ in range(5):
        refused(lambda: requests.get("http://" + srv.first["http"] + "/", timeout=5))
    time.sleep(0.5)
    after = len([e for e in srv.log() if e.get("event") == "tls_handshake_failed"])
    check(after - before <= 1, "burst of 5 failed handshakes: %d log line(s)" % (after - before))
    m = s.get(base + "/metrics", timeout=10)
    failures = metric(m.text, "keel_server_tls_handshake_failures_total") if m.status_code == 200 else None
    check(m.status_code == 200 and failures == 8,
          "metrics over https: keel_server_tls_handshake_failures_total = %s (want 8)" % failures)

    # Drain with a stalled handshake and an idle keep-alive TLS connection open.
    stalled = socket.create_connection((srv.host, srv.port), timeout=10)
    check(s.get(base + "/v2/health/live", timeout=10).status_code == 200, "keep-alive session open before SIGTERM")
    t0 = time.monotonic()
    srv.signal()
    try:
        rc = srv.wait(timeout=12)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0 and time.monotonic() - t0 < 8.0, "SIGTERM drains and exits (rc %s after %.2f s)" %
          (rc, time.monotonic() - t0))
    stalled.close()
finally:
    srv.stop()

# --- mTLS --------------------------------------------------------------------
srv = Server(keel, "--model", "m=" + model, "--config", config("mtls.json", cert_file="server.pem",
                                                                key_file="server.key", client_ca_file="ca.pem"))
try:
    base = "https://" + srv.first["http"]
    ca = path("ca.pem")

    def get(**kw):
        r = requests.get(base + "/v2/health/ready", verify=ca, timeout=10, **kw)
        r.raise_for_status()
        return r

    check(refused(get), "mTLS: client without a certificate refused")
    check(refused(lambda: get(cert=(path("stranger.pem"), path("stranger.key")))),
          "mTLS: client certificate from another CA refused")
    ok = None
    try:
        ok = get(cert=(path("client.pem"), path("client.key")))
    except requests.exceptions.RequestException as e:
        print("  error: %s" % e)
    check(ok is not None and ok.json() == {"ready": True}, "mTLS: client certificate signed by the CA answered")
finally:
    srv.stop()

# --- connection limit ----------------------------------------------------------
srv = Server(keel, "--model", "m=" + model, "--config", config("limit.json", limits={"max_connections": 1},
                                                                cert_file="server.pem", key_file="server.key"))
try:
    base = "https://" + srv.first["http"]
    ca = path("ca.pem")
    holder = socket.create_connection((srv.host, srv.port), timeout=10)
    time.sleep(0.3)  # accepted and counted
    check(refused(lambda: requests.get(base + "/v2/health/live", verify=ca, timeout=5)),
          "past max_connections: a TLS client is closed before the handshake")
    holder.close()
    r = None
    until = time.monotonic() + 5
    while r is None and time.monotonic() < until:  # the server sees the holder go within a read
        try:
            r = requests.get(base + "/metrics", verify=ca, timeout=5)
        except requests.exceptions.RequestException:
            time.sleep(0.1)
    shed = metric(r.text, 'keel_server_shed_total{reason="connections"}') if r is not None else None
    check(r is not None and r.status_code == 200 and shed is not None and shed >= 1,
          "served again once the slot is free; shed counted (%s)" % shed)
finally:
    srv.stop()

# --- start errors --------------------------------------------------------------


def start_error(name, **tls):
    p = subprocess.run([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--config", config(name, **tls)],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr + p.stdout


with open(path("server.key")) as f:
    key_body = f.read().splitlines()[1]  # a line of the key's base64


def file_errors(section):
    """TLS sections whose files are wrong: (name, the section's keys, what the error names)."""
    return [
        ("nokey", dict(cert_file="server.pem", key_file="nope.key"),
         section + ".key_file: cannot read " + path("nope.key")),
        ("nocert", dict(cert_file="nope.pem", key_file="server.key"),
         section + ".cert_file: cannot read " + path("nope.pem")),
        ("mismatch", dict(cert_file="server.pem", key_file="client.key"),
         section + ".key_file: " + path("client.key") + " does not match the certificate in " + section +
         ".cert_file " + path("server.pem")),
        ("keyascert", dict(cert_file="server.key", key_file="server.key"),
         section + ".cert_file: " + path("server.key") + " is not a PEM certificate"),
        ("badkey", dict(cert_file="server.pem", key_file="not_pem.txt"),
         section + ".key_file: " + path("not_pem.txt") + " is not"),
        ("badca", dict(cert_file="server.pem", key_file="server.key", client_ca_file="not_pem.txt"),
         section + ".client_ca_file: " + path("not_pem.txt") + " is not"),
        ("onlykey", dict(key_file="server.key"), section + ": key_file and client_ca_file need cert_file"),
    ]


for name, tls, want in file_errors("http_tls"):
    rc, err = start_error(name + ".json", **tls)
    check(rc == 2 and want in err and key_body not in err and "PRIVATE KEY" not in err,
          "%s: start fails naming the field and file (rc %d: %s)" % (name, rc, err.strip()[:160]))
p = subprocess.run([keel, "serve", "--model", "m=" + model, "--check", "--config",
                    config("check_bad.json", cert_file="server.pem", key_file="client.key")],
                   capture_output=True, text=True, timeout=30)
check(p.returncode == 2 and "http_tls.key_file: " + path("client.key") + " does not match" in p.stderr,
      "--check: a key not matching the certificate fails (rc %d: %s)" % (p.returncode, p.stderr.strip()[:120]))
p = subprocess.run([keel, "serve", "--model", "m=" + model, "--check", "--config",
                    config("check_ok.json", cert_file="server.pem", key_file="server.key", client_ca_file="ca.pem")],
                   capture_output=True, text=True, timeout=30)
check(p.returncode == 0 and "ok: http_tls " + path("server.pem") + " (client certificates required)" in p.stdout,
      "--check: valid http_tls reported (rc %d: %s)" % (p.returncode, (p.stdout + p.stderr).strip()[:120]))
rc, err = start_error("unknown.json", cert_file="server.pem", key_file="server.key", ca_file="ca.pem")
check(rc == 2 and "http_tls.ca_file: unknown key" in err, "unknown http_tls key: %s" % err.strip()[:100])


# --- grpc_tls under --check ----------------------------------------------------


def grpc_check(name, grpc_tls, grpc_port=0):
    with open(path(name), "w") as f:
        json.dump({"grpc_tls": grpc_tls, "grpc_port": grpc_port}, f)
    p = subprocess.run([keel, "serve", "--model", "m=" + model, "--check", "--config", path(name)],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


for name, tls, want in file_errors("grpc_tls") + [
        ("unknown", dict(cert_file="server.pem", foo="x"), "grpc_tls.foo: unknown key"),
        ("notobject", ["server.pem"], "grpc_tls: expected an object")]:
    rc, out = grpc_check("grpc_" + name + ".json", tls)
    check(rc == 2 and want in out and key_body not in out and "PRIVATE KEY" not in out,
          "--check %s: fails naming the grpc_tls field and file (rc %d: %s)" % (name, rc, out.strip()[:160]))
rc, out = grpc_check("grpc_ok.json", dict(cert_file="server.pem", key_file="server.key", client_ca_file="ca.pem"))
check(rc == 0 and "ok: grpc_tls " + path("server.pem") + " (client certificates required)" in out,
      "--check: valid grpc_tls reported (rc %d: %s)" % (rc, out.strip()[:160]))
rc, out = grpc_check("grpc_off.json", dict(cert_file="server.pem", key_file="client.key"), grpc_port=-1)
check(rc == 0 and "grpc_tls" not in out, "--check with gRPC off reads no grpc_tls file, as the start does (rc %d: %s)" %
      (rc, out.strip()[:160]))
# A real start with a grpc_tls key that does not match: the same named error, not gRPC's "cannot bind".
with open(path("grpc_start_mismatch.json"), "w") as f:
    json.dump({"grpc_tls": dict(cert_file="server.pem", key_file="client.key"), "grpc_port": 0}, f)
p = subprocess.run([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--config",
                    path("grpc_start_mismatch.json")], capture_output=True, text=True, timeout=30)
err = p.stdout + p.stderr
check(p.returncode == 2 and "grpc_tls.key_file: " + path("client.key") + " does not match" in err and
      "cannot bind" not in err and key_body not in err,
      "start with a mismatched grpc_tls key fails naming the field (rc %d: %s)" % (p.returncode, err.strip()[:160]))
check.exit()
