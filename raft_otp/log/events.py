"""Messages of the log layer: events posted to a server through ``notify`` and actor messages.

Events are opaque to the server actor: it hands them to ``ServerLog.handle_event``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WalWritten:
    """Everything ``uid`` submitted up to submission ``seq`` is durable, ending at (index, term)."""

    uid: str
    seq: int
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class WalUp:
    """A (new) WAL is running: resend everything after the last written index."""

    generation: int


@dataclass(frozen=True, slots=True)
class ResendRequest:
    """The WAL dropped a write that did not follow the previous one (gap)."""

    uid: str
    generation: int


@dataclass(frozen=True, slots=True)
class SegmentsFlushed:
    """Entries up to ``index`` (term ``term``) of ``uid`` are now in synced segment files."""

    uid: str
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class SnapshotDone:
    """A background snapshot / checkpoint write finished (``error`` set if it failed)."""

    uid: str
    kind: str  # "snapshot" | "checkpoint" | "promote"
    meta: Any
    error: str | None = None


# ---- actor messages -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FlushWal:
    """Segment writer: move the entries of a rolled WAL file into segments, then delete it."""

    path: str
    ranges: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class DeleteSegments:
    """Segment writer: delete ``uid``'s segments wholly at or below ``index``."""

    uid: str
    index: int
