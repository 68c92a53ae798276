"""Segment writer: moves a rolled WAL file's entries from mem tables into segments (RA ``ra_log_segment_writer``).

For each server named in the file's ranges it copies the mem-table entries of
that range into the server's segment files, fsyncs files and directory,
publishes the segments, drops the identical prefix from the mem table (a
concurrent overwrite keeps its new entries), tells the server
(:class:`~raft_otp.log.events.SegmentsFlushed`), and finally deletes the WAL file.

It also executes segment deletions (after snapshots), so every change to a
server's segment files happens on this one thread.

A flush that fails with an ``OSError`` (ENOSPC above all) does not crash the
actor (a crash restarted the WAL after it, into a restart storm on a full
disk): the WAL file stays where it is (its entries stay in the mem tables and
in the file, so nothing is lost), the system's disk alarm is raised
(``segment_writer``), and the flush, with every flush queued after it, in
order, is retried at each alarm check until it succeeds; then the alarm source
is cleared.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import pykka

from raft_otp.log.disk_alarm import is_enospc
from raft_otp.log.events import DeleteSegments, FlushWal, SegmentsFlushed
from raft_otp.log.memtable import MemTables, ServerStore
from raft_otp.log.segment import SegmentSet

log = logging.getLogger("raft_otp.segment_writer")


class SegmentWriter:
    """The work, without the actor (callable directly in tests and recovery)."""

    def __init__(self, mem_tables: MemTables, servers_dir: str,
                 segment_factory: Callable[[str], SegmentSet]) -> None:
        self.mem_tables = mem_tables
        self.io = mem_tables.io
        self.servers_dir = servers_dir
        self.segment_factory = segment_factory
        self.counters = {"wal_files_flushed": 0, "entries_flushed": 0, "segments_written": 0,
                         "segments_deleted": 0, "skipped_servers": 0}

    def _store(self, uid: str) -> ServerStore | None:
        st = self.mem_tables.store(uid)
        if st is None or st.deleted:
            return None
        if st.segments is None:
            sdir = os.path.join(self.servers_dir, uid)
            if not self.io.isdir(sdir):
                return None  # server deleted: its WAL leftovers go with the file
            with st.lock:
                if st.segments is None:
                    st.segments = self.segment_factory(uid)
        return st

    def flush(self, path: str, ranges: dict[str, tuple[int, int]]) -> None:
        for uid, (lo, hi) in ranges.items():
            st = self._store(uid)
            if st is None:
                self.counters["skipped_servers"] += 1
                continue
            self.flush_server(st, lo, hi)
        try:
            self.io.unlink(path)
            self.io.fsync_dir(os.path.dirname(path))
        except FileNotFoundError:
            pass
        self.counters["wal_files_flushed"] += 1
        log.debug("flushed and deleted %s", path)

    def flush_server(self, st: ServerStore, lo: int, hi: int) -> None:
        with st.lock:
            ents = st.mem.slice(lo, hi)
        if not ents:
            return
        segs = st.segments
        written = segs.write_entries(ents)
        self.io.fsync_dir(segs.dir)
        with st.lock:
            segs.publish(written)
            dropped = st.mem.drop_flushed(ents)
            notify = st.notify
        self.counters["entries_flushed"] += len(ents)
        self.counters["segments_written"] += sum(1 for w in written if w[3])
        if notify is not None and dropped:
            last = ents[dropped - 1] if dropped <= len(ents) else ents[-1]
            notify(SegmentsFlushed(st.uid, last[0], last[1]))

    def delete_segments(self, uid: str, index: int) -> None:
        st = self.mem_tables.store(uid)
        if st is None or st.segments is None:
            return
        with st.lock:
            n = st.segments.delete_upto(index)
        if n:
            self.io.fsync_dir(st.segments.dir)
        self.counters["segments_deleted"] += n


class _RetryFlushes:
    """Alarm check: try the failed flushes again."""

    __slots__ = ()


class SegmentWriterActor(pykka.ThreadingActor):
    """Supervisable shell around :class:`SegmentWriter`."""

    def __init__(self, mem_tables: MemTables, servers_dir: str,
                 segment_factory: Callable[[str], SegmentSet]) -> None:
        super().__init__()
        self.writer = SegmentWriter(mem_tables, servers_dir, segment_factory)
        self.mem_tables = mem_tables
        self.alarm: Any = getattr(mem_tables, "disk_alarm", None)
        self._failed: list[FlushWal] = []  # a flush failed: these wait, in order, for a retry
        self._retry_hook: Callable[[], None] | None = None
        # registered synchronously inside start(): a WAL started right after finds us
        with mem_tables.lock:
            mem_tables.segment_writer = self.actor_ref
        for path, ranges in mem_tables.take_pending_flushes():
            self.actor_ref.tell(FlushWal(path, ranges))

    def on_stop(self) -> None:
        self._detach()

    def on_failure(self, *args: Any) -> None:
        self._detach()

    def _detach(self) -> None:
        if self._retry_hook is not None and self.alarm is not None:
            self.alarm.remove_retry(self._retry_hook)
        for m in self._failed:  # not flushed: the next segment writer does them
            self.mem_tables.request_flush(m.path, m.ranges)
        self._failed = []
        with self.mem_tables.lock:
            if self.mem_tables.segment_writer is self.actor_ref:
                self.mem_tables.segment_writer = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, FlushWal):
            if self._failed:
                self._failed.append(message)  # after the one that failed, in order
            else:
                self._flush([message])
        elif isinstance(message, _RetryFlushes):
            pending, self._failed = self._failed, []
            self._flush(pending)
        elif isinstance(message, DeleteSegments):
            self.writer.delete_segments(message.uid, message.index)
        elif message == "overview":
            return dict(self.writer.counters, flushes_waiting=len(self._failed))
        elif message == "sync":
            return True  # everything queued before this has been done
        return None

    def _flush(self, messages: list[FlushWal]) -> None:
        for k, m in enumerate(messages):
            try:
                self.writer.flush(m.path, m.ranges)
            except OSError as exc:
                self._failed = list(messages[k:])
                self.writer.counters["failed_flushes"] = self.writer.counters.get("failed_flushes", 0) + 1
                log.error("flush of %s failed: %r; kept (with %d queued after it) for a retry at the next "
                          "disk alarm check", m.path, exc, len(self._failed) - 1)
                self._wait_for_retry(exc)
                return
        if self._retry_hook is not None and self.alarm is not None:
            self.alarm.remove_retry(self._retry_hook)
            self._retry_hook = None
            self.alarm.clear("segment_writer")

    def _wait_for_retry(self, exc: OSError) -> None:
        alarm = self.alarm
        if alarm is None:  # no alarm to wait on (a bare segment writer): crash as before
            raise exc
        if is_enospc(exc):
            alarm.enospc("segment_writer", exc)
        else:
            alarm.raise_("segment_writer", f"segment flush failed: {exc}")
        if self._retry_hook is None:
            ref = self.actor_ref

            def hook() -> None:
                try:
                    ref.tell(_RetryFlushes())
                except pykka.ActorDeadError:
                    pass

            self._retry_hook = hook
            alarm.add_retry(hook)
            alarm.start()
