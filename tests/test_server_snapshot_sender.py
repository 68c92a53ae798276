"""Goal: the snapshot sender keeps a bounded window of chunks in flight to a follower
(the real core, receiving), the follower applies them strictly in order, and a lost
chunk, a failing read or a newer term ends in SnapshotSenderFailed (the server's
retry), never in a partly installed snapshot; the retry then installs it whole."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from raft_otp.core import events as ev
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.machines.kv import KeyValue
from raft_otp.server import snapshot_sender as ss
from raft_otp.testing.harness import Node, sent, sid

A, B = sid("a"), sid("b")
CHUNK = 100
KV_STATE = {f"k{i}": "v" * (i % 17) for i in range(120)}
META = SnapshotMeta(10, 1, {"members": [[s.name, s.node, "voter"] for s in (A, B, sid("c"))],
                            "sessions": []}, 0)


class _Server:
    """Stands in for the leader's server actor: what the sender tells it."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()

    def tell(self, msg: Any) -> None:
        self.q.put(msg)


class _Link:
    """The wire from the sender to the follower: chunks queue here, in send order."""

    def __init__(self) -> None:
        self.q: queue.Queue[ev.InstallSnapshotRpc] = queue.Queue()
        self.acked = 0          # highest chunk acknowledgement handed to the sender
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def send(self, to: Any, rpc: Any) -> None:
        assert to == B and isinstance(rpc, ev.InstallSnapshotRpc)
        with self.lock:
            self.max_in_flight = max(self.max_in_flight, rpc.chunk_num - self.acked)
        self.q.put(rpc)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


@pytest.fixture
def link(monkeypatch) -> _Link:
    lk = _Link()
    monkeypatch.setattr(ss._core, "send", lk.send)
    return lk


def _start(chunks: Any, timeout_s: float = 5.0, window: int = 4) -> tuple[Any, _Server]:
    server = _Server()
    ref = ss.SnapshotSender.start(server, A, B, 1, META, iter(chunks), timeout_s, window=window)
    return ref, server


def _pump(link: _Link, follower: Node, ref: Any, server: _Server, drop: set[int] = frozenset(),
          timeout_s: float = 10.0) -> Any:
    """Deliver chunks in order to the follower's core and its answers to the sender,
    until the sender reports to its server; that report."""
    dropped: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            report = server.q.get_nowait()
        except queue.Empty:
            pass
        else:  # the sender names itself, so the server can ignore a replaced sender's report
            assert isinstance(report, ss.SenderReport) and report.urn == ref.actor_urn
            return report.event
        try:
            rpc = link.q.get(timeout=0.02)
        except queue.Empty:
            continue
        if rpc.chunk_num in drop and rpc.chunk_num not in dropped:
            dropped.add(rpc.chunk_num)  # lost on the wire, once
            continue
        for _to, res in sent(follower(rpc), ev.InstallSnapshotResult):
            with link.lock:
                if res.last_index == 0:
                    link.acked = max(link.acked, res.chunk_num)
            ref.tell(res)
    raise AssertionError("the sender never reported")


def _follower() -> Node:
    return Node("b", ["a", "b", "c"], term=1, machine=KeyValue({}))


def test_a_window_of_chunks_in_flight_installs_in_order(link):
    data = KeyValue({}).snapshot_encode(KV_STATE)
    chunks = _chunks(data)
    assert len(chunks) > 10
    follower = _follower()
    ref, server = _start(chunks, window=4)
    deadline = time.monotonic() + 5
    while link.q.qsize() < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert link.q.qsize() == 4  # the window, before any acknowledgement
    got = _pump(link, follower, ref, server)
    assert got == ev.SnapshotSenderDone(B, META.index)
    assert 1 < link.max_in_flight <= 4
    assert follower.s.role == "follower" and follower.s.last_applied == META.index
    assert follower.s.machine_state == KV_STATE


def test_a_lost_chunk_fails_the_transfer_without_installing_and_the_retry_installs(link):
    data = KeyValue({}).snapshot_encode(KV_STATE)
    follower = _follower()
    ref, server = _start(_chunks(data), timeout_s=0.3, window=4)
    got = _pump(link, follower, ref, server, drop={3})
    assert got == ev.SnapshotSenderFailed(B)
    assert follower.s.role == "receive_snapshot"  # chunks after the gap were not applied
    assert follower.s.last_applied == 0 and follower.s.machine_state == {}
    while not link.q.empty():  # what the failed sender had in flight still arrives
        for _to, res in sent(follower(link.q.get()), ev.InstallSnapshotResult):
            assert res.last_index == 0
    assert follower.s.last_applied == 0
    link.acked = 0
    ref2, server2 = _start(_chunks(data), window=4)  # the server's retry: from chunk 1
    assert _pump(link, follower, ref2, server2) == ev.SnapshotSenderDone(B, META.index)
    assert follower.s.role == "follower" and follower.s.machine_state == KV_STATE


def test_a_failing_read_fails_the_transfer(link):
    def chunks():
        yield b"x" * CHUNK
        yield b"y" * CHUNK
        raise OSError("disk gone")

    follower = _follower()
    ref, server = _start(chunks(), window=1)
    assert _pump(link, follower, ref, server) == ev.SnapshotSenderFailed(B)
    assert follower.s.last_applied == 0


def test_stale_acknowledgements_are_ignored_and_a_newer_term_fails(link):
    chunks = _chunks(b"z" * (CHUNK * 10))
    ref, server = _start(chunks, window=2)
    deadline = time.monotonic() + 5
    while link.q.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    ref.tell(ev.InstallSnapshotResult(1, B, 7, 0, 0))        # a chunk not sent yet
    ref.tell(ev.InstallSnapshotResult(1, B, 2, 5, 1))        # an earlier, smaller snapshot's install
    ref.tell(ev.InstallSnapshotResult(1, B, 0, 0, 0))
    time.sleep(0.2)
    assert link.q.qsize() == 2 and server.q.empty()
    ref.tell(ev.InstallSnapshotResult(1, B, 1, 0, 0))        # chunk 1 arrived: one more goes
    deadline = time.monotonic() + 5
    while link.q.qsize() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert link.q.qsize() == 3 and [link.q.get().chunk_num for _ in range(3)] == [1, 2, 3]
    ref.tell(ev.InstallSnapshotResult(2, B, 2, 0, 0))        # the follower is in a newer term
    report = server.q.get(timeout=5)
    assert isinstance(report, ss.SenderReport) and report.urn == ref.actor_urn
    assert report.event == ev.SnapshotSenderFailed(B)


def test_a_follower_that_already_has_the_snapshot_ends_the_transfer(link):
    follower = _follower()
    follower.s.last_applied = META.index  # applied that far already
    follower.s.commit_index = META.index
    ref, server = _start(_chunks(b"q" * (CHUNK * 20)), window=4)
    assert _pump(link, follower, ref, server) == ev.SnapshotSenderDone(B, META.index)


def test_a_late_result_for_a_sender_that_has_stopped_does_not_crash_the_leader(tmp_path):
    """Issue 19: a sender that ended (done, failed, or stopped on NodeDown) is still
    tracked until its report is handled; an InstallSnapshotResult handled first was
    told to the dead actor and crashed the leader (pykka.ActorDeadError)."""
    import raft_otp
    from raft_otp import ServerId
    from raft_otp.machines.counter import Counter
    from supervisors import registry
    from supervisors._watch import actor_of

    s = raft_otp.start_in(str(tmp_path / "d"), name=f"ls{time.monotonic_ns()}")
    ids = [ServerId(f"{s.name}_{i}", raft_otp.node_name()) for i in range(3)]
    try:
        raft_otp.start_cluster(s, "c", (Counter, None), ids)
        _, leader = raft_otp.process_command(ids[0], ["incr"])
        peer = next(i for i in ids if i != leader)
        ref = registry.whereis(leader.name)
        actor = actor_of(ref)
        nobody = ServerId("nobody", raft_otp.node_name())  # its chunk goes nowhere
        dead = ss.SnapshotSender.start(_Server(), leader, nobody, 1, META, iter([b"x"]), 5.0)
        dead.stop()  # ended by itself; its report not handled yet
        actor.transfers.senders[peer] = dead
        ref.tell(ev.InstallSnapshotResult(1, peer, 1, 0, 0))  # a late acknowledgement
        raft_otp.member_overview(leader)  # handled by now (one mailbox, in order)
        assert ref.is_alive() and registry.whereis(leader.name) is ref, "the leader crashed"
        assert raft_otp.process_command(leader, ["incr"])[0] == 2
    finally:
        raft_otp.stop_system(s)
