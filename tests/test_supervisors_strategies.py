"""Goal: each restart strategy, each restart type, intensity and escalation behave as in OTP."""

from __future__ import annotations

import logging
import queue

import pytest

from supervisors import ChildSpec, RestartIntensityExceeded, Supervisor, registry
from supervisors.testing import Probe, Recorder, drain, stop_all_roots


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def three(log, **kw):
    return [ChildSpec.actor(t, Probe, t, log, **kw) for t in ("a", "b", "c")]


def refs(sup):
    return {c.id: c.ref for c in sup.which_children()}


def test_one_for_one_restarts_only_the_crashed_child():
    log = queue.Queue()
    sup = Supervisor(three(log), strategy="one_for_one", intensity=3).start()
    rec = Recorder(sup)
    assert sorted(drain(log, 3)) == [("start", "a"), ("start", "b"), ("start", "c")]
    before = refs(sup)
    before["b"].tell("crash")
    ev = rec.wait("started", "b")
    after = refs(sup)
    assert ev.ref is after["b"] and after["b"] is not before["b"]
    assert after["a"] is before["a"] and after["c"] is before["c"]
    assert after["b"].ask("ping") == ("pong", "b")
    assert drain(log, 1) == [("start", "b")]  # no one else stopped or started
    assert log.empty()


def test_one_for_all_restarts_everyone_in_order():
    log = queue.Queue()
    sup = Supervisor(three(log), strategy="one_for_all", intensity=3).start()
    rec = Recorder(sup)
    drain(log, 3)
    before = refs(sup)
    before["b"].tell("crash")
    rec.wait("started", "c")
    # c and a stopped in reverse start order, then all started in start order
    assert drain(log, 5) == [("stop", "c"), ("stop", "a"),
                             ("start", "a"), ("start", "b"), ("start", "c")]
    after = refs(sup)
    assert all(after[k] is not before[k] for k in "abc")
    assert [c.restarts for c in sup._children] == [0, 1, 0]


def test_rest_for_one_restarts_the_child_and_those_after_it():
    log = queue.Queue()
    sup = Supervisor(three(log), strategy="rest_for_one", intensity=3).start()
    rec = Recorder(sup)
    drain(log, 3)
    before = refs(sup)
    before["b"].tell("crash")
    rec.wait("started", "c")
    assert drain(log, 3) == [("stop", "c"), ("start", "b"), ("start", "c")]
    after = refs(sup)
    assert after["a"] is before["a"]
    assert after["b"] is not before["b"] and after["c"] is not before["c"]


def test_permanent_child_is_restarted_after_a_normal_stop():
    sup = Supervisor([ChildSpec.actor("p", Probe, "p")]).start()
    rec = Recorder(sup)
    old = sup.child_ref("p")
    old.tell("exit")
    assert rec.wait("exited", "p").reason == "normal"
    assert rec.wait("started", "p").ref is not old


def test_transient_child_restarts_on_crash_but_not_on_normal_exit():
    sup = Supervisor([ChildSpec.actor("t", Probe, "t", restart="transient")], intensity=3).start()
    rec = Recorder(sup)
    sup.child_ref("t").tell("crash")
    assert isinstance(rec.wait("exited", "t").reason, RuntimeError)
    new = rec.wait("started", "t").ref
    new.tell("exit")
    assert rec.wait("exited", "t").reason == "normal"
    # the exit was handled (events come from the control thread): no restart followed
    assert sup.which_children()[0].status == "stopped"
    assert sup.which_children()[0].ref is None
    assert rec.idle()
    assert sup.count_children() == {"specs": 1, "active": 0, "supervisors": 0, "workers": 1}


def test_temporary_child_is_never_restarted_and_is_removed():
    sup = Supervisor([ChildSpec.actor("tmp", Probe, "tmp", restart="temporary"),
                      ChildSpec.actor("keep", Probe, "keep")]).start()
    rec = Recorder(sup)
    sup.child_ref("tmp").tell("crash")
    rec.wait("exited", "tmp")
    assert [c.id for c in sup.which_children()] == ["keep"]
    assert rec.idle()


def test_crash_reason_is_logged_by_the_supervisors_logger(caplog):
    caplog.set_level(logging.ERROR, logger="supervisors")
    sup = Supervisor([ChildSpec.actor("x", Probe, "x")]).start()
    rec = Recorder(sup)
    sup.child_ref("x").tell("crash")
    rec.wait("started", "x")
    recs = [r for r in caplog.records if r.name == "supervisors" and "crashed" in r.getMessage()]
    assert recs and "x crashed on purpose" in recs[0].getMessage()
    assert recs[0].exc_info is not None


def test_intensity_exceeded_stops_children_in_reverse_and_root_stops(caplog):
    caplog.set_level(logging.ERROR, logger="supervisors")
    log = queue.Queue()
    sup = Supervisor(three(log), strategy="one_for_one", intensity=2, period=30).start()
    rec = Recorder(sup)
    drain(log, 3)
    for _ in range(2):  # two restarts are within the intensity
        sup.child_ref("a").tell("crash")
        rec.wait("started", "a")
        assert drain(log, 1) == [("start", "a")]
    sup.child_ref("a").tell("crash")  # the third is one too many
    reason = sup.wait(10)
    assert isinstance(reason, RestartIntensityExceeded)
    assert drain(log, 2) == [("stop", "c"), ("stop", "b")]
    assert not sup.is_alive()
    assert any("root supervisor" in r.getMessage() for r in caplog.records)


def test_restarts_outside_the_period_do_not_accumulate():
    sup = Supervisor([ChildSpec.actor("a", Probe, "a")], intensity=1, period=5.0).start()
    rec = Recorder(sup)
    sup.child_ref("a").tell("crash")
    rec.wait("started", "a")
    sup._restarts[0] -= 10.0  # age the first restart beyond the period (no sleeping)
    sup.child_ref("a").tell("crash")
    rec.wait("started", "a")
    assert sup.is_alive()
    sup.child_ref("a").tell("crash")  # two within the period now: escalate
    assert isinstance(sup.wait(10), RestartIntensityExceeded)


def test_escalation_through_two_levels_then_the_root_restarts_the_subtree():
    leaf = ChildSpec.supervisor("leaf", "one_for_one", [ChildSpec.actor("w", Probe, "w", name="w")],
                                intensity=0)
    mid = ChildSpec.supervisor("mid", "one_for_one", [leaf, ChildSpec.actor("m", Probe, "m")],
                               intensity=0)
    root = Supervisor([mid, ChildSpec.actor("r", Probe, "r")], intensity=1, id="root").start()
    rec = Recorder(root)
    mid_sup = root.child_ref("mid")
    leaf_sup = mid_sup.child_ref("leaf")
    r_ref = root.child_ref("r")
    w_old = registry.whereis("w")
    w_old.tell("crash")
    ev = rec.wait("exited", "mid")
    assert isinstance(ev.reason, RestartIntensityExceeded)  # leaf -> mid -> root
    assert isinstance(leaf_sup.exit_reason, RestartIntensityExceeded)
    new_mid = rec.wait("started", "mid").ref
    assert new_mid is not mid_sup and new_mid.is_alive()
    assert root.child_ref("r") is r_ref  # one_for_one at the root
    assert registry.whereis("w") is not w_old
    assert registry.whereis("w").ask("ping") == ("pong", "w")
    assert root.tree()["children"][0]["restarts"] == 1


def test_escalation_reaching_the_root_stops_the_whole_tree():
    leaf = ChildSpec.supervisor("leaf", "one_for_one", [ChildSpec.actor("w", Probe, "w")],
                                intensity=0)
    mid = ChildSpec.supervisor("mid", "one_for_one", [leaf], intensity=0)
    root = Supervisor([mid], intensity=0, id="root0").start()
    mid_sup = root.child_ref("mid")
    w = mid_sup.child_ref("leaf").child_ref("w")
    w.tell("crash")
    assert isinstance(root.wait(10), RestartIntensityExceeded)
    assert not mid_sup.is_alive() and not w.is_alive()


def test_start_failure_of_a_child_fails_the_supervisor_start_and_stops_started_ones():
    log = queue.Queue()
    specs = [ChildSpec.actor("ok", Probe, "ok", log),
             ChildSpec(id="bad", start=lambda: (_ for _ in ()).throw(ValueError("nope")))]
    sup = Supervisor(specs)
    with pytest.raises(Exception, match="nope"):
        sup.start()
    assert drain(log, 2) == [("start", "ok"), ("stop", "ok")]
    assert not sup.is_alive()


def test_a_failing_restart_is_retried_and_counts_against_the_intensity():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) > 1:
            raise OSError("cannot start again")
        return Probe.start("flaky")

    sup = Supervisor([ChildSpec(id="flaky", start=flaky)], intensity=3, period=60).start()
    sup.child_ref("flaky").tell("crash")
    assert isinstance(sup.wait(10), RestartIntensityExceeded)
    assert len(calls) == 1 + 3  # the first start, then three failed restarts; the 4th escalates


def test_a_named_supervisor_is_registered_while_it_runs():
    sup = Supervisor([], name="the-sup").start()
    assert registry.whereis("the-sup") is sup
    sup.stop()
    assert registry.whereis("the-sup") is None


def test_start_on_the_class_builds_and_starts():
    sup = Supervisor.start([ChildSpec.actor("a", Probe, "a")], strategy="one_for_all", id="cls")
    assert isinstance(sup, Supervisor) and sup.is_alive() and sup.strategy == "one_for_all"
    assert sup.child_ref("a").ask("ping") == ("pong", "a")


def test_a_taken_supervisor_name_fails_its_start_without_hanging():
    first = Supervisor([], name="dup").start()
    with pytest.raises(Exception, match="dup"):
        Supervisor([ChildSpec.actor("a", Probe)], name="dup").start()
    assert registry.whereis("dup") is first


def test_a_bug_in_the_control_loop_exits_the_supervisor_and_stops_children():
    log = queue.Queue()
    sup = Supervisor([ChildSpec.actor("a", Probe, "a", log)]).start()
    drain(log, 1)
    sup._q.put(("exit",))  # malformed internal event: the loop itself fails
    assert isinstance(sup.wait(10), Exception)
    assert drain(log, 1) == [("stop", "a")]
