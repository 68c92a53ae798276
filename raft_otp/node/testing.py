"""Test harness: real node OS processes on 127.0.0.1 (shipped for tests and benches).

:class:`NodeProcess` runs ``python -m raft_otp.node`` and waits for its ``READY``
line; ``kill()`` (SIGKILL) and ``restart()`` keep the same name and port so peers
reconnect.  Always use it in a ``try/finally`` (or a fixture) that calls ``stop()``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Callable

__all__ = ["free_port", "NodeProcess", "wait_until"]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (Linux only).

    The kernel ties this to the *thread* that spawned the child: spawn from a
    thread that outlives the node (the main thread in tests and benches)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], object], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll ``cond`` until true or ``timeout_s`` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


class NodeProcess:
    """One ``python -m raft_otp.node`` child process."""

    def __init__(self, short: str, cookie_file: str, *, echo: bool = True,
                 heartbeat_ms: float = 100.0, down_after: int = 5, port: int | None = None,
                 extra: list[str] | None = None) -> None:
        self.name = f"{short}@127.0.0.1:{port or free_port()}"
        self.cookie_file = cookie_file
        os.chmod(cookie_file, 0o600)  # a node refuses a cookie file others may read
        self.args = ["--name", self.name, "--cookie-file", cookie_file,
                     "--heartbeat-ms", str(heartbeat_ms), "--down-after", str(down_after)]
        if echo:
            self.args.append("--echo")
        self.args += extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> "NodeProcess":
        return self.spawn().wait_ready(timeout_s)

    def spawn(self) -> "NodeProcess":
        """Start the process without waiting (start several, then ``wait_ready`` each)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "raft_otp.node", *self.args],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=_die_with_parent)
        return self

    def wait_ready(self, timeout_s: float = 20.0) -> "NodeProcess":
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"READY"):
            self.stop()
            raise RuntimeError(f"node {self.name} did not start: {line!r}")
        return self

    def kill(self) -> None:
        """SIGKILL and reap (a crash, as far as the peers can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> "NodeProcess":
        self.kill()
        return self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; always reaps."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p.stdout is not None:
            p.stdout.close()
        self.proc = None
