"""The mutable state of one core server (RA's ``ra_server_state()`` map).

The state is a plain slotted object owned by the server actor; ``handle`` mutates
it and returns it.  It holds no threads, files or clocks.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from raft_otp.core.config import ServerConfig
from raft_otp.core.effects import Role
from raft_otp.core.log_api import Log
from raft_otp.core.machine import Machine
from raft_otp.core.types import ServerId


class Peer:
    """Leader's view of one member (RA's ``ra_peer()``).

    Invariant: ``match_index < next_index``; ``next_index - 1 - match_index`` is the
    number of entries in flight (bounded by ``max_pipeline_count``)."""

    __slots__ = (
        "kind", "next_index", "match_index", "commit_index_sent", "query_index",
        "status", "tick_match", "promote_target", "snapshot_ticks", "reject_next",
        "sent_since_commit_timer", "heard", "owed", "silent_ticks", "node_down",
    )

    def __init__(self, kind: str, next_index: int) -> None:
        self.kind = kind  # "voter" | "promotable" | "non_voter"
        self.next_index = next_index
        self.match_index = 0
        self.commit_index_sent = 0
        self.query_index = 0
        self.status = "normal"  # "normal" | "sending_snapshot"
        self.tick_match = -1  # match_index seen at the previous tick (stale detection)
        self.promote_target = 0
        self.snapshot_ticks = 0  # ticks spent in "sending_snapshot" (sender watchdog)
        self.reject_next = 0  # next_index chosen at the last failure reply (0: none since a success)
        self.sent_since_commit_timer = False  # got append_entries since the commit timer started
        # CheckQuorum (see ``leader.check_quorum``): "heard from" this peer
        self.heard = False       # a message of the current term came from it since the last tick
        self.owed = False        # at the last tick it owed us an answer (entries or a query in flight)
        self.silent_ticks = 0    # tick intervals in a row it owed an answer and sent nothing
        self.node_down = False   # the failure detector reported its node down (cleared by NodeUp or a message)


class PendingQuery:
    __slots__ = ("query_index", "commit_index", "reply_to", "fun")

    def __init__(self, query_index: int, commit_index: int, reply_to: Any, fun: Any) -> None:
        self.query_index = query_index
        self.commit_index = commit_index
        self.reply_to = reply_to
        self.fun = fun


class ServerState:
    __slots__ = (
        "cfg", "id", "log", "base_machine", "machine", "rng",
        "role", "term", "voted_for", "leader_id",
        "commit_index", "last_applied", "machine_state", "effective_machine_version",
        "members", "cluster_index", "prev_members", "prev_cluster_index",
        "sessions", "peers",
        "pending", "pending_cluster_change", "first_term_index", "first_term_applied",
        "query_index", "queries", "local_queries", "transfer", "handoff", "handoff_ticks",
        "pre_vote_token", "votes",
        "follower_match", "snapshot_chunk_expected", "snapshot_meta_receiving",
        "now_ms", "entry_time_ms", "applied_time_ms", "machine_errors", "applying_recovery", "removed", "commit_timer_armed", "commit_timer_ms",
        "vote_unproven", "term_reports", "data_lost",
        "tick_ms", "tick_armed", "tick_last_index", "machine_ticks", "durable_floor",
    )

    def __init__(self, cfg: ServerConfig, log: Log, machine: Machine, rng: random.Random) -> None:
        self.cfg = cfg
        self.id: ServerId = cfg.id
        self.log = log
        self.base_machine = machine
        self.machine = machine  # module for the effective machine version
        self.rng = rng
        self.role: Role = "recover"
        self.term = 0
        self.voted_for: ServerId | None = None
        self.leader_id: ServerId | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.machine_state: Any = None
        self.effective_machine_version = 0
        # membership in effect (effective when appended) and the one before it
        self.members: dict[ServerId, str] = {}
        self.cluster_index = 0
        self.prev_members: dict[ServerId, str] = {}
        self.prev_cluster_index = 0
        # client sessions: client_id -> [seq, reply]  (replicated state)
        self.sessions: dict[Any, list[Any]] = {}
        # leader
        self.peers: dict[ServerId, Peer] = {}
        self.pending: deque[tuple[int, Any]] = deque()  # (index, Command) awaiting apply
        self.pending_cluster_change: tuple[int, Any] | None = None  # (index, reply_to)
        self.first_term_index = 0
        self.first_term_applied = False
        self.query_index = 0
        self.queries: deque[PendingQuery] = deque()
        self.local_queries: list[tuple[int, Any, Any]] = []
        self.transfer: tuple[ServerId, Any] | None = None
        # a leadership transfer's TimeoutNow is out: commands are redirected to the
        # target (Raft thesis 3.10) until we step down or two ticks pass (it failed)
        self.handoff: ServerId | None = None
        self.handoff_ticks = 0
        # the durable_commit recorded so far (never lowered): 1 as soon as the log durably
        # had an entry, so that losing the whole log is always detected at boot
        self.durable_floor = 0
        # the leader's tick timer (raft_otp.core.ticks)
        self.tick_ms = cfg.tick_ms
        self.tick_armed = False
        self.tick_last_index = -1
        self.machine_ticks = type(machine).tick is not Machine.tick
        self.commit_timer_armed = False  # a StartCommitTimer is out (its CommitTimeout due)
        self.commit_timer_ms = cfg.commit_notify_delay_ms  # its next delay; grows while peers are busy
        # elections
        self.pre_vote_token = 0
        self.votes: set[ServerId] = set()
        # follower
        self.follower_match = 0  # highest index known to match the current leader's log
        self.snapshot_chunk_expected = 0
        self.snapshot_meta_receiving: Any = None
        self.now_ms = 0
        # entry time (ApplyMeta.system_time_ms): the leader stamps each command with
        # max(its wall clock, entry_time_ms), so the times never decrease along the log
        self.entry_time_ms = 0      # leader: the time of the last command it appended
        self.applied_time_ms = 0    # the time of the last command applied (replicated state)
        self.machine_errors = 0     # applies/queries/callbacks of the machine that raised
        self.applying_recovery = False
        self.removed = False
        # damaged meta (``raft_otp.core.vote_fence``): the last vote may be lost, so no
        # vote and no candidacy until every other voter told us its term
        self.vote_unproven = False
        self.term_reports: dict[ServerId, int] = {}  # voter -> term in a reply to our pre-vote
        # lost log (``raft_otp.core.vote_fence``): less log than this server durably had;
        # no vote and no candidacy until caught up from a leader
        self.data_lost: int | None = None  # the term in which the loss happened (None: no loss)

    # ---- small helpers ---------------------------------------------------------
    def voters(self) -> list[ServerId]:
        return [s for s, k in self.members.items() if k == "voter"]

    def is_voter(self) -> bool:
        return self.members.get(self.id) == "voter"

    def last_index_term(self) -> tuple[int, int]:
        return self.log.last_index_term()

    def __repr__(self) -> str:
        li, lt = self.log.last_index_term()
        return (f"<{self.id.name} {self.role} t{self.term} leader={self.leader_id and self.leader_id.name}"
                f" last={li}/{lt} commit={self.commit_index} applied={self.last_applied}>")
