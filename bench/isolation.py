"""Isolation: a cluster whose ``apply`` sleeps 100 ms beside a cluster of ordinary
commands, on the same 3 node processes (issue 18, "Isolation").

Two three-member clusters share nodes 1-3: ``slow`` runs
``raft_otp.testing.slow_machine:Sleeper`` and ``fast`` a counter.  The bench
process, a client node, measures ``fast``'s sequential ``process_command`` in
alternating rounds: with ``slow`` idle, then with ``slow`` kept busy by
``LOADERS`` client threads each sending ``["sleep", 100]`` back to back (so a
100 ms apply is always running or queued on every member), and so on.

Figure ``isolation: sequential p50 beside a 100 ms apply`` (ms): the p50 over
the busy rounds against the p50 over the idle rounds of the same run.  Issue
18's bar: at most 20 % higher, i.e. ratio >= 0.83.  The p99s are reported too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench._nodes import COUNTER, bench_nodes
from bench.common import Figure, percentile

SLEEPER: tuple[str, dict[str, Any]] = ("raft_otp.testing.slow_machine:Sleeper", {})
SLOW_APPLY_MS = 100
LOADERS = 2
BAR = 1.2  # busy p50 at most 1.2x the idle p50


class _SlowLoad:
    """``LOADERS`` threads keeping the slow cluster's apply busy while ``on`` is set."""

    def __init__(self, leader: Any) -> None:
        self.leader = leader
        self.on = threading.Event()
        self.done = threading.Event()
        self.applied = 0
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, name=f"bench.isolation load {i}", daemon=True)
                         for i in range(LOADERS)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        import raft_otp
        leader = self.leader
        while not self.done.is_set():
            if not self.on.wait(0.05):
                continue
            try:
                _reply, leader = raft_otp.process_command(leader, ["sleep", SLOW_APPLY_MS], timeout=30)
                self.applied += 1
            except BaseException as exc:  # reported by close()
                self.errors.append(exc)
                return

    def close(self) -> None:
        self.on.clear()
        self.done.set()
        for t in self._threads:
            t.join(35)
        if self.errors:
            raise RuntimeError(f"slow cluster load failed: {self.errors[0]!r}")


def _round(leader: Any, n: int) -> tuple[list[float], Any]:
    import raft_otp
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        _reply, leader = raft_otp.process_command(leader, ["incr"], timeout=10)
        lat.append(time.perf_counter() - t0)
    return lat, leader


def measure(rounds: int = 4, n: int = 300) -> list[Figure]:
    import raft_otp
    with bench_nodes("raft_otp_bench_isolation_", 3, wal_sync_method="datasync") as h:
        slow = [h[i].sid("slow") for i in range(3)]
        fast = [h[i].sid("fast") for i in range(3)]
        for name, machine, ids in (("slow", SLEEPER, slow), ("fast", COUNTER, fast)):
            _started, not_started = raft_otp.start_cluster("default", name, machine, ids, timeout=30)
            if not_started:
                raise RuntimeError(f"cluster {name}: {not_started} not started")
        _r, slow_leader = raft_otp.process_command(slow[0], ["count"], timeout=10)
        _r, fast_leader = raft_otp.process_command(fast[0], ["incr"], timeout=10)
        _warm, fast_leader = _round(fast_leader, max(20, n // 5))
        load = _SlowLoad(slow_leader)
        idle: list[float] = []
        busy: list[float] = []
        try:
            for _ in range(rounds):
                lat, fast_leader = _round(fast_leader, n)
                idle += lat
                load.on.set()
                time.sleep(2.5 * SLOW_APPLY_MS / 1000)  # slow applies queued on every member
                lat, fast_leader = _round(fast_leader, n)
                busy += lat
                load.on.clear()
                time.sleep(2.5 * SLOW_APPLY_MS / 1000)  # the queued slow applies drain
        finally:
            load.close()
        applied = load.applied
    peer = (f"same p50, slow cluster idle, same run ({rounds} alternating rounds of {n}; "
            f"{applied} slow applies; bar: at most {BAR:g}x)")
    return [
        Figure(f"isolation: sequential p50 beside a {SLOW_APPLY_MS} ms apply",
               round(percentile(busy, 50) * 1e3, 3), "ms", peer, round(percentile(idle, 50) * 1e3, 3),
               higher_is_better=False),
        Figure(f"isolation: sequential p99 beside a {SLOW_APPLY_MS} ms apply",
               round(percentile(busy, 99) * 1e3, 3), "ms", "same p99, slow cluster idle, same run",
               round(percentile(idle, 99) * 1e3, 3), higher_is_better=False),
    ]


def run(quick: bool = False) -> list[Figure]:
    return measure(rounds=2, n=100) if quick else measure()


if __name__ == "__main__":
    import sys
    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:50s} {f.value:>8} {f.unit} | {f.peer}: {f.peer_value}  ratio {f.ratio:.2f}")
