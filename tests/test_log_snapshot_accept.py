"""Goal: a snapshot received in chunks is verified as it arrives (running crc, no read
back) and installed only whole and intact; whatever the chunk boundaries, damage
anywhere, a wrong meta or an abort leaves no snapshot and no partial file behind."""

from __future__ import annotations

import os

import pytest

from raft_otp.core.log_api import SnapshotMeta
from raft_otp.errors import CorruptFile
from raft_otp.log.snapshot import SNAP_HEADER, SnapshotStore, read_file, verify_file

META = SnapshotMeta(10, 2, {"members": [["a", "n1", "voter"]], "sessions": []}, 1)
STATE = bytes(range(256)) * 40 + b"tail"


def _wire(tmp_path, meta: SnapshotMeta = META, state: bytes = STATE) -> bytes:
    """The bytes a leader streams: its snapshot file."""
    src = SnapshotStore(str(tmp_path / "src"))
    src.write(meta, state)
    with open(src.current_path(), "rb") as f:
        return f.read()


def _leftovers(st: SnapshotStore) -> list[str]:
    return [n for n in os.listdir(st.snap_dir) if n.endswith(".partial")]


@pytest.mark.parametrize("size", [1, 7, SNAP_HEADER.size, SNAP_HEADER.size + 3, 700, 4096, 1 << 20])
def test_any_chunking_installs_the_same_snapshot(tmp_path, size):
    raw = _wire(tmp_path)
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    for i in range(0, len(raw), size):
        dst.accept_chunk(raw[i : i + size])
    assert dst.complete_accept() == (META, STATE)
    assert dst.read_current() == (META, STATE)  # the file on disk is the same snapshot
    assert _leftovers(dst) == []


def test_a_chunk_changed_after_it_was_accepted_does_not_change_the_snapshot(tmp_path):
    raw = _wire(tmp_path)
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    bufs = [bytearray(raw[i : i + 1000]) for i in range(0, len(raw), 1000)]
    for b in bufs:
        dst.accept_chunk(b)  # type: ignore[arg-type]
    for b in bufs:
        b[:] = b"\0" * len(b)
    assert dst.complete_accept() == (META, STATE)


@pytest.mark.parametrize("where", [0, 9, SNAP_HEADER.size - 1, SNAP_HEADER.size + 1, 3000, -1])
def test_damage_in_any_chunk_is_refused(tmp_path, where):
    raw = bytearray(_wire(tmp_path))
    raw[where] ^= 0x40
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    for i in range(0, len(raw), 1000):
        dst.accept_chunk(bytes(raw[i : i + 1000]))
    with pytest.raises(CorruptFile):
        dst.complete_accept()
    assert dst.current_path() is None and _leftovers(dst) == []


@pytest.mark.parametrize("cut", [0, 5, SNAP_HEADER.size + 2, 1000])
def test_a_short_transfer_is_refused(tmp_path, cut):
    raw = _wire(tmp_path)
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    dst.accept_chunk(raw[:cut])
    with pytest.raises(CorruptFile):
        dst.complete_accept()
    assert dst.current_path() is None and _leftovers(dst) == []


def test_a_snapshot_other_than_the_announced_one_is_refused(tmp_path):
    raw = _wire(tmp_path, SnapshotMeta(11, 2, META.cluster, 1))
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    dst.accept_chunk(raw)
    with pytest.raises(CorruptFile):
        dst.complete_accept()
    assert dst.current_path() is None and _leftovers(dst) == []


def test_abort_and_restart_leave_only_the_completed_transfer(tmp_path):
    raw = _wire(tmp_path)
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    dst.accept_chunk(raw[:100])
    dst.abort_accept()
    assert _leftovers(dst) == []
    with pytest.raises(RuntimeError):
        dst.accept_chunk(raw[100:200])
    dst.begin_accept(META)
    dst.accept_chunk(raw[:5000])
    dst.begin_accept(META)  # chunk 1 again: starts over
    dst.accept_chunk(raw)
    assert dst.complete_accept() == (META, STATE)
    with pytest.raises(RuntimeError):
        dst.complete_accept()
    assert _leftovers(dst) == []


def test_a_partial_file_left_by_a_crash_is_removed_on_open(tmp_path):
    raw = _wire(tmp_path)
    dst = SnapshotStore(str(tmp_path / "dst"))
    dst.begin_accept(META)
    dst.accept_chunk(raw[:3000])  # the process dies here
    again = SnapshotStore(str(tmp_path / "dst"))
    assert again.current_path() is None and _leftovers(again) == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "meta_len"])
def test_read_and_verify_refuse_a_damaged_file(tmp_path, damage):
    st = SnapshotStore(str(tmp_path))
    st.write(META, STATE)
    p = st.current_path()
    assert read_file(p) == (META, STATE) and verify_file(p, 1000) == META
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        if damage == "flip":
            f.seek(size - 10)
            f.write(b"!")
        elif damage == "truncate":
            f.truncate(size - 1)
        elif damage == "header":
            f.write(b"Y")
        else:
            f.seek(SNAP_HEADER.size - 4)
            f.write(b"\xff\xff\xff\x7f")
    with pytest.raises(CorruptFile):
        read_file(p)
    with pytest.raises(CorruptFile):
        verify_file(p, 1000)


def test_a_damaged_checkpoint_is_not_promoted(tmp_path):
    st = SnapshotStore(str(tmp_path))
    p = st.write(META, STATE, checkpoint=True)
    with open(p, "r+b") as f:
        f.seek(os.path.getsize(p) // 2)
        f.write(b"#")
    with pytest.raises(CorruptFile):
        st.promote(META.index)
    assert st.current_path() is None
    good = SnapshotStore(str(tmp_path / "good"))
    good.write(META, STATE, checkpoint=True)
    assert good.promote(META.index) == META and good.read_current() == (META, STATE)
