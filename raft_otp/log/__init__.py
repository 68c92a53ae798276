"""Durable log: WAL actor, mem tables, segment writer, segments, snapshots, meta (RA ra_log).

Entry points: :class:`LogSystem` (one per system data dir) and the
:class:`ServerLog` it opens per server (implements ``raft_otp.core.log_api.Log``).
"""

from raft_otp.log.events import ResendRequest, SegmentsFlushed, SnapshotDone, WalUp, WalWritten
from raft_otp.log.memtable import MemTable, MemTables, ServerStore
from raft_otp.log.meta import MetaStore
from raft_otp.log.segment import SegmentFile, SegmentSet
from raft_otp.log.segment_writer import SegmentWriter, SegmentWriterActor
from raft_otp.log.server_log import ServerLog
from raft_otp.log.snapshot import SnapshotStore
from raft_otp.log.system import BackgroundWorker, LogConfig, LogSystem
from raft_otp.log.wal import Wal, WalActor, WalConfig

__all__ = [
    "BackgroundWorker",
    "LogConfig",
    "LogSystem",
    "MemTable",
    "MemTables",
    "MetaStore",
    "ResendRequest",
    "SegmentFile",
    "SegmentSet",
    "SegmentWriter",
    "SegmentWriterActor",
    "SegmentsFlushed",
    "ServerLog",
    "ServerStore",
    "SnapshotDone",
    "SnapshotStore",
    "Wal",
    "WalActor",
    "WalConfig",
    "WalUp",
    "WalWritten",
]
