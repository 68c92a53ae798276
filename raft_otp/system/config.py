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
``log_options`` keys are checked too: a ``LogConfig`` field gets that field's
check, a key that is a system key is refused (set the system key), any other
key is refused as unknown (it used to be ignored).

:class:`NodeConfig` is the node process's part of a ``raft-otp start --config``
file: the same file, the same top level, checked the same way (from its field
annotations); :func:`split_config_file` separates the two parts and refuses the
keys a file may not set (``data_dir``: the data dir is ``--data-dir``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from raft_otp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AtLeast:
    """The lower bound of an int field: ``Annotated[int, AtLeast(1)]``."""

    minimum: int

    def problem(self, value: int) -> str | None:
        """What ``value`` should have been (for the error message), or None if it fits."""
        return None if value >= self.minimum else f"an int >= {self.minimum}"


@dataclass(frozen=True, slots=True)
class Between:
    """The bounds of an int field: ``Annotated[int, Between(0, 65535)]``."""

    minimum: int
    maximum: int

    def problem(self, value: int) -> str | None:
        """What ``value`` should have been (for the error message), or None if it fits."""
        return None if self.minimum <= value <= self.maximum \
            else f"an int in {self.minimum}..{self.maximum}"


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
    direct_dispatch: bool = True  # an idle server's step may run on the delivering thread (supervisors.scheduler); false: always on the pool
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
    # (no safety mutations here: a system gets broken Raft rules only from the Python
    # call that starts it, start_system(cfg, rules=...), in tests; raft_otp.testing.mutations)

    def __post_init__(self) -> None:
        hints = _hints(SystemConfig)
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name), hints[f.name])
        _check_log_options(self.log_options)

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


def _refuse_unknown(keys: dict[str, Any], names: frozenset[str] = FIELD_NAMES,
                    what: str = "system config") -> None:
    unknown = sorted(str(k) for k in keys if k not in names)
    if unknown:
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k)
                 for k in unknown for m in [difflib.get_close_matches(k, names, 1)]]
        raise ConfigError(f"unknown {what} key(s): {', '.join(hints)}")


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
    if origin is Union or origin is types.UnionType:  # X | None: absent is None
        arms = get_args(tp)
        if any(_problem(value, arm) is None for arm in arms):
            return None  # (None stands for "absent": not offered as a choice)
        return " or ".join(_problem(value, arm) or "" for arm in arms if arm is not type(None))
    if tp is type(None):
        return None if value is None else "None"
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
    """Each ``log_options`` key must be a ``LogConfig`` field that is not a system key, and
    gets that field's check; any other key raises ``ConfigError`` naming it."""
    from raft_otp.log.system import LogConfig
    hints = _hints(LogConfig)
    allowed = sorted(k for k in hints if k != "extra" and k not in FIELD_NAMES)
    for key, value in options.items():
        if key in FIELD_NAMES:
            raise ConfigError(f"config key 'log_options.{key}' is a system key: set {key!r} "
                              "itself, not in log_options")
        if key not in allowed:
            match = difflib.get_close_matches(key, allowed, 1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise ConfigError(f"unknown config key 'log_options.{key}'{hint}; log_options "
                              f"takes {', '.join(allowed)}")
        check_value(f"log_options.{key}", value, hints[key])


# ---- the node's part of a config file -------------------------------------------------

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]
Port = Annotated[int, Between(0, 65535)]
Path = Annotated[str, NonEmpty()]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The node process's settings in a ``raft-otp start --config`` file.

    They sit at the top level of the file beside the system keys; a command-line
    flag of the same name wins over the file.  Every field is checked from its
    annotation when the config is made, as ``SystemConfig``'s are.  Paths
    (``cookie_file``, ``key_file``, ``allowed_keys``) are taken relative to the
    config file's directory by :func:`split_config_file`.
    """

    node: Path | None = None
    """The node's name, ``NAME@HOST:PORT`` (its ZeroMQ endpoint); flag ``--node``."""
    cookie_file: Path | None = None
    """The shared secret (cookie) file; flag ``--cookie-file``."""
    log_level: LogLevel = "WARNING"
    """``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL`` (any case in the file);
    flag ``--log-level``."""
    log_format: LogFormat = "text"
    """``text``, or ``json``: one JSON object per line; flag ``--log-format``."""
    metrics_port: Port | None = None
    """Serve Prometheus ``/metrics`` on the node's host at this port (0: a free one);
    flag ``--metrics-port``."""
    key_file: Path | None = None
    """``transport_security = "curve"`` only: the node's secret key file, created 0600
    (default ``DATA_DIR/node.key``)."""
    allowed_keys: Path | None = None
    """``transport_security = "curve"`` only: the ``NODE PUBLIC_KEY`` file of the keys it
    accepts (default ``DATA_DIR/allowed_keys``)."""

    def __post_init__(self) -> None:
        if isinstance(self.log_level, str):
            object.__setattr__(self, "log_level", self.log_level.upper())
        hints = _hints(NodeConfig)
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name), hints[f.name])


NODE_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(NodeConfig))
_NODE_PATHS = ("cookie_file", "key_file", "allowed_keys")

#: Keys a config file may not set, and why: refused, never ignored.
REFUSED_FILE_KEYS: dict[str, str] = {
    "data_dir": "the data dir is given by --data-dir (the file may serve several nodes)",
    "mutations": "safety mutations are for tests only (python -m raft_otp.testing.nemesis_node "
                 "--mutation)",
}
REFUSED_FILE_LOG_OPTIONS: dict[str, str] = {
    "file_io": "a file layer object, set from Python only",
}


def split_config_file(data: dict[str, Any], path: str | None = None
                      ) -> tuple[NodeConfig, dict[str, Any]]:
    """Split a parsed config file into the node's settings (checked) and the system's
    (left for ``SystemConfig.from_any`` to check).

    Refuses, with a ``ConfigError`` naming the key: the keys of
    :data:`REFUSED_FILE_KEYS`, ``log_options`` keys of :data:`REFUSED_FILE_LOG_OPTIONS`,
    tables that are not ``log_options`` (a ``[node]`` table: node keys go at the top
    level), and every ill-typed node key.  ``path`` (the file) anchors relative paths."""
    system = dict(data)
    for key, why in REFUSED_FILE_KEYS.items():
        if key in system:
            raise ConfigError(f"config key {key!r} may not be set in a config file: {why}")
    options = system.get("log_options")
    if isinstance(options, dict):
        for key, why in REFUSED_FILE_LOG_OPTIONS.items():
            if key in options:
                raise ConfigError(f"config key 'log_options.{key}' may not be set in a config "
                                  f"file: {why}")
    for key, value in system.items():
        if isinstance(value, dict) and key != "log_options":
            raise ConfigError(f"config key {key!r} is a table; only log_options is (node and "
                              "system keys go at the top level of the file)")
    _refuse_unknown(system, FIELD_NAMES | NODE_FIELD_NAMES, "config")
    node = {k: system.pop(k) for k in list(system) if k in NODE_FIELD_NAMES}
    base = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    for key in _NODE_PATHS:
        value = node.get(key)
        if isinstance(value, str) and value:
            node[key] = os.path.join(base, os.path.expanduser(value))  # an absolute one stays
    return NodeConfig(**node), system
