"""The node scheduler's thread pool: a FIFO run queue of ready work, N threads.

What the pool runs is anything with ``run_slice() -> int`` (the number of
messages it handled): an actor's inbox (:mod:`supervisors._scheduled`) or a
threadless supervisor's control queue (:mod:`supervisors._control`).  A pool
thread takes the oldest ready item, runs one slice of it, and goes back to the
queue; an item with work left puts itself back at the tail (``submit``), so one
busy actor cannot starve the others.  The pool never grows: 10,000 actors share
``threads`` threads.

The pool decides nothing about *which* thread runs an actor's slice; that is the
inbox's policy (``_scheduled.ScheduledInbox.put``), which may run a slice on a
thread that declared itself inline-capable (:func:`mark_inline_thread`).

A pool thread that must wait for something another item produces (a supervisor
stopping an actor child) calls :meth:`Scheduler.wait`, which runs queued items
while it waits, so a small pool cannot deadlock on its own shutdowns.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Protocol

from .errors import SchedulerError

__all__ = ["Scheduler", "Runnable", "default_scheduler", "configure_default", "peek_default",
           "mark_inline_thread", "is_inline_thread", "in_inline_slice", "current_scheduler",
           "wait_event",
           "THREADS_ENV", "INLINE_ENV"]

logger = logging.getLogger("supervisors.scheduler")

THREADS_ENV = "SUPERVISORS_SCHED_THREADS"
"""Environment variable: the default scheduler's thread count (when not configured)."""
INLINE_ENV = "SUPERVISORS_SCHED_INLINE"
"""Environment variable: ``0`` turns the default scheduler's inline runs off (when not
configured), e.g. for A/B runs of node processes."""

DEFAULT_THREADS = 4
DEFAULT_SLICE_BUDGET = 64
_HELP_POLL_S = 0.005  # a waiting pool thread with nothing to run re-checks this often


class Runnable(Protocol):
    """Work the pool can run: one slice at a time, never two threads at once."""

    def run_slice(self) -> int:
        """Run one slice; return the number of messages handled."""


_tls = threading.local()


def mark_inline_thread(on: bool = True) -> None:
    """Declare the calling thread inline-capable: a message it delivers to an idle
    actor that lists the message's type in ``INLINE_TYPES`` may be handled right
    here (see ``ScheduledActor``).  For I/O and notifier threads that only deliver."""
    _tls.inline = on


def is_inline_thread() -> bool:
    """True if the calling thread was marked with :func:`mark_inline_thread`."""
    return getattr(_tls, "inline", False)


def in_inline_slice() -> bool:
    """True while the calling thread runs an actor's slice inline (a delivering
    thread, not the pool): a handler can tell, e.g. to leave a sync to another thread."""
    return getattr(_tls, "in_inline", False)


def current_scheduler() -> Scheduler | None:
    """The scheduler whose pool thread is calling, or None."""
    return getattr(_tls, "pool", None)


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)``; on a pool thread, running queued work meanwhile (what
    sets ``event``, e.g. an actor's stop, may need a pool thread)."""
    sched = current_scheduler()
    return sched.wait(event, timeout) if sched is not None else event.wait(timeout)


class Scheduler:
    """A bounded pool of daemon threads (``<name>-N``) running ready actors' slices.

    ``slice_budget``: at most this many messages per slice (an actor may set its
    own).  ``inline``: whether marked threads may run idle actors' slices at once
    (off for A/B measurements)."""

    def __init__(self, threads: int = DEFAULT_THREADS, slice_budget: int = DEFAULT_SLICE_BUDGET,
                 name: str = "sched", inline: bool = True) -> None:
        if threads < 1 or slice_budget < 1:
            raise ValueError("threads and slice_budget must be >= 1")
        self.threads = threads
        self.slice_budget = slice_budget
        self.name = name
        self.inline = inline
        self._cond = threading.Condition(threading.Lock())
        self._runq: collections.deque[Runnable] = collections.deque()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._slices = 0
        self._inline_slices = 0
        self._messages = 0
        self._max_queued = 0

    # ------------------------------------------------------------------ life
    def start(self) -> Scheduler:
        """Start the pool threads (idempotent)."""
        with self._cond:
            if self._workers and not self._stopping:
                return self
            self._stopping = False
            self._workers = [threading.Thread(target=self._work, name=f"{self.name}-{i}",
                                              daemon=True) for i in range(self.threads)]
            workers = list(self._workers)
        for t in workers:
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the pool threads after their current slice; True if all ended in time.
        Items still queued stay queued (a later ``start`` runs them)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            workers, self._workers = self._workers, []
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for t in workers:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in workers if t is not me)

    @property
    def running(self) -> bool:
        return bool(self._workers) and not self._stopping

    # ------------------------------------------------------------------ work
    def submit(self, item: Runnable) -> None:
        """Queue ``item`` at the tail of the run queue (the caller guarantees it is
        not queued already)."""
        with self._cond:
            q = self._runq
            q.append(item)
            if len(q) > self._max_queued:
                self._max_queued = len(q)
            self._cond.notify()

    def note_inline(self, messages: int) -> None:
        """Count a slice run on an inline (non-pool) thread."""
        with self._cond:
            self._inline_slices += 1
            self._messages += messages

    def _work(self) -> None:
        _tls.pool = self
        cond, q = self._cond, self._runq
        handled = -1
        while True:
            with cond:
                if handled >= 0:
                    self._slices += 1
                    self._messages += handled
                while not q and not self._stopping:
                    cond.wait()
                if self._stopping:
                    return
                item = q.popleft()
            handled = self._run(item)

    def _run(self, item: Runnable) -> int:
        try:
            return item.run_slice()
        except BaseException:  # a bug in an item must not kill a pool thread
            logger.exception("%s: a slice of %r raised", self.name, item)
            return 0

    def wait(self, event: threading.Event, timeout: float | None = None) -> bool:
        """``event.wait(timeout)``; on one of this pool's threads, run queued items
        meanwhile (so the work that sets ``event`` cannot be stuck behind us)."""
        if current_scheduler() is not self:
            return event.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.is_set():
            with self._cond:
                item = self._runq.popleft() if self._runq else None
            if item is not None:
                handled = self._run(item)
                with self._cond:
                    self._slices += 1
                    self._messages += handled
                continue
            left = _HELP_POLL_S if deadline is None else min(_HELP_POLL_S,
                                                             deadline - time.monotonic())
            if left <= 0:
                break
            event.wait(left)
        return event.is_set()

    def stats(self) -> dict[str, Any]:
        """Counters: threads, slices (pool), inline_slices, messages, queued, max_queued."""
        with self._cond:
            return {
                "name": self.name,
                "threads": len(self._workers),
                "slice_budget": self.slice_budget,
                "inline": self.inline,
                "slices": self._slices,
                "inline_slices": self._inline_slices,
                "messages": self._messages,
                "queued": len(self._runq),
                "max_queued": self._max_queued,
            }

    def __repr__(self) -> str:
        return f"<Scheduler {self.name!r} threads={self.threads} budget={self.slice_budget}>"


_default: Scheduler | None = None
_default_lock = threading.Lock()
_settings: dict[str, Any] = {}


def _env_threads() -> int | None:
    raw = os.environ.get(THREADS_ENV)
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise SchedulerError(f"{THREADS_ENV}={raw!r} is not an integer") from None
    if n < 1:
        raise SchedulerError(f"{THREADS_ENV}={raw!r} must be >= 1")
    return n


def _env_inline() -> bool | None:
    raw = os.environ.get(INLINE_ENV)
    if not raw:
        return None
    if raw not in ("0", "1"):
        raise SchedulerError(f"{INLINE_ENV}={raw!r} must be 0 or 1")
    return raw == "1"


def configure_default(threads: int | None = None, slice_budget: int | None = None,
                      inline: bool | None = None) -> None:
    """Settings for the process-wide scheduler, before its first use.

    ``threads`` defaults to ``$SUPERVISORS_SCHED_THREADS``, else 4; ``inline`` to
    ``$SUPERVISORS_SCHED_INLINE`` (``0`` or ``1``), else on.  Once the
    default exists, ``slice_budget`` and ``inline`` still apply (from the next
    slice on); a different ``threads`` raises SchedulerError."""
    with _default_lock:
        if threads is not None and threads < 1 or slice_budget is not None and slice_budget < 1:
            raise ValueError("threads and slice_budget must be >= 1")
        d = _default
        if d is not None and threads is not None and threads != d.threads:
            raise SchedulerError(f"the default scheduler already runs {d.threads} threads")
        for key, value in (("threads", threads), ("slice_budget", slice_budget),
                           ("inline", inline)):
            if value is not None:
                _settings[key] = value
        if d is not None:
            if slice_budget is not None:
                d.slice_budget = slice_budget
            if inline is not None:
                d.inline = inline


def default_scheduler() -> Scheduler:
    """The process-wide scheduler, created and started on first use."""
    d = _default
    if d is not None:
        return d
    return _create_default()


def _create_default() -> Scheduler:
    global _default
    with _default_lock:
        if _default is None:
            threads = _settings.get("threads") or _env_threads() or DEFAULT_THREADS
            inline = _settings.get("inline")
            if inline is None:
                inline = _env_inline()
            _default = Scheduler(threads=threads,
                                 slice_budget=_settings.get("slice_budget", DEFAULT_SLICE_BUDGET),
                                 inline=True if inline is None else inline, name="sched").start()
            logger.debug("default scheduler started: %d threads", threads)
        return _default


def peek_default() -> Scheduler | None:
    """The default scheduler if it was created, without creating it."""
    return _default


def _forget_default_in_child() -> None:
    """A forked child has none of the parent's pool threads: it makes its own pool
    on first use (actors inherited from the parent are not run)."""
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_in_child)
