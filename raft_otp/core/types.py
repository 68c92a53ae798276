"""Small value types shared by every layer (ports RA's ``ra_server_id()`` and friends).

A ``ServerId`` is a plain named tuple so it travels on the wire as a two-element
msgpack array without any custom codec.
"""

from __future__ import annotations

from typing import NamedTuple


class ServerId(NamedTuple):
    """Address of one Raft server: its registered name and the node it lives on.

    ``node`` is a node name of the form ``name@host:port`` (see ``raft_otp.node``).
    """

    name: str
    node: str

    def __str__(self) -> str:
        return f"{self.name}@{self.node}" if "@" not in self.node else f"{self.name}/{self.node}"


# One log entry as stored, written and replicated: (index, term, data).
# ``data`` is the entry already encoded to bytes (see raft_otp.core.entries); it is
# encoded once on the leader and never re-encoded by the log or the transport.
Entry = tuple[int, int, bytes]
