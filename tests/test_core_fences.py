"""Goal: a server that cannot prove its last vote (damaged meta) or that lost log it
had (disk loss) casts no vote and stands for nothing until it safely can again;
with the fence switched off (mutations) the scripted scenarios break election safety
and lose a committed entry."""

from __future__ import annotations

import random

import pytest

from raft_otp.core import ServerMeta, init_server
from raft_otp.core.effects import PersistMeta
from raft_otp.core.events import (
    AppendEntriesRpc,
    ElectionTimeout,
    PreVoteResult,
    PreVoteRpc,
    RequestVoteResult,
    RequestVoteRpc,
    TimeoutNowRpc,
)
from raft_otp.core.memlog import MemoryLog
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.testing.harness import Node, of, sent, sid, usr
from raft_otp.testing.mutations import rules_for

A, B, C = sid("a"), sid("b"), sid("c")
ABC = ["a", "b", "c"]


def boot(n: Node, **meta: object) -> list:
    """Restart ``n`` with the given meta fields (what the meta store handed back)."""
    n.meta = n.meta._replace(**meta)
    return n.restart(crash=False)


def grants(eff: list) -> bool:
    return bool(sent(eff)) and sent(eff)[0][1].vote_granted


# ---- damaged meta: the last vote may be lost ------------------------------------------------

def test_damaged_meta_allows_two_votes_in_a_term_without_the_fence() -> None:
    """a voted for b in term 5; the record is lost (meta back to term 4, no vote)."""
    n = Node("a", ABC, term=4, rules=rules_for("ignore_vote_damage"))
    assert grants(n(RequestVoteRpc(5, B, 0, 0)))
    boot(n, term=4, voted_for=None, vote_unproven=True)
    assert grants(n(RequestVoteRpc(5, C, 0, 0)))  # a second vote in term 5


def test_an_unproven_server_neither_votes_nor_pre_votes_nor_stands() -> None:
    n = Node("a", ABC, term=4)
    assert grants(n(RequestVoteRpc(5, B, 0, 0)))
    boot(n, term=4, voted_for=None, vote_unproven=True)
    assert n.s.vote_unproven
    assert not grants(n(RequestVoteRpc(5, C, 0, 0)))
    assert not grants(n(PreVoteRpc(5, 1, C, 0, 0, 0)))
    assert not grants(n(RequestVoteRpc(9, C, 0, 0)))  # not even in a much later term
    n(TimeoutNowRpc(n.s.term, C))
    assert n.s.role != "candidate"
    eff = n(ElectionTimeout())
    token = sent(eff, PreVoteRpc)[0][1].token
    n(PreVoteResult(n.s.term, token, C, True))  # a pre-vote quorum: still no candidacy
    assert n.s.role == "pre_vote"


def test_the_fence_lifts_when_every_other_voter_told_its_term() -> None:
    n = Node("a", ABC, term=4)
    n(RequestVoteRpc(5, B, 0, 0))
    boot(n, term=4, voted_for=None, vote_unproven=True)
    token = sent(n(ElectionTimeout()), PreVoteRpc)[0][1].token
    n(PreVoteResult(4, token, C, False))  # c never heard of term 5
    assert n.s.vote_unproven  # one voter is not enough: b (term 5) has not answered
    eff = n(PreVoteResult(5, token, B, False))
    assert not n.s.vote_unproven and n.s.term == 5 and n.s.voted_for == A
    assert PersistMeta(5, A, False, None) in of(eff, PersistMeta)  # durable, fence lifted
    assert not grants(n(RequestVoteRpc(5, C, 0, 0)))  # our vote in 5 is spent
    assert grants(n(RequestVoteRpc(6, C, 0, 0)))


def test_replies_to_a_pre_vote_of_an_earlier_round_token_do_not_count() -> None:
    n = Node("a", ABC, term=4)
    boot(n, term=4, voted_for=None, vote_unproven=True)
    n(ElectionTimeout())
    n(PreVoteResult(4, 12345, B, False))
    n(PreVoteResult(4, 12345, C, False))
    assert n.s.vote_unproven


def test_unproven_survives_a_restart_in_every_record_it_writes() -> None:
    n = Node("a", ABC, term=4)
    boot(n, term=4, voted_for=None, vote_unproven=True)
    eff = n(AppendEntriesRpc(7, B, 0, 0, 0, []))  # a newer term adopted while fenced
    assert [p.vote_unproven for p in of(eff, PersistMeta)] == [True]


def test_unproven_takes_its_log_last_term_as_a_lower_bound() -> None:
    n = Node("a", ABC, entries=[(1, None), (6, ("incr",))], term=6)
    boot(n, term=2, voted_for=None, vote_unproven=True)
    assert n.s.term == 6


# ---- lost log --------------------------------------------------------------------------------

def wiped(name: str, term: int, durable_commit: int, rules: Rules = RAFT_RULES) -> Node:
    """A server whose log is gone (disk lost) with its meta kept."""
    n = Node(name, ABC, term=term, rules=rules)
    n.meta = ServerMeta(term, None, durable_commit, durable_commit=durable_commit)
    n.restart(crash=False)
    return n


def test_a_log_below_the_durable_commit_is_data_lost() -> None:
    n = wiped("a", 3, durable_commit=10)
    assert n.s.data_lost == 3
    assert not grants(n(RequestVoteRpc(4, B, 0, 0)))
    assert not grants(n(PreVoteRpc(4, 1, B, 0, 0, 0)))
    assert Node("x", ABC, term=3).s.data_lost is None  # a fresh server lost nothing


def test_the_data_lost_mark_is_written_at_boot() -> None:
    n = Node("a", ABC, term=3)
    n.meta = ServerMeta(3, None, 10, durable_commit=10)
    n.log = MemoryLog(n.posted.append)
    state, eff = init_server(n.cfg, n.log, n.machine, n.meta, random.Random(1))
    assert any(p.data_lost == 3 for p in of(eff, PersistMeta))


def lead(n: Node, leader: object, term: int, entries: list, commit: int) -> list:
    eff = n(AppendEntriesRpc(term, leader, commit, 0, 0, entries))
    return eff + n.written()


def test_catching_up_from_the_leader_of_the_loss_term_is_not_enough() -> None:
    """That leader may still count our acknowledgement from before the loss."""
    n = wiped("a", 3, durable_commit=2)
    lead(n, B, 3, [usr(1, 3), usr(2, 3)], commit=2)
    assert n.s.commit_index == 2 and n.s.data_lost == 3
    assert not grants(n(RequestVoteRpc(4, C, 2, 3)))


def test_caught_up_from_a_later_leader_lifts_the_fence() -> None:
    n = wiped("a", 3, durable_commit=2)
    lead(n, B, 4, [usr(1, 3), usr(2, 3), usr(3, 4)], commit=2)
    assert n.s.data_lost == 3  # commit index 2 is of term 3, not the leader's 4
    eff = lead(n, B, 4, [usr(1, 3), usr(2, 3), usr(3, 4)], commit=3)
    assert n.s.data_lost is None and any(p.data_lost is None for p in of(eff, PersistMeta))
    n.s.leader_id = None  # (told b is down)
    n.s.role = "follower"
    assert grants(n(RequestVoteRpc(5, C, 3, 4)))


@pytest.mark.parametrize("rule", [True, False])
def test_disk_loss_scenario_keeps_a_committed_entry_only_with_the_rule(rule: bool) -> None:
    """c (leader, term 2) committed index 2 with a; b lags at index 1.  a loses its log
    and restarts; c dies.  b asks a for its vote with a log ending at index 1."""
    muts = RAFT_RULES if rule else rules_for("vote_despite_data_loss")
    a = wiped("a", 2, durable_commit=2, rules=muts)
    eff = a(RequestVoteRpc(3, B, 1, 1))
    assert grants(eff) is (not rule)  # b elected without the committed entry 2 if granted
    b_votes = {B} | ({A} if grants(eff) else set())
    assert (len(b_votes) >= 2) is (not rule)
    assert RequestVoteResult  # (the result type the voter sent)


def test_the_only_voter_is_not_fenced() -> None:
    """A one-member cluster has no other vote to contradict and nobody to catch up
    from: it runs on (the loss is reported by the server's log line)."""
    n = Node("a", ["a"], term=3)
    n.meta = ServerMeta(3, None, 10, vote_unproven=True, durable_commit=10)
    eff = n.restart(crash=False)
    assert n.s.data_lost is None and not n.s.vote_unproven
    assert any(p.vote_unproven is False for p in of(eff, PersistMeta))  # lifted durably
    n(ElectionTimeout())
    assert n.s.role == "leader"


def test_an_unproven_server_pre_votes_at_once_to_learn_the_terms() -> None:
    """A follower that finds its leader never pre-votes; the fence would then stay
    until the next election, when a voter may be down.  So it asks at boot."""
    from raft_otp.core.effects import StartElectionTimer
    n = Node("a", ABC, term=4)
    n.meta = n.meta._replace(vote_unproven=True)
    eff = n.restart(crash=False)
    assert StartElectionTimer("leader_down") in of(eff, StartElectionTimer)
    token = sent(n(ElectionTimeout()), PreVoteRpc)[0][1].token
    n(AppendEntriesRpc(4, B, 0, 0, 0, []))  # the leader's probe arrives meanwhile
    n(PreVoteResult(4, token, B, False))
    n(PreVoteResult(4, token, C, False))  # late replies still count
    assert not n.s.vote_unproven and n.s.leader_id == B
