"""The write-ahead log of one system (RA ``ra_log_wal``).

Every server of a system writes through one :class:`Wal`.  A server's log calls
:meth:`Wal.submit` with one writer batch (contiguous entries) once per server
step: the record is encoded and checksummed on the caller's thread, then
appended to a queue under a lock; no actor message, no I/O.  Everything else
happens on the WAL's own ``workers`` (4) threads: they take the whole queue
(up to ``max_batch_size`` entries and ``max_batch_bytes``, 1 MiB) as one batch,
write it with one ``writev``, run one fdatasync and post one
:class:`~raft_otp.log.events.WalWritten` per writer through the writer's
``notify`` callable.  One write path; a sync never runs on a submitting thread.

Group commit, the one policy that decides when a batch goes out:

* a submit to an idle WAL (nothing queued, no batch being written) wakes a
  parked worker at once: no timer, no waiting to gather a bigger batch;
* while a batch is being written, new submits gather in the queue; the moment
  the writing turn is free, the next worker takes all of them as the next
  batch (writes stay in submission order: one worker writes at a time);
* syncs overlap: a worker gives the writing turn up before it syncs its batch,
  so the next batch is written, and its sync started, while the previous one's
  sync runs (the kernel merges them, as it would for concurrent writers); at
  most ``workers`` syncs are in flight, and with every worker syncing, submits
  gather until one is free.  The cap on batch size gives big payloads several
  overlapping syncs rather than one long one.

A worker notifies with no lock and no writing turn held, so a writer's
``notify`` may do real work on it: each worker marks itself with
``supervisors.scheduler.mark_inline_thread``, and the scheduler may then run
an idle server's step right there, on the thread that delivered its "written"
event (one hand-off fewer).

At ``max_size_bytes`` (or ``max_entries`` entries in the file, which bounds the
mem tables) the file is synced, rolled and handed to the segment writer.

:class:`WalActor` wraps the engine in a plain ``pykka.ThreadingActor`` so a
supervisor can own it: a crash of a worker thread crashes the actor.

Differences from RA: no "start at 32, double while busy" batch counter
(draining the whole queue is already adaptive); overlapping syncs (RA's one
WAL process writes and syncs one batch at a time); records hold a writer batch and
the uid (see :mod:`raft_otp.log.wal_format`); a non-truncating write from a
writer this WAL incarnation has not seen, or one with a gap, is dropped and the
writer is asked to resend (RA does the same for gaps).

Write and sync failures (issue 19).  An ``OSError`` from a write or a sync does
not crash the WAL (before, ENOSPC crashed it into a restart storm that stopped
the system).  The file is abandoned: no sync is ever issued on it again, and a
sync that succeeds on it after another failed is not believed (PostgreSQL's
"fsyncgate": Linux reports a writeback error once and marks the pages clean, so
a later sync succeeding proves nothing).  It is cut back to what the last
successful sync covered (no half-written record stays; the cut itself is never
synced, so after a power cut the tail may come back torn, which recovery drops
as it always does) and handed to the segment writer like a rolled file.  Then a
new file is opened and every writer is told ``WalUp``: it resends, as a
truncating write, everything after its last *confirmed* index, so nothing
unconfirmed is ever reported written and nothing acknowledged depends on the
abandoned file.  ENOSPC also raises the system's disk alarm
(:mod:`raft_otp.log.disk_alarm`); the WAL then waits, refusing submits (the
writers resend on ``WalUp``), and retries at each alarm check once free space
is back.  Another error reopens at once.  Known limit: syncs overlap, and Linux
reports a writeback error to one of two concurrent syncs of a file; the other
one's success (covering the failed pages) is believed if it returned first.
"""

from __future__ import annotations
from raft_otp import _trace as _T  # TRACE

import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pykka
from supervisors.scheduler import mark_inline_thread

from raft_otp.core.types import Entry
from raft_otp.log import wal_format as fmt
from raft_otp.log.disk_alarm import DiskAlarm, is_enospc
from raft_otp.log.fileio import O_CREAT, O_DSYNC, O_EXCL, O_WRONLY, OS, FileIO, write_all
from raft_otp.log.events import ResendRequest, WalWritten
from raft_otp.log.memtable import MemTables
from raft_otp.log.wal_recovery import recover_file

log = logging.getLogger("raft_otp.wal")

WAL_FILE_RE = re.compile(r"^(\d{8})\.wal$")

_generation_lock = threading.Lock()
_generation = 0


def _next_generation() -> int:
    global _generation
    with _generation_lock:
        _generation += 1
        return _generation


@dataclass(slots=True)
class WalConfig:
    dir: str
    sync_method: str = "datasync"  # datasync | fsync | none
    max_size_bytes: int = 256_000_000
    max_batch_size: int = 8192  # entries per write+sync
    max_batch_bytes: int = 1 << 20  # bytes per write+sync: big payloads make more, overlapping syncs
    workers: int = 4  # threads alternating write (in order) and sync (overlapping)
    max_entries: int = 2_000_000  # entries per file before a forced rollover (bounds mem tables)
    o_dsync: bool = False  # datasync through O_DSYNC writes instead of fdatasync calls
    disk_alarm: Any = None  # the system's DiskAlarm (raft_otp.log.disk_alarm); None: a private one


def wal_files(dir_: str, io: FileIO = OS) -> list[tuple[int, str]]:
    out = []
    for name in io.listdir(dir_):
        m = WAL_FILE_RE.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(dir_, name)))
    out.sort()
    return out


_IOV_MAX = 1024


def _write_all(io: FileIO, fd: int, bufs: list[bytes]) -> int:
    """writev the buffers (no joining copy); returns bytes written."""
    total = 0
    for k in range(0, len(bufs), _IOV_MAX):
        chunk = bufs[k : k + _IOV_MAX]
        want = sum(map(len, chunk))
        n = io.writev(fd, chunk)
        if n < want:  # partial write: finish the rest plainly
            write_all(io, fd, memoryview(b"".join(chunk))[n:])
        total += want
    return total


class _Item:
    """One queued writer batch, already encoded by the submitting thread."""

    __slots__ = ("uid", "notify", "seq", "first", "count", "last_term", "truncate", "hdr", "body", "size")

    def __init__(self, uid: bytes, notify: Callable[[object], None], seq: int, first: int,
                 entries: Sequence[Entry], truncate: bool) -> None:
        self.uid = uid
        self.notify = notify
        self.seq = seq
        self.first = first
        self.count = len(entries)
        self.last_term = entries[-1][1] if entries else -1
        self.truncate = truncate
        self.hdr, self.body = fmt.encode_record(uid, first, entries, truncate)
        self.size = len(self.hdr) + len(self.body)


class Wal:
    """The WAL engine: file, queue and writer thread.  Thread-safe :meth:`submit`."""

    def __init__(self, config: WalConfig, mem_tables: MemTables,
                 on_crash: Callable[[BaseException], None] | None = None) -> None:
        if config.sync_method not in ("datasync", "fsync", "none"):
            raise ValueError(f"wal_sync_method must be datasync, fsync or none, not {config.sync_method!r}")
        self.config = config
        self.mem_tables = mem_tables
        self.io: FileIO = mem_tables.io
        self.generation = _next_generation()
        self._on_crash = on_crash
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[_Item] = []
        self._queued_entries = 0
        self._queued_bytes = 0
        self._writing = False  # a worker is taking and writing a batch (in queue order)
        self._idle = 0  # workers parked on _cond, waiting for a batch to write
        self._stopping = False
        self._fd = -1
        self._file_no = 0
        self._path = ""
        self._size = 0
        self._file_entries = 0
        # as RA: the first file after a start rolls at a random size between half and
        # full, so the systems of a node do not all roll (and flush) in lockstep
        self._size_limit = random.randint(config.max_size_bytes // 2, config.max_size_bytes)
        self._ranges: dict[bytes, list[int]] = {}
        self._last: dict[bytes, int] = {}  # uid -> last index accepted by this incarnation
        self.crashed: BaseException | None = None
        self._scond = threading.Condition(threading.Lock())  # syncs in flight, counters
        self._syncing = 0
        self._threads: list[threading.Thread] = []
        self.counters = {"writes": 0, "entries": 0, "batches": 0, "bytes": 0, "syncs": 0,
                         "files": 0, "dropped_gaps": 0, "sync_time_s": 0.0,
                         "write_failures": 0, "sync_failures": 0, "abandoned_files": 0, "resumes": 0}
        # write/sync failures: the file is abandoned and the WAL blocked until a new one is open
        self._failed: OSError | None = None  # set: blocked (submits refused, workers parked)
        self._failed_enospc = False
        self._distrusted_fd = -1  # a sync of it failed: no later success on it is believed
        self._synced_size = 0  # the current file's bytes covered by a successful sync
        self._file_progress = False  # a write to the current file was confirmed
        self._own_alarm = config.disk_alarm is None
        self.alarm: DiskAlarm = config.disk_alarm or DiskAlarm(config.dir)
        # o_dsync: open the file O_DSYNC so write and sync are one system call (the
        # writer thread re-takes the GIL once per batch, not twice); no measurable
        # difference on the bench machine, so off by default
        self._open_flags = 0
        if config.sync_method == "datasync" and config.o_dsync and O_DSYNC:
            self._open_flags = O_DSYNC
            self._sync: Callable[[int], None] | None = None
        elif config.sync_method == "datasync":
            self._sync = self.io.fdatasync
        elif config.sync_method == "none":
            self._sync = None
        else:
            self._sync = self.io.fsync

    # ---- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self.io.makedirs(self.config.dir)
        files = wal_files(self.config.dir, self.io)
        self._recover(files)
        self._file_no = files[-1][0] + 1 if files else 1
        try:
            self._open_file()
        except OSError as exc:  # e.g. a full disk at boot: wait for space instead of crash-looping
            self._failed = exc
            self._failed_enospc = is_enospc(exc)
            self._blocked_retry(exc)
        self._threads = [threading.Thread(target=self._run, name=f"wal-{self.generation}-{k}", daemon=True)
                         for k in range(max(1, self.config.workers))]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write and sync what is queued, then stop the threads and close the file."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout)
        end = time.monotonic() + timeout
        with self._scond:  # a worker that did not stop in time may still be syncing
            while self._syncing and time.monotonic() < end:
                self._scond.wait(0.01)
        self.alarm.remove_retry(self._retry)
        if self._own_alarm:
            self.alarm.stop()
        if self._fd >= 0:
            try:
                self.io.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    @property
    def path(self) -> str:
        return self._path

    # ---- the hot path: called from server threads -------------------------------
    def submit(self, uid: bytes, notify: Callable[[object], None], seq: int, first: int,
               entries: Sequence[Entry], truncate: bool) -> bool:
        """Queue one writer batch; False if this WAL is stopping or blocked.

        The record is encoded (and checksummed) here, on the caller's thread: the
        encoding of the next batch overlaps the WAL thread's write and sync of
        the current one, and the WAL thread's own work per batch stays small.
        Nothing is written here: a parked worker is woken at once if nobody is
        writing (see the module docstring), and ``notify`` is called later from
        a WAL thread."""
        if _T.ON: _T.mark("wal", f"submit {len(entries)}")  # TRACE
        item = _Item(uid, notify, seq, first, entries, truncate)
        with self._lock:
            if self._stopping or self._failed is not None:
                return False
            self._queue.append(item)
            self._queued_entries += item.count
            self._queued_bytes += item.size
            self._hand_on()  # else the worker holding the writing turn hands on when done
        return True

    def _hand_on(self) -> None:
        """Under the lock, whenever a batch was queued or the writing turn may have
        become free: wake one parked worker if a batch waits and nobody writes (all
        of them if stopping, so they see the end)."""
        if self._stopping:
            self._cond.notify_all()
        elif self._queue and self._idle and not self._writing:
            self._cond.notify()

    # ---- writer thread -------------------------------------------------------------
    def _take(self) -> list[_Item] | None:
        """Park until a batch is queued and nobody is writing; claim the writing turn
        and take the batch (None: stop).  Only the worker holding the turn writes."""
        with self._cond:
            while not self._queue or self._writing or self._failed is not None:
                if (self._stopping and not self._queue) or self.crashed is not None \
                        or (self._stopping and self._failed is not None):
                    return None
                self._idle += 1
                self._cond.wait()
                self._idle -= 1
            if self.crashed is not None:
                return None
            self._writing = True
            q = self._queue
            limit = self.config.max_batch_size
            blimit = self.config.max_batch_bytes
            if self._queued_entries <= limit and self._queued_bytes <= blimit:
                self._queue = []
                self._queued_entries = 0
                self._queued_bytes = 0
                return q
            n = 0
            nb = 0
            k = 0
            while k < len(q) and ((n < limit and nb < blimit) or k == 0):
                n += q[k].count
                nb += q[k].size
                k += 1
            self._queue = q[k:]
            self._queued_entries -= n
            self._queued_bytes -= nb
            return q[:k]

    def _run(self) -> None:
        """A worker thread: take and write a batch (in order: one worker holds the
        writing turn from take to written), then sync it and notify its writers
        after giving the turn up, so another worker writes the next batch while
        this one syncs.  Parked workers wait on one condition; only a queued batch
        with nobody writing wakes one (a lone batch wakes one thread, not two).

        A sync that started after a batch was written covers it, so a writer may
        hear about a later batch before an earlier one; ServerLog ignores stale
        (lower ``seq``) events."""
        mark_inline_thread()  # the scheduler may run a notified, idle server's step here
        try:
            while self.crashed is None:
                items = self._take()
                if items is None:
                    break
                resend: dict[bytes, Callable[[object], None]] = {}
                done: dict[bytes, _Item] = {}
                began: tuple[int, int, bool] | None = None
                try:
                    if _T.ON: _T.mark("wal", f"took {len(items)}")  # TRACE
                    fd = self._fd
                    try:
                        done = self._write_batch(items, resend)
                        if _T.ON: _T.mark("wal", "written")  # TRACE
                        began = self._roll_or_begin_sync(done)
                    except OSError as exc:  # the batch is not written: abandon the file, writers resend
                        self._io_error(exc, fd, sync=False, have_turn=True)
                finally:
                    with self._cond:
                        self._writing = False
                        self._hand_on()  # the next batch, while we sync this one
                self._ask_resend(resend, done)
                if began is None:
                    continue
                fd, end, synced = began
                if not synced and not self._sync_begun(fd, end):
                    continue
                if _T.ON: _T.mark("wal", "synced")  # TRACE
                self._notify(done)
        except BaseException as exc:  # crash the actor; servers resend to the next WAL
            self._crash(exc)
        finally:
            with self._cond:
                self._cond.notify_all()  # let the other worker see stop / crash

    def _roll_or_begin_sync(self, done: dict[bytes, _Item]) -> tuple[int, int, bool] | None:
        """After a batch is written (the caller holds the writing turn): if the file
        is full, sync it, wait for in-flight syncs and roll over, and return
        (fd, end, True): ``done`` is durable, to be notified once the turn is given
        up.  Otherwise, if ``done`` has writers, count a sync as in flight and
        return (fd, bytes written, False) to sync (the caller must call _sync_begun
        with them).  Returns None when there is nothing more to sync.  A failed
        write or open raises OSError (the caller abandons the file); a failed sync
        is handled here."""
        if self._size >= self._size_limit or self._file_entries >= self.config.max_entries:
            fd, end = self._fd, self._size
            try:
                self._sync_fd(fd)
            except OSError as exc:
                self._io_error(exc, fd, sync=True, have_turn=True)
                return None
            with self._scond:
                while self._syncing and self.crashed is None:
                    self._scond.wait(1.0)
            if not self._synced(fd, end):
                return None
            self._size_limit = self.config.max_size_bytes
            self._roll_over()
            return (fd, end, True) if done else None
        if not done:
            return None
        fd = self._fd
        with self._scond:
            self._syncing += 1
        return fd, self._size, False

    def _sync_begun(self, fd: int, end: int) -> bool:
        """Sync ``fd`` for a sync counted in flight by _roll_or_begin_sync, then
        uncount it and wake anyone waiting to roll over.  True if the bytes up to
        ``end`` are durable (the caller may notify); False if the sync failed, or
        succeeded on a file whose sync failed before (not believed)."""
        failed: OSError | None = None
        try:
            self._sync_fd(fd)
        except OSError as exc:
            failed = exc
        finally:
            with self._scond:
                self._syncing -= 1
                self._scond.notify_all()
        if failed is not None:
            self._io_error(failed, fd, sync=True, have_turn=False)
            return False
        return self._synced(fd, end)

    def _synced(self, fd: int, end: int) -> bool:
        """A sync of ``fd`` covering its first ``end`` bytes returned success: believe
        it unless a sync of that file failed (fsyncgate) or the file was abandoned."""
        with self._lock:
            if fd != self._fd or fd == self._distrusted_fd:
                return False
            if end > self._synced_size:
                self._synced_size = end
                self._file_progress = True
        return True

    # ---- write and sync failures -------------------------------------------------------
    def _io_error(self, exc: OSError, fd: int, *, sync: bool, have_turn: bool) -> None:
        """A write or sync of ``fd`` failed: block, abandon the file, reopen (see the
        module docstring).  ``have_turn``: the caller holds the writing turn (nobody
        else writes the file meanwhile)."""
        with self._lock:
            if sync and fd == self._fd:
                self._distrusted_fd = fd
            if self._failed is not None or fd != self._fd or fd < 0:
                return  # being handled already (or a file abandoned since)
            self._failed = exc
            self._failed_enospc = is_enospc(exc)
            again = not self._file_progress  # the file failed before confirming anything
            self._queue = []  # their writers resend at WalUp
            self._queued_entries = 0
            self._queued_bytes = 0
        self.counters["sync_failures" if sync else "write_failures"] += 1
        log.error("WAL %s of %s failed: %r; the file is abandoned (never synced again) and what it "
                  "did not confirm is written again into a new file", "sync" if sync else "write",
                  self._path, exc)
        if not have_turn:
            self._claim_turn()
        try:
            self._abandon_file()
            if self._failed_enospc or again:
                # wait for space, or (failing again on a fresh file) a while: resume at
                # an alarm check, not in a loop of new files
                self._blocked_retry(exc)
            else:
                self._reopen()
        finally:
            if not have_turn:
                self._release_turn()

    def _claim_turn(self) -> None:
        with self._cond:
            while self._writing:
                self._cond.wait(0.05)
            self._writing = True

    def _release_turn(self) -> None:
        with self._cond:
            self._writing = False
            self._hand_on()

    def _abandon_file(self) -> None:
        """Holding the turn, after a failure: let the syncs in flight end, cut the file
        back to what a believed sync covered, close it (no sync) and hand it to the
        segment writer (its entries are still in the mem tables)."""
        with self._scond:
            while self._syncing:
                self._scond.wait(1.0)
        fd = self._fd
        if fd < 0:
            return
        cut = self._synced_size
        try:
            self.io.ftruncate(fd, cut)
        except OSError as exc:
            log.warning("WAL: cutting abandoned %s back to %d bytes failed: %r", self._path, cut, exc)
        try:
            self.io.close(fd)
        except OSError:
            pass
        path = self._path
        ranges = {k.decode(): (v[0], v[1]) for k, v in self._ranges.items()}
        with self._lock:
            self._fd = -1
            self._distrusted_fd = -1
        self._ranges = {}
        self._file_no += 1
        self.counters["abandoned_files"] += 1
        log.warning("WAL file %s abandoned at %d bytes (%d servers)", path, cut, len(ranges))
        self.mem_tables.request_flush(path, ranges)

    def _reopen(self) -> bool:
        """Holding the turn, blocked, no file open: open the next file and unblock;
        every writer then resends what was not confirmed (WalUp).  False if the
        file cannot be opened (retried at the next alarm check)."""
        try:
            self._open_file()
        except OSError as exc:
            self._blocked_retry(exc)
            return False
        self.alarm.remove_retry(self._retry)
        self.alarm.clear("wal")
        with self._lock:
            was = self._failed
            self._failed = None
            self._failed_enospc = False
            self._last = {}  # a writer's next write must be its truncating resend
            self.generation = _next_generation()
        self.counters["resumes"] += 1
        log.warning("WAL resumed in %s after %r; writers resend what was not confirmed", self._path, was)
        self.mem_tables.set_wal(self)
        return True

    def _blocked_retry(self, exc: OSError) -> None:
        """Stay blocked; raise the alarm, and retry at every alarm check."""
        if is_enospc(exc):
            self.alarm.enospc("wal", exc)
        else:
            self.alarm.raise_("wal", f"WAL file failed again before confirming a write: {exc}")
        self.alarm.add_retry(self._retry)
        self.alarm.start()

    def resume_free_bytes(self) -> int:
        """After ENOSPC, free space wanted before a retry: two full batches (a retry
        that fails at once would only abandon another file)."""
        return 2 * self.config.max_batch_bytes

    def _retry(self) -> None:
        """Alarm check: if blocked and (after ENOSPC) space is back, reopen."""
        if self._stopping or self._failed is None:
            self.alarm.remove_retry(self._retry)
            return
        free = self.alarm.free_bytes
        if self._failed_enospc and free is not None and free < self.resume_free_bytes():
            return
        self._claim_turn()
        try:
            if self._failed is not None and not self._stopping:
                self._abandon_file()
                self._reopen()
        finally:
            self._release_turn()

    def _sync_fd(self, fd: int) -> None:
        if self._sync is None:
            return
        t0 = time.perf_counter()
        self._sync(fd)
        dt = time.perf_counter() - t0
        with self._scond:
            self.counters["sync_time_s"] += dt
            self.counters["syncs"] += 1

    def _ask_resend(self, resend: dict[bytes, Callable[[object], None]], done: dict[bytes, _Item]) -> None:
        """Tell each writer with a dropped item, and none written after it, to resend
        (a writer with a later item written hears WalWritten instead)."""
        for uid, notify in resend.items():
            if uid not in done:
                notify(ResendRequest(uid.decode(), self.generation))

    def _notify(self, done: dict[bytes, _Item]) -> None:
        for uid, it in done.items():
            it.notify(WalWritten(uid.decode(), it.seq, it.first + it.count - 1, it.last_term))

    def _crash(self, exc: BaseException) -> None:
        if self.crashed is not None:
            return
        self.crashed = exc
        log.error("WAL thread crashed: %r", exc, exc_info=exc)
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
        with self._scond:
            self._scond.notify_all()
        self.mem_tables.clear_wal(self)
        if self._on_crash is not None:
            self._on_crash(exc)

    def _write_batch(self, items: list[_Item], resend: dict[bytes, Callable[[object], None]]
                     ) -> dict[bytes, _Item]:
        """Write a batch (no sync); returns the last item per writer.  Writers with a
        dropped item (a gap, or unknown to this incarnation) are added to ``resend``."""
        out: list[bytes] = []
        done: dict[bytes, _Item] = {}
        last = self._last
        n_entries = 0
        for it in items:
            uid = it.uid
            n = it.count
            prev = last.get(uid)
            if not it.truncate and (prev is None or it.first != prev + 1):
                self.counters["dropped_gaps"] += 1
                resend[uid] = it.notify
                continue
            out.append(it.hdr)
            out.append(it.body)
            self._mark_written(uid, it.first, it.first + n - 1)
            n_entries += n
            done[uid] = it
        if not out:
            return done
        self._count_written(_write_all(self.io, self._fd, out), len(done), n_entries)
        return done

    def _mark_written(self, uid: bytes, first: int, hi: int) -> None:
        """A writer's entries ``first..hi`` go into the current file (the caller holds
        the writing turn): its next index, and the range the segment writer flushes
        from the mem tables when this file rolls."""
        self._last[uid] = hi
        r = self._ranges.get(uid)
        if r is None:
            self._ranges[uid] = [first, hi]
        else:
            if first < r[0]:
                r[0] = first
            if hi > r[1]:
                r[1] = hi

    def _count_written(self, size: int, writes: int, entries: int) -> None:
        """After one write call of ``size`` bytes carrying ``writes`` writers' batches."""
        self._size += size
        self._file_entries += entries
        with self._scond:
            c = self.counters
            c["batches"] += 1
            c["writes"] += writes
            c["entries"] += entries
            c["bytes"] += size
            if self._open_flags:  # O_DSYNC: already durable
                c["syncs"] += 1

    # ---- files ---------------------------------------------------------------------
    def _open_file(self) -> None:
        self._path = os.path.join(self.config.dir, f"{self._file_no:08d}.wal")
        io = self.io
        fd = io.open(self._path, O_WRONLY | O_CREAT | O_EXCL | self._open_flags, 0o644)
        hdr = fmt.encode_file_header()
        try:
            write_all(io, fd, hdr)
            io.fsync(fd)
            io.fsync_dir(self.config.dir)
        except OSError:  # no half-made file left behind (the retry opens the same name)
            for undo in (lambda: io.close(fd), lambda: io.unlink(self._path)):
                try:
                    undo()
                except OSError:
                    pass
            raise
        with self._lock:
            self._fd = fd
            self._synced_size = len(hdr)
            self._file_progress = False
        self._size = len(hdr)
        self._file_entries = 0
        self._ranges = {}
        self.counters["files"] += 1

    def _roll_over(self) -> None:
        """Called holding the writing turn with everything in the file synced."""
        self.io.close(self._fd)
        with self._lock:
            self._fd = -1
        path, ranges = self._path, {k.decode(): (v[0], v[1]) for k, v in self._ranges.items()}
        self._ranges = {}
        self._file_no += 1
        log.info("WAL rolled over %s (%d servers)", path, len(ranges))
        self.mem_tables.request_flush(path, ranges)
        try:
            self._open_file()
        except OSError as exc:  # no file: blocked until one opens (writers resend then)
            with self._lock:
                self._failed = exc
                self._failed_enospc = is_enospc(exc)
                self._queue = []
                self._queued_entries = 0
                self._queued_bytes = 0
            log.error("WAL: opening the next file after %s failed: %r; blocked until it opens", path, exc)
            self._blocked_retry(exc)

    def _recover(self, files: list[tuple[int, str]]) -> None:
        """Read existing WAL files; fill mem tables on first start; hand files to the segment writer."""
        fill = not self.mem_tables.recovered
        for _no, path in files:
            try:
                ranges = recover_file(path, self.mem_tables if fill else None, self.io)
            except FileNotFoundError:
                if fill:
                    raise
                # a WAL restart: the segment writer was still at work on the files of the
                # earlier incarnation and removed this one, fully flushed, after we listed it
                log.debug("WAL: %s was flushed and removed while the WAL restarted", path)
                continue
            self.mem_tables.request_flush(path, ranges)
        self.mem_tables.recovered = True

    def overview(self) -> dict[str, Any]:
        with self._lock:
            q = len(self._queue)
        c: dict[str, Any] = dict(self.counters)
        failed = self._failed
        c.update(generation=self.generation, file=self._path, file_size=self._size, queued_writes=q,
                 sync_method=self.config.sync_method,
                 state="writing" if failed is None else "blocked",
                 blocked_by=None if failed is None else repr(failed),
                 avg_entries_per_batch=(c["entries"] / c["batches"]) if c["batches"] else 0.0)
        return c


# ---- actor wrapper ---------------------------------------------------------------------

class _Crashed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class WalCrashed(RuntimeError):
    pass


class WalActor(pykka.ThreadingActor):
    """Supervisable shell around :class:`Wal`: recovers and opens on start, installs itself in the registry."""

    def __init__(self, config: WalConfig, mem_tables: MemTables) -> None:
        super().__init__()
        self.config = config
        self.mem_tables = mem_tables
        # Recovery, file open and registration happen here, i.e. synchronously inside
        # ``WalActor.start()``: when start returns (also under a supervisor) servers
        # opening their logs see the recovered mem tables and a running WAL.
        ref = self.actor_ref

        def on_crash(exc: BaseException) -> None:
            try:
                ref.tell(_Crashed(exc))
            except pykka.ActorDeadError:
                pass

        self.wal: Wal | None = Wal(config, mem_tables, on_crash)
        self.wal.start()
        mem_tables.set_wal(self.wal)

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self.wal is not None:
            self.mem_tables.clear_wal(self.wal)
            self.wal.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Crashed):
            raise WalCrashed(f"WAL writer thread crashed: {message.exc!r}") from message.exc
        if message == "overview":
            return self.wal.overview() if self.wal else {}
        if message == "path":
            return self.wal.path if self.wal else None
        return None
