"""The metrics contract against a live process: starts `keel serve` on a free
loopback port with an engine that has every component that exports metrics
(breaker, retry, bulkhead, fallback, default, cache, idempotency, validator,
anomaly detector, drift monitor), sends requests that exercise them, scrapes
/metrics and checks it against deploy/monitoring/metrics.txt:
  - promtool accepts the exposition;
  - every family the process exports is listed, with the listed type and
    exactly the listed labels (histograms: plus le on _bucket);
  - every listed family of the engine, validate and server sources is
    exported (the redis source needs a Redis backend: checked by name in
    tests/net, and said so here, not skipped silently).
Usage: metrics_live.py KEEL SOURCE_DIR WORK_DIR
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import requests

keel, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


# The contract.
contract = {}
for line in open(os.path.join(src, "deploy/monitoring/metrics.txt")):
    if not line.strip() or line.startswith("#"):
        continue
    name, mtype, labels, source = line.split()
    contract[name] = (mtype, set() if labels == "-" else set(labels.split(",")), source)

# A model folder whose engine.json uses every metric-exporting component.
models = os.path.join(work, "models")
m = os.path.join(models, "m")
os.makedirs(m)
data = os.path.join(src, "examples/data")
shutil.copy(os.path.join(data, "model.json"), m)
shutil.copy(os.path.join(data, "backup_linear.json"), m)
subprocess.run([keel, "profile", "--input", os.path.join(data, "rows.csv"), "--model", os.path.join(m, "model.json"),
                "--output", os.path.join(m, "profile.json")], check=True, timeout=60, stdout=subprocess.DEVNULL)
engine = {
    "models": [{"name": "primary", "path": "model.json"}, {"name": "backup", "path": "backup_linear.json"}],
    "chain": [
        {"model": "primary", "breaker": {"window": "count", "window_size": 20, "minimum_calls": 5,
                                          "failure_rate": 0.5, "wait_in_open_ms": 2000, "half_open_probes": 2},
         "retry": {"max_attempts": 2, "initial_backoff_ms": 1, "max_backoff_ms": 5},
         "bulkhead": {"max_concurrent": 32}},
        {"model": "backup", "name": "fallback"},
        {"default": [0.5]},
    ],
    "validator": {"schema": {"features": [{"name": "mean radius", "min": 0, "max": 100}]}},
    "anomaly": {"profile": "profile.json", "policy": "flag"},
    "drift": {"profile": "profile.json", "window_rows": 4},
    "cache": {"max_entries": 100, "ttl_ms": 60000},
    "idempotency": {"ttl_ms": 60000},
}
with open(os.path.join(m, "engine.json"), "w") as f:
    json.dump(engine, f)

rows = [l.strip() for l in open(os.path.join(data, "rows.csv"))]
header, rows = rows[0].split(","), [r for r in rows[1:] if r]
features = len(header)

proc = subprocess.Popen([keel, "serve", "--models", models, "--http-port", "0", "--drain-delay-ms", "0"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    first = json.loads(proc.stdout.readline())
    base = "http://" + first["http"]

    def infer(values, n, key=None):
        body = {"inputs": [{"name": "x", "shape": [n, features], "datatype": "FP32", "data": values}]}
        headers = {"Idempotency-Key": key} if key else {}
        return requests.post(base + "/v2/models/m/infer", json=body, headers=headers, timeout=10)

    def row(i):
        return [float(v) if v else None for v in rows[i % len(rows)].split(",")]

    for i in range(12):  # single rows, some twice (cache), a replay (idempotency)
        r = infer(row(i % 6), 1, key="k-%d" % (i % 3) if i >= 9 else None)
        if r.status_code != 200:
            fail("infer %d: HTTP %d %s" % (i, r.status_code, r.text[:200]))
    batch = sum((row(i) for i in range(8)), [])
    if infer(batch, 8).status_code != 200:
        fail("batch infer failed")
    # One row out of the schema's range: the validator and anomaly detector see it.
    bad = row(0)
    bad[0] = 1e6
    infer(bad, 1)
    requests.get(base + "/v2/models/m/infer", timeout=10)  # 405: a non-2xx code label
    text = requests.get(base + "/metrics", timeout=10).text
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("keel serve did not exit within 20 s of SIGTERM")

with open(os.path.join(work, "metrics.prom"), "w") as f:
    f.write(text)
pt = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
# promtool exits 1 for lint warnings as well as errors; only errors fail here.
if pt.returncode != 0 and "error" in (pt.stdout + pt.stderr).lower():
    fail("promtool check metrics: " + (pt.stdout + pt.stderr)[:500])

types, labels = {}, {}
for line in text.splitlines():
    t = re.match(r"# TYPE (\S+) (\S+)", line)
    if t:
        types[t.group(1)] = t.group(2)
        continue
    if not line or line.startswith("#"):
        continue
    s = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
    if not s:
        fail("unparsable sample line: " + line[:120])
        continue
    name, lab = s.group(1), s.group(3) or ""
    keys = set(k for k in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', lab))
    family = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            family = name[: -len(suffix)]
            if suffix == "_bucket":
                keys.discard("le")
    labels.setdefault(family, set()).add(frozenset(keys))

for family, sets in sorted(labels.items()):
    if family not in contract:
        fail("%s: exported but not in deploy/monitoring/metrics.txt" % family)
        continue
    want_type, want_labels, _ = contract[family]
    if types.get(family) != want_type:
        fail("%s: exported as %s, metrics.txt says %s" % (family, types.get(family), want_type))
    for keys in sets:
        if set(keys) != want_labels:
            fail("%s: exported with labels {%s}, metrics.txt says {%s}" % (
                family, ",".join(sorted(keys)), ",".join(sorted(want_labels))))

unchecked = []
for name, (_, _, source) in sorted(contract.items()):
    if source in ("engine", "validate", "server") and name not in labels:
        fail("%s: in metrics.txt (source %s) but not exported by a serving process" % (name, source))
    elif source not in ("engine", "validate", "server"):
        unchecked.append("%s (%s)" % (name, source))

print("checked %d exported families against %d listed" % (len(labels), len(contract)))
print("not checked live here (need their backend): " + ", ".join(unchecked))
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
