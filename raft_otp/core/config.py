"""Static configuration of one core server, plus the safety-mutation flags.

Ports the parts of RA's ``ra_server:config()`` the core reads (``max_pipeline_count``,
``max_append_entries_rpc_batch_size``, ...).  ``Mutations`` is ours: each flag
switches one safety rule *off* so the simulator can prove it detects the bug.
Production code never sets them (all default to the safe behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from raft_otp.core.types import ServerId


@dataclass(frozen=True, slots=True)
class Mutations:
    """Deliberate bugs for mutation testing.  All ``False`` = correct Raft."""

    commit_old_term_by_counting: bool = False
    """Figure 2 rule broken: count replicas of entries of older terms toward commit."""
    vote_for_stale_log: bool = False
    """Grant (pre-)votes without the 'candidate's log at least as up to date' check."""
    consistent_query_without_heartbeat: bool = False
    """Answer consistent queries from local state without a heartbeat quorum round."""
    ack_before_durable: bool = False
    """Followers acknowledge entries before their WAL reported them written."""
    leader_commit_own_unwritten: bool = False
    """The leader counts its own entries toward commit before they are durable."""
    reply_before_commit: bool = False
    """The leader answers an ``await_consensus`` command as soon as it appends it,
    with the reply the machine gives when the command is applied to a scratch
    (deep) copy of the leader's current *applied* state; the real apply later
    answers nobody.  Acknowledged writes can then be lost (an isolated leader's
    entries are truncated) and replies can be computed on stale state."""
    no_check_quorum: bool = False
    """A leader never steps down for not hearing from a quorum (liveness only: a
    leader whose inbound is cut stalls the cluster; caught by a scripted core test)."""
    ignore_vote_damage: bool = False
    """A server whose meta was damaged votes as if its last vote were known (two
    votes in one term become possible)."""
    vote_despite_data_loss: bool = False
    """A server that lost log it had acknowledged votes at once (a committed entry
    can then be lost)."""


DEFAULT_MAX_COMMAND_BYTES = 1_048_576
"""See ``SystemConfig.max_command_bytes`` (why 1 MiB)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Per-server configuration (RA ``ra_server:ra_server_config()``)."""

    id: ServerId
    cluster_name: str = ""
    initial_members: tuple[ServerId, ...] = ()
    machine_config: Any = None
    max_append_entries_rpc_batch_size: int = 128
    max_pipeline_count: int = 4096
    apply_batch_size: int = 512
    """Entries fetched from the log per apply round (bounds one event's work)."""
    snapshot_sender_timeout_ticks: int = 120
    """A snapshot sender silent for this many ticks is presumed dead and replaced."""
    commit_notify_delay_ms: int = 5
    """A commit that finds a peer with nothing new to send is not told to it at once
    (an append_entries with no entries, and its reply: half the messages of a lone
    command); it rides on the next append_entries to that peer, or, if none is sent
    for this long, goes in a commit-only one.  Followers of an idle cluster then
    apply up to ~2x this later (while every peer keeps getting entries the timer
    backs off to 8x this); the leader's replies are not delayed.  0: tell at once
    (RA's behaviour)."""
    max_client_sessions: int = 100_000
    """Bound of the client-session dedup table; the least recently used session is
    evicted beyond it.  Part of the replicated state: must be equal on all members."""
    max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES
    """A command whose encoding is larger is refused before it reaches the log
    (``CommandTooLarge``); see ``SystemConfig.max_command_bytes``."""
    tick_ms: int = 1000
    """A leader's tick interval (RA's ``tick_timeout``); an idle leader ticks less and
    less often, up to ``16 *`` this (``raft_otp.core.ticks``)."""
    on_machine_error: str = "reply"
    """``"reply"``: an exception raised by the machine's ``apply`` is that command's
    outcome (``MachineError``), the state stays as before the command and the server
    keeps running; ``"crash"``: RA's behaviour, the server crashes (and the
    supervisor restarts it, which replays the entry)."""
    mutations: Mutations = field(default_factory=Mutations)


class ServerMeta(NamedTuple):
    """What the meta store kept durable for this server."""

    term: int = 0
    voted_for: ServerId | None = None
    last_applied: int = 0
    vote_unproven: bool = False
    """The meta store found damage: the last term/vote record of this server may be
    lost (``term``/``voted_for`` are from before the damage)."""
    durable_commit: int = 0
    """The last recorded ``min(last written, commit index)``: log this server durably
    had and that is committed (never truncated).  Booting with a log that ends below
    it means data was lost.  Recorded lazily (with ``last_applied``)."""
    data_lost: int | None = None
    """Not None: this server lost log it may have acknowledged, in this term or before
    (found at a boot, or reported by the log layer: ``MetaStore.report_data_loss``),
    and has not caught up since (``raft_otp.core.fences``)."""
