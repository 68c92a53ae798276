"""A registered mailbox that is not an actor (a client's reply address).

Anything registered in ``supervisors.registry`` with a ``tell`` method can be sent
to, locally or from another node.  A :class:`Mailbox` is the smallest such thing:
a thread-safe queue registered under a generated name, so a caller outside any
actor (e.g. the Raft API waiting for replies from a remote leader) can hand its
``address`` to others and block on :meth:`get`.
"""

from __future__ import annotations

import queue
import uuid
from typing import Any

from supervisors import registry

from raft_otp.errors import Timeout

__all__ = ["Mailbox"]


class Mailbox:
    """A named queue: ``send(mbox.address, msg)`` from anywhere, ``mbox.get()`` here."""

    __slots__ = ("name", "_q", "_open", "__weakref__")

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"mbox-{uuid.uuid4().hex[:16]}"
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._open = True
        registry.register(self.name, self)

    @property
    def address(self) -> tuple[str, str]:
        """``(name, node)``: where others send to reach this mailbox."""
        from raft_otp.node.runtime import node

        return (self.name, node())

    def tell(self, message: Any) -> None:
        self._q.put(message)

    def is_alive(self) -> bool:
        return self._open

    def get(self, timeout: float | None = None) -> Any:
        """The next message; raises raft_otp Timeout after ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            raise Timeout(f"no message in mailbox {self.name} within {timeout} s") from None

    def get_nowait(self) -> Any | None:
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def drain(self, max_msgs: int = 1 << 30) -> list[Any]:
        """Every queued message (up to ``max_msgs``) without blocking."""
        out: list[Any] = []
        get = self._q.get_nowait
        try:
            while len(out) < max_msgs:
                out.append(get())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self._open = False
        registry.unregister(self.name, self)

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Mailbox({self.name!r})"
