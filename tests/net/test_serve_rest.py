#!/usr/bin/python3
"""End-to-end test of `keel serve` over REST with a client that is not ours
(Python requests, and curl). Starts the server on a free loopback port, stops
it by PID. Usage: test_serve_rest.py KEEL_BINARY MODEL_JSON"""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import requests

keel, model = sys.argv[1], sys.argv[2]
failures = []


def check(ok, what):
    print(("ok     " if ok else "FAILED ") + what, flush=True)
    if not ok:
        failures.append(what)


proc = subprocess.Popen([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "-1",
                         "--drain-delay-ms", "200",
                         "--drain-timeout-ms", "3000"], stdout=subprocess.PIPE, text=True)
try:
    first = json.loads(proc.stdout.readline())
    base = "http://" + first["http"]
    check(first["event"] == "listening", "first log line names the bound address")
    s = requests.Session()
    r = s.get(base + "/v2")
    check(r.status_code == 200 and r.json()["name"] == "keel", "GET /v2")
    check(s.get(base + "/v2/health/live").json() == {"live": True}, "live")
    check(s.get(base + "/v2/health/ready").json() == {"ready": True}, "ready")
    meta = s.get(base + "/v2/models/m").json()
    features = meta["inputs"][0]["shape"][1]
    check(meta["name"] == "m" and meta["versions"] == ["1"], "model metadata")
    check(s.get(base + "/v2/models/m/versions/1/ready").json() == {"name": "m", "ready": True}, "model ready")
    body = {"id": "r-1", "inputs": [{"name": "input-0", "shape": [2, features], "datatype": "FP32",
                                     "data": [0.25] * (2 * features)}]}
    r = s.post(base + "/v2/models/m/infer", json=body, headers={"traceparent":
               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    j = r.json()
    check(r.status_code == 200 and j["id"] == "r-1" and j["outputs"][0]["shape"] == [2, 1], "infer 2 rows")
    check(j["parameters"]["stage"] == "primary" and j["parameters"]["degraded"] is False, "Keel answer fields")
    nested = dict(body, inputs=[dict(body["inputs"][0], data=[[0.25] * features] * 2)])
    check(s.post(base + "/v2/models/m/versions/1/infer", json=nested).json()["outputs"] == j["outputs"],
          "nested data, versioned path")
    # Binary tensors both ways.
    header = json.dumps({"inputs": [{"name": "input-0", "shape": [2, features], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 8 * features}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = s.post(base + "/v2/models/m/infer", data=header + struct.pack("<%df" % (2 * features), *([0.25] * 2 * features)),
               headers={"Inference-Header-Content-Length": str(len(header))})
    hl = int(r.headers["Inference-Header-Content-Length"])
    vals = struct.unpack("<2f", r.content[hl:])
    check(abs(vals[0] - j["outputs"][0]["data"][0]) < 1e-7, "binary request and response")
    # Error paths.
    for what, resp, code in [
        ("malformed JSON", s.post(base + "/v2/models/m/infer", data=b'{"inputs": [}'), 400),
        ("wrong features", s.post(base + "/v2/models/m/infer", json=dict(body, inputs=[dict(
            body["inputs"][0], shape=[1, 3], data=[1, 2, 3])])), 400),
        ("wrong datatype", s.post(base + "/v2/models/m/infer", json=dict(body, inputs=[dict(
            body["inputs"][0], datatype="BYTES")])), 400),
        ("unknown model", s.post(base + "/v2/models/zz/infer", json=body), 404),
        ("unknown version", s.post(base + "/v2/models/m/versions/9/infer", json=body), 404),
        ("bad name", s.get(base + "/v2/models/..%2F/ready"), 400),
        ("no route", s.get(base + "/v3"), 404),
        ("method", s.get(base + "/v2/models/m/infer"), 405),
        ("bad timeout header", s.post(base + "/v2/models/m/infer", json=body, headers={"Keel-Timeout-Ms": "x"}), 400),
        ("body too large", s.post(base + "/v2/models/m/infer", data=b"x" * (65 * 1024 * 1024)), 413),
    ]:
        ok = resp.status_code == code and "error" in resp.json()
        check(ok, "%s -> %d (%d %s)" % (what, code, resp.status_code, resp.text[:100]))
    s = requests.Session()
    r = s.get(base + "/v2", headers={"X-Big": "y" * 20000})
    check(r.status_code == 431, "header too large -> 431")
    s = requests.Session()
    stats = s.get(base + "/v2/models/m/stats").json()["model_stats"][0]
    check(stats["name"] == "m" and stats["inference_count"] >= 6, "stats extension")
    metrics = s.get(base + "/metrics").text
    for name in ["keel_http_requests_total{", "keel_server_in_flight", "keel_server_connections",
                 'keel_server_shed_total{reason="limit"}', "keel_server_bytes_received_total",
                 "keel_server_bytes_sent_total", 'keel_server_request_phase_seconds_bucket{phase="score"',
                 "keel_server_ready 1"]:
        check(name in metrics, "metric " + name)
    check('keel_http_requests_total{endpoint="infer",code="200"}' in metrics, "requests by endpoint and code")
    out = subprocess.run(["curl", "-s", "-X", "POST", base + "/v2/models/m/infer", "-H",
                          "Content-Type: application/json", "-d", json.dumps(body)], capture_output=True, text=True,
                         timeout=10)
    check(json.loads(out.stdout)["outputs"] == j["outputs"], "curl infer")
    # Drain: readiness false at once, still answering during drain_delay, exit 0.
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    s = requests.Session()
    check(s.get(base + "/v2/health/ready").status_code == 503, "not ready while draining")
    check(s.post(base + "/v2/models/m/infer", json=body).status_code == 200, "still scoring during drain_delay")
    rc = proc.wait(timeout=10)
    check(rc == 0, "exit 0 after drain (%s)" % rc)
    log = proc.stdout.read()
    check('"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' in log, "traceparent in the access log")
finally:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
