"""Durable per-server meta: current_term, voted_for, last_applied (RA ``ra_log_meta``).

One append-only file per system (``meta/meta.log``) with group commit: callers
of :meth:`MetaStore.store_term_vote` append a record and block until a sync
covering it has completed; concurrent callers (1,000 clusters electing at once)
share one fdatasync.  ``last_applied`` is written lazily: it rides along with the
next synced batch or :meth:`flush`.  When the file grows past
``compact_bytes`` it is rewritten atomically (temp, fsync, rename, fsync dir).

File::

    META_HEADER  magic b"RAOTPMET", version u32
    record*      META_REC (crc32 u32 of body, body_len u32), body = msgpack
                 [uid, term, voted_for, last_applied]

A torn last record is dropped; a bad record followed by valid data raises
:class:`~raft_otp.errors.CorruptFile` (terms and votes must never go backwards).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from typing import Any

import msgpack

from raft_otp.errors import CorruptFile
from raft_otp.log.fileio import O_APPEND, O_CREAT, O_RDWR, O_TRUNC, O_WRONLY, OS, FileIO, write_all

log = logging.getLogger("raft_otp.meta")

META_MAGIC = b"RAOTPMET"
META_VERSION = 1
META_HEADER = struct.Struct("<8sI")
META_REC = struct.Struct("<II")  # crc32 of body, body_len

_Meta = list  # [term, voted_for, last_applied]


def _vote_in(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class MetaStore:
    """Thread-safe meta store of one system."""

    def __init__(self, dir_: str, sync: bool = True, compact_bytes: int = 8_000_000, io: FileIO = OS) -> None:
        self.dir = dir_
        self.io = io
        self.path = os.path.join(dir_, "meta.log")
        self.sync = sync
        self.compact_bytes = compact_bytes
        io.makedirs(dir_)
        self._state: dict[str, _Meta] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: list[bytes] = []
        self._lazy: dict[str, int] = {}
        self._appended = 0  # records queued so far (sequence)
        self._synced = 0  # records durable so far
        self._syncing = False
        self.counters = {"syncs": 0, "records": 0, "compactions": 0}
        self._load()
        self._reopen()

    def _reopen(self) -> None:
        """Open (again) the meta file for appending, after a start or a rewrite."""
        self._fd = self.io.open(self.path, O_WRONLY | O_APPEND)
        self._size = self.io.fsize(self._fd)

    # ---- recovery ------------------------------------------------------------
    def _load(self) -> None:
        tmp = self.path + ".tmp"
        io = self.io
        if io.exists(tmp):
            io.unlink(tmp)
        if not io.exists(self.path):
            self._rewrite({})
            return
        data = io.read_file(self.path)
        if len(data) < META_HEADER.size:
            raise CorruptFile(self.path, 0, "meta file shorter than its header")
        magic, version = META_HEADER.unpack_from(data, 0)
        if magic != META_MAGIC:
            raise CorruptFile(self.path, 0, f"bad meta magic {magic!r}")
        if version != META_VERSION:
            raise CorruptFile(self.path, 8, f"unsupported meta version {version}")
        pos = META_HEADER.size
        good_end = pos
        while pos < len(data):
            bad = None
            if len(data) - pos < META_REC.size:
                bad = "short record header"
            else:
                crc, ln = META_REC.unpack_from(data, pos)
                body = data[pos + META_REC.size : pos + META_REC.size + ln]
                if ln == 0:
                    bad = "empty record (zero-filled?)"
                elif len(body) != ln:
                    bad = "record runs past end of file"
                elif zlib.crc32(body) != crc:
                    bad = "record checksum mismatch"
            if bad is not None:
                if any(data[pos:]) and self._valid_after(data, pos):
                    raise CorruptFile(self.path, pos, f"meta {bad} before valid records")
                log.warning("meta %s: torn tail at offset %d dropped (%s)", self.path, pos, bad)
                break
            uid, term, voted_for, last_applied = msgpack.unpackb(body, raw=False)
            self._state[uid] = [term, _vote_in(voted_for), last_applied]
            pos += META_REC.size + ln
            good_end = pos
        if good_end != len(data):
            fd = io.open(self.path, O_RDWR)
            try:
                io.ftruncate(fd, good_end)
                io.fsync(fd)
            finally:
                io.close(fd)

    @staticmethod
    def _valid_after(data: bytes, pos: int) -> bool:
        p = pos + 1
        while p + META_REC.size <= len(data):
            crc, ln = META_REC.unpack_from(data, p)
            body = data[p + META_REC.size : p + META_REC.size + ln]
            if ln and len(body) == ln and zlib.crc32(body) == crc:
                return True
            p += 1
        return False

    def _rewrite(self, state: dict[str, _Meta]) -> None:
        tmp = self.path + ".tmp"
        parts = [META_HEADER.pack(META_MAGIC, META_VERSION)]
        parts += [self._record(uid, m) for uid, m in state.items()]
        io = self.io
        fd = io.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try:
            write_all(io, fd, b"".join(parts))
            io.fsync(fd)
        finally:
            io.close(fd)
        io.rename(tmp, self.path)
        io.fsync_dir(self.dir)

    @staticmethod
    def _record(uid: str, m: _Meta) -> bytes:
        body = msgpack.packb([uid, m[0], m[1], m[2]], use_bin_type=True)
        return META_REC.pack(zlib.crc32(body), len(body)) + body

    # ---- API -------------------------------------------------------------------------
    def get(self, uid: str) -> tuple[int, Any, int]:
        """(current_term, voted_for, last_applied); zeros/None for an unknown server."""
        with self._lock:
            m = self._state.get(uid)
            if m is None:
                return 0, None, 0
            la = self._lazy.get(uid, m[2])
            return m[0], m[1], la

    def store_term_vote(self, uid: str, term: int, voted_for: Any) -> None:
        """Durably record term and vote; returns after the fsync that covers it."""
        with self._cond:
            m = self._state.setdefault(uid, [0, None, 0])
            m[0], m[1] = term, _vote_in(voted_for)
            la = self._lazy.pop(uid, None)
            if la is not None:
                m[2] = la
            self._pending.append(self._record(uid, m))
            self._appended += 1
            mine = self._appended
            while self._synced < mine:
                if not self._syncing:
                    self._sync_locked()
                else:
                    self._cond.wait()

    def store_last_applied(self, uid: str, index: int) -> None:
        """Lazily record last_applied (written with the next sync or flush)."""
        with self._lock:
            self._lazy[uid] = index

    def flush(self) -> None:
        with self._cond:
            for uid, la in self._lazy.items():
                m = self._state.setdefault(uid, [0, None, 0])
                m[2] = la
                self._pending.append(self._record(uid, m))
                self._appended += 1
            self._lazy.clear()
            mine = self._appended
            while self._synced < mine:
                if not self._syncing:
                    self._sync_locked()
                else:
                    self._cond.wait()

    def delete(self, uid: str) -> None:
        with self._cond:
            self._state.pop(uid, None)
            self._lazy.pop(uid, None)
            self._rewrite(self._state)
            self.io.close(self._fd)
            self._reopen()

    def _sync_locked(self) -> None:
        """Called with the lock held by the caller that becomes the syncer."""
        self._syncing = True
        batch, self._pending = self._pending, []
        upto = self._appended
        self._lock.release()
        try:
            buf = b"".join(batch)
            write_all(self.io, self._fd, buf)
            if self.sync:
                self.io.fdatasync(self._fd)
        finally:
            self._lock.acquire()
            self._syncing = False
            self._cond.notify_all()
        self._size += len(buf)
        self._synced = upto
        self.counters["syncs"] += 1
        self.counters["records"] += len(batch)
        if self._size > self.compact_bytes:
            self._rewrite(self._state)
            self.io.close(self._fd)
            self._reopen()
            self.counters["compactions"] += 1
        self._cond.notify_all()

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd >= 0:
                self.io.close(self._fd)
                self._fd = -1

    def overview(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counters, servers=len(self._state), file_size=self._size)
