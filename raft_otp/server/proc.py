"""The server actor: one per Raft server (RA ``ra_server_proc``).

A pykka actor of the node scheduler's kind (``supervisors.scheduler.ScheduledActor``):
it has its own mailbox, handles one message at a time, is supervised and shows in
the tree, but owns no thread.  The scheduler runs it when messages are waiting, one
*slice* of them at a time, and that slice is one **server step**:

1. every message of the slice becomes a core event (client commands of the slice,
   and any queued right behind it, become ONE ``Commands`` event: one log write,
   one append_entries round);
2. each event goes through the pure core (``raft_otp.core.handle``);
3. the core's effects are carried out in order by the effect executor
   (``raft_otp.server.executor``, the same code the simulator runs) through this
   node's ports (``raft_otp.server.ports``);
4. the log is flushed once: the step's appends go to the WAL as one batch.
   Durability comes back later as a ``LogEvent`` message, never inside a step.

Which thread runs a step is the scheduler's decision alone (``INLINE_TYPES`` only
says which messages may be run on the delivering thread when the actor is idle).

What stays here is translation: mailbox messages into core events (timers,
monitor DOWNs, node events, snapshot sender reports, queries by name) and the
state calls (overview, key metrics, members, ping) answered from the actor.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import pykka
from supervisors.scheduler import ScheduledActor, in_inline_slice

from raft_otp.core import events as ev
from raft_otp.core.common import refuse
from raft_otp.core.types import ServerId
from raft_otp.errors import DiskFull
from raft_otp.server import _core
from raft_otp.server.context import SystemContext
from raft_otp.server.deliver import deliver
from raft_otp.server.executor import Executor, TimerFired
from raft_otp.server.machine_effects import MachineDown, MachineEffectsRunner, MachineTimerFired
from raft_otp.server.messages import CallReply, StateQuery
from raft_otp.server.metrics import CommitLatency, ServerMetrics, register_live, unregister_live
from raft_otp.server.ports import NodePorts
from raft_otp.server.requests import resolve_query_event
from raft_otp.server.snapshot_retry import SnapshotRetry
from raft_otp.server.snapshot_sender import SenderReport
from raft_otp.server.snapshot_transfers import SnapshotTransfers
from raft_otp.system.directory import ServerRecord
from raft_otp.system.resolve import load_machine

log = logging.getLogger("raft_otp.server")

MAX_DRAIN = 4096  # bound on commands taken per step (RA max_pipeline_count)

_PLAIN_RPCS = frozenset(t for t in ev.RPC_TYPES if t is not ev.InstallSnapshotResult)
_COMMANDS = (ev.Command, ev.Commands)


def _queued_command(env: Any) -> bool:
    return env.reply_to is None and type(env.message) in _COMMANDS


class ServerActor(ScheduledActor):
    """Runs one Raft server of ``ctx``'s system, registered under ``record.name``."""

    # Messages whose step may run on the thread that delivers them when this actor is
    # idle (the node's I/O thread, the WAL's notifier): Raft RPCs (not snapshot chunks:
    # disk writes), client commands and log events.  No step ever syncs a file.
    INLINE_TYPES = (_PLAIN_RPCS - {ev.InstallSnapshotRpc}) | frozenset((ev.Command, ev.Commands, ev.LogEvent))

    def __init__(self, ctx: SystemContext, record: ServerRecord, *, seed: int | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.record = record
        self.id = ServerId(record.name, ctx.node_name)
        self.cfg = ctx.config
        self.rng = random.Random(seed)
        self.metrics = ServerMetrics()
        self.commit_latency = CommitLatency(self.metrics)
        self.state: Any = None
        self.log: Any = None
        self.executor: Any = None
        self.ports: Any = None
        self.transfers: Any = None
        self.machine_fx: Any = None
        self._node_sub: Any = None
        self._wal_mon: Any = None
        self._disk_alarm: Any = getattr(ctx.log_system, "disk_alarm", None)  # raft_otp.log.disk_alarm

    # ---- lifecycle ----------------------------------------------------------------
    def on_start(self) -> None:
        machine = load_machine(self.record.machine)
        self.log = self.ctx.log_system.open_server_log(
            self.record.uid, self._notify_from_log, encode=machine.snapshot_encode,
            decode=machine.snapshot_decode)
        ref = self.actor_ref
        self.transfers = SnapshotTransfers(
            ref, self.id, self.ctx.node_name, lambda: self.log, self.cfg.snapshot_chunk_size,
            self.cfg.receive_snapshot_timeout_ms / 1000.0,
            lambda: self.metrics.incr("snapshots_sent"))
        self.machine_fx = MachineEffectsRunner(
            ref, self.id, self._commands, lambda i: self.log.fetch(i, i),
            lambda: self.executor.role == "leader", lambda: self.metrics.incr("machine_errors"))
        self.ports = NodePorts(ref, self.id, self.record.uid, self.cfg, self.ctx.log_system.meta,
                               self.rng, self.metrics, self.transfers, self.machine_fx)
        members = tuple((m, "voter") for m in self.record.initial_members)
        self.executor = Executor(self.id, self.ports, members)
        self.state, effects = _core.init(
            server_id=self.id, uid=self.record.uid, cluster_name=self.record.cluster_name,
            initial_members=list(self.record.initial_members), machine=machine,
            machine_config=self.record.machine[1], log=self.log,
            meta=_core.load_meta(self.ctx.log_system.meta, self.record.uid), config=self.cfg,
            rng=self.rng, rules=self.ctx.rules)
        self._node_sub = _core.subscribe_node_events(ref)
        # say we are here: the members' nodes see ours up within a heartbeat and a
        # leader among them probes us (a restarted follower need not wait for its
        # election timer to learn its leader and the commit index)
        _core.connect_nodes({m.node for m in self.state.members if m.node != self.ctx.node_name})
        self._wal_mon = _core.monitor_wal(self.ctx, ref)
        self.executor.execute(effects)
        self.log.flush()
        self._refresh_view()
        register_live(self.cfg.name, self.record.cluster_name, self.record.name, self.metrics)
        log.info("%s started (term %d, role %s)", self.id, self.state.term, self.executor.role)

    def on_stop(self) -> None:
        self._cleanup()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("%s term %d crashed: %r", self.id, self.term, exception_value)
        self._cleanup()

    def _cleanup(self) -> None:
        unregister_live(self.cfg.name, self.record.cluster_name, self.record.name, self.metrics)
        if self.executor is not None:
            self.executor.cancel_all()
        if self.ports is not None:
            self.ports.close()
        _core.demonitor(self._wal_mon)
        _core.unsubscribe(self._node_sub)
        if self.log is not None:
            try:
                self.log.close()
            except Exception:
                log.exception("%s: closing log failed", self.id)
            self.log = None

    @property
    def role(self) -> str:
        return self.executor.role if self.executor is not None else "recover"

    @property
    def leader(self) -> ServerId | None:
        return self.executor.leader if self.executor is not None else None

    @property
    def term(self) -> int:
        return self.state.term if self.state is not None else 0

    def _notify_from_log(self, payload: object) -> None:
        """Called from the log's threads (WAL, segment writer): post into our mailbox."""
        try:
            self.actor_ref.tell(ev.LogEvent(payload))
        except pykka.ActorDeadError:
            pass

    # ---- the step ---------------------------------------------------------------
    def handle_slice(self, envelopes: list[Any]) -> None:
        """One server step over the messages the scheduler took for this slice."""
        cmds: list[Any] = []
        inline = in_inline_slice()
        for i, env in enumerate(envelopes):
            m = env.message
            t = type(m)
            if inline and self._syncs_meta(m):
                # the delivering thread (the node's I/O thread) never syncs a file:
                # this message and the rest of the slice go to the scheduler's pool
                self.actor_inbox.push_front(envelopes[i:])
                break
            if env.reply_to is None:
                if t is ev.Command:
                    cmds.append(m)
                    continue
                if t is ev.Commands:
                    cmds.extend(m.commands)
                    continue
                if t in _PLAIN_RPCS:
                    self.metrics.counters["rpcs_received"] += 1
                    self._handle(m)
                    continue
                if t is ev.LogEvent or t is TimerFired:
                    self._receive(m)
                    continue
            if cmds:  # anything else keeps its place behind the commands before it
                self._commands(cmds)
                cmds = []
            self.handle_envelope(env)
            if self.actor_stopped.is_set():
                return
        if cmds:
            self._commands(cmds)
        self.log.flush()
        self._refresh_view()

    def _syncs_meta(self, m: Any) -> bool:
        """Whether handling ``m`` may make the core persist term or vote (a synced
        write): a vote request, anything of a newer term than ours, anything while a
        vote fence may lift, the log event that may make the log's first entry
        durable (recorded synchronously: ``raft_otp.core.fences``)."""
        st = self.state
        return (type(m) is ev.RequestVoteRpc or getattr(m, "term", 0) > st.term
                or st.data_lost is not None or st.vote_unproven
                or (not st.durable_floor and type(m) is ev.LogEvent))

    def on_receive(self, message: Any) -> Any:
        """A message outside the step's fast lanes (through pykka's handling)."""
        if type(message) in _COMMANDS:
            self._commands([message] if type(message) is ev.Command else list(message.commands))
        else:
            self._receive(message)
        return None

    def _receive(self, message: Any) -> None:
        match message:
            case ev.LogEvent():
                self._handle(message)
                if type(message.payload).__name__ == "WalUp":
                    if self._wal_mon is None:
                        self._wal_mon = _core.monitor_wal(self.ctx, self.actor_ref)
                    self._handle(ev.WalUp())
            case TimerFired():
                self.ports.timer_fired(message.key)
                event = self.executor.timer_event(message, int(time.time() * 1000))
                if event is not None:
                    self.metrics.counters["ticks" if type(event) is ev.Tick else "timeouts"] += 1
                    self._handle(event)
            case _ if type(message) in _PLAIN_RPCS:
                self.metrics.counters["rpcs_received"] += 1
                self._handle(message)
            case ev.InstallSnapshotResult():
                self.metrics.counters["rpcs_received"] += 1
                self.transfers.chunk_answer(message)
                self._handle(message)
            case ev.LocalQuery() | ev.LeaderQuery() | ev.ConsistentQuery():
                self._query(message)
            case ev.AddMember() | ev.RemoveMember() | ev.TransferLeadership() | ev.TriggerElection():
                self._handle(message)
            case SenderReport():
                self._maybe(self.transfers.report(message))
            case ev.SnapshotSenderDone():
                self.transfers.stop(message.peer)
                self._handle(message)
            case ev.SnapshotSenderFailed():
                self._maybe(self.transfers.failed_to_start(message))
            case SnapshotRetry():
                self.transfers.retry(message)
            case ev.NodeDown():
                self.transfers.node_down(message.node)
                self._handle(message)
                self.machine_fx.node_down(message.node)
            case ev.NodeUp():
                self.transfers.node_up(message.node)
                self._handle(message)
            case ev.CommitTimeout() | ev.WalDown() | ev.WalUp() | ev.LeaderDown():
                self._handle(message)
            case StateQuery():
                deliver(message.reply_to, self._state_query(message.what))
            case MachineTimerFired():
                self.machine_fx.timer_fired(message)
            case MachineDown():
                self.machine_fx.fire_down(message.key, message.reason)
            case _ if self.machine_fx.down(message):
                pass
            case _:
                event = self._translate_down(message)
                if event is not None:
                    self._handle(event)
                else:
                    log.debug("%s: unexpected message %r dropped", self.id, message)

    def _maybe(self, event: Any) -> None:
        if event is not None:
            self._handle(event)

    def _commands(self, cmds: list[Any]) -> None:
        """The step's client commands, with every command queued right behind them,
        as one core event."""
        if len(cmds) < MAX_DRAIN:
            for env in self.take_queued(_queued_command, MAX_DRAIN - len(cmds)):
                m = env.message
                if type(m) is ev.Command:
                    cmds.append(m)
                else:
                    cmds.extend(m.commands)
        self.metrics.counters["commands"] += len(cmds)
        self.metrics.counters["command_batches"] += 1
        if self._disk_alarm is not None and self._disk_alarm.active and self.role == "leader":
            cmds = self._refuse_disk_full(cmds)
            if not cmds:
                return
        leading = self.role == "leader"
        if leading:
            self.commit_latency.started()
        self._handle(ev.Commands(cmds, int(time.time() * 1000)))
        if leading and self.role == "leader":
            self.commit_latency.appended(self.log.last_index_term()[0])

    def _refuse_disk_full(self, cmds: list[Any]) -> list[Any]:
        """The disk alarm is on: refuse the callers' commands at once with DiskFull
        (nothing reaches the log); the machine's own (noreply) commands go on."""
        err = DiskFull(f"{self.id}: {self._disk_alarm.reason() or 'disk alarm'}")
        refused: list[Any] = []
        keep = []
        for cmd in cmds:
            if cmd.mode == "noreply":
                keep.append(cmd)
            else:
                refuse(cmd, err, self.id, refused)
        self._disk_alarm.count_refused(len(cmds) - len(keep))
        self.executor.execute(refused)
        return keep

    def _query(self, q: Any) -> None:
        kind = type(q).__name__
        self.metrics.counters[{"LocalQuery": "local_queries", "LeaderQuery": "leader_queries",
                               "ConsistentQuery": "consistent_queries"}[kind]] += 1
        try:
            q = resolve_query_event(q)
        except Exception as exc:
            deliver(q.reply_to, CallReply(False, f"bad_query: {exc}", self.leader, self.id))
            return
        self._handle(q)

    def _handle(self, event: Any) -> None:
        applied0 = self.state.last_applied
        t0 = time.perf_counter()
        self.state, effects = _core.handle(self.state, event)
        if self.state.last_applied != applied0:  # this event applied entries
            self.metrics.apply_s.observe(time.perf_counter() - t0)
        if effects:
            self.executor.execute(effects)

    def _translate_down(self, message: Any) -> Any:
        """A monitor DOWN as a core event (the WAL's, or our leader's), or None."""
        from supervisors.monitors import Down
        if not isinstance(message, Down):
            return None
        if self._wal_mon is not None and message.ref == self._wal_mon:
            self._wal_mon = None
            return ev.WalDown()
        watch = self.ports.watch
        if watch is not None and message.ref == watch[1]:
            log.debug("%s term %d: leader %s down (%r)", self.id, self.term, watch[0], message.reason)
            self.ports.watch = None
            return ev.NodeDown(watch[0].node) if message.reason == "noconnection" else ev.LeaderDown(watch[0])
        return None

    # ---- views ------------------------------------------------------------------
    def _refresh_view(self) -> None:
        """Gauges after each step (hot path: plain attribute reads only)."""
        st = self.state
        g = self.metrics.gauges
        g["term"] = st.term
        g["commit_index"] = ci = st.commit_index
        g["last_applied"] = st.last_applied
        if st.role == "leader":
            self.commit_latency.committed(ci)
        elif self.commit_latency.pending:
            self.commit_latency.clear()

    def _log_gauges(self) -> None:
        """Log gauges, read when someone asks (overview, key_metrics)."""
        g = self.metrics.gauges
        g["last_index"] = self.log.last_index_term()[0]
        g["last_written_index"] = self.log.last_written()[0]
        sm = self.log.snapshot_meta()
        g["snapshot_index"] = sm.index if sm is not None else 0
        st = self.sched_stats
        self.metrics.counters["inline_steps"] = st.get("inline_slices", 0)
        self.metrics.counters["slow_steps"] = st.get("slow_slices", 0)

    def _state_query(self, what: str) -> CallReply:
        if self.log is not None:
            self._log_gauges()
        if what == "ping":
            return CallReply(True, "pong", self.leader, self.id)
        if what == "members":
            return CallReply(True, [[list(m), k] for m, k in self.executor.members], self.leader, self.id)
        if what == "key_metrics":
            m = self.metrics.snapshot()
            if self._disk_alarm is not None:  # 1 while this system's disk alarm is on
                m["disk_alarm"] = int(self._disk_alarm.active)
            return CallReply(True, m, self.leader, self.id)
        if what == "overview":
            return CallReply(True, self.overview(), self.leader, self.id)
        return CallReply(False, f"unknown state query {what!r}", self.leader, self.id)

    def overview(self) -> dict[str, Any]:
        v = _core.view(self.state)
        timers = self.ports.timers
        return {
            "id": list(self.id), "uid": self.record.uid, "cluster": self.record.cluster_name,
            "role": self.role, "term": v["term"], "leader": list(self.leader) if self.leader else None,
            "members": [[list(m), k] for m, k in self.executor.members],
            "machine": self.record.machine[0],
            "commit_index": v["commit_index"], "last_applied": v["last_applied"],
            # vote fences (raft_otp.core.fences): no vote until proven / caught up
            "vote_unproven": v["vote_unproven"], "data_lost": v["data_lost"],
            "log": _safe(self.log.overview),
            "machine_overview": v.get("machine_overview"),
            "timers": {"election": "election" in timers,
                       "tick_ms": self.state.tick_ms if "tick" in timers else None,
                       "snapshot_senders": len(self.transfers)},
            "metrics": self.metrics.snapshot(),
            "disk_alarm": self._disk_alarm.reason() if self._disk_alarm is not None and
            self._disk_alarm.active else None,
        }


def _safe(f: Any) -> Any:
    try:
        return f()
    except Exception as exc:  # overview must never crash the server
        return {"error": repr(exc)}


class PooledServerActor(ServerActor):
    """A server whose steps always run on the scheduler's pool, never on a delivering
    thread (a system with ``direct_dispatch = false``: machines whose applies are slow)."""

    INLINE_TYPES = frozenset()


def server_actor_class(config: Any) -> type[ServerActor]:
    """The actor class for the servers of a system with ``config``."""
    return ServerActor if getattr(config, "direct_dispatch", True) else PooledServerActor
