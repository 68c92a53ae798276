"""Goal: a long restart storm across a tree leaks no thread, process or registration."""

from __future__ import annotations

import threading

import psutil
import pytest

from supervisors import ChildSpec, Supervisor, kill, registry
from supervisors.testing import Probe, Recorder, stop_all_roots


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


@pytest.mark.slow
@pytest.mark.processes
def test_restart_storm_leaks_nothing():
    before = set(threading.enumerate())
    me = psutil.Process()
    children_before = {p.pid for p in me.children(recursive=True)}
    inner = ChildSpec.supervisor("inner", "one_for_all",
                                 [ChildSpec.actor(f"w{i}", Probe, i, name=f"w{i}")
                                  for i in range(4)]
                                 + [ChildSpec.process("p", ["sleep", "60"])],
                                 intensity=10_000, period=1.0)
    sup = Supervisor([inner], intensity=10, id="storm").start()
    rec = Recorder(sup.child_ref("inner"))
    for n in range(150):
        victim = registry.whereis(f"w{n % 4}")
        if n % 3 == 0:
            kill(victim)
        else:
            victim.tell("crash")
        rec.wait("started", "p")  # one_for_all: the process is the last to come back
    assert registry.whereis("w0").ask("ping") == ("pong", 0)
    assert sup.child_ref("inner").tree()["restarts_performed"] == 150
    assert sup.stop(10)
    assert set(threading.enumerate()) - before == set()
    assert {p.pid for p in me.children(recursive=True)} - children_before == set()
    assert not any(registry.whereis(f"w{i}") for i in range(4))
