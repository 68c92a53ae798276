"""Goal: term/vote are durable when store_term_vote returns, concurrent callers share syncs, damage is handled."""

from __future__ import annotations

import os
import threading

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


def test_mid_file_damage_raises(tmp_path):
    m = MetaStore(str(tmp_path))
    for t in range(5):
        m.store_term_vote("a", t, None)
    m.close()
    p = os.path.join(str(tmp_path), "meta.log")
    with open(p, "r+b") as f:
        f.seek(META_HEADER.size + 12)
        b = f.read(1)
        f.seek(META_HEADER.size + 12)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(CorruptFile) as ei:
        MetaStore(str(tmp_path))
    assert ei.value.offset == META_HEADER.size
