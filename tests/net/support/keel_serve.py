"""Helpers for the end-to-end tests of `keel serve` (tests/net/test_*serve*.py):
named checks, and a server process on free loopback ports whose stdout (the
JSON-lines logs) is drained by a thread so that a busy access log never
blocks it. Processes are stopped by PID."""
import json
import os
import signal
import subprocess
import sys
import threading


class Checks:
    def __init__(self):
        self.failures = []

    def __call__(self, ok, what):
        print(("ok     " if ok else "FAILED ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def exit(self):
        print("%d failed" % len(self.failures))
        sys.exit(1 if self.failures else 0)


class Server:
    """`keel serve ARGS` with --http-port 0 --grpc-port 0 unless given."""

    def __init__(self, keel, *args):
        argv = [keel, "serve", *args]
        if "--http-port" not in args:
            argv += ["--http-port", "0"]
        if "--grpc-port" not in args:
            argv += ["--grpc-port", "0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.first = json.loads(self.proc.stdout.readline())
        self.base = "http://" + self.first["http"]
        self.host, self.port = self.first["http"].rsplit(":", 1)
        self.port = int(self.port)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def log(self):
        """The JSON lines logged so far (after the first)."""
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
