"""Goal: several systems on one node are isolated (own WAL, own data dir) and stop cleanly."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import DataDirLocked
from raft_otp.machines.counter import Counter


def test_two_systems_are_isolated(tmp_path: Any) -> None:
    tag = time.monotonic_ns()
    a = raft_otp.start_in(str(tmp_path / "a"), name=f"a{tag}")
    b = raft_otp.start_system({"name": f"b{tag}", "data_dir": str(tmp_path / "b"),
                               "wal_sync_method": "none"})
    try:
        assert raft_otp.start_in(str(tmp_path / "a"), name=f"a{tag}") is a  # idempotent
        with pytest.raises(raft_otp.BadArgument):
            raft_otp.start_in(str(tmp_path / "other"), name=f"a{tag}")
        with pytest.raises(DataDirLocked):  # one owner per data dir
            raft_otp.start_in(str(tmp_path / "a"), name=f"c{tag}")
        sa, sb = ServerId(f"sa{tag}", raft_otp.node_name()), ServerId(f"sb{tag}", raft_otp.node_name())
        assert raft_otp.start_cluster(a, "x", (Counter, None), [sa])[0] == [sa]
        assert raft_otp.start_cluster(b, "x", (Counter, None), [sb])[0] == [sb]
        raft_otp.process_command(sa, ["incr"])
        raft_otp.process_command(sb, ["incr", 5])
        assert raft_otp.local_query(sb, lambda s: s)[0] == 5
        assert list(raft_otp.overview(a)["servers"]) == [sa.name]
        assert list(raft_otp.overview(b)["servers"]) == [sb.name]
        assert os.listdir(tmp_path / "a" / "wal") and os.listdir(tmp_path / "b" / "wal")
        tree = a.tree()
        kids = [c["id"] for c in tree["children"]]
        assert kids == ["log", "servers", "system_actor"], kids
        raft_otp.stop_system(b)
        with pytest.raises(raft_otp.SystemNotRunning):
            raft_otp.overview(b)
        assert raft_otp.process_command(sa, ["incr"])[0] == 2  # a is unaffected
    finally:
        for s in (a, b):
            try:
                raft_otp.stop_system(s)
            except raft_otp.SystemNotRunning:
                pass


def test_stopped_system_comes_back_with_its_servers(tmp_path: Any) -> None:
    name = f"r{time.monotonic_ns()}"
    s = raft_otp.start_in(str(tmp_path / "d"), name=name)
    sid = ServerId(f"{name}_s", raft_otp.node_name())
    raft_otp.start_cluster(s, "c", (Counter, None), [sid])
    for _ in range(3):
        raft_otp.process_command(sid, ["incr"])
    raft_otp.stop_system(s)
    s = raft_otp.start_in(str(tmp_path / "d"), name=name)  # the system actor recovers it
    try:
        assert raft_otp.process_command(sid, ["incr"], timeout=10)[0] == 4
    finally:
        raft_otp.stop_system(s)
