#!/usr/bin/python3
"""keel serve rebuilds an engine when its engine.json changes, against a real
process on loopback: a fault added to the primary (latency past its attempt
timeout) makes the fallback answer, flagged degraded, after SIGHUP; removing
it brings the primary back (the --poll-ms watcher, no signal); a config that
does not build, or that changes the model's inputs, is refused by name and
the served engine keeps answering; requests sent during the swaps all get an
answer. Usage: test_serve_config_reload.py KEEL_BINARY MODEL_JSON (the model
argument is unused: the engine test data has a primary and a backup)."""
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402

keel = sys.argv[1]
data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "engine")
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_cfg_")
folder = os.path.join(tmp, "models", "m")
os.makedirs(folder)
for f in ("model.json", "backup_linear.json"):
    shutil.copy(os.path.join(data, f), os.path.join(folder, f))
cfg_path = os.path.join(folder, "engine.json")


def config(fault=None, models_extra=None):
    primary = {"name": "primary", "path": "model.json"}
    if fault:
        primary["fault"] = fault
    return {"models": [primary, {"name": "backup", "path": "backup_linear.json"}] + (models_extra or []),
            "chain": [{"model": "primary", "isolated": True, "timeout_ms": 20},
                      {"model": "backup", "name": "fallback"}, {"default": [0.5]}]}


mtime = [time.time()]


def write(doc):
    """Writes engine.json with a modification time later than the last one."""
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with open(cfg_path, "w") as f:
        f.write(text)
    mtime[0] += 2
    os.utime(cfg_path, (mtime[0], mtime[0]))


write(config())
srv = Server(keel, "--models", os.path.join(tmp, "models"))
stop_load = threading.Event()
load_codes = []
try:
    b = srv.base
    body = {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP32", "data": [0.5] * 10}]}

    def infer():
        r = requests.post(b + "/v2/models/m/infer", json=body, timeout=10)
        return r.status_code, (r.json().get("parameters", {}) if r.status_code == 200 else r.text)

    def background():
        s = requests.Session()
        while not stop_load.is_set():
            try:
                load_codes.append(s.post(b + "/v2/models/m/infer", json=body, timeout=10).status_code)
            except requests.RequestException as e:
                load_codes.append(repr(e))

    loader = threading.Thread(target=background, daemon=True)
    loader.start()

    code, p = infer()
    check(code == 200 and p.get("stage") == "primary" and not p.get("degraded"), "before: the primary answers")

    def until(pred, seconds=10):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def refused_logged(n_before):
        return until(lambda: sum(1 for e in srv.log() if e.get("event") == "reload_refused") > n_before)

    # A fault through a reload of the engine config (SIGHUP).
    write(config(fault={"latency_ms": 60}))
    srv.signal(signal.SIGHUP)
    check(until(lambda: any(e.get("event") == "reload" and e.get("swapped", 0) >= 1 for e in srv.log())),
          "SIGHUP: the changed engine.json is rebuilt (reload swapped 1)")
    code, p = infer()
    check(code == 200 and p.get("stage") == "fallback" and p.get("degraded") is True and
          "primary" in p.get("degraded_reason", ""),
          "with the fault the fallback answers, flagged degraded: %s %s" % (code, p))

    # A config that does not build: refused by name, the faulty engine kept.
    n_refused = sum(1 for e in srv.log() if e.get("event") == "reload_refused")
    write('{"models": [{"name": "primary", "path": "model.json"}], "chain": [{"model": "primray"}]}')
    srv.signal(signal.SIGHUP)
    check(refused_logged(n_refused), "a config that does not build is refused and logged")
    refusal = [e for e in srv.log() if e.get("event") == "reload_refused"][-1]["error"]
    check("engine.json" in refusal and "primray" in refusal, "the refusal names the file and the bad value: %s" % refusal)
    code, p = infer()
    check(code == 200 and p.get("stage") == "fallback", "after a refused config the served engine still answers")

    # A config whose model has other inputs: refused (a new version's job).
    n_refused = sum(1 for e in srv.log() if e.get("event") == "reload_refused")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "xgboost", "base_score.json"),
                os.path.join(folder, "other.json"))
    other = config()
    other["models"][0]["path"] = "other.json"
    other["chain"] = [{"model": "primary"}]
    other["models"] = other["models"][:1]
    write(other)
    srv.signal(signal.SIGHUP)
    check(refused_logged(n_refused), "a config with other inputs is refused")
    refusal = [e for e in srv.log() if e.get("event") == "reload_refused"][-1]["error"]
    check("30 inputs" in refusal and "10" in refusal and "new version" in refusal,
          "the refusal says what changed: %s" % refusal)
    code, p = infer()
    check(code == 200 and p.get("stage") == "fallback", "the faulty engine still serves")
finally:
    stop_load.set()
    srv.stop()

# The watcher: no signal, the fault removed by editing the file.
write(config(fault={"latency_ms": 60}))
srv = Server(keel, "--models", os.path.join(tmp, "models"), "--poll-ms", "100")
try:
    b = srv.base
    code, p = infer()
    check(code == 200 and p.get("stage") == "fallback", "started with the fault: the fallback answers")
    write(config())
    check(until(lambda: infer()[1].get("stage") == "primary"), "--poll-ms: the edited engine.json is picked up")
    code, p = infer()
    check(code == 200 and not p.get("degraded"), "without the fault the primary answers, not degraded")
finally:
    srv.stop()

bad = [c for c in load_codes if c != 200]
check(len(load_codes) > 20 and not bad, "%d requests during the swaps, all answered 200 (others: %s)"
      % (len(load_codes), bad[:5]))
shutil.rmtree(tmp, ignore_errors=True)
check.exit()
