"""The effect executor: carries out the core's effects, in list order, against ports.

The pure core (``raft_otp.core``) decides; this module only does what the effects
say, through a :class:`Ports` object that is the one joint with the outside
world.  The server actor runs it with ports onto the node (transport, meta store,
timers, snapshot sender actors, monitors: ``raft_otp.server.ports``); the
deterministic simulator (``raft_otp.testing.sim``) runs the very same executor
with ports onto its fake network, clock and log.  So what the simulator checks
is what runs.

Timers are the executor's only state: it keeps one generation per timer (the
election timer, the leader's tick, the commit notification timer), so a timer
message that was replaced or cancelled while queued is ignored
(:meth:`Executor.timer_event` turns a live one into its core event).  How long a
timer runs is the core's (``StartTickTimer``, ``StartCommitTimer``) or the
timeout class's (``StartElectionTimer``: ``Ports.election_timeout_ms``).
"""

from __future__ import annotations

from typing import Any, Protocol

from raft_otp.core import effects as fx
from raft_otp.core import events as ev
from raft_otp.core.types import ServerId

__all__ = ["Executor", "Ports", "TimerFired", "ELECTION", "TICK", "COMMIT"]

ELECTION, TICK, COMMIT = "election", "tick", "commit"


class TimerFired:
    """The message a timer posts back to its server: timer ``key``, generation ``gen``."""

    __slots__ = ("key", "gen")

    def __init__(self, key: str, gen: int) -> None:
        self.key = key
        self.gen = gen

    def __repr__(self) -> str:
        return f"TimerFired({self.key!r}, {self.gen})"


class Ports(Protocol):
    """Everything the executor does to the world.  Each method is one kind of effect."""

    def send(self, to: ServerId, rpc: Any) -> None:
        """Fire and forget a Raft RPC (a failed send is dropped: Raft retries)."""

    def send_same(self, name: str, nodes: list[str], rpc: Any) -> None:
        """The same RPC to the server ``name`` on each of ``nodes`` (encoded once)."""

    def reply(self, to: Any, effect: Any) -> None:
        """Answer a caller: ``effect`` is a ``Reply``, ``ReplyError``, ``Notify`` or ``Rejected``."""

    def persist_meta(self, term: int, voted_for: ServerId | None, vote_unproven: bool,
                     data_lost: int | None) -> None:
        """Make term and vote durable before returning."""

    def persist_last_applied(self, index: int, durable_commit: int, sync: bool) -> None:
        """Record the last applied index (lazily, unless ``sync``: durable on return)."""

    def election_timeout_ms(self, kind: str) -> int:
        """A (random) duration for the election timer class ``kind``."""

    def set_timer(self, message: TimerFired, delay_ms: int) -> None:
        """Post ``message`` back to this server after ``delay_ms`` (a replaced or cancelled
        timer's message may still arrive: the executor drops it by its generation)."""

    def cancel_timer(self, key: str) -> None:
        """Best effort: the timer ``key`` need not fire (its generation is dead anyway)."""

    def role_changed(self, effect: fx.RoleChanged, old_role: str, old_leader: ServerId | None) -> None:
        """The role, leader or term changed: watch the new leader (a follower), log it."""

    def members_changed(self, effect: fx.MembersChanged) -> None: ...

    def start_snapshot(self, effect: fx.SendSnapshot) -> None:
        """Start (or restart) streaming the current snapshot to ``effect.to``."""

    def stop_snapshot(self, peer: ServerId) -> None: ...

    def machine_effects(self, effects: tuple[Any, ...]) -> None:
        """The machine's own effects (send_msg, timers, monitors, mod_call, log reads)."""

    def snapshot_installed(self, effect: fx.SnapshotInstalled) -> None: ...

    def machine_failed(self, effect: fx.MachineFailed) -> None:
        """A machine callback raised (already the command's outcome): log, count."""


class Executor:
    """Runs one server's effects through ``ports``; see the module docstring."""

    __slots__ = ("id", "ports", "role", "leader", "term", "members", "gens", "armed")

    def __init__(self, server_id: ServerId, ports: Ports,
                 members: tuple[tuple[ServerId, str], ...] = ()) -> None:
        self.id = server_id
        self.ports = ports
        self.role = "recover"
        self.leader: ServerId | None = None
        self.term = 0
        self.members = members
        self.gens = {ELECTION: 0, TICK: 0, COMMIT: 0}
        self.armed = {ELECTION: False, TICK: False, COMMIT: False}

    # ---- timers ---------------------------------------------------------------------
    def _arm(self, key: str, delay_ms: int) -> None:
        gen = self.gens[key] + 1
        self.gens[key] = gen
        self.armed[key] = True
        self.ports.set_timer(TimerFired(key, gen), delay_ms)

    def _cancel(self, key: str) -> None:
        self.gens[key] += 1
        if self.armed[key]:
            self.armed[key] = False
            self.ports.cancel_timer(key)

    def timer_event(self, msg: TimerFired, now_ms: int) -> ev.Event | None:
        """The core event of a timer that fired, or None if it was replaced or cancelled."""
        key = msg.key
        if msg.gen != self.gens.get(key) or not self.armed.get(key):
            return None
        self.armed[key] = False
        if key == ELECTION:
            return ev.ElectionTimeout()
        if key == TICK:
            return ev.Tick(now_ms)
        return ev.CommitTimeout()

    def cancel_all(self) -> None:
        """The server stops: no timer of it may fire."""
        for key in (ELECTION, TICK, COMMIT):
            self._cancel(key)

    # ---- effects --------------------------------------------------------------------
    def execute(self, effects: list[Any]) -> None:
        """Carry out ``effects`` in list order."""
        ports = self.ports
        for e in effects:
            t = type(e)
            if t is fx.SendRpcs:
                self._send_all(e.sends)
            elif t is fx.SendRpc:
                ports.send(e.to, e.rpc)
            elif t is fx.Reply or t is fx.Notify or t is fx.ReplyError or t is fx.Rejected:
                ports.reply(e.to, e)
            elif t is fx.PersistMeta:
                ports.persist_meta(e.term, e.voted_for, e.vote_unproven, e.data_lost)
            elif t is fx.PersistLastApplied:
                ports.persist_last_applied(e.index, e.durable_commit, e.sync)
            elif t is fx.StartElectionTimer:
                self._arm(ELECTION, ports.election_timeout_ms(e.kind))
            elif t is fx.CancelElectionTimer:
                self._cancel(ELECTION)
            elif t is fx.StartTickTimer:
                self._arm(TICK, e.delay_ms)
            elif t is fx.CancelTickTimer:
                self._cancel(TICK)
            elif t is fx.StartCommitTimer:
                self._arm(COMMIT, e.delay_ms)
            elif t is fx.MachineEffects:
                ports.machine_effects(e.effects)
            elif t is fx.SendSnapshot:
                ports.start_snapshot(e)
            elif t is fx.StopSnapshotSender:
                ports.stop_snapshot(e.to)
            elif t is fx.RoleChanged:
                old_role, old_leader = self.role, self.leader
                self.role, self.leader, self.term = e.role, e.leader, e.term
                ports.role_changed(e, old_role, old_leader)
            elif t is fx.MembersChanged:
                if tuple(e.members) != self.members:
                    self.members = tuple(e.members)
                    ports.members_changed(e)
            elif t is fx.SnapshotInstalled:
                ports.snapshot_installed(e)
            elif t is fx.MachineFailed:
                ports.machine_failed(e)
            else:
                raise TypeError(f"{self.id}: unknown effect {e!r}")

    def _send_all(self, sends: Any) -> None:
        """A leader's append_entries to its peers are usually one message (same log
        position, entries and commit index) to servers of one name: sent as one."""
        to0, rpc0 = sends[0]
        if len(sends) > 1 and all(to[0] == to0[0] and rpc == rpc0 for to, rpc in sends[1:]):
            self.ports.send_same(to0[0], [to[1] for to, _ in sends], rpc0)
            return
        send = self.ports.send
        for to, rpc in sends:
            send(to, rpc)
