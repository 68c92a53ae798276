"""One 3-member cluster on 3 node processes on loopback, WAL datasync.

Figures:

* pipelined commands/s: the bench process is a 4th node (client); it keeps
  ``WINDOW`` commands in flight, sent with ``pipeline_commands`` in frames of
  ``FRAME`` commands, and counts ``Applied`` notifications.  Peer: the design
  budget of DESIGN.md "The hot path" (2 cores / 45 us of CPU per command).
* CPU per command: user+system CPU of the 3 node processes and the client during
  the pipelined run, divided by the commands applied.  Peer: the 45 us budget.
* sequential ``process_command`` p50/p99 latency.  Peer: the limit measured in
  the same run, one loopback ZeroMQ round trip + one fdatasync (a command needs
  client->leader, leader->follower, follower sync, reply: at least that).
* the price of encryption (issue 21): pipelined commands/s, CPU per command and
  sequential p50 on two fresh clusters, ``transport_security = "curve"`` and
  ``"mac"``, in alternating rounds (medians of ``ROUNDS``), the curve figure
  beside the mac one as its peer.  (Fresh clusters both: the first cluster's log
  has half a million commands by then.)
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

import psutil

from bench._nodes import bench_nodes, cpu_s, node_procs, start_counter
from bench.common import Figure, median, percentile

FRAME = 200
WINDOW = 8000
BUDGET_US = 45.0


def _fdatasync_s(path: str, n: int = 200) -> float:
    fd = os.open(os.path.join(path, "sync.probe"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        xs = []
        for _ in range(n):
            os.write(fd, b"x" * 64)
            t = time.perf_counter()
            os.fdatasync(fd)
            xs.append(time.perf_counter() - t)
        return median(xs)
    finally:
        os.close(fd)


def _zmq_rtt_s(n: int = 2000) -> float:
    import zmq
    from raft_otp.system.harness import free_port
    ctx = zmq.Context.instance()
    port = free_port()
    rep = ctx.socket(zmq.REP)
    rep.bind(f"tcp://127.0.0.1:{port}")
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")

    def serve() -> None:
        for _ in range(n):
            rep.send(rep.recv())
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    xs = []
    for _ in range(n):
        s = time.perf_counter()
        req.send(b"x" * 64)
        req.recv()
        xs.append(time.perf_counter() - s)
    t.join()
    req.close(0)
    rep.close(0)
    return median(xs[n // 10:])


def _pipelined(leader: Any, seconds: float, procs: list[psutil.Process]) -> tuple[float, float]:
    import raft_otp
    from raft_otp.node.mailbox import Mailbox
    mbox = Mailbox()
    sent = applied = 0
    corr = 0
    try:
        # warm up
        raft_otp.pipeline_commands(leader, [(["incr"], -1)] * FRAME, mbox)
        got = 0
        while got < FRAME:
            m = mbox.get(10)
            got += len(m.replies)
        cpu0 = cpu_s(procs)
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            now = time.perf_counter()
            if now < deadline:
                while sent - applied < WINDOW:
                    raft_otp.pipeline_commands(leader, [(["incr"], corr + i) for i in range(FRAME)], mbox)
                    corr += FRAME
                    sent += FRAME
            elif applied >= sent:
                break
            m = mbox.get(10)
            if isinstance(m, raft_otp.Rejected):
                raise RuntimeError(f"commands rejected: leader moved to {m.leader}")
            applied += len(m.replies)
            for m in mbox.drain():
                applied += len(m.replies)
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(procs) - cpu0
        return applied / elapsed, cpu / applied * 1e6
    finally:
        mbox.close()


def _sequential(leader: Any, n: int) -> list[float]:
    import raft_otp
    lat = []
    for _ in range(20):
        raft_otp.process_command(leader, ["incr"])
    for _ in range(n):
        t = time.perf_counter()
        raft_otp.process_command(leader, ["incr"])
        lat.append(time.perf_counter() - t)
    return lat


ROUNDS = 3


def _join(h: Any) -> None:
    """Make this process the client node of ``h`` (stopping the client node of another
    harness first: one node per process)."""
    from raft_otp.node import runtime as node_rt
    if node_rt.is_started():
        node_rt.stop_node()
    h.client_name = None
    h.join_as_client("bench")
    h.wait_connected()


def _curve(quick: bool) -> list[Figure]:
    """Pipelined commands/s, CPU per command and sequential p50 on two fresh clusters,
    one with transport_security mac and one with curve, in alternating rounds (the
    client node switches between them), so the machine's drift falls on both alike."""
    import shutil
    import tempfile

    import raft_otp
    from raft_otp.node import runtime as node_rt
    from raft_otp.system.harness import NodeProcs
    bases: list[str] = []
    harnesses: dict[str, Any] = {}
    leaders: dict[str, Any] = {}
    sides: dict[str, dict[str, list[float]]] = {
        m: {"rate": [], "cpu": [], "p50": []} for m in ("mac", "curve")}
    try:
        for mode in ("mac", "curve"):
            bases.append(tempfile.mkdtemp(prefix=f"raft_otp_bench_cluster_{mode}_"))
            harnesses[mode] = h = NodeProcs(bases[-1], 3, wal_sync_method="datasync",
                                            transport_security=mode)
            h.start()
            _join(h)
            ids = start_counter(h, "bench")
            _, leaders[mode] = raft_otp.process_command(ids[0], ["incr"])
        for _ in range(ROUNDS):
            for mode in ("mac", "curve"):
                h = harnesses[mode]
                _join(h)
                rate, cpu_us = _pipelined(leaders[mode], 1.0 if quick else 3.0, node_procs(h))
                p50_ms = median(_sequential(leaders[mode], 100 if quick else 300)) * 1000
                sides[mode]["rate"].append(rate)
                sides[mode]["cpu"].append(cpu_us)
                sides[mode]["p50"].append(p50_ms)
    finally:
        for h in harnesses.values():
            h.close()
        if node_rt.is_started():
            node_rt.stop_node()
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)
    mac, curve = ({k: median(v) for k, v in sides[m].items()} for m in ("mac", "curve"))
    peer = f"transport_security mac, same run, medians of {ROUNDS} alternating rounds"
    return [
        Figure("cluster: 3 nodes pipelined commands/s, transport_security curve (datasync)",
               round(curve["rate"]), "cmd/s", peer, round(mac["rate"])),
        Figure("cluster: CPU per command, 3 nodes + client, transport_security curve",
               round(curve["cpu"], 1), "us/cmd", peer, round(mac["cpu"], 1), higher_is_better=False),
        Figure("cluster: sequential process_command p50, transport_security curve",
               round(curve["p50"], 3), "ms", peer, round(mac["p50"], 3), higher_is_better=False),
    ]


def run(quick: bool = False) -> list[Figure]:
    import raft_otp

    figs: list[Figure] = []
    with bench_nodes("raft_otp_bench_cluster_", 3, wal_sync_method="datasync") as h:
        ids = start_counter(h, "bench")
        _, leader = raft_otp.process_command(ids[0], ["incr"])  # follows redirects to the leader
        procs = node_procs(h)
        rate, cpu_us = _pipelined(leader, 2.0 if quick else 6.0, procs)
        figs.append(Figure("cluster: 3 nodes pipelined commands/s (datasync)", round(rate), "cmd/s",
                           f"design budget (2 cores / {BUDGET_US:.0f} us)", round(2e6 / BUDGET_US)))
        figs.append(Figure("cluster: CPU per command, 3 nodes + client", round(cpu_us, 1), "us/cmd",
                           "design budget", BUDGET_US, higher_is_better=False))
        lat = _sequential(leader, 200 if quick else 1000)
        limit_ms = (_zmq_rtt_s() + _fdatasync_s(h.base_dir)) * 1000
        figs.append(Figure("cluster: sequential process_command p50", round(median(lat) * 1000, 3), "ms",
                           "limit: zmq round trip + fdatasync", round(limit_ms, 3), higher_is_better=False))
        figs.append(Figure("cluster: sequential process_command p99", round(percentile(lat, 99) * 1000, 3),
                           "ms", "limit: zmq round trip + fdatasync", round(limit_ms, 3),
                           higher_is_better=False))
    figs += _curve(quick)
    return figs


if __name__ == "__main__":
    for f in run(quick=True):
        print(f)
