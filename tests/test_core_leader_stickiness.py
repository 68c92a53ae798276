"""Goal: a follower whose log went backwards is believed (no append storm, snapshot
if it fell behind), and a healthy leader keeps its leadership against restarted or
partitioned members (leader stickiness) while a leadership transfer still wins."""

from __future__ import annotations

from raft_otp.core.effects import PersistMeta, SendSnapshot
from raft_otp.core.events import (
    CommitTimeout,
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    Commands,
    ElectionTimeout,
    LeaderDown,
    NodeDown,
    NodeUp,
    PreVoteResult,
    PreVoteRpc,
    RequestVoteResult,
    RequestVoteRpc,
    Tick,
    TransferLeadership,
)
from raft_otp.machines import Counter
from raft_otp.testing.harness import Net, Node, elect, of, sent, sid

A, B, C = sid("a"), sid("b"), sid("c")
ABC = ["a", "b", "c"]


def leader_with_c_matched(n_cmds: int = 4) -> Node:
    """a leads; b and c have acknowledged everything (noop + ``n_cmds`` commands)."""
    n = Node("a", ABC, term=1)
    elect(n)
    n(Commands([Command(["incr"], None, None, "noreply") for _ in range(n_cmds)]))
    n.written()
    last = n.s.log.last_index_term()[0]
    for peer in (B, C):
        n(AppendEntriesReply(n.s.term, peer, True, last + 1, last, n.s.term))
    assert n.s.peers[C].match_index == last == n_cmds + 1
    n(CommitTimeout())  # the commit timer fires (5 ms later): both hear the commit index
    assert all(p.commit_index_sent == n.s.commit_index for p in n.s.peers.values())
    return n


# ---- 1. a follower's log going backwards ---------------------------------------------------

def test_a_follower_reporting_a_lower_last_index_is_believed() -> None:
    n = leader_with_c_matched()
    # c's data dir was wiped: it rejects and says its log ends at 0
    eff = n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0))
    assert n.s.peers[C].match_index == 0 and n.s.peers[C].next_index > 1
    aes = sent(eff, AppendEntriesRpc)
    assert len(aes) == 1 and aes[0][0] == C and aes[0][1].prev_log_index == 0 and aes[0][1].entries


def test_a_peer_that_keeps_failing_is_not_resent_to_in_a_busy_loop() -> None:
    n = leader_with_c_matched()
    sends = 0
    for _ in range(100):  # the same rejection over and over (the observed storm)
        sends += len(sent(n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0)), AppendEntriesRpc))
    assert sends <= 1
    n(Tick(1000))
    assert len(sent(n(Tick(2000)), AppendEntriesRpc)) == 1  # the tick retries, once


def test_each_failure_reply_sends_at_most_one_rpc() -> None:
    n = Node("a", ABC, term=1, batch=1)
    elect(n)
    n(Commands([Command(["incr"], None, None, "noreply") for _ in range(10)]))
    n.written()
    last = n.s.log.last_index_term()[0]
    n(AppendEntriesReply(n.s.term, C, True, last + 1, last, n.s.term))
    eff = n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0))
    assert len(sent(eff, AppendEntriesRpc)) == 1


def test_a_follower_fallen_behind_the_first_index_gets_a_snapshot() -> None:
    n = Node("a", ABC, term=1, machine=Counter({"release_cursor_every": 2}))
    n.log.min_snapshot_interval = 1
    elect(n)
    n(Commands([Command(["incr"], None, None, "noreply") for _ in range(4)]))
    n.written()
    for peer in (B, C):
        n(AppendEntriesReply(n.s.term, peer, True, 6, 5, n.s.term))
    n.written()  # snapshot event
    assert n.s.log.first_index() > 1 and n.s.peers[C].match_index == 5
    eff = n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0))  # c came back empty
    assert of(eff, SendSnapshot) and n.s.peers[C].status == "sending_snapshot"


# ---- 2. leader stickiness ------------------------------------------------------------------

def follower_of(leader: str, name: str = "a", term: int = 1) -> Node:
    n = Node(name, ABC, term=term)
    n(AppendEntriesRpc(term, sid(leader), 0, 0, 0, []))
    assert n.s.role == "follower" and n.s.leader_id == sid(leader)
    return n


def test_a_follower_with_a_live_leader_refuses_pre_votes_until_told_it_is_down() -> None:
    n = follower_of("b")
    assert sent(n(PreVoteRpc(1, 7, C, 0, 0, 0))) == [(C, PreVoteResult(1, 7, A, False))]
    assert sent(n(PreVoteRpc(1, 8, B, 0, 0, 0)))[0][1].vote_granted  # from its leader itself
    n(LeaderDown(B))
    assert sent(n(PreVoteRpc(1, 9, C, 0, 0, 0)))[0][1].vote_granted


def test_node_down_of_the_leader_lifts_stickiness() -> None:
    n = follower_of("b")
    n(NodeDown("node_b"))
    assert sent(n(PreVoteRpc(1, 9, C, 0, 0, 0)))[0][1].vote_granted


def test_a_sticky_follower_refuses_request_vote_without_adopting_the_term() -> None:
    n = follower_of("b")
    eff = n(RequestVoteRpc(2, C, 0, 0))
    assert sent(eff) == [(C, RequestVoteResult(1, A, False))]
    assert n.s.term == 1 and n.s.leader_id == B and not of(eff, PersistMeta)


def test_a_sticky_follower_votes_for_a_leadership_transfer_candidate() -> None:
    n = follower_of("b")
    eff = n(RequestVoteRpc(2, C, 0, 0, True))
    assert sent(eff) == [(C, RequestVoteResult(2, A, True))]


def test_a_leader_answers_a_pre_vote_with_no_and_a_probe() -> None:
    n = leader_with_c_matched()
    eff = n(PreVoteRpc(n.s.term, 5, C, 0, 0, 0))
    assert (C, PreVoteResult(n.s.term, 5, A, False)) in sent(eff)
    assert [to for to, _ in sent(eff, AppendEntriesRpc)] == [C]
    assert n.s.role == "leader"


def test_a_leader_probes_the_members_on_a_node_that_comes_up() -> None:
    """A restarted follower's node saying hello (NodeUp) gets an append_entries from
    the follower's match index at once: it learns its leader and the commit index
    without waiting for its own election timer."""
    n = leader_with_c_matched()
    last = n.s.log.last_index_term()[0]
    eff = n(NodeUp(C.node))
    (to, rpc), = sent(eff, AppendEntriesRpc)
    assert to == C and rpc.leader_commit == n.s.commit_index and rpc.prev_log_index == last
    assert sent(n(NodeUp("elsewhere@127.0.0.1:1"))) == []  # no member there: nothing
    assert n.s.role == "leader"


def three() -> tuple[Net, dict[str, Node]]:
    nodes = {m: Node(m, ABC, term=1, seed=i) for i, m in enumerate(ABC)}
    net = Net(nodes)
    net.feed("a", ElectionTimeout())
    net.pump()
    assert nodes["a"].s.role == "leader" and all(nodes[m].s.leader_id == A for m in ABC)
    return net, nodes


def test_a_restarted_follower_does_not_take_leadership_from_a_healthy_leader() -> None:
    net, nodes = three()
    term = nodes["a"].s.term
    net.crash("c")
    net.restart("c")
    net.feed("c", ElectionTimeout())  # it knows no leader: pre-votes at once
    net.pump()
    assert nodes["a"].s.role == "leader" and nodes["a"].s.term == term
    assert nodes["c"].s.role == "follower" and nodes["c"].s.leader_id == A


def test_leadership_transfer_still_wins_against_sticky_followers() -> None:
    net, nodes = three()
    term = nodes["a"].s.term
    net.feed("a", TransferLeadership("t", C))
    net.pump()
    assert nodes["c"].s.role == "leader" and nodes["c"].s.term == term + 1
    assert nodes["a"].s.leader_id == C and nodes["b"].s.leader_id == C


def test_followers_elect_a_new_leader_when_the_leader_crashes() -> None:
    net, nodes = three()
    net.crash("a")  # b and c get LeaderDown from their monitor of a
    net.feed("b", ElectionTimeout())
    net.pump()
    assert nodes["b"].s.role == "leader" and nodes["c"].s.leader_id == B
