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


import sys as _sys  # noqa: E402
import types as _types  # noqa: E402
import warnings as _warnings  # noqa: E402

from raft_otp.node.runtime import node, node_name  # noqa: E402,F401  (node: runtime's old name)


class _CallablePackage(_types.ModuleType):
    """This package, callable for old code: ``raft_otp.node()`` was once the function
    that gives this process's node name.  It still does, with a DeprecationWarning;
    use :func:`raft_otp.node_name`.  (``raft_otp.node`` is the package, so type
    checkers see ``raft_otp.node.start_node`` and the rest.)"""

    def __call__(self) -> str:
        _warnings.warn("raft_otp.node() is deprecated: use raft_otp.node_name()",
                       DeprecationWarning, stacklevel=2)
        return node_name()


_sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "NONODE", "Fault", "Mailbox", "NodeConfig", "NodeEvent", "RemoteError", "RemoteMonitorRef",
    "Security",
    "WireTypeError", "admin_call", "call", "demonitor_remote", "is_started", "monitor_remote",
    "node_name", "nodes", "read_cookie", "register_wire_error", "register_wire_type", "send",
    "set_fault", "set_status_provider", "start_node", "stop_node", "subscribe_node_events",
    "transport_stats", "unsubscribe_node_events",
]
