"""Static configuration of one core server.

Ports the parts of RA's ``ra_server:config()`` the core reads (``max_pipeline_count``,
``max_append_entries_rpc_batch_size``, ...).  ``rules`` is ours: the object the core
asks at each safety decision (``raft_otp.core.rules``); production always uses the
one correct instance, tests inject broken ones from ``raft_otp.testing.mutations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.core.types import ServerId


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
    rules: Rules = RAFT_RULES
    """The safety rules the core applies (``raft_otp.core.rules``).  Always the shared
    correct instance outside tests; ``raft_otp.testing.mutations`` makes broken ones."""


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
