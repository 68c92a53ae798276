"""Test harness shipped with the package: a scriptable actor, an event
recorder and helpers that wait on events (never on sleeps).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any, Callable


from . import introspect
from ._watch import ThreadingActor
from .supervisor import Supervisor, SupervisorEvent

__all__ = ["Probe", "Recorder", "stop_all_roots"]

DEFAULT_TIMEOUT_S = 10.0


class Probe(ThreadingActor):
    """A (exit-watched) threading actor that logs ``('start'|'stop', tag)`` to a queue and obeys
    messages: ``'ping'`` -> ``('pong', tag)``; ``'crash'`` raises;
    ``'exit'`` stops normally; ``('block', event[, entered])`` sets ``entered`` (if
    given) and then blocks until ``event`` is set.
    """

    def __init__(self, tag: Any = None, log: queue.Queue[Any] | None = None,
                 fail_start: bool = False) -> None:
        super().__init__()
        self.tag = tag
        self.log = log
        self.fail_start = fail_start

    def on_start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.tag} refuses to start")
        if self.log is not None:
            self.log.put(("start", self.tag))

    def on_stop(self) -> None:
        if self.log is not None:
            self.log.put(("stop", self.tag))

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return ("pong", self.tag)
        if message == "crash":
            raise RuntimeError(f"{self.tag} crashed on purpose")
        if message == "exit":
            self.stop()
            return None
        if isinstance(message, tuple) and message[0] == "block":
            if len(message) > 2:
                message[2].set()
            message[1].wait(DEFAULT_TIMEOUT_S)
            return None
        return message


class Recorder:
    """Collects a supervisor's events; ``wait(kind, child_id)`` blocks until one
    matching event arrives (and consumes the events before it)."""

    def __init__(self, *sups: Supervisor) -> None:
        self.q: queue.Queue[SupervisorEvent] = queue.Queue()
        self.seen: list[SupervisorEvent] = []
        self.pending: list[SupervisorEvent] = []
        for s in sups:
            s.subscribe(self.q.put)

    def attach(self, sup: Supervisor) -> None:
        sup.subscribe(self.q.put)

    def wait(self, kind: str, child_id: Any = None, timeout: float = DEFAULT_TIMEOUT_S,
             pred: Callable[[SupervisorEvent], bool] | None = None) -> SupervisorEvent:
        """The oldest not yet returned event matching (kind, child_id, pred)."""
        def match(ev: SupervisorEvent) -> bool:
            return ev.kind == kind and (child_id is None or ev.child_id == child_id) and (
                pred is None or pred(ev))

        for i, ev in enumerate(self.pending):
            if match(ev):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                ev = self.q.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(ev)
            if match(ev):
                return ev
            self.pending.append(ev)
        raise TimeoutError(f"no {kind!r} event for {child_id!r}; saw {self.seen}")

    def idle(self) -> bool:
        """True if no event is waiting to be returned."""
        return not self.pending and self.q.empty()


def drain(q: queue.Queue[Any], n: int, timeout: float = DEFAULT_TIMEOUT_S) -> list[Any]:
    """The next ``n`` items of ``q`` (TimeoutError if they do not come)."""
    out = []
    for _ in range(n):
        try:
            out.append(q.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError(f"got only {out}") from None
    return out


def stop_all_roots(timeout: float = DEFAULT_TIMEOUT_S) -> list[Supervisor]:
    """Stop every running root supervisor; returns those that did not stop."""
    stuck = []
    for sup in introspect.roots():
        if not sup.stop(timeout):
            stuck.append(sup)
    return stuck


def sleeper(seconds: float = 60.0, ready_path: str | None = None) -> None:
    """A Python-target child for tests: optionally touch ``ready_path``, then sleep."""
    if ready_path is not None:
        with open(ready_path, "w") as f:
            f.write("ready")
    time.sleep(seconds)


def write_env(var: str, filename: str) -> None:
    """A Python-target child for tests: write ``$var`` to ``filename`` (relative to cwd)."""
    with open(filename, "w") as f:
        f.write(os.environ.get(var, ""))
