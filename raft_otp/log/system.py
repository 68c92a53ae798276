"""The log infrastructure of one system data dir (RA's ``ra_log_sup`` children, without the supervisor).

:class:`LogSystem` owns the mem tables, the meta store, the segment writer and
the WAL of one data dir, plus a background worker for snapshot writes.
``start()``/``stop()`` run everything directly; the system layer can instead
place the actors under supervisors using :meth:`LogSystem.start_wal`,
:meth:`LogSystem.start_segment_writer` and :meth:`LogSystem.start_background`
(start order: background worker, segment writer, WAL; they find each other
through the mem tables).

Layout::

    <data_dir>/wal/NNNNNNNN.wal
    <data_dir>/servers/<uid>/segments/NNNNNNNN.segment
    <data_dir>/servers/<uid>/snapshots/<index>_<term>.snapshot
    <data_dir>/servers/<uid>/checkpoints/<index>_<term>.snapshot
    <data_dir>/meta/meta.log
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pykka

from raft_otp.errors import BadArgument
from raft_otp.log.disk_alarm import DEFAULT_CHECK_PERIOD_S, DEFAULT_FREE_LIMIT_BYTES, DiskAlarm
from raft_otp.log.events import DeleteSegments
from raft_otp.log.fileio import OS, FileIO
from raft_otp.log.memtable import MemTables, ServerStore
from raft_otp.log.meta import MetaStore
from raft_otp.log.segment import SegmentSet
from raft_otp.log.segment_writer import SegmentWriterActor
from raft_otp.log.server_log import Decode, Encode, ServerLog
from raft_otp.log.snapshot import DEFAULT_CHUNK_SIZE, SnapshotStore
from raft_otp.log.wal import WalActor, WalConfig

log = logging.getLogger("raft_otp.log")


@dataclass(slots=True)
class LogConfig:
    wal_sync_method: str = "datasync"
    wal_max_size_bytes: int = 256_000_000
    wal_max_batch_size: int = 8192
    wal_max_batch_bytes: int = 1 << 20
    wal_workers: int = 4
    wal_max_entries: int = 2_000_000  # entries per WAL file: bounds the mem tables
    segment_max_entries: int = 4096
    segment_cache_size: int = 2  # open segment files kept per server (1,000 servers: 2,000 fds)
    snapshot_chunk_size: int = DEFAULT_CHUNK_SIZE
    min_snapshot_interval: int = 4096
    min_checkpoint_interval: int = 16384
    meta_sync: bool = True
    # the disk alarm (raft_otp.log.disk_alarm): on below this many free bytes (0: only on ENOSPC)
    disk_free_limit_bytes: int = DEFAULT_FREE_LIMIT_BYTES
    disk_check_period_s: float = DEFAULT_CHECK_PERIOD_S
    file_io: Any = None  # the file layer (raft_otp.log.fileio.FileIO); None: plain os calls
    extra: dict[str, Any] = field(default_factory=dict)


class BackgroundWorker(pykka.ThreadingActor):
    """Runs snapshot writes off the servers' threads (RA's per-server bg worker, one per system here)."""

    def on_receive(self, message: Any) -> Any:
        if callable(message):
            message()
        return None


class LogSystem:
    """Factory and owner of one system's log infrastructure."""

    def __init__(self, data_dir: str, config: LogConfig | None = None, file_io: FileIO | None = None) -> None:
        """``file_io``: the file layer every log file goes through (else
        ``config.file_io``, else plain os calls); tests pass
        :class:`raft_otp.testing.powercut_fs.PowerCutFS`."""
        self.data_dir = os.path.abspath(data_dir)
        self.config = config or LogConfig()
        self.io: FileIO = file_io or self.config.file_io or OS
        self.wal_dir = os.path.join(self.data_dir, "wal")
        self.servers_dir = os.path.join(self.data_dir, "servers")
        self.meta_dir = os.path.join(self.data_dir, "meta")
        for d in (self.wal_dir, self.servers_dir, self.meta_dir):
            self.io.makedirs(d)
        self.mem_tables = MemTables(self.io)
        # one alarm per data dir; the segment writer finds it through the mem tables
        self.disk_alarm = DiskAlarm(self.data_dir, self.config.disk_free_limit_bytes,
                                    self.config.disk_check_period_s).start()
        self.mem_tables.disk_alarm = self.disk_alarm  # type: ignore[attr-defined]
        self.meta: MetaStore | None = None
        self.wal_ref: pykka.ActorRef[Any] | None = None
        self.segment_writer_ref: pykka.ActorRef[Any] | None = None
        self.background_ref: pykka.ActorRef[Any] | None = None
        self._logs: dict[str, ServerLog] = {}
        self.reports: list[Exception] = []
        self._lock = threading.Lock()

    # ---- pieces, separately constructible ----------------------------------------------------
    def wal_config(self) -> WalConfig:
        c = self.config
        return WalConfig(self.wal_dir, sync_method=c.wal_sync_method, max_size_bytes=c.wal_max_size_bytes,
                         max_batch_size=c.wal_max_batch_size, max_batch_bytes=c.wal_max_batch_bytes,
                         max_entries=c.wal_max_entries, workers=c.wal_workers, disk_alarm=self.disk_alarm)

    def make_segment_set(self, uid: str) -> SegmentSet:
        return SegmentSet(os.path.join(self.servers_dir, uid, "segments"), self.config.segment_max_entries,
                          self.config.segment_cache_size, self.io)

    def start_wal(self) -> "pykka.ActorRef[Any]":
        """Start a WAL actor (usable as a supervisor ``ChildSpec(start=log_system.start_wal)``)."""
        self.wal_ref = WalActor.start(self.wal_config(), self.mem_tables)
        self.wal_ref.ask("path", timeout=120)  # recovery done, file open, registered
        return self.wal_ref

    def start_segment_writer(self) -> "pykka.ActorRef[Any]":
        self.segment_writer_ref = SegmentWriterActor.start(self.mem_tables, self.servers_dir,
                                                           self.make_segment_set)
        self.segment_writer_ref.ask("sync", timeout=30)
        return self.segment_writer_ref

    def start_background(self) -> "pykka.ActorRef[Any]":
        self.background_ref = BackgroundWorker.start()
        return self.background_ref

    def open_meta(self) -> MetaStore:
        if self.meta is None:
            self.meta = MetaStore(self.meta_dir, sync=self.config.meta_sync, io=self.io)
        return self.meta

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "LogSystem":
        self.disk_alarm.start()
        self.open_meta()
        self.start_background()
        self.start_segment_writer()
        self.start_wal()
        return self

    def restart_wal(self) -> None:
        """Stop and start the WAL actor (tests; a supervisor does this on a crash)."""
        if self.wal_ref is not None and self.wal_ref.is_alive():
            self.wal_ref.stop()
        self.start_wal()

    def stop(self) -> None:
        for name in ("wal_ref", "segment_writer_ref", "background_ref"):
            ref = getattr(self, name)
            if ref is not None:
                try:
                    ref.stop(timeout=30)
                except pykka.ActorDeadError:
                    pass
                setattr(self, name, None)
        for sl in list(self._logs.values()):
            sl.close()
        self._logs.clear()
        if self.meta is not None:
            self.meta.close()
            self.meta = None
        self.disk_alarm.stop()

    def sync_segment_writer(self, timeout: float = 30.0) -> None:
        """Wait until the segment writer has processed everything queued so far."""
        sw = self.mem_tables.segment_writer
        if sw is not None:
            sw.ask("sync", timeout=timeout)

    # ---- servers -----------------------------------------------------------------------------
    def open_server_log(self, uid: str, notify: Callable[[object], None], encode: Encode | None = None,
                        decode: Decode | None = None, **opts: Any) -> ServerLog:
        if not uid or "/" in uid or uid.startswith(".") or len(uid.encode()) > 255:
            raise BadArgument(f"invalid server uid {uid!r}")
        sdir = os.path.join(self.servers_dir, uid)
        self.io.makedirs(sdir)
        st = self.mem_tables.store(uid)
        if st is None:
            st = self.mem_tables.add_store(ServerStore(uid, self.make_segment_set(uid)))
        with st.lock:
            if st.segments is None:
                st.segments = self.make_segment_set(uid)
        snaps = SnapshotStore(sdir, self.config.snapshot_chunk_size, self.io)
        sl = ServerLog(self, uid, st, snaps, notify, encode, decode,
                       min_snapshot_interval=opts.get("min_snapshot_interval", self.config.min_snapshot_interval),
                       min_checkpoint_interval=opts.get("min_checkpoint_interval",
                                                        self.config.min_checkpoint_interval))
        with self._lock:
            self._logs[uid] = sl
        return sl

    def delete_server(self, uid: str) -> None:
        """Forget a server: its files, mem table and meta (its WAL records die with their files)."""
        with self._lock:
            sl = self._logs.pop(uid, None)
        if sl is not None:
            sl.close()
        st = self.mem_tables.remove_store(uid)
        wal = self.mem_tables.wal
        if st is not None and wal is not None:
            # "log of uid is empty" record: WAL leftovers must not resurrect a new server of that uid
            wal.submit(st.uid_bytes, lambda _ev: None, 0, 1, [], True)
        self.io.rmtree(os.path.join(self.servers_dir, uid))
        if self.meta is not None:
            self.meta.delete(uid)

    # ---- used by ServerLog ----------------------------------------------------------------------
    def run_background(self, job: Callable[[], None]) -> None:
        ref = self.background_ref
        if ref is not None:
            try:
                ref.tell(job)
                return
            except pykka.ActorDeadError:
                pass
        job()  # no worker: do it inline rather than never

    def delete_segments(self, uid: str, index: int) -> None:
        sw = self.mem_tables.segment_writer
        if sw is not None:
            try:
                sw.tell(DeleteSegments(uid, index))
            except pykka.ActorDeadError:
                pass

    def report(self, exc: Exception) -> None:
        log.error("%s", exc)
        self.reports.append(exc)

    def overview(self) -> dict[str, Any]:
        wal = self.mem_tables.wal
        sw = self.mem_tables.segment_writer
        out: dict[str, Any] = {
            "disk_alarm": self.disk_alarm.overview(),
            "wal": wal.overview() if wal is not None else None,
            "segment_writer": sw.ask("overview", timeout=5) if sw is not None else None,
            "meta": self.meta.overview() if self.meta else None,
            "mem_table_entries": self.mem_tables.entry_count(),
            "recovery_damage": [str(d) for d in self.mem_tables.recovery_damage],
            "servers": {uid: sl.overview() for uid, sl in list(self._logs.items())},
        }
        return out
