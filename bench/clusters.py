"""Many idle clusters: N three-member clusters on 3 node processes (issue 18, "Scale").

``python -m bench --only clusters --clusters N`` (default 1,000).  Figures, N
substituted, each against the issue's limit or a peer measured in the same run:

* ``clusters N: start`` - N ``start_cluster`` calls from ``START_THREADS`` client
  threads, until each has a leader (limit 60 s);
* ``clusters N: idle CPU per node`` - user+system CPU over an idle window after
  every cluster has a leader, the worst node (limit 5 % of a core; the same
  node's CPU before any cluster existed is in the peer text);
* ``clusters N: threads per node`` - the largest ``threading.active_count()`` of
  a node process, asked through the admin endpoint (it counts the admin thread
  answering; limit 64), and ``clusters N: OS threads per node`` (ZeroMQ's and
  the admin's included) against the same node with no clusters;
* ``clusters N: RSS per node`` - the largest, against the same node with no clusters;
* ``clusters N: node restart`` - node 3 is SIGKILLed and spawned again: from the
  spawn until all N servers of its directory run and each knows a leader
  (limit 60 s).

Idle clusters send no heartbeats: followers that know their leader run no timer,
and only leaders tick.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil

from bench._nodes import bench_nodes, node_procs, server_counts, start_counter_retrying
from bench.common import Figure

DEFAULT_CLUSTERS = 1000
START_THREADS = 32
START_LIMIT_S = 60.0
IDLE_CPU_LIMIT_PCT = 5.0
THREADS_LIMIT = 64
RESTART_LIMIT_S = 60.0
LIMIT = "issue 18 limit"


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


def start_all(h: Any, n: int, prefix: str = "idle", threads: int = START_THREADS) -> tuple[float, int]:
    """Start ``n`` counter clusters from ``threads`` client threads; (seconds, retried clusters).

    A saturated 2-core host can make a node miss heartbeats for over a second under
    the start-up burst (a false node_down on the client): such a cluster is deleted
    and started again, and counted."""
    t0 = time.perf_counter()
    retried = [0]

    def start(k: int) -> None:
        _ids, r = start_counter_retrying(h, f"{prefix}{k}", timeout=60)
        retried[0] += r

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(start, range(n)))
    return time.perf_counter() - t0, retried[0]


def _process(h: Any) -> list[dict[str, Any]]:
    return [h.admin(i, ["process"]) for i in range(len(h.nodes))]


def restart_node(h: Any, i: int, servers: int, timeout: float) -> tuple[float, float]:
    """SIGKILL node ``i`` and spawn it again; (seconds from the spawn until its
    ``servers`` servers run and each knows a leader, seconds until it said READY,
    its directory recovered).  RuntimeError after ``timeout``."""
    h.kill(i)
    t0 = time.perf_counter()
    h.start(i, timeout=timeout)
    ready_s = time.perf_counter() - t0
    deadline = t0 + timeout
    last: dict[str, Any] = {}
    report_at = t0 + 5.0
    while time.perf_counter() < deadline:
        if time.perf_counter() > report_at:  # a slow restart says where it is
            print(f"  node restart: {time.perf_counter() - t0:.0f} s: {last}", file=sys.stderr, flush=True)
            report_at += 5.0
        try:
            last = server_counts(h, i, timeout=min(10.0, max(1.0, deadline - time.perf_counter())))
        except Exception as exc:  # the system actor may still be recovering
            last = {"error": repr(exc)}
            time.sleep(0.2)
            continue
        if last.get("running") == servers and last.get("leader_known") == servers:
            return time.perf_counter() - t0, ready_s
        time.sleep(0.2)
    raise RuntimeError(f"node {i + 1} not back with {servers} servers led within {timeout} s: {last}")


def measure(n: int, idle_s: float) -> list[Figure]:
    name = f"clusters {n}"
    restart_limit_s = max(120.0, 3 * RESTART_LIMIT_S)
    with bench_nodes("raft_otp_bench_clusters_", 3, wal_sync_method="datasync") as h:
        procs = node_procs(h, client=False)
        base_cpu = _cpu_pct(procs, 3.0)
        base_rss = [p.memory_info().rss / 2**20 for p in procs]
        base_proc = _process(h)
        start_s, retried = start_all(h, n)
        time.sleep(2.0)  # let the last elections settle
        cpu = _cpu_pct(procs, idle_s)
        rss = [p.memory_info().rss / 2**20 for p in procs]
        proc = _process(h)
        try:
            restart_s, ready_s = restart_node(h, 2, n, timeout=restart_limit_s)
            restart_note = f"spawn until its {n} servers run and know a leader; READY after {ready_s:.1f} s"
        except RuntimeError as exc:  # reported as such, with what was measured before it
            print(f"  {exc}", file=sys.stderr, flush=True)
            restart_s = restart_limit_s
            restart_note = f"NOT back: gave up after {restart_limit_s:.0f} s, the value is that wait"
    worst = max(range(3), key=lambda i: cpu[i])
    threads = max(p["threads"] for p in proc)
    os_threads = max(p["os_threads"] or 0 for p in proc)
    base_os_threads = max(p["os_threads"] or 0 for p in base_proc)
    return [
        Figure(f"{name}: start", round(start_s, 2), "s",
               f"{LIMIT} ({START_THREADS} client threads, {retried} clusters retried)",
               START_LIMIT_S, higher_is_better=False),
        Figure(f"{name}: idle CPU per node", round(max(cpu), 2), "% of a core",
               f"{LIMIT} (node {worst + 1}; it used {base_cpu[worst]:.2f} % with no clusters)",
               IDLE_CPU_LIMIT_PCT, higher_is_better=False),
        Figure(f"{name}: threads per node", threads, "threads",
               f"{LIMIT} (threading.active_count(); {base_proc[0]['threads']} with no clusters)",
               THREADS_LIMIT, higher_is_better=False),
        Figure(f"{name}: OS threads per node", os_threads, "threads",
               "same node with no clusters", base_os_threads, higher_is_better=False),
        Figure(f"{name}: RSS per node", round(max(rss), 1), "MiB",
               "same node with no clusters", round(max(base_rss), 1), higher_is_better=False),
        Figure(f"{name}: node restart", round(restart_s, 2), "s", f"{LIMIT} ({restart_note})",
               RESTART_LIMIT_S, higher_is_better=False),
    ]


def run(quick: bool = False, clusters: int | None = None) -> list[Figure]:
    n = clusters if clusters is not None else (100 if quick else DEFAULT_CLUSTERS)
    return measure(n, 5.0 if quick else 10.0)


if __name__ == "__main__":
    counts = [int(a) for a in sys.argv[1:] if a.isdigit()]
    for f in run(quick="--quick" in sys.argv, clusters=counts[0] if counts else None):
        print(f)
