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
            if off + ln > size:
                log.warning("segment %s: torn tail at slot %d (index %d): data past end of file; ignored",
                            self.path, k, idx)
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
        for seq, path in files:
            self._next_seq = seq + 1
            sf = SegmentFile(path, io=self.io)  # raises CorruptFile on a bad header or index area
            try:
                first, last = sf.first, sf.last
            finally:
                sf.close()
            if not last:
                self.io.unlink(path)  # created, never filled: crash artefact
                continue
            self._shadow(refs, first)
            live = [r for r in refs if r.last >= r.first]
            if live and first > live[-1].last + 1:
                log.error("segments of %s: indexes %d..%d missing before %s (damaged or torn segment)",
                          self.dir, live[-1].last + 1, first - 1, path)
            refs.append(SegmentRef(seq, path, first, last))
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
