"""Goal: the per-system server directory survives restarts and refuses corrupt files."""

from __future__ import annotations

import os

import pytest

from raft_otp.core.types import ServerId
from raft_otp.errors import CorruptFile
from raft_otp.system.directory import Directory, ServerRecord


def _rec(uid: str, name: str) -> ServerRecord:
    return ServerRecord(uid, name, "c1", ("raft_otp.machines.counter:Counter", {"a": b"x"}),
                        (ServerId("s1", "n1@127.0.0.1:1"), ServerId("s2", "n2@127.0.0.1:2")))


def test_put_reload_remove(tmp_path: os.PathLike[str]) -> None:
    d = Directory(str(tmp_path))
    assert len(d) == 0
    d.put(_rec("u1", "s1"))
    d.put(_rec("u2", "s2"))
    d2 = Directory(str(tmp_path))
    assert d2.get("u1") == _rec("u1", "s1")
    assert d2.by_name("s2").uid == "u2"
    assert isinstance(d2.get("u1").initial_members[0], ServerId)
    d2.remove("u1")
    assert [r.uid for r in Directory(str(tmp_path))] == ["u2"]


def test_corrupt_file_is_reported(tmp_path: os.PathLike[str]) -> None:
    d = Directory(str(tmp_path))
    d.put(_rec("u1", "s1"))
    with open(d.path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        b = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(CorruptFile):
        Directory(str(tmp_path))


def test_stopped_flag_round_trips_and_old_records_read_as_running(tmp_path: os.PathLike[str]) -> None:
    import dataclasses
    d = Directory(str(tmp_path))
    d.put(dataclasses.replace(_rec("u1", "s1"), stopped=True))
    assert Directory(str(tmp_path)).get("u1").stopped is True
    old = _rec("u2", "s2").to_wire()[:4]  # a record written before the flag existed
    assert ServerRecord.from_wire("u2", old).stopped is False
