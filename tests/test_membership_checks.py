"""Goal: on 3 node processes, ``add_member`` refuses a member that does not run (its node
does not exist, nobody started that name, another cluster's server, already a member)
at once with the specific exception, before anything is submitted, so the quorum never
grows by a phantom; RA's order stays possible behind ``require_running=False``;
``remove_member`` and ``delete_cluster`` report what really happened.  After each case
the cluster still commits, its members are unchanged, and every member has the same
state."""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Iterator

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.system.harness import NodeProcs, free_port, running_nodes

pytestmark = pytest.mark.processes

COUNTER = ("raft_otp.machines.counter:Counter", {})
STATE = "raft_otp.system.queries:state"
FAST_S = 1.0  # the checks answer within this, whatever the call's timeout
_names = itertools.count(1)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("membership")), 3) as h:
        yield h


def _cluster(nodes: NodeProcs, prefix: str) -> list[ServerId]:
    name = f"{prefix}{next(_names)}"
    ids = [nodes[i].sid(name) for i in range(3)]
    _started, not_started = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=20)
    assert not_started == []
    raft_otp.process_command(ids[0], ["incr"], timeout=10)
    return ids


def _raises_fast(exc_type: type[Exception], call: Callable[[], Any]) -> Exception:
    """``call()`` raises ``exc_type`` within FAST_S although its own timeout is 5 s."""
    t0 = time.monotonic()
    with pytest.raises(exc_type) as info:
        call()
    elapsed = time.monotonic() - t0
    assert elapsed < FAST_S, (elapsed, info.value)
    return info.value


def _voters(sid: ServerId) -> list[ServerId]:
    ov = raft_otp.member_overview(sid, timeout=5)
    assert all(kind == "voter" for _m, kind in ov["members"]), ov["members"]
    return sorted(ServerId(*m) for m, _kind in ov["members"])


def _until(what: str, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _assert_healthy(ids: list[ServerId], members: list[ServerId] | None = None) -> None:
    """The cluster commits; its members are ``members`` (default ``ids``), all voters, on
    every member's view; every member applies the same state."""
    want = sorted(members or ids)
    value, leader = raft_otp.process_command(ids[0], ["incr"], timeout=10)
    assert leader in want
    for sid in want:
        _until(f"{sid} does not see the members {want}", lambda sid=sid: _voters(sid) == want)
    commit = raft_otp.member_overview(leader, timeout=5)["commit_index"]
    for sid in want:
        _until(f"{sid} did not apply up to {commit}",
               lambda sid=sid: raft_otp.member_overview(sid, timeout=5)["last_applied"] >= commit)
    states = {sid: raft_otp.local_query(sid, STATE, timeout=5)[0] for sid in want}
    assert set(states.values()) == {value}, states


def _ghost_node() -> str:
    return f"ghost@127.0.0.1:{free_port()}"  # nothing listens there


def test_a_member_on_a_node_that_does_not_exist_is_node_down(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "nd")
    ghost = ServerId(ids[0].name, _ghost_node())
    exc = _raises_fast(raft_otp.NodeDown, lambda: raft_otp.add_member(ids[0], ghost, timeout=5))
    assert ghost.node in str(exc)
    # asked again (the node is now known to this client), and as a promotable: the same
    _raises_fast(raft_otp.NodeDown,
                 lambda: raft_otp.add_member(ids[1], ghost, "promotable", timeout=5))
    _assert_healthy(ids)


def test_a_name_nobody_started_is_server_not_found(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "nf")
    nobody = nodes[1].sid("nobody_started_this")
    exc = _raises_fast(raft_otp.ServerNotFound,
                       lambda: raft_otp.add_member(ids[0], nobody, timeout=5))
    assert "nobody_started_this" in str(exc)
    _assert_healthy(ids)


def test_another_clusters_server_or_a_member_is_a_bad_argument(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "ba")
    other = _cluster(nodes, "bo")
    exc = _raises_fast(raft_otp.BadArgument, lambda: raft_otp.add_member(ids[0], other[1], timeout=5))
    assert other[1].name in str(exc) and ids[0].name in str(exc)
    exc = _raises_fast(raft_otp.BadArgument, lambda: raft_otp.add_member(ids[0], ids[2], timeout=5))
    assert "already a member" in str(exc)
    _raises_fast(raft_otp.BadArgument,
                 lambda: raft_otp.add_member(ids[0], ServerId(ids[0].name, "not-a-node"), timeout=5))
    _assert_healthy(ids)
    _assert_healthy(other)


def test_a_started_server_is_added(nodes: NodeProcs) -> None:
    """The default order: start the server with the new member list, then add it."""
    ids = _cluster(nodes, "ok")
    new = ServerId(f"{ids[0].name}b", nodes[0].name)  # a second member on node 1
    raft_otp.start_server("default", ids[0].name, new, COUNTER, ids + [new], timeout=10)
    leader = raft_otp.add_member(ids[2], new, timeout=5)
    assert leader in ids
    _assert_healthy(ids, ids + [new])
    raft_otp.remove_member(ids[0], new, timeout=5)
    raft_otp.force_delete_server("default", new, timeout=5)
    _assert_healthy(ids)


def test_ra_order_add_then_start_behind_require_running_false(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "ra")
    new = ServerId(f"{ids[0].name}b", nodes[1].name)
    raft_otp.add_member(ids[0], new, timeout=5, require_running=False)  # nothing runs yet
    assert sorted(raft_otp.members(ids[0], timeout=5)[0]) == sorted(ids + [new])
    raft_otp.start_server("default", ids[0].name, new, COUNTER, ids + [new], timeout=10)
    _assert_healthy(ids, ids + [new])
    raft_otp.remove_member(ids[0], new, timeout=5)
    raft_otp.force_delete_server("default", new, timeout=5)
    _assert_healthy(ids)


def test_remove_member_reports_the_committed_removal_of_a_phantom(nodes: NodeProcs) -> None:
    """A phantom (added RA's way, on a node that does not exist) is removed: the call
    returns the leader that committed it; a second removal says it is not a member."""
    ids = _cluster(nodes, "rm")
    ghost = ServerId(ids[0].name, _ghost_node())
    raft_otp.add_member(ids[0], ghost, timeout=5, require_running=False)
    assert ghost in raft_otp.members(ids[0], timeout=5)[0]
    leader = raft_otp.remove_member(ids[1], ghost, timeout=5)
    assert leader in ids
    assert sorted(raft_otp.members(leader, timeout=5)[0]) == sorted(ids)
    exc = _raises_fast(raft_otp.BadArgument, lambda: raft_otp.remove_member(ids[0], ghost, timeout=5))
    assert "not a member" in str(exc)
    _assert_healthy(ids)


def test_removing_the_leader_returns_it_and_the_others_go_on(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "rl")
    _value, leader = raft_otp.process_command(ids[0], ["incr"], timeout=10)
    rest = [s for s in ids if s != leader]
    assert raft_otp.remove_member(rest[0], leader, timeout=5) == leader
    _until("no leader among the others", lambda: raft_otp.members(rest[0], timeout=5)[1] in rest)
    value, new_leader = raft_otp.process_command(rest[0], ["incr"], timeout=10)
    assert new_leader in rest
    for sid in rest:
        _until(f"{sid} behind", lambda sid=sid: raft_otp.local_query(sid, STATE, timeout=5)[0] == value)
    raft_otp.force_delete_server("default", leader, timeout=5)


def test_delete_cluster_says_which_members_it_could_not_delete_and_why(nodes: NodeProcs) -> None:
    ids = _cluster(nodes, "dc")
    ghost = ServerId(ids[0].name, _ghost_node())
    t0 = time.monotonic()
    deleted, failed = raft_otp.delete_cluster("default", ids + [ghost], timeout=5)
    assert time.monotonic() - t0 < 5.0
    assert sorted(deleted) == sorted(ids)
    assert list(failed) == [ghost] and isinstance(failed[ghost], raft_otp.NodeDown)
    for sid in ids:
        with pytest.raises((raft_otp.ServerNotFound, raft_otp.Timeout)):
            raft_otp.ping(sid, timeout=1)
