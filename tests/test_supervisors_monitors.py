"""Goal: monitors deliver DOWN with the reason, links propagate crashes, names survive restarts."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest

from supervisors import (ChildSpec, Down, Exit, LinkedExit, Supervisor, demonitor, link, monitor,
                         registry, unlink)
from supervisors import monitors
from supervisors.testing import Probe, Recorder, stop_all_roots


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []
    pykka.ActorRegistry.stop_all()


class Collector(pykka.ThreadingActor):
    def __init__(self, out: queue.Queue) -> None:
        super().__init__()
        self.out = out

    def on_receive(self, message):
        self.out.put(message)


class Trapper(Collector):
    trap_exit = True


def test_monitor_gets_down_with_the_exception_on_crash():
    downs = queue.Queue()
    target = Probe.start("t")  # an unsupervised, unmodified actor started elsewhere
    mref = monitor(target, downs.put)
    target.tell("crash")
    down = downs.get(timeout=5)
    assert isinstance(down, Down) and down.ref == mref and down.target is target
    assert isinstance(down.reason, RuntimeError) and "t crashed" in str(down.reason)


def test_monitor_normal_stop_and_actor_watcher():
    out = queue.Queue()
    watcher = Collector.start(out)
    target = Probe.start("t")
    monitor(target, watcher)
    target.stop()
    down = out.get(timeout=5)
    assert isinstance(down, Down) and down.reason == "normal"


def test_monitor_of_dead_actor_is_noproc_at_once():
    target = Probe.start("t")
    target.stop()
    got = []
    monitor(target, got.append)
    assert len(got) == 1 and got[0].reason == "noproc"


def test_demonitor_prevents_down():
    got, fired = [], threading.Event()
    target = Probe.start("t")
    m1 = monitor(target, got.append)
    monitor(target, lambda d: fired.set())  # fires after m1 would have
    assert demonitor(m1) is True
    assert demonitor(m1) is False
    target.stop()
    assert fired.wait(5)
    assert got == []


def test_monitor_a_supervisor():
    got = queue.Queue()
    sup = Supervisor([ChildSpec.actor("a", Probe)]).start()
    monitor(sup, got.put)
    sup.stop()
    assert got.get(timeout=5).reason == "shutdown"


def test_link_propagates_abnormal_exit_but_not_normal():
    a, b = Probe.start("a"), Probe.start("b")
    link(a, b)
    downs = queue.Queue()
    monitor(b, downs.put)
    a.tell("crash")
    reason = downs.get(timeout=5).reason
    assert isinstance(reason, LinkedExit) and isinstance(reason.reason, RuntimeError)
    c, d = Probe.start("c"), Probe.start("d")
    link(c, d)
    done = threading.Event()
    monitor(c, lambda _: done.set())
    c.stop()
    assert done.wait(5)
    assert d.ask("ping") == ("pong", "d")
    assert monitors.links_count() == 0  # both links were consumed by the exits


def test_unlink_and_trap_exit():
    out = queue.Queue()
    a, trap = Probe.start("a"), Trapper.start(out)
    link(a, trap)
    a.tell("crash")
    msg = out.get(timeout=5)
    assert isinstance(msg, Exit) and msg.sender is a and trap.is_alive()
    x, y = Probe.start("x"), Probe.start("y")
    link(x, y)
    unlink(x, y)
    done = threading.Event()
    monitor(x, lambda _: done.set())
    x.tell("crash")
    assert done.wait(5)
    assert y.ask("ping") == ("pong", "y")


def test_a_supervised_child_killed_by_a_link_is_restarted():
    sup = Supervisor([ChildSpec.actor("w", Probe, "w")], intensity=3).start()
    rec = Recorder(sup)
    peer = Probe.start("peer")
    link(peer, sup.child_ref("w"))
    peer.tell("crash")
    assert isinstance(rec.wait("exited", "w").reason, LinkedExit)
    rec.wait("started", "w")


def test_name_lookup_survives_a_restart():
    sup = Supervisor([ChildSpec.actor("n", Probe, "n", name="the-probe")], intensity=3).start()
    rec = Recorder(sup)
    first = registry.whereis("the-probe")
    assert first.ask("ping") == ("pong", "n")
    first.tell("crash")
    rec.wait("started", "n")
    second = registry.whereis("the-probe")
    assert second is not None and second is not first
    assert second.ask("ping") == ("pong", "n")
    sup.stop()
    assert registry.whereis("the-probe") is None


def test_name_taken_by_a_live_actor_fails_the_start():
    squatter = Probe.start("s")
    registry.register("taken", squatter)
    try:
        with pytest.raises(Exception, match="taken"):
            Supervisor([ChildSpec.actor("n", Probe, name="taken")]).start()
    finally:
        registry.unregister("taken")


class Quitter(Probe):
    def on_receive(self, message):
        if message == "sysexit":
            raise SystemExit(7)
        return super().on_receive(message)


def test_base_exception_in_a_handler_is_the_down_reason():
    downs = queue.Queue()
    target = Quitter.start("q")
    monitor(target, downs.put)
    target.tell("sysexit")  # pykka then stops every actor, as it documents
    reason = downs.get(timeout=5).reason
    assert isinstance(reason, SystemExit) and reason.code == 7
