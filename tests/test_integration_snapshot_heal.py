"""Goal: a follower cut off long enough to need a snapshot catches up within seconds
of the partition healing (the snapshot sender fails fast while the peer's node is
down and restarts on its node_up, instead of waiting out the 30 s chunk timeout)."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

import raft_otp
from raft_otp.errors import RaftError
from raft_otp.system.harness import NodeProcs, running_nodes

pytestmark = pytest.mark.processes

KV = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": 50})
STATE = "raft_otp.system.queries:state"
CATCH_UP_S = 10.0


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("heal")), 3, extra_args=["--min-snapshot-interval", "64"]) as h:
        yield h


def _partition(h: NodeProcs, victim: int, on: bool) -> None:
    for i in range(3):
        if i == victim:
            continue
        h.admin(victim, ["set_fault", h[i].name, {"partitioned": on}])
        h.admin(i, ["set_fault", h[victim].name, {"partitioned": on}])


@pytest.mark.timeout(120)
def test_snapshot_catch_up_after_partition_heals(nodes: NodeProcs) -> None:
    ids = [nodes[i].sid("heal1") for i in range(3)]
    started, not_started = raft_otp.start_cluster("default", "heal1", KV, ids, timeout=20)
    assert not_started == []
    acked: dict[str, int] = {}
    reply, leader = raft_otp.process_command(ids[0], ["put", "k0", 0], timeout=10)
    acked["k0"] = 0
    victim = next(i for i in range(3) if ids[i] != leader)
    _partition(nodes, victim, True)
    try:
        for i in range(1, 300):  # release_cursor every 50 -> snapshots past the victim's log
            reply, leader = raft_otp.process_command(leader, ["put", f"k{i}", i], timeout=10)
            assert reply == ["ok"]
            acked[f"k{i}"] = i
        deadline = time.monotonic() + 20
        while raft_otp.key_metrics(leader)["snapshots_sent"] < 1:
            assert time.monotonic() < deadline, "the leader never started a snapshot for the victim"
            time.sleep(0.1)
        time.sleep(2.0)  # the sender has met the partition
    finally:
        _partition(nodes, victim, False)
    healed = time.monotonic()
    while True:
        try:
            if raft_otp.local_query(ids[victim], STATE, timeout=2)[0] == acked:
                break
        except RaftError:
            pass
        took = time.monotonic() - healed
        assert took < CATCH_UP_S, (
            f"victim not caught up {took:.1f} s after the heal: leader {raft_otp.key_metrics(leader)}, "
            f"victim {raft_otp.member_overview(ids[victim])['metrics']}")
        time.sleep(0.05)
    took = time.monotonic() - healed
    print(f"caught up {took:.2f} s after the heal")
    assert raft_otp.member_overview(ids[victim])["metrics"]["snapshots_installed"] >= 1
