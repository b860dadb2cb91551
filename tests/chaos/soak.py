"""Soak: a local cluster (scripts/cluster) under steady load through HAProxy,
with every replica's model file rewritten and reloaded (SIGHUP) every few
seconds. Samples each replica's RSS (/proc/PID/status VmRSS) and open file
descriptors (/proc/PID/fd) every second; after warm-up (the first third)
RSS and non-socket descriptors must stay flat: the median of the last third
within 5% of the median of the second third; sockets (which come and go
with HAProxy's connections) must not peak more than 2 above their earlier
peak. Also: one outcome per request, none late, none failed,
every reload swapped a model (keel_reloads_total{result="ok"} rises).
Usage: soak.py SOURCE_DIR KEEL [--seconds S] [--reload-every S]
(default 180 s, or KEEL_SOAK_SECONDS; ctest runs 45 s; KEEL_CHAOS_FULL=1: at least 180 s).
"""

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402
import loadgen  # noqa: E402

FLAT = 0.05


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS for PID %d" % pid)


def fds(pid):
    """(sockets, other descriptors) open in PID."""
    d = "/proc/%d/fd" % pid
    kinds = [os.readlink(os.path.join(d, f)) for f in os.listdir(d)]
    sockets = sum(1 for k in kinds if k.startswith("socket:"))
    return sockets, len(kinds) - sockets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("keel")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("KEEL_SOAK_SECONDS", 180)))
    ap.add_argument("--reload-every", type=float, default=3.0)
    ap.add_argument("--rate", type=float, default=200)
    a = ap.parse_args()
    if os.environ.get("KEEL_CHAOS_FULL") == "1":
        a.seconds = max(a.seconds, 180.0)
    work = tempfile.mkdtemp(prefix="keel-soak-")
    c = chaos.Cluster(a.src, a.keel, work)
    failures = []
    c.up()
    try:
        pids = {r: c.pid(r) for r in c.replicas}
        reloads0 = {r: c.metric(r, 'keel_reloads_total{engine="m",result="ok"}') for r in c.replicas}
        g = loadgen.LoadGen("http://" + c.addr("haproxy"), a.rate, 200, workers=8).start()
        samples = {r: [] for r in c.replicas}  # (t, rss_kb, fds)
        next_reload = a.reload_every
        hups = 0
        while g.now() < a.seconds:
            t = g.now()
            for r, pid in pids.items():
                samples[r].append((t, rss_kb(pid), *fds(pid)))
            if a.reload_every > 0 and t >= next_reload:
                for r in c.replicas:
                    # The same model, written anew: a changed file to reload.
                    p = os.path.join(c.model_dir(r), "model.json")
                    data = open(p, "rb").read()
                    with open(p + ".tmp", "wb") as f:
                        f.write(data)
                    os.replace(p + ".tmp", p)
                    os.kill(pids[r], signal.SIGHUP)
                hups += 1
                next_reload += a.reload_every
            time.sleep(1.0)
        g.stop()
        for r in c.replicas:
            swapped = c.metric(r, 'keel_reloads_total{engine="m",result="ok"}') - reloads0[r]
            if swapped < hups - 1:  # the last SIGHUP may still be loading
                failures.append("%s: %d reloads swapped, %d SIGHUPs sent" % (r, swapped, hups))
    finally:
        c.down()
    with open(os.path.join(work, "samples.csv"), "w") as f:
        f.write("replica,t_s,rss_kb,sockets,other_fds\n")
        for r, xs in samples.items():
            f.writelines("%s,%.1f,%d,%d,%d\n" % (r, *x) for x in xs)
    s = loadgen.summary(g.records)
    failures += loadgen.one_outcome_each(g)[:5]
    if s["failed"]:
        failures.append("%d failed requests: %s" % (s["failed"], s["failed_by"]))
    if s["late"]:
        failures.append("%d answers later than deadline + 5 ms" % s["late"])
    print("soak: %.0f s, %d requests, %d failed, %d late, p99 %.1f ms, %d reloads per replica"
          % (a.seconds, s["requests"], s["failed"], s["late"], s["p99_ms"], hups))
    for r, xs in samples.items():
        n = len(xs)
        mid, last = xs[n // 3: 2 * n // 3], xs[2 * n // 3:]
        if len(mid) < 3 or len(last) < 3:
            failures.append("%s: only %d samples" % (r, n))
            continue
        for i, what in ((1, "RSS kB"), (3, "non-socket fds"), (2, "sockets")):
            m1, m2 = statistics.median(x[i] for x in mid), statistics.median(x[i] for x in last)
            drift = (m2 - m1) / m1
            print("  %s %-14s after warm-up %8.0f, at the end %8.0f (%+.1f%%), max %d"
                  % (r, what, m1, m2, 100 * drift, max(x[i] for x in xs)))
            if what == "sockets":
                # Connections come and go with HAProxy's keep-alive and checks:
                # a leak shows as a peak that keeps rising.
                p1, p2 = max(x[i] for x in mid), max(x[i] for x in last)
                if p2 > p1 + 2:
                    failures.append("%s: open sockets peaked at %d after warm-up, then %d" % (r, p1, p2))
            elif abs(drift) > FLAT:
                failures.append("%s: %s moved %+.1f%% after warm-up (%.0f -> %.0f), limit %.0f%%"
                                % (r, what, 100 * drift, m1, m2, 100 * FLAT))
    for f in failures:
        print("FAIL: soak:", f)
    if failures:
        print("state and logs kept in", work)
    else:
        shutil.rmtree(work, ignore_errors=True)
        print("soak: flat, passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
