"""Run PySyncObj as a 3-process cluster on loopback and measure it (bench-only).

Used by ``bench.cluster`` so that raft_otp's figures stand beside PySyncObj's
measured in the same run on the same machine.  PySyncObj's durability: with a
``journalFile`` it writes entries to an mmap'd file and never fsyncs; without
one it keeps the log in memory only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Node:
    def __init__(self, addr: str, partners: list[str], journal: str | None, no_batch: bool) -> None:
        cmd = [sys.executable, "-m", "bench.peers.pysyncobj_node", "--self", addr, "--partners", ",".join(partners)]
        if journal:
            cmd += ["--journal", journal]
        if no_batch:
            cmd.append("--no-batch")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ask_raw()  # ready line

    def ask_raw(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("pysyncobj node exited")
        return json.loads(line)

    def ask(self, **req) -> dict:
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


@contextmanager
def pysyncobj_cluster(journal: bool, no_batch: bool = False, size: int = 3) -> Iterator[_Node]:
    """Start ``size`` PySyncObj node processes; yield the leader's node handle."""
    tmp = tempfile.mkdtemp(prefix="pso-")
    addrs = [f"127.0.0.1:{_free_port()}" for _ in range(size)]
    nodes = []
    try:
        for i, a in enumerate(addrs):
            j = os.path.join(tmp, f"journal{i}") if journal else None
            nodes.append(_Node(a, [b for b in addrs if b != a], j, no_batch))
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
        yield leader
    finally:
        for n in nodes:
            n.stop()


def pipelined_rate(journal: bool, total: int, in_flight: int) -> float:
    """Commands/s with up to ``in_flight`` outstanding async calls on the leader."""
    with pysyncobj_cluster(journal) as leader:
        leader.ask(op="pipelined", total=min(2000, total), in_flight=in_flight)  # warm up
        out = leader.ask(op="pipelined", total=total, in_flight=in_flight)
    return out["ops"] / out["seconds"]


def sequential_latencies(journal: bool, total: int, no_batch: bool = True) -> list[float]:
    """Latencies (s) of ``total`` synchronous calls, one at a time."""
    with pysyncobj_cluster(journal, no_batch=no_batch) as leader:
        leader.ask(op="sequential", total=min(200, total))
        out = leader.ask(op="sequential", total=total)
    return out["latencies_s"]
