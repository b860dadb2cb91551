#!/usr/bin/python3
"""keel worker's throughput: messages per second through a real redis-server
on a free loopback port, scored by a real `keel worker` process.

Usage: worker_throughput.py KEEL MODEL ROWS_CSV [--messages N] [--runs R] [--batch B]

Fills the request stream with N entries (each a row of ROWS_CSV as a JSON
array and a unique id; written before the worker starts, pipelined), starts
the worker, and times from its start until the results stream holds N
entries (the worker's start-up, model load included, is timed apart and
taken off). Prints one line per run and the median. Every process is started
here, bounded in time and stopped by its PID."""
import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resp:
    """A minimal RESP2 client (pipelined commands, replies read in order)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 16)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply %r" % line)

    def cmd(self, *args):
        self.send(*args)
        return self.reply()


def wait_port(port, proc, timeout=10):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if proc.poll() is not None:
            sys.exit("redis-server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not listen within %d s" % timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("keel")
    ap.add_argument("model")
    ap.add_argument("rows")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    with open(a.rows) as f:
        r = csv.reader(f)
        next(r)
        rows = ["[" + ",".join(x) + "]" for x in r]
    tmp = tempfile.mkdtemp(prefix="keel_worker_bench_")
    rates = []
    for run in range(a.runs):
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        worker = None
        try:
            wait_port(port, redis)
            c = Resp(port)
            for i in range(a.messages):
                c.send("XADD", "keel:requests", "*", "id", "bench-%d-%d" % (run, i),
                       "features", rows[i % len(rows)])
            for _ in range(a.messages):
                c.reply()
            t0 = time.monotonic()
            worker = subprocess.Popen([a.keel, "worker", "--model", a.model, "--redis", "127.0.0.1:%d" % port,
                                       "--batch", str(a.batch), "--stats-ms", "100000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            first = None
            until = t0 + 300
            while time.monotonic() < until:
                n = c.cmd("XLEN", "keel:results")
                if n and first is None:
                    first = (time.monotonic(), n)
                if n >= a.messages:
                    break
                if worker.poll() is not None:
                    sys.exit("keel worker exited: %s" % worker.stderr.read().decode()[-400:])
                time.sleep(0.005)
            t1 = time.monotonic()
            if first is None or n < a.messages:
                sys.exit("run %d: %s of %d results within 300 s" % (run, n, a.messages))
            dead = c.cmd("XLEN", "keel:dead")
            # From the first result on: the worker's start-up and model load are off.
            rate = (a.messages - first[1]) / max(t1 - first[0], 1e-9)
            rates.append(rate)
            print("run %d: %d messages, %d dead, start-up %.2f s, %.0f messages/s" %
                  (run, a.messages, dead, first[0] - t0, rate), flush=True)
        finally:
            for p in (worker, redis):
                if p is not None and p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    print("median: %.0f messages/s (batch %d, %s)" % (statistics.median(rates), a.batch, os.path.basename(a.model)))


if __name__ == "__main__":
    main()
