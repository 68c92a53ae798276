"""Wire registration of the core's RPCs and the server's messages (codes 32..63).

The node codec (``raft_otp.node.codec``) sends registered dataclasses as the
positional array of their fields; tuples come back as lists, so the rebuilders
here turn ``ServerId`` fields back into ``ServerId`` (the core compares them
with ``==`` against tuples, and uses them as dict keys).  Entry tuples stay
lists: the core and the log only index them.

Code map (fixed: it is the wire format):
32..47  core RPCs in ``raft_otp.core.events.RPC_TYPES`` order (new RPCs append)
48      SnapshotMeta
49..57  client-side core events (Command, Commands, queries, membership, election)
58..61  server messages (StateQuery, CallReply, Applied, Rejected)
70..79  system actor requests (raft_otp.system.runtime)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from raft_otp.core import events as ev
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core.types import ServerId
from raft_otp.server import messages as msg

_done = False


def _sid(x: Any) -> Any:
    if x is None or isinstance(x, ServerId):
        return x
    return ServerId(x[0], x[1])


def _addr(x: Any) -> Any:
    """A reply address arrives as a list; the core uses it as a dict key."""
    return tuple(x) if isinstance(x, list) else x


def _rebuilder(cls: type, sid_fields: set[str]) -> Callable[[Any], Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    conv: list[tuple[int, Callable[[Any], Any]]] = [
        (i, _sid) for i, n in enumerate(names) if n in sid_fields]
    conv += [(i, _addr) for i, n in enumerate(names) if n == "reply_to"]
    if not conv:
        return lambda fields: cls(*fields)

    def rebuild(fields: Any) -> Any:
        fields = list(fields)
        for i, f in conv:
            fields[i] = f(fields[i])
        return cls(*fields)
    return rebuild


SID_FIELDS = {"candidate_id", "voter_id", "leader_id", "from_id", "server", "target",
              "leader", "peer"}


def register_all() -> None:
    """Register every wire type of the server layer (idempotent)."""
    global _done
    if _done:
        return
    from raft_otp.node.codec import register_wire_type

    assert len(ev.RPC_TYPES) <= 16
    for i, cls in enumerate(ev.RPC_TYPES):
        register_wire_type(32 + i, cls, from_fields=_rebuilder(cls, SID_FIELDS))
    register_wire_type(48, SnapshotMeta)
    client = [ev.Command, ev.Commands, ev.LocalQuery, ev.LeaderQuery, ev.ConsistentQuery,
              ev.AddMember, ev.RemoveMember, ev.TransferLeadership, ev.TriggerElection]
    for i, cls in enumerate(client):
        register_wire_type(49 + i, cls, from_fields=_rebuilder(cls, SID_FIELDS))
    register_wire_type(58, msg.StateQuery)
    register_wire_type(59, msg.CallReply, from_fields=_rebuilder(msg.CallReply, SID_FIELDS))
    register_wire_type(60, msg.Applied, from_fields=_rebuilder(msg.Applied, SID_FIELDS))
    register_wire_type(61, msg.Rejected, from_fields=_rebuilder(msg.Rejected, SID_FIELDS))
    _done = True
