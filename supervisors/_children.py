"""Running children as seen by a supervisor: one handle type per kind.

A handle wraps what ``ChildSpec.start`` returned (an actor, a supervisor, an
OS process) behind one small protocol: ``ref`` (what users see),
``add_listener(fn) -> id | None`` (exit notification; None if already gone,
then ``final_reason`` holds the reason), ``shutdown(how)`` (orderly stop within
the spec's shutdown, then forced) and ``info()`` (introspection data).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pykka

from . import _watch
from ._pool import wait_event
from .osproc import OsProcess
from .spec import ProcessSpec, Shutdown

logger = logging.getLogger("supervisors")

_KILL_WAIT_S = 2.0  # after a forced stop, how long to wait for a stuck actor thread


class ActorHandle:
    kind = "actor"

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.watch = _watch.watch(ref)
        self.started_at = time.time()

    def add_listener(self, fn: Any) -> int | None:
        return self.watch.add_listener(fn)

    def remove_listener(self, lid: int) -> None:
        self.watch.remove_listener(lid)

    @property
    def final_reason(self) -> Any:
        return self.watch.final_reason

    def is_alive(self) -> bool:
        return not self.watch.exited.is_set()

    def shutdown(self, how: Shutdown) -> None:
        w = self.watch
        if how == "brutal_kill":
            _watch.kill(self.ref)
        else:
            w.set_reason("shutdown")
            try:
                self.ref.stop(block=False)
            except pykka.ActorDeadError:
                pass
            if wait_event(w.exited, None if how == "infinity" else float(how)):
                return
            logger.warning("%s did not stop within %s s; killing it", self.ref, how)
            _watch.kill(self.ref)
        if not wait_event(w.exited, _KILL_WAIT_S):
            logger.error("%s is stuck in a handler; abandoning its thread", self.ref)
            return
        t = w.thread
        if t is not None and t is not threading.current_thread():
            t.join(_KILL_WAIT_S)  # it exits right after firing the exit listeners

    def info(self) -> dict[str, Any]:
        inbox: Any = getattr(self.ref, "actor_inbox", None)
        sched = getattr(inbox, "scheduler", None)  # a ScheduledActor: runs on that pool
        return {
            "impl": "actor",
            "class": self.ref.actor_class.__name__,
            "urn": self.ref.actor_urn,
            "thread": self.watch.thread_name() or (sched.name if sched is not None else None),
            "mailbox": inbox.qsize() if hasattr(inbox, "qsize") else None,
            "alive": self.ref.is_alive() and not self.watch.exited.is_set(),
        }


class ProcessHandle:
    kind = "process"

    def __init__(self, proc: OsProcess) -> None:
        self.ref = proc
        self.started_at = proc.started_at
        self._ps: Any = None

    def add_listener(self, fn: Any) -> int | None:
        return self.ref.add_listener(fn)

    def remove_listener(self, lid: int) -> None:
        self.ref.remove_listener(lid)

    @property
    def final_reason(self) -> Any:
        return self.ref.final_reason

    def is_alive(self) -> bool:
        return self.ref.is_alive()

    def shutdown(self, how: Shutdown) -> None:
        if how == "brutal_kill":
            self.ref.kill()
            self.ref.exited.wait(5.0)
        else:
            self.ref.stop(None if how == "infinity" else float(how))
        self.ref.join_waiter(_KILL_WAIT_S)

    def info(self) -> dict[str, Any]:
        cpu = rss = None
        try:
            import psutil  # type: ignore[import-untyped]
            if self._ps is None:
                self._ps = psutil.Process(self.ref.pid)
            with self._ps.oneshot():
                cpu = float(self._ps.cpu_percent(None))
                rss = int(self._ps.memory_info().rss)
        except Exception:  # gone, zombie, no psutil: leave unknown
            pass
        spec = self.ref.spec
        return {
            "impl": "process",
            "pid": self.ref.pid,
            "cmd": list(spec.cmd) if spec.cmd is not None else None,
            "target": getattr(spec.target, "__qualname__", None),
            "cpu_percent": cpu,
            "rss_bytes": rss,
        }


class SupervisorHandle:
    kind = "supervisor"

    def __init__(self, sup: Any) -> None:
        self.ref = sup
        self.started_at = sup.started_at

    def add_listener(self, fn: Any) -> int | None:
        lid: int | None = self.ref.add_listener(fn)
        return lid

    def remove_listener(self, lid: int) -> None:
        self.ref.remove_listener(lid)

    @property
    def final_reason(self) -> Any:
        return self.ref.final_reason

    def is_alive(self) -> bool:
        return bool(self.ref.is_alive())

    def shutdown(self, how: Shutdown) -> None:
        timeout = None if how in ("infinity", "brutal_kill") else float(how)
        if self.ref.in_control_context():
            return
        if not self.ref.stop(timeout=timeout):
            logger.error("supervisor %r did not stop within %s s", self.ref.id, how)

    def info(self) -> dict[str, Any]:
        return {"impl": "supervisor"}


def make_handle(started: Any, parent: Any) -> ActorHandle | ProcessHandle | SupervisorHandle:
    """Wrap what a child's start function returned; start it if needed."""
    from .supervisor import Supervisor

    if isinstance(started, pykka.ActorRef):
        return ActorHandle(started)
    if isinstance(started, ProcessSpec):
        return ProcessHandle(OsProcess.start(started))
    if isinstance(started, OsProcess):
        return ProcessHandle(started)
    if isinstance(started, Supervisor):
        started._parent = parent
        if started.is_alive():
            from . import introspect
            introspect.remove_root(started)  # adopted: no longer a root
        else:
            started.start()
        return SupervisorHandle(started)
    raise TypeError(f"a child's start returned {started!r}; expected an ActorRef, a Supervisor "
                    "or an OS process")
