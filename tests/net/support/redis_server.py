"""redis-server and redis-sentinel as child processes for the end-to-end
tests of `keel serve` (the Python counterpart of redis_process.cpp): each on
a free loopback port with its own temporary directory, no persistence,
waited for (bounded), stopped by PID."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ask(port, *words, timeout=0.5):
    """One RESP command over a fresh connection; the first line of the answer ("" on any failure)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.settimeout(timeout)
            cmd = "*%d\r\n" % len(words) + "".join("$%d\r\n%s\r\n" % (len(w), w) for w in words)
            c.sendall(cmd.encode())
            data = b""
            while b"\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0].decode("latin-1")
    except OSError:
        return ""


def wait_for(pred, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("%s within %.0f s" % (what, seconds))


class _Child:
    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.proc = None

    def _spawn(self, argv):
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer(_Child):
    """acl_user and acl_password: the only user (`default` is disabled)."""

    def __init__(self, acl_user=None, acl_password=None):
        super().__init__("keel-redis-")
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            if acl_user:
                f.write("user default off\nuser %s on >%s ~* &* +@all\n" % (acl_user, acl_password))
        self.start()

    def start(self):
        """Starts (again) on the same port, empty."""
        self._spawn(["redis-server", self.conf, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                     "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no"])
        # PONG, or NOAUTH when a password is required: it answers.
        try:
            wait_for(lambda: ask(self.port, "PING").startswith(("+PONG", "-NOAUTH")), 10,
                     "redis-server on %d did not answer" % self.port)
        except RuntimeError:
            self.kill()
            raise


class RedisSentinel(_Child):
    def __init__(self, master_port, master_name):
        super().__init__("keel-sentinel-")
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n"
                    % (self.port, self.dir, master_name, master_port))
        self._spawn(["redis-sentinel", conf])
        wait_for(lambda: ask(self.port, "SENTINEL", "get-master-addr-by-name", master_name).startswith("*2"),
                 10, "redis-sentinel on %d did not know %s" % (self.port, master_name))
