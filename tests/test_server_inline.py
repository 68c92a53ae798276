"""Goal: the scheduler's inline policy (``supervisors.scheduler``, which replaced the
server's own direct dispatch) as the Raft server relies on it: a message delivered on
a marked thread (the node's I/O thread, the WAL's notifier) runs there only when the
actor is idle, one at a time and in order; a failure there is the actor's crash, which
its supervisor restarts; and the server offers inline only messages whose step never
waits on a disk.

The general properties (never beside a pool slice, slow backoff, no nesting) are
pinned in ``tests/test_scheduler_inline.py``; this file keeps what the deleted
``tests/test_server_direct.py`` pinned for the server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from supervisors import ChildSpec, Supervisor
from supervisors._watch import actor_of
from supervisors.scheduler import ScheduledActor, Scheduler, mark_inline_thread
from supervisors.testing import Recorder, stop_all_roots

from raft_otp.core import events as ev
from raft_otp.server.proc import ServerActor

SCHED = Scheduler(threads=2, name="test-inline").start()


class Direct:
    def __init__(self, tag: object) -> None:
        self.tag = tag


class Toy(ScheduledActor):
    scheduler = SCHED
    INLINE_TYPES = frozenset((Direct,))

    def __init__(self, seen: list) -> None:
        super().__init__()
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        tag = message.tag if isinstance(message, Direct) else message
        if tag == "crash":
            raise RuntimeError("boom")
        self.seen.append((tag, threading.current_thread().name))
        return tag


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def _wait_idle(ref: Any) -> None:
    """An ask's answer is set inside the slice: wait until the actor released it."""
    actor = actor_of(ref)
    deadline = time.monotonic() + 5
    while actor.actor_inbox.state != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.001)


def _on_marked_thread(fn: Any) -> None:
    err: list[BaseException] = []

    def run() -> None:
        mark_inline_thread()
        try:
            fn()
        except BaseException as exc:
            err.append(exc)

    t = threading.Thread(target=run, name="marked")
    t.start()
    t.join(10)
    assert not err, err


def test_an_idle_actor_runs_a_lone_message_on_the_marked_thread_in_order() -> None:
    seen: list = []
    ref = Toy.start(seen)
    try:
        assert ref.ask("warm") == "warm"
        _wait_idle(ref)
        _on_marked_thread(lambda: [ref.tell(Direct(i)) for i in range(3)])
        assert ref.ask("sync") == "sync"
        tags = [t for t, _ in seen]
        assert tags == ["warm", 0, 1, 2, "sync"]
        assert seen[1][1] == "marked"  # the first ran where it was delivered
    finally:
        ref.stop()


def test_a_failure_in_an_inline_step_is_the_actors_crash_and_it_is_restarted() -> None:
    seen: list = []
    sup = Supervisor([ChildSpec.actor("toy", Toy, seen)], strategy="one_for_one", intensity=3).start()
    rec = Recorder(sup)
    before = sup.child_ref("toy")
    assert before.ask("warm") == "warm"
    _wait_idle(before)
    _on_marked_thread(lambda: before.tell(Direct("crash")))
    rec.wait("started", "toy")
    after = sup.child_ref("toy")
    assert after is not before and not before.is_alive()
    _on_marked_thread(lambda: after.tell(Direct("ok")))
    assert after.ask("sync") == "sync"
    assert [t for t, _ in seen][-2:] == ["ok", "sync"]
    sup.stop()


def test_the_server_offers_inline_only_steps_that_never_wait_on_a_disk() -> None:
    inline = ServerActor.INLINE_TYPES
    assert ev.AppendEntriesRpc in inline and ev.AppendEntriesReply in inline
    assert ev.Command in inline and ev.Commands in inline and ev.LogEvent in inline
    # a snapshot chunk is written to disk; queries and membership changes may be slow
    for t in (ev.InstallSnapshotRpc, ev.InstallSnapshotResult, ev.ConsistentQuery,
              ev.LocalQuery, ev.AddMember):
        assert t not in inline, t


def test_a_step_that_syncs_meta_never_runs_on_a_delivering_thread(tmp_path, monkeypatch) -> None:
    """A newer term (or a vote request) makes the core persist term and vote, a synced
    write: delivered on a marked thread (the node's I/O thread), that step goes to the
    scheduler's pool; an ordinary append_entries runs where it was delivered."""
    import raft_otp
    from raft_otp import ServerId
    from raft_otp.machines.counter import Counter
    from raft_otp.server.ports import NodePorts
    from supervisors import registry
    from supervisors.scheduler import in_inline_slice

    synced_on: list[tuple[str, bool]] = []
    real = NodePorts.persist_meta

    def persist_meta(self: NodePorts, *args: Any) -> None:
        synced_on.append((threading.current_thread().name, in_inline_slice()))
        real(self, *args)

    monkeypatch.setattr(NodePorts, "persist_meta", persist_meta)
    s = raft_otp.start_in(str(tmp_path / "d"), name=f"il{time.monotonic_ns()}")
    ids = [ServerId(f"{s.name}_{i}", raft_otp.node_name()) for i in range(3)]
    try:
        raft_otp.start_cluster(s, "c", (Counter, None), ids)
        _, leader = raft_otp.process_command(ids[0], ["incr"])
        follower = next(i for i in ids if i != leader)
        ref = registry.whereis(follower.name)
        actor = actor_of(ref)
        term = actor.state.term
        _wait_idle(ref)
        synced_on.clear()
        rpc = ev.AppendEntriesRpc(term + 1, leader, actor.state.commit_index, 0, 0, [])
        _on_marked_thread(lambda: ref.tell(rpc))
        raft_otp.member_overview(follower)  # handled by now (one mailbox, in order)
        assert actor.state.term == term + 1
        assert synced_on and all(not inline and name != "marked" for name, inline in synced_on), synced_on
    finally:
        raft_otp.stop_system(s)


def test_direct_dispatch_false_keeps_every_step_on_the_pool(tmp_path) -> None:
    import raft_otp
    from raft_otp import ServerId
    from raft_otp.machines.counter import Counter
    from raft_otp.server.proc import PooledServerActor
    from supervisors import registry

    s = raft_otp.start_system({"name": f"dd{time.monotonic_ns()}", "data_dir": str(tmp_path / "d"),
                               "direct_dispatch": False})
    ids = [ServerId(f"{s.name}_{i}", raft_otp.node_name()) for i in range(3)]
    try:
        raft_otp.start_cluster(s, "c", (Counter, None), ids)
        for _ in range(20):
            raft_otp.process_command(ids[0], ["incr"])
        for sid in ids:
            actor = actor_of(registry.whereis(sid.name))
            assert type(actor) is PooledServerActor and not actor.INLINE_TYPES
            assert actor.sched_stats["inline_slices"] == 0, actor.sched_stats
    finally:
        raft_otp.stop_system(s)
