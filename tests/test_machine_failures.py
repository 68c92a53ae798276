"""Goal: a machine's or a query's exception is the caller's outcome, never a halted server
(in-process, on the real log: the apply, the callbacks, effects, queries, replays)."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

import raft_otp
from raft_otp import Machine, ServerId
from raft_otp.core.machine import Timer
from raft_otp.errors import CommandTooLarge, MachineError, QueryError, WireTypeError


class Fragile(Machine):
    """A dict machine with ways to fail: ``["boom", msg]`` raises after mutating nothing,
    ``["bad_timer"]`` returns an invalid effect, ``["bad_return"]`` a bad shape."""

    def init(self, config: Any) -> dict[str, Any]:
        return {"n": 0}

    def apply(self, meta: Any, command: Any, state: dict[str, Any]) -> Any:
        op = command[0]
        if op == "incr":
            new = {**state, "n": state["n"] + 1}
            return new, new["n"]
        if op == "boom":
            raise KeyError(command[1])
        if op == "bad_timer":
            return {**state, "n": -1}, "never", [Timer(["unhashable"], 100)]
        if op == "bad_return":
            return "just a value"
        raise ValueError(f"unknown command {op!r}")

    def tick(self, time_ms: int, state: Any) -> list[Any]:
        raise RuntimeError("tick always fails here")


def n_of(state: dict[str, Any]) -> int:
    return int(state["n"])


def divide_by_zero(state: Any) -> Any:
    return 1 / 0


@pytest.fixture
def cluster(system: raft_otp.System) -> ServerId:
    sid = ServerId("frag_" + system.name, raft_otp.node_name())
    started, _ = raft_otp.start_cluster(system, "frag", (Fragile, {}), [sid], timeout=10)
    assert started == [sid]
    return sid


def _fast(fn: Any, exc: type[BaseException]) -> BaseException:
    t0 = time.monotonic()
    with pytest.raises(exc) as info:
        fn()
    assert time.monotonic() - t0 < 1.0, "the error must come at once, not at the timeout"
    return info.value


def test_a_raising_apply_is_the_commands_outcome_and_the_server_runs_on(cluster: ServerId) -> None:
    assert raft_otp.process_command(cluster, ["incr"], timeout=5)[0] == 1
    err = _fast(lambda: raft_otp.process_command(cluster, ["boom", "no such key"], timeout=5), MachineError)
    assert isinstance(err, MachineError)
    assert err.type_name == "KeyError" and "no such key" in err.message and err.index is not None
    err2 = _fast(lambda: raft_otp.process_command(cluster, ["frobnicate"], timeout=5), MachineError)
    assert "unknown command" in str(err2)
    assert raft_otp.process_command(cluster, ["incr"], timeout=5)[0] == 2  # state as before both
    metrics = raft_otp.key_metrics(cluster)
    assert metrics["machine_errors"] >= 2


def test_invalid_effects_and_return_shapes_fail_the_command_not_the_server(cluster: ServerId) -> None:
    err = _fast(lambda: raft_otp.process_command(cluster, ["bad_timer"], timeout=5), MachineError)
    assert "Timer" in str(err) and "hashable" in str(err)
    err = _fast(lambda: raft_otp.process_command(cluster, ["bad_return"], timeout=5), MachineError)
    assert "(state, reply)" in str(err)
    assert raft_otp.local_query(cluster, n_of)[0] == 0  # the bad_timer state change was not kept
    assert raft_otp.process_command(cluster, ["incr"], timeout=5)[0] == 1


def test_pipelined_failures_are_reported_per_command(cluster: ServerId) -> None:
    q: queue.Queue[Any] = queue.Queue()
    raft_otp.pipeline_commands(cluster, [(["incr"], 1), (["boom", "x"], 2), (["incr"], 3)], notify=q)
    replies: dict[Any, Any] = {}
    deadline = time.monotonic() + 5
    while len(replies) < 3 and time.monotonic() < deadline:
        msg = q.get(timeout=5)
        replies.update(dict(msg.replies))
    assert replies[1] == 1 and replies[3] == 2
    assert isinstance(replies[2], MachineError) and replies[2].type_name == "KeyError"


def test_a_raising_query_is_a_query_error(cluster: ServerId) -> None:
    raft_otp.process_command(cluster, ["incr"], timeout=5)
    for call in (raft_otp.local_query, raft_otp.leader_query, raft_otp.consistent_query):
        for _ in range(4):  # four in a row used to leave a member stopped for good
            err = _fast(lambda: call(cluster, divide_by_zero, timeout=5), QueryError)
            assert isinstance(err, QueryError) and err.type_name == "ZeroDivisionError"
    assert raft_otp.consistent_query(cluster, n_of, timeout=5)[0] == 1
    assert raft_otp.key_metrics(cluster)["query_errors"] == 12


def test_a_failed_command_is_replayed_the_same_after_a_restart(system: raft_otp.System,
                                                               cluster: ServerId) -> None:
    raft_otp.process_command(cluster, ["incr"], timeout=5)
    with pytest.raises(MachineError):
        raft_otp.process_command(cluster, ["boom", "k"], timeout=5)
    raft_otp.process_command(cluster, ["incr"], timeout=5)
    raft_otp.stop_server(system, cluster)
    raft_otp.restart_server(system, cluster)
    deadline = time.monotonic() + 10
    while True:  # the replay raises again at the same index and goes on
        try:
            assert raft_otp.consistent_query(cluster, n_of, timeout=2)[0] == 2
            break
        except raft_otp.RaftError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert raft_otp.process_command(cluster, ["incr"], timeout=5)[0] == 3


def test_bad_commands_are_refused_at_the_caller(cluster: ServerId) -> None:
    _fast(lambda: raft_otp.process_command(cluster, {("a", 1): 2}, timeout=5), WireTypeError)
    _fast(lambda: raft_otp.process_command(cluster, ["incr", object()], timeout=5), WireTypeError)
    with pytest.raises(WireTypeError):
        raft_otp.pipeline_command(cluster, {"s": {1, 2}})
    err = _fast(lambda: raft_otp.process_command(cluster, ["incr", b"x" * 2_000_000], timeout=5),
                CommandTooLarge)
    assert isinstance(err, CommandTooLarge) and err.limit == 1_048_576
    assert raft_otp.process_command(cluster, ["incr"], timeout=5)[0] == 1


def test_the_leader_refuses_a_command_over_its_own_limit(tmp_path: Any) -> None:
    system = raft_otp.start_in(str(tmp_path / "small"), name=f"small{time.monotonic_ns()}",
                               max_command_bytes=1000)
    try:
        sid = ServerId("small_" + system.name, raft_otp.node_name())
        raft_otp.start_cluster(system, "small", (Fragile, {}), [sid], timeout=10)
        before = raft_otp.key_metrics(sid)["last_index"]
        err = _fast(lambda: raft_otp.process_command(sid, ["boom", "x" * 5000], timeout=5),
                    CommandTooLarge)
        assert isinstance(err, CommandTooLarge) and err.limit == 1000 and err.size > 5000
        assert raft_otp.key_metrics(sid)["last_index"] == before  # it never reached the log
        assert raft_otp.process_command(sid, ["incr"], timeout=5)[0] == 1
    finally:
        raft_otp.stop_system(system)


def test_the_asyncio_forms_raise_the_same_errors(cluster: ServerId) -> None:
    import asyncio

    from raft_otp import aio

    async def main() -> None:
        assert (await aio.process_command(cluster, ["incr"], timeout=5))[0] == 1
        with pytest.raises(MachineError):
            await aio.process_command(cluster, ["boom", "k"], timeout=5)
        with pytest.raises(WireTypeError):
            await aio.process_command(cluster, {("a",): 1}, timeout=5)
        with pytest.raises(QueryError):
            await aio.consistent_query(cluster, divide_by_zero, timeout=5)
        results = await asyncio.gather(*(aio.process_command(cluster, ["incr"], timeout=5)
                                         for _ in range(20)))
        assert sorted(r[0] for r in results) == list(range(2, 22))

    asyncio.run(main())


def test_on_machine_error_crash_keeps_ras_behaviour(tmp_path: Any) -> None:
    system = raft_otp.start_in(str(tmp_path / "crash"), name=f"crash{time.monotonic_ns()}",
                               on_machine_error="crash")
    try:
        sid = ServerId("crash_" + system.name, raft_otp.node_name())
        raft_otp.start_cluster(system, "crash", (Fragile, {}), [sid], timeout=10)
        assert raft_otp.process_command(sid, ["incr"], timeout=5)[0] == 1
        with pytest.raises(raft_otp.RaftError) as info:
            raft_otp.process_command(sid, ["boom", "k"], timeout=1)
        assert not isinstance(info.value, MachineError)  # the server crashed instead
    finally:
        raft_otp.stop_system(system)
