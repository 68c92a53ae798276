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
                 [uid, term, voted_for, last_applied] or
                 [uid, term, voted_for, last_applied, fences]
    fences       map, only when not empty: "u": True (vote unproven), "l": term
                 (data lost in that term), "dc": durable commit index
    uid ""       (no server has that name) marks a file that was damaged: a server
                 with no record of its own may have lost its only one

Torn tail versus damage.  A torn tail is the last, partially written record: the
bytes after the last good record do not hold a whole record (short header, a body
running past the end of the file) or are all zeros (a file extended but not
written).  A vote is answered only after its record was synced, so a torn record
was never relied on: it is dropped.  Anything else -- a whole record with a bad
checksum, a bad record with valid ones after it -- is damage.  Damage does not stop
the boot: the records after it are kept (skipping to the next valid one) and every
server whose last record may be the damaged one (those whose last good record
precedes it, and any with no record at all) is marked ``vote_unproven``: the core
lets it vote again only once it can prove which terms it may have voted in
(``raft_otp.core.fences``).  The file is then rewritten with those marks, so a
restart does not forget them; one WARNING names the damage and the servers.

Data loss.  ``durable_commit`` (``min(last written, commit index)``, lazily stored
with ``last_applied``) is the log a server durably had; a server that boots with a
log ending below it lost data.  :meth:`MetaStore.report_data_loss` records a loss
found by the log layer (a damaged segment dropped).  Lazy values are flushed at
most ``lazy_flush_s`` after they change (one fdatasync per system per interval at
most), so a lost disk goes unnoticed only if it is lost within that interval of the
server's first commit.
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

_Meta = list  # [term, voted_for, last_applied, fences dict]
_TORN = ("short record header", "record runs past end of file", "empty record (zero-filled?)")
DAMAGE_MARK = ""  # the uid of the record saying "this file was damaged"


def _vote_in(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class MetaStore:
    """Thread-safe meta store of one system."""

    def __init__(self, dir_: str, sync: bool = True, compact_bytes: int = 8_000_000, io: FileIO = OS,
                 lazy_flush_s: float = 1.0) -> None:
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
        self._lazy: dict[str, tuple[int, int | None]] = {}  # uid -> (last_applied, durable_commit)
        self.lazy_flush_s = lazy_flush_s
        self._lazy_timer: threading.Timer | None = None
        self._closed = False
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
        damage: list[tuple[int, str]] = []  # (offset, what)
        before: set[str] = set()  # uids whose last good record precedes the first damage
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
                else:
                    try:
                        vals = msgpack.unpackb(body, raw=False)
                        if not isinstance(vals, list) or len(vals) < 4:
                            raise ValueError(f"{len(vals)} fields")
                    except Exception as exc:  # a checksum that matched by chance, or a bug
                        bad = f"undecodable record ({exc})"
            if bad is not None:
                nxt = self._next_valid(data, pos)
                if nxt is None and (not any(data[pos:]) or bad in _TORN):
                    log.warning("meta %s: torn tail at offset %d dropped (%s)", self.path, pos, bad)
                    break
                if not damage:
                    before = set(self._state)
                damage.append((pos, bad))
                if nxt is None:
                    break
                pos = good_end = nxt
                continue
            uid, term, voted_for, last_applied = vals[:4]
            fences = vals[4] if len(vals) > 4 and isinstance(vals[4], dict) else {}
            self._state[uid] = [term, _vote_in(voted_for), last_applied, fences]
            before.discard(uid)
            pos += META_REC.size + ln
            good_end = pos
        if damage:
            self._mark_damage(damage, before)
            return
        if good_end != len(data):
            fd = io.open(self.path, O_RDWR)
            try:
                io.ftruncate(fd, good_end)
                io.fsync(fd)
            finally:
                io.close(fd)

    @staticmethod
    def _next_valid(data: bytes, pos: int) -> int | None:
        """The offset of the next record after ``pos`` whose checksum holds, if any."""
        p = pos + 1
        while p + META_REC.size <= len(data):
            crc, ln = META_REC.unpack_from(data, p)
            body = data[p + META_REC.size : p + META_REC.size + ln]
            if ln and len(body) == ln and zlib.crc32(body) == crc:
                return p
            p += 1
        return None

    def _mark_damage(self, damage: list[tuple[int, str]], suspects: set[str]) -> None:
        """Damage inside the file: mark the servers whose last vote may be lost and
        rewrite the file with the marks (see the module doc)."""
        for uid in suspects:
            self._state[uid][3] = dict(self._state[uid][3], u=True)
        self._state[DAMAGE_MARK] = [0, None, 0, {"u": True}]
        self._rewrite(self._state)
        where = ", ".join(f"offset {off} ({what})" for off, what in damage[:3])
        log.warning("meta %s: damaged at %s%s; the records after it were kept; the last "
                    "term/vote of %s may be lost: they vote again only once every other voter "
                    "has told them its term", self.path, where,
                    f" and {len(damage) - 3} more places" if len(damage) > 3 else "",
                    ", ".join(sorted(suspects)) + " and any server without a record"
                    if suspects else "any server without a record")

    def _rewrite(self, state: dict[str, _Meta]) -> None:
        tmp = self.path + ".tmp"
        parts = [META_HEADER.pack(META_MAGIC, META_VERSION)]
        parts += [self._record(uid, m) for uid, m in state.items() if uid != DAMAGE_MARK]
        if DAMAGE_MARK in state:  # last: a reader meets the marks of the servers first
            parts.append(self._record(DAMAGE_MARK, state[DAMAGE_MARK]))
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
        fields = [uid, m[0], m[1], m[2]]
        if m[3]:
            fields.append(m[3])
        body = msgpack.packb(fields, use_bin_type=True)
        return META_REC.pack(zlib.crc32(body), len(body)) + body

    # ---- API -------------------------------------------------------------------------
    def get(self, uid: str) -> tuple[int, Any, int]:
        """(current_term, voted_for, last_applied); zeros/None for an unknown server."""
        with self._lock:
            m = self._state.get(uid)
            if m is None:
                return 0, None, 0
            la = self._lazy.get(uid, (m[2], None))[0]
            return m[0], m[1], la

    def get_fences(self, uid: str) -> tuple[bool, int | None, int]:
        """(vote_unproven, data_lost term or None, durable_commit) of ``uid``
        (``raft_otp.core.config.ServerMeta``).  A server with no record in a file that
        was damaged is ``vote_unproven``: its only record may be the damaged one."""
        with self._lock:
            m = self._state.get(uid)
            if m is None:
                return DAMAGE_MARK in self._state, None, 0
            lazy = self._lazy.get(uid)
            dc = lazy[1] if lazy is not None and lazy[1] is not None else m[3].get("dc", 0)
            return bool(m[3].get("u")), m[3].get("l"), dc

    def _entry(self, uid: str) -> _Meta:
        m = self._state.get(uid)
        if m is None:
            m = self._state[uid] = [0, None, 0, {"u": True} if DAMAGE_MARK in self._state else {}]
        lazy = self._lazy.pop(uid, None)
        if lazy is not None:
            m[2] = lazy[0]
            if lazy[1] is not None:
                m[3] = dict(m[3], dc=lazy[1])
        return m

    def store_term_vote(self, uid: str, term: int, voted_for: Any, vote_unproven: bool = False,
                        data_lost: int | None = None) -> None:
        """Durably record term and vote (and the server's fences: ``raft_otp.core.fences``);
        returns after the fsync that covers it."""
        with self._cond:
            m = self._entry(uid)
            m[0], m[1] = term, _vote_in(voted_for)
            fences = {k: v for k, v in m[3].items() if k not in ("u", "l")}
            if vote_unproven:
                fences["u"] = True
            if data_lost is not None:
                fences["l"] = data_lost
            m[3] = fences
            self._append_synced_locked(self._record(uid, m))

    def report_data_loss(self, uid: str, first_lost_index: int) -> None:
        """The log layer found that ``uid`` lost log from ``first_lost_index`` on (a
        damaged segment or WAL region dropped, a file missing): durably mark the
        server ``data_lost`` in its current term, so that when its core starts it
        takes no part in elections until it has caught up from a leader
        (``raft_otp.core.fences``).  Call it before the server's core starts (during
        log recovery); returns after the mark is synced."""
        with self._cond:
            m = self._entry(uid)
            if "l" not in m[3]:
                m[3] = dict(m[3], l=m[0])
            self._append_synced_locked(self._record(uid, m))
        log.warning("server %s lost log from index %d: it will not vote until it has caught up "
                    "from a leader of a later term", uid, first_lost_index)

    def _append_synced_locked(self, record: bytes) -> None:
        """Queue ``record`` and return once a sync covered it (the lock held)."""
        self._pending.append(record)
        self._appended += 1
        self._wait_synced_locked(self._appended)

    def _wait_synced_locked(self, mine: int) -> None:
        """Until a sync covered the ``mine``-th record: sync it ourselves if nobody is
        syncing, else wait for the sync under way (the lock held)."""
        while self._synced < mine:
            if not self._syncing:
                self._sync_locked()
            else:
                self._cond.wait()

    def store_last_applied(self, uid: str, index: int, durable_commit: int | None = None) -> None:
        """Lazily record last_applied and durable_commit (written with the next sync,
        flush, or at most ``lazy_flush_s`` later)."""
        with self._lock:
            self._lazy[uid] = (index, durable_commit)
            if self._lazy_timer is None and self.lazy_flush_s > 0 and not self._closed:
                self._lazy_timer = threading.Timer(self.lazy_flush_s, self._lazy_flush)
                self._lazy_timer.daemon = True
                self._lazy_timer.start()

    def _lazy_flush(self) -> None:
        with self._lock:
            self._lazy_timer = None
            if self._closed or self._fd < 0:
                return
        try:
            self.flush()
        except Exception:  # the next store or flush reports it
            log.exception("meta %s: lazy flush failed", self.path)

    def flush(self) -> None:
        with self._cond:
            for uid in list(self._lazy):
                m = self._entry(uid)
                self._pending.append(self._record(uid, m))
                self._appended += 1
            self._lazy.clear()
            self._wait_synced_locked(self._appended)

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
            self._closed = True
            if self._lazy_timer is not None:
                self._lazy_timer.cancel()
                self._lazy_timer = None
            if self._fd >= 0:
                self.io.close(self._fd)
                self._fd = -1

    def overview(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counters, servers=len(self._state), file_size=self._size)
