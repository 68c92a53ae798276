"""Goal: on 3 OS processes, a cluster whose machine takes 80 ms per apply does not hold up
another cluster on the same nodes: a slow server's steps run on the scheduler's pool, not
on the node's delivering threads (the I/O thread, which serves every cluster and the
heartbeats, and the WAL's notifier), after one slow step there
(``supervisors.scheduler``'s inline policy, metric ``slow_steps``)."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Iterator

import pytest

import raft_otp
from raft_otp.system.harness import NodeProcs, running_nodes

pytestmark = pytest.mark.processes

COUNTER = ("raft_otp.machines.counter:Counter", {})
SLEEPER = ("raft_otp.testing.slow_machine:Sleeper", {})


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("slowiso")), 3) as h:
        yield h


def test_a_slow_machine_does_not_hold_up_the_other_clusters(nodes: NodeProcs) -> None:
    slow = [nodes[i].sid("slow1") for i in range(3)]
    fast = [nodes[i].sid("fast1") for i in range(3)]
    for name, machine, ids in (("slow1", SLEEPER, slow), ("fast1", COUNTER, fast)):
        _started, not_started = raft_otp.start_cluster("default", name, machine, ids, timeout=20)
        assert not_started == []
    _n, fast_leader = raft_otp.process_command(fast[0], ["incr"], timeout=10)
    raft_otp.process_command(slow[0], ["count"], timeout=10)

    stop = threading.Event()
    slow_done: list[int] = []
    errors: list[BaseException] = []

    def slow_load() -> None:
        leader = slow[0]
        try:
            while not stop.is_set():
                reply, leader = raft_otp.process_command(leader, ["sleep", 80], timeout=10)
                slow_done.append(reply)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    loader = threading.Thread(target=slow_load, daemon=True)
    loader.start()
    try:
        time.sleep(0.5)  # every node has applied slow commands by now
        lat = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            _n, fast_leader = raft_otp.process_command(fast_leader, ["incr"], timeout=10)
            lat.append(time.perf_counter() - t)
    finally:
        stop.set()
        loader.join(15)
    assert not errors, errors
    assert len(slow_done) >= 10  # the slow cluster kept working meanwhile
    # Unhindered, a command here takes 1-3 ms; generous bound for a loaded host.
    assert statistics.median(lat) < 0.015, sorted(lat)[len(lat) // 2 - 5: len(lat) // 2 + 5]
    # Where the slow applies ran: after its first slow inline step, a node runs a slow
    # server's steps on the scheduler's pool for 1 s, then 2 s, ...; with 20+ applies
    # per replica in 3.5 s, at most a few can have run on a delivering thread.
    for sid in slow:
        total, _ = raft_otp.local_query(sid, "raft_otp.testing.slow_machine:applied", timeout=5)
        on_io, _ = raft_otp.local_query(sid, "raft_otp.testing.slow_machine:io_applies", timeout=5)
        assert total >= 10 and on_io <= 4, (sid, total, on_io)
    slow_handlings = sum(raft_otp.member_overview(sid, timeout=5)["metrics"]["slow_steps"] for sid in slow)
    assert slow_handlings >= 3, slow_handlings  # each node noticed at least once
    assert all(raft_otp.member_overview(sid, timeout=5)["metrics"]["slow_steps"] == 0 for sid in fast)
