"""One server's durable log: implements :class:`raft_otp.core.log_api.Log` (RA ``ra_log``).

Appends and writes go to the server's mem table at once (immediately
readable) and wait there for :meth:`ServerLog.flush`, which the server's step
calls once, after carrying out the step's effects: everything the step added
goes to the system's WAL as one writer batch (a leader's append_entries leave
before its own WAL submit, not after).  Nothing here writes or syncs a file:
the WAL does, on its own threads, and later posts ``WalWritten`` through
``notify``; :meth:`ServerLog.handle_event` turns it into :class:`Written` after
clipping it against any overwrite submitted since (a superseded range is never
reported).  A write that overwrites (or the first write after opening or a WAL
restart, which must truncate) is submitted at once, after whatever is pending,
so the WAL sees every writer's batches in the order they were made.

Visibility rule: segments are read only below ``mem.first``; the mem table
holds everything from there to the last index.  An overwrite below the mem
table restarts the mem table at the overwrite point, which hides the older
segment entries until the segment writer shadows them with a new file.

If the WAL restarts (``WalUp``) or drops a write (``ResendRequest``), everything
after the last written index is resent as a truncating write, as RA does.
Snapshot and checkpoint files are written on the system's background worker;
the machine state is encoded on the caller's thread (it may be mutable).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import msgpack

from raft_otp.core.log_api import LogResult, SnapshotMeta, SnapshotWritten, Written
from raft_otp.core.types import Entry
from raft_otp.errors import BadArgument, CorruptFile, DiskFull
from raft_otp.log.disk_alarm import is_enospc
from raft_otp.log.events import ResendRequest, SegmentsFlushed, SnapshotDone, WalUp, WalWritten
from raft_otp.log.memtable import ServerStore
from raft_otp.log.snapshot import SNAPSHOT_FILE_RE, SnapshotStore

if TYPE_CHECKING:
    from raft_otp.log.system import LogSystem

log = logging.getLogger("raft_otp.log")

Encode = Callable[[Any], bytes]
Decode = Callable[[bytes], Any]


def _default_encode(state: Any) -> bytes:
    return msgpack.packb(state, use_bin_type=True)


def _default_decode(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


class ServerLog:
    """The Log of one server; every method runs on the server's thread."""

    def __init__(self, system: "LogSystem", uid: str, store: ServerStore, snapshots: SnapshotStore,
                 notify: Callable[[object], None], encode: Encode | None = None, decode: Decode | None = None,
                 min_snapshot_interval: int = 4096, min_checkpoint_interval: int = 16384) -> None:
        self._sys = system
        self.uid = uid
        self._uid_b = uid.encode()
        self._store = store
        self._snaps = snapshots
        self._notify = notify
        self._encode = encode or _default_encode
        self._decode = decode or _default_decode
        self.min_snapshot_interval = min_snapshot_interval
        self.min_checkpoint_interval = min_checkpoint_interval
        self._seq = 0
        self._acked_seq = -1  # highest submission seq the WAL confirmed
        self._truncs: list[tuple[int, int]] = []  # (seq, first overwritten index), pending WAL confirmation
        self._need_truncate = True
        self._pending: list[Entry] = []  # in the mem table, not yet submitted (see flush)
        self._snapshot_busy = False
        self._last_checkpoint = 0
        self.counters = {"appends": 0, "writes": 0, "entries": 0, "overwrites": 0, "resends": 0,
                         "written_events": 0, "segment_flushes": 0, "snapshots": 0, "checkpoints": 0,
                         "snapshot_installs": 0, "wal_unavailable": 0, "damage_repairs": 0}
        self.data_loss_from: int | None = None  # see report_data_loss
        self._snap_damage: CorruptFile | None = None
        self._snap_lost_index = 0  # index of a snapshot removed as damaged
        self._snap_meta = self._open_snapshot()
        self._recover()
        store.notify = notify

    # ---- recovery -------------------------------------------------------------------
    # Damage found at open is repaired here, as WAL damage is: the log keeps what is
    # provably intact up to the first damaged point and drops everything from there
    # (a Raft log has no holes), durably; the leader then sends what is missing
    # (entries, or a snapshot when its log no longer reaches that far).  A damaged
    # snapshot is removed and replaced by the newest intact checkpoint, else by none
    # (then the log must reach back to index 1).  One ERROR line and one count per
    # repair; entries this server may have acknowledged go through report_data_loss.
    def _open_snapshot(self) -> SnapshotMeta | None:
        """The current snapshot's meta, its whole file checked; a damaged one is replaced."""
        try:
            return self._snaps.verify_current()
        except CorruptFile as exc:
            self._snap_damage = exc
            m = SNAPSHOT_FILE_RE.match(os.path.basename(self._snaps.discard_current() or ""))
            self._snap_lost_index = int(m.group(1)) if m else 0
            return self._snaps.fall_back()

    def _find_damage(self, s_idx: int, cleanup: bool = True) -> tuple[int, CorruptFile] | None:
        """The first index the log cannot provide intact, with why (store lock held)."""
        st = self._store
        mem, segs = st.mem, st.segments
        base = s_idx + 1
        seg_first, seg_last = segs.first_index(), segs.last_index()
        found: list[tuple[int, CorruptFile]] = []
        if len(mem) and mem.first > max(seg_last, s_idx) + 1:
            found.append((max(seg_last, s_idx) + 1, CorruptFile(
                segs.dir, None, f"no entries {max(seg_last, s_idx) + 1}..{mem.first - 1}: "
                                f"the WAL's entries from {mem.first} do not connect")))
        top = mem.first - 1 if len(mem) else seg_last  # segments are read only below the mem table
        lo = max(base, segs.damage_from)
        if segs.damage is not None and top >= lo and segs.damage_upto >= lo:
            # a torn tail: from where it is cut; a file that does not open, or a hole:
            # where what it held (and overwrote) began is unknown, so from the snapshot on
            found.append((lo, segs.damage))
        elif top >= base and (not seg_last or seg_first > base):
            found.append((base, CorruptFile(segs.dir, None, f"no entries {base}..{seg_first - 1 if seg_last else top}")))
        elif top >= base:
            bad = segs.verify(base, top)
            if bad is not None:
                found.append(bad)
        if segs.damage is not None and not found and cleanup:
            segs.drop_from(1 << 62)  # damage in files the log no longer needs: remove them
        return min(found, key=lambda f: f[0]) if found else None

    def _repair(self, k: int, cause: CorruptFile) -> None:
        """Drop everything from ``k`` on, durably (store lock held)."""
        st = self._store
        had = max(st.mem.last, st.segments.last_index())
        st.segments.drop_from(k)
        st.mem.reset(k)
        st.generation += 1
        self._report_repair(cause, f"entries {k}..{max(had, k)} dropped, to be sent again by the leader")
        self.report_data_loss(k)

    def _report_repair(self, cause: CorruptFile, action: str) -> None:
        self.counters["damage_repairs"] += 1
        self._sys.reports.append(cause)
        log.error("%s: damaged log: %s; %s", self.uid, cause, action)

    def _check_durable_knowledge(self, last: int) -> None:
        """A log that ends below what this server durably knew it had (the meta store's
        last_applied and durable_commit, recorded as it went) lost its end: a WAL or
        segment file deleted or cut while the node was down.  Nothing else tells: the
        files are simply not there.  (What it wrote after its last meta record cannot be
        missed this way.)"""
        meta = self._sys.meta
        if meta is None:
            return
        known = max(meta.get(self.uid)[2], meta.get_fences(self.uid)[2])
        if last < known:
            self._report_repair(CorruptFile(self._store.segments.dir, None,
                                            f"the log ends at index {last}, but the server durably had "
                                            f"{known} (meta store): entries {last + 1}..{known} are "
                                            "missing (a WAL or segment file deleted or cut?)"),
                                "they will be sent again by the leader")
            self.report_data_loss(last + 1)

    def report_data_loss(self, first_lost_index: int) -> None:
        """The one call by which a repair says: entries from ``first_lost_index`` on are
        gone, and this server may have acknowledged some of them (a write reported durable
        to a leader counts towards commit).  Raft's safety assumes a server never
        forgets such an entry: if it then voted with its shorter log, a candidate
        without a committed entry could win.  So the loss is recorded in the meta store
        (``MetaStore.report_data_loss``, kept durably with the vote), and the core's
        ``data_lost`` fence (``raft_otp.core.fences``) keeps this server from voting or
        standing until it has caught up from a leader."""
        if self.data_loss_from is None or first_lost_index < self.data_loss_from:
            self.data_loss_from = first_lost_index
        if self._sys.meta is not None:
            self._sys.meta.report_data_loss(self.uid, first_lost_index)

    def _recover(self) -> None:
        st = self._store
        snap = self._snap_meta
        s_idx = snap.index if snap else 0
        repaired_at: int | None = None
        with st.lock:
            damage = self._find_damage(s_idx, cleanup=False)  # reads the whole log: once
        if damage is not None:
            # The segment writer may be moving this server's recovered WAL entries into
            # segments right now: let it finish first, or it would bring back entries
            # the repair drops.
            try:
                self._sys.sync_segment_writer()
            except Exception as exc:  # no writer, or a slow one: repair what is there
                log.warning("%s: segment writer not synced before a repair: %r", self.uid, exc)
        with st.lock:
            mem = st.mem
            segs = st.segments
            if not st.opened and not st.from_wal:
                # nothing from the WAL for this server: the log ends with its segments
                mem.reset(max(segs.last_index(), s_idx) + 1)
            if damage is not None:  # again, now that the writer is done
                damage = self._find_damage(s_idx)
            elif segs.damage is not None:
                segs.drop_from(1 << 62)  # damage in files the log no longer needs: remove them
            if damage is not None:
                repaired_at = damage[0]
                if self._snap_damage is not None:  # one report for both
                    damage = (damage[0], CorruptFile(self._snap_damage.path, self._snap_damage.offset,
                                                     f"{self._snap_damage.detail}; then {damage[1]}"))
                self._repair(*damage)
            elif self._snap_damage is not None:
                have = max(mem.last, s_idx)  # the mem table ends the log (see the reset above)
                if have < self._snap_lost_index:  # the log does not reach what it covered
                    self._report_repair(self._snap_damage, f"removed; entries {have + 1}.."
                                        f"{self._snap_lost_index} lost, to be sent again by the leader")
                    self.report_data_loss(have + 1)
                else:
                    self._report_repair(self._snap_damage, "removed; recovering from " + (
                        f"the checkpoint at index {snap.index}" if snap else "the log from index 1"))
            self._snap_damage = None
            if st.wal_lost_from is not None:  # reported by WAL recovery (one line per region)
                if st.wal_lost_from > max(mem.last, s_idx):  # not written again since
                    self.report_data_loss(st.wal_lost_from)
                st.wal_lost_from = None
            if repaired_at is None:
                self._check_durable_knowledge(max(mem.last, s_idx))
            if snap is not None:
                t = self._term_locked(s_idx)
                if t is not None and t != snap.term:
                    mem.reset(s_idx + 1)  # the log after a foreign snapshot is void
                elif mem.first <= s_idx:
                    mem.drop_upto(s_idx)
                if mem.first <= s_idx:
                    mem.reset(s_idx + 1)
            last = max(mem.last, s_idx)
            self._last_index = last
            self._last_term = self._term_locked(last) or 0
            if st.durable is None:
                durable = (last, self._last_term)  # read back from disk: all of it is durable
            else:
                d = min(st.durable[0], last, max(mem.first - 1, s_idx))
                durable = (d, self._term_locked(d) or 0)
            st.opened = True
        self._last_written = durable
        st.durable = durable
        if repaired_at is not None:
            self._submit(repaired_at, [], True)  # "empty from here" record: WAL replay keeps it so
        if durable[0] < self._last_index:
            self.resend()  # a restarted server: entries it queued may not have reached a WAL

    def _term_locked(self, index: int) -> int | None:
        snap = self._snap_meta
        if snap is not None and index == snap.index:
            return snap.term
        if index <= 0:
            return None
        e = self._store.mem.get(index)
        if e is not None:
            return e[1]
        if index < self._store.mem.first:
            return self._store.segments.term_at(index)
        return None

    # ---- reads --------------------------------------------------------------------------
    def last_index_term(self) -> tuple[int, int]:
        return self._last_index, self._last_term

    def last_written(self) -> tuple[int, int]:
        return self._last_written

    def first_index(self) -> int:
        return self._snap_meta.index + 1 if self._snap_meta else 1

    def fetch_term(self, index: int) -> int | None:
        if index == 0 and self._snap_meta is None:
            return 0  # the empty log's "previous entry", as MemoryLog answers
        if index > self._last_index:
            return None
        if self._snap_meta is not None and index < self._snap_meta.index:
            return None
        with self._store.lock:
            return self._term_locked(index)

    def fetch(self, from_index: int, to_index: int) -> list[Entry]:
        lo = max(from_index, self.first_index())
        hi = min(to_index, self._last_index)
        if hi < lo:
            return []
        st = self._store
        with st.lock:
            mfirst = st.mem.first
            if lo >= mfirst:
                return st.mem.slice(lo, hi)
            out = st.segments.read(lo, min(hi, mfirst - 1))
            if hi >= mfirst:
                out.extend(st.mem.slice(mfirst, hi))
        return out

    # ---- writes -------------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        if entries[0][0] != self._last_index + 1:
            raise BadArgument(f"{self.uid}: append at {entries[0][0]} but last index is {self._last_index}")
        self.counters["appends"] += 1
        self._put(entries)

    def write(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0][0]
        if first > self._last_index + 1 or first < self.first_index():
            raise BadArgument(f"{self.uid}: write at {first} outside {self.first_index()}..{self._last_index + 1}")
        self.counters["writes"] += 1
        self._put(entries)

    def _put(self, entries: Sequence[Entry]) -> None:
        first = entries[0][0]
        st = self._store
        with st.lock:
            overwrite = first <= st.mem.last
            st.mem.write(entries)
        if overwrite:
            self.counters["overwrites"] += 1
            if first <= self._last_written[0]:
                self._set_written(first - 1, self.fetch_term(first - 1) or 0)
        if overwrite or self._need_truncate:
            self._submit(first, entries, True)
        else:
            self._pending.extend(entries)
        last = entries[-1]
        self._last_index = last[0]
        self._last_term = last[1]
        self.counters["entries"] += len(entries)

    def flush(self) -> None:
        """Hand everything appended or written since the last flush to the WAL, as one
        writer batch.  The server's step calls it once per step, after the step's
        effects; cheap when nothing is pending."""
        pending = self._pending
        if pending:
            self._pending = []
            self._submit(pending[0][0], pending, False)

    def _submit(self, first: int, entries: Sequence[Entry], truncate: bool) -> None:
        if self._pending:
            self.flush()  # what was made before goes first: the WAL's order is the log's
        self._seq += 1
        if truncate:
            self._truncs.append((self._seq, first))
        wal = self._sys.mem_tables.wal
        if wal is not None and wal.submit(self._uid_b, self._notify, self._seq, first, entries, truncate):
            if truncate:
                self._need_truncate = False
        else:
            self.counters["wal_unavailable"] += 1
            self._need_truncate = True  # WalUp will make us resend

    def set_last_index(self, index: int) -> None:
        self.flush()
        index = max(index, self.first_index() - 1)
        if index >= self._last_index:
            return
        self._last_index = index
        self._last_term = self.fetch_term(index) or 0
        if self._last_written[0] > index:
            self._set_written(index, self._last_term)

    def _set_written(self, index: int, term: int) -> None:
        self._last_written = (index, term)
        self._store.durable = self._last_written

    def resend(self) -> list[LogResult]:
        """Resend everything after the last written index (after a WAL restart)."""
        self._pending = []  # resent below with the rest
        st = self._store
        out: list[LogResult] = []
        with st.lock:
            mfirst = st.mem.first
            lw = self._last_written[0]
            if lw < mfirst - 1 and mfirst - 1 <= self._last_index:
                # entries below the mem table are in synced segments
                t = self._term_locked(mfirst - 1) or 0
                lw = mfirst - 1
                self._set_written(lw, t)
                out.append(Written(lw, t))
            ents = st.mem.slice(lw + 1, self._last_index)
        if ents:
            self.counters["resends"] += 1
            self._submit(ents[0][0], ents, True)
        else:
            self._need_truncate = True
        return out

    # ---- events -----------------------------------------------------------------------------
    def handle_event(self, event: object) -> list[LogResult]:
        if isinstance(event, WalWritten):
            return self._on_written(event)
        if isinstance(event, (WalUp, ResendRequest)):
            return self.resend()
        if isinstance(event, SegmentsFlushed):
            self.counters["segment_flushes"] += 1
            return []
        if isinstance(event, SnapshotDone):
            return self._on_snapshot_done(event)
        return []

    def _on_written(self, ev: WalWritten) -> list[LogResult]:
        if ev.uid != self.uid or ev.seq <= self._acked_seq:
            return []  # stale: a later submission's event (covering this one) came first
        self._acked_seq = ev.seq
        idx = ev.index
        keep = []
        for seq, first in self._truncs:
            if seq > ev.seq:
                keep.append((seq, first))
                if first - 1 < idx:
                    idx = first - 1
        self._truncs = keep
        idx = min(idx, self._last_index)
        if idx <= self._last_written[0]:
            return []
        term = ev.term if (idx == ev.index and ev.term >= 0) else (self.fetch_term(idx) or 0)
        self._set_written(idx, term)
        self.counters["written_events"] += 1
        return [Written(idx, term)]

    # ---- snapshots --------------------------------------------------------------------------------
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snap_meta

    def update_release_cursor(self, meta: SnapshotMeta, machine_state: Any) -> None:
        s_idx = self._snap_meta.index if self._snap_meta else 0
        if self._snapshot_busy or meta.index <= s_idx or meta.index > self._last_index:
            return
        segs = self._store.segments
        frees_segment = bool(segs.refs) and segs.refs[0].last <= meta.index
        if meta.index - s_idx < self.min_snapshot_interval and not frees_segment:
            return
        self._background("snapshot", meta, self._encode(machine_state))

    def checkpoint(self, meta: SnapshotMeta, machine_state: Any) -> None:
        if self._snapshot_busy or meta.index - self._last_checkpoint < self.min_checkpoint_interval:
            return
        self._last_checkpoint = meta.index
        self._background("checkpoint", meta, self._encode(machine_state))

    def promote_checkpoint(self, index: int) -> None:
        if self._snapshot_busy:
            return
        self._background("promote", index, b"")

    def _background(self, kind: str, meta: Any, state: bytes) -> None:
        self._snapshot_busy = True
        snaps, notify, uid = self._snaps, self._notify, self.uid

        def job() -> None:
            try:
                if kind == "promote":
                    m = snaps.promote(meta)
                    notify(SnapshotDone(uid, kind, m, None if m else "no checkpoint to promote"))
                else:
                    snaps.write(meta, state, checkpoint=(kind == "checkpoint"))
                    notify(SnapshotDone(uid, kind, meta))
            except Exception as exc:  # reported to the server, which keeps its old snapshot
                log.exception("%s: %s write failed", uid, kind)
                notify(SnapshotDone(uid, kind, meta, repr(exc)))

        self._sys.run_background(job)

    def _on_snapshot_done(self, ev: SnapshotDone) -> list[LogResult]:
        self._snapshot_busy = False
        if ev.error is not None or ev.meta is None:
            return []
        if ev.kind == "checkpoint":
            self.counters["checkpoints"] += 1
            return []
        meta: SnapshotMeta = ev.meta
        if self._snap_meta is not None and meta.index <= self._snap_meta.index:
            return []
        self.counters["snapshots"] += 1
        log.info("%s: snapshot taken at index %d (term %d)", self.uid, meta.index, meta.term)
        self._snap_meta = meta
        with self._store.lock:
            self._store.mem.drop_upto(min(meta.index, self._store.mem.last))
        self._sys.delete_segments(self.uid, meta.index)
        return [SnapshotWritten(meta)]

    def recover_snapshot(self) -> tuple[SnapshotMeta, Any] | None:
        got = self._snaps.read_current()
        if got is None:
            return None
        meta, state = got
        return meta, self._decode(state)

    def snapshot_chunks(self, chunk_size: int) -> tuple[SnapshotMeta, Iterator[bytes]] | None:
        return self._snaps.chunks(chunk_size)

    def begin_snapshot_accept(self, meta: SnapshotMeta) -> None:
        self._snaps.begin_accept(meta)

    def accept_snapshot_chunk(self, chunk: bytes) -> None:
        try:
            self._snaps.accept_chunk(chunk)
        except OSError as exc:  # the disk: the system's alarm, and DiskFull for the core
            if not is_enospc(exc):
                raise
            alarm = getattr(self._sys, "disk_alarm", None)
            if alarm is not None:
                alarm.enospc("snapshot", exc, transient=True)
            raise DiskFull(f"{self.uid}: snapshot chunk not written: {exc}") from exc

    def complete_snapshot_accept(self) -> tuple[SnapshotMeta, Any]:
        meta, raw = self._snaps.complete_accept()
        state = self._decode(raw)
        self.counters["snapshot_installs"] += 1
        self._snap_meta = meta
        st = self._store
        with st.lock:
            st.mem.reset(meta.index + 1)
        self._pending = []  # gone with the mem table: the log restarts after the snapshot
        self._last_index, self._last_term = meta.index, meta.term
        self._set_written(meta.index, meta.term)
        self._submit(meta.index + 1, [], True)  # "empty from index + 1" record, survives recovery
        self._sys.delete_segments(self.uid, 1 << 62)
        return meta, state

    def abort_snapshot_accept(self) -> None:
        self._snaps.abort_accept()

    # ---- misc -----------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        st = self._store
        with st.lock:
            mem_first, mem_len = st.mem.first, len(st.mem)
        return dict(self.counters, uid=self.uid, last_index=self._last_index, last_term=self._last_term,
                    last_written_index=self._last_written[0], first_index=self.first_index(),
                    snapshot_index=self._snap_meta.index if self._snap_meta else 0,
                    mem_table_first=mem_first, mem_table_entries=mem_len,
                    segments=len(st.segments.refs), pending_overwrites=len(self._truncs))

    def close(self) -> None:
        """Flush what is pending to the WAL, then release the files."""
        self.flush()
        st = self._store
        if st.notify is self._notify:
            st.notify = None
        self._snaps.abort_accept()
        st.segments.close()
