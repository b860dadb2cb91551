#!/usr/bin/python3
"""keel serve's run-to-completion rule (ServiceConfig::inline_rows): a small
call on an engine that never waits is scored on the I/O thread that decoded
it; a call over inline_rows rows, one whose rows would take longer than
inline_budget_us at the model's recent time per row, and every call on an
engine that may wait (retry with backoff, isolated stage, a bulkhead that
queues, a fault injector) go to the scoring pool. keel_server_scored_total{on=...} counts
where each call was scored. Loopback only; servers stopped by PID.
Usage: test_serve_inline.py KEEL_BINARY MODEL_JSON"""
import json
import os
import shutil
import sys
import tempfile

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel, model = sys.argv[1], os.path.abspath(sys.argv[2])
check = Checks()
work = tempfile.mkdtemp(prefix="keel-inline-")


def scored(base):
    """(io_thread, pool) counts from /metrics."""
    out = {}
    for line in requests.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("keel_server_scored_total{"):
            out[line.split('on="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out.get("io_thread", -1), out.get("pool", -1)


def infer(base, name, rows, features):
    body = {"inputs": [{"name": "input-0", "shape": [rows, features], "datatype": "FP32",
                        "data": [0.25 * (i % 7) for i in range(rows * features)]}]}
    r = requests.post(base + "/v2/models/%s/infer" % name, json=body, timeout=10)
    return r.status_code


def serve(name, engine=None, config=None):
    """A server of one model folder `name` (engine.json when given)."""
    folder = os.path.join(work, "repo-" + name, name)
    os.makedirs(folder)
    shutil.copy(model, os.path.join(folder, "model.json"))
    if engine is not None:
        with open(os.path.join(folder, "engine.json"), "w") as f:
            json.dump(engine, f)
    args = ["--models", os.path.dirname(folder), "--grpc-port", "-1", "--drain-delay-ms", "0"]
    if config is not None:
        path = os.path.join(work, name + "-serve.json")
        with open(path, "w") as f:
            json.dump(config, f)
        args += ["--config", path]
    srv = Server(keel, *args)
    features = requests.get(srv.base + "/v2/models/" + name, timeout=10).json()["inputs"][0]["shape"][1]
    return srv, features


def chain_of(stage):
    return {"models": [{"name": "primary", "path": "model.json"}], "chain": [dict(model="primary", **stage)]}


try:
    # Single rows on the I/O thread; 17 rows (over the default 16) on the
    # pool. The budget is set far above any call's time here, so that a
    # call slowed by a loaded machine cannot move the next ones to the pool
    # (the budget has its own case below).
    srv, f = serve("plain", config={"inline_rows": 16, "inline_budget_us": 1000000})
    try:
        codes = [infer(srv.base, "plain", 1, f) for _ in range(20)]
        check(codes == [200] * 20, "plain engine: 20 single-row calls answered 200")
        check(scored(srv.base) == (20, 0), "plain engine: the 20 scored on the I/O thread, %s" % (scored(srv.base),))
        check(infer(srv.base, "plain", 16, f) == 200 and scored(srv.base) == (21, 0),
              "16 rows (inline_rows) still on the I/O thread")
        check(infer(srv.base, "plain", 17, f) == 200 and scored(srv.base) == (21, 1),
              "17 rows on the pool, %s" % (scored(srv.base),))
    finally:
        srv.stop()

    # name: (engine.json or None, serve.json or None, calls, (io_thread, pool), what)
    on = {"inline_rows": 16, "inline_budget_us": 1000000}
    cases = {
        # Engines that may wait while scoring: every call on the pool.
        "retry": (chain_of({"retry": {"max_attempts": 3, "initial_backoff_ms": 5, "max_backoff_ms": 20}}), on,
                  5, (0, 5), "a retry with backoff: on the pool"),
        "isolated": (chain_of({"isolated": True, "timeout_ms": 500}), on, 5, (0, 5), "an isolated stage: on the pool"),
        "queued": (chain_of({"bulkhead": {"max_concurrent": 8, "max_wait_ms": 50}}), on, 5, (0, 5),
                   "a bulkhead that queues: on the pool"),
        "fault": ({"models": [{"name": "primary", "path": "model.json", "fault": {"error_rate": 0.0}}],
                   "chain": [{"model": "primary"}]}, on, 5, (0, 5), "a fault injector (latency faults sleep): on the pool"),
        # A retry without backoff never sleeps.
        "retry0": (chain_of({"retry": {"max_attempts": 2, "initial_backoff_ms": 0, "max_backoff_ms": 0}}),
                   on, 5, (5, 0), "a retry without backoff: on the I/O thread"),
        # A budget no scored row fits: the first call (no time per row known
        # yet) is inline, every later one on the pool.
        "budget": (None, {"inline_rows": 16, "inline_budget_us": 0}, 6, (1, 5), "inline_budget_us 0: 1 inline, then 5 on the pool"),
        "never": (None, None, 4, (0, 4), "the default (inline_rows 0): every call on the pool"),
    }
    for name, (engine, config, calls, want, what) in cases.items():
        srv, f = serve(name, engine, config)
        try:
            codes = [infer(srv.base, name, 1, f) for _ in range(calls)]
            got = scored(srv.base)
            check(codes == [200] * calls and got == want, "%s: %s (io_thread, pool)" % (what, got))
        finally:
            srv.stop()
finally:
    shutil.rmtree(work, ignore_errors=True)
check.exit()
