"""What a server actor needs from the system it lives in (RA: the ``ra_system`` config + names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.system.config import SystemConfig
from raft_otp.system.directory import Directory


@dataclass(slots=True)
class SystemContext:
    """Shared, read-mostly facts of one running system on this node."""

    config: SystemConfig
    node_name: str
    log_system: Any            # raft_otp.log factory: open_server_log(uid, notify, ...)
    directory: Directory
    wal_name: str | None = None  # registered name of the WAL actor, for monitoring
    extra: dict[str, Any] = field(default_factory=dict)
    rules: Rules = RAFT_RULES  # the servers' Raft rules; others only in tests (start_system's rules=)
