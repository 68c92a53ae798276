"""Node failure detector (RA uses aten; this is its simple-threshold cousin).

Pure bookkeeping with the clock passed in, so it is tested without sleeping.  Every
connected node sends a heartbeat frame every ``interval_ms`` (any frame counts as a
heartbeat).  A peer not heard from for ``interval_ms * down_after_missed`` is
declared down; hearing from it again declares it up.  A closed TCP connection
(the peer process died) declares it down at once (``lost``), as Erlang's
net_kernel does; silence covers hangs, partitions and lost packets.  A changed ``creation`` (the
peer restarted between two heartbeats) is reported as down followed by up, so
monitors held on the old incarnation fire.

The detector discounts its own lateness: ``check`` is meant to run every
interval; when the gap since the previous check exceeds twice the interval (our
I/O thread was starved: saturated host, GC, a long GIL hold), that gap is our
stall, not the peers' silence, so every watched peer's last-heard time is moved
forward by it and those intervals never count as misses.  A peer that really is
silent is declared down after the same number of missed intervals, counted
outside stalls.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FailureDetector", "UP", "DOWN", "UNREACHABLE"]

UP = "node_up"
DOWN = "node_down"
UNREACHABLE = "unreachable"  # internal: a node we tried to reach never answered


@dataclass(slots=True)
class _Peer:
    last_heard_s: float
    creation: int | None = None  # None until first heard
    up: bool = False
    unreachable_reported: bool = False


class FailureDetector:
    """Tracks liveness of peer nodes; returns (event, node) transitions."""

    def __init__(self, interval_ms: float, down_after_missed: int) -> None:
        if interval_ms <= 0 or down_after_missed < 1:
            raise ValueError("interval_ms must be > 0 and down_after_missed >= 1")
        self.interval_s = interval_ms / 1000.0
        self.timeout_s = self.interval_s * down_after_missed
        self._peers: dict[str, _Peer] = {}
        self._last_check_s: float | None = None

    def track(self, node: str, now_s: float) -> None:
        """Start watching ``node`` (we began talking to it); it is not up until heard."""
        if node not in self._peers:
            self._peers[node] = _Peer(last_heard_s=now_s)

    def heard(self, node: str, creation: int, now_s: float) -> list[tuple[str, str]]:
        """A frame from ``node`` arrived; returns the transitions it causes."""
        peer = self._peers.get(node)
        if peer is None:
            peer = self._peers[node] = _Peer(last_heard_s=now_s)
        peer.last_heard_s = now_s
        events: list[tuple[str, str]] = []
        if peer.up and peer.creation is not None and peer.creation != creation:
            events.append((DOWN, node))
            peer.up = False
        peer.creation = creation
        if not peer.up:
            peer.up = True
            events.append((UP, node))
        return events

    def lost(self, node: str, now_s: float) -> list[tuple[str, str]]:
        """The connection to ``node`` closed (its process died): down now, as Erlang does."""
        peer = self._peers.get(node)
        if peer is None:
            return []
        peer.last_heard_s = min(peer.last_heard_s, now_s - self.timeout_s - 1e-3)
        if peer.up:
            peer.up = False
            return [(DOWN, node)]
        return []

    def check(self, now_s: float) -> list[tuple[str, str]]:
        """Declare down every up peer that has been silent too long.

        A peer never heard from is reported once as ``UNREACHABLE`` (not a node
        event: it never was up) so that monitors and calls waiting on it fail.
        A gap of more than two intervals since the previous call is our own stall:
        it is discounted (see the module docstring)."""
        prev, self._last_check_s = self._last_check_s, now_s
        if prev is not None and now_s - prev > 2 * self.interval_s:
            self._discount_stall(now_s, now_s - prev - self.interval_s)
        events: list[tuple[str, str]] = []
        for node, peer in self._peers.items():
            if now_s - peer.last_heard_s <= self.timeout_s:
                continue
            if peer.up:
                peer.up = False
                events.append((DOWN, node))
            elif peer.creation is None and not peer.unreachable_reported:
                peer.unreachable_reported = True
                events.append((UNREACHABLE, node))
        return events

    def _discount_stall(self, now_s: float, stall_s: float) -> None:
        """Shift last-heard times forward by ``stall_s`` (never past ``now_s``); peers
        already down because their connection closed (``lost``) stay down."""
        for peer in self._peers.values():
            if peer.up or peer.creation is None:
                peer.last_heard_s = min(now_s, peer.last_heard_s + stall_s)

    def silent_too_long(self, node: str, now_s: float) -> bool:
        """True if ``node`` is not up and has not answered for the timeout (never-connected too)."""
        peer = self._peers.get(node)
        if peer is None:
            return False
        return not peer.up and now_s - peer.last_heard_s > self.timeout_s

    def never_heard_for_s(self, node: str, now_s: float) -> float:
        """Seconds since tracking began for a peer never heard from (0 otherwise)."""
        peer = self._peers.get(node)
        if peer is None or peer.creation is not None:
            return 0.0
        return now_s - peer.last_heard_s

    def forget(self, node: str) -> None:
        self._peers.pop(node, None)

    def is_up(self, node: str) -> bool:
        peer = self._peers.get(node)
        return bool(peer and peer.up)

    def nodes_up(self) -> list[str]:
        return sorted(n for n, p in self._peers.items() if p.up)

    def known(self) -> list[str]:
        return sorted(self._peers)
