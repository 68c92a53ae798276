"""Expected failures of raft_otp, one shallow tree (see STYLE.md rule 6).

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
