"""Every output of the pure core: one closed union of frozen, slotted dataclasses.

Ports RA's server effects (``{send_rpc, ...}``, ``{reply, ...}``, ``{notify, ...}``,
``{record_leader_msg, ...}``, ``start_election_timeout``, ``{send_snapshot, ...}``)
plus the machine effects passthrough.

Contract with the server actor:

* Effects are executed **in list order**.  ``PersistMeta`` must be durable
  (synchronously) before any later effect of the same list is executed: votes and
  term changes are answered only after the meta store synced them.
* Log writes are not effects: the core calls the ``Log`` directly and durability
  comes back as a ``LogEvent``.
* Timers: the actor owns the clock and the randomised timeouts.  The core names
  the *class* of timeout (RA's ``broadcast_time`` = 100 ms multiples)::

      "leader_down"      1..100 ms      leader process died / transfer target
      "connection_lost"  101..600 ms    leader unreachable (its node down)
      "candidate"        101..1100 ms   candidate retry
      "pre_vote"         1001..2000 ms  pre-vote round / no leader known
      "receive_snapshot" 30 s           reset on every chunk
      "await_condition"  5 s            waiting for the WAL

  There is a single election timer per server: ``StartElectionTimer`` replaces a
  running one; ``CancelElectionTimer`` stops it.  When it fires the actor feeds
  ``ElectionTimeout()``.  Idle clusters send no heartbeats, so a follower that
  knows its leader has *no* timer running: ``RoleChanged`` names the leader, which
  the actor then watches (process monitor + node failure detector) and reports as
  ``LeaderDown``/``NodeDown``.
* ``SendRpc``/``SendRpcs`` are fire-and-forget; a send that fails is dropped
  (Raft retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from raft_otp.core.events import Rpc
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core.machine import MachineEffect
from raft_otp.core.types import ServerId

Role = Literal[
    "recover",
    "follower",
    "pre_vote",
    "candidate",
    "leader",
    "receive_snapshot",
    "await_condition",
]

TimerKind = Literal[
    "leader_down",
    "connection_lost",
    "candidate",
    "pre_vote",
    "receive_snapshot",
    "await_condition",
]


@dataclass(frozen=True, slots=True)
class SendRpc:
    to: ServerId
    rpc: Rpc


@dataclass(frozen=True, slots=True)
class SendRpcs:
    """Several RPCs produced by one event (e.g. append_entries to every peer)."""

    sends: tuple[tuple[ServerId, Rpc], ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """Successful answer to a caller: ``value`` is the machine's reply or query
    result (or ``"ok"`` for membership/transfer calls); ``leader`` the current leader."""

    to: Any
    value: Any
    leader: ServerId | None


ErrorReason = Literal[
    "not_leader",
    "cluster_change_not_permitted",
    "not_member",
    "already_member",
    "timeout",
    "already_leader",
    "not_caught_up",
    "leadership_lost",  # the command was appended but leadership was lost: outcome unknown
]


@dataclass(frozen=True, slots=True)
class ReplyError:
    """Failed call: the server layer maps ``reason`` to ``raft_otp.errors``
    (``not_leader`` -> ``NotLeader(server, leader)``, ``cluster_change_not_permitted``
    -> ``ClusterChangeNotPermitted``, ...); a reason that is already one of
    ``raft_otp.errors`` (``MachineError``, ``QueryError``, ``CommandTooLarge``) is
    raised at the caller as it is."""

    to: Any
    reason: ErrorReason | Exception
    leader: ServerId | None


@dataclass(frozen=True, slots=True)
class Notify:
    """Pipelined commands applied (RA ``{applied, [{Correlation, Reply}]}``)."""

    to: Any
    replies: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """Pipelined commands refused (RA ``{rejected, {not_leader, Leader, Corr}}``)."""

    to: Any
    correlations: tuple[Any, ...]
    leader: ServerId | None


@dataclass(frozen=True, slots=True)
class PersistMeta:
    """Make ``term`` and ``voted_for`` durable NOW, before executing later effects.
    ``vote_unproven``/``data_lost`` are this server's fences (``raft_otp.core.fences``):
    kept durable with the vote so a restart does not lift them."""

    term: int
    voted_for: ServerId | None
    vote_unproven: bool = False
    data_lost: int | None = None


@dataclass(frozen=True, slots=True)
class PersistLastApplied:
    """May be written asynchronously; a lower value after a crash only costs replay.
    ``durable_commit`` (``min(last written, commit index)``, and at least 1 once the
    log durably had an entry) rides along: a restart whose log ends below it lost
    data (``ServerMeta.durable_commit``).  ``sync``: durable before any later effect
    (the first record of a log's existence, before anything is acknowledged)."""

    index: int
    durable_commit: int = 0
    sync: bool = False


@dataclass(frozen=True, slots=True)
class StartElectionTimer:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class CancelElectionTimer:
    pass


@dataclass(frozen=True, slots=True)
class StartCommitTimer:
    """Leader: deliver a ``CommitTimeout`` event after ``delay_ms`` (the deferred
    commit-index notification of idle peers; see ``ServerConfig.commit_notify_delay_ms``)."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class StartTickTimer:
    """Leader: deliver a ``Tick`` after ``delay_ms``, replacing any tick timer that
    runs.  The core decides the interval (``raft_otp.core.ticks``: the configured
    tick, backing off while the leader is idle); followers run no tick."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class CancelTickTimer:
    """No tick any more (this server stopped leading)."""


@dataclass(frozen=True, slots=True)
class MachineEffects:
    """Machine effects to carry out (leader-only ones already dropped on followers)."""

    effects: tuple[MachineEffect, ...]


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Start a snapshot sender to ``to``: it streams ``log.snapshot_chunks(chunk_size)``
    as ``InstallSnapshotRpc(term, leader_id, meta, n, is_last, data)``, waits for each
    ``InstallSnapshotResult`` and reports ``SnapshotSenderDone``/``SnapshotSenderFailed``."""

    to: ServerId
    meta: SnapshotMeta
    term: int


@dataclass(frozen=True, slots=True)
class StopSnapshotSender:
    """Stop any sender to ``to`` (leadership lost or peer removed)."""

    to: ServerId


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The server's role or known leader changed (for monitors, console, metrics).
    A follower with ``leader`` set expects the actor to watch that leader."""

    role: Role
    leader: ServerId | None
    term: int


@dataclass(frozen=True, slots=True)
class MembersChanged:
    """The cluster map in effect changed (``members``: (server, kind) pairs)."""

    members: tuple[tuple[ServerId, str], ...]


@dataclass(frozen=True, slots=True)
class MachineFailed:
    """The machine's ``what`` ("apply", "tick", "state_enter", "snapshot_installed",
    "query") raised or returned an invalid effect (``raft_otp.core.machine_calls``);
    the server logs it (with the traceback of ``error``) and counts it.
    Informational: the outcome was already decided by the core."""

    what: str
    index: int | None
    type_name: str
    message: str
    error: BaseException


@dataclass(frozen=True, slots=True)
class SnapshotInstalled:
    """This follower installed a snapshot from the leader (informational)."""

    meta: SnapshotMeta


Effect = (
    SendRpc
    | SendRpcs
    | Reply
    | ReplyError
    | Notify
    | Rejected
    | PersistMeta
    | PersistLastApplied
    | StartElectionTimer
    | CancelElectionTimer
    | StartCommitTimer
    | StartTickTimer
    | CancelTickTimer
    | MachineEffects
    | SendSnapshot
    | StopSnapshotSender
    | RoleChanged
    | MembersChanged
    | SnapshotInstalled
    | MachineFailed
)

__all__ = [
    "CancelElectionTimer",
    "CancelTickTimer",
    "Effect",
    "ErrorReason",
    "MachineEffects",
    "MachineFailed",
    "MembersChanged",
    "Notify",
    "PersistLastApplied",
    "PersistMeta",
    "Rejected",
    "Reply",
    "ReplyError",
    "Role",
    "RoleChanged",
    "SendRpc",
    "SendRpcs",
    "SendSnapshot",
    "SnapshotInstalled",
    "StartCommitTimer",
    "StartElectionTimer",
    "StartTickTimer",
    "StopSnapshotSender",
    "TimerKind",
]
