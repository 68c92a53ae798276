"""Goal: dynamic children, simple_one_for_one, orderly shutdown (order, timeouts, kill)."""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from supervisors import (AlreadyPresent, AlreadyRunning, ChildSpec, NotFound, NotRunning,
                         StillRunning, Supervisor)
from supervisors.testing import Probe, Recorder, drain, stop_all_roots


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def test_dynamic_child_lifecycle():
    log = queue.Queue()
    sup = Supervisor([]).start()
    ref = sup.start_child(ChildSpec.actor("d", Probe, "d", log))
    assert ref.ask("ping") == ("pong", "d")
    with pytest.raises(AlreadyPresent):
        sup.start_child(ChildSpec.actor("d", Probe, "d"))
    with pytest.raises(AlreadyRunning):
        sup.restart_child("d")
    with pytest.raises(StillRunning):
        sup.delete_child("d")
    sup.terminate_child("d")
    assert drain(log, 2) == [("start", "d"), ("stop", "d")]
    assert not ref.is_alive()
    assert sup.which_children()[0][1:] == (None, "worker", "stopped")
    assert sup.count_children() == {"specs": 1, "active": 0, "supervisors": 0, "workers": 1}
    ref2 = sup.restart_child("d")
    assert ref2 is not ref and ref2.ask("ping") == ("pong", "d")
    sup.terminate_child(ref2)  # by ref works too
    sup.delete_child("d")
    assert sup.which_children() == []
    with pytest.raises(NotFound):
        sup.terminate_child("d")


def test_start_child_failure_leaves_no_spec():
    sup = Supervisor([]).start()
    with pytest.raises(Exception, match="failed to start"):
        sup.start_child(ChildSpec(id="f", start=lambda: Probe.start("f", None, True).ask("ping")))
    assert sup.which_children() == []


def test_api_on_stopped_supervisor_raises():
    sup = Supervisor([]).start()
    sup.stop()
    with pytest.raises(NotRunning):
        sup.start_child(ChildSpec.actor("x", Probe))


def test_simple_one_for_one_instances_of_a_template():
    log = queue.Queue()
    sup = Supervisor([ChildSpec.actor("w", Probe, restart="transient")],
                     strategy="simple_one_for_one", intensity=5).start()
    rec = Recorder(sup)
    refs = [sup.start_child(f"i{n}", log) for n in range(3)]
    assert [r.ask("ping") for r in refs] == [("pong", "i0"), ("pong", "i1"), ("pong", "i2")]
    assert sup.count_children()["active"] == 3
    refs[1].tell("crash")  # transient + crash: restarted with the same extra args
    ev = rec.wait("started", pred=lambda e: e.ref not in refs)
    assert ev.ref.ask("ping") == ("pong", "i1")
    sup.terminate_child(refs[0])  # by ref; the instance disappears
    refs[2].tell("exit")  # transient + normal: not restarted, removed
    rec.wait("exited", pred=lambda e: e.ref is refs[2])
    kids = sup.which_children()
    assert [k.ref for k in kids] == [ev.ref]
    assert kids[0].id.startswith("w#")


def test_shutdown_in_reverse_start_order():
    log = queue.Queue()
    inner = ChildSpec.supervisor("inner", "one_for_one",
                                 [ChildSpec.actor(t, Probe, t, log) for t in ("i1", "i2")])
    sup = Supervisor([ChildSpec.actor("a", Probe, "a", log), inner,
                      ChildSpec.actor("z", Probe, "z", log)]).start()
    drain(log, 4)
    assert sup.stop(10)
    assert drain(log, 4) == [("stop", "z"), ("stop", "i2"), ("stop", "i1"), ("stop", "a")]
    assert sup.exit_reason == "shutdown"


def test_shutdown_timeout_forces_a_stuck_child(caplog):
    caplog.set_level(logging.WARNING, logger="supervisors")
    log = queue.Queue()
    release = threading.Event()
    sup = Supervisor([ChildSpec.actor("ok", Probe, "ok", log),
                      ChildSpec.actor("stuck", Probe, "stuck", log, shutdown=0.2)]).start()
    drain(log, 2)
    stuck = sup.child_ref("stuck")
    stuck.tell(("block", release))
    threading.Timer(1.0, release.set).start()  # lets the stuck handler end after the kill
    t0 = time.monotonic()
    assert sup.stop(10)
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 5
    assert any("did not stop within 0.2" in r.getMessage() for r in caplog.records)
    # forced: no on_stop for the stuck one; the other one stopped orderly
    assert drain(log, 1) == [("stop", "ok")]
    assert log.empty()
    assert not stuck.is_alive()


def test_brutal_kill_skips_on_stop():
    log = queue.Queue()
    sup = Supervisor([ChildSpec.actor("b", Probe, "b", log, shutdown="brutal_kill"),
                      ChildSpec.actor("n", Probe, "n", log)]).start()
    drain(log, 2)
    b = sup.child_ref("b")
    sup.stop(10)
    assert drain(log, 1) == [("stop", "n")]
    assert log.empty() and not b.is_alive()


def test_which_children_reports_types():
    sup = Supervisor([ChildSpec.actor("w", Probe),
                      ChildSpec.supervisor("s", "one_for_all", [])]).start()
    kids = sup.which_children()
    assert [(k.id, k.type, k.status) for k in kids] == [("w", "worker", "running"),
                                                         ("s", "supervisor", "running")]
    assert isinstance(kids[1].ref, Supervisor)
    assert sup.count_children() == {"specs": 2, "active": 2, "supervisors": 1, "workers": 1}


def test_no_thread_or_process_left_after_the_root_stops():
    import psutil

    before = set(threading.enumerate())
    inner = ChildSpec.supervisor("inner", "one_for_all",
                                 [ChildSpec.actor("i", Probe),
                                  ChildSpec.process("p", ["sleep", "60"])])
    sup = Supervisor([ChildSpec.actor("a", Probe), inner,
                      ChildSpec.actor("b", Probe, shutdown="brutal_kill")]).start()
    rec = Recorder(sup)
    sup.child_ref("a").tell("crash")  # a restart on the way, too
    rec.wait("started", "a")
    pid = sup.child_ref("inner").child_ref("p").pid
    assert len(set(threading.enumerate()) - before) >= 6
    assert sup.stop(10)
    assert set(threading.enumerate()) - before == set()
    assert not psutil.pid_exists(pid)
