"""Safety mutations: deliberately broken Raft rules, to prove the checkers catch each bug.

Each class below subclasses :class:`raft_otp.core.rules.Rules` and breaks one
rule; its ``names`` is the mutation's name, the one the tools' ``--mutation NAME``
options take.  :func:`rules_for` builds the rules object for one name or several
(:func:`combine` makes a class breaking every rule of its parts).  The object goes
into a server through ``ServerConfig.rules``: the simulator and the core test
helpers set it directly, a system receives it from ``start_system(cfg, rules=...)``
and a node process from ``python -m raft_otp.testing.nemesis_node --mutation NAME``.
Nothing outside ``raft_otp.testing`` imports this module (a test checks it).

Which harness catches which mutation (the numbers are in ``docs/fault-testing.md``
and the tests): the simulator catches ``vote_for_stale_log``,
``consistent_query_without_heartbeat``, ``ack_before_durable``,
``leader_commit_own_unwritten`` and ``reply_before_commit`` in random runs;
``commit_old_term_by_counting`` (Figure 8), ``no_check_quorum``, ``ignore_vote_damage``
and ``vote_despite_data_loss`` need the scripted core tests or real processes; the
power-cut harness catches ``ack_before_durable``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar

from raft_otp.core import entries as enc
from raft_otp.core.effects import Reply
from raft_otp.core.machine import ApplyMeta
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.errors import BadArgument

if TYPE_CHECKING:
    from raft_otp.core.effects import Effect
    from raft_otp.core.events import Command
    from raft_otp.core.state import ServerState


class Mutation(Rules):
    """Base of the broken rules: ``names`` says which mutations a class carries."""

    __slots__ = ()
    names: ClassVar[tuple[str, ...]] = ()

    def __reduce__(self) -> tuple[object, tuple[list[str]]]:
        return rules_for, (list(self.names),)  # combined classes are made at run time

    def __repr__(self) -> str:
        return f"rules_for({','.join(self.names)!r})"


class CommitOldTermByCounting(Mutation):
    """Figure 8's bug: entries of older terms commit by counting their replicas."""

    __slots__ = ()
    names = ("commit_old_term_by_counting",)

    def commit_counts_entry(self, state: ServerState, index: int) -> bool:
        return True


class VoteForStaleLog(Mutation):
    """(Pre-)votes are granted without the "candidate's log at least as up to date" check."""

    __slots__ = ()
    names = ("vote_for_stale_log",)

    def grants_vote_to_log(self, state: ServerState, last_index: int, last_term: int) -> bool:
        return True


class ConsistentQueryWithoutHeartbeat(Mutation):
    """A leader answers consistent queries from its state with no heartbeat quorum round."""

    __slots__ = ()
    names = ("consistent_query_without_heartbeat",)

    def consistent_query_needs_heartbeat(self, state: ServerState) -> bool:
        return False


class AckBeforeDurable(Mutation):
    """Followers acknowledge entries before their log reported them written."""

    __slots__ = ()
    names = ("ack_before_durable",)

    def follower_acked_index(self, state: ServerState) -> int:
        return state.follower_match


class LeaderCommitOwnUnwritten(Mutation):
    """The leader counts its own entries toward commit before they are durable."""

    __slots__ = ()
    names = ("leader_commit_own_unwritten",)

    def leader_counted_index(self, state: ServerState) -> int:
        return state.log.last_index_term()[0]


class ReplyBeforeCommit(Mutation):
    """The leader answers an ``await_consensus`` command as soon as it appends it, with
    the reply the machine gives when the command is applied to a scratch (deep) copy
    of the leader's current *applied* state (machine effects dropped); the real apply
    later answers nobody.  Acknowledged writes can then be lost (an isolated leader's
    entries are truncated) and replies can be computed on stale state."""

    __slots__ = ()
    names = ("reply_before_commit",)

    def answers_at_append(self, state: ServerState, index: int, time_ms: int, data: bytes,
                          cmd: Command, effects: list[Effect]) -> bool:
        meta = ApplyMeta(index, state.term, state.effective_machine_version, time_ms)
        command = enc.decode_unchecked(data)[1]  # as the real apply will see it
        result = state.machine.apply(meta, command, copy.deepcopy(state.machine_state))
        effects.append(Reply(cmd.reply_to, result[1], state.id))
        return True


class NoCheckQuorum(Mutation):
    """A leader never steps down for not hearing from a quorum (liveness only: a leader
    whose inbound is cut stalls the cluster)."""

    __slots__ = ()
    names = ("no_check_quorum",)

    def keeps_leadership(self, state: ServerState, heard_voters: int, voters: int) -> bool:
        return True


class IgnoreVoteDamage(Mutation):
    """A server whose meta was damaged votes as if its last vote were known (two votes
    in one term become possible)."""

    __slots__ = ()
    names = ("ignore_vote_damage",)

    def fenced_by_vote_damage(self, state: ServerState) -> bool:
        return False


class VoteDespiteDataLoss(Mutation):
    """A server that lost log it had acknowledged votes at once (a committed entry can
    then be lost)."""

    __slots__ = ()
    names = ("vote_despite_data_loss",)

    def fenced_by_data_loss(self, state: ServerState) -> bool:
        return False


MUTATIONS: dict[str, type[Mutation]] = {cls.names[0]: cls for cls in (
    CommitOldTermByCounting, VoteForStaleLog, ConsistentQueryWithoutHeartbeat, AckBeforeDurable,
    LeaderCommitOwnUnwritten, ReplyBeforeCommit, NoCheckQuorum, IgnoreVoteDamage,
    VoteDespiteDataLoss)}
"""Every mutation by name (the names of the former ``Mutations`` flags)."""


_COMBINED: dict[tuple[type[Mutation], ...], type[Mutation]] = {}


def combine(*parts: type[Mutation]) -> type[Mutation]:
    """One class breaking every rule its ``parts`` break (each part overrides rules of
    its own, so the method resolution order merges them); the same parts give the
    same class.  One part is returned as is."""
    if not parts:
        raise BadArgument("combine needs at least one mutation")
    if len(parts) == 1:
        return parts[0]
    made = _COMBINED.get(parts)
    if made is None:
        names = tuple(n for p in parts for n in p.names)
        overridden = [m for p in parts for m, f in vars(p).items() if callable(f) and not m.startswith("_")]
        clash = sorted({m for m in overridden if overridden.count(m) > 1})
        if clash:
            raise BadArgument(f"mutations {list(names)} break the same rule(s) {clash}")
        made = _COMBINED.setdefault(parts, type("+".join(p.__name__ for p in parts), parts,
                                                {"__slots__": (), "names": names}))
    return made


def parse_names(names: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> the known mutation names, in order, once each;
    ``None``/``""`` -> none.  An unknown name raises ``BadArgument`` naming the known ones."""
    if names is None:
        return []
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for raw in names:
        if not isinstance(raw, str):
            raise BadArgument(f"a mutation name must be a string, got {raw!r}")
        name = raw.strip()
        if name and name not in out:
            out.append(name)
    bad = [n for n in out if n not in MUTATIONS]
    if bad:
        raise BadArgument(f"unknown mutation(s) {bad}; known: {list(MUTATIONS)}")
    return out


def rules_for(names: str | list[str] | tuple[str, ...] | None) -> Rules:
    """The rules with the named mutations (``"a,b"`` or a list); none named: the
    correct rules (``RAFT_RULES``)."""
    chosen = parse_names(names)
    if not chosen:
        return RAFT_RULES
    return combine(*(MUTATIONS[n] for n in chosen))()


def mutations_of(rules: Rules) -> tuple[str, ...]:
    """The names of the mutations ``rules`` carries (empty for correct rules)."""
    return rules.names if isinstance(rules, Mutation) else ()


__all__ = [
    "MUTATIONS", "AckBeforeDurable", "CommitOldTermByCounting", "ConsistentQueryWithoutHeartbeat",
    "IgnoreVoteDamage", "LeaderCommitOwnUnwritten", "Mutation", "NoCheckQuorum", "ReplyBeforeCommit",
    "VoteDespiteDataLoss", "VoteForStaleLog", "combine", "mutations_of", "parse_names", "rules_for",
]
