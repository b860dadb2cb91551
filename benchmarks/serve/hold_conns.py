#!/usr/bin/python3
"""Holds connections open against an HTTP server until SIGTERM or SIGINT.

  hold_conns.py HOST PORT idle N             N idle keep-alive connections (nothing sent)
  hold_conns.py HOST PORT loris N [--every S]
      N slow-loris connections: each sends the start of an infer request's
      header, then one more header byte every S seconds (default 1), never
      finishing it; a connection the server closes (408 at its header
      timeout) is opened again at once, so N stay open throughout.

Prints one line when all N are open ("holding N idle|loris"), then on exit a
summary line: connections opened, closed by the server, bytes dribbled.
Used by idle_loris.sh; standard library only.
"""

import selectors
import signal
import socket
import sys
import time


def main():
    if len(sys.argv) < 5 or sys.argv[3] not in ("idle", "loris"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    every = 1.0
    if "--every" in sys.argv:
        every = float(sys.argv[sys.argv.index("--every") + 1])
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sel = selectors.DefaultSelector()
    opened = closed = dribbled = 0
    start_line = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nX-Slow: "

    def open_one():
        nonlocal opened
        s = socket.create_connection((host, port), timeout=10)
        s.setblocking(False)
        if mode == "loris":
            s.send(start_line)
        sel.register(s, selectors.EVENT_READ)
        opened += 1
        return s

    conns = [open_one() for _ in range(n)]
    print("holding %d %s" % (n, mode), flush=True)
    next_drip = time.monotonic() + every
    while not stop:
        timeout = max(0.0, next_drip - time.monotonic()) if mode == "loris" else 0.5
        for key, _ in sel.select(timeout=timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:  # a 408 (or any answer): the server is done with it
                pass
            sel.unregister(s)
            s.close()
            closed += 1
            conns.remove(s)
            if not stop:
                conns.append(open_one())
        if mode == "loris" and time.monotonic() >= next_drip:
            for s in conns:
                try:
                    s.send(b"a")
                    dribbled += 1
                except OSError:
                    pass
            next_drip += every
    for s in conns:
        s.close()
    print("opened %d, closed by the server %d, bytes dribbled %d" % (opened, closed, dribbled), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
