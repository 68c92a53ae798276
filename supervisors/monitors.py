"""Monitors and links between actors, as in Erlang.

``monitor(target, watcher)``: when ``target`` exits, ``watcher`` receives a
:class:`Down` (an ActorRef gets it by ``tell``; a callable is called with it,
in the exiting actor's thread, so keep it short).  Monitoring an actor that is
already dead delivers ``Down(reason='noproc')`` at once.

``link(a, b)``: when either exits abnormally, the other is stopped with a
:class:`LinkedExit` reason (so it, too, exits abnormally and its supervisor
reacts).  An actor whose instance (or class) has ``trap_exit = True`` instead
receives an :class:`Exit` message.  Normal exits do not propagate.

A target may be a pykka ActorRef or anything with ``add_listener`` /
``remove_listener`` (a Supervisor, an OsProcess).
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pykka

from . import _watch

__all__ = ["Down", "Exit", "LinkedExit", "MonitorRef", "monitor", "demonitor", "link", "unlink"]

logger = logging.getLogger("supervisors")
_ids = itertools.count(1)
_lock = threading.Lock()
_monitors: dict[int, tuple[Any, int]] = {}           # mref id -> (exit source, listener id)
_links: dict[frozenset[Any], tuple[Any, int, Any, int]] = {}


@dataclass(frozen=True, slots=True)
class MonitorRef:
    """Identifies one monitor; pass it to :func:`demonitor`."""

    id: int
    target: Any = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Down:
    """The DOWN message: ``target`` exited with ``reason``."""

    ref: MonitorRef
    target: Any
    reason: Any


@dataclass(frozen=True, slots=True)
class Exit:
    """Delivered to a linked actor with ``trap_exit = True``."""

    sender: Any
    reason: Any


class LinkedExit(Exception):
    """Reason of an actor stopped because a linked peer exited abnormally."""

    def __init__(self, peer: Any, reason: Any) -> None:
        super().__init__(f"linked {peer} exited: {reason!r}")
        self.peer = peer
        self.reason = reason


def _source(target: Any) -> Any:
    if isinstance(target, pykka.ActorRef):
        return _watch.watch(target)
    if hasattr(target, "add_listener") and hasattr(target, "remove_listener"):
        return target
    raise TypeError(f"cannot monitor {target!r}")


def _deliver(watcher: Any, msg: Any) -> None:
    if isinstance(watcher, pykka.ActorRef):
        try:
            watcher.tell(msg)
        except pykka.ActorDeadError:
            pass
    else:
        watcher(msg)


def monitor(target: Any, watcher: pykka.ActorRef[Any] | Callable[[Down], Any]) -> MonitorRef:
    """Watch ``target``; ``watcher`` gets one :class:`Down` when it exits."""
    mref = MonitorRef(next(_ids), target)

    def on_exit(reason: Any) -> None:
        with _lock:
            if _monitors.pop(mref.id, None) is None:
                return  # demonitored meanwhile
        _deliver(watcher, Down(mref, target, reason))

    src = _source(target)
    with _lock:
        _monitors[mref.id] = (src, 0)
    lid = src.add_listener(on_exit)
    if lid is None:
        on_exit("noproc")
    else:
        with _lock:
            if mref.id in _monitors:
                _monitors[mref.id] = (src, lid)
    return mref


def demonitor(mref: MonitorRef) -> bool:
    """Remove a monitor; True if it was active (no Down will follow)."""
    with _lock:
        entry = _monitors.pop(mref.id, None)
    if entry is None:
        return False
    src, lid = entry
    if lid:
        src.remove_listener(lid)
    return True


def _exit_signal(target: Any, sender: Any, reason: Any) -> None:
    if _watch.is_normal(reason):
        return
    if isinstance(target, pykka.ActorRef):
        actor = _watch.actor_of(target)
        if getattr(actor if actor is not None else target.actor_class, "trap_exit", False):
            _deliver(target, Exit(sender, reason))
            return
        logger.info("%s exits because linked %s exited: %r", target, sender, reason)
        _watch.kill(target, LinkedExit(sender, reason))
    elif hasattr(target, "stop"):
        target.stop()


def _key(a: Any, b: Any) -> frozenset[Any]:
    def one(x: Any) -> Any:
        return getattr(x, "actor_urn", None) or id(x)
    return frozenset((one(a), one(b)))


def link(a: Any, b: Any) -> None:
    """Link two actors: an abnormal exit of either stops the other."""
    key = _key(a, b)
    sa, sb = _source(a), _source(b)

    def on_exit(sender: Any, other: Any, reason: Any) -> None:
        with _lock:
            entry = _links.pop(key, None)
        if entry is None:
            return  # unlinked meanwhile, or the other side already went
        src_o, lid_o = (entry[2], entry[3]) if sender is a else (entry[0], entry[1])
        if lid_o:
            src_o.remove_listener(lid_o)
        _exit_signal(other, sender, reason)

    with _lock:
        _links[key] = (sa, 0, sb, 0)
    la = sa.add_listener(lambda reason: on_exit(a, b, reason))
    lb = sb.add_listener(lambda reason: on_exit(b, a, reason))
    with _lock:
        if key in _links:
            _links[key] = (sa, la or 0, sb, lb or 0)
    if la is None:
        on_exit(a, b, getattr(sa, "final_reason", "noproc"))
    elif lb is None:
        on_exit(b, a, getattr(sb, "final_reason", "noproc"))


def links_count() -> int:
    """How many links are active (for tests and introspection)."""
    with _lock:
        return len(_links)


def unlink(a: Any, b: Any) -> None:
    """Remove a link made by :func:`link`."""
    with _lock:
        entry = _links.pop(_key(a, b), None)
    if entry is not None:
        sa, la, sb, lb = entry
        if la:
            sa.remove_listener(la)
        if lb:
            sb.remove_listener(lb)
