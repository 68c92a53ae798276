"""Goal: a machine's Monitor effect makes the leader watch an actor; its DOWN comes
back as the replicated command ``["down", target, reason]``; Demonitor cancels it;
a restarted leader re-establishes monitors from ``state_enter("leader")``."""

from __future__ import annotations

import time

import pykka

import raft_otp
from raft_otp import Machine, ServerId
from raft_otp.core.machine import Demonitor, Monitor
from supervisors import registry


class Watcher(Machine):
    def init(self, config):  # type: ignore[no-untyped-def]
        return {"watching": [], "downs": []}

    def apply(self, meta, command, state):  # type: ignore[no-untyped-def]
        op = command[0]
        if op == "watch":
            target = [command[1], command[2]]
            return ({"watching": state["watching"] + [target], "downs": state["downs"]}, "ok",
                    [Monitor((command[1], command[2]))])
        if op == "unwatch":
            target = [command[1], command[2]]
            return ({"watching": [t for t in state["watching"] if t != target], "downs": state["downs"]},
                    "ok", [Demonitor((command[1], command[2]))])
        if op == "down":
            return ({"watching": [t for t in state["watching"] if t != command[1]],
                     "downs": state["downs"] + [[command[1], command[2]]]}, None)
        return state, ["unknown", command]

    def state_enter(self, role, state):  # type: ignore[no-untyped-def]
        if role == "leader":
            return [Monitor((t[0], t[1])) for t in state["watching"]]
        return []


class Target(pykka.ThreadingActor):
    def on_receive(self, message):  # type: ignore[no-untyped-def]
        return None


def downs(state):  # type: ignore[no-untyped-def]
    return state["downs"]



def _start_target(name: str):  # type: ignore[no-untyped-def]
    ref = Target.start()
    registry.register(name, ref)
    return ref


def _stop_target(name: str, ref) -> None:  # type: ignore[no-untyped-def]
    registry.unregister(name)
    ref.stop()


def _wait_downs(sid: ServerId, n: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        got = raft_otp.local_query(sid, downs)[0]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def test_monitored_actor_down_is_applied_as_a_command(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("mw_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "mw", (Watcher, None), [sid])
    name = "mon_target_" + system.name
    ref = _start_target(name)
    assert raft_otp.process_command(sid, ["watch", name, raft_otp.node_name()])[0] == "ok"
    assert raft_otp.local_query(sid, downs)[0] == []
    _stop_target(name, ref)
    got = _wait_downs(sid, 1)
    assert len(got) == 1 and got[0][0] == [name, raft_otp.node_name()]
    # fired once: nothing more follows
    time.sleep(0.2)
    assert len(raft_otp.local_query(sid, downs)[0]) == 1


def test_monitor_of_a_missing_actor_is_noproc(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("mn_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "mn", (Watcher, None), [sid])
    name = "no_such_" + system.name
    raft_otp.process_command(sid, ["watch", name, raft_otp.node_name()])
    assert _wait_downs(sid, 1) == [[[name, raft_otp.node_name()], "noproc"]]


def test_demonitor_cancels(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("md_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "md", (Watcher, None), [sid])
    name = "dem_target_" + system.name
    ref = _start_target(name)
    raft_otp.process_command(sid, ["watch", name, raft_otp.node_name()])
    raft_otp.process_command(sid, ["unwatch", name, raft_otp.node_name()])
    _stop_target(name, ref)
    time.sleep(0.5)
    raft_otp.process_command(sid, ["noop"])  # anything queued has been applied by now
    assert raft_otp.local_query(sid, downs)[0] == []


def test_restarted_leader_remonitors_from_state_enter(system) -> None:  # type: ignore[no-untyped-def]
    sid = ServerId("mr_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "mr", (Watcher, None), [sid])
    name = "re_target_" + system.name
    ref = _start_target(name)
    raft_otp.process_command(sid, ["watch", name, raft_otp.node_name()])
    raft_otp.stop_server(system, sid)
    raft_otp.restart_server(system, sid)
    assert raft_otp.process_command(sid, ["noop"], timeout=10)[1] == sid  # leader again
    _stop_target(name, ref)
    got = _wait_downs(sid, 1)
    assert len(got) == 1 and got[0][0] == [name, raft_otp.node_name()]
