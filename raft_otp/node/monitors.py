"""Remote monitors (Erlang's monitor/2 across nodes).

Two tables per node:

* ``watching``: monitors this node placed on actors of other nodes
  (monitor id -> watcher).  A DOWN frame from the target's node, or that node
  being declared down (reason ``'noconnection'``), delivers one
  ``supervisors.Down`` to the watcher and forgets the entry.
* ``held``: monitors other nodes placed on our actors ((node, id) -> local
  ``supervisors.MonitorRef``).  When the actor exits, a DOWN frame is queued to
  the watching node.  When that node goes down, its monitors are removed.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import supervisors

__all__ = ["RemoteMonitorRef", "RemoteMonitors", "deliver"]

logger = logging.getLogger("raft_otp.node")


@dataclass(frozen=True, slots=True)
class RemoteMonitorRef:
    """Identifies a monitor on a remote actor; pass it to ``demonitor_remote``."""

    id: int
    target: tuple[str, str] = field(compare=False)


def deliver(watcher: Any, message: Any) -> None:
    """Give ``message`` to an actor ref / mailbox (tell) or a callable; never raises."""
    try:
        tell = getattr(watcher, "tell", None)
        if tell is not None:
            tell(message)
        else:
            watcher(message)
    except Exception:
        logger.debug("could not deliver %r to %r", message, watcher, exc_info=True)


class RemoteMonitors:
    """Both monitor tables of one node (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(random.getrandbits(40))
        self._watching: dict[int, tuple[RemoteMonitorRef, Any]] = {}
        self._held: dict[tuple[str, int], Any] = {}

    # watcher side --------------------------------------------------------------------
    def add_watch(self, target: tuple[str, str], watcher: Any) -> RemoteMonitorRef:
        mref = RemoteMonitorRef(next(self._ids), (target[0], target[1]))
        with self._lock:
            self._watching[mref.id] = (mref, watcher)
        return mref

    def remove_watch(self, mref: RemoteMonitorRef) -> bool:
        with self._lock:
            return self._watching.pop(mref.id, None) is not None

    def fire(self, monitor_id: int, reason: Any) -> None:
        """A DOWN for ``monitor_id`` arrived (or is synthesised)."""
        with self._lock:
            entry = self._watching.pop(monitor_id, None)
        if entry is not None:
            mref, watcher = entry
            deliver(watcher, supervisors.Down(mref, mref.target, reason))  # type: ignore[arg-type]

    def node_down(self, node: str) -> None:
        """Fire 'noconnection' for every watch on ``node``; drop monitors it held here."""
        with self._lock:
            ids = [i for i, (m, _) in self._watching.items() if m.target[1] == node]
            held = [k for k in self._held if k[0] == node]
            local = [self._held.pop(k) for k in held]
        for i in ids:
            self.fire(i, "noconnection")
        for lref in local:
            supervisors.demonitor(lref)

    # target side ---------------------------------------------------------------------
    def hold(self, node: str, monitor_id: int, local_mref: Any) -> None:
        with self._lock:
            self._held[(node, monitor_id)] = local_mref

    def release(self, node: str, monitor_id: int) -> Any | None:
        with self._lock:
            return self._held.pop((node, monitor_id), None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"watching": len(self._watching), "held": len(self._held)}
