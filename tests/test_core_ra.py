"""Goal: the RA-specific behaviours (pre-vote, promotion, consistent query, transfer, idle silence, sessions, snapshots) are pinned by core effects."""

from __future__ import annotations

from raft_otp.core.effects import (
    CancelElectionTimer,
    Notify,
    PersistMeta,
    Rejected,
    Reply,
    ReplyError,
    SendSnapshot,
    StartElectionTimer,
)
from raft_otp.core.events import (
    AddMember,
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    Commands,
    CommitTimeout,
    ConsistentQuery,
    ElectionTimeout,
    HeartbeatReply,
    HeartbeatRpc,
    LocalQuery,
    InstallSnapshotResult,
    InstallSnapshotRpc,
    LeaderDown,
    NodeDown,
    PreVoteResult,
    PreVoteRpc,
    RemoveMember,
    RequestVoteRpc,
    Tick,
    TimeoutNowRpc,
    TransferLeadership,
)
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core import entries as enc
from raft_otp.machines import Counter
from raft_otp.testing.harness import Node, elect, of, sent, sid, usr


A, B, C, D = sid("a"), sid("b"), sid("c"), sid("d")
ABC = ["a", "b", "c"]


def leader_with_noop_committed() -> Node:
    n = Node("a", ABC, term=1)
    elect(n)
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 2, 1, n.s.term))
    assert n.s.first_term_applied
    n(CommitTimeout())  # the commit timer fires (5 ms later): the peers hear the commit index
    return n


# ---- pre-vote --------------------------------------------------------------------------

def test_pre_vote_receiver_records_nothing() -> None:
    n = Node("a", ABC, term=3)
    eff = n(PreVoteRpc(7, 99, B, 0, 0, 0))
    assert sent(eff) == [(B, PreVoteResult(3, 99, A, True))]
    assert n.s.term == 3 and n.s.voted_for is None and not of(eff, PersistMeta)


def test_pre_vote_denied_to_stale_log_or_older_machine_version() -> None:
    n = Node("a", ABC, entries=[(1, None), (2, None)], term=2)
    assert sent(n(PreVoteRpc(2, 1, B, 0, 5, 1)))[0][1].vote_granted is False
    n.s.effective_machine_version = 2
    assert sent(n(PreVoteRpc(2, 1, B, 1, 2, 2)))[0][1].vote_granted is False
    assert sent(n(PreVoteRpc(2, 1, B, 2, 2, 2)))[0][1].vote_granted is True


def test_pre_vote_needs_a_quorum_with_the_current_token_before_the_term_moves() -> None:
    n = Node("a", ABC, term=4)
    eff = n(ElectionTimeout())
    assert n.s.role == "pre_vote" and n.s.term == 4 and not of(eff, PersistMeta)
    token = sent(eff, PreVoteRpc)[0][1].token
    n(PreVoteResult(4, token + 1, B, True))  # stale round
    assert n.s.role == "pre_vote"
    eff = n(PreVoteResult(4, token, B, True))
    assert n.s.role == "candidate" and n.s.term == 5
    assert of(eff, PersistMeta) == [PersistMeta(5, A)]
    assert {to for to, _ in sent(eff, RequestVoteRpc)} == {B, C}


# ---- idle clusters are silent ------------------------------------------------------------

def test_follower_with_a_leader_runs_no_timer_until_leader_down() -> None:
    n = Node("a", ABC, term=1)
    eff = n(AppendEntriesRpc(1, B, 0, 0, 0, []))
    assert of(eff, CancelElectionTimer) and not of(eff, StartElectionTimer)
    eff = n(LeaderDown(B))
    assert of(eff, StartElectionTimer) == [StartElectionTimer("leader_down")]
    assert n.s.leader_id is None


def test_node_down_of_the_leader_node_starts_the_connection_lost_timer() -> None:
    """RA's short timeout for a leader gone with ``noconnection`` (101-600 ms), not
    the pre-vote one (1-2 s): failover after a SIGKILL took 1.1-1.6 s with it."""
    n = Node("a", ABC, term=1)
    n(AppendEntriesRpc(1, B, 0, 0, 0, []))
    assert n(NodeDown("node_c")) == []
    assert of(n(NodeDown("node_b")), StartElectionTimer) == [StartElectionTimer("connection_lost")]
    assert n.s.leader_id is None


def test_idle_leader_sends_nothing_on_tick() -> None:
    n = leader_with_noop_committed()
    n(AppendEntriesReply(n.s.term, C, True, 2, 1, n.s.term))
    n(Tick(1000))
    assert sent(n(Tick(2000))) == []


def test_tick_resends_to_a_peer_that_made_no_progress() -> None:
    n = leader_with_noop_committed()
    n(Tick(1000))  # c is behind and made no progress since becoming leader
    eff = n(Tick(2000))
    assert [to for to, _ in sent(eff, AppendEntriesRpc)] == [C]


# ---- batching and pipelining ------------------------------------------------------------

def test_commands_are_batched_and_pipelined_within_bounds() -> None:
    n = Node("a", ABC, term=1, batch=4, pipeline=10)
    elect(n)
    eff = n(Commands([Command(["incr"], None, i, "notify") for i in range(20)]))
    to_b = [rpc for to, rpc in sent(eff, AppendEntriesRpc) if to == B]
    assert all(len(r.entries) <= 4 for r in to_b)
    assert sum(len(r.entries) for r in to_b) <= 10 - 1  # noop already in flight
    n.written()
    eff = n(AppendEntriesReply(n.s.term, B, True, 22, 21, n.s.term))
    notes = of(eff, Notify)
    assert len(notes) == 1 and [c for c, _ in notes[0].replies] == list(range(20))
    assert [v for _, v in notes[0].replies] == list(range(1, 21))


def test_non_leader_rejects_commands_with_a_leader_hint() -> None:
    n = Node("a", ABC, term=1)
    n(AppendEntriesRpc(1, B, 0, 0, 0, []))
    eff = n(Commands([Command(["incr"], "x"), Command(["incr"], "p", 7, "notify")]))
    assert ReplyError("x", "not_leader", B) in eff and Rejected("p", (7,), B) in eff


# ---- consistent query -------------------------------------------------------------------

def test_consistent_query_waits_for_a_heartbeat_quorum_after_arrival() -> None:
    n = leader_with_noop_committed()
    eff = n(ConsistentQuery("q", lambda s: s))
    hb = sent(eff, HeartbeatRpc)
    assert {to for to, _ in hb} == {B, C} and not of(eff, Reply)
    qi = hb[0][1].query_index
    eff = n(HeartbeatReply(n.s.term, C, qi - 1))  # an older round does not count
    assert not of(eff, Reply)
    eff = n(HeartbeatReply(n.s.term, C, qi))
    assert of(eff, Reply) == [Reply("q", 0, A)]


def test_consistent_query_on_a_follower_is_redirected() -> None:
    n = Node("a", ABC, term=1)
    n(AppendEntriesRpc(1, B, 0, 0, 0, []))
    assert n(ConsistentQuery("q", lambda s: s)) == [ReplyError("q", "not_leader", B)]


# ---- membership ------------------------------------------------------------------------

def test_membership_change_refused_before_the_noop_is_applied_and_while_pending() -> None:
    n = Node("a", ABC, term=1)
    elect(n)
    assert n(AddMember("r", D)) == [ReplyError("r", "cluster_change_not_permitted", A)]
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 2, 1, n.s.term))
    eff = n(AddMember("r", D, "voter"))
    assert n.s.members[D] == "voter"  # effective when appended
    assert {to for to, _ in sent(eff, AppendEntriesRpc)} >= {B, C, D}
    assert n(RemoveMember("r2", C)) == [ReplyError("r2", "cluster_change_not_permitted", A)]
    n.written()
    eff = n(AppendEntriesReply(n.s.term, B, True, 3, 2, n.s.term))
    eff += n(AppendEntriesReply(n.s.term, C, True, 3, 2, n.s.term))
    assert Reply("r", "ok", A) in eff


def test_promotable_member_is_promoted_once_caught_up() -> None:
    n = leader_with_noop_committed()
    n(AddMember("r", D, "promotable"))
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 3, 2, n.s.term))
    assert n.s.members[D] == "promotable"
    n(AppendEntriesReply(n.s.term, D, True, 3, 2, n.s.term))
    assert n.s.members[D] == "voter"
    last = n.s.log.last_index_term()[0]
    assert enc.decode(n.s.log.fetch(last, last)[0][2])[0] == enc.CLUSTER


def test_follower_adopts_a_cluster_change_when_written_and_reverts_if_truncated() -> None:
    n = Node("a", ABC, term=1)
    members = {A: "voter", B: "voter", C: "voter", D: "non_voter"}
    n(AppendEntriesRpc(1, B, 0, 0, 0, [(1, 1, enc.encode_noop(0)), (2, 1, enc.encode_cluster(members))]))
    assert n.s.members[D] == "non_voter"
    n(AppendEntriesRpc(2, C, 0, 1, 1, [usr(2, 2)]))
    assert D not in n.s.members


# ---- leadership transfer -------------------------------------------------------------------

def test_transfer_waits_for_the_target_to_catch_up_then_sends_timeout_now() -> None:
    n = leader_with_noop_committed()
    eff = n(TransferLeadership("t", C))
    assert not sent(eff, TimeoutNowRpc)
    eff = n(AppendEntriesReply(n.s.term, C, True, 2, 1, n.s.term))
    assert sent(eff, TimeoutNowRpc) == [(C, TimeoutNowRpc(n.s.term, A))]
    assert Reply("t", "ok", A) in eff


def test_after_timeout_now_commands_go_to_the_target_until_two_ticks_pass() -> None:
    """Raft thesis 3.10: a command appended while the target stands would make our log
    longer than its, so voters holding it would refuse the target."""
    n = leader_with_noop_committed()
    n(TransferLeadership("t", C))
    n(AppendEntriesReply(n.s.term, C, True, 2, 1, n.s.term))
    last = n.s.log.last_index_term()[0]
    eff = n(Commands([Command(["incr"], "x"), Command(["incr"], "p", 7, "notify")], 1000))
    assert ReplyError("x", "not_leader", C) in eff
    assert Rejected("p", (7,), C) in eff
    assert n.s.log.last_index_term()[0] == last and n.s.role == "leader"
    n(Tick(1000))
    assert ReplyError("y", "not_leader", C) in n(Command(["incr"], "y"))
    n(Tick(2000))  # the target did not take over: lead on
    n(Command(["incr"], "z"))
    assert n.s.log.last_index_term()[0] == last + 1


def test_timeout_now_makes_a_voter_candidate_without_pre_vote() -> None:
    n = Node("b", ABC, term=1)
    n(AppendEntriesRpc(1, A, 0, 0, 0, []))
    eff = n(TimeoutNowRpc(1, A))
    assert n.s.role == "candidate" and n.s.term == 2 and sent(eff, RequestVoteRpc)


# ---- client sessions ------------------------------------------------------------------------

def test_a_retried_session_command_is_applied_once_and_gets_the_original_reply() -> None:
    n = leader_with_noop_committed()
    n(Command(["incr"], "first", None, "await_consensus", "cli", 1))
    n(Command(["incr"], "retry", None, "await_consensus", "cli", 1))
    n.written()
    eff = n(AppendEntriesReply(n.s.term, B, True, 4, 3, n.s.term))
    assert Reply("first", 1, A) in eff and Reply("retry", 1, A) in eff
    assert n.s.machine_state == 1


# ---- snapshots -----------------------------------------------------------------------------

def test_release_cursor_snapshots_and_a_lagging_peer_gets_send_snapshot() -> None:
    n = Node("a", ABC, term=1, machine=Counter({"release_cursor_every": 2}))
    n.log.min_snapshot_interval = 1
    elect(n)
    n(Commands([Command(["incr"], None, None, "noreply") for _ in range(4)]))
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 6, 5, n.s.term))
    n.written()  # snapshot event
    assert n.s.log.snapshot_meta() is not None and n.s.log.first_index() > 1
    eff = n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0))
    assert of(eff, SendSnapshot) and n.s.peers[C].status == "sending_snapshot"


def test_follower_installs_a_snapshot_in_chunks() -> None:
    n = Node("b", ABC, term=1)
    meta = SnapshotMeta(10, 1, {"members": [[s.name, s.node, "voter"] for s in (A, B, C)],
                                "sessions": [["cli", 3, 9]]}, 0)
    data = Counter().snapshot_encode(9)
    eff = n(InstallSnapshotRpc(1, A, meta, 1, False, data[:0]))
    assert n.s.role == "receive_snapshot" and of(eff, StartElectionTimer)
    eff = n(InstallSnapshotRpc(1, A, meta, 2, True, data))
    assert n.s.role == "follower" and n.s.machine_state == 9 and n.s.last_applied == 10
    assert n.s.sessions == {"cli": [3, 9]}
    assert sent(eff, InstallSnapshotResult) == [(A, InstallSnapshotResult(1, B, 2, 10, 1))]
    # next append continues after the snapshot
    n(AppendEntriesRpc(1, A, 11, 10, 1, [usr(11, 1)]))
    n.written()
    assert n.s.machine_state == 10


def test_append_entries_below_the_snapshot_acknowledge_the_snapshot_index() -> None:
    """A new leader's append_entries wholly covered by our snapshot: the success reply
    carries the snapshot index (those entries are committed, so they match any
    leader's log), not 0, so the leader moves on at once."""
    n = Node("b", ABC, term=1)
    meta = SnapshotMeta(10, 1, {"members": [[s.name, s.node, "voter"] for s in (A, B, C)]}, 0)
    n(InstallSnapshotRpc(1, A, meta, 1, True, Counter().snapshot_encode(9)))
    assert n.s.role == "follower" and n.s.log.first_index() == 11
    eff = n(AppendEntriesRpc(2, C, 10, 3, 1, [usr(4, 1), usr(5, 1)]))  # new leader, term 2
    (to, reply), = sent(eff, AppendEntriesReply)
    assert to == C and reply.success and reply.last_index == 10 and reply.last_term == 1
    eff = n(AppendEntriesRpc(2, C, 10, 10, 1, [usr(11, 2)]))  # and it carries on from there
    n.written()
    assert n.s.log.last_written()[0] == 11


def test_receive_snapshot_times_out_back_to_follower() -> None:
    n = Node("b", ABC, term=1)
    meta = SnapshotMeta(10, 1, {"members": []}, 0)
    n(InstallSnapshotRpc(1, A, meta, 1, False, b""))
    n(ElectionTimeout())
    assert n.s.role == "follower" and n.s.leader_id is None


def test_recovery_replays_to_last_applied_and_starts_as_follower() -> None:
    n = Node("a", ABC, entries=[(1, None), (1, ["incr"]), (1, ["incr"]), (1, ["incr"])], term=1)
    from raft_otp.core import ServerConfig, ServerMeta, init_server
    import random

    cfg = ServerConfig(A, "t", (A, B, C))
    state, eff = init_server(cfg, n.log, Counter(), ServerMeta(1, None, 3), random.Random(1))
    assert state.last_applied == 3 and state.machine_state == 2 and state.role == "follower"
    assert of(eff, StartElectionTimer)


def test_session_table_is_bounded_least_recently_used_first() -> None:
    from dataclasses import replace

    n = leader_with_noop_committed()
    n.state.cfg = replace(n.state.cfg, max_client_sessions=2)
    for cid in ("x", "y", "x", "z"):
        n(Command(["incr"], None, None, "noreply", cid, 1 if cid != "x" or "x" not in n.s.sessions else 2))
        n.written()
        n(AppendEntriesReply(n.s.term, B, True, n.s.log.last_index_term()[0] + 1,
                             n.s.log.last_index_term()[0], n.s.term))
    assert list(n.s.sessions) == ["x", "z"]


def test_a_silent_snapshot_sender_is_replaced_after_the_watchdog_ticks() -> None:
    from dataclasses import replace

    from raft_otp.core.effects import StopSnapshotSender

    n = Node("a", ABC, term=1, machine=Counter({"release_cursor_every": 2}))
    n.log.min_snapshot_interval = 1
    elect(n)
    n.state.cfg = replace(n.state.cfg, snapshot_sender_timeout_ticks=2)
    n(Commands([Command(["incr"], None, None, "noreply") for _ in range(4)]))
    n.written()
    n(AppendEntriesReply(n.s.term, B, True, 6, 5, n.s.term))
    n.written()
    n(AppendEntriesReply(n.s.term, C, False, 1, 0, 0))
    assert n.s.peers[C].status == "sending_snapshot"
    effects = []
    for now in range(1, 5):
        effects += n(Tick(now * 1000))
    assert StopSnapshotSender(C) in effects and of(effects, SendSnapshot)


def test_follower_acks_a_write_on_its_written_event_only() -> None:
    """Durability is always an event: a follower's write is never durable inside the
    append_entries that made it (the Log interface has no way to ask for that), so
    its success goes out with the written event, with or without a term change in
    the same event; a local query waiting for an index that a later append_entries
    commits is answered in that event (commit and apply do not wait for the new write)."""
    n = Node("b", ABC, term=1)
    n(AppendEntriesRpc(1, A, 0, 0, 0, []))
    eff = n(AppendEntriesRpc(1, A, 0, 0, 0, [usr(1, 1), usr(2, 1)]))
    assert sent(eff, AppendEntriesReply) == [] and n.posted and n.log.last_written()[0] == 0
    acks = sent(n.written(), AppendEntriesReply)
    assert [(to, r.success, r.last_index, r.next_index) for to, r in acks] == [(A, True, 2, 3)]
    n(LocalQuery(("q", 1), lambda s: s, 3))  # answered once index 3 is applied
    eff = n(AppendEntriesRpc(1, A, 2, 2, 1, [usr(3, 1)]))
    assert sent(eff, AppendEntriesReply) == [] and n.posted
    assert [r.last_index for _, r in sent(n.written(), AppendEntriesReply)] == [3]
    eff = n(AppendEntriesRpc(1, A, 3, 3, 1, [usr(4, 1)]))  # commit 3 arrives with a new write
    assert sent(eff, AppendEntriesReply) == []
    assert [e.to for e in of(eff, Reply)] == [("q", 1)]  # the waiting local query, in the same event
    assert [r.last_index for _, r in sent(n.written(), AppendEntriesReply)] == [4]
    eff = n(AppendEntriesRpc(2, A, 3, 4, 1, [usr(5, 2)]))  # new term: PersistMeta, then the write
    assert of(eff, PersistMeta) and sent(eff, AppendEntriesReply) == []
    assert [r.last_index for _, r in sent(n.written(), AppendEntriesReply)] == [5]
