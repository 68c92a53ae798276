"""Per-server counters and gauges (RA ``ra_counters`` field table for servers).

A declared table: name -> description.  Counters only grow; gauges are set
from the core's view after each event.  Read with ``key_metrics``.
"""

from __future__ import annotations

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
    "direct_slow": "handlings in the node's I/O thread slower than 10 ms (each sends this "
                   "server's messages back to its own thread for a while)",
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


class ServerMetrics:
    __slots__ = ("counters", "gauges")

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, Any] = dict.fromkeys(GAUGES, 0)

    def incr(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        return {**self.counters, **self.gauges}
