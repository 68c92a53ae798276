"""A temporary actor streaming one snapshot to one follower (RA: the snapshot sender process).

It keeps up to ``window`` chunks in flight: it sends chunks 1..window at once, and
each ``InstallSnapshotResult`` (routed to it by its server actor) that acknowledges
a chunk it sent lets it send as many more, so the follower writes one chunk while
the next ones are on the wire.  Chunks are still applied strictly in order: the
transport keeps the order of messages between two nodes, and the follower accepts
only the chunk it expects next (it re-acknowledges duplicates and ignores chunks
past a gap, so a lost chunk stalls the transfer instead of corrupting it).  The
follower acknowledges a chunk only once it holds every chunk up to it, so an
acknowledgement of chunk n covers 1..n.

When an acknowledgement says the follower holds the snapshot (``last_index >=
meta.index``: the answer to the last chunk once installed, or to chunk 1 when the
follower had applied that far already), it tells its server
``SnapshotSenderDone``; when no chunk is acknowledged for ``timeout_s``, or on any
error, it tells ``SnapshotSenderFailed`` (the server retries with backoff).  It
holds at most one chunk in memory (the one read ahead to know which chunk is last);
at most ``window`` more are queued in the transport.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import pykka

from raft_otp.core import events as ev
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core.types import ServerId
from raft_otp.server import _core, timers

log = logging.getLogger("raft_otp.server")

WINDOW = 8  # chunks in flight (of snapshot_chunk_size each, 1 MB by default)


class _ChunkTimeout:
    """No progress since acknowledgement ``gen`` was armed."""

    __slots__ = ("gen",)

    def __init__(self, gen: int) -> None:
        self.gen = gen


class SenderReport:
    """How a sender tells its server it is done or failed: the core event, and the
    sender's actor urn, so the server can tell a report of a sender it has since
    replaced (a retry, a newer snapshot) from one of the sender it tracks now."""

    __slots__ = ("urn", "event")

    def __init__(self, urn: str, event: "ev.SnapshotSenderDone | ev.SnapshotSenderFailed") -> None:
        self.urn = urn
        self.event = event

    def __repr__(self) -> str:
        return f"SenderReport({self.urn!r}, {self.event!r})"


class SnapshotSender(pykka.ThreadingActor):
    def __init__(self, server: pykka.ActorRef[Any], leader_id: ServerId, to: ServerId, term: int,
                 meta: SnapshotMeta, chunks: Iterator[bytes], timeout_s: float,
                 window: int = WINDOW) -> None:
        super().__init__()
        self.server = server
        self.leader_id = leader_id
        self.to = to
        self.term = term
        self.meta = meta
        self.chunks = chunks
        self.timeout_s = timeout_s
        self.window = max(1, window)
        self.num = 0          # chunks sent: 1..num
        self.acked = 0        # chunks acknowledged: 1..acked
        self.last_num = 0     # number of the last chunk once it is sent, else 0
        self.gen = 0          # progress generation, for the timeout
        self.timer: Any = None
        self.next_chunk: bytes | None = None
        self.done = False

    def on_start(self) -> None:
        try:
            self.next_chunk = next(self.chunks, None)
            self._fill()
        except Exception:
            log.exception("snapshot sender to %s failed to start", self.to)
            self._fail()
            return
        self._arm()

    def _fill(self) -> None:
        """Send chunks until ``window`` are unacknowledged or the last one is sent."""
        while not self.last_num and self.num - self.acked < self.window:
            chunk = self.next_chunk if self.next_chunk is not None else b""
            self.next_chunk = next(self.chunks, None)
            self.num += 1
            is_last = self.next_chunk is None
            if is_last:
                self.last_num = self.num
            _core.send(self.to, ev.InstallSnapshotRpc(self.term, self.leader_id, self.meta,
                                                      self.num, is_last, chunk))

    def _arm(self) -> None:
        self.gen += 1
        timers.cancel(self.timer)
        self.timer = timers.send_after(self.actor_ref, _ChunkTimeout(self.gen), self.timeout_s)

    def on_receive(self, message: Any) -> None:
        if isinstance(message, ev.InstallSnapshotResult):
            if self.done:
                return
            if message.term > self.term:
                self._fail()
            elif message.last_index > 0:
                # the follower holds a snapshot at last_index: ours once installed (the
                # answer to our last chunk), or it had all of ours already; a smaller
                # one is an earlier transfer's answer
                if message.last_index >= self.meta.index:
                    self._done()
            elif self.acked < message.chunk_num <= self.num:
                # a chunk we sent and not yet counted: it and all before it have arrived
                self.acked = message.chunk_num
                try:
                    self._fill()
                except Exception:
                    log.exception("snapshot sender to %s: reading snapshot failed", self.to)
                    self._fail()
                    return
                self._arm()
            # else: a stale or duplicate acknowledgement (e.g. of an earlier transfer)
        elif isinstance(message, _ChunkTimeout) and message.gen == self.gen and not self.done:
            log.warning("snapshot sender to %s: chunk %d not acknowledged in time", self.to, self.acked + 1)
            self._fail()

    def _done(self) -> None:
        self.done = True
        timers.cancel(self.timer)
        self.server.tell(SenderReport(self.actor_urn, ev.SnapshotSenderDone(self.to, self.meta.index)))
        self.actor_ref.stop(block=False)

    def _fail(self) -> None:
        self.done = True
        timers.cancel(self.timer)
        try:
            self.server.tell(SenderReport(self.actor_urn, ev.SnapshotSenderFailed(self.to)))
        except pykka.ActorDeadError:
            pass
        self.actor_ref.stop(block=False)

    def on_stop(self) -> None:
        timers.cancel(self.timer)
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
