"""Many idle clusters: 1,000 3-member clusters on 3 node processes, then idle.

Idle clusters send no heartbeats: followers that know their leader run no
timer, and only leaders tick (1 s).  Measured per node over an idle window
after every cluster has a leader: CPU% (user+system over wall time) and RSS.

Peers, measured in the same run: CPU% of the same node processes before any
cluster existed (transport heartbeats only) and their RSS then.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil

from bench._nodes import bench_nodes, node_procs, start_counter_retrying
from bench.common import Figure


def _cpu_pct(procs: list[psutil.Process], seconds: float) -> list[float]:
    t0 = [p.cpu_times() for p in procs]
    w0 = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - w0
    out = []
    for p, c0 in zip(procs, t0):
        c1 = p.cpu_times()
        out.append(((c1.user - c0.user) + (c1.system - c0.system)) / wall * 100.0)
    return out


def _start_all(h: Any, n: int) -> tuple[float, int]:
    """Start ``n`` clusters from 8 client threads; returns (seconds, retried clusters).

    Under the start-up burst a saturated 2-core host can make a node miss heartbeats
    for over a second (false node_down on the client): such a cluster is deleted and
    started again."""
    t0 = time.perf_counter()
    retried = [0]

    def start(k: int) -> None:
        _ids, r = start_counter_retrying(h, f"idle{k}", timeout=60)
        retried[0] += r

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(start, range(n)))
    return time.perf_counter() - t0, retried[0]


def run(quick: bool = False) -> list[Figure]:
    n = 100 if quick else 1000
    idle_s = 5.0 if quick else 10.0
    figs: list[Figure] = []
    with bench_nodes("raft_otp_bench_clusters_", 3, wal_sync_method="datasync") as h:
        procs = node_procs(h, client=False)
        base_cpu = _cpu_pct(procs, 3.0)
        base_rss = [p.memory_info().rss / 2**20 for p in procs]
        start_s, retried = _start_all(h, n)
        time.sleep(2.0)  # let the last elections settle
        cpu = _cpu_pct(procs, idle_s)
        rss = [p.memory_info().rss / 2**20 for p in procs]
        threads = [p.num_threads() for p in procs]
        for i in range(3):
            figs.append(Figure(f"clusters: {n} idle 3-member clusters, node {i + 1} CPU", round(cpu[i], 2),
                               "%", "same node with no clusters", round(base_cpu[i], 2),
                               higher_is_better=False))
        for i in range(3):
            figs.append(Figure(f"clusters: {n} idle clusters, node {i + 1} RSS ({threads[i]} threads)",
                               round(rss[i], 1), "MiB", "same node with no clusters", round(base_rss[i], 1),
                               higher_is_better=False))
        figs.append(Figure(f"clusters: time to start {n} clusters (8 client threads, {retried} retried)",
                           round(start_s, 1),
                           "s", "1 ms per cluster", n / 1000.0, higher_is_better=False))
    return figs


if __name__ == "__main__":
    for f in run(quick=True):
        print(f)
