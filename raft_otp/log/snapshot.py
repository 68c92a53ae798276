"""Snapshots and checkpoints of one server (RA ``ra_snapshot`` / ``ra_log_snapshot``).

File (also the transfer format: a follower receives exactly these bytes)::

    SNAP_HEADER  magic b"RAOTPSNP", version u32, crc32 u32 (of everything after the header),
                 meta_len u32
    meta         msgpack [index, term, cluster, machine_version]
    state        the machine state, encoded by the server's encode callable

Writes are atomic: temp file written in chunks, fsync, rename, fsync directory.
Snapshots live in ``snapshots/``, checkpoints (snapshots that do not truncate
the log) in ``checkpoints/``; file names are ``<index:020>_<term:020>.snapshot``.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from typing import Any, Iterator

import msgpack

from raft_otp.core.log_api import SnapshotMeta
from raft_otp.errors import CorruptFile
from raft_otp.log.wal import fsync_dir

log = logging.getLogger("raft_otp.snapshot")

SNAP_MAGIC = b"RAOTPSNP"
SNAP_VERSION = 1
SNAP_HEADER = struct.Struct("<8sIII")  # magic, version, crc32, meta_len

SNAPSHOT_FILE_RE = re.compile(r"^(\d{20})_(\d{20})\.snapshot$")
DEFAULT_CHUNK_SIZE = 1_000_000
MAX_CHECKPOINTS = 10


def encode_meta(meta: SnapshotMeta) -> bytes:
    return msgpack.packb([meta.index, meta.term, meta.cluster, meta.machine_version], use_bin_type=True)


def decode_meta(path: str, raw: bytes) -> SnapshotMeta:
    try:
        idx, term, cluster, mv = msgpack.unpackb(raw, raw=False, use_list=True)
    except Exception as exc:  # msgpack raises several types
        raise CorruptFile(path, SNAP_HEADER.size, f"undecodable snapshot meta: {exc}") from exc
    return SnapshotMeta(idx, term, cluster, mv)


def file_name(meta: SnapshotMeta) -> str:
    return f"{meta.index:020d}_{meta.term:020d}.snapshot"


def parse_header(path: str, head: bytes) -> tuple[int, int]:
    """(crc, meta_len) from the first SNAP_HEADER.size bytes."""
    if len(head) < SNAP_HEADER.size:
        raise CorruptFile(path, len(head), "snapshot shorter than its header")
    magic, version, crc, meta_len = SNAP_HEADER.unpack_from(head, 0)
    if magic != SNAP_MAGIC:
        raise CorruptFile(path, 0, f"bad snapshot magic {magic!r}")
    if version != SNAP_VERSION:
        raise CorruptFile(path, 8, f"unsupported snapshot version {version}")
    return crc, meta_len


def write_file(path: str, meta: SnapshotMeta, state: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE,
               sync: bool = True) -> None:
    """Atomically write a snapshot file at ``path``."""
    mraw = encode_meta(meta)
    crc = zlib.crc32(state, zlib.crc32(mraw))
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, SNAP_HEADER.pack(SNAP_MAGIC, SNAP_VERSION, crc, len(mraw)) + mraw)
        mv = memoryview(state)
        for off in range(0, len(state), chunk_size):
            part = mv[off : off + chunk_size]
            done = 0
            while done < len(part):
                done += os.write(fd, part[done:])
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if sync:
        fsync_dir(os.path.dirname(path))


def read_file(path: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[SnapshotMeta, bytes]:
    """Read and verify a snapshot file: (meta, state bytes).  Raises CorruptFile."""
    with open(path, "rb") as f:
        crc, meta_len = parse_header(path, f.read(SNAP_HEADER.size))
        parts = []
        while True:
            b = f.read(chunk_size)
            if not b:
                break
            parts.append(b)
    body = b"".join(parts)
    if len(body) < meta_len:
        raise CorruptFile(path, SNAP_HEADER.size + len(body), "snapshot truncated inside its meta")
    if zlib.crc32(body) != crc:
        raise CorruptFile(path, SNAP_HEADER.size, "snapshot checksum mismatch")
    meta = decode_meta(path, body[:meta_len])
    return meta, body[meta_len:]


class SnapshotStore:
    """The snapshot and checkpoint files of one server directory."""

    def __init__(self, server_dir: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.snap_dir = os.path.join(server_dir, "snapshots")
        self.ckpt_dir = os.path.join(server_dir, "checkpoints")
        self.chunk_size = chunk_size
        os.makedirs(self.snap_dir, exist_ok=True)
        os.makedirs(self.ckpt_dir, exist_ok=True)
        self._accept_fd = -1
        self._accept_meta: SnapshotMeta | None = None
        self._accept_path = ""
        for d in (self.snap_dir, self.ckpt_dir):
            for name in os.listdir(d):
                if name.endswith(".tmp") or name.endswith(".partial"):
                    os.unlink(os.path.join(d, name))

    @staticmethod
    def _list(d: str) -> list[tuple[int, int, str]]:
        out = []
        for name in os.listdir(d):
            m = SNAPSHOT_FILE_RE.match(name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), os.path.join(d, name)))
        out.sort()
        return out

    def current_path(self) -> str | None:
        files = self._list(self.snap_dir)
        return files[-1][2] if files else None

    def current_meta(self) -> SnapshotMeta | None:
        """Meta of the newest snapshot (header and meta checked, body not read)."""
        p = self.current_path()
        if p is None:
            return None
        with open(p, "rb") as f:
            _crc, meta_len = parse_header(p, f.read(SNAP_HEADER.size))
            raw = f.read(meta_len)
        if len(raw) != meta_len:
            raise CorruptFile(p, SNAP_HEADER.size + len(raw), "snapshot truncated inside its meta")
        return decode_meta(p, raw)

    def read_current(self) -> tuple[SnapshotMeta, bytes] | None:
        p = self.current_path()
        return read_file(p, self.chunk_size) if p else None

    def write(self, meta: SnapshotMeta, state: bytes, checkpoint: bool = False) -> str:
        d = self.ckpt_dir if checkpoint else self.snap_dir
        path = os.path.join(d, file_name(meta))
        write_file(path, meta, state, self.chunk_size)
        if checkpoint:
            for _i, _t, p in self._list(self.ckpt_dir)[:-MAX_CHECKPOINTS]:
                os.unlink(p)
        else:
            self._after_new_snapshot(meta.index)
        return path

    def _after_new_snapshot(self, index: int) -> None:
        for i, _t, p in self._list(self.snap_dir)[:-1]:
            os.unlink(p)
        for i, _t, p in self._list(self.ckpt_dir):
            if i <= index:
                os.unlink(p)

    def promote(self, index: int) -> SnapshotMeta | None:
        """Move the newest checkpoint at or below ``index`` into ``snapshots/``."""
        cands = [c for c in self._list(self.ckpt_dir) if c[0] <= index]
        if not cands:
            return None
        i, t, p = cands[-1]
        meta, _state = read_file(p, self.chunk_size)  # verify before promoting
        cur = self.current_meta()
        if cur is not None and cur.index >= meta.index:
            return None
        dst = os.path.join(self.snap_dir, os.path.basename(p))
        os.rename(p, dst)
        fsync_dir(self.snap_dir)
        fsync_dir(self.ckpt_dir)
        self._after_new_snapshot(meta.index)
        return meta

    def chunks(self, chunk_size: int) -> tuple[SnapshotMeta, Iterator[bytes]] | None:
        p = self.current_path()
        if p is None:
            return None
        meta = self.current_meta()
        assert meta is not None

        def gen() -> Iterator[bytes]:
            with open(p, "rb") as f:
                while True:
                    b = f.read(chunk_size)
                    if not b:
                        return
                    yield b

        return meta, gen()

    # ---- receiving ------------------------------------------------------------------------
    def begin_accept(self, meta: SnapshotMeta) -> None:
        self.abort_accept()
        self._accept_meta = meta
        self._accept_path = os.path.join(self.snap_dir, file_name(meta) + ".partial")
        self._accept_fd = os.open(self._accept_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def accept_chunk(self, chunk: bytes) -> None:
        if self._accept_fd < 0:
            raise RuntimeError("accept_snapshot_chunk without begin_snapshot_accept")
        mv = memoryview(chunk)
        done = 0
        while done < len(chunk):
            done += os.write(self._accept_fd, mv[done:])

    def complete_accept(self) -> tuple[SnapshotMeta, bytes]:
        if self._accept_fd < 0 or self._accept_meta is None:
            raise RuntimeError("complete_snapshot_accept without begin_snapshot_accept")
        expected = self._accept_meta
        os.fsync(self._accept_fd)
        os.close(self._accept_fd)
        self._accept_fd = -1
        partial = self._accept_path
        try:
            meta, state = read_file(partial, self.chunk_size)
        except CorruptFile:
            os.unlink(partial)
            raise
        if (meta.index, meta.term) != (expected.index, expected.term):
            os.unlink(partial)
            raise CorruptFile(partial, None, f"received snapshot is {meta.index}/{meta.term}, "
                                             f"announced {expected.index}/{expected.term}")
        final = partial[: -len(".partial")]
        os.rename(partial, final)
        fsync_dir(self.snap_dir)
        self._after_new_snapshot(meta.index)
        self._accept_meta = None
        return meta, state

    def abort_accept(self) -> None:
        if self._accept_fd >= 0:
            os.close(self._accept_fd)
            self._accept_fd = -1
        if self._accept_path and os.path.exists(self._accept_path):
            os.unlink(self._accept_path)
        self._accept_path = ""
        self._accept_meta = None
