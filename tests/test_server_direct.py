"""Goal: direct dispatch (raft_otp.server.direct) runs a lone message's handler in the
calling thread only when the actor is idle, keeps one-at-a-time mailbox order, and a
handler failing there is the actor's crash (its supervisor restarts it)."""

from __future__ import annotations

import threading
import time

import pytest

from supervisors import ChildSpec, Supervisor
from supervisors.testing import Recorder, stop_all_roots
from raft_otp.server.direct import DirectDispatch


class Direct:
    """A message type the toy actor lets the caller run."""

    def __init__(self, tag: object) -> None:
        self.tag = tag


class Toy(DirectDispatch):
    DIRECT_TYPES = frozenset((Direct,))
    DRAIN_TYPES = frozenset((str,))

    def __init__(self, seen: list, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.seen = seen
        self.gate = gate
        self.inside = 0
        self.overlap = False

    def on_start(self) -> None:
        self.offer_direct(True)

    def on_receive(self, message: object) -> object:
        self.inside += 1
        self.overlap |= self.inside > 1
        try:
            tag = message.tag if isinstance(message, Direct) else message
            if tag == "block" and self.gate is not None:
                self.gate.wait(5)
            if tag == "crash":
                raise RuntimeError("boom")
            if tag == "slow":
                time.sleep(0.03)
            if tag == "queue-more":
                self.actor_ref.tell("drained")  # queued by the handling itself
            self.seen.append((tag, threading.current_thread().name))
            return tag
        finally:
            self.inside -= 1


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def test_an_idle_actor_runs_the_message_in_the_calling_thread():
    seen: list = []
    ref = Toy.start(seen)
    try:
        assert ref.try_direct(Direct("a")) is True
        assert seen == [("a", threading.current_thread().name)]
        assert ref.try_direct("not offered") is False  # only DIRECT_TYPES
    finally:
        ref.stop()


def test_what_the_handling_queued_for_the_actor_is_handled_too():
    seen: list = []
    ref = Toy.start(seen)
    try:
        assert ref.try_direct(Direct("queue-more"))
        me = threading.current_thread().name
        assert seen == [("queue-more", me), ("drained", me)]
    finally:
        ref.stop()


def test_a_busy_actor_or_a_queued_message_refuses_and_order_is_kept():
    seen: list = []
    gate = threading.Event()
    ref = Toy.start(seen, gate)
    try:
        ref.tell("block")           # the actor's thread is now inside a handler
        time.sleep(0.05)
        assert ref.try_direct(Direct("x")) is False
        ref.tell("after-block")     # queued behind
        gate.set()
        assert ref.ask("sync") == "sync"
        assert ref.try_direct(Direct("y")) is True  # idle again
        assert [t for t, _ in seen] == ["block", "after-block", "sync", "y"]
    finally:
        ref.stop()


def test_messages_from_many_threads_never_overlap():
    seen: list = []
    ref = Toy.start(seen)
    actor = ref._actor_weakref()

    def direct_sender(k: int) -> None:
        for i in range(300):
            if not ref.try_direct(Direct((k, i))):
                ref.tell(Direct((k, i)))

    def teller() -> None:
        for i in range(300):
            ref.tell(("t", i))

    threads = [threading.Thread(target=direct_sender, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=teller))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert ref.ask("sync") == "sync"
        assert not actor.overlap
        tags = [t for t, _ in seen if t != "sync"]
        assert len(tags) == 1200
        for k in range(3):  # each sender's messages in its order
            mine = [t[1] for t in tags if isinstance(t, tuple) and t[0] == k]
            assert mine == list(range(300))
        assert [t[1] for t in tags if isinstance(t, tuple) and t[0] == "t"] == list(range(300))
        assert 0 < actor.direct_handled <= 900
    finally:
        ref.stop()


def test_a_failure_in_a_direct_handling_is_the_actors_crash():
    seen: list = []
    sup = Supervisor([ChildSpec.actor("toy", Toy, seen)], strategy="one_for_one", intensity=3).start()
    rec = Recorder(sup)
    before = sup.child_ref("toy")
    assert before.try_direct(Direct("crash")) is True  # handled (and failed) here
    rec.wait("started", "toy")
    after = sup.child_ref("toy")
    assert after is not before and not before.is_alive()
    assert after.try_direct(Direct("ok")) is True
    assert seen[-1][0] == "ok"
    sup.stop()


def test_a_slow_handling_sends_the_actors_messages_back_to_its_thread(monkeypatch):
    """A handling slower than DIRECT_SLOW_S must not keep the I/O thread: the actor then
    refuses direct dispatch for a while (its thread takes its messages, in order), takes
    it again after, and a second slow handling soon after doubles the period."""
    from raft_otp.server import direct

    monkeypatch.setattr(direct, "SLOW_BACKOFF_S", 0.2)
    seen: list = []
    ref = Toy.start(seen)
    actor = ref._actor_weakref()
    me = threading.current_thread().name
    try:
        assert ref.try_direct(Direct("fast")) is True
        assert actor.direct_slow == 0
        assert ref.try_direct(Direct("slow")) is True  # handled here, but too slow
        assert actor.direct_slow == 1
        assert ref.try_direct(Direct("refused")) is False
        ref.tell(Direct("refused"))
        assert ref.ask("sync") == "sync"
        assert seen[-2][0] == "refused" and seen[-2][1] != me  # the actor's own thread
        time.sleep(0.25)
        assert ref.try_direct(Direct("back")) is True and seen[-1] == ("back", me)
        assert ref.try_direct(Direct("slow")) is True  # slow again within 2 periods
        assert actor.direct_slow == 2
        time.sleep(0.25)  # 0.2 s would have passed; the doubled 0.4 s has not
        assert ref.try_direct(Direct("still-off")) is False
        time.sleep(0.2)
        assert ref.try_direct(Direct("on-again")) is True
    finally:
        ref.stop()
