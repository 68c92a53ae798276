"""Backups of a cluster's machine state, and restores into a new cluster (etcdctl's
``snapshot save`` / ``snapshot restore``): ``raft-otp backup`` / ``raft-otp restore``.

**Consistent.**  ``backup`` first runs a *consistent query* (the leader answers
after a heartbeat quorum confirms it still leads, with every entry committed by
then applied), so the backup holds every write acknowledged before it began.
Then it reads the state from that same leader with a *leader query* bracketed by
two reads of the leader's ``last_applied`` and term: the leader's actor handles
its messages in order and ``last_applied`` only grows, so when both reads agree
(and the same leader answered) the state is exactly the state at that applied
index, a committed prefix of the log; otherwise a write moved it and the bracket
is tried again (``attempts``; a new leader confirms itself first).  The bracket
is three round trips to the leader, without a heartbeat round inside it, so that
writes rarely land in it.  Why not the leader's snapshot file: it exists only for
machines that emit ``ReleaseCursor``, can lag the log by up to
``min_snapshot_interval`` entries, and sits on the leader's disk, not where the
operator runs the command.  The state travels as the wire carries it (msgpack
values), which is what any machine's state is when queried from another node.

**File layout** (version 1), big-endian::

    _PREFIX: magic "RAOTPBAK" | version u16 | header length u32 | body length u64
             | sha256 of header + body (32 bytes)
    header:  msgpack map: format, cluster, machine, machine_config, index, term,
             leader, members, created_ms, body_sha256
    body:    msgpack of the machine state

Every check on read is an explicit raise of ``CorruptFile`` (magic, version,
lengths, checksum, header shape); nothing from a damaged file is used.

**Restore.**  ``restore`` starts a new cluster whose machine is ``Restored``: it
wraps the backed-up machine (imported by its path on each node) and starts from
the backup's state instead of ``init``; every other call goes to the wrapped
machine.  The state travels in the new cluster's start request and stays in its
server records (each member replays from it), so restores suit states of up to
tens of MiB.  A backup of a restored cluster records the wrapped machine, so it
restores the same way.
"""

from __future__ import annotations

import copy
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from raft_otp.core.machine import ApplyMeta, Machine
from raft_otp.errors import BadArgument, CorruptFile, RaftError, Timeout

__all__ = ["FORMAT_VERSION", "MAGIC", "BackupInfo", "Restored", "RESTORED_MACHINE", "applied_mark", "backup",
           "read_backup", "restore"]

MAGIC = b"RAOTPBAK"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">8sHIQ32s")
MAX_HEADER_BYTES = 1 << 20
RESTORED_MACHINE = "raft_otp.system.backup:Restored"
STATE_QUERY = "raft_otp.system.queries:state"
APPLIED_MARK = "raft_otp.system.backup:applied_mark"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup file's header."""

    cluster: str
    machine: str                 # "module:Class" of the backed-up machine
    machine_config: Any          # its config when known (a restored cluster's), else None
    index: int                   # the leader's last_applied the state is at
    term: int                    # the leader's term when it answered
    leader: tuple[str, str]
    members: list[Any]
    created_ms: int
    body_sha256: str
    body_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "machine": self.machine,
                "machine_config": self.machine_config, "index": self.index, "term": self.term,
                "leader": list(self.leader), "members": self.members,
                "created_ms": self.created_ms, "body_sha256": self.body_sha256,
                "body_bytes": self.body_bytes}


# ---- backup --------------------------------------------------------------------------

def backup(server_id: Any, out: str, *, timeout: float = 30.0, attempts: int = 50
           ) -> BackupInfo:
    """Write the machine state of ``server_id``'s cluster, consistent at one applied index
    (see the module docstring), to ``out`` (written to a temporary file, synced, then
    renamed).  ``Timeout`` if writes kept moving the index for ``attempts`` tries."""
    from raft_otp import api
    from raft_otp.core.types import ServerId
    if attempts < 1:
        raise BadArgument(f"attempts must be >= 1, got {attempts!r}")
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.5, deadline - time.monotonic())

    leader: Any = None
    for _ in range(attempts):
        if leader is None:  # the leader confirms it leads, after the backup began
            _, by = api.consistent_query(server_id, APPLIED_MARK, timeout=left())
            leader = ServerId(*by) if by is not None else None
            if leader is None:
                continue
        before = api.key_metrics(leader, timeout=left())
        state, by = api.leader_query(leader, STATE_QUERY, timeout=left())
        after = api.key_metrics(leader, timeout=left())
        if by is None or ServerId(*by) != leader or before["term"] != after["term"]:
            leader = None  # another leader: it confirms itself first
        elif before["last_applied"] == after["last_applied"]:
            ov = api.member_overview(leader, timeout=left())
            return _write(out, ov, state, after["last_applied"], after["term"], leader)
        if time.monotonic() > deadline:
            break
    raise Timeout(f"backup of {server_id}: the applied index kept moving ({attempts} tries); "
                  "try again when the cluster is less busy")


def applied_mark(machine_state: Any) -> None:
    """The consistent query a backup starts with (its answer is not used)."""
    return None


def _write(out: str, ov: dict[str, Any], state: Any, index: int, term: int,
           leader: Any) -> BackupInfo:
    machine, machine_config = ov.get("machine"), None
    restored = (ov.get("machine_overview") or {}) if machine == RESTORED_MACHINE else None
    if isinstance(restored, dict) and isinstance(restored.get("restored"), dict):
        machine = restored["restored"].get("machine")
        machine_config = restored["restored"].get("config")
    body = msgpack.packb(state, use_bin_type=True)
    body_sha = hashlib.sha256(body).hexdigest()
    info = BackupInfo(str(ov.get("cluster")), str(machine), machine_config, int(index),
                      int(term), (leader[0], leader[1]), ov.get("members") or [],
                      int(time.time() * 1000), body_sha, len(body))
    header = msgpack.packb({"format": FORMAT_VERSION, **info.as_dict()}, use_bin_type=True)
    digest = hashlib.sha256(header + body).digest()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), len(body), digest)
    tmp = f"{out}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(prefix + header + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return info


# ---- read ----------------------------------------------------------------------------

def read_backup(path: str) -> tuple[BackupInfo, Any]:
    """``(header, state)`` of a backup file; ``CorruptFile`` for any damage (named)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _PREFIX.size:
        raise CorruptFile(f"{path}: not a raft_otp backup ({len(data)} bytes, shorter than "
                          f"its {_PREFIX.size}-byte prefix)")
    magic, version, hlen, blen, digest = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFile(f"{path}: not a raft_otp backup (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise CorruptFile(f"{path}: backup format version {version}, this build reads "
                          f"{FORMAT_VERSION}")
    if hlen > MAX_HEADER_BYTES or _PREFIX.size + hlen + blen != len(data):
        raise CorruptFile(f"{path}: lengths do not match the file (header {hlen}, body {blen}, "
                          f"file {len(data)} bytes): truncated or damaged")
    header = data[_PREFIX.size:_PREFIX.size + hlen]
    body = data[_PREFIX.size + hlen:]
    if hashlib.sha256(header + body).digest() != digest:
        raise CorruptFile(f"{path}: checksum mismatch (sha256 of header and body): damaged")
    try:
        h = msgpack.unpackb(header, raw=False, strict_map_key=False)
        info = BackupInfo(h["cluster"], h["machine"], h["machine_config"], int(h["index"]),
                          int(h["term"]), (h["leader"][0], h["leader"][1]), h["members"],
                          int(h["created_ms"]), h["body_sha256"], int(h["body_bytes"]))
        state = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (ValueError, KeyError, TypeError, IndexError, msgpack.UnpackException) as exc:
        raise CorruptFile(f"{path}: header or state does not decode: {exc!r}") from None
    if hashlib.sha256(body).hexdigest() != info.body_sha256:
        raise CorruptFile(f"{path}: the body's checksum disagrees with the header")
    return info, state


# ---- restore -------------------------------------------------------------------------

def restore(path: str, cluster: str, members: list[Any], *, system: str = "default",
            machine_config: Any = None, timeout: float = 30.0) -> tuple[list[Any], list[Any]]:
    """Start a new cluster ``cluster`` on ``members`` (ServerIds) whose state is the
    backup's (``Restored`` wraps the backed-up machine); returns ``start_cluster``'s
    ``(started, not_started)``.  ``machine_config`` is the machine's config (default:
    the one the backup recorded, else ``{}``).  ``CorruptFile`` before anything starts
    if the file is damaged."""
    from raft_otp import api
    info, state = read_backup(path)
    cfg = machine_config if machine_config is not None else (
        info.machine_config if info.machine_config is not None else {})
    spec = (RESTORED_MACHINE, {"machine": info.machine, "config": cfg, "state": state,
                               "from": {"cluster": info.cluster, "index": info.index,
                                        "term": info.term}})
    return api.start_cluster(system, cluster, spec, members, timeout=timeout)


class Restored(Machine):
    """A machine that starts from a backup's state and otherwise is the machine it wraps
    (config: ``{"machine": "module:Class", "config": ..., "state": ..., "from": {...}}``)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        if not (isinstance(config, dict) and isinstance(config.get("machine"), str)
                and "state" in config):
            raise BadArgument("Restored needs a config {'machine': 'module:Class', 'config': "
                              f"..., 'state': ...}}, got {type(config).__name__}")
        from raft_otp.system.resolve import load_machine
        try:
            self.inner = load_machine((config["machine"], config.get("config")))
        except RaftError:
            raise
        except Exception as exc:
            raise BadArgument(f"Restored: cannot load {config['machine']}: {exc!r}") from None

    def init(self, config: Any) -> Any:
        # a copy: a machine mutating its state in place must not change the record replays
        # start from
        return msgpack.unpackb(msgpack.packb(self.config["state"], use_bin_type=True),
                               raw=False, strict_map_key=False)

    def apply(self, meta: ApplyMeta, command: Any, state: Any) -> Any:
        return self.inner.apply(meta, command, state)

    def state_enter(self, role: str, state: Any) -> Any:
        return self.inner.state_enter(role, state)

    def tick(self, time_ms: int, state: Any) -> Any:
        return self.inner.tick(time_ms, state)

    def snapshot_installed(self, meta: Any, state: Any) -> Any:
        return self.inner.snapshot_installed(meta, state)

    def overview(self, state: Any) -> Any:
        ov = self.inner.overview(state)
        restored = {"machine": self.config["machine"], "config": self.config.get("config"),
                    "from": self.config.get("from")}
        return {**ov, "restored": restored} if isinstance(ov, dict) else {
            "machine": ov, "restored": restored}

    def version(self) -> int:
        return self.inner.version()

    def which_module(self, version: int) -> Machine:
        older = self.inner.which_module(version)
        if older is self.inner:
            return self
        view = copy.copy(self)  # the older implementation, still starting from the backup
        view.inner = older
        return view

    def snapshot_encode(self, state: Any) -> bytes:
        return self.inner.snapshot_encode(state)

    def snapshot_decode(self, data: bytes) -> Any:
        return self.inner.snapshot_decode(data)
