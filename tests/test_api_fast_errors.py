"""Goal: on 3 node processes, a user's mistake gets its own exception within 1 s
(ServerNotFound for a stopped or never-started member, BadArgument for an invalid
name, AlreadyStarted for a second start_cluster), leaves nothing behind on any
node, and the cluster still commits with equal state on every member afterwards."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import AlreadyStarted, BadArgument, NodeDown, RaftError, ServerNotFound, Timeout
from raft_otp.system.harness import NodeProcs, free_port, running_nodes

pytestmark = pytest.mark.processes

COUNTER = ("raft_otp.machines.counter:Counter", {})
KV = ("raft_otp.machines.kv:KeyValue", {})
STATE = "raft_otp.system.queries:state"
FAST_S = 1.0
CALL_S = 5.0  # the timeout given to each call that must fail fast


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("fasterr")), 3) as h:
        yield h


@pytest.fixture(scope="module")
def fe(nodes: NodeProcs) -> list[ServerId]:
    ids = [nodes[i].sid("fe") for i in range(3)]
    started, not_started = raft_otp.start_cluster("default", "fe", COUNTER, ids, timeout=20)
    assert started == ids and not_started == []
    return ids


@contextmanager
def within(seconds: float) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    took = time.monotonic() - t0
    assert took < seconds, f"took {took:.2f} s, expected under {seconds} s"


def commits_and_converges(ids: list[ServerId], via: ServerId | None = None) -> int:
    """One command commits; then every member's own state equals its reply."""
    value, _leader = raft_otp.process_command(via or ids[0], ["incr"], timeout=10)
    deadline = time.monotonic() + 10
    states: list[Any] = []
    while time.monotonic() < deadline:
        states = [raft_otp.local_query(sid, STATE, timeout=5)[0] for sid in ids]
        if states == [value] * len(ids):
            return value
        time.sleep(0.02)
    raise AssertionError(f"members did not converge on {value}: {states}")


def server_names(nodes: NodeProcs) -> list[set[str]]:
    """The servers each node's system knows (its directory), by name."""
    return [set(raft_otp.overview("default", node=nodes[i].name, timeout=5)["servers"]) for i in range(3)]


def server_dirs(nodes: NodeProcs) -> list[set[str]]:
    return [set(os.listdir(os.path.join(nodes[i].data_dir, "servers"))) for i in range(3)]


def test_call_to_a_stopped_member_is_server_not_found_at_once(nodes: NodeProcs, fe: list[ServerId]) -> None:
    commits_and_converges(fe)
    stopped = fe[2]
    raft_otp.stop_server("default", stopped, timeout=10)
    try:
        with within(FAST_S), pytest.raises(ServerNotFound, match="not running on"):
            raft_otp.process_command(stopped, ["incr"], timeout=CALL_S)
        with within(FAST_S), pytest.raises(ServerNotFound, match="'fe'"):
            raft_otp.consistent_query(stopped, STATE, timeout=CALL_S)
        with within(FAST_S), pytest.raises(ServerNotFound):
            raft_otp.local_query(stopped, STATE, timeout=CALL_S)
        commits_and_converges(fe[:2])  # two of three still commit
    finally:
        raft_otp.restart_server("default", stopped, timeout=10)
    commits_and_converges(fe)


def test_call_to_a_name_never_started_is_server_not_found_at_once(nodes: NodeProcs,
                                                                  fe: list[ServerId]) -> None:
    ghost = nodes[1].sid("never_started")
    with within(FAST_S), pytest.raises(ServerNotFound, match=f"'never_started' is not running on {nodes[1].name}"):
        raft_otp.process_command(ghost, ["incr"], timeout=CALL_S)
    with within(FAST_S), pytest.raises(ServerNotFound):
        raft_otp.consistent_query(ghost, STATE, timeout=CALL_S)
    commits_and_converges(fe)


def test_a_local_call_to_an_unknown_server_is_fast(nodes: NodeProcs, fe: list[ServerId]) -> None:
    here = ServerId("nobody", raft_otp.node_name())  # this client process is a node with no such server
    with within(FAST_S), pytest.raises(ServerNotFound):
        raft_otp.process_command(here, ["incr"], timeout=CALL_S)
    commits_and_converges(fe)


@pytest.mark.parametrize("cluster, server", [
    ("a/b", "ok1"), ("c" * 300, "ok2"), ("", "ok3"), ("..", "ok4"), ("-rf", "ok5"),
    ("héllo", "ok6"), ("raft_otp.system.default", "ok7"),
    ("ok8", "a/b"), ("ok9", "y" * 300), ("ok10", "."), ("ok11", "raft_otp.notify.1"), ("ok12", "x y"),
])
def test_invalid_names_are_refused_before_anything_is_created(nodes: NodeProcs, fe: list[ServerId],
                                                              cluster: str, server: str) -> None:
    names_before, dirs_before = server_names(nodes), server_dirs(nodes)
    ids = [nodes[i].sid(server) for i in range(3)]
    with within(FAST_S), pytest.raises(BadArgument, match="a name is 1 to 64 characters"):
        raft_otp.start_cluster("default", cluster, COUNTER, ids, timeout=CALL_S)
    with within(FAST_S), pytest.raises(BadArgument, match="a name is"):
        raft_otp.start_server("default", cluster, ids[0], COUNTER, ids, timeout=CALL_S)
    assert server_names(nodes) == names_before and server_dirs(nodes) == dirs_before
    commits_and_converges(fe)


def test_the_system_actor_refuses_invalid_names_from_a_remote_caller(nodes: NodeProcs,
                                                                     fe: list[ServerId]) -> None:
    """A remote caller need not use our API: the node's system actor checks too."""
    from raft_otp.node import runtime as node_rt
    from raft_otp.system.system_actor import StartServerReq, actor_name
    names_before, dirs_before = server_names(nodes), server_dirs(nodes)
    target = nodes[1].name
    for name, cluster in (("a/b", "c1"), ("ok", "../etc"), ("z" * 65, "c2")):
        req = StartServerReq(name, cluster, COUNTER[0], {}, [[name, target]])
        with within(FAST_S), pytest.raises(BadArgument, match="a name is"):
            node_rt.call((actor_name("default"), target), req, timeout=CALL_S)
    assert server_names(nodes) == names_before and server_dirs(nodes) == dirs_before
    commits_and_converges(fe)


def test_a_second_start_cluster_raises_already_started(nodes: NodeProcs, fe: list[ServerId]) -> None:
    value = commits_and_converges(fe)
    names_before, dirs_before = server_names(nodes), server_dirs(nodes)
    for machine in (COUNTER, KV):  # the same cluster again, with the same or another machine
        with within(FAST_S), pytest.raises(AlreadyStarted) as info:
            raft_otp.start_cluster("default", "fe", machine, fe, timeout=CALL_S)
        for i in range(3):  # which servers exist where
            assert f"fe@{nodes[i].name}: AlreadyStarted: server 'fe' of cluster 'fe'" in str(info.value)
    other = [nodes[i].sid("fe_other") for i in range(3)]  # the same cluster name, other servers
    with within(FAST_S), pytest.raises(AlreadyStarted, match="cluster 'fe' already exists on .* with server"):
        raft_otp.start_cluster("default", "fe", COUNTER, other, timeout=CALL_S)
    assert server_names(nodes) == names_before and server_dirs(nodes) == dirs_before
    assert commits_and_converges(fe) == value + 1  # unharmed: nothing lost, nothing reset


def test_a_partly_taken_cluster_is_refused_and_what_was_started_is_deleted(nodes: NodeProcs,
                                                                           fe: list[ServerId]) -> None:
    solo = [nodes[0].sid("solo")]
    assert raft_otp.start_cluster("default", "solo", COUNTER, solo, timeout=20) == (solo, [])
    raft_otp.process_command(solo[0], ["incr"], timeout=10)
    names_before, dirs_before = server_names(nodes), server_dirs(nodes)
    ids = [nodes[i].sid("solo") for i in range(3)]
    try:
        with within(FAST_S), pytest.raises(AlreadyStarted) as info:
            raft_otp.start_cluster("default", "solo", COUNTER, ids, timeout=CALL_S)
        text = str(info.value)
        assert f"solo@{nodes[0].name}: AlreadyStarted" in text and "deleted again" in text, text
        assert server_names(nodes) == names_before and server_dirs(nodes) == dirs_before
        assert commits_and_converges(solo) == 2  # the one that existed is unharmed
    finally:
        raft_otp.force_delete_server("default", solo[0], timeout=10)
    commits_and_converges(fe)


def test_no_leader_raises_with_each_members_reason_and_leaves_nothing(nodes: NodeProcs,
                                                                      fe: list[ServerId]) -> None:
    names_before, dirs_before = server_names(nodes), server_dirs(nodes)
    ghosts = [f"ghost{i}@127.0.0.1:{free_port()}" for i in (1, 2)]  # nothing listens there
    ids = [nodes[0].sid("lonely"), ServerId("lonely", ghosts[0]), ServerId("lonely", ghosts[1])]
    with within(3.0 + 5.0), pytest.raises(NodeDown) as info:
        raft_otp.start_cluster("default", "lonely", COUNTER, ids, timeout=3.0)
    text = str(info.value)
    assert all(f"lonely@{g}: NodeDown" in text for g in ghosts), text
    assert f"deleted again: lonely@{nodes[0].name}" in text, text
    assert server_names(nodes) == names_before and server_dirs(nodes) == dirs_before
    commits_and_converges(fe)


def test_a_timeout_states_the_callers_timeout(nodes: NodeProcs, fe: list[ServerId]) -> None:
    """Whatever the per-attempt waits, a Timeout says what the caller asked for."""
    from raft_otp.node import runtime as node_rt
    target = fe[1]
    node_rt.set_fault(target.node, drop=1.0)  # our requests to it are lost
    try:
        with pytest.raises(Timeout) as info:
            raft_otp.process_command(target, ["incr"], timeout=2.5)
        assert "within 2.5 s" in str(info.value) and "outcome is unknown" in str(info.value)
        with pytest.raises(Timeout, match="within 1.5 s"):
            raft_otp.local_query(target, STATE, timeout=1.5)
    finally:
        node_rt.set_fault(target.node)
    commits_and_converges(fe)


def test_failures_leave_no_zombie_entry(nodes: NodeProcs, fe: list[ServerId]) -> None:
    """After everything above, each node knows exactly the servers of cluster fe."""
    assert all(names == {"fe"} for names in server_names(nodes)), server_names(nodes)
    with pytest.raises(RaftError):  # and the API agrees that nothing else exists
        raft_otp.ping(nodes[1].sid("fe_other"), timeout=CALL_S)
