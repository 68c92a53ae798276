"""The directory of servers of one system, kept on disk (RA: ``ra_directory`` + its dets file).

One file, ``<data_dir>/directory.dat``: a journal of changes, each appended and
``fdatasync``'d before the change returns, so one start costs one small append
rather than a rewrite of every record (10,000 servers made the rewrite the
start path's largest cost).  It maps each local server's uid to what is
needed to bring it back after a node restart: its registered name, cluster
name, machine spec and the initial members it was started with.

File layout (all little-endian), version 2::

    magic "RODR" | version u16
    then records: body length u32 | crc32 u32 of body | body (msgpack)

A record's body is ``[uid, record]`` (a put: ``record`` as below) or ``[uid, nil]``
(a removal); the last record of a uid wins.  When removed or replaced records
outnumber the live ones (and there are over ``COMPACT_MIN_DEAD``), the file is
rewritten atomically (temp file, fsync, rename, fsync of the directory) with
one put per live server.

``record`` is ``[name, cluster_name, [machine_path, machine_config],
[[name, node], ...], stopped]`` (``stopped``, added later, may be absent: false).
A server stopped with ``stop_server`` is ``stopped`` and is not started again when
its node restarts, until ``restart_server``.

Version 1 (read, then rewritten as version 2 at the first change) was one
snapshot: ``magic | version u16 | crc32 u32 | body length u32 | body``, the body a
msgpack map ``{uid: record}``.

A bad magic, an unknown version or a complete record that fails its checksum
raises CorruptFile; the file is never silently ignored.  A record cut short by
the end of the file is a torn append (its change never returned): it is dropped
with a warning and the file truncated before it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import msgpack

from raft_otp.core.types import ServerId
from raft_otp.errors import CorruptFile

MAGIC = b"RODR"
VERSION = 2
FILE_HEADER = struct.Struct("<4sH")  # magic, version
RECORD_HEADER = struct.Struct("<II")  # body length, crc32 of body
V1_HEADER = struct.Struct("<4sHII")  # magic, version, crc32, body length (version 1)
HEADER = V1_HEADER  # the name version 1 had
FILE_NAME = "directory.dat"
COMPACT_MIN_DEAD = 1000  # never rewrite for fewer dead records than this

log = logging.getLogger("raft_otp.system")


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


def _pack_record(uid: str, record: ServerRecord | None) -> bytes:
    body = msgpack.packb([uid, None if record is None else record.to_wire()], use_bin_type=True)
    return RECORD_HEADER.pack(len(body), zlib.crc32(body)) + body


class Directory:
    """Thread-safe, durable uid → ServerRecord map of one system, indexed by
    server name and cluster name."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, FILE_NAME)
        self._lock = threading.Lock()
        self._records: dict[str, ServerRecord] = {}
        self._by_name: dict[str, str] = {}  # server name -> uid
        self._by_cluster: dict[str, set[str]] = {}  # cluster name -> uids
        self._dead = 0  # records in the file that a later one replaced or removed
        self._appendable = False  # the file exists as version 2: changes are appended
        for rec in self._load().values():
            self._index(rec)

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
            uid = self._by_name.get(name)
            return None if uid is None else self._records[uid]

    def by_cluster(self, cluster_name: str) -> list[ServerRecord]:
        """The local servers of ``cluster_name`` (by name)."""
        with self._lock:
            return sorted((self._records[u] for u in self._by_cluster.get(cluster_name, ())),
                          key=lambda r: r.name)

    # ---- updates (durable on return) -------------------------------------
    def put(self, record: ServerRecord) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[ServerRecord]) -> None:
        """Put every record of ``records``: one append and one sync for them all."""
        records = list(records)
        if not records:
            return
        with self._lock:
            before = [(r, self._records.get(r.uid)) for r in records]
            for rec in records:
                self._index(rec)
            try:
                self._append(b"".join(_pack_record(r.uid, r) for r in records))
            except BaseException:  # not durable: not in the directory either
                for rec, old in reversed(before):
                    self._unindex(rec)
                    self._records.pop(rec.uid, None)
                    if old is not None:
                        self._index(old)
                raise

    def remove(self, uid: str) -> ServerRecord | None:
        with self._lock:
            rec = self._records.get(uid)
            if rec is not None:
                self._append(_pack_record(uid, None))
                self._records.pop(uid)
                self._unindex(rec)
                self._dead += 2  # the put and the removal
            return rec

    # ---- indexes -----------------------------------------------------------
    def _index(self, rec: ServerRecord) -> None:
        old = self._records.get(rec.uid)
        if old is not None:
            self._unindex(old)
            self._dead += 1
        self._records[rec.uid] = rec
        self._by_name[rec.name] = rec.uid
        self._by_cluster.setdefault(rec.cluster_name, set()).add(rec.uid)

    def _unindex(self, rec: ServerRecord) -> None:
        if self._by_name.get(rec.name) == rec.uid:
            del self._by_name[rec.name]
        uids = self._by_cluster.get(rec.cluster_name)
        if uids is not None:
            uids.discard(rec.uid)
            if not uids:
                del self._by_cluster[rec.cluster_name]

    # ---- the journal ---------------------------------------------------------
    def _append(self, data: bytes) -> None:
        """Append ``data`` (whole records) and sync it; rewrite the file instead when it
        holds more dead records than live ones, or is not a version 2 file yet."""
        if not self._appendable or (self._dead > COMPACT_MIN_DEAD and self._dead > len(self._records)):
            self._rewrite()
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _rewrite(self) -> None:
        """Write every live record to a new file and put it in place (atomic, durable)."""
        data = FILE_HEADER.pack(MAGIC, VERSION) + b"".join(
            _pack_record(uid, r) for uid, r in self._records.items())
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._dead = 0
        self._appendable = True

    def _load(self) -> dict[str, ServerRecord]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        if len(data) < FILE_HEADER.size:
            raise CorruptFile(self.path, 0, "short header")
        magic, version = FILE_HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            raise CorruptFile(self.path, 0, f"bad magic {magic!r}")
        if version == 1:
            return self._load_v1(data)  # rewritten as version 2 at the first change
        if version != VERSION:
            raise CorruptFile(self.path, 4, f"unsupported version {version}")
        records, end = self._replay(data)
        if end < len(data):
            log.warning("directory %s: a torn record at offset %d (%d bytes) dropped: "
                        "its change never returned", self.path, end, len(data) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        self._appendable = True
        return records

    def _replay(self, data: bytes) -> tuple[dict[str, ServerRecord], int]:
        """The records of a version 2 file and the offset where complete records end."""
        records: dict[str, ServerRecord] = {}
        pos = FILE_HEADER.size
        while pos + RECORD_HEADER.size <= len(data):
            length, crc = RECORD_HEADER.unpack_from(data, pos)
            start = pos + RECORD_HEADER.size
            if start + length > len(data):
                break  # torn: cut short by the end of the file
            body = data[start:start + length]
            if zlib.crc32(body) != crc:
                raise CorruptFile(self.path, pos, "record checksum mismatch")
            uid, raw = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if uid in records:
                self._dead += 1
            if raw is None:
                records.pop(uid, None)
            else:
                records[uid] = ServerRecord.from_wire(uid, raw)
            pos = start + length
        return records, pos

    def _load_v1(self, data: bytes) -> dict[str, ServerRecord]:
        if len(data) < V1_HEADER.size:
            raise CorruptFile(self.path, 0, "short header")
        _magic, _version, crc, length = V1_HEADER.unpack_from(data, 0)
        body = data[V1_HEADER.size:V1_HEADER.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            raise CorruptFile(self.path, V1_HEADER.size, "checksum mismatch")
        raw = msgpack.unpackb(body, raw=False, strict_map_key=False)
        return {uid: ServerRecord.from_wire(uid, rec) for uid, rec in raw.items()}
