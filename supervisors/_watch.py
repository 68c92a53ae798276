"""Actor wrapping: learn at once when a pykka actor exits, and why.

Exit watching is a class-level mixin, :class:`ExitWatched`: it overrides pykka's
protected loop pieces (``_handle_failure``, ``_stop``, ``_actor_loop_setup``,
``_actor_loop_teardown``) so that the failure handler records the exception that
escaped a handler, and the teardown fires the exit listeners as the actor's very
last act.  Nothing is written on instances of pykka's classes, no pykka private
module is imported, and the per-message path is untouched.  Detection is event
driven: no polling and no thread per actor.

Two actor types carry the mixin natively: :class:`ThreadingActor` (pykka's, plus
the mixin and the call-back future) and ``ScheduledActor``.  :func:`start_actor`
(what ``ChildSpec.actor`` uses) starts any other class as a cached subclass with
the mixin, so an unmodified ``pykka.ThreadingActor`` given to a supervisor is
watched from its first instruction.  An actor without the mixin that is already
running (started elsewhere) falls back to a short helper thread that joins the
actor's thread; its exit reason is then ``'normal'`` unless it was killed or
shut down by us (pykka tells nobody else why it stopped).

Reasons follow Erlang: ``'normal'`` for a clean stop, ``'shutdown'`` when a
supervisor stopped it, ``'killed'`` for a brutal kill, ``'noproc'`` when it was
already dead when watched, otherwise the exception that killed it.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import types
import weakref
from typing import Any, Callable, ClassVar

import pykka
from pykka import ActorRegistry, messages

from ._future import CallbackFuture

__all__ = ["ActorWatch", "ExitWatched", "ThreadingActor", "Envelope", "watch", "start_actor",
           "watched_class", "kill", "is_normal", "actor_of"]

logger = logging.getLogger("supervisors")

_ids = itertools.count(1)
_lock = threading.Lock()
_actors: weakref.WeakValueDictionary[str, pykka.Actor] = weakref.WeakValueDictionary()
_foreign: dict[str, ActorWatch] = {}  # urn -> watch of a running actor without the mixin
_watched_classes: dict[type, type] = {}

ExitListener = Callable[[Any], None]


def is_normal(reason: Any) -> bool:
    """True for the reasons OTP treats as a normal exit."""
    return isinstance(reason, str) and reason in ("normal", "shutdown")


class ActorWatch:
    """Exit state and exit listeners of one actor."""

    __slots__ = ("ref", "reason", "exited", "thread", "_listeners", "_lock", "__weakref__")

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.reason: Any = None  # first recorded reason wins
        self.exited = threading.Event()
        self.thread: threading.Thread | None = None  # the actor's own thread, if it has one
        self._listeners: dict[int, ExitListener] = {}
        self._lock = threading.Lock()

    @property
    def final_reason(self) -> Any:
        """The exit reason (``'normal'`` if none was recorded)."""
        return "normal" if self.reason is None else self.reason

    def set_reason(self, reason: Any) -> None:
        """Record ``reason`` unless one is already recorded."""
        if self.reason is None:
            self.reason = reason

    def add_listener(self, fn: ExitListener) -> int | None:
        """Call ``fn(reason)`` at exit; None (and no call) if it already exited."""
        with self._lock:
            if self.exited.is_set():
                return None
            lid = next(_ids)
            self._listeners[lid] = fn
            return lid

    def remove_listener(self, lid: int) -> None:
        with self._lock:
            self._listeners.pop(lid, None)

    def fire(self) -> None:
        """Mark the actor exited and call every listener once (idempotent)."""
        with self._lock:
            if self.exited.is_set():
                return
            self.exited.set()
            listeners = list(self._listeners.values())
            self._listeners.clear()
        reason = self.final_reason
        for fn in listeners:
            try:
                fn(reason)
            except Exception:  # a broken listener must not hide the others
                logger.exception("exit listener %r of %s failed", fn, self.ref)

    def thread_name(self) -> str | None:
        t = self.thread
        return t.name if t is not None else None


def _dead_watch(ref: pykka.ActorRef[Any]) -> ActorWatch:
    dead = ActorWatch(ref)
    dead.reason = "noproc"
    dead.exited.set()
    return dead


class ExitWatched(pykka.Actor):
    """Mixin for pykka actor types: an :class:`ActorWatch` from construction on.

    Put it first in the bases (``class A(ExitWatched, SomeActorType)``)."""

    _sv_owns_thread: ClassVar[bool] = True
    """True when the actor's loop runs on a thread of its own (joined at shutdown)."""

    _sv_exit_watch: ActorWatch

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sv_exit_watch = ActorWatch(self.actor_ref)
        _actors[self.actor_urn] = self

    def _handle_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._sv_exit_watch.set_reason(exception_value if exception_value is not None else "error")
        super()._handle_failure(exception_type, exception_value, traceback)

    def _stop(self) -> None:
        # pykka calls _stop() from its ``except BaseException`` block for
        # KeyboardInterrupt/SystemExit escaping a handler (no _handle_failure
        # then); the exception being handled is the reason.
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, Exception):
            self._sv_exit_watch.set_reason(exc)
        super()._stop()

    def _actor_loop_setup(self) -> None:
        if self._sv_owns_thread:
            self._sv_exit_watch.thread = threading.current_thread()
        super()._actor_loop_setup()

    def _actor_loop_teardown(self) -> None:
        try:
            super()._actor_loop_teardown()
        finally:
            self._sv_exit_watch.fire()


class ThreadingActor(ExitWatched, pykka.ThreadingActor):
    """``pykka.ThreadingActor`` with exit watching built in and asks whose futures
    accept ``add_done_callback`` (:class:`supervisors._future.CallbackFuture`)."""

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return CallbackFuture()


class Envelope:
    """Our own envelope (``message``, ``reply_to``) for putting a message in an
    actor's inbox ourselves (pykka's is private).  Any pykka inbox takes it: the
    actor reads only those two attributes."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any, reply_to: pykka.Future[Any] | None = None) -> None:
        self.message = message
        self.reply_to = reply_to

    def __repr__(self) -> str:
        return f"Envelope({self.message!r}, reply_to={self.reply_to!r})"


def watched_class(actor_class: type[pykka.Actor]) -> type[pykka.Actor]:
    """``actor_class`` if it has the mixin, else a cached subclass of it that has it
    (same name, so logs, thread names and the tree read the same).  A class that
    kept pykka's ThreadingFuture also gets the CallbackFuture (a subclass of it)."""
    if issubclass(actor_class, ExitWatched):
        return actor_class
    with _lock:
        cls = _watched_classes.get(actor_class)
        if cls is None:
            def body(ns: dict[str, Any]) -> None:
                ns.update(__module__=actor_class.__module__, __qualname__=actor_class.__qualname__,
                          __doc__=actor_class.__doc__)
                if actor_class._create_future is pykka.ThreadingActor._create_future:
                    ns["_create_future"] = ThreadingActor.__dict__["_create_future"]
            cls = types.new_class(actor_class.__name__, (ExitWatched, actor_class), exec_body=body)
            _watched_classes[actor_class] = cls
        return cls


def actor_of(ref: pykka.ActorRef[Any]) -> pykka.Actor | None:
    """The live actor instance behind ``ref`` if it is exit-watched, else None."""
    return _actors.get(ref.actor_urn)


def _find_thread(urn: str) -> threading.Thread | None:
    # A pykka ThreadingActor's thread runs its bound ``_actor_loop``: the thread
    # whose target belongs to the actor with this urn.
    for t in threading.enumerate():
        owner = getattr(getattr(t, "_target", None), "__self__", None)
        if getattr(owner, "actor_urn", None) == urn:
            return t
    return None


def _await_foreign_exit(w: ActorWatch, t: threading.Thread | None) -> None:
    if t is not None:
        t.join()
    else:
        w.ref.actor_stopped.wait()
    with _lock:
        _foreign.pop(w.ref.actor_urn, None)
    w.fire()


def watch(ref: pykka.ActorRef[Any]) -> ActorWatch:
    """The (single, shared) watch of a running or dead actor."""
    actor = _actors.get(ref.actor_urn)
    if actor is not None:
        w: ActorWatch = actor._sv_exit_watch  # type: ignore[attr-defined]
        return w
    if issubclass(ref.actor_class, ExitWatched):
        return _dead_watch(ref)  # watched from birth and already gone
    with _lock:
        w2 = _foreign.get(ref.actor_urn)
        if w2 is not None:
            return w2
        if ref.actor_stopped.is_set():
            return _dead_watch(ref)
        w2 = _foreign[ref.actor_urn] = ActorWatch(ref)
    t = _find_thread(ref.actor_urn)
    w2.thread = t
    threading.Thread(target=_await_foreign_exit, args=(w2, t), daemon=True,
                     name="supervisors-foreign-exit").start()
    return w2


def start_actor(actor_class: type[pykka.Actor], *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
    """``actor_class.start(*args, **kwargs)``, exit-watched from its first instruction."""
    return watched_class(actor_class).start(*args, **kwargs)


def kill(ref: pykka.ActorRef[Any], reason: Any = "killed") -> None:
    """Stop an actor now, like Erlang's ``exit(Pid, kill)``: after its current
    message, without ``on_stop``; monitors see ``reason``.

    A Python thread cannot be interrupted; an actor stuck in a handler exits
    when the handler returns."""
    w = watch(ref)
    if w.exited.is_set():
        return
    w.set_reason(reason)
    ActorRegistry.unregister(ref)
    ref.actor_stopped.set()
    # Wake the loop if it waits on an empty inbox: a harmless attribute read.
    inbox: Any = ref.actor_inbox  # any inbox takes any object with message and reply_to
    try:
        inbox.put(Envelope(messages.ProxyGetAttr(attr_path=("actor_urn",))))
    except pykka.ActorDeadError:  # a scheduled actor already torn down
        pass
