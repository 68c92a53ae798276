"""Configuration of one raft_otp system (RA: the ``ra_system`` config map).

Defaults are RA's (ra-notes.md "Defaults"), with units in the names.  A
``SystemConfig`` is plain data: it is written nowhere and travels nowhere; each
node starts its systems from its own copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from raft_otp.core.config import Mutations
from raft_otp.errors import BadArgument

WAL_SYNC_METHODS = ("datasync", "fsync", "none")


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """One system: a name, a data directory, and the knobs of its log and servers."""

    name: str = "default"
    data_dir: str = ""
    # --- log (passed to raft_otp.log) ---
    wal_sync_method: str = "datasync"
    wal_max_size_bytes: int = 256_000_000
    wal_max_batch_size: int = 8192
    segment_max_entries: int = 4096
    snapshot_chunk_size: int = 1_000_000
    min_snapshot_interval: int = 4096
    # --- servers ---
    broadcast_time_ms: int = 100
    tick_ms: int = 1000
    max_pipeline_count: int = 4096
    max_append_entries_rpc_batch_size: int = 128
    commit_notify_delay_ms: int = 5  # see raft_otp.core.config.ServerConfig
    direct_dispatch: bool = True  # idle servers' RPCs run on the node's I/O thread (raft_otp.server.direct)
    receive_snapshot_timeout_ms: int = 30_000
    await_condition_timeout_ms: int = 5_000
    # A command is refused (CommandTooLarge) at the caller and at the leader when its
    # encoding is larger: 1 MiB, etcd's order (1.5 MiB) and snapshot_chunk_size, the
    # largest message a node otherwise handles; a batch of 128 such entries is the
    # largest append_entries a follower then buffers.
    max_command_bytes: int = 1_048_576
    # "reply": a raising apply is the command's outcome (MachineError), the server
    # runs on; "crash": RA's behaviour (the server crashes, its supervisor restarts it)
    on_machine_error: str = "reply"
    # extra keys handed verbatim to the log system factory
    log_options: dict[str, Any] = field(default_factory=dict)
    # safety mutations (testing only): a Mutations, or "flag[,flag...]" of its fields;
    # normalised to a Mutations by __post_init__ and passed into every ServerConfig
    mutations: Any = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise BadArgument(f"system name must be a non-empty string, got {self.name!r}")
        if self.wal_sync_method not in WAL_SYNC_METHODS:
            raise BadArgument(
                f"wal_sync_method must be one of {WAL_SYNC_METHODS}, got {self.wal_sync_method!r}")
        for f in ("broadcast_time_ms", "tick_ms", "max_pipeline_count",
                  "max_append_entries_rpc_batch_size", "snapshot_chunk_size"):
            if getattr(self, f) <= 0:
                raise BadArgument(f"{f} must be > 0, got {getattr(self, f)!r}")
        if not isinstance(self.commit_notify_delay_ms, int) or self.commit_notify_delay_ms < 0:
            raise BadArgument(f"commit_notify_delay_ms must be an int >= 0, got {self.commit_notify_delay_ms!r}")
        object.__setattr__(self, "mutations", parse_mutations(self.mutations))

    @classmethod
    def from_any(cls, config: "SystemConfig | dict[str, Any]") -> "SystemConfig":
        """Accept a SystemConfig or a plain dict of its fields (unknown keys refused)."""
        if isinstance(config, SystemConfig):
            return config
        if not isinstance(config, dict):
            raise BadArgument(f"system config must be a SystemConfig or dict, got {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - names
        if unknown:
            raise BadArgument(f"unknown system config keys: {sorted(unknown)}")
        return cls(**config)

    def replace(self, **changes: Any) -> "SystemConfig":
        return dataclasses.replace(self, **changes)


MUTATION_FLAGS = tuple(f.name for f in dataclasses.fields(Mutations))


def parse_mutations(spec: "Mutations | str | None") -> Mutations:
    """``None``/``""`` -> no mutation; ``"a,b"`` -> ``Mutations(a=True, b=True)``; a
    ``Mutations`` as is.  Unknown flag names raise ``BadArgument`` naming the known ones."""
    if spec is None:
        return Mutations()
    if isinstance(spec, Mutations):
        return spec
    if not isinstance(spec, str):
        raise BadArgument(f"mutations must be a Mutations or a comma-separated string, got {spec!r}")
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in MUTATION_FLAGS]
    if bad:
        raise BadArgument(f"unknown mutation flag(s) {bad}; known: {list(MUTATION_FLAGS)}")
    return Mutations(**{n: True for n in names})


def active_mutations(m: Mutations) -> list[str]:
    """Names of the flags switched on in ``m``."""
    return [n for n in MUTATION_FLAGS if getattr(m, n)]
