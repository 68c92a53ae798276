"""Goal: a client that binds no port (raft_otp.connect) runs commands and queries against 3
node processes through a leadership transfer and a SIGKILL of the leader, in "mac" and in
"curve" mode, every command applied exactly once; it fails fast on bad input and unknown
clusters, and its asyncio form does the same through a leader change."""

from __future__ import annotations

import asyncio
import os
import queue
import time
from typing import Iterator

import psutil
import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import BadArgument, MachineError, ServerNotFound
from raft_otp.node import runtime as node_rt
from raft_otp.system.harness import NodeProcs

pytestmark = [pytest.mark.processes, pytest.mark.timeout(180)]

COUNTER = ("raft_otp.machines.counter:Counter", {})


@pytest.fixture(params=["mac", "curve"])
def nodes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[NodeProcs]:
    """3 node processes; this process is not a node (it only connects out)."""
    assert not node_rt.is_started()
    h = NodeProcs(str(tmp_path_factory.mktemp(f"client-{request.param}")), 3,
                  transport_security=request.param)
    try:
        h.start()
        yield h
    finally:
        h.close()


def _connect(h: NodeProcs) -> raft_otp.Client:
    return raft_otp.connect([np.name for np in h.nodes], cookie_file=h.cookie_file,
                            transport_security=h.security, timeout=10)


def _listening_ports() -> list[int]:
    return [c.laddr.port for c in psutil.Process().net_connections("inet") if c.status == "LISTEN"]


def _node_ports(h: NodeProcs) -> set[int]:
    return {int(np.name.rsplit(":", 1)[1]) for np in h.nodes}


def _index_of(h: NodeProcs, sid: ServerId) -> int:
    return next(i for i, np in enumerate(h.nodes) if np.name == sid.node)


def _transfer_away(c: raft_otp.Client, leader: ServerId, other: ServerId) -> None:
    """Transfer leadership from ``leader`` to ``other`` and wait (asking the cluster,
    through the client) until ``leader`` leads no more.  "ok" means the transfer
    started: on a loaded box the target may lose its election and the old leader
    win again, so a transfer that did not take is asked again (at most 5 times)."""
    for _ in range(5):
        assert c.transfer_leadership("count", other) in ("ok", "already_leader")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            now = c.leader("count")
            if now is not None and now != leader:
                return
    raise AssertionError(f"leadership never moved away from {leader}")


def test_a_portless_client_commits_through_a_transfer_and_a_sigkill(nodes: NodeProcs) -> None:
    with _connect(nodes) as c:
        assert c.node_name.endswith(":0")
        started, not_started = c.start_cluster("count", COUNTER, timeout=30)
        assert not_started == [] and len(started) == 3
        expected = 0
        for _ in range(20):
            value, leader = c.process_command("count", ["incr"])
            expected += 1
            assert value == expected
        # it binds nothing: no listening socket in this process, and every connection
        # it has goes out to a node's port
        assert _listening_ports() == []
        conns = psutil.Process().net_connections("inet")
        assert conns and all(x.raddr and x.raddr.port in _node_ports(nodes) for x in conns), conns

        # a leadership transfer
        _transfer_away(c, leader, next(sid for sid in started if sid != leader))
        for _ in range(20):
            value, leader2 = c.process_command("count", ["incr"])
            expected += 1
            assert value == expected
        assert leader2 != leader
        # a pipelined command's outcome comes back over the client's connection too
        outcomes: queue.Queue[object] = queue.Queue()
        c.pipeline_command("count", ["incr"], correlation="p1", notify=outcomes)
        got = outcomes.get(timeout=10)
        expected += 1
        assert isinstance(got, raft_otp.Applied) and [list(r) for r in got.replies] == [["p1", expected]], got

        # SIGKILL of the leader: the client's calls go on with the 2 others
        nodes.kill(_index_of(nodes, leader2))
        for _ in range(20):
            value, leader3 = c.process_command("count", ["incr"])
            expected += 1
            assert value == expected  # exactly once: no command lost, none applied twice
        assert leader3 != leader2
        assert c.consistent_query("count", "raft_otp.system.queries:state")[0] == expected
        members, leader4 = c.members("count")
        assert set(members) == set(started) and leader4 == leader3
        with pytest.raises(MachineError):  # the machine's error, from the server
            c.process_command("count", ["nope"])
        assert _listening_ports() == []


def test_the_asyncio_client_follows_the_leader(nodes: NodeProcs) -> None:
    async def run() -> None:
        async with raft_otp.connect_async([np.name for np in nodes.nodes],
                                          cookie_file=nodes.cookie_file,
                                          transport_security=nodes.security,
                                          timeout=10) as ac:
            expected = 0
            for _ in range(10):
                value, leader = await ac.process_command("acount", ["incr"])
                expected += 1
                assert value == expected
            assert leader is not None
            nodes.kill(_index_of(nodes, leader))
            for _ in range(10):
                value, leader2 = await ac.process_command("acount", ["incr"])
                expected += 1
                assert value == expected
            assert leader2 != leader
            got, _ = await ac.consistent_query("acount", "raft_otp.system.queries:state")
            assert got == expected
            assert _listening_ports() == []

    with _connect(nodes) as c:
        c.start_cluster("acount", COUNTER, timeout=30)
        asyncio.run(run())


def test_bad_input_and_unknown_clusters_fail_fast(nodes: NodeProcs) -> None:
    with pytest.raises(BadArgument):
        raft_otp.connect([], cookie_file=nodes.cookie_file)
    with pytest.raises(BadArgument):
        raft_otp.connect(["not-a-node-name"], cookie_file=nodes.cookie_file)
    with pytest.raises(BadArgument):
        raft_otp.connect([nodes[0].name], cookie_file=os.path.join(nodes.base_dir, "missing"))
    assert not node_rt.is_started()
    with _connect(nodes) as c:
        with pytest.raises(ServerNotFound):  # no such cluster on any member: within a round trip
            c.process_command("nothing-here", ["incr"], timeout=5)
        with pytest.raises(BadArgument):
            c.process_command("bad name!", ["incr"])
    assert not node_rt.is_started()  # the last client closed: the client node stopped


def test_the_readmes_cross_process_example_runs_as_written(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's client example, with only the node names replaced by the test's
    (free ports) and the default cookie file pointed at the test's."""
    import pathlib
    import re
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    example = next(b for b in re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
                   if "raft_otp.connect(nodes)" in b and "KeyValue" in b)
    h = NodeProcs(str(tmp_path_factory.mktemp("readme")), 3)
    try:
        h.start()
        names = [np.name for np in h.nodes]
        source, n = re.subn(r"^nodes = \[.*\].*$", f"nodes = {names!r}", example, flags=re.M)
        assert n == 1
        monkeypatch.setenv("RAFT_OTP_COOKIE_FILE", h.cookie_file)
        scope: dict[str, object] = {}
        exec(compile(source, "README.md", "exec"), scope)
        assert scope["reply"] == [True, 4] and scope["value"] == 4
        assert not node_rt.is_started()
    finally:
        h.close()


def test_the_clis_client_node_binds_no_port() -> None:
    """The CLI's client commands run inside console.common.client_node: a port-less node."""
    from raft_otp.console.common import client_node
    assert not node_rt.is_started()
    with client_node("a-cookie", "127.0.0.1") as name:
        assert name.endswith("@127.0.0.1:0") and node_rt.node_name() == name
        assert _listening_ports() == []
    assert not node_rt.is_started()
