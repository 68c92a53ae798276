"""Goal: the server actor batches commands, runs no timers on idle followers, and
recovers from its own crash and from a dead local leader (3 members in one process)."""

from __future__ import annotations

import random
import time
from typing import Any, Iterator

import pytest
from supervisors import registry

import raft_otp
from raft_otp import ServerId
from raft_otp.core import events as ev
from raft_otp.machines.counter import Counter
from raft_otp.server.messages import ReplySlot
from raft_otp.server.timeouts import election_timeout_ms


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[tuple[raft_otp.System, list[ServerId]]]:
    s = raft_otp.start_in(str(tmp_path / "d"), name=f"sa{time.monotonic_ns()}")
    ids = [ServerId(f"{s.name}_{i}", raft_otp.node_name()) for i in range(3)]
    try:
        started, _ = raft_otp.start_cluster(s, "c", (Counter, None), ids)
        assert started == ids
        yield s, ids
    finally:
        raft_otp.stop_system(s)


def _leader(ids: list[ServerId], timeout: float = 5.0, exclude: ServerId | None = None) -> ServerId:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sid in ids:
            if sid == exclude:
                continue
            try:
                if raft_otp.member_overview(sid, timeout=1)["role"] == "leader":
                    return sid
            except raft_otp.RaftError:
                pass
        time.sleep(0.01)
    raise AssertionError("no leader")


def test_timeout_classes() -> None:
    rng = random.Random(1)
    for _ in range(200):
        assert 1 <= election_timeout_ms("leader_down", 100, rng) <= 100
        assert 101 <= election_timeout_ms("connection_lost", 100, rng) <= 600
        assert 101 <= election_timeout_ms("candidate", 100, rng) <= 1100
        assert 1001 <= election_timeout_ms("pre_vote", 100, rng) <= 2000
    assert election_timeout_ms("receive_snapshot", 100, rng, 30_000) == 30_000
    with pytest.raises(ValueError):
        election_timeout_ms("nope", 100, rng)


def test_queued_commands_become_one_batch(cluster: tuple[raft_otp.System, list[ServerId]]) -> None:
    _, ids = cluster
    leader = _leader(ids)
    ref = registry.whereis(leader.name)
    before = raft_otp.key_metrics(leader)
    slots = [ReplySlot() for _ in range(2000)]
    for sl in slots:
        ref.tell(ev.Command(["incr"], sl))
    for sl in slots:
        assert sl.wait(10)
    assert sorted(sl.value.value for sl in slots)[-1] >= 2000
    after = raft_otp.key_metrics(leader)
    commands = after["commands"] - before["commands"]
    batches = after["command_batches"] - before["command_batches"]
    assert commands == 2000
    assert batches < 2000 // 4, f"{batches} batches for 2000 queued commands"


def test_idle_followers_run_no_timers(cluster: tuple[raft_otp.System, list[ServerId]]) -> None:
    _, ids = cluster
    leader = _leader(ids)
    raft_otp.process_command(leader, ["incr"])
    deadline = time.monotonic() + 5
    while True:
        followers = [raft_otp.member_overview(s) for s in ids if s != leader]
        if all(ServerId(*o["leader"]) == leader and not o["timers"]["election"] and
               o["timers"]["tick_ms"] is None for o in followers):
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert raft_otp.member_overview(leader)["timers"]["tick_ms"] is not None  # only the leader ticks


def test_dead_local_leader_is_replaced_fast(cluster: tuple[raft_otp.System, list[ServerId]]) -> None:
    s, ids = cluster
    leader = _leader(ids)
    assert raft_otp.process_command(leader, ["incr"])[0] == 1
    t0 = time.monotonic()
    raft_otp.stop_server(s, leader)
    new = _leader(ids, exclude=leader)
    assert time.monotonic() - t0 < 2.0  # monitor -> leader_down class (1..100 ms) + election
    assert raft_otp.process_command(new, ["incr"])[0] == 2
    raft_otp.restart_server(s, leader)
    deadline = time.monotonic() + 5
    while raft_otp.local_query(leader, lambda st: st)[0] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_server_crash_is_restarted_and_recovers(cluster: tuple[raft_otp.System, list[ServerId]]) -> None:
    _, ids = cluster
    leader = _leader(ids)
    for _ in range(5):
        raft_otp.process_command(leader, ["incr"])
    victim = next(s for s in ids if s != leader)
    old = registry.whereis(victim.name)
    old.tell(object())  # unknown message: ignored, not a crash
    from raft_otp.node.admin import kill
    kill(victim.name)  # abnormal exit, as exit(Pid, kill)
    deadline = time.monotonic() + 5
    while registry.whereis(victim.name) in (None, old):
        assert time.monotonic() < deadline, "server actor was not restarted"
        time.sleep(0.01)
    raft_otp.process_command(leader, ["incr"])
    while raft_otp.local_query(victim, lambda st: st)[0] != 6:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_replaced_snapshot_senders_late_report_leaves_the_current_one_tracked(
        cluster: tuple[raft_otp.System, list[ServerId]]) -> None:
    from supervisors._watch import actor_of

    from raft_otp.server.snapshot_sender import SenderReport

    _s, ids = cluster
    leader = _leader(ids)
    peer = next(i for i in ids if i != leader)
    actor = actor_of(registry.whereis(leader.name))

    class _Current:
        actor_urn = "urn:current"

        def stop(self, block: bool = True) -> None:
            pass

    current = _Current()
    actor.transfers.senders[peer] = current  # the server tracks a sender it started last
    ref = registry.whereis(leader.name)
    ref.tell(SenderReport("urn:replaced", ev.SnapshotSenderFailed(peer)))  # an older one's failure
    raft_otp.member_overview(leader)  # handled by now (one mailbox, in order)
    assert actor.transfers.senders.get(peer) is current
    ref.tell(SenderReport("urn:current", ev.SnapshotSenderFailed(peer)))  # the current one's own
    raft_otp.member_overview(leader)
    assert peer not in actor.transfers.senders
