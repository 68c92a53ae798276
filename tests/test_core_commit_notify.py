"""Goal: a commit is told to idle peers by the commit timer, not by an append_entries
of its own per commit (ServerConfig.commit_notify_delay_ms), and a busy peer hears it
with its next entries; 0 restores the immediate notification."""

from __future__ import annotations

from raft_otp.core.effects import StartCommitTimer
from raft_otp.core.events import AppendEntriesReply, AppendEntriesRpc, Command, Commands, CommitTimeout
from raft_otp.testing.harness import Node, elect, of, sent, sid

A, B, C = sid("a"), sid("b"), sid("c")
ABC = ["a", "b", "c"]


def leader(delay_ms: int = 5) -> Node:
    """a leads with the noop written locally and acknowledged by b and c (commit
    notifications of the noop delivered)."""
    n = Node("a", ABC, term=1, commit_notify_delay_ms=delay_ms)
    elect(n)
    n.written()
    for peer in (B, C):
        n(AppendEntriesReply(n.s.term, peer, True, 2, 1, n.s.term))
    n(CommitTimeout())
    assert all(p.commit_index_sent == n.s.commit_index == 1 for p in n.s.peers.values())
    return n


def one_command(n: Node) -> list[object]:
    """Append one command, write it locally, and b acknowledges it: the effects of
    b's reply (the one that commits it)."""
    n(Commands([Command(["incr"], None, None, "noreply")]))
    n.written()
    last = n.s.log.last_index_term()[0]
    return n(AppendEntriesReply(n.s.term, B, True, last + 1, last, n.s.term))


def test_a_commit_starts_the_timer_and_sends_no_commit_only_rpc() -> None:
    n = leader()
    eff = one_command(n)
    assert n.s.commit_index == 2
    assert sent(eff, AppendEntriesRpc) == []
    assert of(eff, StartCommitTimer) == [StartCommitTimer(5)]


def test_the_timeout_tells_idle_peers_the_commit_index() -> None:
    n = leader()
    one_command(n)
    eff = n(CommitTimeout())
    rpcs = sent(eff, AppendEntriesRpc)
    assert sorted(to.name for to, _ in rpcs) == ["b", "c"]
    assert all(rpc.leader_commit == 2 and rpc.entries == [] for _, rpc in rpcs)
    assert of(eff, StartCommitTimer) == []
    assert n(CommitTimeout()) == []  # told once


def test_the_timer_is_started_once_for_many_commits() -> None:
    n = leader()
    timers = [of(one_command(n), StartCommitTimer) for _ in range(3)]
    assert [len(t) for t in timers] == [1, 0, 0]


def test_a_peer_sent_entries_since_the_timer_started_waits_for_the_next_rpc() -> None:
    n = leader()
    one_command(n)  # commits 2, timer started
    n(Commands([Command(["incr"], None, None, "noreply")]))  # entries (with commit 2) to b and c
    assert all(p.commit_index_sent == 2 for p in n.s.peers.values())
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 4, 3, n.s.term))  # commits 3
    assert n.s.commit_index == 3
    eff = n(CommitTimeout())
    assert sent(eff, AppendEntriesRpc) == []  # both got entries since the timer started
    assert of(eff, StartCommitTimer) == [StartCommitTimer(10)]  # so look again, a little later
    eff = n(CommitTimeout())
    assert sorted(to.name for to, rpc in sent(eff, AppendEntriesRpc) if rpc.leader_commit == 3) == ["b", "c"]
    assert of(one_command(n), StartCommitTimer) == [StartCommitTimer(5)]  # back to the configured delay


def test_a_busy_leaders_timer_backs_off_up_to_8x() -> None:
    n = leader()
    one_command(n)
    delays = []
    for _ in range(6):  # every timeout finds both peers sent entries since it started
        n(Commands([Command(["incr"], None, None, "noreply")]))
        n.written()
        last = n.s.log.last_index_term()[0]
        n(AppendEntriesReply(n.s.term, B, True, last + 1, last, n.s.term))
        delays += [e.delay_ms for e in of(n(CommitTimeout()), StartCommitTimer)]
    assert delays == [10, 20, 40, 40, 40, 40]


def test_delay_zero_tells_the_commit_at_once() -> None:
    n = leader(delay_ms=0)
    eff = one_command(n)
    assert of(eff, StartCommitTimer) == []
    rpcs = sent(eff, AppendEntriesRpc)
    assert sorted(to.name for to, _ in rpcs) == ["b", "c"]
    assert all(rpc.leader_commit == 2 for _, rpc in rpcs)


def test_a_commit_timeout_outside_leadership_is_ignored() -> None:
    n = Node("b", ABC, term=1)
    assert n(CommitTimeout()) == []
