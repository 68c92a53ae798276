"""Node processes for the fault harness: start, SIGKILL, SIGSTOP/SIGCONT, restart.

Each node is ``python -m raft_otp.testing.nemesis_node`` (the ordinary node plus
the mutation hook) in its own data dir under the run directory, on a free port
of 127.0.0.1 (or in its own network namespace, see ``nemesis_netns``), with a
shared cookie; its stdout and stderr go to
``DIR/<node>.log`` (kept when a run fails).  The harness process itself joins
as a client node to send commands.  Every process started here is stopped by
:meth:`Cluster.close` (SIGCONT, SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from raft_otp.core.types import ServerId
from raft_otp.system.harness import free_port

__all__ = ["Cluster", "NodeProcess"]

READY_TIMEOUT_S = 30.0


@dataclass
class NodeProcess:
    """One node process (restartable: same name, port and data dir)."""

    name: str  # n1@127.0.0.1:port
    data_dir: str
    log_path: str
    proc: subprocess.Popen[str] | None = None
    paused: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    incarnations: int = 0

    @property
    def short(self) -> str:
        return self.name.split("@")[0]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """``n`` node processes sharing a cookie, plus this process as a client node."""

    def __init__(self, run_dir: str, n: int, *, mutation: str | None = None,
                 log_level: str = "INFO", extra_args: list[str] | None = None,
                 netns: Any = None) -> None:
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.cookie = secrets.token_hex(16)
        self.cookie_file = os.path.join(run_dir, "cookie")
        with open(self.cookie_file, "w") as fh:
            fh.write(self.cookie + "\n")
        os.chmod(self.cookie_file, 0o600)  # a node refuses a cookie file others may read
        self.mutation = mutation
        self.log_level = log_level
        self.extra_args = extra_args or []
        self.netns = netns  # a nemesis_netns.NetNs: node i runs in its namespace
        host = (lambda i: netns.addr(i)) if netns is not None else (lambda i: "127.0.0.1")
        self.nodes = [NodeProcess(name=f"n{i + 1}@{host(i)}:{free_port()}",
                                  data_dir=os.path.join(run_dir, f"n{i + 1}"),
                                  log_path=os.path.join(run_dir, f"n{i + 1}.log"))
                      for i in range(n)]
        self.client_name: str | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.nodes)

    def index_of(self, node_name: str) -> int:
        return next(i for i, np in enumerate(self.nodes) if np.name == node_name)

    # ---- lifecycle ----------------------------------------------------------------------

    def start_all(self) -> None:
        for i in range(len(self.nodes)):
            self._spawn(i)
        for i in range(len(self.nodes)):
            self._wait_ready(i)

    def start(self, i: int) -> None:
        self._spawn(i)
        self._wait_ready(i)
        if self.client_name is not None:
            self.wait_connected([i])

    def _spawn(self, i: int) -> None:
        np = self.nodes[i]
        if np.alive():
            raise RuntimeError(f"{np.name} is already running")
        os.makedirs(np.data_dir, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        prefix = self.netns.exec_prefix(i) if self.netns is not None else []
        mutation = ["--mutation", self.mutation] if self.mutation else []
        cmd = [*prefix, sys.executable, "-m", "raft_otp.testing.nemesis_node", "--data-dir", np.data_dir,
               "--node", np.name, "--cookie-file", self.cookie_file,
               "--log-level", self.log_level, *mutation, *self.extra_args]
        log = open(np.log_path, "a")
        log.write(f"---- nemesis: start {np.name} (incarnation {np.incarnations + 1}) "
                  f"at {time.strftime('%H:%M:%S')}\n")
        log.flush()
        np.ready = threading.Event()
        np.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                   start_new_session=True, env=env)
        log.close()
        np.paused = False
        np.incarnations += 1
        threading.Thread(target=self._reader, args=(np, np.proc), daemon=True,
                         name=f"nemesis-reader-{np.short}").start()

    @staticmethod
    def _reader(np: NodeProcess, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with open(np.log_path, "a") as log, proc.stdout:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith("READY"):
                    np.ready.set()

    def _wait_ready(self, i: int) -> None:
        np = self.nodes[i]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not np.ready.wait(0.1):
            if not np.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"node {np.name} did not become ready (see {np.log_path})")

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (paused or not) and wait until the client sees it down."""
        np = self.nodes[i]
        if np.proc is not None and np.proc.poll() is None:
            np.proc.send_signal(signal.SIGKILL)
            np.proc.wait(10)
        np.paused = False
        self._wait_seen_down(np)

    def pause(self, i: int) -> None:
        np = self.nodes[i]
        if np.alive() and not np.paused:
            np.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            np.paused = True

    def resume(self, i: int) -> None:
        np = self.nodes[i]
        if np.alive() and np.paused:
            np.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        np.paused = False

    def _wait_seen_down(self, np: NodeProcess, timeout: float = 10.0) -> None:
        """Until the client's failure detector has declared ``np`` down, so that a
        restarted incarnation is not taken for the old one."""
        if self.client_name is None:
            return
        from raft_otp.node import runtime as node_rt
        deadline = time.monotonic() + timeout
        while np.name in node_rt.nodes() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        """Stop every node this cluster started (SIGCONT, SIGTERM, SIGKILL after 15 s)."""
        for np in self.nodes:
            if np.alive():
                if np.paused:
                    np.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
                    np.paused = False
                np.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + 15.0
        for np in self.nodes:
            if np.proc is None:
                continue
            try:
                np.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                np.proc.kill()
                np.proc.wait(10)

    # ---- client side --------------------------------------------------------------------

    def join_as_client(self) -> str:
        from raft_otp.node import runtime as node_rt
        if node_rt.is_started():
            self.client_name = node_rt.node()
        else:
            host = self.netns.client_addr if self.netns is not None else "127.0.0.1"
            self.client_name = f"nemesis-client@{host}:{free_port()}"
            node_rt.start_node(self.client_name, self.cookie)
        self.wait_connected()
        return self.client_name

    def wait_connected(self, which: list[int] | None = None, timeout: float = 15.0) -> None:
        from raft_otp.node import runtime as node_rt
        idx = range(len(self.nodes)) if which is None else which
        want = {self.nodes[i].name for i in idx if self.nodes[i].alive()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in want:
                try:
                    node_rt.send(("raft_otp.ping", name), None)  # traffic brings links up
                except Exception:
                    pass
            if want <= set(node_rt.nodes()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"client not connected to {sorted(want - set(node_rt.nodes()))}")

    def admin(self, i: int, request: Any, timeout: float = 5.0) -> Any:
        from raft_otp.node.admin import admin_call
        return admin_call(self.nodes[i].name, request, self.cookie, timeout)

    def sid(self, server: str, i: int) -> ServerId:
        return ServerId(server, self.nodes[i].name)
