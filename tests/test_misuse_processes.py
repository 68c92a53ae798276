"""Goal: on 3 node processes, a user's mistake never halts a cluster: a raising apply, a
raising or unsendable query, an invalid machine effect, a command that cannot travel or is
too large each reach the caller as their own exception within 1 s, the cluster commits
afterwards, and every member ends with the same state; entry times are the leader's clock."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import psutil
import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import (CommandTooLarge, MachineError, QueryError, RaftError,
                             WireTypeError)
from raft_otp.system.harness import NodeProcs, running_nodes

pytestmark = pytest.mark.processes

MISUSE = ("raft_otp.testing.misuse_machine:Misuse", {})
KV = ("raft_otp.machines.kv:KeyValue", {})
M = "raft_otp.testing.misuse_machine"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("misuse")), 3) as h:
        yield h


def _cluster(nodes: NodeProcs, name: str, machine: Any = MISUSE) -> list[ServerId]:
    ids = [nodes[i].sid(name) for i in range(3)]
    started, not_started = raft_otp.start_cluster("default", name, machine, ids, timeout=20)
    assert not_started == [], not_started
    return ids


def _within_1s(fn: Callable[[], Any], exc: type[BaseException]) -> Any:
    t0 = time.monotonic()
    with pytest.raises(exc) as info:
        fn()
    took = time.monotonic() - t0
    assert took < 1.0, f"{exc.__name__} after {took:.2f} s: must come at once, not at the timeout"
    return info.value


def _commits_and_members_agree(ids: list[ServerId], command: Any, query: str) -> Any:
    """The cluster still commits, and every member reaches the same state."""
    _reply, leader = raft_otp.process_command(ids[0], command, timeout=10)
    commit = raft_otp.member_overview(leader, timeout=5)["commit_index"]
    states = [raft_otp.local_query(sid, query, timeout=10, min_index=commit)[0] for sid in ids]
    assert all(s == states[0] for s in states), states
    for sid in ids:
        assert raft_otp.member_overview(sid, timeout=5)["role"] in ("leader", "follower")
    return states[0]


def test_a_poison_command_is_a_machine_error_on_every_member(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "shop", KV)
    raft_otp.process_command(ids[0], ["put", "apples", 3], timeout=10)
    for _ in range(3):  # each used to crash every member, and the restarts replayed it
        err = _within_1s(lambda: raft_otp.process_command(ids[1], ["put"], timeout=5), MachineError)
        assert err.type_name == "ValueError" and "takes 2 argument" in err.message
    err = _within_1s(lambda: raft_otp.process_command(ids[0], ["frobnicate", "a"], timeout=5),
                     MachineError)
    assert "unknown command" in err.message
    state = _commits_and_members_agree(ids, ["put", "pears", 1], "raft_otp.system.queries:state")
    assert state == {"apples": 3, "pears": 1}
    for sid in ids:
        assert raft_otp.key_metrics(sid, timeout=5)["machine_errors"] == 4
    # a member restarted from its log replays the poison entries and catches up
    nodes.stop(2)
    nodes.start(2)
    state = _commits_and_members_agree(ids, ["put", "plums", 2], "raft_otp.system.queries:state")
    assert state == {"apples": 3, "pears": 1, "plums": 2}


def test_a_raising_query_is_a_query_error_and_the_members_stay_up(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "q")
    raft_otp.process_command(ids[0], ["incr"], timeout=10)
    for sid in ids:
        for _ in range(4):  # four raising local queries used to stop a member for good
            err = _within_1s(lambda: raft_otp.local_query(sid, f"{M}:raising_query", timeout=5),
                             QueryError)
            assert err.type_name == "LookupError" and "always raises" in err.message
    for call in (raft_otp.leader_query, raft_otp.consistent_query):
        _within_1s(lambda: call(ids[1], f"{M}:raising_query", timeout=5), QueryError)
    err = _within_1s(lambda: raft_otp.consistent_query(ids[0], f"{M}:unsendable_query", timeout=5),
                     WireTypeError)
    assert "cannot be sent" in str(err)
    assert _commits_and_members_agree(ids, ["incr"], f"{M}:count") == 2


def test_an_invalid_machine_effect_fails_the_command_not_the_server(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "fx")
    raft_otp.process_command(ids[0], ["incr"], timeout=10)
    for _ in range(3):
        err = _within_1s(lambda: raft_otp.process_command(ids[0], ["bad_timer"], timeout=5), MachineError)
        assert "Timer" in err.message and "hashable" in err.message
    err = _within_1s(lambda: raft_otp.process_command(ids[0], ["raise", "IndexError", "x"], timeout=5),
                     MachineError)
    assert err.type_name == "IndexError"
    assert _commits_and_members_agree(ids, ["incr"], f"{M}:count") == 2  # no -1000 kept


def test_commands_that_cannot_travel_or_are_too_large_are_refused_at_the_caller(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "big")
    leader_node = raft_otp.process_command(ids[0], ["incr"], timeout=10)[1].node
    leader_proc = next(np for np in nodes.nodes if np.name == leader_node)
    rss_before = psutil.Process(leader_proc.pid).memory_info().rss
    err = _within_1s(lambda: raft_otp.process_command(ids[0], ["incr", b"x" * 50_000_000], timeout=5),
                     CommandTooLarge)
    assert err.size > 50_000_000 and err.limit == 1_048_576
    _within_1s(lambda: raft_otp.process_command(ids[0], {("a", 1): 2}, timeout=5), WireTypeError)
    _within_1s(lambda: raft_otp.process_command(ids[0], ["incr", {1, 2}], timeout=5), WireTypeError)
    assert psutil.Process(leader_proc.pid).memory_info().rss < rss_before + 20_000_000
    assert _commits_and_members_agree(ids, ["incr"], f"{M}:count") == 2


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_the_entry_time_is_the_leaders_clock_at_append_and_never_decreases(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "clock")
    seen: list[int] = []

    def stamped() -> tuple[int, ServerId]:
        before = _now_ms()
        t, leader = raft_otp.process_command(ids[0], ["now"], timeout=10)
        after = _now_ms()
        # one machine, one clock: the stamp falls within the call (ms rounding aside)
        assert before - 2 <= t <= after + 2, (before, t, after)
        assert not seen or t >= seen[-1], (seen[-1], t)
        seen.append(t)
        return t, leader

    _t, leader = stamped()  # a new cluster: it used to be 0
    time.sleep(3.0)  # an idle leader ticks ever more rarely: the stamp used to be its last tick
    stamped()
    for _ in range(3):  # across leadership transfers, never backwards
        others = [s for s in ids if s != leader]
        raft_otp.transfer_leadership(leader, others[0], timeout=10)
        deadline = time.monotonic() + 10
        while raft_otp.members(others[0], timeout=5)[1] != others[0]:
            assert time.monotonic() < deadline, "the transfer did not complete"
            time.sleep(0.02)
        _t, leader = stamped()
        assert leader == others[0]
    commit = raft_otp.member_overview(leader, timeout=5)["commit_index"]
    per_member = [raft_otp.local_query(sid, f"{M}:times", timeout=10, min_index=commit)[0] for sid in ids]
    assert all(p == per_member[0] for p in per_member)  # each entry has one time everywhere
    assert [t for _i, t in per_member[0]] == seen


def test_errors_survive_a_leader_kill_unchanged(nodes: NodeProcs) -> None:
    """A failed command is replicated state: after the leader's process dies, a retry
    of the same session (the API resends on timeout) still gets the MachineError."""
    ids = _cluster(nodes, "kill")
    _r, leader = raft_otp.process_command(ids[0], ["incr"], timeout=10)
    with pytest.raises(MachineError):
        raft_otp.process_command(leader, ["raise", "KeyError", "k"], timeout=10)
    idx = next(i for i, np in enumerate(nodes.nodes) if np.name == leader.node)
    nodes.kill(idx)
    try:
        survivors = [s for s in ids if s != leader]
        deadline = time.monotonic() + 15
        while True:
            try:
                raft_otp.process_command(survivors[0], ["incr"], timeout=5)
                break
            except RaftError:
                if time.monotonic() > deadline:
                    raise
        _within_1s(lambda: raft_otp.process_command(survivors[1], ["raise", "ValueError", "v"], timeout=5),
                   MachineError)
    finally:
        nodes.start(idx)
    assert _commits_and_members_agree(ids, ["incr"], f"{M}:count") == 3


def test_the_asyncio_forms_fail_fast_on_a_stopped_member(nodes: NodeProcs) -> None:
    import asyncio

    from raft_otp import aio
    from raft_otp.errors import ServerNotFound

    ids = _cluster(nodes, "aiostop")
    raft_otp.process_command(ids[0], ["incr"], timeout=10)
    raft_otp.stop_server("default", ids[2], timeout=10)

    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(ServerNotFound):
            await aio.local_query(ids[2], f"{M}:count", timeout=5)
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(MachineError):
            await aio.process_command(ids[0], ["raise", "KeyError", "k"], timeout=5)
        with pytest.raises(QueryError):
            await aio.consistent_query(ids[1], f"{M}:raising_query", timeout=5)

    asyncio.run(main())
    raft_otp.restart_server("default", ids[2], timeout=10)
    assert _commits_and_members_agree(ids, ["incr"], f"{M}:count") == 2
