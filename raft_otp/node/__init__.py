"""Node runtime: naming, ZeroMQ transport, msgpack codec, failure detector, admin.

Erlang distribution for pykka actors.  A node is one OS process named
``name@host:port``; ``send((name, node), msg)`` and ``call((name, node), msg)``
reach the actor registered under ``name`` on that node, wherever it is.

Modules (one job each): ``codec`` (msgpack + wire type registry), ``envelope``
(batch frame layout, MAC), ``replay`` (session nonces and counters),
``security`` (transport security modes, keys, private files), ``peer`` (bounded per-peer queue), ``transport``
(the I/O thread), ``detector`` (failure detector), ``faults`` (fault injection),
``monitors`` (remote monitors), ``mailbox`` (non-actor reply address), ``admin``
(admin endpoint and client), ``runtime`` (the public functions below),
``echo`` (a test actor), ``__main__`` (``python -m raft_otp.node``).
"""

from raft_otp.node.admin import admin_call
from raft_otp.node.codec import RemoteError, WireTypeError, register_wire_error, register_wire_type
from raft_otp.node.faults import Fault
from raft_otp.node.mailbox import Mailbox
from raft_otp.node.monitors import RemoteMonitorRef
from raft_otp.node.runtime import (
    NONODE,
    NodeEvent,
    call,
    demonitor_remote,
    is_started,
    monitor_remote,
    nodes,
    read_cookie,
    send,
    set_fault,
    set_status_provider,
    start_node,
    stop_node,
    subscribe_node_events,
    transport_stats,
    unsubscribe_node_events,
)
from raft_otp.node.security import Security
from raft_otp.node.transport import NodeConfig


class _NodeFunction:
    """``node()`` -> this process's node name, and a view of this package.

    ``raft_otp/__init__`` does ``from raft_otp.node import node``, which rebinds the
    attribute ``raft_otp.node`` from this package to the function; after that both
    ``from raft_otp import node`` and ``import raft_otp.node as m`` yield the
    function.  Making the function forward attribute access to the package keeps
    ``raft_otp.node()`` and ``raft_otp.node.send(...)`` both working.
    """

    __slots__ = ()

    def __call__(self) -> str:
        return _runtime.node()

    def __getattr__(self, attr: str) -> object:
        return getattr(_sys.modules[__name__], attr)

    def __dir__(self) -> list[str]:
        return dir(_sys.modules[__name__])

    def __repr__(self) -> str:
        return "<raft_otp.node.node(): this node's name; also the raft_otp.node package>"


import sys as _sys  # noqa: E402

from raft_otp.node import runtime as _runtime  # noqa: E402

node = _NodeFunction()

__all__ = [
    "NONODE", "Fault", "Mailbox", "NodeConfig", "NodeEvent", "RemoteError", "RemoteMonitorRef",
    "Security",
    "WireTypeError", "admin_call", "call", "demonitor_remote", "is_started", "monitor_remote",
    "node", "nodes", "read_cookie", "register_wire_error", "register_wire_type", "send",
    "set_fault", "set_status_provider", "start_node", "stop_node", "subscribe_node_events",
    "transport_stats", "unsubscribe_node_events",
]
