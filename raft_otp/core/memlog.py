"""In-memory ``Log`` that models durability (for the simulator and unit tests).

Plays the role of RA's ``ra_log`` + WAL + snapshot store without I/O.  Every
``append``/``write``/``set_last_index`` is an operation queued "in the WAL"; the
log posts ``("written", op_id)`` through ``notify`` and the operation becomes
durable only when the owner feeds that payload back (``handle_event``).  The
owner may delay those events (they must be delivered in posting order, as a WAL
does).  Nothing becomes durable inside a call: there is no way around the
event.  ``flush`` has nothing to hand on (every operation is queued at once).  ``crash()`` throws away everything not durable, like a power cut.

Snapshots: ``update_release_cursor`` takes a snapshot when the index is at least
``min_snapshot_interval`` past the current one; it becomes durable (and the log
below it is dropped) when ``("snapshot", id)`` is handed back.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, Sequence

import msgpack

from raft_otp.core.log_api import LogResult, Notify, SnapshotMeta, SnapshotWritten, Written
from raft_otp.core.types import Entry


def _default_encode(state: Any) -> bytes:
    return msgpack.packb(state, use_bin_type=True)


def _default_decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class _Entries:
    """A contiguous run of entries starting after ``base``."""

    __slots__ = ("base", "items")

    def __init__(self, base: int, items: list[Entry] | None = None) -> None:
        self.base = base
        self.items: list[Entry] = items if items is not None else []

    def last(self) -> int:
        return self.base + len(self.items)

    def truncate_to(self, index: int) -> None:
        """Keep entries ``<= index``."""
        del self.items[max(0, index - self.base):]

    def write(self, entries: Sequence[Entry]) -> None:
        first = entries[0][0]
        if first <= self.base:
            raise AssertionError(f"write at {first} below log base {self.base}")
        if first > self.last() + 1:
            raise AssertionError(f"gap: write at {first}, last {self.last()}")
        self.truncate_to(first - 1)
        self.items.extend(entries)

    def copy(self) -> "_Entries":
        return _Entries(self.base, list(self.items))


class MemoryLog:
    """A ``raft_otp.core.log_api.Log`` kept in memory, with modelled durability."""

    def __init__(self, notify: Notify, *, min_snapshot_interval: int = 4096,
                 encode: Callable[[Any], bytes] = _default_encode,
                 decode: Callable[[bytes], Any] = _default_decode) -> None:
        self._notify = notify
        self._encode = encode
        self._decode = decode
        self.min_snapshot_interval = min_snapshot_interval
        self._cur = _Entries(0)
        self._durable = _Entries(0)
        self._ops: deque[tuple[int, int, list[Entry]]] = deque()  # (op id, first index, entries)
        self._next_op = 1
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self._pending_snapshots: dict[int, tuple[SnapshotMeta, bytes]] = {}
        self._accept: tuple[SnapshotMeta, list[bytes]] | None = None
        self.writes = 0

    # ---- reads ---------------------------------------------------------------
    def last_index_term(self) -> tuple[int, int]:
        cur = self._cur
        if cur.items:
            e = cur.items[-1]
            return e[0], e[1]
        return cur.base, self._base_term()

    def _base_term(self) -> int:
        return self._snapshot[0].term if self._snapshot is not None else 0

    def last_written(self) -> tuple[int, int]:
        idx = self._durable.last()
        for _op, first, _entries in self._ops:
            if first - 1 < idx:
                idx = first - 1
        idx = min(idx, self._cur.last())
        return idx, self.fetch_term(idx) or 0

    def first_index(self) -> int:
        return self._cur.base + 1

    def fetch_term(self, index: int) -> int | None:
        cur = self._cur
        if index == cur.base:
            return self._base_term() if index > 0 else 0
        pos = index - cur.base - 1
        if 0 <= pos < len(cur.items):
            return cur.items[pos][1]
        return None

    def fetch(self, from_index: int, to_index: int) -> list[Entry]:
        cur = self._cur
        lo = max(from_index - cur.base - 1, 0)
        hi = to_index - cur.base
        if hi <= lo:
            return []
        return cur.items[lo:hi]

    # ---- writes --------------------------------------------------------------
    def _queue(self, first: int, entries: list[Entry]) -> None:
        op = self._next_op
        self._next_op += 1
        self._ops.append((op, first, entries))
        self._notify(("written", op))

    def append(self, entries: Sequence[Entry]) -> None:
        if entries[0][0] != self._cur.last() + 1:
            raise AssertionError(f"append at {entries[0][0]} after {self._cur.last()}")
        entries = list(entries)
        self._cur.items.extend(entries)
        self.writes += 1
        self._queue(entries[0][0], entries)

    def write(self, entries: Sequence[Entry]) -> None:
        entries = list(entries)
        self._cur.write(entries)
        self.writes += 1
        self._queue(entries[0][0], entries)

    def set_last_index(self, index: int) -> None:
        if index < self._cur.last():
            self._cur.truncate_to(index)
            self._queue(index + 1, [])

    def flush(self) -> None:
        """Nothing to hand on: every operation was queued when it was made."""

    def handle_event(self, event: object) -> list[LogResult]:
        assert isinstance(event, tuple) and len(event) == 2, f"unknown log event {event!r}"
        kind: str = event[0]
        ident: int = event[1]
        if kind == "written":
            before = self.last_written()[0]
            while self._ops and self._ops[0][0] <= ident:
                _op, first, entries = self._ops.popleft()
                if first <= self._durable.base:  # below a snapshot taken meanwhile
                    entries = [e for e in entries if e[0] > self._durable.base]
                    first = self._durable.base + 1
                self._durable.truncate_to(first - 1)
                if entries:
                    self._durable.items.extend(entries)
            idx, term = self.last_written()
            return [Written(idx, term)] if idx > before else []
        if kind == "snapshot":
            pending = self._pending_snapshots.pop(ident, None)
            if pending is None:
                return []
            meta = pending[0]
            if self._snapshot is not None and self._snapshot[0].index >= meta.index:
                return []
            self._snapshot = pending
            self._drop_below(meta.index)
            return [SnapshotWritten(meta)]
        raise AssertionError(f"unknown log event {event!r}")

    def _drop_below(self, index: int) -> None:
        for run in (self._cur, self._durable):
            if index > run.base:
                del run.items[: index - run.base]
                run.base = index

    # ---- snapshots --------------------------------------------------------------
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot[0] if self._snapshot is not None else None

    def update_release_cursor(self, meta: SnapshotMeta, machine_state: Any) -> None:
        current = self._snapshot[0].index if self._snapshot is not None else 0
        if meta.index >= current + self.min_snapshot_interval:
            self._take(meta, machine_state)

    def checkpoint(self, meta: SnapshotMeta, machine_state: Any) -> None:
        self._take(meta, machine_state)  # the memory log promotes checkpoints at once

    def promote_checkpoint(self, index: int) -> None:
        pass

    def _take(self, meta: SnapshotMeta, machine_state: Any) -> None:
        op = self._next_op
        self._next_op += 1
        self._pending_snapshots[op] = (meta, self._encode(machine_state))
        self._notify(("snapshot", op))

    def recover_snapshot(self) -> tuple[SnapshotMeta, Any] | None:
        if self._snapshot is None:
            return None
        return self._snapshot[0], self._decode(self._snapshot[1])

    def snapshot_chunks(self, chunk_size: int) -> tuple[SnapshotMeta, Iterator[bytes]] | None:
        if self._snapshot is None:
            return None
        meta, data = self._snapshot
        chunks = [data[i:i + chunk_size] for i in range(0, max(len(data), 1), chunk_size)]
        return meta, iter(chunks)

    def begin_snapshot_accept(self, meta: SnapshotMeta) -> None:
        self._accept = (meta, [])

    def accept_snapshot_chunk(self, chunk: bytes) -> None:
        assert self._accept is not None, "no snapshot being accepted"
        self._accept[1].append(chunk)

    def complete_snapshot_accept(self) -> tuple[SnapshotMeta, Any]:
        assert self._accept is not None, "no snapshot being accepted"
        meta, chunks = self._accept
        self._accept = None
        data = b"".join(chunks)
        state = self._decode(data)
        self._snapshot = (meta, data)
        self._cur = _Entries(meta.index)
        self._durable = _Entries(meta.index)
        self._ops.clear()  # their written events become no-ops
        return meta, state

    def abort_snapshot_accept(self) -> None:
        self._accept = None

    # ---- misc ----------------------------------------------------------------------
    def crash(self) -> None:
        """Lose everything that was not durable (queued writes, pending snapshots)."""
        self._cur = self._durable.copy()
        self._ops.clear()
        self._pending_snapshots.clear()
        self._accept = None

    def set_notify(self, notify: Notify) -> None:
        """Re-attach after a restart (the new owner receives the events)."""
        self._notify = notify

    def overview(self) -> dict[str, Any]:
        li, lt = self.last_index_term()
        snap = self.snapshot_meta()
        return {"last_index": li, "last_term": lt, "last_written_index": self.last_written()[0],
                "first_index": self.first_index(), "snapshot_index": snap.index if snap else 0,
                "writes": self.writes}

    def close(self) -> None:
        pass
