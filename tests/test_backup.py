"""Goal: a backup taken through the leader at one applied index restores into a fresh
cluster on 3 node processes with an equal state (which then runs its machine as
before), through the API and the CLI; a damaged backup file is refused with CorruptFile
before anything starts."""

from __future__ import annotations

import json
import os
from typing import Any

import msgpack
import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import CorruptFile
from raft_otp.system import backup as bk
from raft_otp.system.harness import running_nodes

KV = ("raft_otp.machines.kv:KeyValue", {})
STATE = "raft_otp.system.queries:state"


def _fake_backup(path: str, state: Any) -> None:
    bk._write(path, {"cluster": "c", "machine": "raft_otp.machines.kv:KeyValue",
                     "members": []}, state, 7, 2, ("c", "n1@127.0.0.1:1"))


def test_roundtrip_header_and_state(tmp_path: Any) -> None:
    p = str(tmp_path / "b.bak")
    _fake_backup(p, {"a": 1, "b": [1, 2]})
    info, state = bk.read_backup(p)
    assert state == {"a": 1, "b": [1, 2]}
    assert (info.cluster, info.machine, info.index, info.term) == (
        "c", "raft_otp.machines.kv:KeyValue", 7, 2)
    assert info.body_bytes == len(msgpack.packb(state))


def _damaged(path: str, offset: int) -> None:
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x01
    open(path, "wb").write(bytes(data))


def test_every_flipped_byte_is_refused(tmp_path: Any) -> None:
    p = str(tmp_path / "b.bak")
    _fake_backup(p, {"k": "v" * 50})
    size = os.path.getsize(p)
    for offset in range(size):
        _fake_backup(p, {"k": "v" * 50})
        _damaged(p, offset)
        with pytest.raises(CorruptFile):
            bk.read_backup(p)


@pytest.mark.parametrize("cut", [0, 10, 53, -1])
def test_truncated_files_are_refused(tmp_path: Any, cut: int) -> None:
    p = str(tmp_path / "b.bak")
    _fake_backup(p, {"k": 1})
    data = open(p, "rb").read()
    open(p, "wb").write(data[:cut] if cut >= 0 else data + b"x")
    with pytest.raises(CorruptFile):
        bk.read_backup(p)


@pytest.mark.processes
@pytest.mark.timeout(180)
def test_backup_then_restore_into_a_fresh_cluster(tmp_path: Any) -> None:
    out = str(tmp_path / "shop.bak")
    with running_nodes(str(tmp_path / "nodes"), 3) as h:
        ids = [ServerId("shop", np.name) for np in h.nodes]
        started, _ = raft_otp.start_cluster("default", "shop", KV, ids, timeout=20)
        assert len(started) == 3
        for i in range(30):
            raft_otp.process_command(ids[i % 3], ["put", f"k{i}", i])
        info = bk.backup(ids[1], out)
        source, _ = raft_otp.consistent_query(ids[0], STATE)
        assert len(source) == 30 and info.cluster == "shop"
        assert info.machine == "raft_otp.machines.kv:KeyValue" and info.index >= 31

        # a flipped byte: refused before anything starts
        bad = str(tmp_path / "bad.bak")
        data = bytearray(open(out, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(bad, "wb").write(bytes(data))
        new = [ServerId("shop2", np.name) for np in h.nodes]
        with pytest.raises(CorruptFile):
            bk.restore(bad, "shop2", new)
        assert all(raft_otp.overview("default", np.name)["servers"].get("shop2") is None
                   for np in h.nodes)

        started, not_started = bk.restore(out, "shop2", new, timeout=20)
        assert len(started) == 3 and not not_started
        restored, _ = raft_otp.consistent_query(new[2], STATE)
        assert restored == source
        # the restored cluster runs the KeyValue machine on from there, on every member
        assert raft_otp.process_command(new[0], ["cas", "k3", 3, 33])[0] == [True, 33]
        for sid in new:
            raft_otp.local_query(sid, STATE)  # each member answers
        # a backup of the restored cluster records the wrapped machine again
        info2 = bk.backup(new[0], str(tmp_path / "shop2.bak"))
        assert info2.machine == "raft_otp.machines.kv:KeyValue" and info2.machine_config == {}
        assert bk.read_backup(str(tmp_path / "shop2.bak"))[1] == {**source, "k3": 33}


@pytest.mark.processes
@pytest.mark.timeout(180)
def test_cli_backup_and_restore(tmp_path: Any) -> None:
    from raft_otp.console.testing import CliNodes
    h = CliNodes(str(tmp_path), 3)
    try:
        h.start()
        members = [nd.name for nd in h.nodes]
        r = h.run("cluster", "start", "inv", "--machine", "kv", "--members", *members)
        assert r.returncode == 0, r.stderr
        for i in range(5):
            r = h.run("command", "--node", members[i % 3], "--cluster", "inv", "put", f"a{i}",
                      str(i))
            assert r.returncode == 0, r.stderr
        out = str(tmp_path / "inv.bak")
        r = h.run("backup", "--node", members[2], "--cluster", "inv", "--out", out, "--json")
        assert r.returncode == 0, r.stderr
        head = json.loads(r.stdout)
        assert head["cluster"] == "inv" and head["index"] >= 6 and head["file"] == out
        r = h.run("restore", "--in", out, "--cluster", "inv2", "-m", *members)
        assert r.returncode == 0, r.stderr
        assert "inv2" in r.stdout
        q = h.json("query", "--node", members[1], "--cluster", "inv2")
        assert q["result"] == {f"a{i}": i for i in range(5)}
        _damaged(out, os.path.getsize(out) - 3)
        r = h.run("restore", "--in", out, "--cluster", "inv3", "-m", *members)
        assert r.returncode == 1 and "CorruptFile" in r.stderr, r.stderr
        assert "\n" not in r.stderr.strip()
    finally:
        h.close()


@pytest.mark.processes
@pytest.mark.timeout(180)
def test_backups_under_writes_are_at_their_index(tmp_path: Any) -> None:
    """A counter's value at applied index i is i minus the entries that are not commands
    (the leader's entry of its term, the cluster's config): a constant while the term
    stays.  Backups taken while a writer increments must each satisfy it."""
    import threading
    import time

    ctr = ("raft_otp.machines.counter:Counter", {})
    with running_nodes(str(tmp_path / "nodes"), 3) as h:
        ids = [ServerId("ctr", np.name) for np in h.nodes]
        started, _ = raft_otp.start_cluster("default", "ctr", ctr, ids, timeout=20)
        assert len(started) == 3
        for _ in range(5):
            raft_otp.process_command(ids[0], ["incr"])
        info0 = bk.backup(ids[0], str(tmp_path / "0.bak"))
        offset = info0.index - bk.read_backup(str(tmp_path / "0.bak"))[1]
        assert 0 < offset < info0.index
        stop, progress = threading.Event(), threading.Event()
        wrote: list[int] = []

        def writer() -> None:
            while not stop.is_set():
                wrote.append(raft_otp.process_command(ids[1], ["incr"])[0])
                progress.set()

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            seen = []
            for n in range(10):
                progress.clear()
                assert progress.wait(10), "the writer made no progress"
                path = str(tmp_path / f"{n + 1}.bak")
                info = bk.backup(ids[n % 3], path, timeout=30, attempts=200)
                value = bk.read_backup(path)[1]
                assert info.term == info0.term  # no election: the offset holds
                assert info.index - value == offset, (info.index, value, offset)
                seen.append(info.index)
        finally:
            stop.set()
            t.join(10)
        assert len(wrote) >= 4 and all(a < b for a, b in zip([info0.index, *seen], seen))
