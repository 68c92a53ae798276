"""Configuration of one raft_otp system (RA: the ``ra_system`` config map).

Defaults are RA's (its ``ra_system`` defaults), with units in the names.  A
``SystemConfig`` is plain data: it is written nowhere and travels nowhere; each
node starts its systems from its own copy.

Every field is checked when a config is made (``__post_init__``), before
anything starts: the checks are read from the field annotations (``int``,
``bool``, ``str``, ``Literal[...]``, ``dict[str, Any]``, and the bounds of
``Annotated[int, AtLeast(n)]``), so a new field is checked by declaring it.
A wrong value or an unknown key raises :class:`~raft_otp.errors.ConfigError`
naming the key, what it expects and what it got (before, ``wal_max_size_bytes =
"abc"`` surfaced as a supervisor ``StartError`` with a ``TypeError`` inside).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from raft_otp.core.config import Mutations
from raft_otp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AtLeast:
    """The lower bound of an int field: ``Annotated[int, AtLeast(1)]``."""

    minimum: int

    def problem(self, value: int) -> str | None:
        """What ``value`` should have been (for the error message), or None if it fits."""
        return None if value >= self.minimum else f"an int >= {self.minimum}"


@dataclass(frozen=True, slots=True)
class NonEmpty:
    """A str field that must not be empty: ``Annotated[str, NonEmpty()]``."""

    def problem(self, value: str) -> str | None:
        """What ``value`` should have been (for the error message), or None if it fits."""
        return None if value else "a non-empty string"


Positive = Annotated[int, AtLeast(1)]
NonNegative = Annotated[int, AtLeast(0)]
WalSyncMethod = Literal["datasync", "fsync", "none"]
OnMachineError = Literal["reply", "crash"]
TransportSecurity = Literal["mac", "curve"]  # = raft_otp.node.security.TransportSecurity
WAL_SYNC_METHODS: tuple[str, ...] = get_args(WalSyncMethod)
ON_MACHINE_ERRORS: tuple[str, ...] = get_args(OnMachineError)


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """One system: a name, a data directory, and the knobs of its log and servers."""

    name: Annotated[str, NonEmpty()] = "default"
    data_dir: str = ""
    # --- log (passed to raft_otp.log) ---
    wal_sync_method: WalSyncMethod = "datasync"
    wal_max_size_bytes: Positive = 256_000_000
    wal_max_batch_size: Positive = 8192
    segment_max_entries: Positive = 4096
    snapshot_chunk_size: Positive = 1_000_000
    min_snapshot_interval: NonNegative = 4096
    # --- servers ---
    broadcast_time_ms: Positive = 100
    tick_ms: Positive = 1000
    max_pipeline_count: Positive = 4096
    max_append_entries_rpc_batch_size: Positive = 128
    commit_notify_delay_ms: NonNegative = 5  # see raft_otp.core.config.ServerConfig
    direct_dispatch: bool = True  # idle servers' RPCs run on the node's I/O thread (raft_otp.server.direct)
    receive_snapshot_timeout_ms: Positive = 30_000
    await_condition_timeout_ms: Positive = 5_000
    # A command is refused (CommandTooLarge) at the caller and at the leader when its
    # encoding is larger: 1 MiB, etcd's order (1.5 MiB) and snapshot_chunk_size, the
    # largest message a node otherwise handles; a batch of 128 such entries is the
    # largest append_entries a follower then buffers.
    max_command_bytes: Positive = 1_048_576
    # The disk alarm (raft_otp.log.disk_alarm) goes on when free space on the data
    # dir's filesystem falls below this (checked every second; 0: only when a write
    # fails with ENOSPC): leaders refuse commands with DiskFull until it is back.
    # 50 MB, RabbitMQ's disk_free_limit default: several seconds of the fastest WAL
    # stream we measured, so the alarm usually beats ENOSPC.
    disk_free_limit_bytes: NonNegative = 50_000_000
    # "reply": a raising apply is the command's outcome (MachineError), the server
    # runs on; "crash": RA's behaviour (the server crashes, its supervisor restarts it)
    on_machine_error: OnMachineError = "reply"
    # the node's links (read from the config a node is started with, run_node):
    # "mac": a cookie MAC and replay protection per frame; "curve": the same inside
    # ZeroMQ CURVE, keys in DATA_DIR/node.key and DATA_DIR/allowed_keys
    # (raft_otp.node.security)
    transport_security: TransportSecurity = "mac"
    # extra keys handed verbatim to the log system factory (those that are
    # raft_otp.log.LogConfig fields are checked against its annotations)
    log_options: dict[str, Any] = field(default_factory=dict)
    # safety mutations (testing only): a Mutations, or "flag[,flag...]" of its fields;
    # normalised to a Mutations by __post_init__ and passed into every ServerConfig
    mutations: Any = ""

    def __post_init__(self) -> None:
        hints = _hints(SystemConfig)
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name), hints[f.name])
        _check_log_options(self.log_options)
        object.__setattr__(self, "mutations", parse_mutations(self.mutations))

    @classmethod
    def from_any(cls, config: "SystemConfig | dict[str, Any]") -> "SystemConfig":
        """Accept a SystemConfig or a plain dict of its fields (unknown keys refused)."""
        if isinstance(config, SystemConfig):
            return config
        if not isinstance(config, dict):
            raise ConfigError(f"system config must be a SystemConfig or dict, got {type(config).__name__}")
        _refuse_unknown(config)
        return cls(**config)

    def replace(self, **changes: Any) -> "SystemConfig":
        """A copy with ``changes`` applied, checked as a new config is (unknown keys refused)."""
        _refuse_unknown(changes)
        return dataclasses.replace(self, **changes)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(SystemConfig))


def _refuse_unknown(keys: dict[str, Any]) -> None:
    unknown = sorted(str(k) for k in keys if k not in FIELD_NAMES)
    if unknown:
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k)
                 for k in unknown for m in [difflib.get_close_matches(k, FIELD_NAMES, 1)]]
        raise ConfigError(f"unknown system config key(s): {', '.join(hints)}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """``cls``'s field annotations, resolved once (they are strings in the source)."""
    h = _HINTS.get(cls)
    if h is None:
        h = _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return h


def check_value(key: str, value: Any, tp: Any) -> None:
    """Raise ``ConfigError`` unless ``value`` fits the annotation ``tp``."""
    problem = _problem(value, tp)
    if problem is not None:
        raise ConfigError(f"config key {key!r} must be {problem}; got {value!r} "
                          f"({type(value).__name__})")


def _problem(value: Any, tp: Any) -> str | None:
    """What ``value`` should have been to fit ``tp``, or None if it fits."""
    if tp is Any:
        return None
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        problem = _problem(value, base)
        if problem is not None:
            return problem
        for m in marks:
            bound = m.problem(value)
            if bound is not None:
                return bound
        return None
    if origin is Literal:
        choices = get_args(tp)
        return None if value in choices and type(value) in {type(c) for c in choices} \
            else f"one of {', '.join(repr(c) for c in choices)}"
    if origin is dict:
        key_tp, value_tp = get_args(tp)
        if not isinstance(value, dict):
            return "a dict"
        for k, v in value.items():
            if _problem(k, key_tp) is not None or _problem(v, value_tp) is not None:
                return f"a {_describe(tp)}"
        return None
    if tp is int:  # bool is an int subclass, never meant as one
        return None if isinstance(value, int) and not isinstance(value, bool) else "an int"
    if tp is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else "a number"
    if isinstance(tp, type):
        return None if isinstance(value, tp) else f"a {tp.__name__}"
    raise AssertionError(f"config annotation {tp!r} has no check; add one to _problem")


def _describe(tp: Any) -> str:
    if get_origin(tp) is dict:
        k, v = get_args(tp)
        return f"dict[{_describe(k)}, {_describe(v)}]"
    return "Any" if tp is Any else getattr(tp, "__name__", repr(tp))


def _check_log_options(options: dict[str, Any]) -> None:
    """The ``log_options`` that are ``LogConfig`` fields get that field's check."""
    from raft_otp.log.system import LogConfig
    hints = _hints(LogConfig)
    for key, value in options.items():
        if key in hints and key != "extra":
            check_value(f"log_options.{key}", value, hints[key])


MUTATION_FLAGS = tuple(f.name for f in dataclasses.fields(Mutations))


def parse_mutations(spec: "Mutations | str | None") -> Mutations:
    """``None``/``""`` -> no mutation; ``"a,b"`` -> ``Mutations(a=True, b=True)``; a
    ``Mutations`` as is.  Unknown flag names raise ``ConfigError`` naming the known ones."""
    if spec is None:
        return Mutations()
    if isinstance(spec, Mutations):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"config key 'mutations' must be a Mutations or a comma-separated "
                          f"string; got {spec!r} ({type(spec).__name__})")
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in MUTATION_FLAGS]
    if bad:
        raise ConfigError(f"unknown mutation flag(s) {bad}; known: {list(MUTATION_FLAGS)}")
    return Mutations(**{n: True for n in names})


def active_mutations(m: Mutations) -> list[str]:
    """Names of the flags switched on in ``m``."""
    return [n for n in MUTATION_FLAGS if getattr(m, n)]
