"""Goal: term/vote are durable when store_term_vote returns, concurrent callers share syncs, damage is handled."""

from __future__ import annotations

import os
import threading
import time

import pytest

from raft_otp.errors import CorruptFile
from raft_otp.log.meta import META_HEADER, MetaStore


def test_store_get_reopen(tmp_path):
    m = MetaStore(str(tmp_path))
    assert m.get("x") == (0, None, 0)
    m.store_term_vote("x", 3, ("s1", "n1@h:1"))
    m.store_last_applied("x", 17)
    assert m.get("x") == (3, ("s1", "n1@h:1"), 17)
    m.store_term_vote("y", 1, None)
    m.close()
    m2 = MetaStore(str(tmp_path))
    assert m2.get("x") == (3, ("s1", "n1@h:1"), 17) and m2.get("y") == (1, None, 0)
    m2.delete("x")
    assert m2.get("x") == (0, None, 0)
    m2.close()
    assert MetaStore(str(tmp_path)).get("x") == (0, None, 0)


def test_group_commit_many_threads(tmp_path):
    m = MetaStore(str(tmp_path))
    n = 200
    start = threading.Barrier(n)

    def elect(k):
        start.wait()
        m.store_term_vote(f"s{k}", k + 1, [f"s{k}", "node"])

    ts = [threading.Thread(target=elect, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert m.counters["records"] == n and m.counters["syncs"] < n
    m.close()
    m2 = MetaStore(str(tmp_path))
    assert all(m2.get(f"s{k}")[:2] == (k + 1, (f"s{k}", "node")) for k in range(n))


def test_compaction_keeps_state(tmp_path):
    m = MetaStore(str(tmp_path), compact_bytes=2000)
    for t in range(200):
        m.store_term_vote("a", t, None)
    assert m.counters["compactions"] > 0
    m.close()
    assert MetaStore(str(tmp_path)).get("a")[0] == 199


@pytest.mark.parametrize("kind", ["truncate", "zeros"])
def test_torn_tail_dropped(tmp_path, kind):
    m = MetaStore(str(tmp_path))
    m.store_term_vote("a", 1, None)
    m.store_term_vote("a", 2, None)
    m.close()
    p = os.path.join(str(tmp_path), "meta.log")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        if kind == "truncate":
            f.truncate(size - 3)
        else:
            f.seek(size, 0)
            f.write(b"\0" * 64)
    m2 = MetaStore(str(tmp_path))
    assert m2.get("a")[0] == (1 if kind == "truncate" else 2)
    m2.store_term_vote("a", 5, None)  # appends after the dropped tail
    m2.close()
    assert MetaStore(str(tmp_path)).get("a")[0] == 5


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_mid_file_damage_keeps_the_records_after_it_and_marks_the_servers(tmp_path, caplog):
    """Damage before valid records (this raised CorruptFile and stopped the boot): the
    records after it are kept, the servers whose last record may be the damaged one
    are marked vote_unproven, one WARNING names the damage."""
    m = MetaStore(str(tmp_path))
    for t in range(5):
        m.store_term_vote("a", t, None)
    m.store_term_vote("b", 7, ["b", "n"])
    m.close()
    p = os.path.join(str(tmp_path), "meta.log")
    _flip(p, META_HEADER.size + 12)  # inside a's first record
    with caplog.at_level("WARNING", logger="raft_otp.meta"):
        m2 = MetaStore(str(tmp_path))
    assert m2.get("a")[0] == 4 and m2.get("b")[:2] == (7, ("b", "n"))
    # a and b both have records after the damage: their last votes are known
    assert m2.get_fences("a") == (False, None, 0) and m2.get_fences("b") == (False, None, 0)
    assert m2.get_fences("new") == (True, None, 0)  # its only record may be the damaged one
    assert [r.message for r in caplog.records if "damaged" in r.message].__len__() == 1
    assert not any("torn tail" in r.message for r in caplog.records)
    m2.close()


def test_a_flipped_byte_in_the_last_record_is_damage_not_a_torn_tail(tmp_path, caplog):
    """Issue 19: a byte flipped inside meta.log was reported as a torn tail and the last
    term/vote dropped as if never written.  A whole record with a bad checksum is
    damage: the server is marked vote_unproven (durably), and the older term kept."""
    m = MetaStore(str(tmp_path))
    m.store_term_vote("a", 4, None)
    m.store_term_vote("b", 3, None)
    m.store_term_vote("a", 5, ["b", "n"])  # a voted for b in term 5
    m.close()
    p = os.path.join(str(tmp_path), "meta.log")
    _flip(p, os.path.getsize(p) - 2)
    with caplog.at_level("WARNING", logger="raft_otp.meta"):
        m2 = MetaStore(str(tmp_path))
    assert not any("torn tail" in r.message for r in caplog.records)
    assert m2.get("a")[:2] == (4, None)
    # whose record it was is unknowable: every server whose last good record precedes it
    assert m2.get_fences("a")[0] is True and m2.get_fences("b")[0] is True
    m2.close()
    m3 = MetaStore(str(tmp_path))  # the mark survives a restart
    assert m3.get_fences("a")[0] is True and m3.get_fences("unknown")[0] is True
    m3.store_term_vote("a", 6, ["a", "n"], vote_unproven=False)  # the core lifted it
    m3.close()
    assert MetaStore(str(tmp_path)).get_fences("a")[0] is False


def test_fences_and_durable_commit_round_trip(tmp_path):
    m = MetaStore(str(tmp_path), lazy_flush_s=0)
    m.store_term_vote("a", 3, None, vote_unproven=True, data_lost=2)
    m.store_last_applied("a", 10, 12)
    assert m.get_fences("a") == (True, 2, 12) and m.get("a") == (3, None, 10)
    m.close()
    m2 = MetaStore(str(tmp_path))
    assert m2.get_fences("a") == (True, 2, 12) and m2.get("a") == (3, None, 10)
    m2.store_term_vote("a", 4, None)
    assert m2.get_fences("a") == (False, None, 12)
    m2.close()


def test_report_data_loss_is_durable_at_once(tmp_path):
    m = MetaStore(str(tmp_path))
    m.store_term_vote("a", 7, None)
    m.report_data_loss("a", 120)
    # no close: what a crash right now leaves
    assert MetaStore(str(tmp_path)).get_fences("a")[1] == 7
    m.close()


def test_lazy_values_reach_the_disk_without_another_write(tmp_path):
    m = MetaStore(str(tmp_path), lazy_flush_s=0.05)
    m.store_term_vote("a", 1, None)
    m.store_last_applied("a", 5, 5)
    deadline = time.monotonic() + 10
    while MetaStore(str(tmp_path), lazy_flush_s=0).get_fences("a")[2] != 5:  # a crash now keeps it
        assert time.monotonic() < deadline
        time.sleep(0.02)
    m.close()


def test_old_records_without_fences_read_as_none(tmp_path):
    """A file written before the fences existed (4-field records) reads the same."""
    import msgpack
    import struct
    import zlib

    body = msgpack.packb(["a", 3, ["b", "n"], 9], use_bin_type=True)
    with open(os.path.join(str(tmp_path), "meta.log"), "wb") as f:
        f.write(META_HEADER.pack(b"RAOTPMET", 1) + struct.pack("<II", zlib.crc32(body), len(body)) + body)
    m = MetaStore(str(tmp_path))
    assert m.get("a") == (3, ("b", "n"), 9) and m.get_fences("a") == (False, None, 0)
    m.close()
