"""The supervisor (OTP's ``supervisor`` behaviour) for pykka actors, nested
supervisors and OS processes.

Each supervisor has one control context that handles, one at a time, child
exits (pushed by exit listeners the instant a child dies) and API calls.  All
starting and stopping of children happens there, so the children list needs no
lock for writers; readers (``tree``, ``which_children``) copy it.  The control
context is the supervisor's own thread, or, for ``threadless=True`` (OTP's
per-server supervisors, thousands per node), a :class:`ControlQueue` drained on
the node scheduler's pool: the same semantics without a thread (its start runs
synchronously in the starting thread).

Semantics follow supervisor(3): strategies ``one_for_one``, ``one_for_all``,
``rest_for_one``, ``simple_one_for_one``; restart types ``permanent``,
``transient``, ``temporary``; more than ``intensity`` restarts within
``period`` seconds stops every child in reverse start order and exits the
supervisor with :class:`RestartIntensityExceeded` (its parent then applies its
own strategy; a root logs and stops).  Differences from OTP: an exception
raised in a pykka ``ask`` handler goes back to the caller and does not crash
the actor (pykka's rule); a failed restart is retried through the queue and
counts against the intensity.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Hashable, Iterator, Sequence, TypeVar, overload

from . import introspect, registry
from ._children import make_handle
from ._control import ControlQueue
from ._pool import Scheduler, current_scheduler, default_scheduler, wait_event
from ._watch import is_normal
from .errors import (AlreadyPresent, AlreadyRunning, ChildInfo, NotFound, NotRunning,
                     RestartIntensityExceeded, StartError, StillRunning, SupervisorError,
                     SupervisorEvent)
from .spec import STRATEGIES, ChildSpec, Strategy

__all__ = ["Supervisor", "SupervisorError", "StartError", "NotFound", "AlreadyPresent",
           "AlreadyRunning", "StillRunning", "NotRunning", "RestartIntensityExceeded",
           "ChildInfo", "SupervisorEvent"]

logger = logging.getLogger("supervisors")
_seq = itertools.count(1)
R = TypeVar("R")


class _Child:
    __slots__ = ("spec", "extra", "seq", "handle", "restarts", "status", "started_at")

    def __init__(self, spec: ChildSpec, extra: tuple[Any, ...] = ()) -> None:
        self.spec = spec
        self.extra = extra
        self.seq = next(_seq)
        self.handle: Any = None
        self.restarts = 0
        self.status = "stopped"  # running | stopped | restarting
        self.started_at = 0.0


class _Children:
    """The children in start order, with O(1) append, remove, membership and lookup
    by spec id (a node's ``servers`` supervisor holds 10,000 of them)."""

    __slots__ = ("_order", "by_id")

    def __init__(self) -> None:
        self._order: dict[_Child, None] = {}
        self.by_id: dict[Any, _Child] = {}  # spec id -> child (unique except simple_one_for_one)

    def append(self, child: _Child) -> None:
        self._order[child] = None
        self.by_id.setdefault(child.spec.id, child)

    def remove(self, child: _Child) -> None:
        del self._order[child]
        if self.by_id.get(child.spec.id) is child:
            del self.by_id[child.spec.id]

    def __contains__(self, child: object) -> bool:
        return child in self._order

    def __iter__(self) -> Iterator[_Child]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def from_child(self, child: _Child) -> list[_Child]:
        """``child`` and every child started after it (rest_for_one)."""
        order = list(self._order)
        return order[order.index(child):]


class _StartMethod:
    """``sup.start()`` starts an instance; ``Supervisor.start(children, ...)``
    (on the class, like pykka's ``Actor.start``) builds one and starts it."""

    @overload
    def __get__(self, obj: None, cls: type[Supervisor]) -> Callable[..., Supervisor]: ...

    @overload
    def __get__(self, obj: Supervisor, cls: type[Supervisor]) -> Callable[[], Supervisor]: ...

    def __get__(self, obj: Supervisor | None, cls: type[Supervisor]) -> Callable[..., Supervisor]:
        if obj is None:
            return lambda *args, **kwargs: cls(*args, **kwargs)._start_self()
        return obj._start_self


class Supervisor:
    """A supervisor: ``Supervisor(children, strategy=...).start()`` or
    ``Supervisor.start(children, strategy=...)`` runs it.

    ``threadless=True``: no control thread; the control queue is drained on
    ``scheduler``'s pool (None: the process-wide default scheduler) and the
    start runs in the starting thread.  For supervisors that exist by the
    thousand (one per Raft server); behaviour is otherwise the same, except
    that ``stop()`` called from its own control context queues the stop and
    returns False instead of raising."""

    def __init__(self, children: Sequence[ChildSpec] = (), strategy: Strategy = "one_for_one",
                 intensity: int = 1, period: float = 5.0, id: Hashable = None,
                 name: str | None = None, threadless: bool = False,
                 scheduler: Scheduler | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        if intensity < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        if strategy == "simple_one_for_one":
            if len(children) != 1:
                raise ValueError("simple_one_for_one takes exactly one child spec (the template)")
            if children[0].name is not None:
                raise ValueError("a simple_one_for_one template cannot have a registered name")
        self.id = id if id is not None else f"supervisor-{next(_seq)}"
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.name = name
        self.started_at = 0.0
        self.total_restarts = 0
        self.exit_reason: Any = None
        self.exited = threading.Event()
        self._specs = list(children)
        self._template = children[0] if strategy == "simple_one_for_one" else None
        self._children = _Children()
        self._restarts: collections.deque[float] = collections.deque()
        self.threadless = threadless
        self._scheduler = scheduler
        self._q: queue.SimpleQueue[Any] | ControlQueue = queue.SimpleQueue()
        self._qlock = threading.Lock()
        self._state = "new"  # new | running | stopping | stopped
        self._started = False
        self._thread: threading.Thread | None = None
        self._parent: Supervisor | None = None
        self._listeners: dict[int, Callable[[Any], None]] = {}
        self._subscribers: list[Callable[[SupervisorEvent], object]] = []
        self._lid = itertools.count(1)

    # ------------------------------------------------------------------ life
    start = _StartMethod()

    def _start_self(self) -> Supervisor:
        """Start the control context (a thread, or for a threadless supervisor the
        calling thread) and every child in order.

        Raises StartError (after stopping the children already started) if a
        child fails to start."""
        if self._started:
            raise SupervisorError(f"supervisor {self.id!r} was already started")
        self._started = True
        ready: Future[None] = Future()
        self.started_at = time.time()
        if self.threadless:
            control = ControlQueue(self._scheduler or default_scheduler(), self._handle_safely)
            self._q = control
            with control.claim():
                self._boot(ready)
        else:
            self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                            name=f"supervisor-{self.id}")
            self._thread.start()
        ready.result()
        if self._parent is None:
            introspect.add_root(self)
        return self

    def in_control_context(self) -> bool:
        """True when called from this supervisor's own control context (its thread,
        or the pool thread draining its control queue)."""
        q = self._q
        if isinstance(q, ControlQueue):
            return q.in_control()
        return threading.current_thread() is self._thread

    def stop(self, timeout: float | None = None) -> bool:
        """Stop every child in reverse start order, then the supervisor.

        Blocks until done (or ``timeout``); True if the supervisor has exited.
        From its own control context a threaded supervisor raises
        SupervisorError; a threadless one queues its stop and returns False."""
        if not self._started:
            return True
        in_control = self.in_control_context()
        if in_control and not self.threadless:
            raise SupervisorError("a supervisor cannot stop itself from its own thread")
        with self._qlock:
            if self._state == "running":
                self._state = "stopping"
                self._q.put(("stop", "shutdown"))
            elif self._state == "new" and in_control:  # while starting: stop right after
                self._q.put(("stop", "shutdown"))
        if in_control:
            return self.exited.is_set()
        if not wait_event(self.exited, timeout):
            return False
        if self._thread is not None:
            self._thread.join(timeout)  # it ends right after telling its exit listeners
        return True

    def wait(self, timeout: float | None = None) -> Any:
        """Wait until the supervisor exits; returns its exit reason (None on timeout)."""
        self.exited.wait(timeout)
        return self.exit_reason

    def is_alive(self) -> bool:
        return self._state in ("running", "stopping")

    @property
    def final_reason(self) -> Any:
        return self.exit_reason if self.exit_reason is not None else "noproc"

    # --------------------------------------------------- listeners / events
    def add_listener(self, fn: Callable[[Any], None]) -> int | None:
        """Call ``fn(reason)`` when the supervisor exits; None if it already has."""
        with self._qlock:
            if self.exited.is_set():
                return None
            lid = next(self._lid)
            self._listeners[lid] = fn
            return lid

    def remove_listener(self, lid: int) -> None:
        with self._qlock:
            self._listeners.pop(lid, None)

    def subscribe(self, fn: Callable[[SupervisorEvent], object]) -> None:
        """Call ``fn(event)`` (on the control thread) for child starts and exits."""
        self._subscribers.append(fn)

    def _emit(self, kind: str, child: _Child, ref: Any, reason: Any = None) -> None:
        if not self._subscribers:
            return
        ev = SupervisorEvent(kind, self.id, self._display_id(child), ref, reason)
        for fn in list(self._subscribers):
            try:
                fn(ev)
            except Exception:
                logger.exception("supervisor subscriber %r failed", fn)

    # ------------------------------------------------------------ the thread
    def _run(self, ready: Future[None]) -> None:
        """The control thread of a threaded supervisor."""
        if not self._boot(ready):
            return
        try:
            self._loop()
        except BaseException as exc:  # a bug here must not leave a zombie supervisor
            self._crashed(exc)

    def _crashed(self, exc: BaseException) -> None:
        logger.exception("supervisor %r crashed", self.id)
        try:
            self._terminate_all()
        finally:
            self._finish(exc)

    def _boot(self, ready: Future[None]) -> bool:
        """Register the name and start the children (in the control context);
        False (and ``ready`` failed) if that fails."""
        registered = False
        try:
            if self.name is not None:
                registry.register(self.name, self)
                registered = True
            for spec in self._specs if self._template is None else ():
                child = _Child(spec)
                self._children.append(child)
                self._start(child)
        except BaseException as exc:
            logger.error("supervisor %r failed to start: %r", self.id, exc)
            self._terminate_all()
            if not registered:
                self.name = None  # the name belongs to someone else: leave it
            self._finish(exc)
            ready.set_exception(exc if isinstance(exc, StartError) else StartError(repr(exc)))
            return False
        self._state = "running"
        ready.set_result(None)
        return True

    def _loop(self) -> None:
        q = self._q
        assert isinstance(q, queue.SimpleQueue)
        while self._state != "stopped":
            self._handle(q.get())

    def _handle_safely(self, item: Any) -> None:
        """One control item of a threadless supervisor (a bug stops it, as a crash
        of a threaded supervisor's loop does)."""
        if self._state == "stopped":
            return
        try:
            self._handle(item)
        except BaseException as exc:
            self._crashed(exc)

    def _handle(self, item: Any) -> None:
        kind = item[0]
        if kind == "exit":
            self._on_exit(item[1], item[2], item[3])
        elif kind == "call":
            _, fn, fut = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)
        elif kind == "retry":
            child = item[1]
            if child in self._children and child.handle is None:
                self._restart(child)
        elif kind == "stop":
            logger.debug("supervisor %r shutting down", self.id)
            self._terminate_all()
            self._finish(item[1])

    def _finish(self, reason: Any) -> None:
        """Become stopped: fail queued calls, tell exit listeners."""
        if self.name is not None:
            registry.unregister(self.name, self)
        introspect.remove_root(self)
        if not is_normal(reason) and self._parent is None:
            logger.error("root supervisor %r stopped: %r", self.id, reason)
        with self._qlock:
            self._state = "stopped"
            self.exit_reason = reason
            listeners = list(self._listeners.values())
            self._listeners.clear()
            if isinstance(self._q, ControlQueue):
                self._q.close()
            while True:
                try:
                    item = self._q.get_nowait()
                except Exception:
                    break
                if item[0] == "call" and item[2].set_running_or_notify_cancel():
                    item[2].set_exception(NotRunning(f"supervisor {self.id!r} stopped"))
            self.exited.set()
        for fn in listeners:
            try:
                fn(reason)
            except Exception:
                logger.exception("exit listener of supervisor %r failed", self.id)

    def _call(self, fn: Callable[[], R]) -> R:
        if self.in_control_context():
            return fn()
        fut: Future[R] = Future()
        with self._qlock:
            if self._state != "running":
                raise NotRunning(f"supervisor {self.id!r} is {self._state}")
            self._q.put(("call", fn, fut))
        if current_scheduler() is not None:  # a pool thread: help the pool while waiting
            done = threading.Event()
            fut.add_done_callback(lambda _: done.set())
            wait_event(done, None)
        return fut.result()

    # --------------------------------------------------- start / terminate
    def _display_id(self, child: _Child) -> Any:
        return child.spec.id if self._template is None else f"{child.spec.id}#{child.seq}"

    def _start(self, child: _Child) -> Any:
        spec = child.spec
        try:
            handle = make_handle(spec.start(*spec.args, *child.extra), self)
        except Exception as exc:
            raise StartError(f"child {self._display_id(child)!r} of {self.id!r} "
                             f"failed to start: {exc!r}") from exc
        if spec.name is not None:
            try:
                registry.register(spec.name, handle.ref)
            except registry.NameTaken:
                handle.shutdown("brutal_kill")
                raise StartError(f"name {spec.name!r} is taken") from None
        child.handle = handle
        child.status = "running"
        child.started_at = handle.started_at

        def on_exit(reason: Any, h: Any = handle) -> None:
            self._q.put(("exit", child, h, reason))

        if handle.add_listener(on_exit) is None:
            on_exit(handle.final_reason)
        self._emit("started", child, handle.ref)
        return handle.ref

    def _terminate(self, child: _Child) -> None:
        h = child.handle
        if h is None:
            return
        child.handle = None  # its exit event is now stale
        child.status = "stopped"
        if child.spec.name is not None:
            registry.unregister(child.spec.name, h.ref)
        h.shutdown(child.spec.shutdown)
        self._emit("terminated", child, h.ref, "shutdown")

    def _terminate_all(self) -> None:
        for child in reversed(list(self._children)):
            self._terminate(child)

    # -------------------------------------------------------------- restarts
    def _on_exit(self, child: _Child, handle: Any, reason: Any) -> None:
        if child.handle is not handle or self._state != "running":
            return
        child.handle = None
        child.status = "stopped"
        spec = child.spec
        if spec.name is not None:
            registry.unregister(spec.name, handle.ref)
        cid = self._display_id(child)
        if is_normal(reason):
            logger.info("supervisor %r: child %r exited: %r", self.id, cid, reason)
        else:
            logger.error("supervisor %r: child %r crashed: %r", self.id, cid, reason,
                         exc_info=reason if isinstance(reason, BaseException) else None)
        self._emit("exited", child, handle.ref, reason)
        if spec.restart == "temporary" or (spec.restart == "transient" and is_normal(reason)):
            if spec.restart == "temporary" or self._template is not None:
                self._children.remove(child)
            return
        self._restart(child)

    def _note_restart(self) -> bool:
        now = time.monotonic()
        dq = self._restarts
        dq.append(now)
        while dq and dq[0] < now - self.period:
            dq.popleft()
        return len(dq) <= self.intensity

    def _restart(self, child: _Child) -> None:
        if not self._note_restart():
            logger.error("supervisor %r: more than %d restarts in %.1f s; shutting down",
                         self.id, self.intensity, self.period)
            self._terminate_all()
            self._finish(RestartIntensityExceeded(
                f"supervisor {self.id!r}: more than {self.intensity} restarts in {self.period} s"))
            return
        child.restarts += 1
        self.total_restarts += 1
        if self.strategy in ("one_for_one", "simple_one_for_one"):
            group = [child]
        elif self.strategy == "one_for_all":
            group = list(self._children)
        else:
            group = self._children.from_child(child)
        for c in reversed(group):
            if c is not child and c.handle is not None:
                self._terminate(c)
                c.status = "restarting"
        child.status = "restarting"
        for c in group:
            if c.status != "restarting":
                continue
            if c is not child and c.spec.restart == "temporary":
                self._children.remove(c)
                continue
            try:
                self._start(c)
            except StartError as exc:
                logger.error("supervisor %r: restart failed: %s", self.id, exc)
                self._q.put(("retry", c))
                return
        logger.info("supervisor %r: restarted %s (%s; restarts of %r: %d)", self.id,
                    ", ".join(repr(self._display_id(c)) for c in group if c.handle is not None),
                    self.strategy, self._display_id(child), child.restarts)

    # ------------------------------------------------------------ dynamic API
    def _find(self, key: Any) -> _Child:
        if self._template is None:
            try:
                c = self._children.by_id.get(key)
            except TypeError:  # an unhashable key (a ref is hashable; ids usually are)
                c = None
            if c is not None:
                return c
        for c in self._children:
            if c.handle is not None and c.handle.ref is key:
                return c
        for c in self._children:
            if self._display_id(c) == key or (self._template is None and c.spec.id == key):
                return c
        raise NotFound(f"supervisor {self.id!r} has no child {key!r}")

    def start_child(self, spec: ChildSpec | Any = None, *args: Any) -> Any:
        """Add and start a child; returns its ref.

        For ``simple_one_for_one``, pass the extra start arguments instead of a
        spec: ``sup.start_child(arg1, arg2)``."""
        template = self._template
        if template is not None:
            extra = (spec, *args) if spec is not None else args
            return self._call(lambda: self._start_new(_Child(template, tuple(extra))))
        if not isinstance(spec, ChildSpec):
            raise TypeError("start_child needs a ChildSpec")
        if spec.type == "supervisor" and args:
            raise TypeError("extra args are for simple_one_for_one")

        def do() -> Any:
            c = self._children.by_id.get(spec.id)
            if c is not None:
                what = "running" if c.handle is not None else "present"
                raise AlreadyPresent(f"child {spec.id!r} is already {what}")
            return self._start_new(_Child(spec))
        return self._call(do)

    def _start_new(self, child: _Child) -> Any:
        self._children.append(child)
        try:
            return self._start(child)
        except BaseException:
            self._children.remove(child)
            raise

    def terminate_child(self, key: Any) -> None:
        """Stop a child (by id, or by ref). Its spec stays, except for
        temporary children and simple_one_for_one instances."""
        def do() -> None:
            c = self._find(key)
            self._terminate(c)
            if self._template is not None or c.spec.restart == "temporary":
                self._children.remove(c)
        self._call(do)

    def restart_child(self, child_id: Any) -> Any:
        """Start a stopped child again from its spec; returns its ref."""
        def do() -> Any:
            c = self._find(child_id)
            if c.handle is not None:
                raise AlreadyRunning(f"child {child_id!r} is running")
            return self._start(c)
        return self._call(do)

    def delete_child(self, child_id: Any) -> None:
        """Remove a stopped child's spec."""
        def do() -> None:
            c = self._find(child_id)
            if c.handle is not None:
                raise StillRunning(f"child {child_id!r} is running")
            self._children.remove(c)
        self._call(do)

    def which_children(self) -> list[ChildInfo]:
        """Every child: id, ref (None when not running), type, status.

        A call to the control thread (so it reflects every exit seen so far);
        reads directly once the supervisor has stopped."""
        return self._call_or_read(lambda: [
            ChildInfo(self._display_id(c), c.handle.ref if c.handle is not None else None,
                      c.spec.type, c.status) for c in list(self._children)])

    def count_children(self) -> dict[str, int]:
        """OTP's counts: specs, active, supervisors, workers."""
        def count() -> dict[str, int]:
            kids = list(self._children)
            return {
                "specs": len(kids),
                "active": sum(1 for c in kids if c.handle is not None),
                "supervisors": sum(1 for c in kids if c.spec.type == "supervisor"),
                "workers": sum(1 for c in kids if c.spec.type == "worker"),
            }
        return self._call_or_read(count)

    def _call_or_read(self, fn: Callable[[], R]) -> R:
        try:
            return self._call(fn)
        except NotRunning:
            return fn()

    def child_ref(self, child_id: Any) -> Any:
        """The running ref of a child, or None."""
        for c in list(self._children):
            if self._display_id(c) == child_id or c.spec.id == child_id:
                return c.handle.ref if c.handle is not None else None
        raise NotFound(f"supervisor {self.id!r} has no child {child_id!r}")

    # ---------------------------------------------------------- introspection
    def tree(self) -> dict[str, Any]:
        """This supervisor and its subtree as plain msgpack-able data."""
        t = self._thread
        q = self._q
        return {
            "id": introspect.plain(self.id),
            "kind": "supervisor",
            "impl": "supervisor",
            "strategy": self.strategy,
            "intensity": self.intensity,
            "period": self.period,
            "status": self._state,
            "restarts": 0,  # set by the parent: times this supervisor was restarted
            "restarts_performed": self.total_restarts,
            "started_at": self.started_at,
            "thread": t.name if t is not None else (
                q.scheduler.name if isinstance(q, ControlQueue) else None),
            "threadless": self.threadless,
            "name": self.name,
            "exit_reason": introspect.plain(self.exit_reason),
            "children": [self._child_tree(c) for c in list(self._children)],
        }

    def _child_tree(self, c: _Child) -> dict[str, Any]:
        h = c.handle
        if h is not None and h.kind == "supervisor":
            d: dict[str, Any] = h.ref.tree()
        else:
            d = {"kind": c.spec.type, "impl": h.kind if h is not None else None}
            if h is not None:
                d.update(h.info())
        d.update({
            "id": introspect.plain(self._display_id(c)),
            "kind": c.spec.type,
            "status": c.status,
            "restarts": c.restarts,
            "started_at": c.started_at,
            "restart": c.spec.restart,
            "shutdown": c.spec.shutdown,
            "name": c.spec.name,
        })
        return d

    def __repr__(self) -> str:
        return f"<Supervisor {self.id!r} {self.strategy} {self._state}>"

