"""The node as a supervised child (the transport row of DESIGN.md's node supervisor).

:func:`node_child_spec` gives a ``supervisors.ChildSpec`` whose actor starts the
node (:func:`raft_otp.node.start_node`) when it is created and stops it in
``on_stop``.  If the actor is killed, its restart stops whatever is left of the
old transport first and binds again, so "restart the transport" is a supervisor
restart like any other.  The actor also answers ``"stats"`` with
``transport_stats()``.
"""

from __future__ import annotations

from typing import Any

import pykka

from raft_otp.node import runtime
from raft_otp.node.security import Security
from raft_otp.node.transport import NodeConfig

__all__ = ["NodeActor", "node_child_spec"]


class NodeActor(pykka.ThreadingActor):
    """Owns the node's lifetime inside a supervision tree."""

    def __init__(self, name: str, cookie: str | None = None, cookie_file: str | None = None,
                 config: NodeConfig | None = None, transport_security: Security | None = None) -> None:
        super().__init__()
        # In __init__ (the supervisor's thread), like OTP's init/1: the node is bound
        # when start returns, and a bind failure is a start failure.
        if runtime.is_started():
            runtime.stop_node()  # a previous incarnation was killed without on_stop
        runtime.start_node(name, cookie, cookie_file=cookie_file, config=config,
                           transport_security=transport_security)

    def on_stop(self) -> None:
        runtime.stop_node()

    def on_receive(self, message: Any) -> Any:
        if message == "stats":
            return runtime.transport_stats()
        return None


def node_child_spec(name: str, cookie: str | None = None, *, cookie_file: str | None = None,
                    config: NodeConfig | None = None, child_id: str = "node",
                    transport_security: Security | None = None) -> Any:
    """A ChildSpec starting the node ``name`` under a supervisor (registered as ``node``)."""
    from supervisors import ChildSpec

    return ChildSpec.actor(child_id, NodeActor, name, cookie, cookie_file, config,
                           transport_security, name="node")
