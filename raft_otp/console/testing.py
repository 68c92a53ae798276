"""Test harness for the console: ``raft-otp start`` node processes and CLI runs.

Every node is the real ``raft-otp start`` in its own session on a free port of
127.0.0.1; readiness is its ``READY`` line; ``close`` stops whatever is still
running (SIGTERM, then SIGKILL).  ``HOME`` points into the base dir, so the
default cookie file never touches the user's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from raft_otp.console.common import free_port

__all__ = ["cli_command", "CliNode", "CliNodes"]


def cli_command() -> list[str]:
    """The installed ``raft-otp`` script next to this interpreter, else ``python -m``."""
    script = os.path.join(os.path.dirname(sys.executable), "raft-otp")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "raft_otp.console.cli"]


@dataclass
class CliNode:
    name: str
    data_dir: str
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class CliNodes:
    def __init__(self, base_dir: str, n: int = 3) -> None:
        self.base = base_dir
        self.home = os.path.join(base_dir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.cookie_file = os.path.join(base_dir, "cookie")
        with open(self.cookie_file, "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        os.chmod(self.cookie_file, 0o600)
        self.nodes = [CliNode(f"n{i + 1}@127.0.0.1:{free_port()}",
                              os.path.join(base_dir, f"n{i + 1}")) for i in range(n)]

    def __getitem__(self, i: int) -> CliNode:
        return self.nodes[i]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAFT_OTP_")}
        env.update(HOME=self.home, PYTHONUNBUFFERED="1", COLUMNS="200")
        return env

    # ---- nodes -----------------------------------------------------------------------
    def start(self, i: int | None = None, *, timeout: float = 30.0, node_arg: bool = True,
              cookie_arg: bool = True, extra: tuple[str, ...] = ()) -> None:
        targets = self.nodes if i is None else [self.nodes[i]]
        for nd in targets:
            cmd = [*cli_command(), "start", "--data-dir", nd.data_dir]
            if node_arg:
                cmd += ["--node", nd.name]
            if cookie_arg:
                cmd += ["--cookie-file", self.cookie_file]
            cmd += list(extra)
            nd.lines, nd.ready, nd.exited = [], threading.Event(), threading.Event()
            err = open(os.path.join(self.base, nd.name.split("@")[0] + ".err"), "a")
            nd.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                       env=self.env(), start_new_session=True)
            err.close()
            threading.Thread(target=self._read, args=(nd, nd.proc), daemon=True).start()
        for nd in targets:
            if not nd.ready.wait(timeout):
                raise RuntimeError(f"{nd.name} not ready: {nd.lines} {self.stderr_of(nd)}")

    def stderr_of(self, nd: CliNode) -> str:
        try:
            with open(os.path.join(self.base, nd.name.split("@")[0] + ".err")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    @staticmethod
    def _read(nd: CliNode, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            nd.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                nd.ready.set()
        nd.exited.set()

    def signal_and_wait(self, i: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        nd = self.nodes[i]
        assert nd.proc is not None
        nd.proc.send_signal(sig)
        rc = nd.proc.wait(timeout)
        nd.exited.wait(5.0)
        return rc

    def close(self) -> None:
        for nd in self.nodes:
            if nd.proc is None or nd.proc.poll() is not None:
                continue
            nd.proc.send_signal(signal.SIGTERM)
            try:
                nd.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(nd.proc.pid, signal.SIGKILL)
                nd.proc.wait(10)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    # ---- CLI runs ---------------------------------------------------------------------
    def run(self, *args: str, cookie: bool = True, timeout: float = 60.0,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [*cli_command(), *args]
        if cookie and args and args[0] not in ("start", "demo"):
            cmd += ["--cookie-file", self.cookie_file]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout,
                              cwd=cwd)

    def json(self, *args: str, **kw: Any) -> Any:
        import json
        r = self.run(*args, "--json", **kw)
        if r.returncode != 0:
            raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr}")
        return json.loads(r.stdout)
