"""Retries of snapshot transfers, owned by the leader's server actor (RA: the snapshot
sender's failure handling plus ``ra_server_proc``'s node-up restart).

A transfer to a peer whose node the failure detector has declared down fails fast:
no sender is started (and a running one is stopped on ``NodeDown``) instead of
waiting out the chunk timeout (``receive_snapshot_timeout_ms``, 30 s).  Each failure
schedules a retry after ``min(5 s * 2^(n-1), 60 s)`` (n = failures in a row); a
``NodeUp`` of the peer's node restarts it at once.  Throughout, the core still sees
the transfer in progress (its own watchdog, ``snapshot_sender_timeout_ticks``,
stays the last resort); success (``SnapshotSenderDone``) or ``StopSnapshotSender``
forgets the peer.
"""

from __future__ import annotations

import logging
from typing import Any

from raft_otp.core import effects as fx
from raft_otp.core.types import ServerId
from raft_otp.server import _core, timers

log = logging.getLogger("raft_otp.server")

BASE_S = 5.0
MAX_S = 60.0


def backoff_s(failures: int) -> float:
    return min(BASE_S * 2 ** (max(failures, 1) - 1), MAX_S)


class SnapshotRetry:
    """Timer message: retry the transfer to ``peer`` (generation ``gen``)."""

    __slots__ = ("peer", "gen")

    def __init__(self, peer: ServerId, gen: int) -> None:
        self.peer = peer
        self.gen = gen


class _Peer:
    __slots__ = ("request", "failures", "timer", "gen")

    def __init__(self, request: fx.SendSnapshot) -> None:
        self.request = request
        self.failures = 0
        self.timer: Any = None
        self.gen = 0


class SnapshotRetries:
    def __init__(self, owner: Any, local_node: str) -> None:
        self.owner = owner
        self.local_node = local_node
        self.peers: dict[ServerId, _Peer] = {}

    def _up(self, node: str) -> bool:
        # Not "heard from lately": a new member's node is often one we never talked
        # to, and nothing else goes to it while its snapshot is pending; starting
        # the sender opens the link (waiting for a NodeUp cost an election timeout)
        return node == self.local_node or not _core.node_known_down(node)

    def may_start(self, e: fx.SendSnapshot) -> bool:
        """Whether to start a sender for ``e`` now (else it is kept for a retry)."""
        p = self.peers.get(e.to)
        if p is None:
            p = self.peers[e.to] = _Peer(e)
        p.request = e
        if p.timer is not None:
            return False  # backing off: the timer or the peer's NodeUp starts it
        if not self._up(e.to.node):
            self.failed(e.to, "its node is down")
            return False
        return True

    def failed(self, peer: ServerId, why: str = "the sender failed") -> bool:
        """A transfer to ``peer`` failed: schedule its retry.  False if nothing to retry."""
        p = self.peers.get(peer)
        if p is None:
            return False
        p.failures += 1
        delay = backoff_s(p.failures)
        timers.cancel(p.timer)
        p.gen += 1
        p.timer = timers.send_after(self.owner, SnapshotRetry(peer, p.gen), delay)
        log.warning("snapshot to %s failed (%s, %d in a row): retry in %.0f s or on its node_up",
                    peer, why, p.failures, delay)
        return True

    def fired(self, msg: SnapshotRetry) -> fx.SendSnapshot | None:
        p = self.peers.get(msg.peer)
        if p is None or msg.gen != p.gen or p.timer is None:
            return None
        p.timer = None
        return p.request

    def node_up(self, node: str) -> list[fx.SendSnapshot]:
        """Transfers waiting for ``node``: restart them now."""
        out = []
        for peer, p in self.peers.items():
            if peer.node == node and p.timer is not None:
                timers.cancel(p.timer)
                p.timer = None
                p.gen += 1
                out.append(p.request)
        return out

    def forget(self, peer: ServerId) -> None:
        p = self.peers.pop(peer, None)
        if p is not None:
            timers.cancel(p.timer)

    def clear(self) -> None:
        for p in self.peers.values():
            timers.cancel(p.timer)
        self.peers.clear()
