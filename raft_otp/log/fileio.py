"""The one seam for file I/O of the log: WAL, segments, snapshots and meta.

Every file operation of :mod:`raft_otp.log` goes through a :class:`FileIO`
object passed in at construction (``LogSystem(data_dir, config, file_io=...)``,
default :data:`OS`), never through ``os`` directly, so a test can swap the whole
storage layer of one system: :class:`raft_otp.testing.powercut_fs.PowerCutFS`
keeps unsynced writes in memory and loses or tears them at a power cut
(LazyFS's model), or fails a chosen sync.

The production implementation, :class:`OsFileIO`, binds its methods to the
``os`` functions themselves (``OS.fdatasync is os.fdatasync``): the WAL's hot
path (``writev`` + ``fdatasync``) calls the same builtins as before, through
an attribute of the object instead of the module.

Durability contract that callers rely on (and that the power-cut layer models):

* data written to a file is durable only after ``fsync``/``fdatasync`` of it;
* a directory entry (create, rename, unlink, mkdir) is durable only after
  ``fsync_dir`` of the directory holding it;
* :meth:`FileIO.makedirs` is durable: it syncs the parent of every directory it
  creates, so a new server's directories survive a power cut with their files.

RA has no such seam (``ra_file`` wraps a few calls for retries); this one exists
for fault injection.
"""

from __future__ import annotations

import os
import shutil
from typing import Protocol, Sequence

# open flags the log uses, re-exported so callers need not import os for them
O_RDONLY = os.O_RDONLY
O_WRONLY = os.O_WRONLY
O_RDWR = os.O_RDWR
O_CREAT = os.O_CREAT
O_EXCL = os.O_EXCL
O_TRUNC = os.O_TRUNC
O_APPEND = os.O_APPEND
O_DSYNC = getattr(os, "O_DSYNC", 0)


class FileIO(Protocol):
    """The file operations of the log (fd-based, as ``os``)."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int: ...
    def close(self, fd: int) -> None: ...
    def write(self, fd: int, data: bytes | memoryview) -> int: ...
    def writev(self, fd: int, bufs: Sequence[bytes]) -> int: ...
    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int: ...
    def pread(self, fd: int, n: int, offset: int) -> bytes: ...
    def fsize(self, fd: int) -> int: ...
    def ftruncate(self, fd: int, length: int) -> None: ...
    def fsync(self, fd: int) -> None: ...
    def fdatasync(self, fd: int) -> None: ...
    def fsync_dir(self, path: str) -> None: ...
    def read_file(self, path: str) -> bytes: ...
    def rename(self, src: str, dst: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def exists(self, path: str) -> bool: ...
    def isdir(self, path: str) -> bool: ...
    def makedirs(self, path: str) -> None: ...
    def rmtree(self, path: str) -> None: ...


def _fsize(fd: int) -> int:
    return os.fstat(fd).st_size


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_file(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.readall()


def _makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, then sync the parent of each level created."""
    path = os.path.abspath(path)
    missing: list[str] = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if not missing:
        return
    os.makedirs(path, exist_ok=True)
    for d in reversed(missing):
        _fsync_dir(os.path.dirname(d))


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class OsFileIO:
    """Plain ``os`` calls (production)."""

    open = staticmethod(os.open)
    close = staticmethod(os.close)
    write = staticmethod(os.write)
    writev = staticmethod(os.writev)
    pwrite = staticmethod(os.pwrite)
    pread = staticmethod(os.pread)
    fsize = staticmethod(_fsize)
    ftruncate = staticmethod(os.ftruncate)
    fsync = staticmethod(os.fsync)
    fdatasync = staticmethod(getattr(os, "fdatasync", os.fsync))
    fsync_dir = staticmethod(_fsync_dir)
    read_file = staticmethod(_read_file)
    rename = staticmethod(os.rename)
    unlink = staticmethod(os.unlink)
    listdir = staticmethod(os.listdir)
    exists = staticmethod(os.path.exists)
    isdir = staticmethod(os.path.isdir)
    makedirs = staticmethod(_makedirs)
    rmtree = staticmethod(_rmtree)


OS: FileIO = OsFileIO()
"""The production file layer."""


def write_all(io: FileIO, fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at the file position (a short write is continued)."""
    mv = memoryview(data)
    while len(mv):
        mv = mv[io.write(fd, mv):]


def pwrite_all(io: FileIO, fd: int, data: bytes | memoryview, offset: int) -> None:
    mv = memoryview(data)
    done = 0
    while done < len(mv):
        done += io.pwrite(fd, mv[done:], offset + done)
