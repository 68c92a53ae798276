"""Aggregate throughput over many clusters on the same 3 node processes.

1, 10, 100 and 1,000 (not with ``--quick``) three-member counter clusters on one set of 3 node processes
(WAL datasync; every cluster's members share their node's WAL, leaders spread
over the nodes by ``start_cluster``).  The bench process is a client node
keeping ``WINDOW`` pipelined commands in flight in total, spread evenly over the
clusters, each refilled in one frame when its notifications arrive.

Peers, measured in the same run: the 1-cluster rate (the ratio says how well
many clusters share the nodes) and, for 1 cluster, the design budget.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil

from bench._nodes import bench_nodes, cpu_s, node_procs, start_counter_retrying
from bench.cluster import BUDGET_US, FRAME, WINDOW
from bench.common import Figure

COUNTS = [1, 10, 100, 1000]
QUICK_COUNTS = [1, 10, 100]


def _start(h: Any, k: int) -> Any:
    import raft_otp
    ids, _ = start_counter_retrying(h, f"load{k}", timeout=30)
    return raft_otp.ping(ids[0]) or ids[0]


def aggregate_rate(leaders: list[Any], seconds: float, window: int,
                   procs: list[psutil.Process]) -> tuple[float, float]:
    """(commands/s over all clusters, CPU us per command)."""
    import raft_otp
    from raft_otp.node.mailbox import Mailbox
    mbox = Mailbox()  # one mailbox: Applied carries the leader; correlation = cluster number
    per = max(1, window // len(leaders))
    frame = max(1, min(FRAME, per))
    inflight = [0] * len(leaders)
    applied = 0

    def fill(k: int) -> None:
        while per - inflight[k] > 0:
            n = min(frame, per - inflight[k])
            raft_otp.pipeline_commands(leaders[k], [(["incr"], k)] * n, mbox)
            inflight[k] += n

    try:
        cpu0 = cpu_s(procs)
        t0 = time.perf_counter()
        deadline = t0 + seconds
        for k in range(len(leaders)):
            fill(k)
        while True:
            running = time.perf_counter() < deadline
            if not running and not any(inflight):
                break
            touched = set()
            for m in [mbox.get(10), *mbox.drain()]:
                if isinstance(m, raft_otp.Rejected):  # leader moved (a saturated host): follow it
                    for corr in m.correlations:
                        inflight[corr] -= 1
                        touched.add(corr)
                        if m.leader is not None:
                            leaders[corr] = m.leader
                    continue
                for corr, _reply in m.replies:
                    inflight[corr] -= 1
                    touched.add(corr)
                applied += len(m.replies)
            if running:
                for k in touched:
                    if per - inflight[k] >= frame:
                        fill(k)
        elapsed = time.perf_counter() - t0
        return applied / elapsed, (cpu_s(procs) - cpu0) / max(1, applied) * 1e6
    finally:
        mbox.close()


def measure(counts: list[int], seconds: float, window: int = WINDOW) -> list[Figure]:
    figs: list[Figure] = []
    with bench_nodes("raft_otp_bench_clusters_load_", 3, wal_sync_method="datasync") as h:
        procs = node_procs(h)
        leaders: list[Any] = []
        rates: dict[int, tuple[float, float]] = {}
        for n in sorted(counts):
            with ThreadPoolExecutor(16) as ex:
                leaders += list(ex.map(lambda k: _start(h, k), range(len(leaders), n)))
            aggregate_rate(leaders, min(0.5, seconds), window, procs)  # warm up new clusters
            rates[n] = aggregate_rate(leaders, seconds, window, procs)
        one = rates[min(counts)][0]
        for n in sorted(counts):
            rate, cpu_us = rates[n]
            spread = len({lid.node for lid in leaders[:n]})
            if n == min(counts):
                figs.append(Figure(f"clusters: {n} cluster(s) aggregate cmd/s (datasync, window {window})",
                                   round(rate), "cmd/s", f"design budget (2 cores / {BUDGET_US:.0f} us)",
                                   round(2e6 / BUDGET_US)))
            else:
                figs.append(Figure(f"clusters: {n} clusters aggregate cmd/s (leaders on {spread} nodes)",
                                   round(rate), "cmd/s", f"{min(counts)} cluster, same nodes, same run",
                                   round(one)))
            figs.append(Figure(f"clusters: CPU per command, {n} cluster(s), 3 nodes + client",
                               round(cpu_us, 1), "us/cmd", "design budget", BUDGET_US, higher_is_better=False))
    return figs


def run(quick: bool = False) -> list[Figure]:
    return measure(QUICK_COUNTS, 2.0) if quick else measure(COUNTS, 5.0)


if __name__ == "__main__":
    import sys
    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:70s} {f.value:>10} {f.unit:7s} | {f.peer}: {f.peer_value}  ratio {f.ratio:.2f}")
