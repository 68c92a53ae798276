"""Expected failures of raft_otp, one shallow tree, one purpose per class.

Programmer errors are plain exceptions/asserts and crash the actor (the
supervisor restarts it).  Everything a caller can reasonably handle is a
subclass of :class:`RaftError`.
"""

from __future__ import annotations

from typing import Any


class RaftError(Exception):
    """Base class of every expected raft_otp failure."""


class Timeout(RaftError):
    """A call did not complete in time; its outcome is unknown."""


class NotLeader(RaftError):
    """The addressed server is not the leader; ``leader`` is its best hint (or None)."""

    def __init__(self, server: Any, leader: Any | None) -> None:
        super().__init__(f"{server} is not the leader (leader hint: {leader})")
        self.server = server
        self.leader = leader


class ServerNotFound(RaftError):
    """No server is registered under that id (unknown name or node down)."""


class NodeDown(RaftError):
    """The target node is not connected."""


class ClusterChangeNotPermitted(RaftError):
    """A membership change was refused (one already pending, or leader not ready)."""


class CorruptFile(RaftError):
    """A file failed its magic, version or checksum check."""

    def __init__(self, path: str, offset: int | None = None, detail: str = "") -> None:
        where = f"{path}" + (f" at offset {offset}" if offset is not None else "")
        super().__init__(f"corrupt file {where}: {detail}" if detail else f"corrupt file {where}")
        self.path = path
        self.offset = offset
        self.detail = detail


class SystemNotRunning(RaftError):
    """The named system is not started on this node."""


class BadArgument(RaftError, ValueError):
    """A caller passed an invalid argument; the message says which and why."""


class WireTypeError(BadArgument, TypeError):
    """A value cannot be put on the wire, or would not come back the same (an
    unregistered class, a map key that does not decode as a key, ...)."""


class RemoteError(RaftError):
    """A remote handler raised an exception of a class this node does not know."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class ConfigError(BadArgument):
    """A configuration value is missing, unknown or of the wrong type (names the key)."""


class CommandTooLarge(BadArgument):
    """An encoded command is larger than the system's ``max_command_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"command is {size} bytes encoded; the limit (max_command_bytes) is {limit}")
        self.size = size
        self.limit = limit


class AlreadyStarted(RaftError):
    """A server or cluster of that name already exists (``start_cluster`` /
    ``start_server`` twice, or a name in use with another machine)."""


class NodeHalted(RaftError):
    """The node's root supervisor gave up (a system restarted more often than its
    intensity allows): the node process stops and exits non-zero, so that the
    supervisor above it (systemd, Kubernetes, ``raft-otp``'s own) restarts it."""


class DataDirLocked(RaftError):
    """Another process (``pid``) holds the data dir ``path``: one owner per data dir."""

    def __init__(self, path: str, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"data dir {path} is in use by {who} (lock file {path}/LOCK)")
        self.path = path
        self.pid = pid


class MachineError(RaftError):
    """The state machine raised while applying this command (``apply`` is
    deterministic, so it raised on every member at the same index).  The
    command is in the log and counted as applied; the machine state is what it
    was before the command (see "Writing a machine" in the README).
    ``type_name``/``message`` are the exception's; ``index`` the entry's."""

    def __init__(self, type_name: str, message: str, index: int | None = None) -> None:
        at = f" at index {index}" if index is not None else ""
        super().__init__(f"machine raised {type_name}{at}: {message}")
        self.type_name = type_name
        self.message = message
        self.index = index

    def __eq__(self, other: object) -> bool:
        return (type(other) is MachineError and other.type_name == self.type_name
                and other.message == self.message and other.index == self.index)

    def __hash__(self) -> int:
        return hash((self.type_name, self.message, self.index))


class QueryError(RaftError):
    """A query function raised on the server; the server kept running."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"query raised {type_name}: {message}")
        self.type_name = type_name
        self.message = message


class DiskFull(RaftError):
    """The disk alarm of the leader's system is on: a log write failed with ENOSPC,
    or free space on its data dir's filesystem is below ``disk_free_limit_bytes``.
    The command was refused before reaching the log (nothing was written); queries
    still work, and commands are accepted again once space is back (the alarm
    clears by itself).  ``reason`` says which alarm and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"disk alarm: commands refused until space is back ({reason})")
        self.reason = reason
