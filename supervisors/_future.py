"""A pykka future that can also call back: answer a caller without a waiting thread.

:class:`CallbackFuture` is a :class:`pykka.ThreadingFuture` (``get`` blocks as
usual) plus ``add_done_callback(fn)`` and ``done()``.  Callbacks run once, in the
thread that completes the future (for an actor's reply: the thread running the
actor's slice), so keep them short and never let them block.  A callback that
raises is logged and does not affect the others.

Actors of :mod:`supervisors` (``ScheduledActor``, ``supervisors.ThreadingActor``)
create their ask futures with it (pykka's ``_create_future`` hook), so
``ref.ask(msg, block=False).add_done_callback(fn)`` replies without a thread.

``get`` on a scheduler pool thread (a scheduled actor's handler asking another
actor) runs other queued slices while it waits, so actors asking actors on a
small pool do not deadlock it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable, TypeVar

import pykka

from ._pool import current_scheduler

__all__ = ["CallbackFuture", "DoneCallback"]

logger = logging.getLogger("supervisors")

T = TypeVar("T")

DoneCallback = Callable[["CallbackFuture[Any]"], object]


class CallbackFuture(pykka.ThreadingFuture[T]):
    """A ThreadingFuture with ``add_done_callback`` and ``done``."""

    def __init__(self) -> None:
        super().__init__()
        self._cb_lock = threading.Lock()
        self._cb_done = False
        self._cb_list: list[DoneCallback] | None = None
        self._cb_hooked = False  # a get hook computes the value: never "done"

    def done(self) -> bool:
        """True once a value or an exception has been set."""
        return self._cb_done

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(self)`` when the future completes (now, in this thread, if it has).

        ``fn`` typically calls ``self.get(timeout=0)`` to read the value or the
        exception."""
        with self._cb_lock:
            if not self._cb_done:
                if self._cb_list is None:
                    self._cb_list = []
                self._cb_list.append(fn)
                return
        self._call(fn)

    def get(self, *, timeout: float | None = None) -> Any:
        """The value (or raise the exception), waiting up to ``timeout`` seconds;
        on a pool thread, running other queued slices meanwhile."""
        if not self._cb_done and not self._cb_hooked:
            sched = current_scheduler()
            if sched is not None:
                done = threading.Event()
                self.add_done_callback(lambda _: done.set())
                if not sched.wait(done, timeout):
                    raise pykka.Timeout(f"{timeout} seconds")
                timeout = 0
        return super().get(timeout=timeout)

    def set_get_hook(self, func: Any) -> None:
        self._cb_hooked = True
        super().set_get_hook(func)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._completed()

    def set_exception(self, exc_info: Any = None) -> None:
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._completed()

    def _completed(self) -> None:
        with self._cb_lock:
            self._cb_done = True
            callbacks, self._cb_list = self._cb_list, None
        for fn in callbacks or ():
            self._call(fn)

    def _call(self, fn: DoneCallback) -> None:
        try:
            fn(self)
        except Exception:  # one broken callback must not hide the others or the actor
            logger.exception("done callback %r of a future failed", fn)

    def __repr__(self) -> str:
        return f"<CallbackFuture done={self._cb_done}>"
