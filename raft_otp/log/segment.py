"""Segment files: per-server, indexed, checksummed storage of flushed entries (RA ``ra_log_segment``).

File::

    SEG_HEADER   magic b"RAOTPSEG", version u32, max_count u32
    index area   max_count x SEG_INDEX (index u64, term u64, offset u64, length u32, crc32 u32);
                 unused slots are zero (index 0 never occurs)
    data         payloads back to back

Slots are contiguous in index.  Data is written before its slots and the file
is fsync'd before the segment writer reports it, so a slot that points past the
end of file is a torn write (never read).  The payload CRC is verified on every
read; a mismatch raises :class:`~raft_otp.errors.CorruptFile`.

A :class:`SegmentSet` is one server's ordered list of segment files.  An
overwrite starts a new file; a later file shadows earlier ones from its first
index on (their effective ``last`` is clipped), and fully shadowed files are
deleted.
"""

from __future__ import annotations

import logging
import os
import struct
import re
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from raft_otp.core.types import Entry
from raft_otp.errors import CorruptFile
from raft_otp.log.fileio import O_CREAT, O_RDWR, O_TRUNC, OS, FileIO, pwrite_all, write_all

log = logging.getLogger("raft_otp.segment")

SEG_MAGIC = b"RAOTPSEG"
SEG_VERSION = 1
SEG_HEADER = struct.Struct("<8sII")  # magic, version, max_count
SEG_INDEX = struct.Struct("<QQQII")  # index, term, offset, length, crc32

SEGMENT_FILE_RE = re.compile(r"^(\d{8})\.segment$")


class SegmentFile:
    """One segment file opened for reading or appending."""

    def __init__(self, path: str, max_count: int | None = None, io: FileIO = OS) -> None:
        """Open ``path``; with ``max_count`` given and no file there, create it."""
        self.path = path
        self.io = io
        if max_count is not None and not io.exists(path):
            # created complete under a temp name, so a crash never leaves half a header
            tmp = path + ".tmp"
            fd = io.open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0o644)
            write_all(io, fd, SEG_HEADER.pack(SEG_MAGIC, SEG_VERSION, max_count))
            io.ftruncate(fd, SEG_HEADER.size + max_count * SEG_INDEX.size)
            io.fsync(fd)
            io.rename(tmp, path)
        else:
            fd = io.open(path, O_RDWR)
        self.fd = fd
        self.first = 0
        self.count = 0
        self.terms: list[int] = []
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.crcs: list[int] = []
        try:
            self._load()
        except BaseException:
            io.close(fd)
            raise

    @property
    def last(self) -> int:
        return self.first + self.count - 1 if self.count else 0

    def _load(self) -> None:
        hdr = self.io.pread(self.fd, SEG_HEADER.size, 0)
        if len(hdr) < SEG_HEADER.size:
            raise CorruptFile(self.path, 0, "segment shorter than its header")
        magic, version, max_count = SEG_HEADER.unpack(hdr)
        if magic != SEG_MAGIC:
            raise CorruptFile(self.path, 0, f"bad segment magic {magic!r}")
        if version != SEG_VERSION:
            raise CorruptFile(self.path, 0, f"unsupported segment version {version}")
        if not 0 < max_count <= 1 << 24:
            raise CorruptFile(self.path, 8, f"implausible max_count {max_count}")
        self.max_count = max_count
        self.data_start = SEG_HEADER.size + max_count * SEG_INDEX.size
        size = self.io.fsize(self.fd)
        if size < self.data_start:
            raise CorruptFile(self.path, size, "segment index area truncated")
        raw = self.io.pread(self.fd, max_count * SEG_INDEX.size, SEG_HEADER.size)
        self.terms, self.offsets, self.lengths, self.crcs = [], [], [], []
        self.first = 0
        self.count = 0
        self.torn: tuple[int, int] | None = None  # (index, offset) of the first slot whose data is cut
        expect = self.data_start
        for k, (idx, term, off, ln, crc) in enumerate(SEG_INDEX.iter_unpack(raw)):
            if idx == 0:
                break
            slot_off = SEG_HEADER.size + k * SEG_INDEX.size
            if k == 0:
                self.first = idx
            elif idx != self.first + k:
                raise CorruptFile(self.path, slot_off, f"index slot {k} holds {idx}, expected {self.first + k}")
            if off != expect:
                raise CorruptFile(self.path, slot_off, f"index slot {k} offset {off}, expected {expect}")
            if off + ln > size:  # a torn tail: reported by the server's log, which repairs it
                self.torn = (idx, off)
                break
            self.terms.append(term)
            self.offsets.append(off)
            self.lengths.append(ln)
            self.crcs.append(crc)
            expect = off + ln
            self.count += 1
        self.data_end = expect

    def refresh(self) -> None:
        self._load()

    def close(self) -> None:
        if self.fd >= 0:
            self.io.close(self.fd)
            self.fd = -1

    def term_at(self, index: int) -> int | None:
        k = index - self.first
        if self.count and 0 <= k < self.count:
            return self.terms[k]
        return None

    def read(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo..hi`` (clipped to the file); payload CRCs verified."""
        lo = max(lo, self.first)
        hi = min(hi, self.last)
        if not self.count or hi < lo:
            return []
        a = lo - self.first
        b = hi - self.first
        start = self.offsets[a]
        end = self.offsets[b] + self.lengths[b]
        buf = self.io.pread(self.fd, end - start, start)
        if len(buf) != end - start:
            raise CorruptFile(self.path, start + len(buf), "segment data truncated")
        out: list[Entry] = []
        offs, lens, crcs, terms = self.offsets, self.lengths, self.crcs, self.terms
        crc32 = zlib.crc32
        for k in range(a, b + 1):
            p = offs[k] - start
            d = buf[p : p + lens[k]]
            if crc32(d) != crcs[k]:
                raise CorruptFile(self.path, offs[k], f"payload checksum mismatch at index {self.first + k}")
            out.append((self.first + k, terms[k], d))
        return out

    def verify(self, lo: int, hi: int, max_bytes: int = 4 << 20) -> tuple[int, CorruptFile] | None:
        """Check the payloads of entries ``lo..hi`` (clipped to the file) against their
        CRCs, reading about ``max_bytes`` at a time: the first bad entry's (index, error)
        with the offset of its payload, or None."""
        lo, hi = max(lo, self.first), min(hi, self.last)
        if not self.count or hi < lo:
            return None
        offs, lens, crcs = self.offsets, self.lengths, self.crcs
        k, end_k = lo - self.first, hi - self.first
        while k <= end_k:
            j, size = k, 0
            while j <= end_k and (j == k or size + lens[j] <= max_bytes):
                size += lens[j]
                j += 1
            start = offs[k]
            buf = self.io.pread(self.fd, size, start)
            for m in range(k, j):
                p = offs[m] - start
                d = buf[p : p + lens[m]]
                if len(d) != lens[m]:
                    return self.first + m, CorruptFile(self.path, start + len(buf),
                                                       f"segment data truncated at index {self.first + m}")
                if zlib.crc32(d) != crcs[m]:
                    return self.first + m, CorruptFile(self.path, offs[m],
                                                       f"payload checksum mismatch at index {self.first + m}")
            k = j
        return None

    def truncate_from(self, index: int) -> None:
        """Forget entries from ``index`` on: their index slots are zeroed and synced (the
        data stays, unreferenced; an append reuses the space)."""
        k = index - self.first
        if not self.count or k >= self.count:
            return
        k = max(k, 0)
        pwrite_all(self.io, self.fd, bytes(SEG_INDEX.size * (self.count - k)),
                   SEG_HEADER.size + k * SEG_INDEX.size)
        self.io.fsync(self.fd)
        self._load()

    def append(self, entries: Sequence[Entry]) -> None:
        """Writer only: add contiguous entries after the last one (data first, then slots)."""
        n = len(entries)
        if not n:
            return
        if self.count and entries[0][0] != self.last + 1:
            raise ValueError(f"segment append at {entries[0][0]} after {self.last}")
        if self.count + n > self.max_count:
            raise ValueError("segment full")
        if not self.count:
            self.first = entries[0][0]
        off = self.data_end
        slots = []
        datas = []
        for idx, term, data in entries:
            ln = len(data)
            slots.append(SEG_INDEX.pack(idx, term, off, ln, zlib.crc32(data)))
            datas.append(data)
            self.terms.append(term)
            self.offsets.append(off)
            self.lengths.append(ln)
            self.crcs.append(zlib.crc32(data))
            off += ln
        pwrite_all(self.io, self.fd, b"".join(datas), self.data_end)
        pwrite_all(self.io, self.fd, b"".join(slots), SEG_HEADER.size + self.count * SEG_INDEX.size)
        self.count += n
        self.data_end = off

    def sync(self) -> None:
        self.io.fsync(self.fd)


@dataclass(slots=True)
class SegmentRef:
    seq: int
    path: str
    first: int
    last: int  # effective last (clipped by later files)


class SegmentSet:
    """One server's segment files.  Reads from the server thread; appends from the segment writer."""

    def __init__(self, dir_: str, max_count: int = 4096, cache_size: int = 2, io: FileIO = OS) -> None:
        self.dir = dir_
        self.io = io
        self.max_count = max_count
        self.cache_size = cache_size
        self.lock = threading.RLock()
        self.refs: list[SegmentRef] = []
        self._cache: OrderedDict[str, SegmentFile] = OrderedDict()
        self._next_seq = 1
        self.counters = {"segments_written": 0, "entries_flushed": 0, "segments_deleted": 0, "reads": 0}
        # Damage to the structure found at open: a file that cannot be opened (its range,
        # and so what it shadowed, is unknown) or a hole between files.  Not reported
        # here: the server's log decides what to drop (``ServerLog``) and reports it once.
        self.damage: CorruptFile | None = None
        self.unusable: list[str] = []  # files that could not be opened (deleted by drop_from)
        self.damage_upto = 0  # the highest index the damage can have affected
        self.damage_from = 0  # the lowest, when known (a torn tail), else 0
        io.makedirs(dir_)
        self._scan()

    def _scan(self) -> None:
        files = []
        for name in self.io.listdir(self.dir):
            m = SEGMENT_FILE_RE.match(name)
            if m:
                files.append((int(m.group(1)), os.path.join(self.dir, name)))
            elif name.endswith(".segment.tmp"):
                self.io.unlink(os.path.join(self.dir, name))
        files.sort()
        refs: list[SegmentRef] = []
        self.damage = None
        self.damage_from = 0
        self.unusable = []
        damaged_at = -1  # refs from here on were written after the damaged point
        for seq, path in files:
            self._next_seq = seq + 1
            try:
                sf = SegmentFile(path, io=self.io)
            except CorruptFile as exc:  # a bad header or index area: its range is unknown
                if self.damage is None:
                    self.damage, damaged_at = exc, len(refs)
                self.unusable.append(path)
                continue
            try:
                first, last, torn = sf.first, sf.last, sf.torn
            finally:
                sf.close()
            if torn is not None and self.damage is None:
                self.damage, damaged_at = CorruptFile(path, torn[1], f"torn at index {torn[0]}: its data "
                                                      "runs past the end of the file"), len(refs) + 1
                self.damage_from = torn[0]
            if not last:
                self.io.unlink(path)  # created, never filled: crash artefact
                continue
            self._shadow(refs, first)
            live = [r for r in refs if r.last >= r.first]
            if live and first > live[-1].last + 1 and self.damage is None:
                self.damage = CorruptFile(path, None, f"indexes {live[-1].last + 1}..{first - 1} missing "
                                                      "before this segment (a torn or lost segment)")
                damaged_at = len(refs)
            refs.append(SegmentRef(seq, path, first, last))
        # What the damage can affect: a later file shadows earlier ones from its first
        # index on, so nothing from the lowest first index of the files after it.
        later = refs[damaged_at:] if damaged_at >= 0 else []
        self.damage_upto = min(r.first for r in later) - 1 if later else 1 << 62
        self.refs = refs
        self._drop_empty()

    @staticmethod
    def _shadow(refs: list[SegmentRef], first: int) -> None:
        for r in refs:
            if r.last >= first:
                r.last = first - 1

    # ---- reads ----------------------------------------------------------------------
    def first_index(self) -> int:
        with self.lock:
            for r in self.refs:
                if r.last >= r.first:
                    return r.first
        return 0

    def last_index(self) -> int:
        with self.lock:
            for r in reversed(self.refs):
                if r.last >= r.first:
                    return r.last
        return 0

    def _file(self, ref: SegmentRef) -> SegmentFile:
        sf = self._cache.get(ref.path)
        if sf is None:
            sf = SegmentFile(ref.path, io=self.io)
            self._cache[ref.path] = sf
            while len(self._cache) > self.cache_size:
                _p, old = self._cache.popitem(last=False)
                old.close()
        else:
            self._cache.move_to_end(ref.path)
        if sf.last < ref.last:
            sf.refresh()
        return sf

    def term_at(self, index: int) -> int | None:
        with self.lock:
            for r in reversed(self.refs):
                if r.first <= index <= r.last:
                    return self._file(r).term_at(index)
        return None

    def read(self, lo: int, hi: int) -> list[Entry]:
        out: list[Entry] = []
        with self.lock:
            self.counters["reads"] += 1
            for r in self.refs:
                if r.last < lo or r.first > hi or r.last < r.first:
                    continue
                a, b = max(lo, r.first), min(hi, r.last)
                got = self._file(r).read(a, b)
                if len(got) != b - a + 1:
                    raise CorruptFile(r.path, None, f"segment lacks indexes {a}..{b}")
                out.extend(got)
        if len(out) != hi - lo + 1:
            have = {e[0] for e in out}
            missing = next(i for i in range(lo, hi + 1) if i not in have)
            raise CorruptFile(self.dir, None, f"segments lack index {missing} (wanted {lo}..{hi})")
        return out

    # ---- writes (segment writer thread) --------------------------------------------------
    def plan_append(self, first: int) -> tuple[str, bool]:
        """Where entries starting at ``first`` go: (path, is_new_file)."""
        with self.lock:
            if self.refs:
                r = self.refs[-1]
                if first == r.last + 1 and r.last - r.first + 1 < self.max_count:
                    return r.path, False
            path = os.path.join(self.dir, f"{self._next_seq:08d}.segment")
            self._next_seq += 1
            return path, True

    def write_entries(self, entries: Sequence[Entry]) -> list[tuple[str, int, int, bool]]:
        """Write (without publishing) entries into segment files; returns [(path, first, last, new)].

        Files are fsync'd; the caller syncs the directory and then :meth:`publish`es."""
        done: list[tuple[str, int, int, bool]] = []
        i = 0
        n = len(entries)
        while i < n:
            first = entries[i][0]
            path, new = self.plan_append(first)
            sf = SegmentFile(path, self.max_count, self.io)
            try:
                room = sf.max_count - sf.count
                if room <= 0:
                    # cannot happen through plan_append; force a new file
                    sf.close()
                    with self.lock:
                        path = os.path.join(self.dir, f"{self._next_seq:08d}.segment")
                        self._next_seq += 1
                    sf = SegmentFile(path, self.max_count, self.io)
                    room = sf.max_count
                    new = True
                chunk = entries[i : i + room]
                sf.append(chunk)
                sf.sync()
                done.append((path, chunk[0][0], chunk[-1][0], new))
                i += len(chunk)
            finally:
                sf.close()
        self.counters["segments_written"] += sum(1 for d in done if d[3])
        self.counters["entries_flushed"] += n
        return done

    def publish(self, written: list[tuple[str, int, int, bool]]) -> None:
        with self.lock:
            for path, first, last, _new in written:
                for r in self.refs:
                    if r.path == path:
                        r.last = last
                        break
                else:
                    self._shadow(self.refs, first)
                    seq = int(os.path.basename(path).split(".")[0])
                    self.refs.append(SegmentRef(seq, path, first, last))
            self._drop_empty()

    def _drop_empty(self) -> None:
        keep = []
        for r in self.refs:
            if r.last < r.first:
                self._unlink(r.path)
            else:
                keep.append(r)
        self.refs = keep

    def _unlink(self, path: str) -> None:
        sf = self._cache.pop(path, None)
        if sf is not None:
            sf.close()
        try:
            self.io.unlink(path)
            self.counters["segments_deleted"] += 1
        except FileNotFoundError:
            pass

    def delete_upto(self, index: int) -> int:
        """Delete files whose entries are all at or below ``index``; returns how many."""
        with self.lock:
            gone = [r for r in self.refs if r.last <= index]
            self.refs = [r for r in self.refs if r.last > index]
            for r in gone:
                self._unlink(r.path)
        return len(gone)

    def verify(self, lo: int, hi: int) -> tuple[int, CorruptFile] | None:
        """Check every entry ``lo..hi`` held in segments (payload CRCs; a file that no
        longer opens counts from its first index): the first bad (index, error), or None."""
        with self.lock:
            for r in self.refs:
                if r.last < lo or r.first > hi or r.last < r.first:
                    continue
                a, b = max(lo, r.first), min(hi, r.last)
                try:
                    bad = self._file(r).verify(a, b)
                    if bad is None and self._file(r).last < b:
                        bad = (self._file(r).last + 1,
                               CorruptFile(r.path, None, f"segment lacks indexes {self._file(r).last + 1}..{b}"))
                except CorruptFile as exc:
                    bad = (a, exc)
                if bad is not None:
                    return bad
        return None

    def drop_from(self, index: int) -> None:
        """Repair: forget every entry from ``index`` on, durably (later files and files
        that could not be opened are deleted, the file holding ``index`` is cut there)."""
        with self.lock:
            keep = []
            for r in self.refs:
                if r.first >= index:
                    self._unlink(r.path)
                    continue
                if r.last >= index:
                    sf = self._cache.pop(r.path, None)
                    if sf is not None:
                        sf.close()
                    sf = SegmentFile(r.path, io=self.io)
                    try:
                        sf.truncate_from(index)
                    finally:
                        sf.close()
                    r.last = index - 1
                keep.append(r)
            self.refs = keep
            for path in self.unusable:
                self._unlink(path)
            self.unusable = []
            self.damage = None
            self.damage_from = 0
            self.io.fsync_dir(self.dir)

    def delete_all(self) -> None:
        with self.lock:
            for r in self.refs:
                self._unlink(r.path)
            self.refs = []

    def close(self) -> None:
        with self.lock:
            for sf in self._cache.values():
                sf.close()
            self._cache.clear()

    def overview(self) -> dict[str, object]:
        with self.lock:
            return dict(self.counters, files=len(self.refs), first_index=self.first_index(),
                        last_index=self.last_index())
