"""Goal: API calls fail with the documented exceptions, and the asyncio forms work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import raft_otp
import raft_otp.aio
import raft_otp.errors
from raft_otp import ServerId
from raft_otp.machines.counter import Counter



def test_unknown_server_and_system(system: raft_otp.System) -> None:
    nobody = ServerId("nobody_here", raft_otp.node_name())
    with pytest.raises(raft_otp.ServerNotFound):
        raft_otp.process_command(nobody, ["incr"], timeout=1)
    with pytest.raises(raft_otp.ServerNotFound):
        raft_otp.local_query(nobody, lambda s: s, timeout=1)
    with pytest.raises(raft_otp.SystemNotRunning):
        raft_otp.start_cluster("no_such_system", "c", (Counter, None), [nobody])
    with pytest.raises(raft_otp.BadArgument):
        raft_otp.start_cluster(system, "c", (dict, None), [nobody])
    with pytest.raises(raft_otp.BadArgument):
        raft_otp.process_command(12345, ["incr"])
    with pytest.raises(raft_otp.BadArgument):
        raft_otp.add_member(nobody, nobody, kind="boss")


def test_duplicate_start_and_lifecycle(system: raft_otp.System) -> None:
    sid = ServerId("dup_" + system.name, raft_otp.node_name())
    assert raft_otp.start_cluster(system, "c", (Counter, None), [sid])[0] == [sid]
    with pytest.raises(raft_otp.errors.AlreadyStarted, match="dup_"):  # a second start_cluster raises
        raft_otp.start_cluster(system, "c", (Counter, None), [sid])
    raft_otp.force_delete_server(system, sid)
    with pytest.raises(raft_otp.ServerNotFound):
        raft_otp.ping(sid, timeout=1)
    assert system.name in [s.name for s in raft_otp.api.systems()]


def test_asyncio_forms(system: raft_otp.System) -> None:
    sid = ServerId("aio_" + system.name, raft_otp.node_name())
    raft_otp.start_cluster(system, "a", (Counter, None), [sid])

    async def main() -> None:
        replies = await asyncio.gather(*(raft_otp.aio.process_command(sid, ["incr"]) for _ in range(50)))
        assert sorted(r for r, _ in replies) == list(range(1, 51))
        assert (await raft_otp.aio.consistent_query(sid, lambda s: s))[0] == 50
        assert (await raft_otp.aio.leader_query(sid, lambda s: s))[0] == 50
        assert (await raft_otp.aio.local_query(sid, lambda s: s))[0] == 50
        q: asyncio.Queue[Any] = asyncio.Queue()
        for i in range(10):
            raft_otp.aio.pipeline_command(sid, ["incr"], i, q)
        got: list[Any] = []
        while len(got) < 10:
            got.extend((await asyncio.wait_for(q.get(), 5)).replies)
        assert sorted(c for c, _ in got) == list(range(10))
        with pytest.raises(raft_otp.ServerNotFound):
            await raft_otp.aio.process_command(ServerId("nope", raft_otp.node_name()), ["incr"])

    asyncio.run(main())
