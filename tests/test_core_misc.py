"""Goal: the smaller core paths are pinned — machine version upgrade through the log, WAL down/up, local query waiting for an index, overview."""

from __future__ import annotations

from typing import Any

from raft_otp.core import overview
from raft_otp.core.effects import Reply, ReplyError, RoleChanged, StartElectionTimer
from raft_otp.core.events import (
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    LocalQuery,
    PreVoteRpc,
    WalDown,
    WalUp,
)
from raft_otp.core import entries as enc
from raft_otp.core.machine import ApplyMeta
from raft_otp.machines import Counter
from raft_otp.testing.harness import Node, elect, of, sent, sid, usr


A, B = sid("a"), sid("b")
ABC = ["a", "b", "c"]


class CounterV0(Counter):
    def apply(self, meta: ApplyMeta, command: Any, state: int) -> Any:
        return state + 1, "v0"


class CounterV1(Counter):
    def version(self) -> int:
        return 1

    def which_module(self, version: int) -> Counter:
        return CounterV0() if version == 0 else self

    def apply(self, meta: ApplyMeta, command: Any, state: int) -> Any:
        return state + 1, f"v{meta.machine_version}"


def test_machine_upgrade_takes_effect_when_the_new_leaders_noop_applies() -> None:
    n = Node("b", ABC, machine=CounterV1(), term=1)
    # entries written by an old-version leader: noop(0) then a command
    n(AppendEntriesRpc(1, A, 2, 0, 0, [(1, 1, enc.encode_noop(0)), usr(2, 1)]))
    n.written()
    assert n.s.effective_machine_version == 0 and n.s.machine_state == 1
    # a new leader's noop carries version 1; later commands run the new logic
    n(AppendEntriesRpc(2, A, 4, 2, 1, [(3, 2, enc.encode_noop(1)), usr(4, 2)]))
    n.written()
    assert n.s.effective_machine_version == 1 and n.s.machine_state == 2
    # pre-votes from a candidate with an older machine version are refused now
    assert sent(n(PreVoteRpc(2, 1, A, 0, 9, 9)))[0][1].vote_granted is False


def test_wal_down_makes_the_leader_step_down_and_wal_up_recovers() -> None:
    n = Node("a", ABC, term=1)
    elect(n)
    n(Command(["incr"], "c1"))
    eff = n(WalDown())
    assert n.s.role == "await_condition"
    assert ReplyError("c1", "leadership_lost", None) in eff
    assert of(eff, StartElectionTimer)[-1] == StartElectionTimer("await_condition")
    assert n(Command(["incr"], "c2")) == [ReplyError("c2", "not_leader", None)]
    eff = n(WalUp())
    assert n.s.role == "follower" and RoleChanged("follower", None, n.s.term) in eff


def test_local_query_waits_for_the_requested_index() -> None:
    n = Node("b", ABC, term=1)
    assert n(LocalQuery("q", lambda s: s, min_index=2)) == []
    n(AppendEntriesRpc(1, A, 2, 0, 0, [(1, 1, enc.encode_noop(0)), usr(2, 1)]))
    eff = n.written()
    assert Reply("q", 1, A) in eff


def test_overview_is_plain_data() -> None:
    import msgpack

    n = Node("a", ABC, term=1)
    elect(n)
    n(AppendEntriesReply(n.s.term, B, True, 2, 1, n.s.term))
    ov = overview(n.s)
    assert ov["role"] == "leader" and ov["peers"]
    msgpack.packb(ov)
