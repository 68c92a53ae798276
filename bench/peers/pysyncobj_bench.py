"""Run PySyncObj as a 3-process cluster on loopback and measure it (bench-only).

Used by ``bench.versus`` so that raft_otp's figures stand beside PySyncObj's
measured in the same run on the same machine.  PySyncObj's durability: with a
``journalFile`` it writes entries to an mmap'd file and never fsyncs (a crash
of the machine can lose acknowledged commands); without one it keeps the log in
memory only.  Its load runs inside the leader process (no client hop).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import psutil

_ROOT = str(Path(__file__).resolve().parents[2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Node:
    def __init__(self, addr: str, partners: list[str], journal: str | None, no_batch: bool,
                 log_path: str) -> None:
        cmd = [sys.executable, "-m", "bench.peers.pysyncobj_node", "--self", addr, "--partners", ",".join(partners)]
        if journal:
            cmd += ["--journal", journal]
        if no_batch:
            cmd.append("--no-batch")
        env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log_path = log_path
        with open(log_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, bufsize=1, env=env, cwd=_ROOT)
        self.ask_raw()  # ready line

    def ask_raw(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            with open(self.log_path) as f:
                raise RuntimeError(f"pysyncobj node exited: {f.read()[-2000:]}")
        return json.loads(line)

    def ask(self, **req: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self.ask_raw()

    def stop(self) -> None:
        try:
            self.ask(op="quit")
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


CRITICALS = [0]
"""How many times PySyncObj logged "truncating already-applied log entries" (a
follower dropping entries it had applied, seen with batching off)."""


class PySyncObjCluster:
    """A started cluster: its leader node, every node, and their OS processes."""

    def __init__(self, leader: _Node, nodes: list[_Node]) -> None:
        self.leader = leader
        self.nodes = nodes
        self.procs = [psutil.Process(n.proc.pid) for n in nodes]
        self.sequential_errors = 0

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.procs:
            c = p.cpu_times()
            total += c.user + c.system
        return total

    def window(self, in_flight: int, seconds: float) -> dict:
        """``{"rate", "cpu_us_per_cmd", "errors"}`` with ``in_flight`` calls outstanding."""
        cpu0 = self.cpu_s()
        out = self.leader.ask(op="window", in_flight=in_flight, seconds=seconds)
        cpu = self.cpu_s() - cpu0
        ops = max(1, out["ops"])
        return {"rate": out["ops"] / out["seconds"], "cpu_us_per_cmd": cpu / ops * 1e6, "errors": out["errors"]}

    def sequential(self, total: int) -> list[float]:
        """Latencies (s) of ``total`` synchronous calls, one at a time (calls PySyncObj
        failed are left out and counted in ``sequential_errors``); raises if every
        call failed."""
        out = self.leader.ask(op="sequential", total=total)
        self.sequential_errors += out.get("errors", 0)
        if not out["latencies_s"]:
            raise RuntimeError(f"PySyncObj failed all {total} sequential calls")
        return out["latencies_s"]


@contextmanager
def pysyncobj_cluster(journal: bool, no_batch: bool = False, size: int = 3) -> Iterator[PySyncObjCluster]:
    """Start ``size`` PySyncObj node processes; yield the cluster once a leader is ready."""
    tmp = tempfile.mkdtemp(prefix="pso-")
    addrs = [f"127.0.0.1:{_free_port()}" for _ in range(size)]
    nodes: list[_Node] = []
    try:
        for i, a in enumerate(addrs):
            j = os.path.join(tmp, f"journal{i}") if journal else None
            nodes.append(_Node(a, [b for b in addrs if b != a], j, no_batch, os.path.join(tmp, f"node{i}.log")))
        deadline = time.monotonic() + 30
        leader = None
        while leader is None and time.monotonic() < deadline:
            for n in nodes:
                st = n.ask(op="status")
                if st["leader"] and st["ready"]:
                    leader = n
                    break
            else:
                time.sleep(0.1)
        if leader is None:
            raise RuntimeError("PySyncObj elected no leader in 30 s")
        c = PySyncObjCluster(leader, nodes)
        c.window(64, 0.3)  # warm up
        yield c
    finally:
        for n in nodes:
            n.stop()
        CRITICALS[0] += sum(open(n.log_path).read().count("truncating already-applied") for n in nodes)
        shutil.rmtree(tmp, ignore_errors=True)
