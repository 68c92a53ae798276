"""Goal: segment files and sets: layout, append across files, overwrite shadowing, bounded reader cache, deletion."""

from __future__ import annotations

import os

from raft_otp.log.memtable import MemTable
from raft_otp.log.segment import SEG_HEADER, SEG_INDEX, SegmentFile, SegmentSet


def E(lo, hi, term=1):
    return [(i, term, b"v%d.%d" % (i, term)) for i in range(lo, hi + 1)]


def put(ss, ents):
    ss.publish(ss.write_entries(ents))


def test_file_layout(tmp_path):
    p = str(tmp_path / "00000001.segment")
    sf = SegmentFile(p, max_count=8)
    sf.append(E(5, 7))
    sf.close()
    with open(p, "rb") as f:
        raw = f.read()
    assert SEG_HEADER.unpack_from(raw, 0) == (b"RAOTPSEG", 1, 8)
    idx, term, off, ln, _crc = SEG_INDEX.unpack_from(raw, SEG_HEADER.size)
    assert (idx, term, off, ln) == (5, 1, SEG_HEADER.size + 8 * SEG_INDEX.size, 4)
    sf = SegmentFile(p)
    assert (sf.first, sf.last) == (5, 7) and sf.read(1, 100) == E(5, 7)
    sf.close()


def test_set_spans_files_and_reopens(tmp_path):
    ss = SegmentSet(str(tmp_path), max_count=10, cache_size=2)
    put(ss, E(1, 25))
    put(ss, E(26, 31))
    assert len(ss.refs) == 4 and ss.first_index() == 1 and ss.last_index() == 31
    assert ss.read(1, 31) == E(1, 31)
    assert len(ss._cache) <= 2
    ss.close()
    ss2 = SegmentSet(str(tmp_path), max_count=10)
    assert ss2.read(3, 29) == E(3, 29) and ss2.term_at(17) == 1


def test_overwrite_shadows_older_files(tmp_path):
    ss = SegmentSet(str(tmp_path), max_count=10)
    put(ss, E(1, 25))
    put(ss, E(12, 14, 2))
    assert ss.last_index() == 14
    assert ss.read(1, 14) == E(1, 11) + E(12, 14, 2)
    put(ss, E(15, 16, 2))
    put(ss, E(3, 4, 3))  # shadows everything from 3: files wholly above go
    assert ss.read(1, 4) == E(1, 2) + E(3, 4, 3)
    ss.close()
    ss2 = SegmentSet(str(tmp_path), max_count=10)
    assert ss2.last_index() == 4 and ss2.read(1, 4) == E(1, 2) + E(3, 4, 3)
    assert len(os.listdir(tmp_path)) == len(ss2.refs)


def test_delete_upto(tmp_path):
    ss = SegmentSet(str(tmp_path), max_count=10)
    put(ss, E(1, 35))
    assert ss.delete_upto(25) == 2
    assert ss.first_index() == 21 and ss.read(21, 35) == E(21, 35)


def test_mem_table_ops():
    m = MemTable(1)
    m.write(E(1, 10))
    m.write(E(5, 6, 2))  # overwrite inside
    assert m.last == 6 and m.get(5) == (5, 2, b"v5.2")
    m.write(E(20, 21))  # not connected: restart
    assert (m.first, m.last) == (20, 21)
    flushed = list(m.entries)
    m.write(E(22, 23))
    assert m.drop_flushed(flushed) == 2 and m.first == 22
    m.write(E(22, 22, 5))
    assert m.drop_flushed([(22, 1, b"v22.1")]) == 0  # not the same objects: kept
    m.drop_upto(30)
    assert len(m) == 0 and m.first == 31
