"""Goal: the system actor starts the start requests of one slice as a batch (one
directory sync for them all) with the same checks as one by one: a name twice in
the batch, or a cluster name that another cluster of the batch uses, is refused,
and nothing of a refused request is left behind."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import raft_otp
from raft_otp.errors import AlreadyStarted
from raft_otp.node import runtime as node_rt
from raft_otp.system import directory as dirmod
from raft_otp.system.system_actor import StartServerReq, actor_name
from supervisors import registry

COUNTER = ("raft_otp.machines.counter:Counter", {})


def _req(name: str, cluster: str, other: str = "x") -> StartServerReq:
    me = node_rt.node()
    return StartServerReq(name, cluster, COUNTER[0], {}, [[name, me], [other, "n9@127.0.0.1:9"]])


def _ref(system: raft_otp.System) -> Any:
    return registry.whereis(actor_name(system.name))


def test_a_batch_starts_the_good_requests_and_refuses_the_bad(system: raft_otp.System) -> None:
    reqs = [_req("a1", "ca"), _req("b1", "cb"), _req("a1", "cz"),  # a1 twice
            _req("c1", "cb", other="y"),  # cluster cb is b1's, and c1 is not among b1's members
            _req("d1", "cd")]
    outcomes = _ref(system).proxy().start_servers(reqs).get(timeout=30)
    assert [type(o) for o in outcomes] == [str, str, AlreadyStarted, AlreadyStarted, str]
    assert "already exists" in str(outcomes[2]) and "cluster 'cb' already exists" in str(outcomes[3])
    d = system.ctx.directory
    assert sorted(r.name for r in d) == ["a1", "b1", "d1"]
    assert sorted(r.uid for r in d) == sorted(o for o in outcomes if isinstance(o, str))
    for name in ("a1", "b1", "d1"):
        assert registry.whereis(name) is not None
        uid = d.by_name(name).uid
        assert os.path.isdir(os.path.join(system.ctx.log_system.servers_dir, uid, "segments"))
    assert registry.whereis("c1") is None
    servers = os.listdir(system.ctx.log_system.servers_dir)
    assert sorted(servers) == sorted(r.uid for r in d)  # nothing of c1 or the second a1


def test_concurrent_start_requests_share_directory_syncs(system: raft_otp.System,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    appends = []
    real = dirmod.Directory._append

    def counting(self: Any, data: bytes) -> None:
        appends.append(len(data))
        real(self, data)

    monkeypatch.setattr(dirmod.Directory, "_append", counting)
    ref = _ref(system)
    n = 40
    t0 = time.perf_counter()
    futures = [ref.ask(_req(f"s{i}", f"c{i}"), block=False) for i in range(n)]
    uids = [f.get(timeout=60) for f in futures]
    took = time.perf_counter() - t0
    assert len(set(uids)) == n and all(isinstance(u, str) for u in uids)
    assert len(appends) < n, (len(appends), took)  # some requests shared a sync
    reopened = dirmod.Directory(system.ctx.config.data_dir)
    assert sorted(r.name for r in reopened) == sorted(f"s{i}" for i in range(n))
    assert all(registry.whereis(f"s{i}") is not None for i in range(n))
