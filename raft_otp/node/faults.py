"""Fault injection between this node and chosen peers (for tests and the console).

A test harness can make the link to a peer lossy (``drop`` probability per
message), slow (``delay_ms`` per outgoing frame, order kept) or cut
(``partitioned``: nothing is sent to or accepted from that peer, heartbeats
included, so both sides' failure detectors declare the other down).  Set locally
with ``raft_otp.node.set_fault`` or remotely through the admin endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fault", "NO_FAULT"]


@dataclass(frozen=True, slots=True)
class Fault:
    """The faults applied to one peer link."""

    drop: float = 0.0
    delay_ms: float = 0.0
    partitioned: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.drop <= 1.0):
            raise ValueError(f"drop must be in [0, 1], got {self.drop}")
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {self.delay_ms}")

    @property
    def active(self) -> bool:
        return self.drop > 0 or self.delay_ms > 0 or self.partitioned

    def as_dict(self) -> dict[str, object]:
        return {"drop": self.drop, "delay_ms": self.delay_ms, "partitioned": self.partitioned}


NO_FAULT = Fault()
