"""Timers: ``send_after(target, message, delay_s)`` and ``cancel_timer``.

One shared daemon thread with a heap serves every timer (like Erlang's timer
wheel, not a thread per timer), so thousands of election timers cost one heap
entry each.  The thread starts lazily on the first timer and can be stopped
with :func:`stop_timer_service`.  Cancelling is O(1) (the heap entry is left
behind and skipped; the heap is compacted when mostly cancelled).

A target that is a pykka ActorRef gets ``tell(message)`` (dropped if the actor
is dead); a callable is called with ``message`` in the timer thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable

import pykka

__all__ = ["TimerRef", "TimerService", "send_after", "cancel_timer", "stop_timer_service",
           "timer_service"]

logger = logging.getLogger("supervisors")


class TimerRef:
    """A pending timer; pass it to :func:`cancel_timer`."""

    __slots__ = ("when", "target", "message", "state")

    def __init__(self, when: float, target: Any, message: Any) -> None:
        self.when = when
        self.target = target
        self.message = message
        self.state = 0  # 0 pending, 1 fired, 2 cancelled

    @property
    def pending(self) -> bool:
        return self.state == 0

    def __repr__(self) -> str:
        state = ("pending", "fired", "cancelled")[self.state]
        return f"<TimerRef when={self.when:.3f} state={state}>"


class TimerService:
    """A heap of timers served by one daemon thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, TimerRef]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._cancelled = 0

    def send_after(self, target: Any, message: Any, delay_s: float) -> TimerRef:
        """Deliver ``message`` to ``target`` after ``delay_s`` seconds."""
        tref = TimerRef(self._clock() + max(0.0, delay_s), target, message)
        with self._cond:
            if self._thread is None or self._stopping:
                self._start_locked()
            heap = self._heap
            heapq.heappush(heap, (tref.when, next(self._seq), tref))
            if heap[0][2] is tref:
                self._cond.notify()
        return tref

    def cancel(self, tref: TimerRef) -> bool:
        """Cancel a pending timer; False if it already fired or was cancelled."""
        with self._cond:
            if tref.state != 0:
                return False
            tref.state = 2
            self._cancelled += 1
            if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2].state == 0]
                heapq.heapify(self._heap)
                self._cancelled = 0
            return True

    def pending_count(self) -> int:
        with self._cond:
            return sum(1 for e in self._heap if e[2].state == 0)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread; pending timers are dropped."""
        with self._cond:
            t = self._thread
            self._stopping = True
            for e in self._heap:
                if e[2].state == 0:
                    e[2].state = 2
            self._heap.clear()
            self._cancelled = 0
            self._cond.notify()
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        with self._cond:
            if self._thread is t:
                self._thread = None

    def is_running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def _start_locked(self) -> None:
        self._stopping = False
        t = threading.Thread(target=self._run, name="supervisors-timers", daemon=True)
        self._thread = t
        t.start()

    def _run(self) -> None:
        me = threading.current_thread()
        due: list[TimerRef] = []
        while True:
            with self._cond:
                while True:
                    if self._stopping or self._thread is not me:
                        return
                    heap = self._heap
                    now = self._clock()
                    while heap and (heap[0][2].state != 0 or heap[0][0] <= now):
                        _, _, tref = heapq.heappop(heap)
                        if tref.state == 0:
                            tref.state = 1
                            due.append(tref)
                        else:
                            self._cancelled = max(0, self._cancelled - 1)
                    if due:
                        break
                    self._cond.wait(heap[0][0] - now if heap else None)
            for tref in due:
                self._fire(tref)
            due.clear()

    @staticmethod
    def _fire(tref: TimerRef) -> None:
        target = tref.target
        try:
            if isinstance(target, pykka.ActorRef):
                target.tell(tref.message)
            else:
                target(tref.message)
        except pykka.ActorDeadError:
            pass
        except Exception:
            logger.exception("timer callback %r failed", target)


_service_lock = threading.Lock()
_service: TimerService | None = None


def timer_service() -> TimerService:
    """The process-wide shared timer service."""
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = TimerService()
    return _service


def send_after(target: Any, message: Any, delay_s: float) -> TimerRef:
    """Deliver ``message`` to ``target`` (ActorRef or callable) after ``delay_s``."""
    return timer_service().send_after(target, message, delay_s)


def cancel_timer(tref: TimerRef) -> bool:
    """Cancel a timer from :func:`send_after`; True if it was still pending."""
    return timer_service().cancel(tref)


def stop_timer_service() -> None:
    """Stop the shared timer thread (it restarts lazily on the next timer)."""
    if _service is not None:
        _service.stop()
