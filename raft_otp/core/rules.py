"""The safety rules the core asks at its decision points (ours; RA has no counterpart).

Each method of :class:`Rules` is one decision of the Raft protocol that a known
bug gets wrong: whether a vote may be granted to a log, which entry a commit
may count, what a follower may acknowledge, ...  The core asks
``state.cfg.rules.<method>(...)`` at that point and nowhere else decides it.

:data:`RAFT_RULES` is the one instance production uses (``ServerConfig.rules``
defaults to it).  ``raft_otp.testing.mutations`` subclasses :class:`Rules` to
break one rule at a time, so the simulator, the power-cut harness and the fault
harness can prove they detect each bug; a system receives such an object only
through the Python keyword that starts it (``start_system(cfg, rules=...)``),
never from a config key, a flag or the environment.

The methods are pure (they read the state, change nothing), and cheap: they sit
on the hot path (one method call where a constant used to be read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raft_otp.core.quorum import has_quorum

if TYPE_CHECKING:
    from raft_otp.core.effects import Effect
    from raft_otp.core.events import Command
    from raft_otp.core.state import ServerState


class Rules:
    """Raft's safety rules, as the core applies them.  Subclass only in tests."""

    __slots__ = ()

    # ---- elections --------------------------------------------------------------------

    def grants_vote_to_log(self, state: ServerState, last_index: int, last_term: int) -> bool:
        """Figure 2, RequestVote: a (pre-)vote goes only to a candidate whose log,
        ending at ``last_index`` of ``last_term``, is at least as up to date as ours
        (a later last term, or the same last term and at least as long)."""
        li, lt = state.log.last_index_term()
        return (last_term, last_index) >= (lt, li)

    def fenced_by_vote_damage(self, state: ServerState) -> bool:
        """A server whose meta store found damage may have lost the record of its last
        vote: it grants no vote and stands for nothing until the fence lifts
        (``raft_otp.core.fences``, ``vote_unproven``)."""
        return state.vote_unproven

    def fenced_by_data_loss(self, state: ServerState) -> bool:
        """A server that lost log it may have acknowledged grants no vote and stands
        for nothing until it has caught up (``raft_otp.core.fences``, ``data_lost``)."""
        return state.data_lost is not None

    # ---- commit -----------------------------------------------------------------------

    def commit_counts_entry(self, state: ServerState, index: int) -> bool:
        """Figure 2 (and Figure 8): a leader commits an index a quorum holds only if the
        entry there is of its current term; older entries commit with it, never by
        counting their replicas."""
        return state.log.fetch_term(index) == state.term

    def leader_counted_index(self, state: ServerState) -> int:
        """The last index of the leader's own log that counts toward a commit quorum:
        what its log reported durably written, not what it merely appended."""
        return state.log.last_written()[0]

    def follower_acked_index(self, state: ServerState) -> int:
        """The highest index a follower may acknowledge to its leader: an entry counts
        toward a commit only once it is durable here, so no more than the log reported
        written (and no more than it knows matches the leader's log)."""
        return min(state.log.last_written()[0], state.follower_match)

    # ---- answers to clients -----------------------------------------------------------

    def answers_at_append(self, state: ServerState, index: int, time_ms: int, data: bytes,
                          cmd: Command, effects: list[Effect]) -> bool:
        """Whether the leader already answered the ``await_consensus`` command it just
        appended at ``index`` (encoded as ``data``, entry time ``time_ms``).  Raft: never;
        a command is answered once its entry is committed and applied."""
        return False

    def consistent_query_needs_heartbeat(self, state: ServerState) -> bool:
        """A leader answers a consistent query only after a quorum of voters confirmed,
        after the query arrived, that it still leads (a heartbeat round; Raft thesis 6.4)."""
        return True

    # ---- leadership -------------------------------------------------------------------

    def keeps_leadership(self, state: ServerState, heard_voters: int, voters: int) -> bool:
        """CheckQuorum: a leader that heard from fewer than a quorum of its ``voters``
        (itself included in ``heard_voters``) steps down (``leader.check_quorum``)."""
        return has_quorum(heard_voters, voters)

    # ---- identity ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


RAFT_RULES = Rules()
"""The rules of Raft: the shared instance every production server uses."""
