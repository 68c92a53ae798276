"""Goal: threadless supervisors keep every supervisor semantic while costing no thread, even
10,000 of them, and never deadlock a small pool (stops from pool threads and from within)."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

from supervisors import ChildSpec, RestartIntensityExceeded, Supervisor
from supervisors.scheduler import ScheduledActor, Scheduler
from supervisors.testing import Recorder, stop_all_roots

T = 10.0


class Child(ScheduledActor):
    def __init__(self, tag: Any = None) -> None:
        super().__init__()
        self.tag = tag

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.tag} crashed on purpose")
        if isinstance(message, tuple) and message[0] == "call":
            return message[1]()  # run a function inside the actor (on a pool thread)
        return ("pong", self.tag)


@pytest.fixture
def sched():
    s = Scheduler(threads=2, slice_budget=16, name="ssched").start()
    yield s
    assert stop_all_roots() == []
    pykka.ActorRegistry.stop_all()
    assert s.stop(T)


def kind(s: Scheduler) -> type:
    return type("Kid", (Child,), {"scheduler": s})


def supervisor_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("supervisor-")]


def test_one_for_one_restarts_then_gives_up_at_the_intensity(sched):
    k = kind(sched)
    sup = Supervisor([ChildSpec.actor("a", k, "a"), ChildSpec.actor("b", k, "b")],
                     intensity=2, period=60, threadless=True, scheduler=sched, id="tl").start()
    assert supervisor_threads() == []
    rec = Recorder(sup)
    b = sup.child_ref("b")
    for n in range(2):
        a = sup.child_ref("a")
        a.tell("crash")
        assert isinstance(rec.wait("exited", "a").reason, RuntimeError)
        rec.wait("started", "a")
        assert sup.child_ref("a") is not a and sup.child_ref("a").ask("ping", timeout=T) == \
            ("pong", "a")
        assert sup.child_ref("b") is b  # one_for_one: the sibling untouched
    tree = sup.tree()
    assert tree["threadless"] and tree["thread"] == "ssched" and tree["restarts_performed"] == 2
    assert [c["restarts"] for c in tree["children"]] == [2, 0]
    sup.child_ref("a").tell("crash")  # the third within the period
    assert isinstance(sup.wait(T), RestartIntensityExceeded)
    assert not b.is_alive() and not sup.is_alive()


def test_one_for_all_on_a_one_thread_pool_does_not_deadlock():
    s = Scheduler(threads=1, name="one").start()
    try:
        k = kind(s)
        sup = Supervisor([ChildSpec.actor(t, k, t) for t in ("x", "y", "z")],
                         strategy="one_for_all", intensity=5, threadless=True, scheduler=s).start()
        rec = Recorder(sup)
        old = [sup.child_ref(t) for t in ("x", "y", "z")]
        old[1].tell("crash")  # the pool thread drains the control queue and stops x and z
        for t in ("x", "y", "z"):
            rec.wait("started", t)
        new = [sup.child_ref(t) for t in ("x", "y", "z")]
        assert all(not o.is_alive() for o in old) and all(n.ask("ping", timeout=T) for n in new)
        assert sup.stop(T) and sup.exit_reason == "shutdown"
    finally:
        pykka.ActorRegistry.stop_all()
        s.stop(T)


def test_dynamic_calls_and_stop_from_a_pool_thread(sched):
    k = kind(sched)
    sup = Supervisor([ChildSpec.actor("a", k, "a")], threadless=True, scheduler=sched).start()
    caller = k.start("caller")  # calls the supervisor from inside a handler (a pool thread)
    ref = caller.ask(("call", lambda: sup.start_child(ChildSpec.actor("b", k, "b"))), timeout=T)
    assert ref.ask("ping", timeout=T) == ("pong", "b")
    kids = caller.ask(("call", sup.which_children), timeout=T)
    assert [(c.id, c.status) for c in kids] == [("a", "running"), ("b", "running")]
    caller.ask(("call", lambda: sup.terminate_child("b")), timeout=T)
    assert not ref.is_alive()
    assert sup.count_children() == {"specs": 2, "active": 1, "supervisors": 0, "workers": 2}
    a = sup.child_ref("a")
    assert caller.ask(("call", lambda: sup.stop(T)), timeout=T) is True
    assert sup.exit_reason == "shutdown" and not a.is_alive()
    assert sup.which_children()[0].status == "stopped"  # read directly once stopped


def test_stop_from_inside_its_own_control_context_does_not_deadlock(sched):
    sup = Supervisor([ChildSpec.actor("a", kind(sched), "a")], threadless=True, scheduler=sched)
    results: queue.Queue = queue.Queue()

    def on_event(ev: Any) -> None:
        if ev.kind == "started":
            results.put(sup.stop(T))  # in its control context: queued, returns at once

    sup.subscribe(on_event)
    sup.start()  # the first 'started' comes while it starts, in the starting thread
    assert results.get(timeout=T) is False
    assert sup.wait(T) == "shutdown"

    later = Supervisor([ChildSpec.actor("a", kind(sched), "a")], threadless=True, scheduler=sched,
                       intensity=5).start()

    def on_exit(ev: Any) -> None:
        if ev.kind == "exited":  # on the pool thread draining its control queue
            results.put((threading.current_thread().name, later.stop(T)))

    later.subscribe(on_exit)
    later.child_ref("a").tell("crash")
    thread, stopped = results.get(timeout=T)
    assert thread.startswith("ssched-") and stopped is False
    assert later.wait(T) == "shutdown"


def test_threadless_supervisors_nested_under_a_threaded_root(sched):
    inner = [ChildSpec.supervisor(f"s{i}", "one_for_one", [ChildSpec.actor("w", kind(sched), i)],
                                  threadless=True) for i in range(3)]
    root = Supervisor(inner, id="root-tl").start()
    assert supervisor_threads() == ["supervisor-root-tl"]
    s1 = root.child_ref("s1")
    assert s1.threadless and s1.child_ref("w").ask("ping", timeout=T) == ("pong", 1)
    rec = Recorder(s1)
    s1.child_ref("w").tell("crash")
    rec.wait("started", "w")
    assert root.tree()["children"][1]["children"][0]["restarts"] == 1
    assert root.stop(T) and not s1.is_alive()


def test_ten_thousand_threadless_supervisors_stay_within_a_few_threads(sched):
    k = kind(sched)
    before = threading.active_count()
    sups = [Supervisor([ChildSpec.actor("w", k, i)], threadless=True, scheduler=sched,
                       intensity=3).start() for i in range(10_000)]
    assert threading.active_count() < 40 and threading.active_count() <= before
    recs = [Recorder(s) for s in sups[::10]]
    olds = [s.child_ref("w") for s in sups[::10]]
    for old in olds:
        old.tell("crash")
    for rec in recs:
        rec.wait("started", "w")
    for s, old in zip(sups[::10], olds):
        new = s.child_ref("w")
        assert new is not old and new.ask("ping", timeout=T)[0] == "pong"
    assert threading.active_count() < 40
    assert all(s.stop(T) for s in sups)


def test_a_threadless_restart_storm_leaks_no_actor_and_no_thread(sched):
    k = kind(sched)
    before = set(threading.enumerate())
    sup = Supervisor([ChildSpec.actor(f"w{i}", k, i, name=f"storm-w{i}") for i in range(4)],
                     strategy="one_for_all", intensity=10_000, period=1.0, threadless=True,
                     scheduler=sched).start()
    rec = Recorder(sup)
    for n in range(200):
        sup.child_ref(f"w{n % 4}").tell("crash")
        for i in range(4):
            rec.wait("started", f"w{i}")
    assert sup.tree()["restarts_performed"] == 200
    live = [r for r in pykka.ActorRegistry.get_by_class(k)]
    assert len(live) == 4  # the four current children, nothing left behind
    assert sup.stop(T)
    assert pykka.ActorRegistry.get_by_class(k) == []
    assert set(threading.enumerate()) - before == set()
