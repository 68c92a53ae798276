"""Goal: a ScheduledActor behaves as a pykka ThreadingActor from the outside while a bounded,
fair pool runs it; take_queued, handle_slice and CallbackFuture do what they promise."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

import supervisors
from supervisors import ChildSpec, Supervisor, kill, monitor
from supervisors.scheduler import (CallbackFuture, Envelope, ScheduledActor, Scheduler,
                                   configure_default, default_scheduler)
from supervisors.testing import Probe, stop_all_roots

ROOT = Path(__file__).resolve().parents[1]
T = 10.0  # seconds any wait may take before the test fails


@pytest.fixture
def sched():
    s = Scheduler(threads=2, slice_budget=8, name="tsched").start()
    yield s
    pykka.ActorRegistry.stop_all()
    assert stop_all_roots() == []
    assert s.stop(T)


def actor_type(sched: Scheduler, base: type = None, **attrs: Any) -> type:
    """A subclass of ``base`` (default Worker) hosted by ``sched``."""
    return type("Hosted", (base or Worker,), {"scheduler": sched, **attrs})


class Worker(ScheduledActor):
    """Records what it handles; 'crash' raises; ('block', ev, entered) blocks its slice."""

    def __init__(self, log: queue.Queue | None = None) -> None:
        super().__init__()
        self.log = log if log is not None else queue.Queue()
        self.seen: list[Any] = []
        self.inside = 0
        self.max_inside = 0
        self.threads: set[str] = set()

    def on_start(self) -> None:
        self.log.put(("start", threading.current_thread().name, list(self.seen)))

    def on_stop(self) -> None:
        self.log.put(("stop",))

    def on_failure(self, *exc_info: Any) -> None:
        self.log.put(("failure", exc_info[1]))

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        try:
            self.threads.add(threading.current_thread().name)
            if message == "crash":
                raise RuntimeError("crashed on purpose")
            if isinstance(message, _AskOther):
                message = message.other.ask(message.message, timeout=message.timeout)
            if isinstance(message, tuple) and message[0] == "block":
                message[2].set()
                message[1].wait(T)
            self.seen.append(message)
            return ("got", message)
        finally:
            self.inside -= 1

    def add(self, a: int, b: int) -> int:
        return a + b


def test_tell_ask_proxy_and_on_start_first_on_a_pool_thread(sched):
    log: queue.Queue = queue.Queue()
    ref = actor_type(sched).start(log)
    ref.tell("a")
    assert ref.ask("b", timeout=T) == ("got", "b")
    kind, thread, seen_then = log.get(timeout=T)
    assert kind == "start" and thread.startswith("tsched-") and seen_then == []
    proxy = ref.proxy()
    assert proxy.add(2, 3).get(timeout=T) == 5
    assert proxy.seen.get(timeout=T) == ["a", "b"]
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert isinstance(ref.ask("c", block=False), CallbackFuture)


def test_stop_block_and_messages_after_stop(sched):
    log: queue.Queue = queue.Queue()
    ref = actor_type(sched).start(log)
    for i in range(20):
        ref.tell(i)
    assert ref.stop(block=True, timeout=T) is True
    assert not ref.is_alive()
    assert [m[0] for m in drain(log)] == ["start", "stop"]
    assert ref.stop(block=True, timeout=T) is False  # already dead
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=T)
    with pytest.raises(pykka.ActorDeadError):  # even straight into the inbox after teardown
        ref.actor_inbox.put(Envelope("late"))
    fut: CallbackFuture = CallbackFuture()
    ref.actor_inbox.put(Envelope("late", reply_to=fut))
    with pytest.raises(pykka.ActorDeadError):
        fut.get(timeout=0)


def test_queued_messages_before_a_stop_are_handled_and_asks_after_it_fail(sched):
    release, entered = threading.Event(), threading.Event()
    ref = actor_type(sched).start()
    ref.tell(("block", release, entered))
    assert entered.wait(T)
    before = ref.ask("before", block=False)
    stopped = ref.stop(block=False)
    after = ref.ask("after", block=False)  # queued behind the stop
    release.set()
    assert before.get(timeout=T) == ("got", "before")
    assert stopped.get(timeout=T) is True
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=T)


def test_exception_in_a_tell_is_the_failure_and_in_an_ask_goes_to_the_caller(sched):
    log: queue.Queue = queue.Queue()
    ref = actor_type(sched).start(log)
    with pytest.raises(RuntimeError, match="on purpose"):
        ref.ask("crash", timeout=T)
    assert ref.ask("still", timeout=T) == ("got", "still")
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    ref.tell("crash")
    reason = downs.get(timeout=T).reason
    assert isinstance(reason, RuntimeError)
    assert [m[0] for m in drain(log)] == ["start", "failure"]  # on_failure, and no on_stop
    assert not ref.is_alive() and pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_exit_reasons_normal_killed_shutdown(sched):
    cls = actor_type(sched)
    reasons: queue.Queue = queue.Queue()
    a, b = cls.start(), cls.start()
    monitor(a, reasons.put)
    monitor(b, reasons.put)
    a.stop()
    assert reasons.get(timeout=T).reason == "normal"
    kill(b)
    assert reasons.get(timeout=T).reason == "killed"
    sup = Supervisor([ChildSpec.actor("w", cls)]).start()
    monitor(sup.child_ref("w"), reasons.put)
    sup.stop(T)
    assert reasons.get(timeout=T).reason == "shutdown"
    got = []
    monitor(a, got.append)  # already dead
    assert got[0].reason == "noproc"


def test_system_exit_in_on_start_or_a_handler_stops_every_actor(sched):
    class Quits(Worker):
        def __init__(self, quit_on_start: bool) -> None:
            super().__init__()
            self.quit_on_start = quit_on_start

        def on_start(self) -> None:
            if self.quit_on_start:
                raise SystemExit(3)

        def on_receive(self, message: Any) -> Any:
            if message == "quit":
                raise SystemExit(4)
            return super().on_receive(message)

    cls = actor_type(sched, Quits)
    for trigger in ("quit on start", "quit"):
        bystander = actor_type(sched).start()
        downs: queue.Queue = queue.Queue()
        ref = cls.start(trigger == "quit on start")
        monitor(ref, downs.put)
        monitor(bystander, downs.put)
        if trigger == "quit":
            ref.tell("quit")
        got = {d.target: d.reason for d in (downs.get(timeout=T), downs.get(timeout=T))}
        assert isinstance(got[ref], SystemExit) and got[ref].code == (3 if trigger != "quit" else 4)
        assert got[bystander] == "normal" and not bystander.is_alive()


def test_kill_after_the_current_message_skips_on_stop(sched):
    log: queue.Queue = queue.Queue()
    release, entered = threading.Event(), threading.Event()
    ref = actor_type(sched).start(log)
    ref.tell(("block", release, entered))
    assert entered.wait(T)
    queued = ref.ask("queued", block=False)
    kill(ref)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=T)
    assert [m[0] for m in drain(log)] == ["start"]


def test_one_message_at_a_time_in_mailbox_order_from_many_threads(sched):
    ref = actor_type(sched).start()
    senders, per_sender = 6, 300

    def send(k: int) -> None:
        for i in range(per_sender):
            ref.tell((k, i))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    seen = ref.proxy().seen.get(timeout=T)
    assert len(seen) == senders * per_sender
    for k in range(senders):
        assert [i for (s, i) in seen if s == k] == list(range(per_sender))
    assert ref.proxy().max_inside.get(timeout=T) == 1


def test_a_flooded_actor_delays_another_by_at_most_a_slice():
    sched = Scheduler(threads=1, slice_budget=8, name="fair").start()
    try:
        cls = actor_type(sched)
        gate, flooded, other = cls.start(), cls.start(), cls.start()
        for ref in (gate, flooded, other):  # all started: nothing else in the run queue
            ref.ask("ready", timeout=T)
        release, entered = threading.Event(), threading.Event()
        gate.tell(("block", release, entered))
        assert entered.wait(T)  # the only pool thread is held
        for i in range(1000):
            flooded.tell(i)  # queued first, with a full mailbox
        flooded_actor = supervisors._watch.actor_of(flooded)
        answer = other.ask("hello", block=False)  # queued behind it
        count_then: list[int] = []  # read on the pool thread, right after "hello"
        answer.add_done_callback(lambda f: count_then.append(len(flooded_actor.seen)))
        release.set()
        assert answer.get(timeout=T) == ("got", "hello")
        assert count_then[0] == 1 + sched.slice_budget  # "ready" + one slice, then the tail
        assert flooded.ask("last", timeout=T) == ("got", "last")
        assert len(flooded_actor.seen) == 1002
    finally:
        pykka.ActorRegistry.stop_all()
        sched.stop(T)


def test_actors_asking_actors_on_a_one_thread_pool_do_not_deadlock():
    sched = Scheduler(threads=1, name="asks").start()
    try:
        cls = actor_type(sched)
        asker, answerer = cls.start(), cls.start()
        proxy = asker.proxy()
        # the asker's handler blocks in ask() on the only pool thread; the answerer runs
        # inside that wait, on the same thread
        got = asker.ask(_AskOther(answerer, "q"), timeout=T)
        assert got == ("got", ("got", "q"))
        stuck, release = Probe.start("stuck"), threading.Event()  # a thread of its own
        stuck.tell(("block", release))
        with pytest.raises(pykka.Timeout):  # nothing to help with: the timeout still holds
            asker.ask(_AskOther(stuck, "never", 0.2), timeout=T)
        release.set()
        assert proxy.add(1, 1).get(timeout=T) == 2
    finally:
        pykka.ActorRegistry.stop_all()
        sched.stop(T)


class _AskOther:
    """A message that makes a Worker ask another actor and return its answer."""

    def __init__(self, other: Any, message: Any, timeout: float = T) -> None:
        self.other, self.message, self.timeout = other, message, timeout


def test_ten_thousand_actors_share_a_bounded_pool(sched):
    before = threading.active_count()
    cls = actor_type(sched)
    refs = [cls.start() for _ in range(10_000)]
    futures = [r.ask(i, block=False) for i, r in enumerate(refs)]
    assert [f.get(timeout=T) for f in futures[:: 997]] == [("got", i) for i in range(0, 10_000, 997)]
    pykka.get_all(futures, timeout=30)
    assert threading.active_count() <= before  # the pool's 2 threads existed already
    stats = sched.stats()
    assert stats["threads"] == 2 and stats["messages"] >= 10_000 and stats["max_queued"] > 2
    assert all(pykka.get_all([r.stop(block=False) for r in refs], timeout=30))


def test_take_queued_and_mailbox_size(sched):
    class Batcher(Worker):
        slice_budget = 1  # the current slice's envelopes are not in the mailbox

        def on_receive(self, message: Any) -> Any:
            if message == "batch":
                size = self.mailbox_size()
                took = self.take_queued(lambda e: isinstance(e.message, int), 3)
                for e in took:
                    if e.reply_to is not None:
                        e.reply_to.set(("batched", e.message))
                return size, [e.message for e in took]
            return super().on_receive(message)

    ref = actor_type(sched, Batcher).start()
    release, entered = threading.Event(), threading.Event()
    ref.tell(("block", release, entered))
    assert entered.wait(T)
    batch = ref.ask("batch", block=False)
    ref.tell(1)
    two = ref.ask(2, block=False)
    ref.tell(3)
    ref.tell(4)  # beyond the limit of 3
    ref.tell("x")
    release.set()
    assert batch.get(timeout=T) == (5, [1, 2, 3])
    assert two.get(timeout=T) == ("batched", 2)
    assert ref.proxy().seen.get(timeout=T)[-2:] == [4, "x"]
    second = ref.ask("batch", timeout=T)
    assert second == (0, [])
    # leading only: an unaccepted envelope first stops the take
    ref.tell(("block", release2 := threading.Event(), entered2 := threading.Event()))
    assert entered2.wait(T)
    batch = ref.ask("batch", block=False)
    ref.tell("y")
    ref.tell(5)
    release2.set()
    assert batch.get(timeout=T) == (2, [])


def test_handle_slice_gets_up_to_a_budget_and_a_raise_is_the_failure(sched):
    class Slicer(Worker):
        slice_budget = 5

        def handle_slice(self, envelopes: list[Any]) -> None:
            self.log.put(("slice", [e.message for e in envelopes]))
            if any(e.message == "explode" for e in envelopes):
                raise RuntimeError("slice exploded")
            super().handle_slice(envelopes)

    log: queue.Queue = queue.Queue()
    ref = actor_type(sched, Slicer).start(log)
    assert log.get(timeout=T)[0] == "start"
    release, entered = threading.Event(), threading.Event()
    ref.tell(("block", release, entered))
    assert entered.wait(T)
    for i in range(7):
        ref.tell(i)
    sync = ref.ask("sync", block=False)
    release.set()
    assert sync.get(timeout=T) == ("got", "sync")
    slices = [m[1] for m in drain(log) if m[0] == "slice"]
    assert slices[1:] == [[0, 1, 2, 3, 4], [5, 6, "sync"]]
    entered.clear()
    release.clear()
    ref.tell(("block", release, entered))
    assert entered.wait(T)
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    same_slice = ref.ask("same", block=False)
    ref.tell("explode")
    stopper = ref.stop(block=False)
    release.set()
    reason = downs.get(timeout=T).reason
    assert isinstance(reason, RuntimeError) and "exploded" in str(reason)
    with pytest.raises(pykka.ActorDeadError):  # in the failed slice, unanswered
        same_slice.get(timeout=T)
    assert stopper.get(timeout=T) is True  # a queued stop-ask is answered None (pykka's teardown)


def test_callback_future():
    fut: CallbackFuture = CallbackFuture()
    calls: list[Any] = []

    def broken(f: CallbackFuture) -> None:
        raise ValueError("a broken callback")

    fut.add_done_callback(lambda f: calls.append(("first", f.get(timeout=0))))
    fut.add_done_callback(broken)
    fut.add_done_callback(lambda f: calls.append(("third", threading.current_thread().name)))
    assert not fut.done() and calls == []
    setter = threading.Thread(target=fut.set, args=(42,), name="setter")
    setter.start()
    setter.join(T)
    assert fut.done() and calls == [("first", 42), ("third", "setter")]
    fut.add_done_callback(lambda f: calls.append(("late", threading.current_thread().name)))
    assert calls[-1] == ("late", threading.current_thread().name)  # at once, in the caller
    failed: CallbackFuture = CallbackFuture()
    got: list[Any] = []

    def read(f: CallbackFuture) -> None:
        try:
            f.get(timeout=0)
        except KeyError as exc:
            got.append(exc)

    failed.add_done_callback(read)
    try:
        raise KeyError("k")
    except KeyError:
        failed.set_exception()
    assert isinstance(got[0], KeyError)


def test_supervised_threading_actors_get_the_callback_future():
    class Plain(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    sup = Supervisor([ChildSpec.actor("p", Plain)]).start()
    try:
        ref = sup.child_ref("p")
        assert ref.actor_class.__name__ == "Plain" and issubclass(ref.actor_class, Plain)
        fut = ref.ask("x", block=False)
        done = threading.Event()
        fut.add_done_callback(lambda f: done.set())
        assert done.wait(T) and fut.get() == "x"
    finally:
        assert sup.stop(T)


def test_default_scheduler_is_shared_and_configurable_before_use():
    d = default_scheduler()
    assert d is default_scheduler() and d.running
    assert sum(t.name.startswith("sched-") for t in threading.enumerate()) == d.threads
    with pytest.raises(supervisors.errors.SchedulerError):
        configure_default(threads=d.threads + 1)
    budget = d.slice_budget
    configure_default(slice_budget=budget)  # allowed: applies from the next slice


def test_default_scheduler_reads_the_env_vars():
    code = ("import threading; from supervisors.scheduler import default_scheduler as d; "
            "s = d(); assert s.threads == 3 and s.inline is False, s.stats(); "
            "assert sum(t.name.startswith('sched-') for t in threading.enumerate()) == 3")
    import os
    import sys
    env = dict(os.environ, SUPERVISORS_SCHED_THREADS="3", SUPERVISORS_SCHED_INLINE="0")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env, cwd=ROOT)


def test_no_pykka_private_names_in_the_code():
    pattern = re.compile(r"pykka\._")
    hits = [f"{p.relative_to(ROOT)}:{n}" for d in ("raft_otp", "supervisors")
            for p in sorted((ROOT / d).rglob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def drain(q: queue.Queue) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
