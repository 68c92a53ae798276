"""A threadless supervisor's control queue, drained on the scheduler's pool.

A supervisor handles its control items (child exits, API calls, retries, stop)
one at a time, in order.  A threaded supervisor does it on its own thread; a
threadless one (``Supervisor(threadless=True)``) puts them in a
:class:`ControlQueue`, which the scheduler runs like an actor's inbox: queued
once when the first item arrives, a slice of items per turn, never two threads
in it.  :meth:`ControlQueue.claim` lets the starting thread run the
supervisor's start synchronously in the same control context.
"""

from __future__ import annotations

import collections
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ._pool import Scheduler

__all__ = ["ControlQueue", "CONTROL_SLICE_ITEMS"]

CONTROL_SLICE_ITEMS = 16
"""Control items handled per slice before the queue goes back to the run queue."""

_IDLE, _QUEUED, _RUNNING, _CLOSED = range(4)


class ControlQueue:
    """FIFO of control items handled by ``handle(item)`` on the scheduler's pool."""

    __slots__ = ("_lock", "_q", "_state", "_handle", "scheduler", "owner")

    def __init__(self, scheduler: Scheduler, handle: Callable[[Any], None]) -> None:
        self._lock = threading.Lock()
        self._q: collections.deque[Any] = collections.deque()
        self._state = _RUNNING  # claimed until the starter releases it (see claim)
        self._handle = handle
        self.scheduler = scheduler
        self.owner: int | None = None  # ident of the thread in the control context

    def put(self, item: Any) -> None:
        """Queue ``item`` (dropped once closed); schedule the queue if it was idle."""
        with self._lock:
            if self._state == _CLOSED:
                return
            self._q.append(item)
            if self._state != _IDLE:
                return
            self._state = _QUEUED
        self.scheduler.submit(self)

    def get_nowait(self) -> Any:
        with self._lock:
            if not self._q:
                raise queue.Empty
            return self._q.popleft()

    def close(self) -> None:
        """Take no more items (the supervisor stopped); queued ones stay for get_nowait."""
        with self._lock:
            self._state = _CLOSED

    def in_control(self) -> bool:
        """True on the thread currently in this control context."""
        return self.owner == threading.get_ident()

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Run the body in the control context on this thread (only for the start:
        the queue is created claimed).  Items put meanwhile wait for the release."""
        self.owner = threading.get_ident()
        try:
            yield
        finally:
            self.owner = None
            self._release()

    def run_slice(self) -> int:
        with self._lock:
            if self._state == _CLOSED:
                return 0
            self._state = _RUNNING
        self.owner = threading.get_ident()
        handled = 0
        try:
            while handled < CONTROL_SLICE_ITEMS:
                with self._lock:
                    if not self._q or self._state == _CLOSED:
                        break
                    item = self._q.popleft()
                handled += 1
                self._handle(item)
        finally:
            self.owner = None
            self._release()
        return handled

    def _release(self) -> None:
        with self._lock:
            if self._state == _CLOSED:
                return
            more = bool(self._q)
            self._state = _QUEUED if more else _IDLE
        if more:
            self.scheduler.submit(self)

    def __repr__(self) -> str:
        return f"<ControlQueue queued={len(self._q)}>"
