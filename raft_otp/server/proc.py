"""The server actor: one per Raft server (RA ``ra_server_proc``).

It decides nothing.  It feeds events to the pure core (``raft_otp.core``) and
carries out the effects the core returns, in list order:

* owns the single election timer (randomised per timeout class, see
  ``timeouts``) and the tick, which only a leader runs: idle followers run no
  timer at all and learn of a dead leader from a monitor on the leader's actor
  (local) or the node failure detector (remote);
* batches: every client command queued in the mailbox at wake-up becomes one
  ``Commands`` core event (one log write, one append_entries round);
* durability comes back from the log as ``LogEvent``;
* starts one temporary snapshot sender actor per chunked transfer;
* when idle, lets the delivering thread (the node's I/O thread, a local caller)
  run a lone Raft RPC or client command for it (``raft_otp.server.direct``);
* answers state calls (overview, key metrics, members, ping) itself.

Differences from RA: the tick runs only on leaders (RA ticks every member),
so 1,000 idle clusters cost ~one timer per cluster per second on one node;
machine ``tick`` is therefore only called on leaders.
"""

from __future__ import annotations
from raft_otp import _trace as _T  # TRACE

import logging
from collections import deque
import random
import threading
import time
import traceback
from typing import Any

import pykka

from raft_otp.core import effects as fx
from raft_otp.core import events as ev
from raft_otp.core import machine as mfx
from raft_otp.core.machine import Machine
from raft_otp.core.common import refuse
from raft_otp.core.machine_calls import check_effects
from raft_otp.core.types import ServerId
from raft_otp.errors import DiskFull
from raft_otp.server import _core, timers
from raft_otp.server.context import SystemContext
from raft_otp.server.deliver import deliver
from raft_otp.server.direct import DirectDispatch
from raft_otp.server.messages import Applied, CallReply, Rejected, StateQuery
from raft_otp.server.metrics import ServerMetrics, register_live, unregister_live
from raft_otp.server.snapshot_retry import SnapshotRetries, SnapshotRetry
from raft_otp.server.snapshot_sender import SenderReport
from raft_otp.server.timeouts import election_timeout_ms
from raft_otp.system.directory import ServerRecord
from raft_otp.system.resolve import load_machine, resolve_query

log = logging.getLogger("raft_otp.server")

_TRACE_LINES = 12  # the end of a machine failure's traceback (logged at DEBUG)
MAX_DRAIN = 4096  # bound on commands taken per wake-up (RA max_pipeline_count)


class _ElectionFired:
    __slots__ = ("gen",)

    def __init__(self, gen: int) -> None:
        self.gen = gen


class _TickFired:
    __slots__ = ("gen",)

    def __init__(self, gen: int) -> None:
        self.gen = gen


class _MachineTimer:
    __slots__ = ("name", "gen")

    def __init__(self, name: Any, gen: int) -> None:
        self.name = name
        self.gen = gen


class _MachineDown:
    """A machine monitor's target was down when watched: fired from the mailbox,
    never from inside effect execution."""

    __slots__ = ("key", "reason")

    def __init__(self, key: Any, reason: Any) -> None:
        self.key = key
        self.reason = reason


_PLAIN_RPCS = frozenset(t for t in ev.RPC_TYPES if t is not ev.InstallSnapshotResult)


class ServerActor(DirectDispatch):
    """Runs one Raft server of ``ctx``'s system, registered under ``record.name``."""

    # Raft RPCs (not snapshot chunks: disk writes) and client commands may be handled by
    # the node's I/O thread when this actor is idle (``raft_otp.server.direct``); so may a
    # log event they caused.
    DIRECT_TYPES = (_PLAIN_RPCS - {ev.InstallSnapshotRpc}) | frozenset((ev.Command, ev.Commands))
    DRAIN_TYPES = frozenset((ev.LogEvent,))

    def __init__(self, ctx: SystemContext, record: ServerRecord, *, seed: int | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.record = record
        self.id = ServerId(record.name, ctx.node_name)
        self.cfg = ctx.config
        self.rng = random.Random(seed)
        self.metrics = ServerMetrics()
        self.state: Any = None
        self.log: Any = None
        self.meta_store: Any = None
        self.role = "recover"
        self.leader: ServerId | None = None
        self.term = 0
        self.members: tuple[tuple[ServerId, str], ...] = tuple((m, "voter") for m in record.initial_members)
        self._election_timer: Any = None
        self._election_gen = 0
        self._tick_timer: Any = None
        self._tick_gen = 0
        self._tick_ms = ctx.config.tick_ms      # grows while the leader is idle
        self._tick_last_index = -1
        self._machine_ticks = False
        self._watch: Any = None          # (leader, monitor handle)
        self._senders: dict[ServerId, pykka.ActorRef[Any]] = {}
        self._snap_retries = SnapshotRetries(self.actor_ref, ctx.node_name)
        self._machine_timers: dict[Any, tuple[int, Any]] = {}
        # machine Monitor effects (leader only): key -> (wire target, monitor handle or None)
        self._machine_monitors: dict[Any, tuple[list[Any], Any]] = {}
        self._pending_batches: deque[tuple[int, float]] = deque()  # (last index, arrival time)
        self._node_sub: Any = None
        self._wal_mon: Any = None
        self._disk_alarm: Any = getattr(ctx.log_system, "disk_alarm", None)  # raft_otp.log.disk_alarm
        self._log_flush: Any = None
        self._flushing_in = 0  # ident of the thread inside our log flush (0: none)
        self._own_log_events: list[Any] = []  # log events raised by that flush, on that thread

    # ---- lifecycle ----------------------------------------------------------------
    def on_start(self) -> None:
        machine = load_machine(self.record.machine)
        self.meta_store = self.ctx.log_system.meta
        self.log = self.ctx.log_system.open_server_log(
            self.record.uid, self._notify_from_log, encode=machine.snapshot_encode,
            decode=machine.snapshot_decode)
        # Hand appends to the WAL after the event's effects (append_entries first).
        self._log_flush = getattr(self.log, "flush", None)
        if self._log_flush is not None:
            self.log.defer_appends = True
            inbox_q = self.actor_inbox.queue  # type: ignore[attr-defined]
            self.log.inline_ok = lambda: not inbox_q  # nothing queued behind: sync inline
        self.state, effects = _core.init(
            server_id=self.id, uid=self.record.uid, cluster_name=self.record.cluster_name,
            initial_members=list(self.record.initial_members), machine=machine,
            machine_config=self.record.machine[1], log=self.log,
            meta=_core.load_meta(self.meta_store, self.record.uid), config=self.cfg, rng=self.rng)
        self._machine_ticks = type(machine).tick is not Machine.tick
        self._node_sub = _core.subscribe_node_events(self.actor_ref)
        # say we are here: the members' nodes see ours up within a heartbeat and a
        # leader among them probes us (a restarted follower need not wait for its
        # election timer to learn its leader and the commit index)
        _core.connect_nodes({m.node for m in self.state.members if m.node != self.ctx.node_name})
        self._wal_mon = _core.monitor_wal(self.ctx, self.actor_ref)
        self._execute(effects)
        if self._log_flush is not None:
            self._log_flush()
        self._refresh_view()
        self.offer_direct(self.cfg.direct_dispatch)
        register_live(self.cfg.name, self.record.cluster_name, self.record.name, self.metrics)
        log.info("%s started (term %d, role %s)", self.id, self.term, self.role)

    def on_stop(self) -> None:
        self._cleanup()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("%s term %d crashed: %r", self.id, self.term, exception_value)
        self._cleanup()

    def _cleanup(self) -> None:
        unregister_live(self.cfg.name, self.record.cluster_name, self.record.name, self.metrics)
        self.offer_direct(False)
        self._cancel_election_timer()
        timers.cancel(self._tick_timer)
        self._tick_timer = None
        for _, t in self._machine_timers.values():
            timers.cancel(t)
        self._drop_machine_monitors()
        self._unwatch_leader()
        _core.demonitor(self._wal_mon)
        _core.unsubscribe(self._node_sub)
        for ref in self._senders.values():
            ref.stop(block=False)
        self._senders.clear()
        self._snap_retries.clear()
        if self.log is not None:
            try:
                self.log.close()
            except Exception:
                log.exception("%s: closing log failed", self.id)
            self.log = None

    def _notify_from_log(self, payload: object) -> None:
        # Called from log threads (WAL, segment writer): post into our mailbox.  An
        # inline WAL write (see Wal.submit) notifies from inside our own flush, on
        # the handling thread: that event is handled right after the flush instead
        # of taking a trip through the mailbox.
        if self._flushing_in == threading.get_ident():
            self._own_log_events.append(payload)
            return
        try:
            self.actor_ref.tell(ev.LogEvent(payload))
        except pykka.ActorDeadError:
            pass

    # ---- dispatch ---------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if _T.ON: _T.mark("srv", f"recv {type(message).__name__} {type(getattr(message, 'payload', None)).__name__}")  # TRACE
        if type(message) in _PLAIN_RPCS:
            self.metrics.counters["rpcs_received"] += 1
            self._handle(message)
            return None
        match message:
            case ev.Command():
                self._commands([message])
            case ev.Commands():
                self._commands(list(message.commands))
            case ev.LogEvent():
                self._handle(message)
                if type(message.payload).__name__ == "WalUp":
                    if self._wal_mon is None:
                        self._wal_mon = _core.monitor_wal(self.ctx, self.actor_ref)
                    self._handle(ev.WalUp())
            case ev.InstallSnapshotResult():
                self.metrics.counters["rpcs_received"] += 1
                self._tell_sender(message.from_id, message)
                self._handle(message)
            case _ElectionFired():
                if message.gen == self._election_gen and self._election_timer is not None:
                    self._election_timer = None
                    self.metrics.counters["timeouts"] += 1
                    log.debug("%s term %d: election timeout in %s", self.id, self.term, self.role)
                    self._handle(ev.ElectionTimeout())
            case _TickFired():
                if message.gen == self._tick_gen:
                    self._tick_timer = None
                    self.metrics.counters["ticks"] += 1
                    did = self._handle(ev.Tick(int(time.time() * 1000)))
                    li = self.log.last_index_term()[0] if self.log is not None else 0
                    if did or li != self._tick_last_index or self._machine_ticks:
                        self._tick_ms = self.cfg.tick_ms
                    else:  # idle leader: tick less and less often (up to 16 ticks)
                        self._tick_ms = min(self._tick_ms * 2, self.cfg.tick_ms * 16)
                    self._tick_last_index = li
                    self._arm_tick()
            case ev.LocalQuery() | ev.LeaderQuery() | ev.ConsistentQuery():
                self._query(message)
            case ev.AddMember() | ev.RemoveMember() | ev.TransferLeadership() | ev.TriggerElection():
                self._handle(message)
            case SenderReport():
                cur = self._senders.get(message.event.peer)
                if cur is not None and cur.actor_urn != message.urn:
                    # from a sender replaced since: the current one stays tracked (and
                    # its retries untouched); a success still tells the core the peer
                    # holds that snapshot
                    if type(message.event) is ev.SnapshotSenderDone:
                        self._handle(message.event)
                else:
                    self.on_receive(message.event)
            case ev.SnapshotSenderDone():
                self._senders.pop(message.peer, None)
                self._snap_retries.forget(message.peer)
                self._handle(message)
            case ev.SnapshotSenderFailed():
                # a sender's failure is retried here with backoff; the core hears of it
                # only when there is nothing to retry
                if not (self._senders.pop(message.peer, None) is not None
                        and self._snap_retries.failed(message.peer)):
                    self._handle(message)
            case SnapshotRetry():
                req = self._snap_retries.fired(message)
                if req is not None:
                    self._start_sender(req)
            case ev.NodeDown():
                for peer in [p for p in self._senders if p.node == message.node]:
                    self._senders.pop(peer).stop(block=False)  # fail fast, not after 30 s
                    self._snap_retries.failed(peer, "its node went down")
                self._handle(message)
                self._machine_node_down(message.node)
            case ev.NodeUp():
                for req in self._snap_retries.node_up(message.node):
                    self._start_sender(req)
                self._handle(message)
            case ev.CommitTimeout():
                self._handle(message)
            case ev.WalDown() | ev.WalUp() | ev.LeaderDown():
                self._handle(message)
            case StateQuery():
                deliver(message.reply_to, self._state_query(message.what))
            case _MachineTimer():
                cur = self._machine_timers.get(message.name)
                if cur is not None and cur[0] == message.gen:
                    del self._machine_timers[message.name]
                    self._commands([ev.Command(["timeout", message.name], mode="noreply")])
            case _MachineDown():
                self._machine_fire_down(message.key, message.reason)
            case _ if self._machine_monitors and self._machine_down(message):
                pass
            case _:
                translated = _core.translate_foreign(self, message)
                if translated is not None:
                    self._handle(translated)
                else:
                    log.debug("%s: unexpected message %r dropped", self.id, message)
        return None

    def _commands(self, cmds: list[Any]) -> None:
        """Take every command already queued behind this one: one core event per wake-up."""
        inbox = self.actor_inbox
        with inbox.mutex:  # type: ignore[attr-defined]
            q = inbox.queue  # type: ignore[attr-defined]
            while q and len(cmds) < MAX_DRAIN:
                env = q[0]
                m = env.message
                if env.reply_to is not None:
                    break
                if type(m) is ev.Command:
                    cmds.append(m)
                elif type(m) is ev.Commands:
                    cmds.extend(m.commands)
                else:
                    break
                q.popleft()
        self.metrics.counters["commands"] += len(cmds)
        self.metrics.counters["command_batches"] += 1
        if self.role == "leader" and self._disk_alarm is not None and self._disk_alarm.active:
            cmds = self._refuse_disk_full(cmds)
            if not cmds:
                return
        if self._tick_ms != self.cfg.tick_ms:
            self._busy_tick()
        if self.role == "leader":
            self._pending_batches.append((-1, time.monotonic()))
        self._handle(ev.Commands(cmds, int(time.time() * 1000)))
        if self.role == "leader" and self._pending_batches and self._pending_batches[-1][0] == -1:
            t = self._pending_batches[-1][1]
            self._pending_batches[-1] = (self.log.last_index_term()[0], t)

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
        self._execute(refused)
        return keep

    def _query(self, q: Any) -> None:
        kind = type(q).__name__
        self.metrics.counters[{"LocalQuery": "local_queries", "LeaderQuery": "leader_queries",
                               "ConsistentQuery": "consistent_queries"}[kind]] += 1
        if not callable(q.fun):
            try:
                if isinstance(q.fun, (list, tuple)):
                    fun = _bind(resolve_query(q.fun[0]), q.fun[1])
                else:
                    fun = resolve_query(q.fun)
            except Exception as exc:
                deliver(q.reply_to, CallReply(False, f"bad_query: {exc}", self.leader, self.id))
                return
            if isinstance(q, ev.LocalQuery):
                q = ev.LocalQuery(q.reply_to, fun, q.min_index)
            else:
                q = type(q)(q.reply_to, fun)
        self._handle(q)

    def _handle(self, event: Any) -> int:
        if _T.ON: _T.mark("srv", f"handle {type(event).__name__}")  # TRACE
        applied0 = self.state.last_applied
        t0 = time.perf_counter()
        self.state, effects = _core.handle(self.state, event)
        if self.state.last_applied != applied0:  # this step applied entries
            self.metrics.apply_s.observe(time.perf_counter() - t0)
        if _T.ON: _T.mark("srv", f"handled {[type(x).__name__ for x in effects]}")  # TRACE
        if effects:
            self._execute(effects)
        if self._log_flush is not None and self.log is not None:
            self._flushing_in = threading.get_ident()
            try:
                self._log_flush()
            finally:
                self._flushing_in = 0
            if self._own_log_events:
                own, self._own_log_events = self._own_log_events, []
                for payload in own:
                    self.on_receive(ev.LogEvent(payload))
        self._refresh_view()
        return len(effects)

    # ---- effects ------------------------------------------------------------------
    def _execute(self, effects: list[Any]) -> None:
        for e in effects:
            if _T.ON: _T.mark("srv", f"effect {type(e).__name__}")  # TRACE
            match e:
                case fx.SendRpcs():
                    self._send_all(e.sends)
                case fx.SendRpc():
                    self._send(e.to, e.rpc)
                case fx.Reply():
                    self.metrics.counters["msgs_sent"] += 1
                    deliver(e.to, CallReply(True, e.value, e.leader, self.id))
                case fx.ReplyError():
                    self.metrics.counters["msgs_sent"] += 1
                    deliver(e.to, CallReply(False, e.reason, e.leader, self.id))
                case fx.Notify():
                    self.metrics.counters["msgs_sent"] += 1
                    deliver(e.to, Applied(self.id, list(e.replies)))
                case fx.Rejected():
                    self.metrics.counters["msgs_sent"] += 1
                    deliver(e.to, Rejected(e.leader, list(e.correlations)))
                case fx.PersistMeta():
                    _core.persist_meta(self.meta_store, self.record.uid, e.term, e.voted_for,
                                       e.vote_unproven, e.data_lost)
                case fx.PersistLastApplied():
                    _core.persist_last_applied(self.meta_store, self.record.uid, e.index,
                                               e.durable_commit)
                case fx.StartElectionTimer():
                    self._arm_election_timer(e.kind)
                case fx.CancelElectionTimer():
                    self._cancel_election_timer()
                case fx.StartCommitTimer():
                    timers.send_after(self.actor_ref, ev.CommitTimeout(), e.delay_ms / 1000.0)
                case fx.MachineEffects():
                    for me in e.effects:
                        self._guarded_machine_effect(me)
                case fx.SendSnapshot():
                    self._start_sender(e)
                case fx.StopSnapshotSender():
                    ref = self._senders.pop(e.to, None)
                    if ref is not None:
                        ref.stop(block=False)
                    self._snap_retries.forget(e.to)
                case fx.RoleChanged():
                    self._role_changed(e)
                case fx.MembersChanged():
                    if tuple(e.members) != self.members:
                        log.info("%s term %d: members now %s", self.id, self.term,
                                 ", ".join(f"{m.name}@{m.node} ({k})" for m, k in e.members))
                    self.members = tuple(e.members)
                case fx.SnapshotInstalled():
                    self.metrics.counters["snapshots_installed"] += 1
                    log.info("%s term %d: installed a snapshot from the leader at index %d "
                             "(term %d)", self.id, self.term, e.meta.index, e.meta.term)
                case fx.MachineFailed():
                    self._machine_failed(e)
                case _:
                    log.warning("%s: unknown effect %r", self.id, e)

    def _send_all(self, sends: Any) -> None:
        """A leader's append_entries to its peers are usually one message (same log
        position, entries and commit index) to servers of one name: encode it once."""
        to0, rpc0 = sends[0]
        if len(sends) > 1 and all(to[0] == to0[0] and rpc == rpc0 for to, rpc in sends[1:]):
            self.metrics.counters["rpcs_sent"] += len(sends)
            _core.send_same(to0[0], [to[1] for to, _ in sends], rpc0)
            return
        for to, rpc in sends:
            self._send(to, rpc)

    def _send(self, to: ServerId, rpc: Any) -> None:
        self.metrics.counters["rpcs_sent"] += 1
        _core.send(to, rpc)

    def _arm_election_timer(self, kind: str) -> None:
        self._cancel_election_timer()
        log.debug("%s term %d: election timer %s", self.id, self.term, kind)
        ms = election_timeout_ms(kind, self.cfg.broadcast_time_ms, self.rng,
                                 self.cfg.receive_snapshot_timeout_ms,
                                 self.cfg.await_condition_timeout_ms)
        self._election_gen += 1
        self._election_timer = timers.send_after(self.actor_ref, _ElectionFired(self._election_gen),
                                                 ms / 1000.0)

    def _cancel_election_timer(self) -> None:
        if self._election_timer is not None:
            timers.cancel(self._election_timer)
            self._election_timer = None
        self._election_gen += 1

    def _arm_tick(self) -> None:
        if self._tick_timer is None and self.role == "leader":
            self._tick_gen += 1
            self._tick_timer = timers.send_after(self.actor_ref, _TickFired(self._tick_gen),
                                                 self._tick_ms / 1000.0)

    def _busy_tick(self) -> None:
        """Activity after an idle spell: bring the tick back to its normal period."""
        if self._tick_ms != self.cfg.tick_ms and self.role == "leader":
            self._tick_ms = self.cfg.tick_ms
            timers.cancel(self._tick_timer)
            self._tick_timer = None
            self._arm_tick()

    def _role_changed(self, e: fx.RoleChanged) -> None:
        old, old_leader = self.role, self.leader
        self.role, self.leader, self.term = e.role, e.leader, e.term
        if (e.role != old or (e.leader != old_leader and e.leader is not None)) \
                and old != "recover":  # the "started" line says how it came up
            log.info("%s term %d: %s", self.id, e.term, _role_line(old, old_leader, e))
        if e.role != old:
            if e.role == "candidate":
                self.metrics.counters["elections"] += 1
            elif e.role == "pre_vote":
                self.metrics.counters["pre_vote_elections"] += 1
            elif e.role == "leader":
                self.metrics.counters["became_leader"] += 1
        if e.role == "leader":
            self._tick_ms = self.cfg.tick_ms
            self._arm_tick()
        else:
            timers.cancel(self._tick_timer)
            self._tick_timer = None
            self._tick_gen += 1
            self._pending_batches.clear()
            self._drop_machine_monitors()  # a new leader re-establishes them (state_enter)
        if e.role == "follower" and e.leader is not None and e.leader != self.id:
            self._watch_leader(e.leader)
        else:
            self._unwatch_leader()

    def _watch_leader(self, leader: ServerId) -> None:
        if self._watch is not None and self._watch[0] == leader:
            return
        self._unwatch_leader()
        self._watch = (leader, _core.monitor_server(leader, self.actor_ref, self.ctx.node_name))

    def _unwatch_leader(self) -> None:
        if self._watch is not None:
            _core.demonitor(self._watch[1])
            self._watch = None

    def leader_down(self, target: Any, reason: Any) -> ev.LeaderDown | ev.NodeDown | None:
        """Translate a monitor DOWN into a core event when it concerns our leader."""
        if self._watch is None:
            return None
        log.debug("%s term %d: leader %s down (%r)", self.id, self.term, self._watch[0], reason)
        leader, _ = self._watch
        self._watch = None
        if reason == "noconnection":
            return ev.NodeDown(leader.node)
        return ev.LeaderDown(leader)

    def _tell_sender(self, peer: ServerId, message: Any) -> None:
        """Route ``message`` to the sender streaming to ``peer``, if one is tracked.

        A tracked sender may have stopped already: it ends itself when done or failed,
        and its report (which untracks it) can still be behind ``message`` in our
        mailbox.  Nothing is lost by dropping the message then: that report follows."""
        sender = self._senders.get(peer)
        if sender is None:
            return
        try:
            sender.tell(message)
        except pykka.ActorDeadError:
            log.debug("%s term %d: %r for a snapshot sender to %s that has ended; dropped",
                      self.id, self.term, message, peer)

    def _start_sender(self, e: fx.SendSnapshot) -> None:
        from raft_otp.server.snapshot_sender import SnapshotSender
        old = self._senders.pop(e.to, None)
        if old is not None:
            old.stop(block=False)
        if not self._snap_retries.may_start(e):
            return  # the peer's node is down or we are backing off: retried later
        chunks = self.log.snapshot_chunks(self.cfg.snapshot_chunk_size)
        if chunks is None:
            self.actor_ref.tell(ev.SnapshotSenderFailed(e.to))
            return
        meta, it = chunks
        self.metrics.counters["snapshots_sent"] += 1
        self._senders[e.to] = SnapshotSender.start(
            self.actor_ref, self.id, e.to, e.term, meta, it,
            self.cfg.receive_snapshot_timeout_ms / 1000.0)

    def _guarded_machine_effect(self, me: Any) -> None:
        """Carry out one machine effect; one that fails here (a LogRead function that
        raises, an effect it returned that is invalid) is logged and counted, never a
        crash of the server."""
        try:
            self._machine_effect(me)
        except Exception as exc:
            self.metrics.counters["machine_errors"] += 1
            log.warning("%s term %d: machine effect %r failed: %r (the server runs on)",
                        self.id, self.term, me, exc, exc_info=True)

    def _machine_effect(self, me: Any) -> None:
        match me:
            case mfx.SendMsg():
                to = me.to
                try:
                    if isinstance(to, str):
                        from supervisors.registry import whereis
                        ref = whereis(to)
                        if ref is not None:
                            ref.tell(me.msg)
                    else:
                        _core.send((to[0], to[1]), me.msg)
                except Exception:
                    log.debug("%s: send_msg to %r failed", self.id, to)
            case mfx.Timer():
                cur = self._machine_timers.pop(me.name, None)
                if cur is not None:
                    timers.cancel(cur[1])
                if me.ms is not None:
                    gen = self.rng.getrandbits(31)
                    t = timers.send_after(self.actor_ref, _MachineTimer(me.name, gen), me.ms / 1000.0)
                    self._machine_timers[me.name] = (gen, t)
            case mfx.ModCall():
                try:
                    resolve_query(me.fun)(*me.args)
                except Exception:
                    log.exception("%s: mod_call %s failed", self.id, me.fun)
            case mfx.LogRead():
                entries = [e for i in me.indexes for e in self.log.fetch(i, i)]
                more = resolve_query(me.fun)(entries) or []
                check_effects(more)
                for m in more:
                    self._machine_effect(m)
            case mfx.Monitor():
                self._machine_monitor(me.target)
            case mfx.Demonitor():
                self._machine_demonitor(me.target)
            case mfx.ReleaseCursor() | mfx.Checkpoint():
                # The core turns these into Log calls itself; if one reaches us, hand it over.
                _core.release_cursor(self.state, me)
            case _:
                log.warning("%s: unknown machine effect %r", self.id, me)

    def _machine_failed(self, e: fx.MachineFailed) -> None:
        """The core turned a machine failure into an outcome: log it in one line naming
        where it raised (a poison command sent in a loop must not flood the log with
        tracebacks; the whole traceback is at DEBUG) and count it."""
        frames = traceback.extract_tb(e.error.__traceback__)
        where = f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
        if e.what == "query":
            self.metrics.counters["query_errors"] += 1
            log.warning("%s term %d: query raised %s: %s%s", self.id, self.term, e.type_name,
                        e.message, where)
        else:
            self.metrics.counters["machine_errors"] += 1
            at = f" at index {e.index}" if e.index is not None else ""
            log.warning("%s term %d: machine %s raised %s%s: %s%s (the server runs on)", self.id,
                        self.term, e.what, e.type_name, at, e.message, where)
        if log.isEnabledFor(logging.DEBUG):  # the whole traceback, in the same record
            log.debug("%s: traceback of that %s failure:\n%s", self.id, e.what,
                      "".join(traceback.format_exception(e.error)[-_TRACE_LINES:]).rstrip())

    # ---- machine monitors (RA: leader-only; DOWN becomes a replicated command) ------
    def _machine_monitor(self, target: Any) -> None:
        if self.role != "leader":
            return
        key = _monitor_key(target)
        if key is None:
            log.warning("%s: machine monitor of %r: target must be (name, node) or "
                        "(\"node\", node_name)", self.id, target)
            return
        if key in self._machine_monitors:
            return  # already watched (state_enter may re-issue it)
        wire = list(key)
        if key[0] == "node":
            self._machine_monitors[key] = (wire, None)
            if not _core.node_is_up(key[1]):
                self.actor_ref.tell(_MachineDown(key, "noconnection"))
            return
        try:
            handle = _core.machine_monitor(key, self.actor_ref)
        except Exception as exc:  # no node started and a remote target: it is unreachable
            log.debug("%s: cannot monitor %r: %r", self.id, target, exc)
            self._machine_monitors[key] = (wire, None)
            self.actor_ref.tell(_MachineDown(key, "noconnection"))
            return
        self._machine_monitors[key] = (wire, handle)

    def _machine_demonitor(self, target: Any) -> None:
        key = _monitor_key(target)
        cur = self._machine_monitors.pop(key, None) if key is not None else None
        if cur is not None and cur[1] is not None:
            _core.demonitor(cur[1])

    def _drop_machine_monitors(self) -> None:
        mons, self._machine_monitors = self._machine_monitors, {}
        for _, handle in mons.values():
            if handle is not None:
                _core.demonitor(handle)

    def _machine_down(self, message: Any) -> bool:
        """A DOWN for one of the machine's monitors: submit ``["down", target, reason]``."""
        ref = getattr(message, "ref", None)
        if ref is None or not hasattr(message, "reason"):
            return False
        for key, (_, handle) in self._machine_monitors.items():
            if handle is not None and handle == ref:
                self._machine_fire_down(key, _core.down_reason(message.reason))
                return True
        return False

    def _machine_node_down(self, node: str) -> None:
        key = ("node", node)
        if key in self._machine_monitors:
            self._machine_fire_down(key, "noconnection")

    def _machine_fire_down(self, key: Any, reason: Any) -> None:
        """Monitors fire once (like Erlang's): forget it, then replicate the DOWN."""
        cur = self._machine_monitors.pop(key, None)
        if cur is None or self.role != "leader":
            return
        log.debug("%s term %d: machine monitor %r down (%r)", self.id, self.term, key, reason)
        self._commands([ev.Command(["down", cur[0], reason], mode="noreply")])

    # ---- views ------------------------------------------------------------------
    def _direct_was_slow(self, took: float) -> None:
        super()._direct_was_slow(took)
        self.metrics.counters["direct_slow"] += 1

    def _refresh_view(self) -> None:
        """Gauges after each event (hot path: plain attribute reads only)."""
        st = self.state
        g = self.metrics.gauges
        g["term"] = st.term
        g["commit_index"] = ci = st.commit_index
        g["last_applied"] = st.last_applied
        pb = self._pending_batches
        if pb:
            now = time.monotonic()
            while pb and pb[0][0] != -1 and pb[0][0] <= ci:
                took = now - pb[0][1]
                g["commit_latency_ms"] = round(took * 1000.0, 3)
                self.metrics.commit_s.observe(took)
                pb.popleft()

    def _log_gauges(self) -> None:
        """Log gauges, read when someone asks (overview, key_metrics)."""
        g = self.metrics.gauges
        g["last_index"] = self.log.last_index_term()[0]
        g["last_written_index"] = self.log.last_written()[0]
        sm = self.log.snapshot_meta()
        g["snapshot_index"] = sm.index if sm is not None else 0

    def _state_query(self, what: str) -> CallReply:
        if self.log is not None:
            self._log_gauges()
        if what == "ping":
            return CallReply(True, "pong", self.leader, self.id)
        if what == "members":
            return CallReply(True, [[list(m), k] for m, k in self.members], self.leader, self.id)
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
        return {
            "id": list(self.id), "uid": self.record.uid, "cluster": self.record.cluster_name,
            "role": self.role, "term": v["term"], "leader": list(self.leader) if self.leader else None,
            "members": [[list(m), k] for m, k in self.members],
            "machine": self.record.machine[0],
            "commit_index": v["commit_index"], "last_applied": v["last_applied"],
            # vote fences (raft_otp.core.fences): no vote until proven / caught up
            "vote_unproven": v["vote_unproven"], "data_lost": v["data_lost"],
            "log": _safe(self.log.overview),
            "machine_overview": v.get("machine_overview"),
            "timers": {"election": self._election_timer is not None,
                       "tick_ms": self._tick_ms if self._tick_timer is not None else None,
                       "snapshot_senders": len(self._senders)},
            "metrics": self.metrics.snapshot(),
            "disk_alarm": self._disk_alarm.reason() if self._disk_alarm is not None and
            self._disk_alarm.active else None,
        }


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


def _monitor_key(target: Any) -> tuple[Any, Any] | None:
    """``(name, node)`` / ``("node", node_name)`` (tuple, list or ServerId) as a dict key."""
    if isinstance(target, (tuple, list)) and len(target) == 2 and all(isinstance(x, str) for x in target):
        return (target[0], target[1])
    return None


def _bind(f: Any, args: Any) -> Any:
    args = tuple(args)
    return lambda state: f(state, *args)


def _safe(f: Any) -> Any:
    try:
        return f()
    except Exception as exc:  # overview must never crash the server
        return {"error": repr(exc)}
