"""Actor wrapping: learn at once when any pykka actor exits, and why.

Any unmodified ``pykka.ThreadingActor`` can be watched.  We hook the *instance*
(never the class) and never the per-message path: its failure handler records
the exception that escaped a handler, and its loop teardown fires the exit
listeners from the actor's own thread as its very last act.  Detection is
therefore event-driven, with no
polling and no extra thread per actor.

For actors we start ourselves (:func:`start_actor`) the hooks are installed
before the actor's thread runs, so no exit can be missed.  For an actor that is
already running (:func:`watch`) a late exit racing the installation is caught
by joining the actor's thread once, in a short-lived helper thread.

Reasons follow Erlang: ``'normal'`` for a clean stop, ``'shutdown'`` when a
supervisor stopped it, ``'killed'`` for a brutal kill, ``'noproc'`` when it was
already dead when watched, otherwise the exception that killed it.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from typing import Any, Callable

import pykka
from pykka import ActorRegistry, messages
from pykka._envelope import Envelope

__all__ = ["ActorWatch", "watch", "start_actor", "kill", "is_normal"]

logger = logging.getLogger("supervisors")

_ATTR = "_supervisors_watch"
_install_lock = threading.Lock()
_ids = itertools.count(1)

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
        self.thread: threading.Thread | None = None
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


def _install(actor: pykka.Actor, w: ActorWatch) -> None:
    """Hook one actor instance so that ``w`` learns of its failure and exit."""
    orig_failure = actor._handle_failure
    orig_stop = actor._stop
    orig_setup = actor._actor_loop_setup
    orig_teardown = actor._actor_loop_teardown

    def _handle_failure(etype: Any, evalue: Any, tb: Any) -> None:
        w.set_reason(evalue if evalue is not None else "error")
        orig_failure(etype, evalue, tb)

    def _stop() -> None:
        # pykka calls _stop() from its ``except BaseException`` block for
        # KeyboardInterrupt/SystemExit escaping a handler (no _handle_failure
        # then); the exception being handled is the reason.  Hooking here keeps
        # the per-message path untouched.
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, Exception):
            w.set_reason(exc)
        orig_stop()

    def _actor_loop_setup() -> None:
        w.thread = threading.current_thread()
        orig_setup()

    def _actor_loop_teardown() -> None:
        try:
            orig_teardown()
        finally:
            w.fire()

    d = actor.__dict__
    d["_handle_failure"] = _handle_failure
    d["_stop"] = _stop
    d["_actor_loop_setup"] = _actor_loop_setup
    d["_actor_loop_teardown"] = _actor_loop_teardown
    d[_ATTR] = w


def _find_thread(actor: pykka.Actor) -> threading.Thread | None:
    for t in threading.enumerate():
        target = getattr(t, "_target", None)
        if getattr(target, "__self__", None) is actor:
            return t
    return None


def _late_exit(w: ActorWatch, t: threading.Thread | None) -> None:
    if t is not None:
        t.join()
    w.fire()


def watch(ref: pykka.ActorRef[Any]) -> ActorWatch:
    """The (single, shared) watch of a running or dead actor."""
    actor = ref._actor_weakref()
    if actor is None or (ref.actor_stopped.is_set() and _ATTR not in actor.__dict__):
        dead = ActorWatch(ref)
        dead.reason = "noproc"
        dead.exited.set()
        return dead
    with _install_lock:
        w = actor.__dict__.get(_ATTR)
        if w is not None:
            return w
        w = ActorWatch(ref)
        _install(actor, w)
    t = _find_thread(actor)
    w.thread = w.thread or t
    if ref.actor_stopped.is_set():  # may have passed its teardown before the hook
        threading.Thread(target=_late_exit, args=(w, t), daemon=True,
                         name="supervisors-late-exit").start()
    return w


def start_actor(actor_class: type[pykka.Actor], *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
    """``actor_class.start(*args, **kwargs)`` with the watch installed before it runs."""
    actor = actor_class(*args, **kwargs)
    ref = actor.actor_ref
    _install(actor, ActorWatch(ref))
    ActorRegistry.register(ref)
    actor._start_actor_loop()
    return ref


def kill(ref: pykka.ActorRef[Any], reason: Any = "killed") -> None:
    """Stop an actor now, like Erlang's ``exit(Pid, kill)``: after its current
    message, without ``on_stop``; monitors see ``reason``.

    The Python thread cannot be interrupted; an actor stuck in a handler exits
    when the handler returns."""
    actor = ref._actor_weakref()
    if actor is None:
        return
    watch(ref).set_reason(reason)
    ActorRegistry.unregister(ref)
    actor.actor_stopped.set()
    # Wake the loop if it is blocked on an empty inbox; a harmless attribute read.
    actor.actor_inbox.put(Envelope(messages.ProxyGetAttr(attr_path=("actor_urn",))))


def actor_of(ref: pykka.ActorRef[Any]) -> pykka.Actor | None:
    return ref._actor_weakref()


