"""The per-server Log interface the pure core needs (RA: the ``ra_log`` API used by ``ra_server``).

The core calls these methods directly; implementations may do I/O behind them
(``raft_otp.log.ServerLog`` sends batches to the WAL actor) or none at all
(``raft_otp.core.memlog.MemoryLog`` for the deterministic simulator).

Durability is an *event*, never a return value: ``append``/``write`` only queue
entries, and no method of this interface waits for a disk.  The log's owner
(the server's step, not the core) calls ``flush`` once per step to hand what
was queued to durable storage.  Later the implementation posts an opaque event to its owner through
the ``notify`` callback it was constructed with; the owner feeds that event back
into the core (``LogEvent``), and the core hands it to ``handle_event``, which
returns what the event means in Log terms (``Written``, ``SnapshotWritten``) or
nothing when the event was internal bookkeeping (e.g. segments flushed).

Indexes and terms are ``int``; index 0 / term 0 mean "nothing".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from raft_otp.core.types import Entry


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: everything up to and including ``index``."""

    index: int
    term: int
    cluster: Any  # msgpack-able membership description owned by the core
    machine_version: int


@dataclass(frozen=True, slots=True)
class Written:
    """Entries up to ``index`` (written at ``term``) are durable.

    Produced by ``Log.handle_event`` only for ranges still valid in the current
    log (a range superseded by an overwrite is dropped inside the log)."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class SnapshotWritten:
    """A snapshot (or promoted checkpoint) at ``meta.index`` is durable; the log below it may go."""

    meta: SnapshotMeta


LogResult = Written | SnapshotWritten

Notify = Callable[[object], None]


class Log(Protocol):
    """One Raft server's log.  Every method is called from the server's own thread."""

    # ---- reads -----------------------------------------------------------
    def last_index_term(self) -> tuple[int, int]:
        """Highest (index, term) in the log, written or not (snapshot meta if the log is empty)."""

    def last_written(self) -> tuple[int, int]:
        """Highest (index, term) known durable."""

    def first_index(self) -> int:
        """Lowest index still fetchable (``snapshot index + 1``, or 1)."""

    def fetch_term(self, index: int) -> int | None:
        """Term of ``index`` (also for the snapshot index itself), None if unknown."""

    def fetch(self, from_index: int, to_index: int) -> list[Entry]:
        """Entries ``from_index..to_index`` inclusive, clipped to what exists."""

    # ---- writes ----------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Leader path: ``entries[0][0] == last_index + 1``; contiguous."""

    def write(self, entries: Sequence[Entry]) -> None:
        """Follower path: ``entries[0][0] <= last_index + 1``.  Anything above
        ``entries[0][0] - 1`` from before is discarded and never read again,
        also after a restart.  Durability is reported later, by an event, as
        for ``append``; ``last_written`` never moves inside this call."""

    def set_last_index(self, index: int) -> None:
        """Forget the view of entries above ``index`` (they will be overwritten)."""

    def handle_event(self, event: object) -> list[LogResult]:
        """Interpret an event previously posted through ``notify``."""

    def flush(self) -> None:
        """Hand everything appended or written since the last flush to durable
        storage (as one batch), without waiting for it.  Called by the owner once
        per server step, after the step's effects; never by the core.  Cheap when
        nothing is queued."""

    # ---- snapshots ---------------------------------------------------------
    def snapshot_meta(self) -> SnapshotMeta | None:
        """Meta of the current durable snapshot, if any."""

    def update_release_cursor(self, meta: SnapshotMeta, machine_state: Any) -> None:
        """The machine no longer needs entries up to ``meta.index``: take a snapshot
        if the policy says so (asynchronously; ``SnapshotWritten`` follows)."""

    def checkpoint(self, meta: SnapshotMeta, machine_state: Any) -> None:
        """Write a checkpoint (a snapshot that does not truncate the log)."""

    def promote_checkpoint(self, index: int) -> None:
        """Promote the newest checkpoint at or below ``index`` to a snapshot."""

    def recover_snapshot(self) -> tuple[SnapshotMeta, Any] | None:
        """Load the current snapshot (meta, machine state) for recovery."""

    def snapshot_chunks(self, chunk_size: int) -> tuple[SnapshotMeta, Iterator[bytes]] | None:
        """The current snapshot's bytes in chunks, for sending to a follower."""

    def begin_snapshot_accept(self, meta: SnapshotMeta) -> None:
        """Start receiving a snapshot from a leader (discards any partial one)."""

    def accept_snapshot_chunk(self, chunk: bytes) -> None:
        """Append one received chunk.  Raises DiskFull if the disk cannot take it
        (the partial snapshot is then dropped by abort_snapshot_accept)."""

    def complete_snapshot_accept(self) -> tuple[SnapshotMeta, Any]:
        """Verify, make durable and install the received snapshot; the log is reset
        to start after it.  Returns (meta, machine state).  Raises CorruptFile."""

    def abort_snapshot_accept(self) -> None:
        """Drop a partially received snapshot."""

    # ---- misc --------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """Plain-data counters and indexes for the console."""

    def close(self) -> None:
        """Release files; pending writes stay with the WAL."""
