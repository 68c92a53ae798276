"""Introspection: a snapshot of every supervision tree in this process as plain
(msgpack-able) data, for the console to render.

Each supervisor contributes ``Supervisor.tree()``: id, strategy, intensity,
status, restart count, start time, thread name and its children; each child
has id, kind, impl (actor/process/supervisor), status, restarts, start time,
and per impl: thread name and mailbox length (actors), pid, CPU% and RSS
(OS processes, via psutil).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["tree_snapshot", "roots", "plain"]

_lock = threading.Lock()
_roots: list[Any] = []


def add_root(sup: Any) -> None:
    with _lock:
        if sup not in _roots:
            _roots.append(sup)


def remove_root(sup: Any) -> None:
    with _lock:
        if sup in _roots:
            _roots.remove(sup)


def roots() -> list[Any]:
    """The running root supervisors of this process, in start order."""
    with _lock:
        return list(_roots)


def plain(x: Any) -> Any:
    """``x`` if msgpack can carry it as is, else its ``str``."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, BaseException):
        return f"{type(x).__name__}: {x}"
    return str(x)


def tree_snapshot() -> dict[str, Any]:
    """Every root supervisor's tree, with the process's pid and the time taken."""
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "roots": [sup.tree() for sup in roots()],
    }
