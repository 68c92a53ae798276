"""Shared pieces of the node-process benchmarks (cluster, clusters, clusters_load,
recovery_node, versus): temporary node processes with this process joined as the
client node, psutil handles on them, CPU time, and starting counter clusters."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psutil

COUNTER: tuple[str, dict[str, Any]] = ("raft_otp.machines.counter:Counter", {})


@contextmanager
def bench_nodes(prefix: str, n: int = 3, **kwargs: Any) -> Iterator[Any]:
    """``n`` node processes (``kwargs`` go to NodeProcs) in a new temporary dir named
    ``prefix``..., this process joined as client node "bench"; on exit close them,
    stop the client node and remove the dir."""
    from raft_otp.node import runtime as node_rt
    from raft_otp.system.harness import NodeProcs

    base = tempfile.mkdtemp(prefix=prefix)
    h = NodeProcs(base, n, **kwargs)
    try:
        h.start()
        h.join_as_client("bench")
        yield h
    finally:
        h.close()
        if node_rt.is_started():
            node_rt.stop_node()
        shutil.rmtree(base, ignore_errors=True)


def node_procs(h: Any, client: bool = True) -> list[psutil.Process]:
    """psutil handles on ``h``'s node processes (and this process, the client, if ``client``)."""
    return [psutil.Process(np.pid) for np in h.nodes] + ([psutil.Process()] if client else [])


def cpu_s(procs: list[psutil.Process]) -> float:
    """user+system CPU seconds of ``procs`` so far (processes gone are skipped)."""
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def start_counter(h: Any, name: str, timeout: float = 20) -> list[Any]:
    """Start counter cluster ``name`` on nodes 0-2 of ``h``; its member ids."""
    import raft_otp
    ids = [h[i].sid(name) for i in range(3)]
    started, _ = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=timeout)
    if len(started) != 3:
        raise RuntimeError("cluster did not start")
    return ids


def start_counter_retrying(h: Any, name: str, timeout: float) -> tuple[list[Any], int]:
    """Start counter cluster ``name`` on nodes 0-2 of ``h``; when not every member
    started (or nothing did: a busy host can make the client's failure detector call
    a node down for a moment), delete every member and start it again, up to 5
    tries; (member ids, retries)."""
    import raft_otp
    from raft_otp.errors import RaftError
    ids = [h[i].sid(name) for i in range(3)]
    last: Exception | None = None
    for retried in range(5):
        try:
            started, _ = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=timeout)
            if len(started) == 3:
                return ids, retried
            last = RuntimeError(f"started only {started}")
        except RaftError as exc:
            last = exc
        _delete_members(ids, deadline=time.monotonic() + timeout)
        time.sleep(0.5)
    raise RuntimeError(f"cluster {name} did not start: {last!r}")


def _delete_members(ids: list[Any], deadline: float) -> None:
    """force_delete_server every member, asking again while its node does not answer."""
    import raft_otp
    from raft_otp.errors import NodeDown, Timeout
    for sid in ids:
        while True:
            try:
                raft_otp.force_delete_server("default", sid, timeout=10)
                break
            except (NodeDown, Timeout):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def server_counts(h: Any, i: int, system: str = "default", timeout: float = 30.0) -> dict[str, Any]:
    """Node ``i``'s system actor's counts: records, to_run, running, leader_known, leaderless."""
    from raft_otp.node import runtime as node_rt
    from raft_otp.system.system_actor import ServerOpReq, actor_name
    return node_rt.call((actor_name(system), h[i].name), ServerOpReq("counts", ""), timeout)
