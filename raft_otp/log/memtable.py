"""Mem tables: per-server entries not yet in segments, and the per-system registry (RA ``ra_mt`` + the ETS owner).

The registry (:class:`MemTables`) lives outside the WAL and segment writer
actors so that it survives their restarts, as RA's mem-table owner does.  It is
also the rendezvous point between servers and the current WAL / segment writer.

Threading: a :class:`ServerStore` is shared by its server's thread (append,
overwrite, read), the WAL thread (nothing: it never touches mem tables) and the
segment writer thread (moves a prefix to segments).  Every mutation happens
under ``store.lock``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

from raft_otp.core.types import Entry

if TYPE_CHECKING:
    from raft_otp.log.fileio import FileIO
    from raft_otp.log.segment import SegmentSet
    from raft_otp.log.wal import Wal


class MemTable:
    """Contiguous entries ``first .. first + len(entries) - 1`` of one server."""

    __slots__ = ("first", "entries")

    def __init__(self, first: int = 1) -> None:
        self.first = first
        self.entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def last(self) -> int:
        """Last index held (``first - 1`` when empty)."""
        return self.first + len(self.entries) - 1

    def write(self, entries: Sequence[Entry]) -> None:
        """Insert contiguous entries, discarding anything at or above ``entries[0]``.

        If the new entries do not connect to what is held, the table restarts at them."""
        if not entries:
            return
        i = entries[0][0]
        ents = self.entries
        if ents and self.first <= i <= self.first + len(ents):
            del ents[i - self.first :]
            ents.extend(entries)
        else:
            self.first = i
            self.entries = list(entries)

    def reset(self, first: int) -> None:
        self.first = first
        self.entries = []

    def get(self, index: int) -> Entry | None:
        k = index - self.first
        if 0 <= k < len(self.entries):
            return self.entries[k]
        return None

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index <= hi`` that are held."""
        a = max(lo - self.first, 0)
        b = hi - self.first + 1
        if b <= a:
            return []
        return self.entries[a:b]

    def drop_flushed(self, flushed: Sequence[Entry]) -> int:
        """Drop the prefix that is identical (same objects) to ``flushed``; returns count dropped."""
        if not flushed or not self.entries:
            return 0
        k = flushed[0][0] - self.first
        if k > 0:
            # entries below the flushed range are still here: only drop a prefix
            return 0
        start = -k  # position in flushed matching self.entries[0]
        n = 0
        ents = self.entries
        lim = min(len(flushed) - start, len(ents))
        while n < lim and ents[n] is flushed[start + n]:
            n += 1
        if n:
            del ents[:n]
            self.first += n
        return n

    def drop_upto(self, index: int) -> None:
        n = index - self.first + 1
        if n <= 0:
            return
        if n >= len(self.entries):
            self.reset(max(index + 1, self.first))
            return
        del self.entries[:n]
        self.first += n


class ServerStore:
    """Everything of one server that must outlive the server actor and the WAL."""

    def __init__(self, uid: str, segments: "SegmentSet") -> None:
        self.uid = uid
        self.uid_bytes = uid.encode()
        self.lock = threading.RLock()
        self.mem = MemTable()
        self.segments = segments
        self.notify: Callable[[object], None] | None = None
        # bumped whenever segments are deleted or the log is reset: an in-flight
        # segment flush planned under an older generation is discarded
        self.generation = 0
        self.deleted = False
        # highest (index, term) known durable, kept here so a restarted ServerLog
        # knows what it must resend; None: everything in the mem table is durable
        # (it was read back from WAL files)
        self.durable: tuple[int, int] | None = None
        self.from_wal = False  # WAL recovery put records (or a reset) into the mem table
        # first index WAL recovery dropped for this server because of mid-file damage
        # (it may have acknowledged those entries): the ServerLog reports the data loss
        self.wal_lost_from: int | None = None
        self.opened = False  # a ServerLog has attached since the mem table was filled


class MemTables:
    """Registry of one system: server stores, the running WAL and segment writer."""

    def __init__(self, io: "FileIO | None" = None) -> None:
        from raft_otp.log.fileio import OS
        self.io: "FileIO" = io if io is not None else OS  # the system's file layer (see fileio)
        self.lock = threading.Lock()
        self.stores: dict[str, ServerStore] = {}
        self.wal: "Wal | None" = None
        self.segment_writer: Any = None  # pykka ActorRef of the segment writer, or None
        self.pending_flushes: list[tuple[str, dict[str, tuple[int, int]]]] = []
        self.recovered = False  # WAL files were read into the mem tables once
        self.recovery_damage: list[Any] = []

    def store(self, uid: str) -> ServerStore | None:
        return self.stores.get(uid)

    def add_store(self, store: ServerStore) -> ServerStore:
        with self.lock:
            have = self.stores.get(store.uid)
            if have is not None:
                return have
            self.stores[store.uid] = store
            return store

    def remove_store(self, uid: str) -> ServerStore | None:
        with self.lock:
            st = self.stores.pop(uid, None)
        if st is not None:
            st.deleted = True
        return st

    def entry_count(self) -> int:
        return sum(len(s.mem) for s in list(self.stores.values()))

    # ---- WAL / segment writer rendezvous ----------------------------------
    def set_wal(self, wal: "Wal | None") -> None:
        """Install (or clear) the current WAL; on install every server is told to resend."""
        from raft_otp.log.events import WalUp

        with self.lock:
            self.wal = wal
            stores = list(self.stores.values())
        if wal is not None:
            for st in stores:
                n = st.notify
                if n is not None:
                    n(WalUp(wal.generation))

    def clear_wal(self, wal: "Wal") -> None:
        with self.lock:
            if self.wal is wal:
                self.wal = None

    def request_flush(self, path: str, ranges: dict[str, tuple[int, int]]) -> None:
        from raft_otp.log.events import FlushWal

        with self.lock:
            sw = self.segment_writer
            if sw is None:
                self.pending_flushes.append((path, ranges))
                return
        try:
            sw.tell(FlushWal(path, ranges))
        except Exception:  # pykka.ActorDeadError: the next segment writer picks it up
            with self.lock:
                self.pending_flushes.append((path, ranges))

    def take_pending_flushes(self) -> list[tuple[str, dict[str, tuple[int, int]]]]:
        with self.lock:
            p, self.pending_flushes = self.pending_flushes, []
        return p
