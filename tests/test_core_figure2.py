"""Goal: each rule of the Raft paper's Figure 2 is pinned by calling the core and matching its effects."""

from __future__ import annotations

from raft_otp.core.effects import (
    CancelElectionTimer,
    PersistMeta,
    Reply,
    RoleChanged,
    StartElectionTimer,
)
from raft_otp.core.events import (
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    Commands,
    ElectionTimeout,
    PreVoteResult,
    PreVoteRpc,
    RequestVoteResult,
    RequestVoteRpc,
)
from raft_otp.core import entries as enc
from raft_otp.testing.harness import Node, elect, of, sent, sid, usr
from raft_otp.testing.mutations import rules_for

A, B, C = sid("a"), sid("b"), sid("c")
ABC = ["a", "b", "c"]


# ---- all servers -------------------------------------------------------------------

def test_higher_term_in_a_reply_turns_a_leader_into_follower() -> None:
    n = Node("a", ABC, term=1)
    elect(n)
    term = n.s.term
    eff = n(AppendEntriesReply(term + 3, B, False, 1, 0, 0))
    assert n.s.role == "follower" and n.s.term == term + 3
    assert of(eff, PersistMeta) == [PersistMeta(term + 3, None)]
    assert of(eff, RoleChanged)[0].role == "follower"


# ---- RequestVote ---------------------------------------------------------------------

def test_vote_refused_for_lower_term() -> None:
    n = Node("a", ABC, term=5)
    eff = n(RequestVoteRpc(4, B, 10, 4))
    assert sent(eff) == [(B, RequestVoteResult(5, A, False))]


def test_vote_granted_and_persisted_before_the_reply() -> None:
    n = Node("a", ABC, entries=[(1, None)], term=1)
    eff = n(RequestVoteRpc(2, B, 1, 1))
    persist = [i for i, e in enumerate(eff) if isinstance(e, PersistMeta)]
    reply = [i for i, e in enumerate(eff) if getattr(e, "rpc", None) == RequestVoteResult(2, A, True)]
    assert persist and reply and persist[-1] < reply[0]
    assert eff[persist[-1]] == PersistMeta(2, B)


def test_only_one_vote_per_term() -> None:
    n = Node("a", ABC, term=1)
    n(RequestVoteRpc(2, B, 0, 0))
    eff = n(RequestVoteRpc(2, C, 0, 0))
    assert sent(eff) == [(C, RequestVoteResult(2, A, False))]
    eff = n(RequestVoteRpc(2, B, 0, 0))  # the same candidate again: still granted
    assert sent(eff) == [(B, RequestVoteResult(2, A, True))]


def test_vote_refused_to_a_less_up_to_date_log() -> None:
    n = Node("a", ABC, entries=[(1, None), (2, ["incr"])], term=2)
    assert sent(n(RequestVoteRpc(3, B, 5, 1)))[0][1].vote_granted is False  # older last term
    assert sent(n(RequestVoteRpc(3, C, 1, 2)))[0][1].vote_granted is False  # same term, shorter
    assert n.s.voted_for is None and n.s.term == 3


def test_mutation_grants_vote_to_stale_log() -> None:
    n = Node("a", ABC, entries=[(1, None), (2, ["incr"])], term=2,
             rules=rules_for("vote_for_stale_log"))
    assert sent(n(RequestVoteRpc(3, B, 5, 1)))[0][1].vote_granted is True


# ---- AppendEntries (receiver) -----------------------------------------------------------

def test_append_entries_refused_for_lower_term() -> None:
    n = Node("a", ABC, term=3)
    eff = n(AppendEntriesRpc(2, B, 0, 0, 0, [usr(1, 2)]))
    (to, reply), = sent(eff)
    assert to == B and reply.success is False and reply.term == 3
    assert n.s.log.last_index_term() == (0, 0)


def test_append_entries_refused_without_matching_prev_and_hints_where_to_resume() -> None:
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"]), (1, ["incr"])], term=1)
    eff = n(AppendEntriesRpc(2, B, 0, 3, 2, [usr(4, 2)]))  # term at 3 is 1, not 2
    reply = sent(eff)[0][1]
    assert reply.success is False and reply.next_index == 1  # whole term-1 run is suspect
    eff = n(AppendEntriesRpc(2, B, 0, 7, 2, [usr(8, 2)]))  # beyond our log
    assert sent(eff)[0][1].next_index == 4


def test_conflicting_entries_are_replaced_and_acked_once_durable() -> None:
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"]), (1, ["incr"])], term=1)
    eff = n(AppendEntriesRpc(2, B, 0, 1, 1, [usr(2, 2), usr(3, 2, ["get"])]))
    assert sent(eff) == []  # not durable yet: no ack
    assert n.s.log.fetch_term(2) == 2 and n.s.log.last_index_term() == (3, 2)
    eff = n.written()
    assert sent(eff) == [(B, AppendEntriesReply(2, A, True, 4, 3, 2))]


def test_existing_matching_entries_are_kept_and_acked_now() -> None:
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"])], term=1)
    eff = n(AppendEntriesRpc(1, B, 0, 0, 0, [usr(1, 1)]))
    assert n.s.log.last_index_term() == (2, 1)  # entry 2 not truncated
    # reply covers only what is known to match the leader: index 1
    assert sent(eff) == [(B, AppendEntriesReply(1, A, True, 2, 1, 1))]


def test_commit_index_is_min_of_leader_commit_and_last_new_entry() -> None:
    n = Node("a", ABC, term=1)
    n(AppendEntriesRpc(1, B, 10, 0, 0, [(1, 1, enc.encode_noop(0)), usr(2, 1)]))
    assert n.s.commit_index == 2
    assert n.s.last_applied == 0  # applied only once durable
    n.written()
    assert n.s.last_applied == 2 and n.s.machine_state == 1


# ---- leader ------------------------------------------------------------------------

def test_new_leader_appends_a_noop_and_sends_append_entries_to_each_peer() -> None:
    n = Node("a", ABC, term=1)
    eff = elect(n)
    rpcs = sent(eff, AppendEntriesRpc)
    assert sorted(to for to, _ in rpcs) == [B, C]
    assert all(r.entries and enc.decode(r.entries[0][2])[0] == enc.NOOP for _, r in rpcs)
    assert of(eff, CancelElectionTimer)


def test_commit_needs_a_quorum_of_durable_matches() -> None:
    n = Node("a", ABC, term=1)
    elect(n)
    n(Commands([Command(["incr"], "c1")]))
    assert n.s.commit_index == 0
    eff = n(AppendEntriesReply(n.s.term, B, True, 3, 2, n.s.term))
    assert n.s.commit_index == 0  # leader's own copy not yet durable
    eff = n.written()
    assert n.s.commit_index == 2
    assert Reply("c1", 1, A) in eff


def test_old_term_entries_are_not_committed_by_counting() -> None:
    # a has an entry of term 1 that only it holds; leader of term 3
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"])], term=2)
    elect(n)
    n.written()
    t = n.s.term
    n(AppendEntriesReply(t, B, True, 3, 2, 1))  # b has 1..2 (old term) but not the noop
    assert n.s.commit_index == 0
    n(AppendEntriesReply(t, B, True, 4, 3, t))
    assert n.s.commit_index == 3


def test_mutation_commits_old_term_entries_by_counting() -> None:
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"])], term=2,
             rules=rules_for("commit_old_term_by_counting"))
    elect(n)
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 3, 2, 1))
    assert n.s.commit_index == 2


def test_leader_resumes_from_the_follower_hint_after_a_rejection() -> None:
    n = Node("a", ABC, entries=[(1, None)] * 5, term=1)
    elect(n)
    eff = n(AppendEntriesReply(n.s.term, B, False, 2, 1, 1))
    (to, rpc), = sent(eff, AppendEntriesRpc)
    assert to == B and rpc.prev_log_index == 1 and rpc.entries[0][0] == 2


def test_candidate_steps_down_on_append_entries_of_its_term() -> None:
    n = Node("a", ABC, term=1)
    eff = n(ElectionTimeout())
    pv = sent(eff, PreVoteRpc)[0][1]
    n(PreVoteResult(1, pv.token, B, True))
    assert n.s.role == "candidate" and n.s.term == 2
    eff = n(AppendEntriesRpc(2, C, 0, 0, 0, []))
    assert n.s.role == "follower" and n.s.leader_id == C


def test_candidate_timeout_starts_a_new_round() -> None:
    n = Node("a", ABC, term=1)
    eff = n(ElectionTimeout())
    pv = sent(eff, PreVoteRpc)[0][1]
    n(PreVoteResult(1, pv.token, B, True))
    eff = n(ElectionTimeout())
    assert n.s.role == "pre_vote" and sent(eff, PreVoteRpc)
    assert of(eff, StartElectionTimer)
