"""Load generator for the chaos suite: OIP infer requests at a fixed rate
(open loop per worker: each worker keeps a schedule and never waits for the
next slot when it is behind) over keep-alive connections, each request with
a Keel-Timeout-Ms deadline and a unique OIP "id", and every request's
terminal outcome recorded:

  answered   HTTP 200 carrying this request's id, not flagged degraded
  degraded   HTTP 200 with "parameters":{"degraded":true,...}
  failed     anything else: an HTTP error (503 shed, 504, ...), a refused or
             reset connection, no answer within the deadline plus 1 s, or
             an answer carrying another request's id
  late       (a flag on any answer) later than its deadline plus 5 ms
  duplicated (a flag) the id was answered before: one request, two answers

The client waits up to a second past the deadline, so that an answer that
comes late is seen and counted late rather than cut off by the client.

Used as a module (LoadGen, summary) by tests/chaos/*.py and scripts/
demo-cluster, or from the command line:
  loadgen.py URL [--rate R] [--seconds S] [--deadline-ms D] [--workers W] [--csv FILE]
Thread-safe: records are appended under a lock.
"""

import argparse
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

LATE_MS = 5.0
# One row of the example model's 10 features (examples/data/rows.csv).
ROW = [11.95, 14.96, 0.1158, 0.01787, 0.361, 26.65, 12.81, 17.72, 83.09, 0.04766]


class Record:
    __slots__ = ("rid", "sent", "latency_ms", "outcome", "code", "late", "duplicated", "detail", "stage", "score")

    def __init__(self, rid, sent):
        self.rid, self.sent = rid, sent
        self.latency_ms, self.outcome, self.code = 0.0, None, 0
        self.late = self.duplicated = False
        self.detail = ""
        self.stage = self.score = ""  # parameters.stage and outputs[0].data, as sent


class LoadGen:
    """Sends until stop(); records every request. t0 is time.monotonic() at start()."""

    def __init__(self, url, rate=200.0, deadline_ms=200, workers=8, model="m", row=ROW):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = "/v2/models/%s/infer" % model
        self.rate, self.deadline_ms, self.workers = float(rate), int(deadline_ms), int(workers)
        self.row = json.dumps(row)
        self.records, self.sent = [], 0
        self.answered_ids = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.t0 = None
        self.errors = []  # worker crashes: a request without an outcome

    def start(self):
        # A thread woken by its answer waits for the GIL up to the switch
        # interval (5 ms by default): that wait would count against the
        # deadline + 5 ms rule, so hand the GIL over more often.
        sys.setswitchinterval(0.0005)
        self.t0 = time.monotonic()
        for w in range(self.workers):
            t = threading.Thread(target=self._worker, args=(w,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.deadline_ms / 1000.0 + 5)
        return self.records

    def now(self):
        return time.monotonic() - self.t0

    def _connect(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.deadline_ms / 1000.0 + 1.0)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def _worker(self, w):
        conn = None
        j = 0
        period = self.workers / self.rate if self.rate > 0 else 0.0
        start = time.monotonic() + w * (period / max(self.workers, 1))
        while not self.stopping.is_set():
            if period:
                due = start + j * period
                delay = due - time.monotonic()
                if delay > 0:
                    if self.stopping.wait(delay):
                        break
            j += 1
            with self.lock:
                self.sent += 1
                rid = "%d-%d" % (w, j)
            rec = Record(rid, time.monotonic() - self.t0)
            body = ('{"id":"%s","inputs":[{"name":"x","shape":[1,%d],"datatype":"FP32","data":%s}]}'
                    % (rid, len(ROW), self.row)).encode()
            headers = {"Content-Type": "application/json", "Keel-Timeout-Ms": str(self.deadline_ms)}
            t = time.monotonic()
            try:
                if conn is None:
                    conn = self._connect()
                conn.request("POST", self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                rec.latency_ms = (time.monotonic() - t) * 1000.0
                rec.code = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                if resp.status == 200:
                    if not data.startswith(('{"id":"%s"' % rid).encode()):
                        rec.outcome, rec.detail = "failed", "answer for another id: " + data[:60].decode("latin-1")
                    else:
                        rec.outcome = "degraded" if b'"degraded":true' in data else "answered"
                        rec.stage = _field(data, b'"stage":"', b'"')
                        rec.score = _field(data, b'"data":[', b']')
                else:
                    rec.outcome, rec.detail = "failed", data[:80].decode("latin-1")
                rec.late = rec.latency_ms > self.deadline_ms + LATE_MS
            except (OSError, http.client.HTTPException) as e:
                rec.latency_ms = (time.monotonic() - t) * 1000.0
                rec.outcome, rec.detail = "failed", type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            except Exception as e:  # a bug here must not lose the request's outcome
                rec.outcome, rec.detail = "failed", "loadgen: %r" % e
                self.errors.append(repr(e))
            with self.lock:
                if rec.outcome in ("answered", "degraded"):
                    rec.duplicated = rid in self.answered_ids
                    self.answered_ids.add(rid)
                self.records.append(rec)
        if conn is not None:
            conn.close()


def _field(data, start, end):
    i = data.find(start)
    if i < 0:
        return ""
    i += len(start)
    return data[i:data.find(end, i)].decode("latin-1")


def percentile(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def summary(records, t_from=None, t_to=None):
    """Counts and latency percentiles of the records sent in [t_from, t_to)."""
    rs = [r for r in records if (t_from is None or r.sent >= t_from) and (t_to is None or r.sent < t_to)]
    out = {"requests": len(rs)}
    for k in ("answered", "degraded", "failed"):
        out[k] = sum(1 for r in rs if r.outcome == k)
    out["late"] = sum(1 for r in rs if r.late)
    out["duplicated"] = sum(1 for r in rs if r.duplicated)
    lat = [r.latency_ms for r in rs if r.outcome in ("answered", "degraded")]
    out["p50_ms"], out["p99_ms"] = percentile(lat, 50), percentile(lat, 99)
    out["max_ms"] = max(lat) if lat else 0.0
    codes = {}
    for r in rs:
        if r.outcome == "failed":
            key = str(r.code) if r.code else r.detail.split(":")[0]
            codes[key] = codes.get(key, 0) + 1
    out["failed_by"] = codes
    return out


def one_outcome_each(gen):
    """The Jepsen rule: every request sent has exactly one terminal outcome.
    Returns a list of violations (empty when it holds)."""
    bad = []
    ids = {}
    for r in gen.records:
        ids[r.rid] = ids.get(r.rid, 0) + 1
        if r.outcome not in ("answered", "degraded", "failed"):
            bad.append("%s: no terminal outcome" % r.rid)
    if len(gen.records) != gen.sent:
        bad.append("%d sent, %d outcomes recorded" % (gen.sent, len(gen.records)))
    bad += ["%s: %d outcomes" % (k, n) for k, n in ids.items() if n != 1]
    bad += ["%s: answered twice" % r.rid for r in gen.records if r.duplicated]
    bad += ["loadgen error: " + e for e in gen.errors]
    return bad


def unflagged(records, primary="primary"):
    """Answers whose degraded flag disagrees with the stage that answered:
    every answer not from the primary stage must be flagged degraded."""
    return [r for r in records if r.outcome in ("answered", "degraded")
            and (r.outcome == "degraded") != (r.stage != primary)]


def write_csv(records, path):
    with open(path, "w") as f:
        f.write("id,sent_s,latency_ms,outcome,code,late\n")
        for r in sorted(records, key=lambda r: r.sent):
            f.write("%s,%.4f,%.3f,%s,%d,%d\n" % (r.rid, r.sent, r.latency_ms, r.outcome, r.code, r.late))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s over all workers (0: closed loop)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--deadline-ms", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--csv")
    a = ap.parse_args()
    g = LoadGen(a.url, a.rate, a.deadline_ms, a.workers).start()
    time.sleep(a.seconds)
    g.stop()
    s = summary(g.records)
    s["violations"] = one_outcome_each(g)[:10]
    print(json.dumps(s))
    if a.csv:
        write_csv(g.records, a.csv)
    return 1 if s["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
