"""The replicated state machine contract (RA's ``ra_machine`` behaviour).

A machine is deterministic: the same commands in the same order give the same
states and replies on every member.  Commands, replies and machine state are
msgpack-able values (state is msgpack-encoded for snapshots unless the machine
overrides ``snapshot_encode`` / ``snapshot_decode``).

``apply`` returns ``(state, reply)`` or ``(state, reply, effects)`` where
``effects`` is a list of the machine effects declared below (exported from
``raft_otp`` too).  Every effect is checked on every member when it is returned
(a bad one fails its command with a ``MachineError``); then ``ReleaseCursor`` and
``Checkpoint`` act on every member's log, and the leader-only effects
(``SendMsg``, ``ModCall``, ``Timer``, ``Monitor``, ``Demonitor``, ``LogRead``)
are carried out by the leader and dropped on followers, as in RA.  Effects are
not carried out while a member replays its log after a restart.  Because a new
leader may repeat what an old one did (it applies the same entries), an effect
that must happen once should be idempotent at its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack


class ApplyMeta(NamedTuple):
    """Context of one applied entry (immutable; a NamedTuple because one is built per
    applied entry: 0.25 us against 0.9 us for a frozen dataclass).

    ``system_time_ms`` is the entry time: the leader's wall clock (ms since the
    epoch) when it appended the command to its log, carried in the entry itself.
    Every member, and every replay after a restart, sees the same value for an
    entry, so ``apply`` may base decisions on it (lease expiry) and stay
    deterministic.  It never decreases along the log, leader changes included: a
    leader stamps ``max(its clock, the time of the last command in its log)``, so
    a new leader whose clock is behind holds the time still until it catches up.
    It is wall-clock time: a lease built on it assumes the members' clocks agree
    to within the margin the lease allows (as etcd's leases do)."""

    index: int
    term: int
    machine_version: int
    system_time_ms: int


# ---- machine effects ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendMsg:
    """Send ``msg`` to ``to`` (a registered name on the leader's node, or ``(name,
    node)``).

    Leader only (carried out when the leader applies the entry; followers and a
    member replaying its log after a restart drop it); not replicated and not
    confirmed (a send to an unknown name is dropped).  Make the receiver
    idempotent: a machine that re-sends from ``state_enter("leader", ...)`` may
    repeat what the old leader sent."""

    to: Any
    msg: Any


@dataclass(frozen=True, slots=True)
class ReleaseCursor:
    """Entries up to ``index`` may be dropped: ``state`` is the machine state at
    ``index`` (after applying it) and becomes the snapshot.

    On every member (not leader only).  Without it a log is never compacted: return
    it every N commands (the built-in machines do: ``release_cursor_every``).  The
    snapshot is written in the background and the log truncated once it is
    durable.  A cursor is a hint: it is ignored while a snapshot is being written,
    at or below the current snapshot (so a repeated one is harmless), or closer
    than ``min_snapshot_interval`` to it unless it frees a segment file; so offer
    one regularly rather than once.  ``index`` is an
    int >= 0 (else ``MachineError``); give ``meta.index`` of the entry being
    applied, and ``state`` as returned for it (not mutated afterwards)."""

    index: int
    state: Any


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A snapshot of ``state`` at ``index`` that truncates nothing (a checkpoint); a
    later ``ReleaseCursor`` may promote it instead of writing its state again.

    On every member; ``index`` an int >= 0.  A hint as ``ReleaseCursor`` is (ignored
    while a snapshot is being written, or within ``min_checkpoint_interval`` of the
    last checkpoint)."""

    index: int
    state: Any


@dataclass(frozen=True, slots=True)
class Timer:
    """After ``ms`` milliseconds the leader submits ``["timeout", name]`` as an ordinary
    command (logged, replicated, applied everywhere); ``ms=None`` cancels.

    * ``name`` must be hashable and msgpack-encodable: a str, int or tuple (a tuple
      arrives as a list in the command); else ``MachineError``.  ``ms`` >= 0.
    * One timer per name: setting a name again replaces (restarts) its timer.
    * Leader only, and not replicated: a timer lives in the server that set it
      while leader, and is gone when that server stops or restarts.  A machine that needs its
      timers after a leader change sets them again from ``state_enter("leader",
      state)``; a ``["timeout", name]`` may then arrive twice, so handle it
      idempotently (compare with a deadline kept in the state)."""

    name: Any
    ms: int | None


@dataclass(frozen=True, slots=True)
class Monitor:
    """Watch a process/node; its DOWN arrives as a command ``["down", target, reason]``.
    Leader only; idempotent (watching a watched target again is a no-op).

    ``target`` is an actor address ``(name, node)`` or ``("node", node_name)``
    (tuples, lists or a ``ServerId``).  Contract (as RA's ``{monitor, ...}``):

    * Only the leader watches; the effect is dropped on followers.  When the
      target goes down the leader submits ``["down", [name, node], reason]`` (or
      ``["down", ["node", node_name], "noconnection"]``) to its own cluster as an
      ordinary ``noreply`` command, so it is logged, replicated and applied on
      every member in the same order (deterministic).  ``reason`` is a plain
      value: the actor's exit reason (non-plain reasons as text), ``"noproc"``
      (no such actor when watched) or ``"noconnection"`` (node unreachable).
    * A monitor fires once and is then forgotten; monitoring an already watched
      target again is a no-op.  ``Demonitor(target)`` cancels it: no
      ``["down", ...]`` follows.
    * Monitors are not replicated state: the leader drops them all when it stops
      or stops leading.  A machine that needs them must re-issue its ``Monitor``
      effects from ``state_enter("leader", state)`` (which the new leader runs),
      and should treat ``["down", ...]`` idempotently: a DOWN may be committed
      by an old leader just before a new one watches the target again.
    """

    target: Any


@dataclass(frozen=True, slots=True)
class Demonitor:
    """Stop watching ``target`` (same forms as ``Monitor``): no ``["down", ...]`` for
    it follows.  Leader only; idempotent (a target not watched is a no-op)."""

    target: Any


@dataclass(frozen=True, slots=True)
class LogRead:
    """Read the log entries at ``indexes`` and call ``fun(entries)`` (``fun`` is an
    import path ``"module:function"``); the effects it returns are checked and
    carried out as if ``apply`` had returned them.

    Leader only; an index no longer in the log (compacted) gives no entry."""

    indexes: tuple[int, ...]
    fun: str


@dataclass(frozen=True, slots=True)
class ModCall:
    """Call ``fun(*args)`` (``fun`` an import path ``"module:function"``) on the
    leader, outside the machine: for side effects the state must not depend on.

    Leader only; runs in the server's thread (keep it short); an exception is
    logged, not retried; not replicated, and a new leader may repeat it (make it
    idempotent)."""

    fun: str
    args: tuple[Any, ...]


MachineEffect = SendMsg | ReleaseCursor | Checkpoint | Timer | Monitor | Demonitor | LogRead | ModCall


class Machine:
    """Base class of replicated state machines.  Override ``init`` and ``apply``."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def init(self, config: Any) -> Any:
        """Initial state."""
        raise NotImplementedError

    def apply(self, meta: ApplyMeta, command: Any, state: Any) -> tuple[Any, Any] | tuple[Any, Any, list[MachineEffect]]:
        """Apply one committed command: ``(new_state, reply[, effects])``."""
        raise NotImplementedError

    def state_enter(self, role: str, state: Any) -> list[MachineEffect]:
        """Called when the local server changes role."""
        return []

    def tick(self, time_ms: int, state: Any) -> list[MachineEffect]:
        """Called on the server's periodic tick."""
        return []

    def snapshot_installed(self, meta: Any, state: Any) -> list[MachineEffect]:
        """Called after a snapshot from the leader was installed."""
        return []

    def overview(self, state: Any) -> Any:
        """Plain data describing the state, for the console."""
        return {}

    def version(self) -> int:
        """Version of the machine's logic; upgrades are applied through the log."""
        return 0

    def which_module(self, version: int) -> "Machine":
        """The implementation for an older ``version`` (RA's ``which_module/1``)."""
        return self

    def snapshot_encode(self, state: Any) -> bytes:
        return msgpack.packb(state, use_bin_type=True)

    def snapshot_decode(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
