"""raft_otp: multi-Raft for Python in the manner of RabbitMQ's RA.

The public API (RA's names) is re-exported here; see ``raft_otp.api`` for the
semantics of each call and ``raft_otp.aio`` for the asyncio forms;
``raft_otp.connect`` gives a client that binds no port (``raft_otp.client``).
The machine effects (``Timer``, ``ReleaseCursor``, ...) are those of
``raft_otp.core.machine``, where each states its contract.
"""

from __future__ import annotations

import logging

from raft_otp._version import __version__ as __version__  # the one source: _version.py
from raft_otp.api import (
    add_member,
    consistent_query,
    delete_cluster,
    force_delete_server,
    key_metrics,
    leader_query,
    leave_and_delete_server,
    local_query,
    member_overview,
    members,
    overview,
    ping,
    pipeline_command,
    pipeline_commands,
    process_command,
    remove_member,
    restart_server,
    start_cluster,
    start_in,
    start_server,
    start_system,
    stop_server,
    stop_system,
    transfer_leadership,
    trigger_election,
)
from raft_otp.client import AsyncClient, Client, connect, connect_async
from raft_otp.core.machine import (
    ApplyMeta,
    Checkpoint,
    Demonitor,
    LogRead,
    Machine,
    MachineEffect,
    ModCall,
    Monitor,
    ReleaseCursor,
    SendMsg,
    Timer,
)
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
import raft_otp.node as node  # the package (callable for old code: deprecated, use node_name)
from raft_otp.node.runtime import node_name
from raft_otp.server.messages import Applied, Rejected
from raft_otp.system.config import SystemConfig
from raft_otp.system.runtime import System

logging.getLogger("raft_otp").addHandler(logging.NullHandler())

__all__ = [
    "Applied",
    "ApplyMeta",
    "AsyncClient",
    "BadArgument",
    "Checkpoint",
    "Client",
    "ClusterChangeNotPermitted",
    "CorruptFile",
    "Demonitor",
    "LogRead",
    "Machine",
    "MachineEffect",
    "ModCall",
    "Monitor",
    "NodeDown",
    "NotLeader",
    "RaftError",
    "Rejected",
    "ReleaseCursor",
    "SendMsg",
    "ServerId",
    "ServerNotFound",
    "System",
    "SystemConfig",
    "SystemNotRunning",
    "Timeout",
    "Timer",
    "add_member",
    "connect",
    "connect_async",
    "consistent_query",
    "delete_cluster",
    "force_delete_server",
    "key_metrics",
    "leader_query",
    "leave_and_delete_server",
    "local_query",
    "member_overview",
    "members",
    "node_name",
    "overview",
    "ping",
    "pipeline_command",
    "pipeline_commands",
    "process_command",
    "remove_member",
    "restart_server",
    "start_cluster",
    "start_in",
    "start_server",
    "start_system",
    "stop_server",
    "stop_system",
    "transfer_leadership",
    "trigger_election",
]
