"""A leader's snapshot transfers on a real node: one sender actor per peer, with retries.

The core asks for a transfer (``SendSnapshot``) or its end (``StopSnapshotSender``);
this component starts a temporary :class:`~raft_otp.server.snapshot_sender.SnapshotSender`
per peer, routes the peer's chunk answers to it, and turns the senders' reports
into core events.  A failed transfer is retried with backoff, or at once on the
peer's ``NodeUp`` (``raft_otp.server.snapshot_retry``); the core hears of a failure
only when there is nothing to retry.  A sender replaced since it reported is
ignored, except that its success still tells the core the peer holds the snapshot.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pykka

from raft_otp.core import effects as fx
from raft_otp.core import events as ev
from raft_otp.core.types import ServerId
from raft_otp.server.snapshot_retry import SnapshotRetries, SnapshotRetry
from raft_otp.server.snapshot_sender import SenderReport

log = logging.getLogger("raft_otp.server")

__all__ = ["SnapshotTransfers"]


class SnapshotTransfers:
    """The senders of one leader (``owner``: its actor ref)."""

    def __init__(self, owner: Any, server_id: ServerId, local_node: str, log_of: Callable[[], Any],
                 chunk_size: int, chunk_timeout_s: float, on_start: Callable[[], None]) -> None:
        self.owner = owner
        self.id = server_id
        self.log_of = log_of
        self.chunk_size = chunk_size
        self.chunk_timeout_s = chunk_timeout_s
        self.on_start = on_start
        self.senders: dict[ServerId, pykka.ActorRef[Any]] = {}
        self.retries = SnapshotRetries(owner, local_node)

    def __len__(self) -> int:
        return len(self.senders)

    def start(self, e: fx.SendSnapshot) -> None:
        from raft_otp.server.snapshot_sender import SnapshotSender
        old = self.senders.pop(e.to, None)
        if old is not None:
            old.stop(block=False)
        if not self.retries.may_start(e):
            return  # the peer's node is down or we are backing off: retried later
        chunks = self.log_of().snapshot_chunks(self.chunk_size)
        if chunks is None:
            self.owner.tell(ev.SnapshotSenderFailed(e.to))
            return
        meta, it = chunks
        self.on_start()
        self.senders[e.to] = SnapshotSender.start(self.owner, self.id, e.to, e.term, meta, it,
                                                  self.chunk_timeout_s)

    def stop(self, peer: ServerId) -> None:
        ref = self.senders.pop(peer, None)
        if ref is not None:
            ref.stop(block=False)
        self.retries.forget(peer)

    def chunk_answer(self, message: ev.InstallSnapshotResult) -> None:
        """Route a peer's answer to the sender streaming to it, if one is tracked.

        A tracked sender may have stopped already (it ends itself when done or
        failed, and its report can still be behind this answer in our mailbox):
        nothing is lost by dropping the answer then, that report follows."""
        sender = self.senders.get(message.from_id)
        if sender is None:
            return
        try:
            sender.tell(message)
        except pykka.ActorDeadError:
            log.debug("%s: %r for a snapshot sender that has ended; dropped", self.id, message)

    def report(self, message: SenderReport) -> ev.Event | None:
        """A sender's report: the core event it means, if any."""
        cur = self.senders.get(message.event.peer)
        if cur is not None and cur.actor_urn != message.urn:
            # from a sender replaced since: the current one stays tracked
            return message.event if type(message.event) is ev.SnapshotSenderDone else None
        if type(message.event) is ev.SnapshotSenderDone:
            self.senders.pop(message.event.peer, None)
            self.retries.forget(message.event.peer)
            return message.event
        if self.senders.pop(message.event.peer, None) is not None and \
                self.retries.failed(message.event.peer):
            return None  # retried with backoff: the core need not know
        return message.event

    def failed_to_start(self, message: ev.SnapshotSenderFailed) -> ev.Event | None:
        """A transfer that could not start (no snapshot to read)."""
        if self.senders.pop(message.peer, None) is not None and self.retries.failed(message.peer):
            return None
        return message

    def retry(self, message: SnapshotRetry) -> None:
        req = self.retries.fired(message)
        if req is not None:
            self.start(req)

    def node_down(self, node: str) -> None:
        for peer in [p for p in self.senders if p.node == node]:
            self.senders.pop(peer).stop(block=False)  # fail fast, not after the chunk timeout
            self.retries.failed(peer, "its node went down")

    def node_up(self, node: str) -> None:
        for req in self.retries.node_up(node):
            self.start(req)

    def close(self) -> None:
        for ref in self.senders.values():
            ref.stop(block=False)
        self.senders.clear()
        self.retries.clear()
