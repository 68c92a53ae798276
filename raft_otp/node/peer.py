"""One peer link's outgoing side: a bounded queue of encoded messages.

Any thread may append (``offer``); only the transport's I/O thread pops, builds
batch frames and owns the ZeroMQ socket.  The bound is in messages: beyond it a
message is dropped and counted, so a dead peer costs bounded memory and senders
never block (Erlang's dist buffer busy limit, minus the blocking).
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["PeerLink"]


class PeerLink:
    """Outgoing queue and socket state for one remote node."""

    __slots__ = (
        "node", "endpoint", "queue", "max_queued", "dropped", "sock", "pending",
        "delayed", "last_sent_s", "session", "counter", "prefix", "version", "hello_due",
        "awaiting_hello", "hello_sent_s", "refused",
    )

    def __init__(self, node: str, endpoint: str, max_queued: int, session: int = 0,
                 prefix: bytes = b"", version: int = 0) -> None:
        self.node = node
        self.endpoint = endpoint
        self.queue: collections.deque[bytes] = collections.deque()
        self.max_queued = max_queued
        self.dropped = 0
        self.sock: Any = None              # zmq DEALER, created by the I/O thread
        self.pending: bytes | None = None   # a frame the socket refused (EAGAIN)
        self.delayed: collections.deque[tuple[float, bytes]] = collections.deque()
        self.last_sent_s = 0.0
        self.session = session              # replay protection: this link's nonce ...
        self.counter = 0                    # ... and the number of its last frame built
        # protocol version handshake (see raft_otp.protocol.versions)
        self.prefix = prefix                # start of every body on this link (its version)
        self.version = version              # the version written on this link
        self.hello_due = False              # the peer asked for our hello (I/O thread sends)
        self.awaiting_hello = False         # our hello is out, the peer's not yet in
        self.hello_sent_s = 0.0
        self.refused = False                # no version in common: nothing is sent

    def offer(self, item: bytes) -> bool:
        """Queue one encoded message; False (and counted) if the queue is full."""
        if len(self.queue) >= self.max_queued:
            self.dropped += 1
            return False
        self.queue.append(item)
        return True

    def take(self, max_msgs: int, max_bytes: int) -> list[bytes]:
        """Pop up to ``max_msgs`` messages / about ``max_bytes`` (at least one)."""
        q = self.queue
        items: list[bytes] = []
        size = 0
        popleft = q.popleft
        while q and len(items) < max_msgs:
            item = popleft()
            items.append(item)
            size += len(item)
            if size >= max_bytes:
                break
        return items
