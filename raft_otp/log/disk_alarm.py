"""The disk alarm of one system's data dir (RabbitMQ's ``disk_free_limit`` alarm, etcd's NOSPACE alarm).

The alarm is on while any *source* holds it:

* ``free_space``: the free space of the data dir's filesystem (``statvfs``:
  ``f_bavail * f_frsize``, what an unprivileged writer may still use) is below
  ``disk_free_limit_bytes`` (0: never);
* ``wal``, ``segment_writer``, ``snapshot``: a write of that component failed
  with ENOSPC (or the WAL's file failed otherwise and it cannot open a new one).
  Each source clears itself when it has written again.

While the alarm is on, a leader of this system refuses commands at once with
:class:`~raft_otp.errors.DiskFull` (``raft_otp.server.proc``); queries are
served, followers keep what they have.  Nothing restarts: the failing component
waits for space instead of crashing into its supervisor's restart intensity
(before, ``OSError(28)`` crashed the WAL until the ``log`` and ``system``
supervisors gave up, and nothing resumed without restarting the node).

A checker thread looks every ``check_period_s`` (1 s: a ``statvfs`` costs
microseconds; a 1 s period refuses commands within a second of the disk falling
below the limit and resumes within a second of space coming back): it re-reads
the free space, then runs the retry hooks of the blocked components (the WAL
opens a new file and has its writers resend; the segment writer retries its
flushes).  An ENOSPC raises the alarm at once, without waiting for the check.

Where we differ: RabbitMQ's alarm blocks publishers on every node of the
cluster and etcd replicates NOSPACE through Raft to every member; ours is per
system per node.  A command is refused where it would be appended (the
leader); a follower whose disk is full stops acknowledging and the others carry
on, and it catches up when space is back (its writers resend).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Any, Callable

log = logging.getLogger("raft_otp.disk_alarm")

DEFAULT_CHECK_PERIOD_S = 1.0
# RabbitMQ's default disk_free_limit: room for ~8 s of the bench's fastest WAL
# stream (60k commands/s of ~100 B), a snapshot chunk and the meta records, so
# that the alarm usually goes on before a write meets ENOSPC; not a whole WAL
# rollover (256 MB), so an ENOSPC past it is still handled.
DEFAULT_FREE_LIMIT_BYTES = 50_000_000
RESUME_FREE_BYTES = 2 << 20  # a transient ENOSPC clears once this much (and the limit) is free


def is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskAlarm:
    """Holds the alarm of one data dir; thread-safe.  :attr:`active` is the hot-path read."""

    def __init__(self, path: str, free_limit_bytes: int = 0, check_period_s: float = DEFAULT_CHECK_PERIOD_S,
                 free: Callable[[str], int] = free_bytes) -> None:
        self.path = path
        self.free_limit_bytes = free_limit_bytes
        self.check_period_s = check_period_s
        self._free = free
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}  # source -> why (non-empty: the alarm is on)
        self._hooks: list[Callable[[], None]] = []
        self._transient: set[str] = set()  # sources the free-space check clears
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.free_bytes: int | None = None
        self.since: float | None = None  # wall-clock time the alarm went on
        self.counters = {"raised": 0, "cleared": 0, "enospc": 0, "checks": 0, "refused_commands": 0}

    # ---- state ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return bool(self._reasons)

    def reason(self) -> str:
        """One line: every source holding the alarm, and why."""
        with self._lock:
            return "; ".join(f"{src}: {why}" for src, why in sorted(self._reasons.items()))

    def count_refused(self, n: int) -> None:
        """A leader refused ``n`` commands with DiskFull."""
        with self._lock:
            self.counters["refused_commands"] += n

    def raise_(self, source: str, why: str) -> None:
        with self._lock:
            was = bool(self._reasons)
            known = self._reasons.get(source)
            self._reasons[source] = why
            if not was:
                self.counters["raised"] += 1
                self.since = time.time()
                self._changed.notify_all()
        if not was:
            log.warning("disk alarm ON for %s (%s: %s): commands refused with DiskFull until space is back",
                        self.path, source, why)
        elif known is None:
            log.warning("disk alarm for %s also held by %s: %s", self.path, source, why)

    def enospc(self, source: str, exc: BaseException, transient: bool = False) -> None:
        """A write of ``source`` failed for lack of space.  ``transient``: nothing of
        ``source`` waits to be retried (a snapshot transfer given up): the check clears
        it once free space is back above the limit (and at least ``RESUME_FREE_BYTES``)."""
        with self._lock:
            self.counters["enospc"] += 1
            if transient:
                self._transient.add(source)
        self.raise_(source, f"write failed: {exc}")

    def clear(self, source: str) -> None:
        with self._lock:
            if self._reasons.pop(source, None) is None:
                return
            now_off = not self._reasons
            if now_off:
                self.counters["cleared"] += 1
                self.since = None
                self._changed.notify_all()
        if now_off:
            log.warning("disk alarm OFF for %s (%s cleared): commands accepted again", self.path, source)
        else:
            log.info("disk alarm source %s cleared for %s; still held: %s", source, self.path, self.reason())

    def wait(self, active: bool, timeout: float) -> bool:
        """Wait until the alarm is ``active`` (tests); True if it is."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self._reasons) == active, timeout)

    # ---- periodic check ------------------------------------------------------------------
    def add_retry(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at every check (from the checker thread) until removed."""
        with self._lock:
            if hook not in self._hooks:
                self._hooks.append(hook)

    def remove_retry(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def check(self) -> None:
        """One check: the free space against the limit, then the retry hooks."""
        self.check_free_space()
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:  # a hook must not stop the checker
                log.exception("disk alarm: retry hook %r failed", hook)

    def check_free_space(self) -> None:
        self.counters["checks"] += 1
        try:
            free = self._free(self.path)
        except OSError as exc:  # the data dir went away: nothing to measure, say so once
            log.debug("disk alarm: statvfs(%s) failed: %r", self.path, exc)
            free = None
        self.free_bytes = free
        if free is not None and self.free_limit_bytes:
            if free < self.free_limit_bytes:
                if "free_space" not in self._reasons:
                    self.raise_("free_space", f"{free} bytes free < disk_free_limit_bytes {self.free_limit_bytes}")
            else:
                self.clear("free_space")
        if self._transient and (free is None or free >= max(self.free_limit_bytes, RESUME_FREE_BYTES)):
            with self._lock:
                done, self._transient = self._transient, set()
            for src in done:
                self.clear(src)

    def start(self) -> "DiskAlarm":
        """Start the checker thread (idempotent); the free space is read now, the
        hooks run from the thread only (a caller may hold what a hook takes)."""
        with self._start_lock:
            if self._thread is not None:
                return self
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="disk-alarm", daemon=True)
        self.check_free_space()
        self._thread.start()
        return self

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.check_period_s):
            self.check()

    def stop(self) -> None:
        with self._start_lock:
            self._stop.set()
            t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(5.0)

    def overview(self) -> dict[str, Any]:
        with self._lock:
            reasons = dict(self._reasons)
        return {"active": bool(reasons), "reasons": reasons, "free_bytes": self.free_bytes,
                "disk_free_limit_bytes": self.free_limit_bytes, "since": self.since,
                "check_period_s": self.check_period_s, **self.counters}
