"""WAL file format: header, batch records, encoder and a tolerant scanner (RA ``ra_log_wal`` records).

Deliberate difference from RA: one record holds one *writer batch* (contiguous
entries of one server), not one entry.  The uid travels in every record (no
per-file writer table that a single bad record could orphan) and one CRC32
covers the record header tail, uid, term/length table and payloads.  Encoding
cost per entry is then a list append, not a struct pack and a checksum.

File::

    FILE_HEADER  magic b"RAOTPWAL", version u32
    record*      REC_HEADER, uid bytes, terms (count x u64, or one u64 if SAME_TERM),
                 lengths (count x u32), payloads

A record with ``count == 0`` and ``TRUNCATE`` says "the log of uid is empty from
first_index" (used after a snapshot install).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from typing import Sequence

from raft_otp.core.types import Entry

FILE_MAGIC = b"RAOTPWAL"
FILE_VERSION = 1
FILE_HEADER = struct.Struct("<8sI")  # magic, version

REC_MAGIC = 0x4C415752  # b"RWAL" little endian
REC_MAGIC_BYTES = struct.pack("<I", REC_MAGIC)
# magic u32, crc32 u32 (of everything after this field), body_len u32,
# first_index u64, count u32, flags u8, uid_len u8
REC_HEADER = struct.Struct("<IIIQIBB")
_REC_TAIL = struct.Struct("<IQIBB")  # the crc-covered part of REC_HEADER
TERM = struct.Struct("<Q")

FLAG_TRUNCATE = 0x01  # everything of uid at or above first_index from before is void
FLAG_SAME_TERM = 0x02  # one term u64 for all entries instead of count x u64

MAX_UID_BYTES = 255
_MAX_BODY = 1 << 31

_table_structs: dict[tuple[int, bool], struct.Struct] = {}


def _table(count: int, same_term: bool) -> struct.Struct:
    key = (count, same_term)
    s = _table_structs.get(key)
    if s is None:
        s = struct.Struct(f"<Q{count}I" if same_term else f"<{count}Q{count}I")
        if len(_table_structs) < 4096:
            _table_structs[key] = s
    return s


def encode_file_header() -> bytes:
    return FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION)


_term_of = itemgetter(1)
_data_of = itemgetter(2)
_U32 = struct.Struct("<I")


def encode_record(uid: bytes, first_index: int, entries: Sequence[Entry], truncate: bool) -> tuple[bytes, bytes]:
    """Return (header, body) of one record; write them back to back."""
    count = len(entries)
    flags = FLAG_TRUNCATE if truncate else 0
    if count:
        datas = list(map(_data_of, entries))
        terms = list(map(_term_of, entries))
        t0 = terms[0]
        if terms.count(t0) == count:
            flags |= FLAG_SAME_TERM
            table = _table(count, True).pack(t0, *map(len, datas))
        else:
            table = _table(count, False).pack(*terms, *map(len, datas))
        datas.insert(0, table)
        datas.insert(0, uid)
        body = b"".join(datas)
    else:
        body = uid
    tail = _REC_TAIL.pack(len(body), first_index, count, flags, len(uid))
    return REC_MAGIC_BYTES + _U32.pack(zlib.crc32(body, zlib.crc32(tail))) + tail, body


@dataclass(slots=True)
class Record:
    offset: int
    uid: str
    first_index: int
    truncate: bool
    entries: list[Entry]


@dataclass(slots=True)
class Damage:
    """A region of a WAL file that failed its checks (offset of the first bad byte)."""

    path: str
    offset: int
    detail: str
    uid_hint: str | None  # uid as read from the damaged header: unverified
    torn_tail: bool  # nothing valid follows: a crash mid-write, not corruption


@dataclass(slots=True)
class ScanResult:
    records: list[Record] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    valid_end: int = 0  # offset just past the last valid record


def check_file_header(path: str, data: bytes | memoryview) -> None:
    from raft_otp.errors import CorruptFile

    if len(data) < FILE_HEADER.size:
        raise CorruptFile(path, 0, "WAL file shorter than its header")
    magic, version = FILE_HEADER.unpack_from(data, 0)
    if magic != FILE_MAGIC:
        raise CorruptFile(path, 0, f"bad WAL magic {magic!r}")
    if version != FILE_VERSION:
        raise CorruptFile(path, 0, f"unsupported WAL version {version}")


def _parse_at(data: memoryview, pos: int) -> tuple[Record, int] | str:
    """Parse a record at ``pos``: (record, next pos) or a reason string."""
    end = len(data)
    if end - pos < REC_HEADER.size:
        return "short record header"
    magic, crc, body_len, first, count, flags, uid_len = REC_HEADER.unpack_from(data, pos)
    if magic != REC_MAGIC:
        return "bad record magic"
    body_start = pos + REC_HEADER.size
    if body_len > _MAX_BODY or body_start + body_len > end:
        return "record runs past end of file"
    body = data[body_start : body_start + body_len]
    if zlib.crc32(body, zlib.crc32(data[pos + 8 : body_start])) != crc:
        return "record checksum mismatch"
    uid = bytes(body[:uid_len]).decode("utf-8", "replace")
    p = uid_len
    entries: list[Entry] = []
    if count:
        same = bool(flags & FLAG_SAME_TERM)
        tab = _table(count, same)
        vals = tab.unpack_from(body, p)
        p += tab.size
        if same:
            t0 = vals[0]
            lens = vals[1:]
            terms: Sequence[int] = [t0] * count
        else:
            terms = vals[:count]
            lens = vals[count:]
        raw = bytes(body[p:])
        ends = list(accumulate(lens))
        if ends[-1] != len(raw):
            return "record length table does not match body"
        starts = [0]
        starts += ends[:-1]
        entries = list(zip(range(first, first + count), terms, map(raw.__getitem__, map(slice, starts, ends))))
    return Record(pos, uid, first, bool(flags & FLAG_TRUNCATE), entries), body_start + body_len


def _uid_hint(data: memoryview, pos: int) -> str | None:
    try:
        _m, _c, _bl, _f, _n, _fl, uid_len = REC_HEADER.unpack_from(data, pos)
        s = pos + REC_HEADER.size
        return bytes(data[s : s + uid_len]).decode("utf-8", "replace") or None
    except struct.error:
        return None


def scan(path: str, data: bytes) -> ScanResult:
    """Parse every record of a WAL file image; damaged regions are skipped and described.

    After a bad record the scanner resynchronises on the next record magic whose
    record verifies; if none does, or if the bytes skipped are all zeros (a hole
    that was never written: see below), the damage is a torn tail."""
    check_file_header(path, data)
    mv = memoryview(data)
    res = ScanResult(valid_end=FILE_HEADER.size)
    pos = FILE_HEADER.size
    end = len(data)
    while pos < end:
        parsed = _parse_at(mv, pos)
        if not isinstance(parsed, str):
            rec, pos = parsed
            res.records.append(rec)
            res.valid_end = pos
            continue
        reason = parsed
        bad = pos
        nxt = data.find(REC_MAGIC_BYTES, bad + 1)
        while nxt != -1 and isinstance(_parse_at(mv, nxt), str):
            nxt = data.find(REC_MAGIC_BYTES, nxt + 1)
        if nxt == -1:
            zero = not any(data[bad:])
            res.damage.append(Damage(path, bad, f"torn tail ({end - bad} bytes{', zero-filled' if zero else ''}): {reason}",
                                     _uid_hint(mv, bad), True))
            break
        if not any(data[bad:nxt]):
            # A hole never written (zeros: the file is only ever appended to) before
            # valid records: unsynced writes written back out of order at a power cut.
            # A completed sync makes every earlier write durable, so the hole and all
            # after it were unsynced, never acknowledged: a torn tail, not damage.
            res.damage.append(Damage(path, bad, f"torn tail ({end - bad} bytes): a never-written hole of "
                                     f"{nxt - bad} zero bytes before later records (unsynced writes)",
                                     None, True))
            break
        res.damage.append(Damage(path, bad, f"{reason}; {nxt - bad} bytes skipped", _uid_hint(mv, bad), False))
        pos = nxt
    return res
