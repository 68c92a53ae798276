"""The executor's ports onto a real node: transport, meta store, timers, monitors,
snapshot senders and machine effects (see ``raft_otp.server.executor.Ports``).

One instance per server actor.  Nothing here decides Raft: each method does one
kind of effect, and keeps the counters and log lines an operator reads.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from raft_otp.core import effects as fx
from raft_otp.core.types import ServerId
from raft_otp.server import _core, timers
from raft_otp.server.deliver import deliver
from raft_otp.server.executor import TimerFired
from raft_otp.server.machine_effects import MachineEffectsRunner
from raft_otp.server.messages import Applied, CallReply, Rejected
from raft_otp.server.metrics import ServerMetrics
from raft_otp.server.snapshot_transfers import SnapshotTransfers
from raft_otp.server.timeouts import election_timeout_ms

log = logging.getLogger("raft_otp.server")

_TRACE_LINES = 12  # the end of a machine failure's traceback (logged at DEBUG)


class NodePorts:
    """Ports of the server ``server_id`` (its actor ``owner``) on this node."""

    def __init__(self, owner: Any, server_id: ServerId, uid: str, cfg: Any, meta_store: Any,
                 rng: Any, metrics: ServerMetrics, transfers: SnapshotTransfers,
                 machine: MachineEffectsRunner) -> None:
        self.owner = owner
        self.id = server_id
        self.uid = uid
        self.cfg = cfg
        self.meta_store = meta_store
        self.rng = rng
        self.metrics = metrics
        self.counters = metrics.counters
        self.transfers = transfers
        self.machine = machine
        self.timers: dict[str, Any] = {}
        self.watch: tuple[ServerId, Any] | None = None  # (leader, monitor handle)
        self.term = 0

    # ---- transport ---------------------------------------------------------------------
    def send(self, to: ServerId, rpc: Any) -> None:
        self.counters["rpcs_sent"] += 1
        _core.send(to, rpc)

    def send_same(self, name: str, nodes: list[str], rpc: Any) -> None:
        self.counters["rpcs_sent"] += len(nodes)
        _core.send_same(name, nodes, rpc)

    def reply(self, to: Any, e: Any) -> None:
        self.counters["msgs_sent"] += 1
        t = type(e)
        if t is fx.Reply:
            deliver(to, CallReply(True, e.value, e.leader, self.id))
        elif t is fx.Notify:
            deliver(to, Applied(self.id, list(e.replies)))
        elif t is fx.ReplyError:
            deliver(to, CallReply(False, e.reason, e.leader, self.id))
        else:
            deliver(to, Rejected(e.leader, list(e.correlations)))

    # ---- meta --------------------------------------------------------------------------
    def persist_meta(self, term: int, voted_for: ServerId | None, vote_unproven: bool,
                     data_lost: int | None) -> None:
        _core.persist_meta(self.meta_store, self.uid, term, voted_for, vote_unproven, data_lost)

    def persist_last_applied(self, index: int, durable_commit: int, sync: bool) -> None:
        _core.persist_last_applied(self.meta_store, self.uid, index, durable_commit, sync)

    # ---- timers ------------------------------------------------------------------------
    def election_timeout_ms(self, kind: str) -> int:
        cfg = self.cfg
        return election_timeout_ms(kind, cfg.broadcast_time_ms, self.rng,
                                   cfg.receive_snapshot_timeout_ms, cfg.await_condition_timeout_ms)

    def set_timer(self, message: TimerFired, delay_ms: int) -> None:
        old = self.timers.get(message.key)
        if old is not None:
            timers.cancel(old)
        self.timers[message.key] = timers.send_after(self.owner, message, delay_ms / 1000.0)

    def cancel_timer(self, key: str) -> None:
        timers.cancel(self.timers.pop(key, None))

    def timer_fired(self, key: str) -> None:
        self.timers.pop(key, None)

    # ---- roles and members ----------------------------------------------------------------
    def role_changed(self, e: fx.RoleChanged, old: str, old_leader: ServerId | None) -> None:
        self.term = e.term
        if (e.role != old or (e.leader != old_leader and e.leader is not None)) \
                and old != "recover":  # the "started" line says how it came up
            log.info("%s term %d: %s", self.id, e.term, _role_line(old, old_leader, e))
        if e.role != old:
            key = {"candidate": "elections", "pre_vote": "pre_vote_elections",
                   "leader": "became_leader"}.get(e.role)
            if key is not None:
                self.counters[key] += 1
        if e.role != "leader":
            self.machine.drop_monitors()  # a new leader re-establishes them (state_enter)
        if e.role == "follower" and e.leader is not None and e.leader != self.id:
            self._watch_leader(e.leader)
        else:
            self.unwatch_leader()

    def _watch_leader(self, leader: ServerId) -> None:
        if self.watch is not None and self.watch[0] == leader:
            return
        self.unwatch_leader()
        self.watch = (leader, _core.monitor_server(leader, self.owner, self.id.node))

    def unwatch_leader(self) -> None:
        if self.watch is not None:
            _core.demonitor(self.watch[1])
            self.watch = None

    def members_changed(self, e: fx.MembersChanged) -> None:
        log.info("%s term %d: members now %s", self.id, self.term,
                 ", ".join(f"{m.name}@{m.node} ({k})" for m, k in e.members))

    # ---- snapshots and the machine ----------------------------------------------------
    def start_snapshot(self, e: fx.SendSnapshot) -> None:
        self.transfers.start(e)

    def stop_snapshot(self, peer: ServerId) -> None:
        self.transfers.stop(peer)

    def snapshot_installed(self, e: fx.SnapshotInstalled) -> None:
        self.counters["snapshots_installed"] += 1
        log.info("%s term %d: installed a snapshot from the leader at index %d (term %d)",
                 self.id, self.term, e.meta.index, e.meta.term)

    def machine_effects(self, effects: tuple[Any, ...]) -> None:
        self.machine.run(effects)

    def machine_failed(self, e: fx.MachineFailed) -> None:
        """Log a machine failure (already the command's outcome) in one line naming where
        it raised (a poison command sent in a loop must not flood the log with
        tracebacks; the whole traceback is at DEBUG), and count it."""
        frames = traceback.extract_tb(e.error.__traceback__)
        where = f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
        if e.what == "query":
            self.counters["query_errors"] += 1
            log.warning("%s term %d: query raised %s: %s%s", self.id, self.term, e.type_name,
                        e.message, where)
        else:
            self.counters["machine_errors"] += 1
            at = f" at index {e.index}" if e.index is not None else ""
            log.warning("%s term %d: machine %s raised %s%s: %s%s (the server runs on)", self.id,
                        self.term, e.what, e.type_name, at, e.message, where)
        if log.isEnabledFor(logging.DEBUG):  # the whole traceback, in the same record
            log.debug("%s: traceback of that %s failure:\n%s", self.id, e.what,
                      "".join(traceback.format_exception(e.error)[-_TRACE_LINES:]).rstrip())

    def close(self) -> None:
        for t in self.timers.values():
            timers.cancel(t)
        self.timers.clear()
        self.unwatch_leader()
        self.transfers.close()
        self.machine.close()


def _role_line(old: str, old_leader: Any, e: fx.RoleChanged) -> str:
    """One INFO line an operator reads: an election won or lost, a new leader, a role."""
    if e.role == "leader" and old != "leader":
        return f"won the election: leader (was {old})"
    if old in ("candidate", "pre_vote") and e.role == "follower":
        return f"lost the election: follower of {e.leader}"
    if e.role == old:
        return (f"follows leader {e.leader}" if old_leader is None
                else f"leader changed: {old_leader} -> {e.leader}")
    return f"{old} -> {e.role} (leader {e.leader})"
