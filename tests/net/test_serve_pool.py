#!/usr/bin/python3
"""keel serve scores off the I/O thread: while one connection's large batch
is being scored, other connections are answered. The same run with
--scoring-threads 0 (scoring on the one I/O thread) is the control: there
the small requests wait for the batch, so the check can fail. Loopback only;
servers stopped by PID. Usage: test_serve_pool.py KEEL_BINARY MODEL_JSON"""
import json
import os
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()


def run(scoring_threads):
    """Seconds by which the small requests finished before the batch (negative: after)."""
    srv = Server(keel, "--model", "m=" + model, "--grpc-port", "-1", "--io-threads", "1",
                 "--scoring-threads", str(scoring_threads), "--drain-delay-ms", "0")
    base = srv.base
    try:
        features = requests.get(base + "/v2/models/m", timeout=10).json()["inputs"][0]["shape"][1]
        # A batch that takes about 1.5 s to score on this build and machine,
        # measured on a smaller one (within the 64 MiB body limit).
        def post_rows(n):
            head = json.dumps({"inputs": [{"name": "input-0", "shape": [n, features], "datatype": "FP32",
                                           "parameters": {"binary_data_size": n * features * 4}}],
                               "parameters": {"binary_data_output": True}}).encode()
            t0 = time.monotonic()
            r = requests.post(base + "/v2/models/m/infer", data=head + bytes(n * features * 4),
                              headers={"Inference-Header-Content-Length": str(len(head))}, timeout=60)
            return time.monotonic() - t0, r.status_code
        probe, _ = post_rows(20000)
        rows = max(20000, min(int(20000 * 1.5 / max(probe, 1e-3)), (60 << 20) // (features * 4)))
        head = json.dumps({"inputs": [{"name": "input-0", "shape": [rows, features], "datatype": "FP32",
                                       "parameters": {"binary_data_size": rows * features * 4}}],
                           "parameters": {"binary_data_output": True}}).encode()
        done = {}

        def batch():
            r = requests.post(base + "/v2/models/m/infer", data=head + bytes(rows * features * 4),
                              headers={"Inference-Header-Content-Length": str(len(head))}, timeout=60)
            done["batch"] = (time.monotonic(), r.status_code)

        t = threading.Thread(target=batch)
        t.start()
        # Wait until the batch is admitted (read whole, being scored): its
        # upload may take longer than any fixed sleep on a loaded machine.
        # With scoring on the I/O thread, /metrics itself then waits for the
        # batch, which is what the control measures.
        end = time.monotonic() + 30
        while time.monotonic() < end and "batch" not in done:
            t0 = time.monotonic()
            text = requests.get(base + "/metrics", timeout=60).text
            in_flight = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("keel_server_in_flight")]
            if (in_flight and in_flight[0] >= 1) or time.monotonic() - t0 > 0.3:
                break
            time.sleep(0.005)
        s = requests.Session()
        small = {"inputs": [{"name": "input-0", "shape": [1, features], "datatype": "FP32",
                             "data": [0.5] * features}]}
        codes = [s.post(base + "/v2/models/m/infer", json=small, timeout=60).status_code for _ in range(5)]
        small_done = time.monotonic()
        t.join(timeout=60)
        check(all(c == 200 for c in codes) and done.get("batch", (0, 0))[1] == 200,
              "scoring_threads=%d: every request answered 200" % scoring_threads)
        return done["batch"][0] - small_done
    finally:
        srv.stop()


lead = run(2)
check(lead > 0, "with a scoring pool, 5 small requests finish %.3f s before the batch" % lead)
lead0 = run(0)
check(lead0 < 0, "control, scoring on the I/O thread: they wait for the batch (%.3f s after)" % -lead0)
check.exit()
