"""Goal: WAL records round-trip, and every kind of damage (flipped byte, torn, zero-filled tail) is found and located."""

from __future__ import annotations

import pytest

from raft_otp.errors import CorruptFile
from raft_otp.log import wal_format as fmt


def image(records):
    parts = [fmt.encode_file_header()]
    offsets = []
    for uid, first, ents, trunc in records:
        h, b = fmt.encode_record(uid, first, ents, trunc)
        offsets.append(sum(map(len, parts)))
        parts += [h, b]
    return b"".join(parts), offsets


def ents(lo, hi, term=1):
    return [(i, term, b"d%d" % i) for i in range(lo, hi + 1)]


RECS = [(b"a", 1, ents(1, 5), True), (b"b", 1, ents(1, 3, 2), True),
        (b"a", 6, [(6, 1, b"x"), (7, 2, b"")], False), (b"a", 3, [], True), (b"b", 4, ents(4, 9, 3), False)]


def test_roundtrip():
    data, _ = image(RECS)
    res = fmt.scan("f", data)
    assert not res.damage
    assert [(r.uid, r.first_index, r.truncate, r.entries) for r in res.records] == [
        (u.decode(), f, t, list(e)) for u, f, e, t in RECS]
    assert res.valid_end == len(data)


def test_bad_file_header():
    data, _ = image(RECS)
    with pytest.raises(CorruptFile):
        fmt.scan("f", b"XXXXXXXX" + data[8:])
    with pytest.raises(CorruptFile):
        fmt.scan("f", data[:5])


@pytest.mark.parametrize("victim", range(len(RECS)))
def test_flipped_byte_is_located_and_rest_kept(victim):
    data, offs = image(RECS)
    bad = bytearray(data)
    end = offs[victim + 1] if victim + 1 < len(offs) else len(data)
    pos = (offs[victim] + end) // 2
    bad[pos] ^= 0x40
    res = fmt.scan("f", bytes(bad))
    assert len(res.damage) == 1
    d = res.damage[0]
    assert d.offset == offs[victim]
    assert d.torn_tail == (victim == len(RECS) - 1)
    got = [r.offset for r in res.records]
    assert got == [o for k, o in enumerate(offs) if k != victim]


@pytest.mark.parametrize("cut", [1, 5, 26, 30])
def test_truncated_tail(cut):
    data, offs = image(RECS)
    res = fmt.scan("f", data[: offs[-1] + cut])
    assert [r.offset for r in res.records] == offs[:-1]
    assert res.damage and res.damage[0].torn_tail and res.damage[0].offset == offs[-1]


def test_zero_filled_tail():
    data, offs = image(RECS)
    res = fmt.scan("f", data + b"\0" * 4096)
    assert len(res.records) == len(RECS)
    assert res.damage[0].torn_tail and "zero-filled" in res.damage[0].detail
    res = fmt.scan("f", data[: offs[-1]] + b"\0" * (len(data) - offs[-1]))
    assert len(res.records) == len(RECS) - 1 and res.damage[0].offset == offs[-1]
