"""Goal: the tree snapshot is plain msgpack-able data describing every supervisor and child."""

from __future__ import annotations

import os
import threading

import msgpack
import pytest

import supervisors
from supervisors import ChildSpec, Supervisor
from supervisors.testing import Probe, Recorder, stop_all_roots


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def test_tree_snapshot_content():
    inner = ChildSpec.supervisor("inner", "rest_for_one", [ChildSpec.actor("leaf", Probe, "leaf")],
                                 intensity=2, period=10.0)
    root = Supervisor([ChildSpec.actor("busy", Probe, "busy", name="busy"), inner,
                       ChildSpec.process("proc", ["sleep", "60"])],
                      id="root", intensity=3).start()
    rec = Recorder(root)
    release, entered = threading.Event(), threading.Event()
    busy = root.child_ref("busy")
    busy.tell(("block", release, entered))
    assert entered.wait(10)  # the block message has left the mailbox
    for i in range(3):
        busy.tell(i)
    leaf = root.child_ref("inner").child_ref("leaf")
    rec.attach(root.child_ref("inner"))
    leaf.tell("crash")
    rec.wait("started", "leaf")
    try:
        snap = supervisors.tree_snapshot()
        assert snap == msgpack.unpackb(msgpack.packb(snap))  # plain data, round-trips
        assert snap["pid"] == os.getpid()
        (t,) = [r for r in snap["roots"] if r["id"] == "root"]
        assert (t["kind"], t["strategy"], t["intensity"], t["status"]) == \
            ("supervisor", "one_for_one", 3, "running")
        assert t["thread"] == "supervisor-root" and t["started_at"] > 0
        b, i, p = t["children"]
        assert (b["id"], b["kind"], b["impl"], b["status"], b["name"]) == \
            ("busy", "worker", "actor", "running", "busy")
        assert b["mailbox"] == 3 and b["thread"].startswith("Probe-")
        assert (i["id"], i["kind"], i["strategy"], i["period"]) == \
            ("inner", "supervisor", "rest_for_one", 10.0)
        assert i["restarts"] == 0 and i["restarts_performed"] == 1
        assert i["children"][0]["restarts"] == 1
        assert i["children"][0]["status"] == "running"
        assert (p["impl"], p["pid"], p["cmd"]) == ("process", root.child_ref("proc").pid,
                                                   ["sleep", "60"])
        assert p["rss_bytes"] > 0 and p["cpu_percent"] >= 0.0
        assert p["shutdown"] == 5.0 and i["shutdown"] == "infinity"
    finally:
        release.set()


def test_stopped_root_leaves_the_snapshot():
    sup = Supervisor([], id="gone").start()
    assert any(r["id"] == "gone" for r in supervisors.tree_snapshot()["roots"])
    sup.stop()
    assert not any(r["id"] == "gone" for r in supervisors.tree_snapshot()["roots"])
    assert sup.tree()["status"] == "stopped"
