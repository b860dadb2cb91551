#!/usr/bin/python3
"""Two `keel serve` replicas sharing one real redis-server (and a Sentinel):
a row scored on one replica is a cache hit on the other; the same
Idempotency-Key on both replicas is scored once and answered identically
(one row and a batch, in turn and at once), and reused with another payload
it is a 422 on the other replica; Redis SIGSTOPped or SIGKILLed, every
request is still answered 200 within its deadline and readiness stays 200;
Redis restarted, the cache works again. The replicas are given Redis
command and connect timeouts of 2 s, so that only the request's deadline
(and the share of it Redis may use) bounds a Redis call: an answer within
the deadline shows the deadline reached Redis. Loopback only; every process
stopped by PID. Usage: test_serve_redis.py KEEL_BINARY MODEL_JSON"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks, Server  # noqa: E402
from redis_server import RedisSentinel, RedisServer, ask, wait_for  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
work = tempfile.mkdtemp(prefix="keel-serve-redis-")
rng = random.Random(7)
DEADLINE_MS = 300
SHARE = 0.2    # of a request's time Redis may use: its calls end by 60 ms
SHARE_SLACK_MS = 100  # the same overhead, generous: a Redis call past its share waits until the deadline
SLACK_MS = 50  # loopback client overhead on a shared 2-core machine; a Redis wait would be 2000 ms


def metric(srv, name):
    """Sum of a family's samples (name may carry labels) on one replica."""
    text = requests.get(srv.base + "/metrics", timeout=5).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name) and not l.startswith("#"))


def scored(*servers):
    return sum(metric(s, 'keel_stage_answers_total{engine="m",stage="primary"}') for s in servers)


def write_config(name, redis):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        # inline_rows on: an engine with Redis state must still be scored on the pool.
        json.dump({"access_log": False, "drain_delay_ms": 0, "inline_rows": 16, "redis": redis}, f)
    return path


def body(rows, rid):
    return {"id": rid, "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                                   "data": [v for r in rows for v in r]}]}


def fresh_rows(n):
    return [[round(rng.uniform(-2, 2), 3) for _ in range(FEATURES)] for _ in range(n)]


def infer(sess, srv, rows, rid, key=None, deadline_ms=None):
    headers = {}
    if key:
        headers["Idempotency-Key"] = key
    if deadline_ms:
        headers["Keel-Timeout-Ms"] = str(deadline_ms)
    t = time.monotonic()
    r = sess.post(srv.base + "/v2/models/m/infer", json=body(rows, rid), headers=headers, timeout=10)
    return r, (time.monotonic() - t) * 1000.0


def ready(srv):
    return requests.get(srv.base + "/v2/health/ready", timeout=5).status_code == 200


def config_errors():
    """serve.json's redis section: bad values name their path; --check reports Redis."""
    cases = [
        ({"address": "127.0.0.1:6379", "cache": {"size": 1}}, "redis.cache.size: unknown key"),
        ({"adress": "127.0.0.1:6379"}, "redis.adress: unknown key"),
        ({"address": "127.0.0.1"}, "redis.address: expected host:port"),
        ({"address": "127.0.0.1:6379", "sentinels": ["127.0.0.1:26379"]}, "redis: give either address or sentinels"),
        ({"sentinels": ["127.0.0.1:26379", "x:99999"]}, "redis.sentinels[1]: port must be in [1, 65535]"),
        ({"cache": {"ttl_ms": 10}}, "redis: needs address (host:port) or sentinels"),
        ({"address": "127.0.0.1:6379", "deadline_share": 2}, "redis.deadline_share: must be in"),
    ]
    for redis, want in cases:
        p = subprocess.run([keel, "serve", "--check", "--model", "m=" + model, "--config", write_config("bad.json", redis)],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 2 and want in p.stderr, "config %s -> exit 2 naming '%s' (got %d: %s)"
              % (json.dumps(redis), want, p.returncode, p.stderr.strip()))


def acl():
    """An ACL user and password from files (as deploy/kubernetes mounts them): used; a wrong password is
    logged at start without the password, and requests are answered all the same."""
    server = RedisServer(acl_user="keel", acl_password="s3cret-pw")
    srv = None
    try:
        for pw, ok in (("s3cret-pw", True), ("wrong-pw-42", False)):
            for name, text in (("user", "keel\n"), ("password", pw + "\n")):
                with open(os.path.join(work, name), "w") as f:
                    f.write(text)
            cfg = write_config("acl.json", {"address": "127.0.0.1:%d" % server.port, "user_file": "user",
                                            "password_file": "password"})
            srv = Server(keel, "--model", "m=" + model, "--grpc-port", "-1", "--config", cfg)
            wait_for(lambda: any(e.get("event") == "redis" for e in srv.log()), 5, "no redis event logged")
            ev = [e for e in srv.log() if e.get("event") == "redis"][0]
            n = requests.get(srv.base + "/v2/models/m", timeout=5).json()["inputs"][0]["shape"][1]
            r = requests.post(srv.base + "/v2/models/m/infer", json=body([[0.5] * n], "acl"), timeout=10)
            if ok:
                check(ev["state"] == "up" and r.status_code == 200, "ACL user from user_file + password_file: up")
            else:
                check(ev["state"] == "unreachable" and "WRONGPASS" in ev.get("error", "")
                      and pw not in json.dumps(ev) and r.status_code == 200,
                      "a wrong password: logged unreachable (password not shown), requests answered: %s" % ev)
            srv.stop()
            srv = None
    finally:
        if srv:
            srv.stop()
        server.close()


config_errors()
acl()
redis = RedisServer()
# Timeouts far past the deadline: only the deadline bounds a Redis call.
slow_client = {"connect_timeout_ms": 2000, "command_timeout_ms": 2000, "deadline_share": SHARE}
cfg = write_config("serve.json", dict(address="127.0.0.1:%d" % redis.port, **slow_client))
p = subprocess.run([keel, "serve", "--check", "--model", "m=" + model, "--config", cfg], capture_output=True,
                   text=True, timeout=30)
check(p.returncode == 0 and "ok: redis 127.0.0.1:%d answers" % redis.port in p.stdout,
      "--check reports Redis answering: %s" % p.stdout.strip().splitlines()[-1:])
a = b = c = sentinel = None
try:
    a = Server(keel, "--model", "m=" + model, "--grpc-port", "-1", "--config", cfg)
    # The other replica gets Redis by flag (the config's other keys apply).
    b = Server(keel, "--model", "m=" + model, "--grpc-port", "-1", "--config", cfg,
               "--redis", "127.0.0.1:%d" % redis.port)
    FEATURES = requests.get(a.base + "/v2/models/m", timeout=5).json()["inputs"][0]["shape"][1]
    wait_for(lambda: any(e.get("event") == "redis" for e in b.log()), 5, "no redis event logged")
    ev = [e for e in a.log() if e.get("event") == "redis"]
    check(bool(ev) and ev[0]["state"] == "up" and ev[0]["mode"] == "direct", "start-up logs Redis up: %s" % ev)
    sa, sb = requests.Session(), requests.Session()
    # The metrics contract's redis families (deploy/monitoring/metrics.txt) are exported, client=redis.
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = requests.get(a.base + "/metrics", timeout=5).text
    listed = [l.split()[0] for l in open(os.path.join(src, "deploy/monitoring/metrics.txt"))
              if l.strip() and not l.startswith("#") and l.split()[3] == "redis"]
    missing = [n for n in listed if not re.search(r"^%s\{client=\"redis\"" % n, text, re.M)]
    check(listed and not missing, "metrics.txt's %d redis families exported: missing %s" % (len(listed), missing))
    check('reason="budget"' in text, "keel_redis_fallbacks_total has a reason=\"budget\" series")

    # 1. A row scored on one replica is a cache hit on the other.
    row = fresh_rows(1)
    hits_b = metric(b, 'keel_cache_hits_total{engine="m"}')
    ra, _ = infer(sa, a, row, "c-1")
    rb, _ = infer(sb, b, row, "c-2")
    pa, pb = ra.json(), rb.json()
    check(ra.status_code == 200 and pa["parameters"]["cache_hit"] is False, "replica A scores a new row (no hit)")
    check(rb.status_code == 200 and pb["parameters"]["cache_hit"] is True
          and pb["outputs"][0]["data"] == pa["outputs"][0]["data"],
          "replica B answers the same row from the shared cache, same score: %s" % pb.get("parameters"))
    check(metric(b, 'keel_cache_hits_total{engine="m"}') == hits_b + 1, "B's keel_cache_hits_total rose by 1")
    # A Redis cache may wait on the network: never scored on an I/O thread,
    # although serve.json turns run to completion on (test_serve_inline.py).
    check(metric(a, 'keel_server_scored_total{on="io_thread"}') == 0 and
          metric(a, 'keel_server_scored_total{on="pool"}') >= 1,
          "an engine with Redis state is scored on the pool")

    # 2. The same Idempotency-Key on both replicas: one scoring, one answer.
    for rows, what in ((fresh_rows(1), "one row"), (fresh_rows(5), "a batch of 5")):
        key = "idem-%s-%d" % (what.replace(" ", "-"), rng.randrange(1 << 30))
        before, replays_b = scored(a, b), metric(b, 'keel_idempotent_replays_total{engine="m"}')
        # A client's retry: the same request (id included) to another replica.
        ra, _ = infer(sa, a, rows, "i-1", key=key)
        rb, _ = infer(sb, b, rows, "i-1", key=key)
        check(ra.status_code == 200 and ra.content == rb.content,
              "%s, same key on A then B: identical answers (%d, %d)%s" % (what, ra.status_code, rb.status_code,
                                                                         "" if ra.content == rb.content else
                                                                         ": %s / %s" % (ra.text[:200], rb.text[:200])))
        check(scored(a, b) - before == len(rows), "%s: scored once over both replicas (%d rows scored, want %d)"
              % (what, scored(a, b) - before, len(rows)))
        check(metric(b, 'keel_idempotent_replays_total{engine="m"}') == replays_b + 1, "%s: B replayed A's answer" % what)
    # At once: one computes, the other waits for its answer (or replays it).
    rows = fresh_rows(2000)
    key = "idem-together-%d" % rng.randrange(1 << 30)
    before = scored(a, b)
    out = {}
    go = threading.Barrier(2)

    def send(srv, name):
        s = requests.Session()
        go.wait()
        out[name] = infer(s, srv, rows, "t-1", key=key)[0]

    ts = [threading.Thread(target=send, args=(srv, n)) for srv, n in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    check(out.get("a") is not None and out.get("b") is not None and out["a"].status_code == 200
          and out["a"].content == out["b"].content, "2000 rows, same key on A and B at once: identical answers")
    check(scored(a, b) - before == len(rows), "at once: scored once (%d rows scored, want %d)"
          % (scored(a, b) - before, len(rows)))
    # Reused with another payload on the other replica: 422, not a replay.
    rows1 = fresh_rows(1)
    key = "idem-reuse-%d" % rng.randrange(1 << 30)
    infer(sa, a, rows1, "r-a", key=key)
    rb, _ = infer(sb, b, fresh_rows(1), "r-b", key=key)
    check(rb.status_code == 422, "key reused on B with another payload: 422 (got %d %s)" % (rb.status_code, rb.text[:100]))

    # 3. Redis SIGSTOPped, then SIGKILLed: answered within the deadline, readiness kept.
    def outage(what):
        fb = metric(a, "keel_redis_fallbacks_total") + metric(b, "keel_redis_fallbacks_total")
        codes, worst, n = {}, 0.0, 0
        for i in range(40):
            srv, s = (a, sa) if i % 2 == 0 else (b, sb)
            # A fresh row and id: a cache lookup, an insert and an idempotency claim each.
            r, ms = infer(s, srv, fresh_rows(1), "%s-%d" % (what, i), deadline_ms=DEADLINE_MS)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            worst = max(worst, ms)
            n += 1
        check(codes == {200: n}, "Redis %s: %d requests all answered 200: %s" % (what, n, codes))
        check(worst <= DEADLINE_MS + SLACK_MS, "Redis %s: slowest answer %.1f ms, deadline %d ms"
              % (what, worst, DEADLINE_MS))
        check(worst <= SHARE * DEADLINE_MS + SHARE_SLACK_MS, "Redis %s: Redis took at most its share: slowest %.1f "
              "ms, share %.0f ms + %d ms" % (what, worst, SHARE * DEADLINE_MS, SHARE_SLACK_MS))
        check(ready(a) and ready(b), "Redis %s: both replicas still ready" % what)
        fb2 = metric(a, "keel_redis_fallbacks_total") + metric(b, "keel_redis_fallbacks_total")
        check(fb2 > fb, "Redis %s: keel_redis_fallbacks_total rose by %d" % (what, fb2 - fb))
        print("figures: redis %s: %d requests, slowest %.1f ms, fallbacks %d" % (what, n, worst, fb2 - fb))

    redis.pause()
    try:
        outage("sigstop")
    finally:
        redis.resume()
    redis.kill()
    outage("sigkill")
    # Back (empty): once the breaker lets a probe through, the cache is shared again.
    redis.start()
    row = fresh_rows(1)
    got = {}

    def shared_again():
        infer(sa, a, row, "back-a")
        r, _ = infer(sb, b, row, "back-b-%d" % rng.randrange(1 << 30))
        got["p"] = r.json()["parameters"]
        return got["p"]["cache_hit"] is True

    try:
        wait_for(shared_again, 10, "no cache hit on B")
        check(True, "Redis restarted: a row scored on A is a hit on B again")
    except RuntimeError as e:
        check(False, "Redis restarted: %s (last %s)" % (e, got.get("p")))

    # 4. Through Sentinel: a third replica finds the master by name.
    sentinel = RedisSentinel(redis.port, "keelt")
    cfg_s = write_config("serve-sentinel.json", dict(sentinels=["127.0.0.1:%d" % sentinel.port], master_name="keelt",
                                                     **slow_client))
    c = Server(keel, "--model", "m=" + model, "--grpc-port", "-1", "--config", cfg_s)
    row, sc, got = fresh_rows(1), requests.Session(), {}

    def via_sentinel():
        infer(sa, a, row, "s-a")
        got["r"] = infer(sc, c, row, "s-c")[0]
        return got["r"].status_code == 200 and got["r"].json()["parameters"]["cache_hit"] is True

    try:
        wait_for(via_sentinel, 5, "no hit")
        check(True, "via Sentinel: replica C hits the row A scored")
    except RuntimeError:
        check(False, "via Sentinel: replica C hits the row A scored: %s" % got["r"].text[:160])
    ev = [e for e in c.log() if e.get("event") == "redis"]
    check(bool(ev) and ev[0]["mode"] == "sentinel" and ev[0]["master"] == "127.0.0.1:%d" % redis.port,
          "C logs the master Sentinel named: %s" % ev)
finally:
    for srv in (a, b, c):
        if srv:
            srv.stop()
    for p in (sentinel, redis):
        if p:
            p.close()
check.exit()
