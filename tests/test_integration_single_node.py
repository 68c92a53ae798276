"""Goal: the README's single-node counter works end to end on the real log, in-process."""

from __future__ import annotations

import queue
import time

import pytest

import raft_otp
from raft_otp import Machine, ServerId
from raft_otp.node.mailbox import Mailbox


class Counter(Machine):
    def init(self, config):  # type: ignore[no-untyped-def]
        return 0

    def apply(self, meta, command, state):  # type: ignore[no-untyped-def]
        if command == ["incr"]:
            return state + 1, state + 1
        if command == ["get"]:
            return state, state
        return state, ["unknown", command]


def get_count(state):  # type: ignore[no-untyped-def]
    return state



def test_readme_counter(system) -> None:  # type: ignore[no-untyped-def]
    ids = [ServerId("s1_" + system.name, raft_otp.node_name())]
    started, not_started = raft_otp.start_cluster(system, "counter", (Counter, {}), ids)
    assert started == ids and not_started == []
    reply, leader = raft_otp.process_command(ids[0], ["incr"])
    assert reply == 1 and leader == ids[0]
    assert raft_otp.process_command(ids[0], ["incr"])[0] == 2
    assert raft_otp.local_query(ids[0], get_count)[0] == 2
    assert raft_otp.leader_query(ids[0], lambda s: s * 10)[0] == 20
    assert raft_otp.consistent_query(ids[0], f"{__name__}:get_count")[0] == 2
    members, leader = raft_otp.members(ids[0])
    assert members == ids and leader == ids[0]
    m = raft_otp.key_metrics(ids[0])
    assert m["commands"] >= 2 and m["commit_index"] >= 3 and m["term"] >= 1
    ov = raft_otp.overview(system)
    assert ov["servers"][ids[0].name]["role"] == "leader"


def test_pipeline_notifications(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("p1_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "pipe", (Counter, None), [sid])
    q: queue.Queue = queue.Queue()
    n = 500
    for i in range(n):
        raft_otp.pipeline_command(sid, ["incr"], i, q)
    got: dict[int, int] = {}
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        msg = q.get(timeout=5)
        assert isinstance(msg, raft_otp.Applied)
        got.update(dict(msg.replies))
    assert sorted(got) == list(range(n))
    assert sorted(got.values()) == list(range(1, n + 1))


def test_restart_server_recovers_state(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("r1_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "r", (Counter, None), [sid])
    for _ in range(5):
        raft_otp.process_command(sid, ["incr"])
    raft_otp.stop_server(system, sid)
    with pytest.raises(raft_otp.ServerNotFound):
        raft_otp.process_command(sid, ["incr"], timeout=0.5)
    raft_otp.restart_server(system, sid)
    assert raft_otp.process_command(sid, ["incr"], timeout=10)[0] == 6


def test_a_stopped_server_stays_stopped_when_its_system_restarts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, name = str(tmp_path / "data"), f"t{time.monotonic_ns()}"
    s = raft_otp.start_in(data, name=name)
    sid = ServerId("st1_" + name, raft_otp.node_name())
    other = ServerId("st2_" + name, raft_otp.node_name())
    try:
        raft_otp.start_cluster(s, "st1", (Counter, None), [sid])
        raft_otp.start_cluster(s, "st2", (Counter, None), [other])
        for _ in range(3):
            raft_otp.process_command(sid, ["incr"])
        raft_otp.process_command(other, ["incr"])
        raft_otp.stop_server(s, sid)
    finally:
        raft_otp.stop_system(s)
    s = raft_otp.start_in(data, name=name)
    try:
        assert raft_otp.process_command(other, ["incr"], timeout=10)[0] == 2  # recovered
        with pytest.raises(raft_otp.ServerNotFound):
            raft_otp.process_command(sid, ["incr"], timeout=0.5)
        assert raft_otp.overview(s)["servers"][sid.name]["role"] == "stopped"
        raft_otp.restart_server(s, sid)
        assert raft_otp.process_command(sid, ["incr"], timeout=10)[0] == 4
    finally:
        raft_otp.stop_system(s)
    s = raft_otp.start_in(data, name=name)  # restarted: running again after a node restart
    try:
        assert raft_otp.process_command(sid, ["incr"], timeout=10)[0] == 5
    finally:
        raft_otp.stop_system(s)


def test_pipeline_notifications_to_an_actor_and_a_callback(system) -> None:  # type: ignore[no-untyped-def]
    import threading

    import pykka

    got: list = []
    done = threading.Event()

    class Sink(pykka.ThreadingActor):
        def on_receive(self, message):  # type: ignore[no-untyped-def]
            got.extend(message.replies)
            if len(got) >= 20:
                done.set()

    sid = ServerId("pa_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "pa", (Counter, None), [sid])
    sink = Sink.start()
    try:
        for i in range(20):
            raft_otp.pipeline_command(sid, ["incr"], i, sink)
        assert done.wait(10)
        assert sorted(c for c, _ in got) == list(range(20))
        seen: list = []
        ev_ = threading.Event()
        raft_otp.pipeline_commands(sid, [(["incr"], "a"), (["incr"], "b")],
                                   lambda m: (seen.extend(m.replies), ev_.set()))
        assert ev_.wait(10)
        while len(seen) < 2:
            time.sleep(0.01)
        assert [c for c, _ in seen] == ["a", "b"]
        with Mailbox() as mbox:  # a node Mailbox object given directly for a local leader
            raft_otp.pipeline_commands(sid, [(["incr"], "m1"), (["incr"], "m2")], mbox)
            replies: list = []
            while len(replies) < 2:
                replies += mbox.get(10).replies
            assert replies == [("m1", 23), ("m2", 24)]
        raft_otp.pipeline_command(sid, ["incr"])  # no correlation, no notify: fire and forget
        assert raft_otp.process_command(sid, ["get"])[0] == 25
    finally:
        sink.stop()
