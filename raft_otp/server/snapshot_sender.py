"""A temporary actor streaming one snapshot to one follower (RA: the snapshot sender process).

It sends chunk 1, waits for the follower's ``InstallSnapshotResult`` for that
chunk (routed to it by its server actor), sends the next, and so on.  After the
last chunk's ack it tells its server ``SnapshotSenderDone``; on a timeout or
any error it tells ``SnapshotSenderFailed`` (the core retries with backoff).
It holds at most one chunk in memory.
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


class _ChunkTimeout:
    __slots__ = ("num",)

    def __init__(self, num: int) -> None:
        self.num = num


class SnapshotSender(pykka.ThreadingActor):
    def __init__(self, server: pykka.ActorRef[Any], leader_id: ServerId, to: ServerId, term: int,
                 meta: SnapshotMeta, chunks: Iterator[bytes], timeout_s: float) -> None:
        super().__init__()
        self.server = server
        self.leader_id = leader_id
        self.to = to
        self.term = term
        self.meta = meta
        self.chunks = chunks
        self.timeout_s = timeout_s
        self.num = 0
        self.timer: Any = None
        self.next_chunk: bytes | None = None
        self.done = False

    def on_start(self) -> None:
        try:
            self.next_chunk = next(self.chunks, None)
            self._send_next()
        except Exception:
            log.exception("snapshot sender to %s failed to start", self.to)
            self._fail()

    def _send_next(self) -> None:
        chunk = self.next_chunk if self.next_chunk is not None else b""
        self.next_chunk = next(self.chunks, None)
        self.num += 1
        is_last = self.next_chunk is None
        _core.send(self.to, ev.InstallSnapshotRpc(self.term, self.leader_id, self.meta,
                                                  self.num, is_last, chunk))
        timers.cancel(self.timer)
        self.timer = timers.send_after(self.actor_ref, _ChunkTimeout(self.num), self.timeout_s)

    def on_receive(self, message: Any) -> None:
        if isinstance(message, ev.InstallSnapshotResult):
            if message.chunk_num != self.num or self.done:
                return
            if message.term > self.term:
                self._fail()
            elif self.next_chunk is None:
                self.done = True
                timers.cancel(self.timer)
                self.server.tell(ev.SnapshotSenderDone(self.to, self.meta.index))
                self.actor_ref.stop(block=False)
            else:
                try:
                    self._send_next()
                except Exception:
                    log.exception("snapshot sender to %s: reading snapshot failed", self.to)
                    self._fail()
        elif isinstance(message, _ChunkTimeout) and message.num == self.num and not self.done:
            log.warning("snapshot sender to %s: chunk %d not acknowledged in time", self.to, self.num)
            self._fail()

    def _fail(self) -> None:
        self.done = True
        timers.cancel(self.timer)
        try:
            self.server.tell(ev.SnapshotSenderFailed(self.to))
        except pykka.ActorDeadError:
            pass
        self.actor_ref.stop(block=False)

    def on_stop(self) -> None:
        timers.cancel(self.timer)
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
