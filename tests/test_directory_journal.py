"""Goal: the server directory is a journal: a change is one durable append, a torn
append is dropped, a damaged record is reported, dead records are compacted away,
version 1 files are read, and the name and cluster indexes follow every change."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import msgpack
import pytest

from raft_otp.core.types import ServerId
from raft_otp.errors import CorruptFile
from raft_otp.system import directory as dirmod
from raft_otp.system.directory import Directory, ServerRecord


def _rec(uid: str, name: str, cluster: str = "c1") -> ServerRecord:
    return ServerRecord(uid, name, cluster, ("raft_otp.machines.counter:Counter", {}),
                        (ServerId(name, "n1@127.0.0.1:1"), ServerId("x", "n2@127.0.0.1:2")))


def test_a_change_appends_one_record(tmp_path: Path) -> None:
    d = Directory(str(tmp_path))
    d.put(_rec("u1", "s1"))
    size1 = os.path.getsize(d.path)
    d.put(_rec("u2", "s2"))
    size2 = os.path.getsize(d.path)
    d.put(_rec("u3", "s3"))
    assert os.path.getsize(d.path) - size2 == size2 - size1 > 0  # appended, not rewritten
    d.put_many([_rec(f"m{i}", f"m{i}") for i in range(50)])
    assert sorted(r.uid for r in Directory(str(tmp_path))) == sorted(["u1", "u2", "u3"] +
                                                                     [f"m{i}" for i in range(50)])


def test_indexes_follow_puts_replacements_and_removals(tmp_path: Path) -> None:
    d = Directory(str(tmp_path))
    d.put_many([_rec("u1", "s1", "a"), _rec("u2", "s2", "a"), _rec("u3", "s3", "b")])
    assert [r.name for r in d.by_cluster("a")] == ["s1", "s2"]
    d.put(_rec("u2", "s2x", "b"))  # same uid, new name and cluster
    assert d.by_name("s2") is None and d.by_name("s2x").uid == "u2"
    assert [r.name for r in d.by_cluster("a")] == ["s1"]
    assert [r.name for r in d.by_cluster("b")] == ["s2x", "s3"]
    d.remove("u1")
    assert d.by_cluster("a") == [] and d.by_name("s1") is None
    d2 = Directory(str(tmp_path))
    assert sorted(r.uid for r in d2) == ["u2", "u3"] and d2.by_name("s2x").cluster_name == "b"


def test_a_torn_append_is_dropped_and_the_file_stays_usable(tmp_path: Path) -> None:
    d = Directory(str(tmp_path))
    d.put(_rec("u1", "s1"))
    d.put(_rec("u2", "s2"))
    full = os.path.getsize(d.path)
    with open(d.path, "r+b") as f:
        f.truncate(full - 5)  # the last append cut short by a crash
    d2 = Directory(str(tmp_path))
    assert [r.uid for r in d2] == ["u1"]
    d2.put(_rec("u3", "s3"))
    assert sorted(r.uid for r in Directory(str(tmp_path))) == ["u1", "u3"]


def test_a_damaged_record_before_the_end_is_reported(tmp_path: Path) -> None:
    d = Directory(str(tmp_path))
    d.put(_rec("u1", "s1"))
    d.put(_rec("u2", "s2"))
    with open(d.path, "r+b") as f:
        f.seek(dirmod.FILE_HEADER.size + dirmod.RECORD_HEADER.size + 3)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(CorruptFile, match="checksum"):
        Directory(str(tmp_path))


def test_dead_records_are_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirmod, "COMPACT_MIN_DEAD", 10)
    d = Directory(str(tmp_path))
    d.put_many([_rec(f"u{i}", f"s{i}") for i in range(5)])
    one = os.path.getsize(d.path)
    for k in range(40):  # replace the same records over and over
        d.put(ServerRecord(f"u{k % 5}", f"s{k % 5}", "c1", ("m:M", {"k": k}), ()))
    assert os.path.getsize(d.path) < 3 * one  # 40 appends would be ~9x
    d2 = Directory(str(tmp_path))
    assert {r.uid: r.machine[1]["k"] for r in d2} == {f"u{i}": 35 + i for i in range(5)}


def test_a_version_1_file_is_read_and_rewritten_at_the_first_change(tmp_path: Path) -> None:
    body = msgpack.packb({"u1": _rec("u1", "s1").to_wire()[:4]}, use_bin_type=True)
    path = tmp_path / dirmod.FILE_NAME
    path.write_bytes(struct.pack("<4sHII", b"RODR", 1, zlib.crc32(body), len(body)) + body)
    d = Directory(str(tmp_path))
    assert d.by_name("s1").uid == "u1" and d.get("u1").stopped is False
    d.put(_rec("u2", "s2"))
    assert path.read_bytes()[4:6] == struct.pack("<H", 2)
    assert sorted(r.uid for r in Directory(str(tmp_path))) == ["u1", "u2"]


def test_a_failed_append_leaves_the_record_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Directory(str(tmp_path))
    d.put(_rec("u1", "s1"))

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dirmod.os, "fdatasync", no_space)
    with pytest.raises(OSError):
        d.put(_rec("u2", "s2"))
    assert d.get("u2") is None and d.by_name("s2") is None and [r.uid for r in d] == ["u1"]
