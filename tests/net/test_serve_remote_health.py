#!/usr/bin/python3
"""keel serve shows a RemoteModel stage's endpoints in its health and metrics,
against real processes on loopback: a front server whose engine.json chains
`{"remote": ...}` (one replica, hedging on) and then a default answers from
the replica; GET /v2/models/m/health lists the remote component with the
replica's address and state, and /metrics has keel_remote_endpoint_available
and keel_remote_hedges_total. The replica SIGSTOPped: health turns "down"
and "unhealthy" within the health checks' interval, the metric 0, and infer
still answers from the default, flagged degraded. SIGCONT: "up" again.
Usage: test_serve_remote_health.py KEEL_BINARY MODEL_JSON"""
import json
import os
import signal
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_remote_health_")
replica = Server(keel, "--model", "m=" + model, "--grpc-port", "-1")
front = None


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def remote_component():
    h = requests.get(front.base + "/v2/models/m/health", timeout=5).json()
    for c in h["components"]:
        if c["name"] == "remote:replicas-b":
            return c
    return None


def available_metric():
    text = requests.get(front.base + "/metrics", timeout=5).text
    want = 'keel_remote_endpoint_available{remote="replicas-b",endpoint="127.0.0.1:%d"}' % replica.port
    for line in text.splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return None


try:
    folder = os.path.join(tmp, "models", "m")
    os.makedirs(folder)
    engine = {
        "models": [{"name": "replicas", "remote": {
            "model": "m", "name": "replicas-b", "endpoints": [{"host": "127.0.0.1", "port": replica.port, "zone": "b"}],
            "attempt_timeout_ms": 200, "health_interval_ms": 100, "health_timeout_ms": 100,
            "hedge": {"min_samples": 5}}}],
        "chain": [{"model": "replicas"}, {"default": [0.5]}]}
    with open(os.path.join(folder, "engine.json"), "w") as f:
        json.dump(engine, f)
    with open(os.path.join(tmp, "serve.json"), "w") as f:
        json.dump({"inline_rows": 16}, f)  # on, and still the pool for a remote stage
    front = Server(keel, "--models", os.path.join(tmp, "models"), "--grpc-port", "-1",
                   "--config", os.path.join(tmp, "serve.json"))
    meta = requests.get(replica.base + "/v2/models/m", timeout=5).json()
    nf = meta["inputs"][0]["shape"][1]
    rows = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, nf],
                        "data": [0.25 * ((i % 7) - 3) for i in range(nf)]}]}
    r = requests.post(replica.base + "/v2/models/m/infer", json=rows, timeout=5)
    check(r.status_code == 200, "the replica answers directly: %d %s" % (r.status_code, r.text[:200]))
    want = r.json()["outputs"][0]["data"] if r.status_code == 200 else None
    r = requests.post(front.base + "/v2/models/m/infer", json=rows, timeout=5)
    body = r.json() if r.status_code == 200 else {}
    check(r.status_code == 200 and body["outputs"][0]["data"] == want and
          not body.get("parameters", {}).get("degraded", False),
          "the front answers the replica's score through RemoteModel: %s" % r.text[:200])
    # An engine with a remote stage may wait on the network: never scored
    # on an I/O thread, although serve.json turns run to completion on
    # (test_serve_inline.py).
    scored = [l for l in requests.get(front.base + "/metrics", timeout=5).text.splitlines()
              if l.startswith("keel_server_scored_total{")]
    check('keel_server_scored_total{on="io_thread"} 0' in scored and 'keel_server_scored_total{on="pool"} 1' in scored,
          "the remote-stage engine is scored on the pool: %s" % scored)

    h = requests.get(front.base + "/v2/models/m/health", timeout=5)
    check(h.status_code == 200, "GET /v2/models/m/health: 200 (%d)" % h.status_code)
    c = remote_component()
    check(c is not None and c["ok"] and c["state"] == "up", "health lists the remote component, up: %s" % c)
    addr = "127.0.0.1:%d" % replica.port
    check(c is not None and (addr + " zone b available") in c["detail"] and "hedge delay_ms=" in c["detail"],
          "its detail names the endpoint, its zone and state, and the hedge: %s" % (c or {}).get("detail"))
    check(available_metric() == 1.0, "/metrics: keel_remote_endpoint_available 1 (%s)" % available_metric())
    text = requests.get(front.base + "/metrics", timeout=5).text
    check('keel_remote_hedges_total{remote="replicas-b",result="launched"}' in text,
          "/metrics: keel_remote_hedges_total is exported")
    r = requests.get(front.base + "/v2/models/nope/health", timeout=5)
    check(r.status_code == 404, "an unknown model's health: 404 (%d)" % r.status_code)
    h = requests.get(replica.base + "/v2/models/m/health", timeout=5).json()
    check(h["ready"] and all(not c["name"].startswith("remote:") for c in h["components"]),
          "a model loaded from a file has no remote component: %s" % [c["name"] for c in h["components"]])

    replica.signal(signal.SIGSTOP)
    t0 = time.time()
    down = wait_for(lambda: (remote_component() or {}).get("state") == "down", 5)
    took = time.time() - t0
    c = remote_component()
    check(down and not c["ok"] and (addr + " zone b unhealthy") in c["detail"],
          "SIGSTOPped replica: health shows it down within %.2f s: %s" % (took, c))
    check(available_metric() == 0.0, "/metrics: keel_remote_endpoint_available 0 (%s)" % available_metric())
    t0 = time.time()
    r = requests.post(front.base + "/v2/models/m/infer", json=rows, timeout=5)
    took = time.time() - t0
    body = r.json() if r.status_code == 200 else {}
    check(r.status_code == 200 and body["outputs"][0]["data"] == [0.5] and
          body.get("parameters", {}).get("degraded") is True,
          "infer still answers, from the default, flagged degraded, in %.0f ms: %s" % (took * 1000, r.text[:200]))
    check(requests.get(front.base + "/v2/health/ready", timeout=5).status_code == 200,
          "the front stays ready (its default can answer)")

    replica.signal(signal.SIGCONT)
    up = wait_for(lambda: (remote_component() or {}).get("state") == "up", 5)
    check(up, "SIGCONT: the remote component is up again: %s" % remote_component())
    check(wait_for(lambda: available_metric() == 1.0, 3), "/metrics: available 1 again")
finally:
    try:
        replica.signal(signal.SIGCONT)
    except Exception:
        pass
    if front:
        front.stop()
    replica.stop()
check.exit()
