"""Actors without a thread: pykka actors run in slices by the node scheduler.

:class:`ScheduledActor` is a pykka actor type built only from pykka's hooks for
new actor types: ``_create_actor_inbox`` (a :class:`ScheduledInbox`: a deque, a
lock and a state, idle | queued | running), ``_create_future`` (a
:class:`~supervisors._future.CallbackFuture`) and ``_start_actor_loop`` (queues
the actor so ``on_start`` runs on a pool thread before any message).  From the
outside it behaves as a ``ThreadingActor``: tell, ask, proxy, stop, the
registry, failures and exit reasons; one message at a time in mailbox order,
never two threads in one actor.

**Which thread runs a slice** is decided in one place,
:meth:`ScheduledInbox.put`.  An idle actor receiving a message is normally
queued for the pool.  It is run at once, on the delivering thread, only when
all of these hold: the scheduler allows inline runs; the thread declared itself
inline-capable (:func:`~supervisors._pool.mark_inline_thread`: the node's
transport I/O thread, the WAL's notifier) and is not already running an inline
slice; the message's type is in the actor's ``INLINE_TYPES``; it is a tell;
and the actor is not in slow backoff.  The delivering thread then claims the
actor exactly as a pool thread would, runs one slice, and hands anything left
to the pool (it never loops on an I/O thread).  An inline slice slower than
:data:`SLOW_SLICE_S` refuses inline runs for that actor for 1 s, doubled (up to
60 s) for each slow inline slice that comes within twice the previous period:
that actor's work then costs the pool, not the I/O thread every actor shares.

This replaces ``raft_otp.server.direct`` (a gated queue subclass and a copy of
pykka's loop): the same policy with no pykka internals and no thread per actor.

Differences from ``ThreadingActor``, all deliberate: a handler that blocks
(``other.ask(...)`` waiting on another scheduled actor) holds a pool thread; a
KeyboardInterrupt or SystemExit in a handler stops every actor without waiting
(``ActorRegistry.stop_all(block=False)``: a pool thread must not wait on the
pool); a message put after the actor's teardown fails at once (``ActorDeadError``
for a tell or an ask) instead of lying in a dead queue.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
from typing import Any, Callable, ClassVar

import pykka
from pykka import ActorDeadError, ActorRegistry

from ._future import CallbackFuture
from ._pool import Scheduler, _tls, default_scheduler
from ._watch import ExitWatched

__all__ = ["ScheduledActor", "ScheduledInbox", "SLOW_SLICE_S"]

logger = logging.getLogger("supervisors.scheduler")

SLOW_SLICE_S = 0.010
"""An inline slice slower than this sends the actor's slices to the pool for a while."""
SLOW_BACKOFF_S = 1.0
SLOW_BACKOFF_MAX_S = 60.0

_monotonic = time.monotonic  # the backoff's clock (tests replace it)

_NEW, _IDLE, _QUEUED, _RUNNING, _CLOSED = range(5)
_STATE_NAMES = ("new", "idle", "queued", "running", "closed")


def _resolved(fut: Any) -> bool:
    done = getattr(fut, "done", None)
    return bool(done()) if done is not None else False


class ScheduledInbox:
    """An actor's mailbox and its place in the scheduler (one per actor).

    Invariants: ``idle`` implies an empty deque; only the thread that moved the
    state to ``running`` (a pool thread taking it from the run queue, or an
    inline thread claiming it in ``put``) runs the actor; the actor is in the run
    queue at most once (state ``queued``)."""

    __slots__ = ("_lock", "_q", "_state", "actor", "scheduler", "budget", "_inline_types",
                 "_started", "slices", "inline_slices", "slow_slices", "_inline_off_until",
                 "_slow_backoff_s")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._q: collections.deque[Any] = collections.deque()
        self._state = _NEW
        self.actor: ScheduledActor | None = None
        self.scheduler: Scheduler | None = None
        self.budget: int | None = None
        self._inline_types: frozenset[type] = frozenset()
        self._started = False
        self.slices = 0
        self.inline_slices = 0
        self.slow_slices = 0
        self._inline_off_until = 0.0
        self._slow_backoff_s = 0.0

    def bind(self, actor: ScheduledActor, scheduler: Scheduler) -> None:
        self.actor = actor
        self.scheduler = scheduler
        self.budget = type(actor).slice_budget
        self._inline_types = type(actor).INLINE_TYPES

    # ---- pykka's ActorInbox protocol ----------------------------------------------------
    def put(self, envelope: Any, /) -> None:
        """Queue ``envelope``; if the actor was idle, schedule it, or run it here
        (the inline policy: see the module docstring)."""
        with self._lock:
            state = self._state
            if state == _CLOSED:
                inline = None
            else:
                self._q.append(envelope)
                if state != _IDLE:
                    return
                inline = self._may_run_here(envelope)
                self._state = _RUNNING if inline else _QUEUED  # claimed either way
        if inline is None:
            self._refuse(envelope)
        elif inline:
            self._run_inline()
        else:
            self.scheduler.submit(self)  # type: ignore[union-attr]

    def _may_run_here(self, envelope: Any) -> bool:
        """The inline policy, for an idle actor: may the delivering thread run it now?"""
        sched = self.scheduler
        return (sched is not None and sched.inline and envelope.reply_to is None
                and type(envelope.message) in self._inline_types
                and getattr(_tls, "inline", False)           # a marked delivering thread
                and not getattr(_tls, "in_inline", False)    # not inside an inline slice
                and (not self._inline_off_until              # not in slow backoff
                     or _monotonic() >= self._inline_off_until))

    def get(self) -> Any:
        """The oldest envelope (never blocks: raises queue.Empty)."""
        with self._lock:
            if not self._q:
                raise queue.Empty
            return self._q.popleft()

    def empty(self) -> bool:
        return not self._q

    def qsize(self) -> int:
        return len(self._q)

    @property
    def state(self) -> str:
        return _STATE_NAMES[self._state]

    # ---- the scheduler's side -----------------------------------------------------------
    def start(self) -> None:
        """Queue the actor's start (``on_start`` on a pool thread, before any message)."""
        with self._lock:
            if self._state != _NEW:
                return
            self._state = _QUEUED
        self.scheduler.submit(self)  # type: ignore[union-attr]

    def run_slice(self) -> int:
        """Run one slice on a pool thread (the actor is ``queued``: now ours)."""
        with self._lock:
            self._state = _RUNNING
        self.slices += 1
        return self._slice()

    def _run_inline(self) -> None:
        _tls.in_inline = True
        started = time.perf_counter()
        handled = 0
        try:
            handled = self._slice()
        except Exception:  # a bug here must not reach the delivering (I/O) thread's caller
            logger.exception("an inline slice of %s raised", self.actor)
        finally:
            _tls.in_inline = False
        took = time.perf_counter() - started
        self.inline_slices += 1
        if self.scheduler is not None:
            self.scheduler.note_inline(handled)
        if took > SLOW_SLICE_S:
            self._was_slow(took)

    def _was_slow(self, took: float) -> None:
        now = _monotonic()
        recent = self._slow_backoff_s and now < self._inline_off_until + self._slow_backoff_s
        self._slow_backoff_s = (min(SLOW_BACKOFF_MAX_S, self._slow_backoff_s * 2) if recent
                                else SLOW_BACKOFF_S)
        self._inline_off_until = now + self._slow_backoff_s
        self.slow_slices += 1
        logger.info("%s: an inline slice took %.1f ms: its slices run on the pool for %.0f s",
                    self.actor, took * 1e3, self._slow_backoff_s)

    def _slice(self) -> int:
        """Start the actor if needed, handle up to a budget of envelopes, then tear
        down (stopped) or release (idle, or queued again if more came)."""
        actor = self.actor
        if actor is None:
            return 0
        handled = 0
        try:
            if not self._started:
                self._started = True
                try:
                    actor._actor_loop_setup()  # on_start (an Exception there: a failure)
                except BaseException:  # KeyboardInterrupt, SystemExit
                    actor._stop_everything()
            if not actor.actor_stopped.is_set():
                budget = self.budget or self.scheduler.slice_budget  # type: ignore[union-attr]
                with self._lock:
                    q = self._q
                    n = min(budget, len(q))
                    envelopes = [q.popleft() for _ in range(n)]
                if envelopes:
                    handled = n
                    actor._run_slice(envelopes)
        finally:
            if actor.actor_stopped.is_set():
                self._teardown(actor)
            else:
                self._release()
        return handled

    def _release(self) -> None:
        with self._lock:
            more = bool(self._q)
            self._state = _QUEUED if more else _IDLE
        if more:
            self.scheduler.submit(self)  # type: ignore[union-attr]

    def _teardown(self, actor: ScheduledActor) -> None:
        with self._lock:
            self._state = _CLOSED
        try:
            actor._actor_loop_teardown()
        finally:
            self.actor = None  # the inbox (held by every ref) no longer holds the actor

    def push_front(self, envelopes: list[Any]) -> None:
        """Put ``envelopes`` back at the head, in order (a stopped slice's leftovers,
        for the teardown to answer)."""
        with self._lock:
            self._q.extendleft(reversed(envelopes))

    def take(self, accept: Callable[[Any], bool], limit: int) -> list[Any]:
        """Remove and return the leading envelopes ``accept`` takes, up to ``limit``."""
        out: list[Any] = []
        with self._lock:
            q = self._q
            while q and len(out) < limit and accept(q[0]):
                out.append(q.popleft())
        return out

    def _refuse(self, envelope: Any) -> None:
        """A message for a torn-down actor: an ask gets ActorDeadError, a tell raises it."""
        err = ActorDeadError(f"{self.actor or 'actor'} stopped before handling the message")
        if envelope.reply_to is None:
            raise err
        envelope.reply_to.set_exception(exc_info=(ActorDeadError, err, None))

    def __repr__(self) -> str:
        return f"<ScheduledInbox {self.state} queued={len(self._q)}>"


class ScheduledActor(ExitWatched, pykka.Actor):
    """A pykka actor run by a node scheduler's pool, owning no thread.

    Subclass it like ``pykka.ThreadingActor``.  Class attributes: ``scheduler``
    (None: the process-wide default), ``slice_budget`` (None: the scheduler's),
    ``INLINE_TYPES`` (message types a marked delivering thread may handle at once
    when the actor is idle; only types whose handling is short and never blocks)."""

    scheduler: ClassVar[Scheduler | None] = None
    slice_budget: ClassVar[int | None] = None
    INLINE_TYPES: ClassVar[frozenset[type]] = frozenset()

    _sv_owns_thread: ClassVar[bool] = False

    actor_inbox: ScheduledInbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor_inbox.bind(self, type(self).scheduler or default_scheduler())

    # ---- pykka's hooks for actor types ---------------------------------------------------
    @staticmethod
    def _create_actor_inbox() -> ScheduledInbox:
        return ScheduledInbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return CallbackFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.start()

    # ---- slices --------------------------------------------------------------------------
    def handle_slice(self, envelopes: list[Any]) -> None:
        """Handle one slice's envelopes (``.message``, ``.reply_to``) in order.

        Override to batch; use :meth:`handle_envelope` for what you do not batch.
        An exception raised here is the actor's failure (as a tell that raised)."""
        stopped = self.actor_stopped
        for envelope in envelopes:
            if stopped.is_set():
                return
            self.handle_envelope(envelope)

    def handle_envelope(self, envelope: Any) -> None:
        """pykka's handling of one envelope: internal messages (stop, proxy calls)
        and ``on_receive``; an ask gets the result or the exception; an exception
        in a tell is the actor's failure (``on_failure``, then stopped)."""
        reply_to = envelope.reply_to
        try:
            response = self._handle_receive(envelope.message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:
                logger.info("exception returned from %s to caller:", self, exc_info=True)
                reply_to.set_exception()
            else:
                self._fail(*sys.exc_info())

    def _fail(self, *exc_info: Any) -> None:
        self._handle_failure(*exc_info)
        try:
            self.on_failure(*exc_info)
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _stop_everything(self) -> None:
        """As pykka does for a KeyboardInterrupt or SystemExit escaping a handler: stop
        this actor (the exception is its exit reason) and every other one, without
        waiting (a pool thread must not wait on the pool)."""
        logger.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
        self._stop()
        ActorRegistry.stop_all(block=False)

    def _run_slice(self, envelopes: list[Any]) -> None:
        """``handle_slice`` with pykka's failure rules; after a stop, the slice's
        unanswered asks go back to the inbox for the teardown to answer."""
        try:
            self.handle_slice(envelopes)
        except Exception:
            self._fail(*sys.exc_info())
        except BaseException:  # KeyboardInterrupt, SystemExit
            self._stop_everything()
        if self.actor_stopped.is_set():
            left = [e for e in envelopes if e.reply_to is not None and not _resolved(e.reply_to)]
            if left:
                self.actor_inbox.push_front(left)

    # ---- for handlers ----------------------------------------------------------------------
    def mailbox_size(self) -> int:
        """Envelopes waiting in the mailbox (not counting the current slice's)."""
        return self.actor_inbox.qsize()

    def take_queued(self, accept: Callable[[Any], bool], limit: int) -> list[Any]:
        """From inside a handler: remove and return, in order, the leading queued
        envelopes for which ``accept(envelope)`` is true, at most ``limit``.  They
        are the caller's to handle (and answer) now.  The current slice's
        envelopes are no longer queued: only what came after them is seen."""
        return self.actor_inbox.take(accept, limit)

    @property
    def sched_stats(self) -> dict[str, int]:
        """This actor's slices (pool), inline_slices and slow_slices."""
        inbox = self.actor_inbox
        return {"slices": inbox.slices, "inline_slices": inbox.inline_slices,
                "slow_slices": inbox.slow_slices}
