"""Direct dispatch: let the node's I/O thread run a server actor's handler for a
lone incoming message, instead of waking the actor's thread for it.

A replicated command crosses several processes, and at each the message used to
pass from the transport's I/O thread to the server's thread (a queue put, a
thread wake-up, a GIL hand-off), then often back to the I/O thread to send the
answer.  On a 2-core machine those hand-offs, not the Raft work, made most of a
sequential command's latency.  When the I/O thread has nothing else waiting and
the actor is idle with an empty mailbox, the I/O thread now runs the handler
itself (and then whatever that handling queued for the actor, e.g. the WAL's
"written" of an inline write), and answers go out from the same thread.

The gate keeps the actor model: one message at a time, in mailbox order.  The
actor's loop (pykka's, re-implemented here around the gate) takes a message
and marks itself busy under the mailbox lock; the I/O thread claims the actor
under the same lock only if it is not busy, nothing is queued and it is alive;
while the I/O thread holds the claim the loop does not take messages.  A
failure in a handler run here is the actor's failure (pykka's failure path, so
supervisors see a crash), never the transport's.

Only message types listed by the actor (``DIRECT_TYPES``: Raft RPCs and client
commands, whose handling never waits for the network) are run this way; under
load (more frames waiting, a busy actor) everything takes the mailbox as before.

A slow handler is sent back to its own thread.  The I/O thread serves every
cluster of the node (and its heartbeats), so a machine whose ``apply`` takes
10 ms (``DIRECT_SLOW_S``), run here, would hold up every other cluster's
messages for that long.  After a direct handling that slow, the actor refuses
direct dispatch for a while (1 s, doubling up to 60 s while it stays slow), so
its messages go through its mailbox and its thread pays for them alone.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
import weakref
from typing import Any, ClassVar

import pykka

__all__ = ["DirectDispatch"]

log = logging.getLogger("raft_otp.server")

DRAIN_AFTER_DIRECT = 8
"""Messages queued during a direct handling (by that handling: a log event) that the
I/O thread handles too before it gives the actor back to its thread."""

DIRECT_SLOW_S = 0.010
"""A direct handling (with what it drained) slower than this sends the actor's
messages back to its own thread for ``SLOW_BACKOFF_S`` (doubling while it stays slow)."""
SLOW_BACKOFF_S = 1.0
SLOW_BACKOFF_MAX_S = 60.0


class _GatedInbox(queue.Queue):  # type: ignore[type-arg]
    """The actor's mailbox: while another thread holds the actor (``claimed``), a put
    does not wake the actor's thread (it could not take the message anyway); the
    claim's release wakes it if anything is queued."""

    def __init__(self) -> None:
        super().__init__()
        self.claimed = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self.mutex:
            self.queue.append(item)
            self.unfinished_tasks += 1
            if not self.claimed:
                self.not_empty.notify()


class DirectDispatch(pykka.ThreadingActor):
    """Mixin for a ThreadingActor: the gate and ``try_direct`` on its ActorRef."""

    DIRECT_TYPES: ClassVar[frozenset[type]] = frozenset()
    """Messages the I/O thread may handle (their handling never waits on the network)."""
    DRAIN_TYPES: ClassVar[frozenset[type]] = frozenset()
    """Further messages it may handle when queued behind one of those (tells only)."""

    def __init__(self) -> None:
        super().__init__()
        self._actor_busy = False   # the actor's thread is handling a message
        self.direct_handled = 0
        self.direct_slow = 0       # direct handlings slower than DIRECT_SLOW_S
        self._direct_off_until = 0.0  # monotonic time until which direct dispatch is refused
        self._slow_backoff = 0.0
        self._drainable = self.DIRECT_TYPES | self.DRAIN_TYPES

    @staticmethod
    def _create_actor_inbox() -> Any:
        return _GatedInbox()

    def offer_direct(self, on: bool) -> None:
        """Expose (or withdraw) ``try_direct`` on this actor's ref (holding the actor
        weakly, as the ref itself does: a dead actor is not kept alive by it)."""
        if on:
            me = weakref.ref(self)

            def try_direct(message: Any) -> bool:
                actor = me()
                return actor is not None and actor._try_direct(message)
            self.actor_ref.try_direct = try_direct  # type: ignore[attr-defined]
        else:
            self.actor_ref.__dict__.pop("try_direct", None)

    # ---- the I/O thread's side -------------------------------------------------------
    def _try_direct(self, message: Any) -> bool:
        """Handle ``message`` in the calling thread if the actor is idle; False (nothing
        done: tell it instead) otherwise."""
        if type(message) not in self.DIRECT_TYPES:
            return False
        if self._direct_off_until and time.monotonic() < self._direct_off_until:
            return False
        inbox = self.actor_inbox
        with inbox.mutex:  # type: ignore[attr-defined]
            if self._actor_busy or inbox.claimed or inbox.queue or self.actor_stopped.is_set():  # type: ignore[attr-defined]
                return False
            inbox.claimed = True  # type: ignore[attr-defined]
        drainable = self._drainable
        started = time.perf_counter()
        try:
            self.direct_handled += 1
            if self._run_message(message, None):
                for _ in range(DRAIN_AFTER_DIRECT):
                    with inbox.mutex:  # type: ignore[attr-defined]
                        q = inbox.queue  # type: ignore[attr-defined]
                        if (not q or self.actor_stopped.is_set() or q[0].reply_to is not None
                                or type(q[0].message) not in drainable):
                            break
                        envelope = q.popleft()
                    if not self._run_message(envelope.message, None):
                        break
        finally:
            try:
                took = time.perf_counter() - started
                if took > DIRECT_SLOW_S:  # still holding the claim: the actor's state is ours
                    self._direct_was_slow(took)
            finally:
                with inbox.mutex:  # type: ignore[attr-defined]
                    inbox.claimed = False  # type: ignore[attr-defined]
                    if inbox.queue or self.actor_stopped.is_set():  # type: ignore[attr-defined]
                        inbox.not_empty.notify()  # type: ignore[attr-defined]
        return True

    def _direct_was_slow(self, took: float) -> None:
        """Refuse direct dispatch for a while: 1 s, doubled (up to 60 s) for each slow
        handling that comes within twice the previous period."""
        now = time.monotonic()
        recent = self._slow_backoff and now < self._direct_off_until + self._slow_backoff
        self._slow_backoff = (min(SLOW_BACKOFF_MAX_S, self._slow_backoff * 2) if recent
                              else SLOW_BACKOFF_S)
        self._direct_off_until = now + self._slow_backoff
        self.direct_slow += 1
        log.info("%s: a handling in the I/O thread took %.1f ms: its messages go through its "
                 "own thread for %.0f s", self, took * 1e3, self._slow_backoff)

    # ---- the actor's thread ------------------------------------------------------------
    def _actor_loop_running(self) -> None:
        """pykka's receive loop, taking a message only when the I/O thread holds no claim."""
        inbox = self.actor_inbox
        cond = inbox.not_empty  # type: ignore[attr-defined]
        queue = inbox.queue  # type: ignore[attr-defined]
        stopped = self.actor_stopped
        while not stopped.is_set():
            with cond:
                while (inbox.claimed or not queue) and not stopped.is_set():  # type: ignore[attr-defined]
                    cond.wait()
                if stopped.is_set():
                    break
                envelope = queue.popleft()
                self._actor_busy = True
            try:
                self._run_message(envelope.message, envelope.reply_to)
            finally:
                with inbox.mutex:  # type: ignore[attr-defined]
                    self._actor_busy = False

    def _run_message(self, message: Any, reply_to: Any) -> bool:
        """Handle one message as pykka does (answer an ask; an exception in a tell is the
        actor's failure).  False if the actor stopped."""
        try:
            # our own message types go straight to on_receive (pykka's _handle_receive
            # first tests every message against its four internal types)
            if type(message) in self._drainable:
                response = self.on_receive(message)
            else:
                response = self._handle_receive(message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:
                log.info("exception returned from %s to caller", self, exc_info=True)
                reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
            return not self.actor_stopped.is_set()
        except BaseException:  # KeyboardInterrupt, SystemExit: as pykka, stop everything
            log.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            pykka.ActorRegistry.stop_all()
            raise
        return not self.actor_stopped.is_set()
