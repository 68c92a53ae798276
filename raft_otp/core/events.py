"""Every input of the pure core: one closed union of frozen, slotted dataclasses.

Ports the messages ``ra_server:handle_<role>/2`` accepts (RA's ``#append_entries_rpc{}``,
``#request_vote_rpc{}``, ``{command, ...}``, ``{ra_log_event, ...}``, ...).

Contract with the server actor (``raft_otp.server``):

* The actor feeds each event to ``raft_otp.core.handle(state, event)`` and executes
  the returned effects in list order (see ``raft_otp.core.effects``).
* RPCs and their replies (``Rpc``) cross the wire, and so do the client requests
  ``Command``, ``Commands``, the three queries, the membership requests and
  ``TriggerElection`` (a caller on another node sends them as they are).  Their
  wire layout is not this file's field order: it is declared in
  ``raft_otp.protocol.messages`` (each type's code and its fields in wire order,
  with their kinds: ``ServerId`` fields are declared as such).  A field added here
  must be added there (``raft_otp.protocol.install`` refuses a table that differs
  from its class), and ``tests/test_protocol_golden.py`` pins every encoding.  Each
  RPC carries the sender's ``ServerId`` so the transport needs no envelope.
* Everything else is local: produced by the actor (timers, the failure detector,
  the WAL, the snapshot sender, client calls).  ``reply_to`` fields are opaque
  references owned by the actor (a future, a ZeroMQ return address...); the core
  only copies them into ``Reply``/``Notify``/``Rejected`` effects.
* Client commands arrive best in batches (``Commands``): the leader appends all of
  them in one log write, one round of append_entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core.types import Entry, ServerId

# ---------------------------------------------------------------------------
# RPCs (wire)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreVoteRpc:
    """Pre-vote request (RA ``#pre_vote_rpc{}``). Sent at the candidate's *current*
    term; receivers never record a vote and never change their term for it."""

    term: int
    token: int  # echoed in the result so stale results of an older round are ignored
    candidate_id: ServerId
    machine_version: int  # the candidate's machine version; too old => not granted
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True, slots=True)
class PreVoteResult:
    term: int
    token: int
    voter_id: ServerId
    vote_granted: bool


@dataclass(frozen=True, slots=True)
class RequestVoteRpc:
    term: int
    candidate_id: ServerId
    last_log_index: int
    last_log_term: int
    # the candidate was told to run by the leader (TimeoutNow): voters waive leader
    # stickiness for it (etcd ``campaignTransfer``).  Last, so older peers' 4-field
    # messages still decode.
    leadership_transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteResult:
    term: int
    voter_id: ServerId
    vote_granted: bool


@dataclass(frozen=True, slots=True)
class AppendEntriesRpc:
    """``entries`` are ``(index, term, data bytes)``; ``data`` is encoded once by the leader."""

    term: int
    leader_id: ServerId
    leader_commit: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...] | list[Entry]


@dataclass(frozen=True, slots=True)
class AppendEntriesReply:
    """Follower's answer.  On success ``last_index`` is the highest index the follower
    has *durably written* and knows to match the leader (its match index).  On
    failure ``next_index`` is the follower's conflict hint: the leader resumes there."""

    term: int
    from_id: ServerId
    success: bool
    next_index: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class InstallSnapshotRpc:
    """One chunk of a snapshot (RA ``#install_snapshot_rpc{}``); chunks are numbered from 1."""

    term: int
    leader_id: ServerId
    meta: SnapshotMeta
    chunk_num: int
    is_last: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSnapshotResult:
    """Acknowledges chunk ``chunk_num``.  The actor routes it to both the core and
    the snapshot sender streaming to ``from_id`` (which waits for each ack)."""

    term: int
    from_id: ServerId
    chunk_num: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class HeartbeatRpc:
    """Leadership confirmation for consistent queries (RA ``#heartbeat_rpc{}``)."""

    term: int
    leader_id: ServerId
    query_index: int


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    term: int
    from_id: ServerId
    query_index: int


@dataclass(frozen=True, slots=True)
class TimeoutNowRpc:
    """Leadership transfer: the leader tells a caught-up voter to start an election
    now, skipping pre-vote (RA ``try_become_leader``, etcd ``MsgTimeoutNow``)."""

    term: int
    leader_id: ServerId


Rpc = (
    PreVoteRpc
    | PreVoteResult
    | RequestVoteRpc
    | RequestVoteResult
    | AppendEntriesRpc
    | AppendEntriesReply
    | InstallSnapshotRpc
    | InstallSnapshotResult
    | HeartbeatRpc
    | HeartbeatReply
    | TimeoutNowRpc
)

# ---------------------------------------------------------------------------
# Local events (from the actor)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElectionTimeout:
    """The election timer requested by ``StartElectionTimer`` fired."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic tick (RA: 1000 ms).  ``now_ms`` is the actor's wall clock, handed to
    the machine's ``tick``."""

    now_ms: int


CommandMode = Literal["await_consensus", "notify", "noreply"]


@dataclass(frozen=True, slots=True)
class Command:
    """A client command (RA ``{command, ...}``).

    ``mode``: ``await_consensus`` replies ``Reply(reply_to, result)`` once applied;
    ``notify`` (RA's pipeline_command) batches ``(correlation, result)`` pairs into
    ``Notify(reply_to, ...)``; ``noreply`` answers nothing.  With ``client_id`` set,
    ``seq`` numbers the client's commands: a command whose (client_id, seq) was
    already applied is not applied again and gets the original reply
    (client sessions; ``seq`` must increase per client, starting at 1)."""

    data: Any
    reply_to: Any = None
    correlation: Any = None
    mode: CommandMode = "await_consensus"
    client_id: Any = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Commands:
    """All commands the actor found queued in one wake-up; handled as one log write.
    ``now_ms`` is the actor's wall clock at that wake-up: a leader stamps the batch
    with it (``ApplyMeta.system_time_ms``), never below the last entry's time."""

    commands: tuple[Command, ...] | list[Command]
    now_ms: int = 0


QueryFun = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class LocalQuery:
    """Answer from this member's machine state, possibly stale.  If ``min_index``
    is above last_applied, the answer waits until it is applied."""

    reply_to: Any
    fun: QueryFun
    min_index: int = 0


@dataclass(frozen=True, slots=True)
class LeaderQuery:
    """Answer from the leader's machine state (may be stale if it was deposed)."""

    reply_to: Any
    fun: QueryFun


@dataclass(frozen=True, slots=True)
class ConsistentQuery:
    """Linearizable read: answered after a heartbeat quorum confirmed leadership
    *after* the query arrived, from a state that has applied at least the commit
    index at arrival."""

    reply_to: Any
    fun: QueryFun


@dataclass(frozen=True, slots=True)
class LogEvent:
    """An event the Log posted through its ``notify`` callback (e.g. WAL written)."""

    payload: object


MemberKind = Literal["voter", "promotable", "non_voter"]


@dataclass(frozen=True, slots=True)
class AddMember:
    reply_to: Any
    server: ServerId
    kind: MemberKind = "voter"


@dataclass(frozen=True, slots=True)
class RemoveMember:
    reply_to: Any
    server: ServerId


@dataclass(frozen=True, slots=True)
class TransferLeadership:
    reply_to: Any
    target: ServerId


@dataclass(frozen=True, slots=True)
class TriggerElection:
    """Start a (pre-)election now (RA ``trigger_election``)."""


@dataclass(frozen=True, slots=True)
class LeaderDown:
    """The actor's monitor saw the leader's process die (``leader`` as it knew it)."""

    leader: ServerId | None


@dataclass(frozen=True, slots=True)
class NodeDown:
    """The failure detector declared ``node`` down (or the connection to it lost)."""

    node: str


@dataclass(frozen=True, slots=True)
class NodeUp:
    node: str


@dataclass(frozen=True, slots=True)
class SnapshotSenderDone:
    """The sender streaming to ``peer`` got the ack of the last chunk of snapshot ``index``."""

    peer: ServerId
    index: int


@dataclass(frozen=True, slots=True)
class SnapshotSenderFailed:
    peer: ServerId


@dataclass(frozen=True, slots=True)
class CommitTimeout:
    """The leader's commit timer (``StartCommitTimer``) fired: tell peers that got
    nothing since it was started the commit index they have not heard yet."""


@dataclass(frozen=True, slots=True)
class WalDown:
    """The WAL process is gone: the server waits in ``await_condition``."""


@dataclass(frozen=True, slots=True)
class WalUp:
    """A new WAL is up (the Log already re-sent its unconfirmed writes)."""


LocalEvent = (
    ElectionTimeout
    | Tick
    | Command
    | Commands
    | LocalQuery
    | LeaderQuery
    | ConsistentQuery
    | LogEvent
    | AddMember
    | RemoveMember
    | TransferLeadership
    | TriggerElection
    | LeaderDown
    | NodeDown
    | NodeUp
    | SnapshotSenderDone
    | SnapshotSenderFailed
    | CommitTimeout
    | WalDown
    | WalUp
)

Event = Rpc | LocalEvent

RPC_TYPES: tuple[type, ...] = (
    PreVoteRpc,
    PreVoteResult,
    RequestVoteRpc,
    RequestVoteResult,
    AppendEntriesRpc,
    AppendEntriesReply,
    InstallSnapshotRpc,
    InstallSnapshotResult,
    HeartbeatRpc,
    HeartbeatReply,
    TimeoutNowRpc,
)
"""Every RPC between servers (their wire codes are in ``raft_otp.protocol.messages``)."""

__all__ = [
    "AddMember",
    "AppendEntriesReply",
    "AppendEntriesRpc",
    "Command",
    "CommandMode",
    "Commands",
    "CommitTimeout",
    "ConsistentQuery",
    "ElectionTimeout",
    "Event",
    "HeartbeatReply",
    "HeartbeatRpc",
    "InstallSnapshotResult",
    "InstallSnapshotRpc",
    "LeaderDown",
    "LeaderQuery",
    "LocalEvent",
    "LocalQuery",
    "LogEvent",
    "MemberKind",
    "NodeDown",
    "NodeUp",
    "PreVoteResult",
    "PreVoteRpc",
    "QueryFun",
    "RPC_TYPES",
    "RemoveMember",
    "RequestVoteResult",
    "RequestVoteRpc",
    "Rpc",
    "SnapshotSenderDone",
    "SnapshotSenderFailed",
    "Tick",
    "TimeoutNowRpc",
    "TransferLeadership",
    "TriggerElection",
    "WalDown",
    "WalUp",
]
