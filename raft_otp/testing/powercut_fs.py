"""A file layer that loses power: an in-memory disk with a page cache (LazyFS's model).

:class:`PowerCutFS` implements :class:`raft_otp.log.fileio.FileIO` entirely in
memory.  Pass one to ``LogSystem(data_dir, file_io=fs)`` (or a system's
``log_options={"file_io": fs}``); several systems may share one, as the
machines of a data centre share its power.

The model:

* **Files.**  Every write (``write``/``writev``/``pwrite``/``ftruncate``) changes
  what reads see at once (the page cache) and is queued on its file as an
  unsynced operation.  ``fsync``/``fdatasync`` of the file makes the operations
  queued *before the call* durable when it returns (a write racing with a sync
  may or may not be covered; we say not).
* **Directories.**  A create, rename, unlink, mkdir or rmtree changes what
  ``listdir``/``open`` see at once; the directory's durable entries are those it
  had when ``fsync_dir`` of that directory was last called.  (Stricter than
  ext4, which journals names; what POSIX promises.)  ``makedirs`` syncs the
  parent of each directory it creates, as the production layer does.
* **Syncs take time**: mostly up to ``sync_latency_s`` (1 ms by default), one in
  five up to six times that (a disk's latency has a tail).  A power cut during a
  sync loses it, and the rest of the system runs on meanwhile, as beside a real
  disk: a slow sync on one machine is where an early acknowledgement shows.
  :meth:`slow_disk` makes the syncs under one directory (a machine's data dir)
  take a given time.
* **Power cut** (:meth:`cut_at_sync` picks the n-th sync point from now, or
  :meth:`cut_now`): the disk keeps what was durable, and of each file's unsynced
  operations, chosen per file with the seeded ``random.Random``: none; a
  prefix, the last one torn at a random byte; or a random subset in any order
  (page writeback has no order; a gap reads as zeros).  From the cut on,
  nothing becomes durable: the running system may go on (it is about to be
  stopped) but only on the page cache.  :meth:`power_on` then replaces
  everything by what survived, as a reboot does, and forgets every open file.
* **Failing syncs** (for the fsync-failure tests): :meth:`fail_syncs` with a
  predicate on :class:`SyncPoint`; a matching sync raises ``OSError(EIO)`` and,
  as Linux does (PostgreSQL's "fsyncgate"), the file's unsynced operations are
  dropped from the queue: they stay visible in the page cache, a later sync
  succeeds, and they are lost at the next power cut all the same.

Sync points are numbered from 1 over the life of the object: every ``fsync``,
``fdatasync`` and ``fsync_dir`` (including those of ``makedirs``).
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["PowerCutFS", "SyncPoint"]

_FD_BASE = 1_000_000  # far above real descriptors: a stray os call on ours fails loudly


@dataclass(frozen=True, slots=True)
class SyncPoint:
    """One sync call: its number (from 1), ``"file"`` or ``"dir"``, and the path."""

    n: int
    kind: str
    path: str


class _File:
    __slots__ = ("data", "durable", "pending")

    def __init__(self, durable: bytes = b"") -> None:
        self.data = bytearray(durable)  # what reads see: the page cache
        self.durable = durable  # what is on the disk
        self.pending: list[tuple[int, bytes | None]] = []  # (offset, data) or (length, None): truncate


class _Dir:
    __slots__ = ("entries", "durable")

    def __init__(self) -> None:
        self.entries: dict[str, _File | _Dir] = {}
        self.durable: dict[str, _File | _Dir] = {}


class _Open:
    __slots__ = ("node", "path", "append", "pos")

    def __init__(self, node: _File, path: str, append: bool) -> None:
        self.node = node
        self.path = path
        self.append = append
        self.pos = 0


def _apply(buf: bytearray, op: tuple[int, bytes | None]) -> None:
    off, data = op
    if data is None:
        if off < len(buf):
            del buf[off:]
        else:
            buf.extend(bytes(off - len(buf)))
        return
    if off > len(buf):
        buf.extend(bytes(off - len(buf)))
    buf[off : off + len(data)] = data


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class PowerCutFS:
    """An in-memory FileIO whose unsynced writes and directory changes a power cut loses."""

    def __init__(self, seed: int = 0, sync_latency_s: float = 0.001) -> None:
        self.rng = random.Random(seed)  # what a cut does to unsynced writes
        self._latency_rng = random.Random(seed + 1)
        self.sync_latency_s = sync_latency_s
        self._slow: dict[str, float] = {}  # path prefix -> sync time
        self._lock = threading.RLock()
        self._root = _Dir()
        self._fds: dict[int, _Open] = {}
        self._next_fd = _FD_BASE
        self.syncs = 0  # sync points so far
        self.powered = True
        self.cut_point: SyncPoint | None = None  # the sync the power died in (None: cut_now, or no cut)
        self.cuts = 0
        self.power_off_event = threading.Event()
        self._cut_at: int | None = None
        self._survivor: _Dir | None = None
        self._fail: Callable[[SyncPoint], bool] | None = None
        self.failed_syncs: list[SyncPoint] = []
        self.torn: dict[str, str] = {}  # path -> what the last cut did to its unsynced writes

    # ---- the power -----------------------------------------------------------------------
    def cut_at_sync(self, n: int) -> None:
        """Cut the power during the ``n``-th sync point from now (1 = the next one):
        that sync, and every one still in flight, does not complete."""
        with self._lock:
            self._cut_at = self.syncs + n

    def cut_now(self) -> None:
        """Cut the power now (between sync points)."""
        with self._lock:
            if self.powered:
                self._power_off(None)

    def power_on(self) -> None:
        """Reboot: the disk holds what survived the cut; every open file is forgotten."""
        with self._lock:
            if self.powered:
                raise RuntimeError("power_on without a cut")
            assert self._survivor is not None
            self._root, self._survivor = self._survivor, None
            self._fds.clear()
            self.powered = True
            self.power_off_event.clear()
            self._cut_at = None

    def slow_disk(self, prefix: str, sync_s: float | None) -> None:
        """Syncs of paths under ``prefix`` take ``sync_s`` (None: back to normal)."""
        with self._lock:
            p = os.path.abspath(prefix) + "/"
            if sync_s is None:
                self._slow.pop(p, None)
            else:
                self._slow[p] = sync_s

    def fail_syncs(self, when: Callable[[SyncPoint], bool] | None) -> None:
        """Make every sync point for which ``when`` is true raise ``OSError(EIO)`` (None: stop)."""
        with self._lock:
            self._fail = when

    def _power_off(self, point: SyncPoint | None) -> None:
        self.powered = False
        self.cut_point = point
        self.cuts += 1
        self.torn = {}
        self._survivor = self._survive(self._root, "", {})
        self._cut_at = None
        self.power_off_event.set()

    def _survive(self, d: _Dir, path: str, seen: dict[int, _File | _Dir]) -> _Dir:
        out = _Dir()
        for name, node in d.durable.items():
            p = f"{path}/{name}"
            got = seen.get(id(node))
            if got is None:
                got = self._survive(node, p, seen) if isinstance(node, _Dir) else self._survive_file(node, p)
                seen[id(node)] = got
            out.entries[name] = got
        out.durable = dict(out.entries)
        return out

    def _survive_file(self, f: _File, path: str) -> _File:
        buf = bytearray(f.durable)
        ops = f.pending
        if ops:
            r = self.rng.random()
            if r < 0.4:
                how = "dropped"
            elif r < 0.8:
                k = self.rng.randrange(len(ops))
                for op in ops[:k]:
                    _apply(buf, op)
                off, data = ops[k]
                if data is not None:
                    _apply(buf, (off, data[: self.rng.randrange(len(data) + 1)]))
                how = f"prefix of {k} of {len(ops)}, next torn"
            else:
                kept = 0
                for op in ops:
                    if self.rng.random() < 0.5:
                        _apply(buf, op)
                        kept += 1
                how = f"{kept} of {len(ops)} in any order"
            self.torn[path] = how
        return _File(bytes(buf))

    # ---- sync points -------------------------------------------------------------------------
    def _sync(self, kind: str, path: str, capture: Callable[[], Callable[[], None]],
              on_fail: Callable[[], None] | None = None) -> None:
        """One sync point: ``capture`` (under the lock, at the call) returns the commit
        to run when the sync completes, if the power is still on then; ``on_fail``
        runs when the sync is made to fail."""
        with self._lock:
            if not self.powered:
                return  # nothing becomes durable any more
            self.syncs += 1
            point = SyncPoint(self.syncs, kind, path)
            if self._fail is not None and self._fail(point):
                self.failed_syncs.append(point)
                if on_fail is not None:
                    on_fail()
                raise _err(errno.EIO, path)
            commit = capture()
            cut_here = self._cut_at is not None and self.syncs >= self._cut_at
            lat = self.sync_latency_s * (self._latency_rng.uniform(2, 6) if self._latency_rng.random() < 0.2
                                         else self._latency_rng.random())
            for prefix, slow in self._slow.items():
                if path.startswith(prefix):
                    lat = slow
        if lat > 0:
            time.sleep(lat)  # the disk's time: the system runs on meanwhile
        with self._lock:
            if not self.powered:
                return
            if cut_here:
                self._power_off(point)
                return
            commit()

    def _sync_file(self, fd: int) -> None:
        o = self._open_of(fd)
        node = o.node

        def capture() -> Callable[[], None]:
            n = len(node.pending)

            def commit() -> None:
                buf = bytearray(node.durable)
                for op in node.pending[:n]:
                    _apply(buf, op)
                node.durable = bytes(buf)
                del node.pending[:n]

            return commit

        def on_fail() -> None:  # the page cache is marked clean: the writes never reach the disk
            node.pending.clear()

        self._sync("file", o.path, capture, on_fail)

    # ---- paths --------------------------------------------------------------------------------
    @staticmethod
    def _parts(path: str) -> list[str]:
        return [p for p in os.path.abspath(path).split("/") if p]

    def _lookup(self, path: str) -> _File | _Dir | None:
        node: _File | _Dir | None = self._root
        for p in self._parts(path):
            if not isinstance(node, _Dir):
                return None
            node = node.entries.get(p)
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        parts = self._parts(path)
        if not parts:
            raise _err(errno.EINVAL, path)
        d = self._lookup("/" + "/".join(parts[:-1]))
        if not isinstance(d, _Dir):
            raise _err(errno.ENOENT, path)
        return d, parts[-1]

    def _open_of(self, fd: int) -> _Open:
        o = self._fds.get(fd)
        if o is None:
            raise OSError(errno.EBADF, "bad file descriptor (power-cut layer)")
        return o

    # ---- FileIO -----------------------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        with self._lock:
            d, name = self._parent(path)
            node = d.entries.get(name)
            if isinstance(node, _Dir):
                raise _err(errno.EISDIR, path)
            if node is None:
                if not flags & os.O_CREAT:
                    raise _err(errno.ENOENT, path)
                node = d.entries[name] = _File()
            elif flags & os.O_CREAT and flags & os.O_EXCL:
                raise _err(errno.EEXIST, path)
            elif flags & os.O_TRUNC and (flags & os.O_WRONLY or flags & os.O_RDWR):
                node.data.clear()
                node.pending.append((0, None))
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = _Open(node, os.path.abspath(path), bool(flags & os.O_APPEND))
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            if self._fds.pop(fd, None) is None and self.powered:
                raise OSError(errno.EBADF, "bad file descriptor (power-cut layer)")

    def _write_at(self, o: _Open, data: bytes, offset: int) -> None:
        op = (offset, data)
        _apply(o.node.data, op)
        o.node.pending.append(op)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        b = bytes(data)
        with self._lock:
            o = self._open_of(fd)
            if o.append:
                o.pos = len(o.node.data)
            self._write_at(o, b, o.pos)
            o.pos += len(b)
            return len(b)

    def writev(self, fd: int, bufs: Sequence[bytes]) -> int:
        return self.write(fd, b"".join(bufs))

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        b = bytes(data)
        with self._lock:
            self._write_at(self._open_of(fd), b, offset)
            return len(b)

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        with self._lock:
            return bytes(self._open_of(fd).node.data[offset : offset + n])

    def fsize(self, fd: int) -> int:
        with self._lock:
            return len(self._open_of(fd).node.data)

    def ftruncate(self, fd: int, length: int) -> None:
        with self._lock:
            node = self._open_of(fd).node
            op = (length, None)
            _apply(node.data, op)
            node.pending.append(op)

    def fsync(self, fd: int) -> None:
        self._sync_file(fd)

    def fdatasync(self, fd: int) -> None:
        self._sync_file(fd)

    def fsync_dir(self, path: str) -> None:
        with self._lock:
            d = self._lookup(path)
            if not isinstance(d, _Dir):
                raise _err(errno.ENOENT if d is None else errno.ENOTDIR, path)

        def capture() -> Callable[[], None]:
            entries = dict(d.entries)

            def commit() -> None:
                d.durable = entries

            return commit

        self._sync("dir", os.path.abspath(path), capture)

    def read_file(self, path: str) -> bytes:
        with self._lock:
            node = self._lookup(path)
            if node is None:
                raise _err(errno.ENOENT, path)
            if isinstance(node, _Dir):
                raise _err(errno.EISDIR, path)
            return bytes(node.data)

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            sd, sn = self._parent(src)
            dd, dn = self._parent(dst)
            node = sd.entries.get(sn)
            if node is None:
                raise _err(errno.ENOENT, src)
            del sd.entries[sn]
            dd.entries[dn] = node
            for o in self._fds.values():
                if o.node is node:
                    o.path = os.path.abspath(dst)

    def unlink(self, path: str) -> None:
        with self._lock:
            d, name = self._parent(path)
            node = d.entries.get(name)
            if node is None:
                raise _err(errno.ENOENT, path)
            if isinstance(node, _Dir):
                raise _err(errno.EISDIR, path)
            del d.entries[name]

    def listdir(self, path: str) -> list[str]:
        with self._lock:
            d = self._lookup(path)
            if not isinstance(d, _Dir):
                raise _err(errno.ENOENT if d is None else errno.ENOTDIR, path)
            return list(d.entries)

    def exists(self, path: str) -> bool:
        with self._lock:
            return self._lookup(path) is not None

    def isdir(self, path: str) -> bool:
        with self._lock:
            return isinstance(self._lookup(path), _Dir)

    def makedirs(self, path: str) -> None:
        created: list[str] = []
        with self._lock:
            node: _File | _Dir = self._root
            cur = ""
            for p in self._parts(path):
                cur += "/" + p
                assert isinstance(node, _Dir)
                nxt = node.entries.get(p)
                if nxt is None:
                    nxt = node.entries[p] = _Dir()
                    created.append(cur)
                elif not isinstance(nxt, _Dir):
                    raise _err(errno.ENOTDIR, cur)
                node = nxt
        for c in created:
            self.fsync_dir(os.path.dirname(c))

    def rmtree(self, path: str) -> None:
        with self._lock:
            try:
                d, name = self._parent(path)
            except OSError:
                return
            d.entries.pop(name, None)

    # ---- for checks -----------------------------------------------------------------------------------
    def durable_bytes(self, path: str) -> bytes | None:
        """What the disk holds for ``path`` now (the page cache ignored), None if not a file."""
        with self._lock:
            node = self._lookup(path)
            return node.durable if isinstance(node, _File) else None
