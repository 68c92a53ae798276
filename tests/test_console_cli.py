"""Goal: the raft-otp CLI, run as a subprocess against real `raft-otp start` node processes,
starts nodes, shows status and the tree, kills an actor and sees it restarted, runs every
cluster command, fails with one clear line (an API error by its class, exit 1), says what a
partly done command did and did not do (a member's node down), and stops nodes cleanly
(restart recovers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
from typing import Any, Iterator

import psutil
import pytest

from raft_otp.console.testing import CliNodes

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliNodes]:
    h = CliNodes(str(tmp_path_factory.mktemp("console")), 3)
    try:
        h.start()
        yield h
    finally:
        h.close()
        for nd in h.nodes:
            assert not nd.alive()


def _cluster(view: dict[str, Any], cluster: str) -> dict[str, Any]:
    return view["systems"]["default"]["clusters"][cluster]


def _members(view: dict[str, Any], cluster: str) -> list[dict[str, Any]]:
    return _cluster(view, cluster)["members"]


def _wait_for(fn: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _one_line_error(r: Any, *needles: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and lines[0].startswith("raft-otp")
    for n in needles:
        assert n in lines[0], lines[0]


def test_status_and_tree_with_a_cluster(nodes: CliNodes) -> None:
    n1, n2, n3 = (nd.name for nd in nodes.nodes)
    assert nodes.json("status", "--node", n1)["systems"]["default"]["clusters"] == {}
    out = nodes.json("cluster", "start", "kv1", "--machine", "kv", "--members", n1, n2, n3)
    assert len(out["started"]) == 3 and out["leader"] is not None
    view = nodes.json("status", "--node", n2)
    members = _members(view, "kv1")
    assert sorted(m["node"] for m in members) == sorted([n1, n2, n3])
    assert [m["role"] for m in members].count("leader") == 1
    assert all(m["term"] >= 1 and m["commit_index"] >= 1 for m in members)
    kv1 = view["systems"]["default"]["clusters"]["kv1"]
    assert kv1["machine"] == "raft_otp.machines.kv:KeyValue"
    tree = nodes.json("tree", "--node", n1)
    text = repr(tree)
    for part in ("system:default", "wal", "segment_writer", "servers", "system_actor"):
        assert part in text
    servers = [c for r in tree["roots"] for c in _walk(r) if c.get("raft")]
    assert [s["raft"]["cluster"] for s in servers] == ["kv1"]
    assert servers[0]["raft"]["role"] in ("leader", "follower") and servers[0]["thread"]
    assert servers[0]["mailbox"] == 0 and servers[0]["status"] == "running"
    human = nodes.run("tree", "--node", n1)
    assert human.returncode == 0 and "[kv1: " in human.stdout and "WalActor" in human.stdout
    human = nodes.run("status", "--node", n1)
    assert human.returncode == 0 and "cluster kv1" in human.stdout and "leader" in human.stdout


def _walk(n: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield n
    for c in n.get("children") or []:
        yield from _walk(c)


def test_commands_queries_and_membership(nodes: CliNodes) -> None:
    n1, n2, n3 = (nd.name for nd in nodes.nodes)
    nodes.json("cluster", "start", "kv2", "--members", f"{n1},{n2}")
    for i in range(5):
        out = nodes.json("command", "--node", n2, "--cluster", "kv2", "put", f"k{i}", str(i))
        assert out["reply"] == ["ok"]
    want = {f"k{i}": i for i in range(5)}
    assert nodes.json("query", "--node", n1, "-c", "kv2")["result"] == want
    got = nodes.json("query", "--node", n2, "-c", "kv2", "--key", "k3", "--kind", "leader")
    assert got["result"] == 3
    # add a member on n3; it catches up
    out = nodes.json("cluster", "add-member", "kv2", "--node", n1, n3)
    assert out["added"] == ["kv2", n3]
    _wait_for(lambda: nodes.json("query", "--node", n3, "-c", "kv2", "--kind", "local")["result"]
              == {f"k{i}": i for i in range(5)})
    # leadership to n3, then remove n1's member (its data deleted)
    out = nodes.json("cluster", "transfer-leadership", "kv2", "--node", n1, n3)
    assert out["result"] in ("ok", "already_leader")
    _wait_for(lambda: _cluster(nodes.json("status", "--node", n3), "kv2")["leader"] == ["kv2", n3])
    out = nodes.json("cluster", "remove-member", "kv2", "--node", n3, n1)
    assert out["removed"] == ["kv2", n1] and out["data_deleted"]
    members = _members(nodes.json("status", "--node", n3), "kv2")
    assert sorted(m["node"] for m in members) == sorted([n2, n3])
    r = nodes.run("query", "--node", n1, "-c", "kv2")
    _one_line_error(r, "no cluster 'kv2'")
    _one_line_error(nodes.run("cluster", "start", "kv2", "-m", n2, n3), "already exists")
    # a counter cluster, then delete it
    nodes.json("cluster", "start", "c1", "--machine", "counter", "-m", n1, n2, n3)
    assert nodes.json("command", "-n", n3, "-c", "c1", "incr")["reply"] == 1
    assert nodes.json("command", "-n", n3, "-c", "c1", "incr", "41")["reply"] == 42
    assert nodes.json("query", "-n", n1, "-c", "c1")["result"] == 42
    out = nodes.json("cluster", "delete", "c1", "--node", n2)
    assert len(out["deleted"]) == 3 and out["failed"] == []
    for nd in nodes.nodes:
        view = nodes.json("status", "--node", nd.name, "--local")
        assert "c1" not in view["systems"]["default"]["clusters"]


def test_kill_an_actor_and_see_it_restarted(nodes: CliNodes) -> None:
    n1 = nodes[0].name

    def wal() -> dict[str, Any]:
        tree = nodes.json("tree", "--node", n1)
        return next(c for r in tree["roots"] for c in _walk(r)
                    if c.get("name") == "raft_otp.wal.default")

    before = wal()
    out = nodes.json("kill", "--node", n1, "log/wal")
    assert out["restarted"] and out["restarts"] == before["restarts"] + 1
    after = wal()
    assert after["restarts"] == before["restarts"] + 1 and after["status"] == "running"
    assert after["thread"] != before["thread"]
    r = nodes.run("kill", "--node", n1, "raft_otp.wal.default")
    assert r.returncode == 0 and "restarts" in r.stdout and "->" in r.stdout
    _one_line_error(nodes.run("kill", "--node", n1, "no/such/actor"), "no actor")
    out = nodes.json("kill", "--node", n1, "segment_writer")  # unnamed: killed by its urn
    assert out["restarted"] and out["name"].startswith("urn:")


def test_errors_are_one_line(nodes: CliNodes, tmp_path: Any) -> None:
    n1 = nodes[0].name
    dead = f"x@127.0.0.1:{_closed_port()}"
    _one_line_error(nodes.run("status", "--node", dead, "--timeout", "1"), "unreachable")
    bad = tmp_path / "bad_cookie"
    bad.write_text("not-the-secret\n")
    _one_line_error(nodes.run("status", "--node", n1, "--timeout", "1", "--cookie-file", str(bad),
                              cookie=False), "wrong cookie")
    _one_line_error(nodes.run("command", "--node", n1, "-c", "nope", "get", "a"),
                    "no cluster 'nope'")
    _one_line_error(nodes.run("status", "--node", "not-a-node"), "name@host:port")
    _one_line_error(nodes.run("status"), "--node")
    _one_line_error(nodes.run("frobnicate"), "invalid choice")
    _one_line_error(nodes.run("cluster", "start", "z", "-m", n1, "--machine", "nope"),
                    "unknown machine")
    _one_line_error(nodes.run("status", "--node", n1, "--cookie-file", str(tmp_path / "missing"),
                              cookie=False), "cannot read cookie file")
    _one_line_error(nodes.run("status", "--node", n1, cookie=False), "no cookie")  # empty HOME


def _closed_port() -> int:
    from raft_otp.console.common import free_port
    return free_port()


def test_clean_stop_and_recovery(nodes: CliNodes) -> None:
    n1, n2, n3 = (nd.name for nd in nodes.nodes)
    nodes.json("cluster", "start", "kv3", "-m", n1, n2, n3)
    for i in range(10):
        nodes.json("command", "-n", n1, "-c", "kv3", "put", f"r{i}", str(i))
    want = {f"r{i}": i for i in range(10)}
    pid = nodes[2].proc.pid  # type: ignore[union-attr]
    children = [p.pid for p in psutil.Process(pid).children(recursive=True)]
    assert nodes.signal_and_wait(2, signal.SIGTERM) == 0
    assert any("stopped cleanly" in line for line in nodes[2].lines)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [c for c in children if psutil.pid_exists(c)]
    # a restart on the same data dir recovers its servers; --node comes from the data dir
    nodes.start(2, node_arg=False)
    recovered = int(next(line for line in nodes[2].lines if line.startswith("READY")).split()[2])
    assert recovered >= 3  # kv1, kv2, kv3
    _wait_for(lambda: nodes.json("query", "-n", n3, "-c", "kv3", "--kind", "local")["result"]
              == want)
    # Ctrl-C (SIGINT) is a clean stop too
    assert nodes.signal_and_wait(2, signal.SIGINT) == 0
    assert any("stopped cleanly" in line for line in nodes[2].lines)
    r = nodes.run("start", "--data-dir", nodes[2].data_dir, "--node", "other@127.0.0.1:1")
    _one_line_error(r, "belongs to node")
    nodes.start(2)
    for nd in nodes.nodes:
        assert "Traceback" not in nodes.stderr_of(nd)


def test_default_cookie_is_created_0600_and_config_file(tmp_path: Any) -> None:
    h = CliNodes(str(tmp_path), 1)
    bad = tmp_path / "bad.toml"
    bad.write_text('wal_sync_methd = "none"\n')
    _one_line_error(h.run("start", "--data-dir", h[0].data_dir, "--config", str(bad)), "bad config")
    with socket.socket() as busy:  # a port in use: one line, and the data dir stays unbound
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"x@127.0.0.1:{busy.getsockname()[1]}"
        _one_line_error(h.run("start", "--data-dir", h[0].data_dir, "--node", taken), "in use")
    good = tmp_path / "node.toml"
    good.write_text('wal_sync_method = "none"\nbroadcast_time_ms = 50\n')
    try:
        h.start(cookie_arg=False, extra=("--config", str(good)))
        path = os.path.join(h.home, ".raft_otp_cookie")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        # a client on the same machine finds it without --cookie-file
        view = h.json("status", "--node", h[0].name, cookie=False)
        assert view["node"] == h[0].name
        assert view["systems"]["default"]["wal"]["sync_method"] == "none"
        assert h.signal_and_wait(0, signal.SIGTERM) == 0
    finally:
        h.close()


# ---- issue 17: errors and partial outcomes.  Last in the module: the nodes log the
# tracebacks of the machine errors these provoke, which test_clean_stop_and_recovery
# would find in their stderr.

def test_api_errors_exit_non_zero_with_one_line(nodes: CliNodes) -> None:
    """A machine that raises (an unknown or malformed command) and a query that raises
    reach the CLI as MachineError / QueryError: one line, exit status 1; the cluster
    goes on, every member with the same state."""
    n1, n2, n3 = (nd.name for nd in nodes.nodes)
    nodes.json("cluster", "start", "e1", "--machine", "kv", "-m", n1, n2, n3)
    nodes.json("cluster", "start", "e2", "--machine", "counter", "-m", n1, n2, n3)
    assert nodes.json("command", "-n", n1, "-c", "e1", "put", "a", "1")["reply"] == ["ok"]
    _one_line_error(nodes.run("command", "-n", n2, "-c", "e1", "frobnicate", "a"),
                    "MachineError", "frobnicate")
    _one_line_error(nodes.run("command", "-n", n1, "-c", "e1", "put"), "MachineError")
    _one_line_error(nodes.run("query", "-n", n3, "-c", "e2", "--key", "x"), "QueryError")
    _one_line_error(nodes.run("query", "-n", n3, "-c", "e2", "--key", "x", "--kind", "local"),
                    "QueryError")
    assert nodes.json("command", "-n", n3, "-c", "e1", "put", "b", "2")["reply"] == ["ok"]
    assert nodes.json("command", "-n", n3, "-c", "e2", "incr")["reply"] == 1
    for cluster, want in (("e1", {"a": 1, "b": 2}), ("e2", 1)):
        for n in (n1, n2, n3):
            _wait_for(lambda n=n, cluster=cluster, want=want: nodes.json(
                "query", "-n", n, "-c", cluster, "--kind", "local")["result"] == want)


def test_command_and_query_map_every_raft_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Any) -> None:
    """In-process: whatever RaftError the API raises (a multi-line message included),
    `command` and `query` print `raft-otp: error: Class: message` on one line, exit 1."""
    import contextlib

    import raft_otp
    from raft_otp.console import cli, cluster_cmds
    from raft_otp.errors import MachineError, NodeDown, QueryError, Timeout

    cookie = tmp_path / "cookie"
    cookie.write_text("secret\n")
    monkeypatch.setattr(cluster_cmds, "find_server", lambda *a, **k: ("c", {}))
    monkeypatch.setattr(cluster_cmds, "client_node", lambda *a, **k: contextlib.nullcontext())
    cases = [MachineError("ValueError", "unknown command 'x'\nsecond line", 7),
             QueryError("AttributeError", "'int' object has no attribute 'get'"),
             Timeout("no answer within 5 s"), NodeDown("node n1@127.0.0.1:1 is down")]
    for exc in cases:
        def boom(*_a: Any, exc: Exception = exc, **_k: Any) -> Any:
            raise exc
        for fn in ("process_command", "consistent_query", "local_query"):
            monkeypatch.setattr(raft_otp, fn, boom)
        for argv in (["command", "-n", "n1@127.0.0.1:1", "-c", "c", "x"],
                     ["query", "-n", "n1@127.0.0.1:1", "-c", "c"],
                     ["query", "-n", "n1@127.0.0.1:1", "-c", "c", "--kind", "local"]):
            assert cli.main([*argv, "--cookie-file", str(cookie)]) == 1
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1, err
            assert err.startswith(f"raft-otp: error: {type(exc).__name__}: "), err
            assert " ".join(str(exc).split()) in err


def test_partial_delete_and_remove_say_what_was_done(nodes: CliNodes) -> None:
    """With node 3 killed: `cluster remove-member` of its member commits and says so,
    and that its data could not be deleted; `cluster delete` deletes the other members
    and names the one it could not delete, with the reason; both exit 1.  A command to a
    cluster without a quorum is a Timeout, exit 1.  Once node 3 is back, deleting from
    it finishes the job."""
    n1, n2, n3 = (nd.name for nd in nodes.nodes)
    for name in ("r1", "d1"):
        nodes.json("cluster", "start", name, "--machine", "counter", "-m", n1, n2, n3)
    nodes.json("cluster", "start", "q1", "--machine", "counter", "-m", n1, n3)
    assert nodes.json("command", "-n", n1, "-c", "r1", "incr")["reply"] == 1
    proc = nodes[2].proc
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)  # the node and any child of its session
    proc.wait(10)

    r = nodes.run("cluster", "remove-member", "r1", "--node", n1, n3, "--json")
    _one_line_error(r, "removed r1@" + n3, "committed", "were not deleted", "NodeDown")
    out = json.loads(r.stdout)
    assert out["removed"] == ["r1", n3] and out["data_deleted"] is False
    assert "NodeDown" in out["data_error"]
    members = _members(nodes.json("status", "--node", n1), "r1")
    assert sorted(m["node"] for m in members) == sorted([n1, n2])
    assert nodes.json("command", "-n", n2, "-c", "r1", "incr")["reply"] == 2

    r = nodes.run("cluster", "delete", "d1", "--node", n1, "--json")
    _one_line_error(r, "deleted 2 of 3", "d1@" + n3, "NodeDown")
    out = json.loads(r.stdout)
    assert sorted(s[1] for s in out["deleted"]) == sorted([n1, n2])
    assert [f["server"] for f in out["failed"]] == [["d1", n3]]
    assert out["failed"][0]["error"].startswith("NodeDown: ")
    for n in (n1, n2):
        assert "d1" not in _cluster_names(nodes, n)

    _one_line_error(nodes.run("command", "-n", n1, "-c", "q1", "incr", "--timeout", "1"), "Timeout")

    nodes.start(2)
    assert "d1" in _cluster_names(nodes, n3)  # its member was not deleted
    out = nodes.json("cluster", "delete", "d1", "--node", n3)
    assert len(out["deleted"]) == 3 and out["failed"] == []
    assert "d1" not in _cluster_names(nodes, n3)
    _wait_for(lambda: nodes.json("command", "-n", n1, "-c", "q1", "incr", "--timeout", "10")["reply"]
              >= 1)
    out = nodes.json("cluster", "delete", "q1", "--node", n1, "--members", n1, n3)
    assert sorted(s[1] for s in out["deleted"]) == sorted([n1, n3]) and out["failed"] == []
    for name, at in (("r1", n1), ("r1", n3)):  # r1's old member on n3 has its own view
        if name in _cluster_names(nodes, at):
            nodes.json("cluster", "delete", name, "--node", at)


def _cluster_names(nodes: CliNodes, node: str) -> list[str]:
    return list(nodes.json("status", "--node", node, "--local")["systems"]["default"]["clusters"])
