"""raft_otp: multi-Raft for Python in the manner of RabbitMQ's RA."""

from __future__ import annotations

import logging

from raft_otp.core.types import ServerId
from raft_otp.errors import (
    BadArgument,
    ClusterChangeNotPermitted,
    CorruptFile,
    NodeDown,
    NotLeader,
    RaftError,
    ServerNotFound,
    SystemNotRunning,
    Timeout,
)

logging.getLogger("raft_otp").addHandler(logging.NullHandler())

__all__ = [
    "BadArgument",
    "ClusterChangeNotPermitted",
    "CorruptFile",
    "NodeDown",
    "NotLeader",
    "RaftError",
    "ServerId",
    "ServerNotFound",
    "SystemNotRunning",
    "Timeout",
]
