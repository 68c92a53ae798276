"""One owner per data dir: an exclusive OS lock on ``<data_dir>/LOCK``.

Whoever opens a data dir takes this lock first, before it touches the WAL, the
meta store or the directory: :func:`raft_otp.system.runtime.start_system` (so
``raft_otp.start_in``), the node entry point (``python -m raft_otp.system``)
and ``raft-otp start``, which take it even before they bind a port or record
the node name, and hand it to ``start_system``.  The system holds it while it
runs; ``stop_system`` releases it after the log is closed.

A second opener, in another process or in this one, gets
:class:`~raft_otp.errors.DataDirLocked` naming the path and the holder's pid,
at once (the lock is never waited for).  Two owners of one data dir would each
append to their own view of the WAL and lose each other's acknowledged writes
at recovery (issue 17: 1,500 increments acknowledged by each of two processes,
1,502 after recovery).

How: ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file, then the holder's pid
written into it (a hint for the error message only; the lock is the truth).
The kernel drops a flock when the last descriptor of its open file goes away:
at ``release``, at exit, and on a crash or ``kill -9``, so a stale LOCK file
(with a dead pid in it) never blocks anyone.  A flock belongs to the open file,
not the process, so a second ``acquire`` in the same process conflicts too.
The file is never deleted: unlinking a lock file lets two processes lock two
different inodes of the same name.  The descriptor is close-on-exec; a plain
``os.fork`` (not used by raft_otp) would share the lock with the child.

RA has no counterpart: an Erlang node's name is unique on its host (epmd), and
RA's data dir is named after it.  LevelDB's ``LOCK`` file is the model.
"""

from __future__ import annotations

import fcntl
import os
import time

from raft_otp.errors import DataDirLocked

__all__ = ["LOCK_FILE", "DataDirLock", "acquire"]

LOCK_FILE = "LOCK"
# The holder writes its pid just after it locks: a loser waits this long at most
# for the pid to appear, to name it in the error.
PID_WAIT_MS_MAX = 100


class DataDirLock:
    """The held lock of one data dir; :meth:`release` is idempotent."""

    __slots__ = ("data_dir", "_fd")

    def __init__(self, data_dir: str, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @property
    def path(self) -> str:
        return os.path.join(self.data_dir, LOCK_FILE)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the file (no pid of a stopped owner left behind), then unlock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # still locked: no new owner's pid can be erased
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor of the open file drops the flock

    def __repr__(self) -> str:
        return f"DataDirLock({self.data_dir!r}, {'held' if self.held else 'released'})"


def acquire(data_dir: str) -> DataDirLock:
    """Lock ``data_dir`` (created 0700 if absent) for this process, or raise
    :class:`DataDirLocked` naming the holder's pid.  Never blocks."""
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)  # private, as its keys and data are
    fd = os.open(os.path.join(data_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise DataDirLocked(data_dir, pid) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return DataDirLock(data_dir, fd)


def _holder_pid(fd: int) -> int | None:
    """The pid the holder wrote into the lock file (None if it never appears)."""
    deadline = time.monotonic() + PID_WAIT_MS_MAX / 1000
    while True:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if raw.isdigit():
            return int(raw)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
