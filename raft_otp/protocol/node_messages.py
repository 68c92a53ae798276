"""The node-level messages inside a frame, and the frame header: one table each.

A frame body is a msgpack array (the header layout is the same in every protocol
version, so a node can read who sent a frame and at which version before it knows
whether it understands the rest)::

    [version, sender, creation, flags, session, counter, [message, ...]]

A message is an array whose first element is its kind; the rest are the fields
listed in :data:`NODE_MESSAGES`, in that order.  ``msg`` fields hold an
application value (a registered type of ``raft_otp.protocol.messages`` or plain
msgpack).  A node that does not know a kind counts it (``bad_msgs``) and drops it,
which is how kinds 7, 8 and 9 were added within version 3.

This module imports nothing of raft_otp: ``raft_otp.node`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FRAME_HEADER", "FLAG_CLIENT", "FLAG_HELLO", "NodeMessage", "NODE_MESSAGES",
    "K_SEND", "K_CALL", "K_REPLY", "K_MONITOR", "K_DEMONITOR", "K_DOWN", "K_ADMIN",
    "K_SEND_BOUNCE", "K_NOPROC", "K_HELLO",
]

FRAME_HEADER = ("version", "sender", "creation", "flags", "session", "counter", "messages")
"""The fields of a frame body, in order (every version)."""

FLAG_CLIENT = 1  # the sender is a temporary or port-less client: answer over its connection
FLAG_HELLO = 2   # the frame holds one K_HELLO and nothing else (read at any version)


@dataclass(frozen=True, slots=True)
class NodeMessage:
    """One node-level message kind: its code, name and fields after the kind."""

    kind: int
    name: str
    fields: tuple[str, ...]
    doc: str


NODE_MESSAGES: tuple[NodeMessage, ...] = (
    NodeMessage(0, "K_SEND", ("dest_name", "msg"), "fire and forget (Erlang's !)"),
    NodeMessage(1, "K_CALL", ("dest_name", "msg", "call_id"), "a call: K_REPLY comes back"),
    NodeMessage(2, "K_REPLY", ("call_id", "ok", "value_or_error"),
                "a call's answer; an error as [type name, message, attributes]"),
    NodeMessage(3, "K_MONITOR", ("target_name", "monitor_id"), "monitor a registered name"),
    NodeMessage(4, "K_DEMONITOR", ("monitor_id",), "drop a monitor"),
    NodeMessage(5, "K_DOWN", ("monitor_id", "reason"), "a monitored name went down"),
    NodeMessage(6, "K_ADMIN", ("call_id", "request"), "an admin request (raft_otp.node.admin)"),
    NodeMessage(7, "K_SEND_BOUNCE", ("dest_name", "msg", "bounce_name"),
                "K_SEND for a waiting caller: K_NOPROC back if dest_name is not running"),
    NodeMessage(8, "K_NOPROC", ("bounce_name", "dest_name"),
                "dest_name is not running on the sender (answer to K_SEND_BOUNCE)"),
    NodeMessage(9, "K_HELLO", ("oldest", "newest", "is_answer"),
                "the sender's protocol version range, alone in a FLAG_HELLO frame; a hello "
                "that is not an answer is answered with one"),
)
"""Every node-level message kind (codes are the wire format: never reuse one)."""

K_SEND = 0
K_CALL = 1
K_REPLY = 2
K_MONITOR = 3
K_DEMONITOR = 4
K_DOWN = 5
K_ADMIN = 6
K_SEND_BOUNCE = 7
K_NOPROC = 8
K_HELLO = 9


def _check_constants() -> None:
    """The K_* names above are the table's (a typo in either is an import error)."""
    for m in NODE_MESSAGES:
        if globals()[m.name] != m.kind:
            raise ImportError(f"{m.name} is {globals()[m.name]}, the table says {m.kind}")


_check_constants()
