"""Goal: on 3 OS processes, restarting an idle follower's server actor does not move
leadership to it (leader stickiness + the leader's probe on pre_vote)."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import RaftError
from raft_otp.system.harness import NodeProcs, running_nodes

pytestmark = pytest.mark.processes

COUNTER = ("raft_otp.machines.counter:Counter", {})


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("sticky")), 3) as h:
        yield h


def _overviews(ids: list[ServerId]) -> dict[ServerId, dict]:
    out = {}
    for sid in ids:
        try:
            out[sid] = raft_otp.member_overview(sid, timeout=2.0)
        except RaftError:
            pass
    return out


def test_killed_idle_follower_actor_does_not_take_leadership(nodes: NodeProcs) -> None:
    ids = [nodes[i].sid("st1") for i in range(3)]
    started, not_started = raft_otp.start_cluster("default", "st1", COUNTER, ids, timeout=20)
    assert not_started == []
    for _ in range(5):
        _reply, leader = raft_otp.process_command(ids[0], ["incr"], timeout=10)
    ov = _overviews(ids)
    assert ov[leader]["role"] == "leader"
    term = ov[leader]["term"]
    fi = next(i for i in range(3) if ids[i] != leader)
    assert nodes.admin(fi, ["kill", "st1"]) is True
    # idle: the restarted follower knows no leader and pre-votes after 1-2 s
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        ov = _overviews(ids)
        for sid, o in ov.items():
            assert o["term"] == term, f"{sid} moved to term {o['term']} (was {term}): {o}"
        time.sleep(0.1)
    ov = _overviews(ids)
    assert ov[leader]["role"] == "leader"
    assert ov[ids[fi]]["role"] == "follower" and tuple(ov[ids[fi]]["leader"]) == tuple(leader)
    assert raft_otp.process_command(ids[fi], ["incr"], timeout=10) == (6, leader)


def test_follower_with_a_wiped_log_is_caught_up_without_an_append_storm(nodes: NodeProcs) -> None:
    import shutil

    ids = [nodes[i].sid("st2") for i in range(3)]
    started, not_started = raft_otp.start_cluster("default", "st2", COUNTER, ids, timeout=20)
    assert not_started == []
    for _ in range(30):
        _reply, leader = raft_otp.process_command(ids[0], ["incr"], timeout=10)
    victim = next(i for i in range(3) if ids[i] != leader)
    # the follower's log goes backwards under the same id (not a Raft-legal operation,
    # but the leader must cope: believe the follower, no resend loop)
    nodes.kill(victim)
    shutil.rmtree(nodes[victim].data_dir)
    nodes.start(victim)
    nodes.wait_connected()
    raft_otp.start_server("default", "st2", ids[victim], COUNTER, ids)
    sent0 = raft_otp.member_overview(leader)["metrics"]["rpcs_sent"]
    assert raft_otp.process_command(leader, ["incr"], timeout=10)[0] == 31
    deadline = time.monotonic() + 10
    while True:
        try:
            if raft_otp.local_query(ids[victim], ("raft_otp.system.queries:state", []), timeout=2)[0] == 31:
                break
        except RaftError:
            pass
        assert time.monotonic() < deadline, "wiped follower did not catch up"
        time.sleep(0.05)
    time.sleep(1.0)
    sent = raft_otp.member_overview(leader)["metrics"]["rpcs_sent"] - sent0
    assert sent < 200, f"leader sent {sent} RPCs to catch up one follower"
