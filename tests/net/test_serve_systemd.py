#!/usr/bin/python3
"""keel serve speaks systemd's notify protocol (deploy/hosts/keel.service is
Type=notify with a watchdog), against a real process and a real AF_UNIX
datagram socket standing in for systemd: READY=1 only once the server
answers ready; WATCHDOG=1 every half WATCHDOG_USEC while it runs, and none
while it is stopped (SIGSTOP: a stuck process must starve the watchdog);
STOPPING=1 when SIGTERM starts the drain; an abstract socket ("@name")
works too; WATCHDOG_PID naming another process turns the watchdog off.
Usage: test_serve_systemd.py KEEL_BINARY MODEL_JSON"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from keel_serve import Checks  # noqa: E402

keel, model = sys.argv[1], sys.argv[2]
check = Checks()
tmp = tempfile.mkdtemp(prefix="keel_sd_")


def start(sock_name, **env):
    e = dict(os.environ, NOTIFY_SOCKET=sock_name, **env)
    p = subprocess.Popen([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "0"],
                         stdout=subprocess.PIPE, text=True, env=e)
    first = json.loads(p.stdout.readline())
    return p, "http://" + first["http"]


def messages(sock, seconds):
    """Every datagram received within `seconds`, with its arrival time."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            break
    return out


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


path = os.path.join(tmp, "notify.sock")
sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sd.bind(path)
p, base = start(path, WATCHDOG_USEC="400000")
try:
    first = messages(sd, 2.0)
    texts = [m for _, m in first]
    ready = [m for m in texts if "READY=1" in m]
    check(len(ready) == 1, "READY=1 sent once: %r" % texts[:3])
    check(requests.get(base + "/v2/health/ready", timeout=5).status_code == 200, "and the server answers ready")
    check(ready and "STATUS=serving 1 model(s)" in ready[0], "with a STATUS line: %r" % ready[:1])
    pings = [t for t, m in first if m == "WATCHDOG=1"]
    # About every 200 ms (half of WATCHDOG_USEC); loose bounds: a loaded
    # machine delays the pings, and this is not a timing test.
    check(len(pings) >= 3, "WATCHDOG=1 repeatedly: %d in 2 s" % len(pings))

    os.kill(p.pid, signal.SIGSTOP)
    messages(sd, 0.1)  # what was already queued
    stopped = [m for _, m in messages(sd, 1.0) if m == "WATCHDOG=1"]
    check(not stopped, "no WATCHDOG=1 while the process is stopped (%d)" % len(stopped))
    os.kill(p.pid, signal.SIGCONT)
    check(any(m == "WATCHDOG=1" for _, m in messages(sd, 1.0)), "pings again once it runs")

    p.send_signal(signal.SIGTERM)
    tail = [m for _, m in messages(sd, 3.0)]
    check(any(m.startswith("STOPPING=1") for m in tail), "STOPPING=1 when SIGTERM starts the drain: %r" % tail[-3:])
    check(p.wait(30) == 0, "exits 0 after the drain")
finally:
    stop(p)
    sd.close()

# A manager that stops reading: its socket's queue (10 datagrams by
# default) fills with pings every 50 ms. The sends must not block: the
# thread that pings is the one that drains and exits. (With blocking sends,
# this process never exits.)
path2 = os.path.join(tmp, "unread.sock")
unread = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
unread.bind(path2)
e = dict(os.environ, NOTIFY_SOCKET=path2, WATCHDOG_USEC="100000")
p = subprocess.Popen([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "-1",
                      "--drain-delay-ms", "300", "--drain-timeout-ms", "2000"], stdout=subprocess.PIPE, text=True, env=e)
try:
    json.loads(p.stdout.readline())
    time.sleep(1.5)  # about 30 pings: the queue is full
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(20)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "a notify socket nobody reads: SIGTERM still exits 0, in %.1f s (rc %s)" % (time.monotonic() - t0, rc))
finally:
    stop(p)
    unread.close()

# The abstract namespace, and WATCHDOG_PID naming another process.
name = "keel-sd-test-%d" % os.getpid()
sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sd.bind("\0" + name)
p, base = start("@" + name, WATCHDOG_USEC="400000", WATCHDOG_PID="1")
try:
    texts = [m for _, m in messages(sd, 1.5)]
    check(any("READY=1" in m for m in texts), "abstract socket '@name': READY=1 arrives")
    check(not any(m == "WATCHDOG=1" for m in texts), "WATCHDOG_PID of another process: no watchdog pings")
finally:
    stop(p)
    sd.close()

# Without NOTIFY_SOCKET nothing is sent and the server runs as before.
p = subprocess.Popen([keel, "serve", "--model", "m=" + model, "--http-port", "0", "--grpc-port", "0"],
                     stdout=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})
try:
    first = json.loads(p.stdout.readline())
    check(requests.get("http://" + first["http"] + "/v2/health/ready", timeout=5).status_code == 200,
          "without NOTIFY_SOCKET it serves as before")
finally:
    stop(p)
check.exit()
