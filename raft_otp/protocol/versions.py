"""Protocol versions: which frame versions this build reads and writes, and how two
nodes agree on one (RA leans on Erlang distribution's handshake, which agrees a
protocol version and capability flags before any message flows).

A version names the frame layout *and* every message's encoding (the schema tables
of ``raft_otp.protocol.messages``).  Version history:

* 1: ``[body, HMAC-SHA256]`` in two ZeroMQ parts (no longer read);
* 2: one part, body + MAC (no longer read);
* 3: a session nonce and a counter in every frame header (issue 21).  The hello
  frame (``raft_otp.protocol.node_messages.K_HELLO``) came with it, without a
  version change: a version-3 node that predates it drops the hello as an unknown
  message kind, and is taken to speak version 3 only.

When a link opens, each side sends a hello with its ``[oldest, newest]`` range; both
then speak :func:`negotiate`'s answer, the highest version both know.  A new link
holds its messages until the peer's hello arrives (the transport's docstring says
what it falls back to for a peer that sends none).  A peer whose range
does not overlap is refused on both ends (``version_refused`` in the transport's
stats, a WARNING naming both ranges).

``SUPPORTED`` is read when a node's transport starts.  Tests pin another range by
setting it in the node's own process before starting the node (see
``tests/test_protocol_negotiation.py``); nothing in the production entry points
changes it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VersionRange", "OLDEST", "NEWEST", "SUPPORTED", "supported", "negotiate"]

OLDEST = 3   # the oldest frame version this build reads and writes
NEWEST = 3   # the newest


@dataclass(frozen=True, slots=True)
class VersionRange:
    """The inclusive range ``oldest..newest`` of protocol versions a node knows."""

    oldest: int
    newest: int

    def __post_init__(self) -> None:
        if not (type(self.oldest) is int and type(self.newest) is int  # not bool
                and 0 < self.oldest <= self.newest):
            raise ValueError(f"bad protocol version range {self.oldest!r}..{self.newest!r}")

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.oldest <= version <= self.newest

    def __str__(self) -> str:
        return f"{self.oldest}..{self.newest}"


SUPPORTED = VersionRange(OLDEST, NEWEST)


def supported() -> VersionRange:
    """The range this process announces (read once per transport)."""
    return SUPPORTED


def negotiate(ours: VersionRange, theirs: VersionRange) -> int | None:
    """The highest version both ranges hold, or None when they do not overlap."""
    newest = min(ours.newest, theirs.newest)
    return newest if newest >= max(ours.oldest, theirs.oldest) else None
