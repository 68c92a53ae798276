"""Messages between callers (the API, other nodes) and a server actor, and back.

Requests to a server are the core's own events (``Command``, ``Commands``,
``LocalQuery``..., see ``raft_otp.core.events``) plus the few state calls below
that the core does not handle (overview, metrics, ping).  Answers are the value
types below; they are msgpack-able so they can travel to a caller on another
node (registered as wire types by ``raft_otp.server.wire``).

``reply_to`` is opaque to the core.  The server actor understands (see
``raft_otp.server.deliver``): a :class:`ReplySlot` (a local blocking caller), a
pykka ``ActorRef`` or ``Future``, a ``queue.Queue``, a callable, an asyncio
bridge, or a remote address ``(name, node)`` of a mailbox or actor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from raft_otp.core.types import ServerId

# ---- state calls (not core events) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class StateQuery:
    """Ask the server actor for ``what``: "overview" | "key_metrics" | "members" | "ping"."""

    reply_to: Any
    what: str


# ---- answers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallReply:
    """Answer to a blocking call: ``ok`` with ``value`` or an error ``reason`` (see
    ``raft_otp.core.effects.ErrorReason``).  ``leader`` is the best leader hint."""

    ok: bool
    value: Any
    leader: ServerId | None
    server: ServerId | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """Pipelined commands applied: ``replies`` are ``(correlation, reply)`` pairs
    (RA ``{ra_event, Leader, {applied, [{Corr, Reply}]}}``)."""

    leader: ServerId | None
    replies: list[tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class Rejected:
    """Pipelined commands refused (RA ``{rejected, {not_leader, Leader, Corr}}``)."""

    leader: ServerId | None
    correlations: list[Any]
    reason: str = "not_leader"


class ReplySlot:
    """A one-shot reply box for a blocking caller on this node (cheaper than a future):
    a lock taken at birth, released by the answer; the waiter's acquire wakes on it."""

    __slots__ = ("_lock", "_set", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False
        self.value: Any = None

    def set(self, value: Any) -> None:
        """Answer (the first answer counts; later ones are dropped)."""
        if self._set:
            return
        self.value = value
        self._set = True
        try:
            self._lock.release()
        except RuntimeError:  # a racing second answer released it first
            pass

    def wait(self, timeout: float | None) -> bool:
        """True once answered; False if ``timeout`` (seconds) passed first."""
        if self._set:
            return True
        return self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout))
