"""The directory of servers of one system, kept on disk (RA: ``ra_directory`` + its dets file).

One file, ``<data_dir>/directory.dat``, rewritten atomically (temp file, fsync,
rename, fsync of the directory) on every change.  It maps each local server's
uid to what is needed to bring it back after a node restart: its registered
name, cluster name, machine spec and the initial members it was started with.

File layout (all little-endian)::

    magic "RODR" | version u16 | crc32 u32 of body | body length u32 | body (msgpack)

The body is a msgpack map ``{uid: [name, cluster_name, [machine_path, machine_config],
[[name, node], ...], stopped]}`` (``stopped``, added later, may be absent: false).
A server stopped with ``stop_server`` is ``stopped`` and is not started again when
its node restarts, until ``restart_server``.  A bad magic, version or checksum raises CorruptFile;
the file is never silently ignored.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

import msgpack

from raft_otp.core.types import ServerId
from raft_otp.errors import CorruptFile

MAGIC = b"RODR"
VERSION = 1
HEADER = struct.Struct("<4sHII")  # magic, version, crc32, body length
FILE_NAME = "directory.dat"


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """What the directory knows about one local server."""

    uid: str
    name: str
    cluster_name: str
    machine: tuple[str, Any]  # ("module:Class", config)
    initial_members: tuple[ServerId, ...]
    stopped: bool = False  # stopped by request: not recovered when the node restarts

    def to_wire(self) -> list[Any]:
        return [self.name, self.cluster_name, list(self.machine),
                [list(m) for m in self.initial_members], self.stopped]

    @classmethod
    def from_wire(cls, uid: str, raw: list[Any]) -> "ServerRecord":
        name, cluster_name, machine, members = raw[:4]
        stopped = bool(raw[4]) if len(raw) > 4 else False
        return cls(uid, name, cluster_name, (machine[0], machine[1]),
                   tuple(ServerId(m[0], m[1]) for m in members), stopped)


class Directory:
    """Thread-safe, durable uid → ServerRecord map of one system."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, FILE_NAME)
        self._lock = threading.Lock()
        self._records: dict[str, ServerRecord] = self._load()

    # ---- queries ---------------------------------------------------------
    def __iter__(self) -> Iterator[ServerRecord]:
        with self._lock:
            return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def get(self, uid: str) -> ServerRecord | None:
        return self._records.get(uid)

    def by_name(self, name: str) -> ServerRecord | None:
        with self._lock:
            for rec in self._records.values():
                if rec.name == name:
                    return rec
        return None

    def by_cluster(self, cluster_name: str) -> list[ServerRecord]:
        """The local servers of ``cluster_name`` (by name)."""
        with self._lock:
            return sorted((r for r in self._records.values() if r.cluster_name == cluster_name),
                          key=lambda r: r.name)

    # ---- updates (durable on return) -------------------------------------
    def put(self, record: ServerRecord) -> None:
        with self._lock:
            self._records[record.uid] = record
            self._store()

    def remove(self, uid: str) -> ServerRecord | None:
        with self._lock:
            rec = self._records.pop(uid, None)
            if rec is not None:
                self._store()
            return rec

    # ---- file format -------------------------------------------------------
    def _load(self) -> dict[str, ServerRecord]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        if len(data) < HEADER.size:
            raise CorruptFile(self.path, 0, "short header")
        magic, version, crc, length = HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            raise CorruptFile(self.path, 0, f"bad magic {magic!r}")
        if version != VERSION:
            raise CorruptFile(self.path, 4, f"unsupported version {version}")
        body = data[HEADER.size:HEADER.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            raise CorruptFile(self.path, HEADER.size, "checksum mismatch")
        raw = msgpack.unpackb(body, raw=False, strict_map_key=False)
        return {uid: ServerRecord.from_wire(uid, rec) for uid, rec in raw.items()}

    def _store(self) -> None:
        body = msgpack.packb({uid: r.to_wire() for uid, r in self._records.items()},
                             use_bin_type=True)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(HEADER.pack(MAGIC, VERSION, zlib.crc32(body), len(body)))
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
