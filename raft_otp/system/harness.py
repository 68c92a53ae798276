"""Run a few raft_otp nodes as OS processes on 127.0.0.1 (tests, benchmarks, fault harness).

Each node is ``python -m raft_otp.system`` in its own data dir with a free
port and a shared cookie file (0600).  ``transport_security="curve"`` gives every
node a key in its data dir and writes one allowed-keys file (every node and the
client) into each data dir and ``base_dir``.  ``start`` waits for the node's ``READY`` line;
``kill`` is SIGKILL; ``stop`` is SIGTERM (ordered shutdown); ``close`` stops
everything that is still running (use it in a ``finally``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from raft_otp.core.types import ServerId


def _die_with_parent() -> None:
    """In the child: SIGKILL me when the thread that spawned me dies (Linux), so a
    killed test run or benchmark leaves no node processes behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeProc:
    name: str            # full node name name@127.0.0.1:port
    data_dir: str
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def sid(self, server: str) -> ServerId:
        return ServerId(server, self.name)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NodeProcs:
    """``n`` node processes sharing a cookie; the calling process can join as a client node."""

    def __init__(self, base_dir: str, n: int = 3, *, prefix: str = "n", wal_sync_method: str = "datasync",
                 log_level: str = "WARNING", extra_args: list[str] | None = None,
                 transport_security: str = "mac", node_module: str = "raft_otp.system") -> None:
        """``node_module``: the entry point each node runs (``python -m``); tests that need
        broken Raft rules use ``raft_otp.testing.nemesis_node`` with ``--mutation`` in
        ``extra_args``."""
        from raft_otp.node.security import Security, private_dir, write_private
        self.base_dir = base_dir
        private_dir(base_dir)
        self.cookie = secrets.token_hex(16)
        self.cookie_file = os.path.join(base_dir, "cookie")
        write_private(self.cookie_file, self.cookie + "\n")
        self.wal_sync_method = wal_sync_method
        self.log_level = log_level
        self.extra_args = extra_args or []
        self.node_module = node_module
        self.nodes = [NodeProc(f"{prefix}{i + 1}@127.0.0.1:{free_port()}",
                               os.path.join(base_dir, f"{prefix}{i + 1}")) for i in range(n)]
        self.client_name: str | None = None
        # the client node's name is fixed now: in curve mode the nodes must know its key
        self._client_port = free_port()
        self.security = Security()
        if transport_security != "mac":
            self.extra_args = ["--transport-security", "curve", *self.extra_args]
            self.security = Security("curve", os.path.join(base_dir, "client.key"),
                                     os.path.join(base_dir, "allowed_keys"))
            self.write_allowed_keys()

    def write_allowed_keys(self, extra: dict[str, bytes] | None = None) -> None:
        """(curve) Make each node's key (kept) and write the allowed-keys file listing every
        node, the client (as ``*@127.0.0.1:PORT``) and ``extra`` {node: public key}
        into each data dir and ``base_dir``."""
        from raft_otp.node.security import (DATA_DIR_ALLOWED, DATA_DIR_KEY, ensure_key_file,
                                            private_dir, write_private)
        assert self.security.key_file is not None
        lines = [f"*@127.0.0.1:{self._client_port} "  # join_as_client's node, whatever its name
                 f"{ensure_key_file(self.security.key_file).decode()}"]
        for np in self.nodes:
            private_dir(np.data_dir)
            lines.append(f"{np.name} {ensure_key_file(os.path.join(np.data_dir, DATA_DIR_KEY)).decode()}")
        lines += [f"{name} {key.decode()}" for name, key in (extra or {}).items()]
        text = "\n".join(lines) + "\n"
        for d in [self.base_dir, *(np.data_dir for np in self.nodes)]:
            write_private(os.path.join(d, DATA_DIR_ALLOWED), text)

    def __getitem__(self, i: int) -> NodeProc:
        return self.nodes[i]

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, i: int | None = None, timeout: float = 30.0) -> None:
        targets = self.nodes if i is None else [self.nodes[i]]
        for np in targets:
            self._spawn(np)
        for np in targets:
            if not np.ready.wait(timeout):
                raise RuntimeError(f"node {np.name} did not become ready: {np.lines[-20:]}")
        if self.client_name is not None:
            self.wait_connected(timeout)

    def _spawn(self, np: NodeProc) -> None:
        if np.alive():
            raise RuntimeError(f"{np.name} is already running")
        os.makedirs(np.data_dir, mode=0o700, exist_ok=True)
        np.ready = threading.Event()
        cmd = [sys.executable, "-m", self.node_module, "--data-dir", np.data_dir, "--node", np.name,
               "--cookie-file", self.cookie_file, "--wal-sync-method", self.wal_sync_method,
               "--log-level", self.log_level, *self.extra_args]
        log_path = os.path.join(self.base_dir, np.name.split("@")[0] + ".log")
        err = open(log_path, "a")
        np.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                   start_new_session=True, preexec_fn=_die_with_parent)
        err.close()
        threading.Thread(target=self._reader, args=(np, np.proc), daemon=True).start()

    @staticmethod
    def _reader(np: NodeProc, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:  # closed when the node exits (no unclosed pipe left to the GC)
            for line in proc.stdout:
                np.lines.append(line.rstrip())
                if line.startswith("READY"):
                    np.ready.set()

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` and wait for it to be gone."""
        np = self.nodes[i]
        if np.proc is not None and np.proc.poll() is None:
            np.proc.send_signal(signal.SIGKILL)
            np.proc.wait(10)
        self._wait_seen_down(np)

    def _wait_seen_down(self, np: NodeProc, timeout: float = 5.0) -> None:
        """Until the client node's failure detector has declared ``np`` down (so a
        restarted incarnation is not mistaken for the old one)."""
        if self.client_name is None:
            return
        from raft_otp.node import runtime as node_rt
        deadline = time.monotonic() + timeout
        while np.name in node_rt.nodes() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, i: int, timeout: float = 30.0) -> int | None:
        """SIGTERM node ``i`` (ordered shutdown); SIGKILL if it does not exit in time."""
        np = self.nodes[i]
        if np.proc is None or np.proc.poll() is not None:
            return None if np.proc is None else np.proc.returncode
        np.proc.send_signal(signal.SIGTERM)
        try:
            rc: int | None = np.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            np.proc.kill()
            np.proc.wait(10)
            rc = None
        self._wait_seen_down(np)
        return rc

    def close(self) -> None:
        for i in range(len(self.nodes)):
            try:
                self.stop(i, timeout=15.0)
            except Exception:
                self.kill(i)

    # ---- client side -------------------------------------------------------------------
    def join_as_client(self, name: str = "client") -> str:
        """Make the calling process a node that can reach the others (once per process)."""
        from raft_otp.node import runtime as node_rt
        if node_rt.is_started():
            self.client_name = node_rt.node()
            return self.client_name
        from raft_otp.system.node_main import node_config
        self.client_name = f"{name}@127.0.0.1:{self._client_port}"
        node_rt.start_node(self.client_name, self.cookie, config=node_config(),
                           transport_security=self.security)
        return self.client_name

    def admin(self, i: int, request: Any, timeout: float = 10.0) -> Any:
        from raft_otp.node.admin import admin_call
        return admin_call(self.nodes[i].name, request, self.cookie, timeout, self.security)

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Until the client node hears every running node."""
        from raft_otp.node import runtime as node_rt
        deadline = time.monotonic() + timeout
        want = {np.name for np in self.nodes if np.alive()}
        while time.monotonic() < deadline:
            for np in self.nodes:  # traffic makes the links come up
                if np.alive():
                    try:
                        node_rt.send(("raft_otp.ping", np.name), None)
                    except Exception:
                        pass
            if want <= set(node_rt.nodes()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"not connected to {want - set(node_rt.nodes())}")


@contextmanager
def running_nodes(base_dir: str, n: int = 3, **kwargs: Any) -> Iterator[NodeProcs]:
    """Start ``n`` node processes (``kwargs`` go to NodeProcs), join them as a
    client and wait until connected; on exit close them and stop the client node."""
    from raft_otp.node import runtime as node_rt
    h = NodeProcs(base_dir, n, **kwargs)
    try:
        h.start()
        h.join_as_client()
        h.wait_connected()
        yield h
    finally:
        h.close()
        node_rt.stop_node()
