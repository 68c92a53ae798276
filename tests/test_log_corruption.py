"""Goal: damaged WAL, segment and snapshot files are detected and reported with file/offset/server, never silently used."""

from __future__ import annotations

import glob
import logging
import os
import queue

import pytest

from raft_otp.core.log_api import SnapshotMeta
from raft_otp.errors import CorruptFile
from raft_otp.log import LogConfig, LogSystem, wal_format as fmt
from raft_otp.log.segment import SEG_HEADER, SEG_INDEX, SegmentFile, SegmentSet
from raft_otp.log.snapshot import SNAP_HEADER, SnapshotStore


def E(lo, hi, term=1):
    return [(i, term, b"%d.%d" % (i, term)) for i in range(lo, hi + 1)]


def write_and_stop(d, batches, **cfg):
    """batches: list of (uid, entries); each batch is written and confirmed before the next."""
    ls = LogSystem(d, LogConfig(**cfg)).start()
    q: queue.Queue[object] = queue.Queue()
    logs = {}
    for uid, ents in batches:
        if uid not in logs:
            logs[uid] = ls.open_server_log(uid, q.put)
        sl = logs[uid]
        sl.append(ents)
        sl.flush()  # as the server's step does
        while sl.last_written()[0] < ents[-1][0]:
            sl.handle_event(q.get(timeout=10))
    ls.stop()


def reopen(d, uids, **cfg):
    ls = LogSystem(d, LogConfig(**cfg)).start()
    out = {u: ls.open_server_log(u, lambda e: None) for u in uids}
    return ls, out


def wal_file(d):
    files = sorted(glob.glob(os.path.join(d, "wal", "*.wal")))
    # the last file is the fresh empty one opened after recovery; the data is in the newest with records
    return [f for f in files if os.path.getsize(f) > fmt.FILE_HEADER.size][-1]


def record_offsets(path):
    with open(path, "rb") as f:
        data = f.read()
    return [r.offset for r in fmt.scan(path, data).records], len(data)


BATCHES = [("a", E(1, 5)), ("b", E(1, 5)), ("a", E(6, 10)), ("b", E(6, 10)), ("a", E(11, 15))]


# ---- WAL ------------------------------------------------------------------------------
def test_wal_flipped_byte_mid_file_reported_and_intact_kept(tmp_path, caplog):
    d = str(tmp_path)
    write_and_stop(d, BATCHES)
    path = wal_file(d)
    offs, _size = record_offsets(path)
    assert len(offs) == 5
    with open(path, "r+b") as f:  # damage record 3: server a, indexes 6..10
        f.seek(offs[2] + 40)
        b = f.read(1)
        f.seek(offs[2] + 40)
        f.write(bytes([b[0] ^ 0xFF]))
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a", "b"])
    try:
        dmg = ls.mem_tables.recovery_damage
        assert any(isinstance(x, CorruptFile) and x.path == path and x.offset == offs[2] and "server a" in str(x)
                   for x in dmg), dmg
        # b is intact, a keeps what precedes the damage and does not jump the gap
        assert logs["b"].fetch(1, 100) == E(1, 10)
        assert logs["a"].fetch(1, 100) == E(1, 5)
        assert any(str(offs[2]) in r.getMessage() for r in caplog.records)
    finally:
        ls.stop()


@pytest.mark.parametrize("kind", ["truncated", "zeroed"])
def test_wal_torn_tail_dropped_and_reported(tmp_path, kind, caplog):
    d = str(tmp_path)
    write_and_stop(d, BATCHES)
    path = wal_file(d)
    offs, size = record_offsets(path)
    with open(path, "r+b") as f:
        if kind == "truncated":
            f.truncate(offs[-1] + 10)
        else:
            f.seek(offs[-1])
            f.write(b"\0" * (size - offs[-1]))
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a", "b"])
    try:
        assert logs["a"].fetch(1, 100) == E(1, 10)
        assert logs["b"].fetch(1, 100) == E(1, 10)
        assert any("torn tail" in str(x) and x.offset == offs[-1] for x in ls.mem_tables.recovery_damage)
    finally:
        ls.stop()


def test_wal_bad_file_header_reported_not_used(tmp_path):
    d = str(tmp_path)
    write_and_stop(d, BATCHES)
    path = wal_file(d)
    with open(path, "r+b") as f:
        f.write(b"NOTAWAL!")
    ls, logs = reopen(d, ["a"])
    try:
        assert any(isinstance(x, CorruptFile) and x.path == path for x in ls.mem_tables.recovery_damage)
        assert logs["a"].fetch(1, 100) == []
    finally:
        ls.stop()


# ---- segments ---------------------------------------------------------------------------
def make_segments(d):
    batches = [("a", E(i, i + 9)) for i in range(1, 100, 10)]
    write_and_stop(d, batches, wal_max_size_bytes=400, segment_max_entries=32)
    segs = sorted(glob.glob(os.path.join(d, "servers", "a", "segments", "*.segment")))
    assert segs
    return segs


def reopen_flushed(d):
    ls, logs = reopen(d, ["a"], wal_max_size_bytes=400, segment_max_entries=32)
    ls.sync_segment_writer()
    return ls, logs


def _repair_reports(caplog):
    return [r for r in caplog.records if "damaged log" in r.getMessage()]


def test_segment_flipped_payload_byte_raises_on_read(tmp_path, caplog):
    """The segment layer raises on the damaged entry; a server's log opened on it
    (issue 19) reports it once, with file, offset and index, and ends before it."""
    d = str(tmp_path)
    seg = make_segments(d)[0]
    sf = SegmentFile(seg)
    off, first = sf.offsets[3], sf.first
    sf.close()
    with open(seg, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 1]))
    segs = SegmentSet(os.path.dirname(seg), 32)
    try:
        with pytest.raises(CorruptFile) as ei:
            segs.read(1, 100)
        assert ei.value.path == seg and ei.value.offset == off and str(first + 3) in str(ei.value)
        assert segs.read(first, first + 2) == E(first, first + 2)  # the rest stays readable
    finally:
        segs.close()
    caplog.set_level(logging.WARNING)
    ls, logs = reopen_flushed(d)
    try:
        assert logs["a"].fetch(1, 100) == E(1, first + 2)  # the log ends before the damage
        assert logs["a"].last_index_term() == (first + 2, 1)
        (rep,) = _repair_reports(caplog)
        assert seg in rep.getMessage() and f"offset {off}" in rep.getMessage()
        assert f"index {first + 3}" in rep.getMessage()
        assert logs["a"].overview()["damage_repairs"] == 1 and logs["a"].data_loss_from == first + 3
    finally:
        ls.stop()
    caplog.clear()
    ls, logs = reopen_flushed(d)  # the repair was durable: nothing to report again
    try:
        assert logs["a"].fetch(1, 100) == E(1, first + 2) and not _repair_reports(caplog)
        logs["a"].append(E(first + 3, first + 5, term=2))  # and the log grows from there
    finally:
        ls.stop()


def test_segment_truncated_data_never_read(tmp_path, caplog):
    d = str(tmp_path)
    seg = make_segments(d)[0]
    sf = SegmentFile(seg)
    first, last, off = sf.first, sf.last, sf.offsets[5]
    sf.close()
    with open(seg, "r+b") as f:
        f.truncate(off + 1)
    sf = SegmentFile(seg)
    assert sf.count == 5 and sf.torn == (first + 5, off)  # torn slots ignored at open
    sf.close()
    caplog.set_level(logging.WARNING)
    ls, logs = reopen_flushed(d)
    try:
        assert logs["a"].fetch(first, last) == E(first, first + 4)  # never the torn entries
        (rep,) = _repair_reports(caplog)
        assert seg in rep.getMessage() and f"offset {off}" in rep.getMessage()
    finally:
        ls.stop()


def test_segment_zeroed_index_or_bad_header_detected(tmp_path):
    d = str(tmp_path)
    seg = make_segments(d)[0]
    with open(seg, "r+b") as f:  # zero index slot 2: slots after it look like a gap
        f.seek(SEG_HEADER.size + 2 * SEG_INDEX.size)
        f.write(b"\0" * SEG_INDEX.size)
    sf = SegmentFile(seg)
    assert sf.count == 2
    sf.close()
    with open(seg, "r+b") as f:  # out-of-order slot
        f.seek(SEG_HEADER.size + 2 * SEG_INDEX.size)
        f.write(SEG_INDEX.pack(999, 1, 0, 1, 0))
    with pytest.raises(CorruptFile):
        SegmentFile(seg)
    with open(seg, "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(CorruptFile):
        SegmentFile(seg)


# ---- snapshots --------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["flip", "truncate", "zero_tail", "header"])
def test_snapshot_damage_detected(tmp_path, damage):
    st = SnapshotStore(str(tmp_path))
    meta = SnapshotMeta(10, 2, ["a"], 0)
    st.write(meta, b"S" * 5000)
    p = st.current_path()
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        if damage == "flip":
            f.seek(size // 2)
            f.write(b"T")
        elif damage == "truncate":
            f.truncate(size - 100)
        elif damage == "zero_tail":
            f.seek(size - 1000)
            f.write(b"\0" * 1000)
        else:
            f.write(b"X")
    with pytest.raises(CorruptFile) as ei:
        st.read_current()
    assert ei.value.path == p
    # the same bytes arriving over the wire are refused too
    with open(p, "rb") as f:
        raw = f.read()
    dst = SnapshotStore(str(tmp_path / "dst"))
    if damage == "header":
        with pytest.raises(CorruptFile):
            dst.begin_accept(meta)
            dst.accept_chunk(raw)
            dst.complete_accept()
    else:
        dst.begin_accept(meta)
        for i in range(0, len(raw), 700):
            dst.accept_chunk(raw[i : i + 700])
        with pytest.raises(CorruptFile):
            dst.complete_accept()
    assert dst.current_path() is None


def test_snapshot_roundtrip_and_header_layout(tmp_path):
    st = SnapshotStore(str(tmp_path), chunk_size=64)
    meta = SnapshotMeta(7, 1, {"m": 1}, 3)
    st.write(meta, b"x" * 1000)
    assert st.current_meta() == meta
    assert st.read_current() == (meta, b"x" * 1000)
    with open(st.current_path(), "rb") as f:
        assert f.read(SNAP_HEADER.size)[:8] == b"RAOTPSNP"


# ---- reports: one per damaged region (issue 19) ---------------------------------------
def _error_lines(caplog, name_prefix="raft_otp"):
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(name_prefix)]


def test_one_flipped_wal_byte_is_one_report_however_many_records_follow(tmp_path, caplog):
    """Before: one line per later record of the damaged server (346-709 ERROR lines in
    the fault runs), and again at every WAL restart."""
    d = str(tmp_path)
    batches = [(u, E(i, i)) for i in range(1, 201) for u in ("a", "b")]
    write_and_stop(d, batches)
    path = wal_file(d)
    offs, _size = record_offsets(path)
    with open(path, "r+b") as f:  # damage record 11: server a, index 6
        f.seek(offs[10] + 40)
        b = f.read(1)
        f.seek(offs[10] + 40)
        f.write(bytes([b[0] ^ 0xFF]))
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a", "b"])
    try:
        assert logs["a"].fetch(1, 300) == E(1, 5) and logs["b"].fetch(1, 300) == E(1, 200)
        (rep,) = _error_lines(caplog, "raft_otp.wal")
        msg = rep.getMessage()
        assert path in msg and f"offset {offs[10]}" in msg and "server a: 194 later record(s) from index 6" in msg
        assert not [r for r in _error_lines(caplog) if r.levelno >= logging.ERROR and r is not rep]
        ls.restart_wal()  # the WAL rescans its files: nothing said again
        assert len(_error_lines(caplog, "raft_otp.wal")) == 1
        assert len(ls.mem_tables.recovery_damage) == 1
        # a's dropped entries may have been acknowledged: the vote fence; b lost nothing
        assert logs["a"].data_loss_from == 6 and ls.meta.get_fences("a")[1] is not None
        assert logs["b"].data_loss_from is None and ls.meta.get_fences("b")[1] is None
    finally:
        ls.stop()


@pytest.mark.parametrize("content", [b"", fmt.encode_file_header()[:5], b"\0" * 7, fmt.encode_file_header()])
def test_a_never_written_wal_file_is_removed_without_a_report(tmp_path, caplog, content):
    """Left by a WAL that crashed (or met ENOSPC) between creating a file and syncing its
    header: before, each was 'WAL file unusable' at the next boot."""
    d = str(tmp_path)
    write_and_stop(d, BATCHES)
    empty = os.path.join(d, "wal", "00000099.wal")
    with open(empty, "wb") as f:
        f.write(content)
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a", "b"])
    try:
        ls.sync_segment_writer()
        assert not _error_lines(caplog) and not ls.mem_tables.recovery_damage
        assert not os.path.exists(empty)
        assert logs["a"].fetch(1, 100) == E(1, 15)
    finally:
        ls.stop()


def test_a_garbled_short_wal_file_is_still_reported(tmp_path, caplog):
    d = str(tmp_path)
    write_and_stop(d, BATCHES)
    with open(os.path.join(d, "wal", "00000099.wal"), "wb") as f:
        f.write(b"XYZ")
    caplog.set_level(logging.WARNING)
    ls, _logs = reopen(d, ["a"])
    try:
        assert len(_error_lines(caplog)) == 1 and len(ls.mem_tables.recovery_damage) == 1
    finally:
        ls.stop()


def test_a_deleted_wal_file_is_reported_from_the_meta_stores_knowledge(tmp_path, caplog):
    """The files are simply gone; what tells is the meta store: the server had durably
    applied up to 15, its log now ends at 0.  One report, and the data loss goes to the
    meta store (the vote fence)."""
    d = str(tmp_path)
    ls = LogSystem(d, LogConfig()).start()
    q: queue.Queue[object] = queue.Queue()
    sl = ls.open_server_log("a", q.put)
    sl.append(E(1, 15))
    while sl.last_written()[0] < 15:
        sl.handle_event(q.get(timeout=10))
    ls.meta.store_last_applied("a", 15)
    ls.open_server_log("b", q.put)
    ls.stop()  # its entries are in the WAL only
    for p in glob.glob(os.path.join(d, "wal", "*.wal")):
        os.unlink(p)
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a", "b"])
    try:
        assert logs["a"].last_index_term()[0] == 0 and logs["a"].data_loss_from == 1
        (rep,) = [r for r in _error_lines(caplog) if "damaged log" in r.getMessage()]
        assert "entries 1..15 are missing" in rep.getMessage()
        assert ls.meta.get_fences("a")[1] is not None  # fenced: data_lost
        assert logs["b"].data_loss_from is None  # b never recorded more than it has
    finally:
        ls.stop()


def test_a_damaged_snapshot_is_reported_at_the_damaged_block(tmp_path):
    """Issue 19: every snapshot CorruptFile said offset 20 (the meta's start), wherever the
    damage was.  Version 2 files carry a crc per 4 KiB block: the report names it."""
    from raft_otp.log import snapshot as snapmod

    st = SnapshotStore(str(tmp_path))
    meta = SnapshotMeta(10, 2, ["a"], 0)
    state = bytes(range(256)) * 1200  # 300 KiB
    st.write(meta, state)
    p = st.current_path()
    assert st.read_current() == (meta, state)
    with open(p, "rb") as f:
        raw = f.read()
    flip = 200_000
    with open(p, "r+b") as f:
        f.seek(flip)
        f.write(bytes([raw[flip] ^ 1]))
    block = 20 + (flip - 20) // 4096 * 4096
    for check in (lambda: st.read_current(), lambda: snapmod.verify_file(p, 1000)):
        with pytest.raises(CorruptFile) as ei:
            check()
        assert ei.value.offset == block and f"bytes {block}..{block + 4095}" in str(ei.value)
    with open(p, "rb") as f:  # the same damage arriving over the wire
        bad = f.read()
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(meta)
    for i in range(0, len(bad), 70_000):
        dst.accept_chunk(bad[i : i + 70_000])
    with pytest.raises(CorruptFile) as ei:
        dst.complete_accept()
    assert ei.value.offset == block
    with open(p, "r+b") as f:  # repaired body, damaged header crc: every block is intact
        f.seek(flip)
        f.write(raw[flip : flip + 1])
        f.seek(12)
        f.write(bytes([raw[12] ^ 1]))
    with pytest.raises(CorruptFile) as ei:
        st.read_current()
    assert ei.value.offset == 12


def test_a_version_1_snapshot_is_still_read(tmp_path):
    import zlib

    from raft_otp.log.snapshot import encode_meta

    st = SnapshotStore(str(tmp_path))
    meta = SnapshotMeta(7, 1, ["a"], 0)
    mraw, state = encode_meta(meta), b"v1 state" * 100
    path = os.path.join(st.snap_dir, "00000000000000000007_00000000000000000001.snapshot")
    with open(path, "wb") as f:
        f.write(SNAP_HEADER.pack(b"RAOTPSNP", 1, zlib.crc32(state, zlib.crc32(mraw)), len(mraw)) + mraw + state)
    assert st.read_current() == (meta, state) and st.verify_current() == meta
    with open(path, "r+b") as f:
        f.seek(-3, 2)
        f.write(b"XYZ")
    with pytest.raises(CorruptFile, match="version 1"):
        st.read_current()


# ---- repairs at open (issue 19) -----------------------------------------------------------
def test_a_segment_that_does_not_open_drops_the_log_after_the_snapshot(tmp_path, caplog):
    """Its range, and what it overwrote, are unknown: nothing above the snapshot is trusted."""
    d = str(tmp_path)
    segs = make_segments(d)
    with open(segs[1], "r+b") as f:
        f.write(b"garbage!")
    caplog.set_level(logging.WARNING)
    ls, logs = reopen_flushed(d)
    try:
        assert logs["a"].last_index_term()[0] == 0 and logs["a"].data_loss_from == 1
        (rep,) = _repair_reports(caplog)
        assert segs[1] in rep.getMessage() and "bad segment magic" in rep.getMessage()
        assert not os.path.exists(segs[1])
    finally:
        ls.stop()
    caplog.clear()
    ls, logs = reopen_flushed(d)
    try:
        assert logs["a"].last_index_term()[0] == 0 and not _repair_reports(caplog)
    finally:
        ls.stop()


def _server_snapshots(d, uid, meta, state, checkpoint=None):
    import msgpack

    st = SnapshotStore(os.path.join(d, "servers", uid))
    st.write(meta, msgpack.packb(state.decode()))
    if checkpoint is not None:
        st.write(checkpoint, msgpack.packb(state.decode() + "+"), checkpoint=True)
    return st


def test_a_damaged_snapshot_falls_back_to_an_intact_checkpoint(tmp_path, caplog):
    d = str(tmp_path)
    st = _server_snapshots(d, "a", SnapshotMeta(10, 1, ["a"], 0), b"S10", SnapshotMeta(20, 1, ["a"], 0))
    write_and_stop(d, [("a", E(11, 30))])
    p = st.current_path()
    with open(p, "r+b") as f:
        f.seek(-30, 2)
        f.write(b"\0" * 5)
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a"])
    try:
        assert logs["a"].snapshot_meta().index == 20 and logs["a"].recover_snapshot()[1] == "S10+"
        assert logs["a"].fetch(21, 30) == E(21, 30) and logs["a"].data_loss_from is None
        (rep,) = _repair_reports(caplog)
        assert p in rep.getMessage() and "checkpoint at index 20" in rep.getMessage()
    finally:
        ls.stop()


def test_a_damaged_snapshot_of_a_compacted_log_is_a_reported_data_loss(tmp_path, caplog):
    """Its log starts after the snapshot: without it the log has a hole from index 1, so
    the whole log goes and the leader sends a snapshot; the loss fences its vote."""
    d = str(tmp_path)
    st = _server_snapshots(d, "a", SnapshotMeta(10, 1, ["a"], 0), b"S10")
    write_and_stop(d, [("a", E(11, 30))])
    with open(st.current_path(), "r+b") as f:
        f.seek(-30, 2)
        f.write(b"\0" * 5)
    caplog.set_level(logging.WARNING)
    ls, logs = reopen(d, ["a"])
    try:
        assert logs["a"].snapshot_meta() is None and logs["a"].last_index_term()[0] == 0
        assert logs["a"].data_loss_from == 1 and ls.meta.get_fences("a")[1] is not None
        assert len(_repair_reports(caplog)) == 1
    finally:
        ls.stop()
