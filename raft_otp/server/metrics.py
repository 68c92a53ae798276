"""Per-server counters and gauges (RA ``ra_counters`` field table for servers).

A declared table: name -> description.  Counters only grow; gauges are set
from the core's view after each event.  Read with ``key_metrics``.  Two latency
histograms (``HISTOGRAMS``: commit and apply) are observed by the server actor
and, with every counter and gauge, exported by ``raft_otp.system.metrics_http``
(Prometheus); a running server's metrics are found there through ``live()``.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Any

COUNTERS: dict[str, str] = {
    "commands": "client commands received (all modes)",
    "command_batches": "core Commands events (one log write each)",
    "rpcs_sent": "RPCs handed to the transport",
    "rpcs_received": "RPCs received from peers",
    "msgs_sent": "replies and notifications sent to callers",
    "elections": "times this server became candidate",
    "pre_vote_elections": "times this server started a pre-vote",
    "became_leader": "times this server became leader",
    "snapshots_sent": "snapshot senders started",
    "snapshots_installed": "snapshots installed from a leader",
    "local_queries": "local queries received",
    "leader_queries": "leader queries received",
    "consistent_queries": "consistent queries received",
    "timeouts": "election timer expiries",
    "ticks": "ticks handled",
    "machine_errors": "machine apply/tick/state_enter/snapshot_installed calls that raised or "
                      "returned an invalid effect (the command's outcome is a MachineError)",
    "query_errors": "query functions that raised (the caller got a QueryError)",
    "commands_refused": "commands refused before the log (larger than max_command_bytes)",
    "inline_steps": "server steps the scheduler ran on the delivering thread (the node's "
                    "I/O thread, the WAL's notifier) because this server was idle",
    "slow_steps": "inline steps slower than 10 ms (each sends this server's steps to the "
                  "scheduler's pool for a while: supervisors.scheduler)",
}

GAUGES: dict[str, str] = {
    "term": "current term",
    "commit_index": "highest index known committed",
    "last_applied": "highest index applied to the machine",
    "last_index": "highest index in the log",
    "last_written_index": "highest index known durable",
    "snapshot_index": "index of the current snapshot (0 if none)",
    "commit_latency_ms": "leader: time from a batch's arrival to its commit (last batch)",
}


class CommitLatency:
    """A leader's commit latency: from a command batch's arrival to the commit of its
    last entry (gauge ``commit_latency_ms`` and the ``commit_s`` histogram)."""

    __slots__ = ("metrics", "pending", "_t")

    def __init__(self, metrics: "ServerMetrics") -> None:
        self.metrics = metrics
        self.pending: list[tuple[int, float]] = []  # (last index of a batch, its arrival)
        self._t = 0.0

    def started(self) -> None:
        """A batch arrives at a leader (call ``appended`` once it is in the log)."""
        self._t = time.monotonic()

    def appended(self, last_index: int) -> None:
        self.pending.append((last_index, self._t))

    def committed(self, commit_index: int) -> None:
        pb = self.pending
        if not pb or pb[0][0] > commit_index:
            return
        now = time.monotonic()
        n = 0
        for last, t in pb:
            if last > commit_index:
                break
            took = now - t
            self.metrics.commit_s.observe(took)
            n += 1
        self.metrics.gauges["commit_latency_ms"] = round(took * 1000.0, 3)
        del pb[:n]

    def clear(self) -> None:
        self.pending.clear()


class ServerMetrics:
    __slots__ = ("counters", "gauges", "commit_s", "apply_s")

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, Any] = dict.fromkeys(GAUGES, 0)
        self.commit_s = LatencyHistogram()
        self.apply_s = LatencyHistogram()

    def incr(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        return {**self.counters, **self.gauges}


# ---- latency histograms (read by raft_otp.system.metrics_http at scrape time) -------

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the commit and apply histograms; +Inf is implied."""

HISTOGRAMS: dict[str, str] = {
    "commit": "leader: time from a command batch's arrival to its commit (seconds)",
    "apply": "time of a server step that applied committed entries to the machine "
             "(the machine's apply calls for them and the step around them; seconds)",
}


class LatencyHistogram:
    """Fixed-bucket counts written by the server actor's thread alone (no lock: one
    ``bisect`` and two additions per observation) and read at scrape time.  A reader
    may see an observation half-added (its bucket counted, the sum not yet): the next
    scrape is exact again, which Prometheus tolerates."""

    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last: +Inf
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum_s += seconds

    def cumulative(self) -> tuple[list[tuple[str, int]], float]:
        """``([(le, cumulative count), ..., ("+Inf", total)], sum)`` for an exposition."""
        counts = list(self.counts)
        out: list[tuple[str, int]] = []
        acc = 0
        for bound, n in zip((*map(repr, LATENCY_BUCKETS_S), "+Inf"), counts):
            acc += n
            out.append((bound, acc))
        return out, self.sum_s


_LIVE: dict[tuple[str, str, str], "ServerMetrics"] = {}
_LIVE_LOCK = threading.Lock()


def register_live(system: str, cluster: str, server: str, metrics: "ServerMetrics") -> None:
    """A running server's metrics, under its labels, for the scrape (replaces an earlier
    incarnation's)."""
    with _LIVE_LOCK:
        _LIVE[(system, cluster, server)] = metrics


def unregister_live(system: str, cluster: str, server: str, metrics: "ServerMetrics") -> None:
    """Forget a stopped server's metrics (unless a newer incarnation took its place)."""
    with _LIVE_LOCK:
        if _LIVE.get((system, cluster, server)) is metrics:
            del _LIVE[(system, cluster, server)]


def live() -> list[tuple[tuple[str, str, str], "ServerMetrics"]]:
    """``[((system, cluster, server), metrics), ...]`` of the servers running in this process."""
    with _LIVE_LOCK:
        return list(_LIVE.items())
