"""Snapshots and checkpoints of one server (RA ``ra_snapshot`` / ``ra_log_snapshot``).

File (also the transfer format: a follower receives exactly these bytes)::

    SNAP_HEADER  magic b"RAOTPSNP", version u32, crc32 u32 (of everything after the header),
                 meta_len u32
    meta         msgpack [index, term, cluster, machine_version]
    state        the machine state, encoded by the server's encode callable
    blocks       (version 2) crc32 u32 of each BLOCK_SIZE block of meta + state, in order
    SNAP_TRAILER (version 2) block_size u32, block count u32, magic b"RAOTPBLK"

The header's crc decides whether a file is intact; the block crcs only say where
the damage is (a file's offset and the block's bytes), so a report points at
the damaged region instead of the start of the meta.  Version 1 files (one crc
only) are still read; their damage is located no closer than the whole body.

Writes are atomic: temp file written in chunks, fsync, rename, fsync directory.
Snapshots live in ``snapshots/``, checkpoints (snapshots that do not truncate
the log) in ``checkpoints/``; file names are ``<index:020>_<term:020>.snapshot``.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from typing import Any, Iterator

import msgpack

from raft_otp.core.log_api import SnapshotMeta
from raft_otp.errors import CorruptFile
from raft_otp.log.fileio import O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY, OS, FileIO, write_all

log = logging.getLogger("raft_otp.snapshot")

SNAP_MAGIC = b"RAOTPSNP"
SNAP_VERSION = 2  # 1: no block crcs (still read)
SNAP_HEADER = struct.Struct("<8sIII")  # magic, version, crc32, meta_len
SNAP_TRAILER = struct.Struct("<II8s")  # block_size, block count, magic
TRAILER_MAGIC = b"RAOTPBLK"
BLOCK_SIZE = 4096  # the table is 1/1024 of the body; a report names a 4 KiB region

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


def parse_header(path: str, head: bytes) -> tuple[int, int, int]:
    """(crc, meta_len, version) from the first SNAP_HEADER.size bytes."""
    if len(head) < SNAP_HEADER.size:
        raise CorruptFile(path, len(head), "snapshot shorter than its header")
    magic, version, crc, meta_len = SNAP_HEADER.unpack_from(head, 0)
    if magic != SNAP_MAGIC:
        raise CorruptFile(path, 0, f"bad snapshot magic {magic!r}")
    if version not in (1, 2):
        raise CorruptFile(path, 8, f"unsupported snapshot version {version}")
    return crc, meta_len, version


def block_crcs(bufs: Any, block_size: int = BLOCK_SIZE) -> list[int]:
    """crc32 of each ``block_size`` block of the concatenation of ``bufs`` (not joined)."""
    out: list[int] = []
    cur = fill = 0
    for b in bufs:
        mv = memoryview(b)
        i, n = 0, len(mv)
        while i < n:
            take = min(block_size - fill, n - i)
            cur = zlib.crc32(mv[i : i + take], cur)
            fill += take
            i += take
            if fill == block_size:
                out.append(cur)
                cur = fill = 0
    if fill:
        out.append(cur)
    return out


def encode_blocks(crcs: list[int], block_size: int = BLOCK_SIZE) -> bytes:
    """The version-2 tail: the block crc table and the trailer."""
    return struct.pack(f"<{len(crcs)}I", *crcs) + SNAP_TRAILER.pack(block_size, len(crcs), TRAILER_MAGIC)


def _tail_len(path: str, size: int, meta_len: int, trailer: bytes) -> tuple[int, list[int], int]:
    """Check a version-2 trailer (the last SNAP_TRAILER.size bytes of a ``size``-byte
    file): (block size, block count, tail length).  Raises CorruptFile at the trailer."""
    at = size - SNAP_TRAILER.size
    if len(trailer) != SNAP_TRAILER.size or at < SNAP_HEADER.size + meta_len:
        raise CorruptFile(path, max(at, 0), "snapshot truncated: no block trailer")
    block, n, magic = SNAP_TRAILER.unpack(trailer)
    body = at - 4 * n - SNAP_HEADER.size  # meta + state
    if magic != TRAILER_MAGIC or not block or body < meta_len or n != -(-body // block):
        raise CorruptFile(path, at, "snapshot block trailer damaged (or the file was cut)")
    return block, n, 4 * n + SNAP_TRAILER.size


def _locate(path: str, table: bytes, block: int, body: list[Any]) -> CorruptFile:
    """The whole-file crc failed: the first block whose crc differs, as a CorruptFile
    at its offset (or the table / the header's crc when every block matches)."""
    want = struct.unpack(f"<{len(table) // 4}I", table)
    got = block_crcs(body, block)
    for k, (w, g) in enumerate(zip(want, got)):
        if w != g:
            a = SNAP_HEADER.size + k * block
            return CorruptFile(path, a, f"snapshot checksum mismatch in bytes {a}..{a + block - 1} "
                                        f"(block {k} of {len(want)})")
    return CorruptFile(path, 12, "snapshot checksum mismatch: every block is intact, the header's "
                                 "crc or the block table is damaged")


def _v1_mismatch(path: str, end: int) -> CorruptFile:
    return CorruptFile(path, SNAP_HEADER.size, f"snapshot checksum mismatch somewhere in bytes "
                                               f"{SNAP_HEADER.size}..{end - 1} (a version 1 file "
                                               "has one crc)")


def write_file(path: str, meta: SnapshotMeta, state: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE,
               sync: bool = True, io: FileIO = OS) -> None:
    """Atomically write a snapshot file at ``path``."""
    mraw = encode_meta(meta)
    tail = encode_blocks(block_crcs((mraw, state)))
    crc = zlib.crc32(tail, zlib.crc32(state, zlib.crc32(mraw)))
    tmp = path + ".tmp"
    fd = io.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    try:
        write_all(io, fd, SNAP_HEADER.pack(SNAP_MAGIC, SNAP_VERSION, crc, len(mraw)) + mraw)
        mv = memoryview(state)
        for off in range(0, len(state), chunk_size):
            write_all(io, fd, mv[off : off + chunk_size])
        write_all(io, fd, tail)
        if sync:
            io.fsync(fd)
    finally:
        io.close(fd)
    io.rename(tmp, path)
    if sync:
        io.fsync_dir(os.path.dirname(path))


def read_file(path: str, chunk_size: int = DEFAULT_CHUNK_SIZE, io: FileIO = OS) -> tuple[SnapshotMeta, bytes]:
    """Read and verify a snapshot file: (meta, state bytes).  Raises CorruptFile.

    The state is read into one buffer of its size (no parts joined, no slice):
    one copy of the body in memory."""
    fd = io.open(path, O_RDONLY)
    try:
        crc, mraw, version = _read_head(path, fd, io)
        off = SNAP_HEADER.size + len(mraw)
        size = io.fsize(fd)
        tail, block = b"", 0
        if version >= 2:
            block, _n, tlen = _tail_len(path, size, len(mraw),
                                        _pread_exact(io, fd, SNAP_TRAILER.size, size - SNAP_TRAILER.size))
            tail = _pread_exact(io, fd, tlen, size - tlen)
            size -= tlen
        state = _pread_exact(io, fd, size - off, off)  # one buffer, no parts to join
    finally:
        io.close(fd)
    if zlib.crc32(tail, zlib.crc32(state, zlib.crc32(mraw))) != crc:
        if version >= 2:
            raise _locate(path, tail[: -SNAP_TRAILER.size], block, [mraw, state])
        raise _v1_mismatch(path, off + len(state))
    return decode_meta(path, mraw), state


def verify_file(path: str, chunk_size: int = DEFAULT_CHUNK_SIZE, io: FileIO = OS) -> SnapshotMeta:
    """Verify a snapshot file's checksum without holding its state: its meta.  Raises CorruptFile."""
    fd = io.open(path, O_RDONLY)
    try:
        crc, mraw, version = _read_head(path, fd, io)
        running = zlib.crc32(mraw)
        off = SNAP_HEADER.size + len(mraw)
        end = size = io.fsize(fd)
        tail, block = b"", 0
        if version >= 2:
            block, _n, tlen = _tail_len(path, size, len(mraw),
                                        _pread_exact(io, fd, SNAP_TRAILER.size, size - SNAP_TRAILER.size))
            tail = _pread_exact(io, fd, tlen, size - tlen)
            end = size - tlen
        step = max(chunk_size, 1)
        while off < end:
            b = io.pread(fd, min(step, end - off), off)
            if not b:
                break
            running = zlib.crc32(b, running)
            off += len(b)
        if zlib.crc32(tail, running) != crc:
            if version < 2:
                raise _v1_mismatch(path, end)
            body = [mraw] + [_pread_exact(io, fd, min(step, end - o), o)  # only to say where
                             for o in range(SNAP_HEADER.size + len(mraw), end, step)]
            raise _locate(path, tail[: -SNAP_TRAILER.size], block, body)
    finally:
        io.close(fd)
    return decode_meta(path, mraw)


def _read_head(path: str, fd: int, io: FileIO) -> tuple[int, bytes, int]:
    """Read a snapshot file's header and meta: (the header's crc, the raw meta, version)."""
    crc, meta_len, version = parse_header(path, _pread_exact(io, fd, SNAP_HEADER.size, 0))
    mraw = _pread_exact(io, fd, meta_len, SNAP_HEADER.size)
    if len(mraw) < meta_len:
        raise CorruptFile(path, SNAP_HEADER.size + len(mraw), "snapshot truncated inside its meta")
    return crc, mraw, version


def _pread_exact(io: FileIO, fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer only at end of file)."""
    b = io.pread(fd, max(n, 0), offset)
    if len(b) == n or not b:
        return b
    parts = [b]
    got = len(b)
    while got < n:
        more = io.pread(fd, n - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _Accept:
    """A snapshot being received: the partial file, plus what is needed to finish it
    without reading the file back: the header and meta (buffered until complete),
    the crc of everything after the header so far, and the state's chunks."""

    __slots__ = ("meta", "path", "fd", "head", "crc", "expected_crc", "meta_len", "mraw", "parts", "error",
                 "version")

    def __init__(self, meta: SnapshotMeta, path: str, fd: int) -> None:
        self.meta = meta
        self.path = path
        self.fd = fd
        self.head = b""          # what came before the header and meta were complete
        self.crc = 0             # running crc32 of everything after the header
        self.expected_crc = -1   # the header's, once parsed
        self.meta_len = -1
        self.mraw = b""
        self.parts: list[bytes] = []  # state bytes (and the version-2 tail) as received, in order
        self.error: CorruptFile | None = None
        self.version = 0

    def feed(self, chunk: bytes) -> None:
        """Account for ``chunk`` (already written to the file)."""
        if self.error is not None:
            return
        if type(chunk) is not bytes:
            chunk = bytes(chunk)  # kept until the end: must not change under us
        if self.meta_len >= 0:
            self.crc = zlib.crc32(chunk, self.crc)
            self.parts.append(chunk)
            return
        data = self.head + chunk if self.head else chunk
        if len(data) < SNAP_HEADER.size:
            self.head = data
            return
        try:
            crc, meta_len, self.version = parse_header(self.path, data[:SNAP_HEADER.size])
        except CorruptFile as exc:
            self.error = exc  # reported by complete_accept, as a damaged body is
            self.head = b""
            return
        end = SNAP_HEADER.size + meta_len
        if len(data) < end:
            self.head = data
            return
        self.head = b""
        self.expected_crc, self.meta_len = crc, meta_len
        self.mraw = data[SNAP_HEADER.size:end]
        self.crc = zlib.crc32(self.mraw)
        if len(data) > end:
            rest = data[end:]
            self.crc = zlib.crc32(rest, self.crc)
            self.parts.append(rest)

    def finish(self) -> tuple[SnapshotMeta, bytes]:
        """Verify what was received: (meta, state).  Raises CorruptFile."""
        if self.error is not None:
            raise self.error
        if self.meta_len < 0:
            if len(self.head) < SNAP_HEADER.size:
                raise CorruptFile(self.path, len(self.head), "snapshot shorter than its header")
            raise CorruptFile(self.path, len(self.head), "snapshot truncated inside its meta")
        parts, self.parts = self.parts, []
        tail = b""
        if self.version >= 2:
            size = SNAP_HEADER.size + self.meta_len + sum(map(len, parts))
            block, _n, tlen = _tail_len(self.path, size, self.meta_len, _cut_tail(parts, SNAP_TRAILER.size,
                                                                                 keep=True))
            tail = _cut_tail(parts, tlen)
        if self.crc != self.expected_crc:
            if self.version >= 2:
                raise _locate(self.path, tail[: -SNAP_TRAILER.size], block, [self.mraw, *parts])
            raise _v1_mismatch(self.path, SNAP_HEADER.size + self.meta_len + sum(map(len, parts)))
        meta = decode_meta(self.path, self.mraw)
        return meta, parts[0] if len(parts) == 1 else b"".join(parts)


def _cut_tail(parts: list[bytes], n: int, keep: bool = False) -> bytes:
    """The last ``n`` bytes of ``parts`` (fewer if there are not that many); removed from
    ``parts`` unless ``keep``, copying only the last parts involved."""
    got: list[bytes] = []
    need = n
    k = len(parts)
    while need > 0 and k > 0:
        k -= 1
        p = parts[k]
        if len(p) <= need:
            got.append(p)
            need -= len(p)
        else:
            got.append(p[len(p) - need:])
            if not keep:
                parts[k] = p[: len(p) - need]
            need = 0
            k += 1  # this part stays (shortened)
    if not keep:
        del parts[k:]
    return b"".join(reversed(got))


class _Fsync:
    """fsync and close ``fd`` on a thread of its own; :meth:`wait` for it."""

    __slots__ = ("fd", "io", "error", "thread")

    def __init__(self, fd: int, io: FileIO) -> None:
        self.fd = fd
        self.io = io
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="snapshot-fsync", daemon=True)
        try:
            self.thread.start()
        except BaseException:  # no thread to be had: do it here
            self._run()
            self.thread = None  # type: ignore[assignment]

    def _run(self) -> None:
        try:
            self.io.fsync(self.fd)
        except BaseException as exc:
            self.error = exc
        finally:
            try:
                self.io.close(self.fd)
            except OSError as exc:
                self.error = self.error or exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error


class SnapshotStore:
    """The snapshot and checkpoint files of one server directory."""

    def __init__(self, server_dir: str, chunk_size: int = DEFAULT_CHUNK_SIZE, io: FileIO = OS) -> None:
        self.io = io
        self.snap_dir = os.path.join(server_dir, "snapshots")
        self.ckpt_dir = os.path.join(server_dir, "checkpoints")
        self.chunk_size = chunk_size
        io.makedirs(self.snap_dir)
        io.makedirs(self.ckpt_dir)
        self._accept: _Accept | None = None
        for d in (self.snap_dir, self.ckpt_dir):
            for name in io.listdir(d):
                if name.endswith(".tmp") or name.endswith(".partial"):
                    io.unlink(os.path.join(d, name))

    def _list(self, d: str) -> list[tuple[int, int, str]]:
        out = []
        for name in self.io.listdir(d):
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
        fd = self.io.open(p, O_RDONLY)
        try:
            _crc, meta_len, _v = parse_header(p, _pread_exact(self.io, fd, SNAP_HEADER.size, 0))
            raw = _pread_exact(self.io, fd, meta_len, SNAP_HEADER.size)
        finally:
            self.io.close(fd)
        if len(raw) != meta_len:
            raise CorruptFile(p, SNAP_HEADER.size + len(raw), "snapshot truncated inside its meta")
        return decode_meta(p, raw)

    def verify_current(self) -> SnapshotMeta | None:
        """Meta of the newest snapshot after checking its whole file (streamed, bounded
        memory), or None.  Raises CorruptFile naming the file."""
        p = self.current_path()
        return verify_file(p, self.chunk_size, self.io) if p else None

    def discard_current(self) -> str | None:
        """Repair: remove the newest snapshot (found damaged); its path."""
        p = self.current_path()
        if p is not None:
            self.io.unlink(p)
            self.io.fsync_dir(self.snap_dir)
        return p

    def fall_back(self) -> SnapshotMeta | None:
        """Repair, after the snapshot was discarded: the newest checkpoint that verifies
        becomes the snapshot (damaged ones are removed); its meta, or None."""
        for _i, _t, p in reversed(self._list(self.ckpt_dir)):
            try:
                meta = verify_file(p, self.chunk_size, self.io)
            except CorruptFile as exc:
                log.warning("checkpoint %s is damaged too, removed: %s", p, exc)
                self.io.unlink(p)
                continue
            self.io.rename(p, os.path.join(self.snap_dir, os.path.basename(p)))
            self.io.fsync_dir(self.snap_dir)
            self.io.fsync_dir(self.ckpt_dir)
            self._after_new_snapshot(meta.index)
            return meta
        self.io.fsync_dir(self.ckpt_dir)
        return None

    def read_current(self) -> tuple[SnapshotMeta, bytes] | None:
        p = self.current_path()
        return read_file(p, self.chunk_size, self.io) if p else None

    def write(self, meta: SnapshotMeta, state: bytes, checkpoint: bool = False) -> str:
        d = self.ckpt_dir if checkpoint else self.snap_dir
        path = os.path.join(d, file_name(meta))
        write_file(path, meta, state, self.chunk_size, io=self.io)
        if checkpoint:
            for _i, _t, p in self._list(self.ckpt_dir)[:-MAX_CHECKPOINTS]:
                self.io.unlink(p)
        else:
            self._after_new_snapshot(meta.index)
        return path

    def _after_new_snapshot(self, index: int) -> None:
        for i, _t, p in self._list(self.snap_dir)[:-1]:
            self.io.unlink(p)
        for i, _t, p in self._list(self.ckpt_dir):
            if i <= index:
                self.io.unlink(p)

    def promote(self, index: int) -> SnapshotMeta | None:
        """Move the newest checkpoint at or below ``index`` into ``snapshots/``."""
        cands = [c for c in self._list(self.ckpt_dir) if c[0] <= index]
        if not cands:
            return None
        i, t, p = cands[-1]
        meta = verify_file(p, self.chunk_size, self.io)  # verify before promoting
        cur = self.current_meta()
        if cur is not None and cur.index >= meta.index:
            return None
        dst = os.path.join(self.snap_dir, os.path.basename(p))
        self.io.rename(p, dst)
        self.io.fsync_dir(self.snap_dir)
        self.io.fsync_dir(self.ckpt_dir)
        self._after_new_snapshot(meta.index)
        return meta

    def chunks(self, chunk_size: int) -> tuple[SnapshotMeta, Iterator[bytes]] | None:
        p = self.current_path()
        if p is None:
            return None
        meta = self.current_meta()
        assert meta is not None

        io = self.io

        def gen() -> Iterator[bytes]:
            fd = io.open(p, O_RDONLY)
            try:
                off = 0
                while True:
                    b = io.pread(fd, chunk_size, off)
                    if not b:
                        return
                    off += len(b)
                    yield b
            finally:
                io.close(fd)

        return meta, gen()

    # ---- receiving ------------------------------------------------------------------------
    # Chunks are written to ``<name>.partial`` as they arrive and kept in memory with a
    # running crc, so completing needs no read back: fsync, check the crc and meta,
    # rename.  A transfer that does not complete leaves nothing behind (the partial
    # file is removed on abort, on a failed check, and when the store is opened).
    def begin_accept(self, meta: SnapshotMeta) -> None:
        self.abort_accept()
        path = os.path.join(self.snap_dir, file_name(meta) + ".partial")
        fd = self.io.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        self._accept = _Accept(meta, path, fd)

    def accept_chunk(self, chunk: bytes) -> None:
        acc = self._accept
        if acc is None or acc.fd < 0:
            raise RuntimeError("accept_snapshot_chunk without begin_snapshot_accept")
        write_all(self.io, acc.fd, chunk)
        acc.feed(chunk)

    def complete_accept(self) -> tuple[SnapshotMeta, bytes]:
        acc = self._accept
        if acc is None or acc.fd < 0:
            raise RuntimeError("complete_snapshot_accept without begin_snapshot_accept")
        self._accept = None
        partial = acc.path
        # The fsync (waiting for the disk) runs beside the check and the joining of the
        # state (CPU): a large state takes as long to join as to sync.
        sync = _Fsync(acc.fd, self.io)
        acc.fd = -1
        try:
            try:
                meta, state = acc.finish()
            finally:
                sync.wait()  # raises what fsync raised; the fd is closed either way
            expected = acc.meta
            if (meta.index, meta.term) != (expected.index, expected.term):
                raise CorruptFile(partial, None, f"received snapshot is {meta.index}/{meta.term}, "
                                                 f"announced {expected.index}/{expected.term}")
        except BaseException:
            self.io.unlink(partial)
            raise
        final = partial[: -len(".partial")]
        self.io.rename(partial, final)
        self.io.fsync_dir(self.snap_dir)
        self._after_new_snapshot(meta.index)
        return meta, state

    def abort_accept(self) -> None:
        acc, self._accept = self._accept, None
        if acc is None:
            return
        if acc.fd >= 0:
            self.io.close(acc.fd)
            acc.fd = -1
        if self.io.exists(acc.path):
            self.io.unlink(acc.path)
