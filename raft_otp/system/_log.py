"""Build the log supervisor's children for one system from ``raft_otp.log.LogSystem``.

The LogSystem object owns the mem tables and the meta store (outside the log
supervisor, so they survive its restarts, as in RA).  The actors go under the
log supervisor (rest_for_one) in the order background worker, segment writer,
WAL: a WAL crash restarts the WAL alone; a segment writer crash restarts the
WAL after it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from supervisors import ChildSpec

from raft_otp.log.segment_writer import SegmentWriterActor
from raft_otp.log.system import BackgroundWorker, LogConfig, LogSystem
from raft_otp.log.wal import WalActor
from raft_otp.system.config import SystemConfig


class _Background(BackgroundWorker):
    """The system's background worker, announcing itself to its LogSystem."""

    def __init__(self, log_system: LogSystem) -> None:
        super().__init__()
        self._log_system = log_system

    def on_start(self) -> None:
        self._log_system.background_ref = self.actor_ref


@dataclass(slots=True)
class LogInfra:
    log_system: LogSystem
    child_specs: list[ChildSpec]
    wal_name: str

    def close(self) -> None:
        """After the log supervisor stopped: close server logs and the meta store."""
        self.log_system.stop()


def make(cfg: SystemConfig) -> LogInfra:
    names = {f.name for f in fields(LogConfig)}
    opts = {k: v for k, v in cfg.log_options.items() if k in names}
    extra = {k: v for k, v in cfg.log_options.items() if k not in names}
    lc = LogConfig(wal_sync_method=cfg.wal_sync_method, wal_max_size_bytes=cfg.wal_max_size_bytes,
                   wal_max_batch_size=cfg.wal_max_batch_size,
                   segment_max_entries=cfg.segment_max_entries,
                   snapshot_chunk_size=cfg.snapshot_chunk_size,
                   min_snapshot_interval=cfg.min_snapshot_interval,
                   disk_free_limit_bytes=cfg.disk_free_limit_bytes, **opts)
    lc.extra.update(extra)
    ls = LogSystem(cfg.data_dir, lc)
    ls.open_meta()
    wal_name = f"raft_otp.wal.{cfg.name}"
    specs = [
        ChildSpec.actor("background", _Background, ls),
        ChildSpec.actor("segment_writer", SegmentWriterActor, ls.mem_tables, ls.servers_dir,
                        ls.make_segment_set, shutdown=30.0),
        ChildSpec.actor("wal", WalActor, ls.wal_config(), ls.mem_tables, name=wal_name,
                        shutdown=30.0),
    ]
    return LogInfra(ls, specs, wal_name)


def delete_server_log(infra: Any, uid: str) -> None:
    infra.log_system.delete_server(uid)
