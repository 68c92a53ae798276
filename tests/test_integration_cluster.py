"""Goal: a 3-node cluster on 3 OS processes over ZeroMQ serves commands and queries,
changes membership and leadership, installs snapshots, and survives SIGKILL, WAL and
server-actor crashes and a full restart without losing an acknowledged write."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from typing import Any, Iterator

import pytest

import raft_otp
import raft_otp.aio
from raft_otp import ServerId
from raft_otp.errors import NodeDown, RaftError, Timeout
from raft_otp.system.harness import NodeProcs, running_nodes

pytestmark = pytest.mark.processes

KV = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": 50})
STATE = "raft_otp.system.queries:state"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("cluster")), 3, extra_args=["--min-snapshot-interval", "64"]) as h:
        yield h


def _ids(h: NodeProcs, name: str, which: tuple[int, ...] = (0, 1, 2)) -> list[ServerId]:
    return [h[i].sid(name) for i in which]


def _start(h: NodeProcs, name: str, machine: Any = KV, which: tuple[int, ...] = (0, 1, 2)) -> list[ServerId]:
    ids = _ids(h, name, which)
    started, not_started = raft_otp.start_cluster("default", name, machine, ids, timeout=20)
    assert not_started == [] and started == ids
    return ids


def _leader(ids: list[ServerId], timeout: float = 10.0) -> ServerId:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sid in ids:
            try:
                ov = raft_otp.member_overview(sid, timeout=1.0)
            except RaftError:
                continue
            if ov["role"] == "leader":
                return sid
        time.sleep(0.02)
    raise AssertionError(f"no leader among {ids}")


def _until_state(sid: ServerId, ok: Any, timeout: float, what: str) -> None:
    """Poll ``sid``'s machine state (its own copy) until ``ok(state)``; fail with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok(raft_otp.local_query(sid, STATE, timeout=2)[0]):
                return
        except RaftError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _put_many(sid: ServerId, prefix: str, n: int, acked: dict[str, int]) -> None:
    for i in range(n):
        reply, _ = raft_otp.process_command(sid, ["put", f"{prefix}{i}", i], timeout=10)
        assert reply == ["ok"]
        acked[f"{prefix}{i}"] = i


def _assert_has(sid: ServerId, acked: dict[str, int]) -> None:
    state, _ = raft_otp.consistent_query(sid, STATE, timeout=10)
    missing = {k: v for k, v in acked.items() if state.get(k) != v}
    assert not missing, f"lost acknowledged writes: {sorted(missing)[:10]}"


def test_commands_and_three_query_kinds(nodes: NodeProcs) -> None:
    ids = _start(nodes, "q1", ("raft_otp.machines.counter:Counter", {}))
    for i in range(1, 21):
        reply, leader = raft_otp.process_command(ids[i % 3], ["incr"])
        assert reply == i and leader in ids
    assert raft_otp.consistent_query(ids[1], STATE)[0] == 20
    assert raft_otp.leader_query(ids[2], STATE)[0] == 20
    # a follower's local state catches up (it may lag by a commit round)
    deadline = time.monotonic() + 5
    while raft_otp.local_query(ids[2], STATE)[0] != 20:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert raft_otp.local_query(ids[0], ("raft_otp.system.queries:state", []))[0] == 20
    members, leader = raft_otp.members(ids[0])
    assert sorted(members) == sorted(ids) and leader in ids
    with pytest.raises(raft_otp.BadArgument):
        raft_otp.consistent_query(ids[1], lambda s: s)  # a lambda cannot travel
    m = raft_otp.key_metrics(leader)
    assert m["commit_index"] >= 21 and m["commands"] >= 20
    status = nodes.admin(0, ["status"])
    assert "q1" in status["system"]["default"]["clusters"]


def test_pipeline_to_remote_leader(nodes: NodeProcs) -> None:
    import queue
    ids = _start(nodes, "p1", ("raft_otp.machines.counter:Counter", {}))
    leader = _leader(ids)
    q: queue.Queue[Any] = queue.Queue()
    n = 2000
    raft_otp.pipeline_commands(leader, [(["incr"], i) for i in range(n)], q)
    got: dict[int, int] = {}
    while len(got) < n:
        msg = q.get(timeout=10)
        assert isinstance(msg, raft_otp.Applied), msg
        got.update(dict(msg.replies))
    assert sorted(got.values()) == list(range(1, n + 1))
    follower = next(s for s in ids if s != leader)
    raft_otp.pipeline_command(follower, ["incr"], "x", q)
    msg = q.get(timeout=10)
    assert isinstance(msg, raft_otp.Rejected) and msg.correlations == ["x"] and msg.leader == leader


def test_membership_and_leadership_transfer(nodes: NodeProcs) -> None:
    ids = _start(nodes, "m1", KV, (0, 1))
    acked: dict[str, int] = {}
    _put_many(ids[0], "a", 20, acked)
    new = nodes[2].sid("m1")
    raft_otp.start_server("default", "m1", new, KV, ids + [new])
    raft_otp.add_member(ids[0], new)
    members, _ = raft_otp.members(ids[1])
    assert sorted(members) == sorted(ids + [new])
    _put_many(ids[1], "b", 10, acked)
    deadline = time.monotonic() + 10
    while raft_otp.local_query(new, STATE)[0] != acked:
        assert time.monotonic() < deadline, "new member did not catch up"
        time.sleep(0.02)
    # leadership transfer to the new member
    assert raft_otp.transfer_leadership(ids[0], new) in ("ok", "already_leader")
    deadline = time.monotonic() + 10
    while _leader(ids + [new]) != new:
        assert time.monotonic() < deadline, "leadership did not move"
        time.sleep(0.02)
    assert raft_otp.process_command(ids[0], ["put", "c", 1])[1] == new
    acked["c"] = 1
    # remove the old first member; the cluster keeps serving
    raft_otp.remove_member(new, ids[0])
    members, _ = raft_otp.members(new)
    assert sorted(members) == sorted([ids[1], new])
    _put_many(new, "d", 5, acked)
    _assert_has(ids[1], acked)


def test_leave_and_delete_server(nodes: NodeProcs) -> None:
    """A member leaves through a committed membership change, then its server and
    data are gone; the other two go on serving."""
    ids = _start(nodes, "ld1")
    raft_otp.process_command(ids[0], ["put", "a", 1], timeout=10)
    with pytest.raises(raft_otp.BadArgument):
        raft_otp.leave_and_delete_server("default", ids[2], ids[2])
    raft_otp.leave_and_delete_server("default", ids[0], ids[2], timeout=10)
    current, _ = raft_otp.members(ids[0])
    assert sorted(current) == sorted(ids[:2])
    with pytest.raises((raft_otp.ServerNotFound, raft_otp.NodeDown, Timeout)):
        raft_otp.ping(ids[2], timeout=2)
    ov = raft_otp.overview("default", node=ids[2].node)
    assert "ld1" not in str(ov.get("servers", ov))
    reply, _ = raft_otp.process_command(ids[0], ["put", "b", 2], timeout=10)
    assert reply == ["ok"]
    raft_otp.leave_and_delete_server("default", ids[0], ids[2], timeout=10)  # gone already: no-op delete


def test_snapshot_install_to_wiped_follower(nodes: NodeProcs) -> None:
    ids = _start(nodes, "s1")
    acked: dict[str, int] = {}
    _put_many(ids[0], "k", 220, acked)  # release_cursor every 50 -> snapshots
    leader = _leader(ids)
    assert raft_otp.key_metrics(leader)["snapshot_index"] >= 64
    victim = next(i for i in range(3) if ids[i] != leader)
    # Raft forbids a member silently losing its log: take it out, wipe it, add it back.
    raft_otp.remove_member(leader, ids[victim])
    nodes.kill(victim)
    shutil.rmtree(nodes[victim].data_dir)  # the whole data dir: WAL, segments, directory
    nodes.start(victim)
    raft_otp.start_server("default", "s1", ids[victim], KV, ids)
    raft_otp.add_member(leader, ids[victim])
    _until_state(ids[victim], lambda st: st == acked, 20, "wiped follower did not get the snapshot")
    ov = raft_otp.member_overview(ids[victim])
    assert ov["metrics"]["snapshots_installed"] >= 1
    assert raft_otp.key_metrics(leader)["snapshots_sent"] >= 1


def test_wal_and_server_actor_crash(nodes: NodeProcs) -> None:
    ids = _start(nodes, "w1")
    acked: dict[str, int] = {}
    _put_many(ids[0], "x", 20, acked)
    leader = _leader(ids)
    li = next(i for i in range(3) if ids[i] == leader)
    assert nodes.admin(li, ["kill", "raft_otp.wal.default"]) is True
    _put_many(leader, "y", 20, acked)  # followers' WALs and the restarted one carry on
    _assert_has(leader, acked)
    follower = next(i for i in range(3) if ids[i] != leader)
    assert nodes.admin(follower, ["kill", "w1"]) is True
    _put_many(leader, "z", 20, acked)
    _until_state(ids[follower], lambda st: st == acked, 10, "the restarted follower did not catch up")
    assert nodes.admin(li, ["kill", "w1"]) is True  # crash the leader's server actor
    _put_many(ids[(li + 1) % 3], "v", 10, acked)
    _assert_has(ids[(li + 2) % 3], acked)


def test_a_call_whose_node_stops_answering_ends_at_node_down(nodes: NodeProcs) -> None:
    """A request in flight when its node goes silent ends when the failure detector
    declares the node down (~1 s) with Timeout (outcome unknown), not after the
    caller's 20 s timeout; once the node answers again, so do its servers."""
    ids = _start(nodes, "stop1")
    raft_otp.process_command(ids[0], ["put", "x", 1], timeout=10)
    leader = _leader(ids)
    i = next(k for k in range(3) if ids[k] != leader)
    pid = nodes[i].pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            raft_otp.local_query(ids[i], STATE, timeout=20)
        waited = time.monotonic() - t0
        assert waited < 6.0, f"waited {waited:.2f} s"
    finally:
        os.kill(pid, signal.SIGCONT)
    _until_state(ids[i], lambda st: st.get("x") == 1, 15, "the resumed node's server did not answer again")


def test_sigkill_leader_process_then_restart_all(nodes: NodeProcs) -> None:
    ids = _start(nodes, "k1")
    acked: dict[str, int] = {}
    _put_many(ids[0], "a", 30, acked)
    leader = _leader(ids)
    li = next(i for i in range(3) if ids[i] == leader)
    t0 = time.monotonic()
    nodes.kill(li)
    rest = [s for s in ids if s != leader]
    new_leader = _leader(rest, timeout=10)
    elected_s = time.monotonic() - t0
    # failure detection (~0.5 s) + node_down election timeout (1-2 s): two timeouts ~4 s
    assert elected_s < 4.5, f"new leader after {elected_s:.2f} s"
    print(f"\nSIGKILL of the leader's node: new leader after {elected_s:.2f} s")
    # a command to the dead node fails at once with NodeDown (nothing was sent), not
    # after its 10 s timeout
    t1 = time.monotonic()
    with pytest.raises(NodeDown):
        raft_otp.process_command(leader, ["put", "never", 1], timeout=10)
    with pytest.raises(NodeDown):  # the asyncio form too
        asyncio.run(raft_otp.aio.process_command(leader, ["put", "never", 1], timeout=10))
    assert time.monotonic() - t1 < 1.5
    _put_many(new_leader, "b", 30, acked)
    _assert_has(rest[0], acked)
    nodes.start(li)  # the killed node recovers its servers from its directory
    _put_many(new_leader, "c", 10, acked)
    _until_state(leader, lambda st: st == acked, 15, "restarted node did not catch up")
    # restart all three nodes (ordered shutdown), every committed entry is still there
    for i in range(3):
        assert nodes.stop(i) == 0  # SIGTERM: ordered shutdown, exit code 0
    nodes.start()
    nodes.wait_connected()
    _leader(ids, timeout=15)
    _assert_has(ids[0], acked)
    for sid in ids:  # every member's own copy too
        deadline = time.monotonic() + 10
        while raft_otp.local_query(sid, STATE, timeout=5)[0] != acked:
            assert time.monotonic() < deadline
            time.sleep(0.05)
