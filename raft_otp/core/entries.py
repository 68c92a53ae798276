"""Encoding of log entry data (RA's ``{'$usr', ...}``, ``noop``, ``{'$ra_cluster_change', ...}``).

An entry's data is encoded ONCE on the leader into a msgpack array whose first
element is the kind, then stored, written and replicated as those bytes; it is
decoded only when applied.

    [0, machine_version]                                  noop (also carries machine upgrades)
    [1, command, system_time_ms]                          user command
    [1, command, system_time_ms, client_id, seq]          user command in a client session
    [2, [[name, node, kind], ...]]                        cluster change (full member list)

Every entry is a msgpack fixarray (at most 5 elements: one header byte 0x92..0x95)
whose first element is its kind, a positive fixint (one byte, equal to the kind):
so :func:`kind_of` reads the kind from the second byte without decoding.  A new kind
must keep both (at most 15 elements, a kind below 128).
"""

from __future__ import annotations

import functools
from typing import Any

import msgpack

from raft_otp.core.types import ServerId
from raft_otp.errors import WireTypeError

NOOP = 0
USR = 1
CLUSTER = 2
KINDS = (NOOP, USR, CLUSTER)

_packb = msgpack.Packer(use_bin_type=True).pack


_unpackb = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False, use_list=True)


def encode_noop(machine_version: int) -> bytes:
    return _packb([NOOP, machine_version])


def encode_usr(command: Any, system_time_ms: int, client_id: Any = None, seq: int = 0) -> bytes:
    if client_id is None:
        return _packb([USR, command, system_time_ms])
    return _packb([USR, command, system_time_ms, client_id, seq])


def encode_cluster(members: dict[ServerId, str]) -> bytes:
    return _packb([CLUSTER, members_to_wire(members)])


def check_command(command: Any) -> int:
    """The size of ``command`` encoded; raises WireTypeError unless it encodes as log
    entry data and decodes back (a map key that is a tuple encodes as an array and
    then cannot be a key).  The API checks every command with it before sending."""
    try:
        data = _packb(command)  # the entry encoder (a Packer resets its buffer on error)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireTypeError(f"command {_short(command)} cannot be encoded: {exc} (a command is "
                            "made of None, bool, int, float, str, bytes, lists/tuples and dicts)") from None
    try:
        _unpackb(data)
    except Exception as exc:
        raise WireTypeError(f"command {_short(command)} would not decode as sent: {exc} "
                            "(map keys must be str, bytes, int, float, bool or None)") from None
    return len(data)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(data: bytes) -> int:
    """The kind (``NOOP``, ``USR`` or ``CLUSTER``) of encoded entry data, without
    decoding it (the layout in the module docstring)."""
    return data[1]


def decode_unchecked(data: bytes) -> list[Any]:
    """Hot path decode of data this server's log holds (already validated on receipt)."""
    return _unpackb(data)


def decode(data: bytes) -> list[Any]:
    """The entry as a list ``[kind, ...]``."""
    value = _unpackb(data)
    if not isinstance(value, list) or not value or value[0] not in (NOOP, USR, CLUSTER):
        raise ValueError(f"malformed entry data: {value!r}")
    return value


def members_to_wire(members: dict[ServerId, str]) -> list[list[str]]:
    return [[s.name, s.node, kind] for s, kind in sorted(members.items())]


def members_from_wire(wire: Any) -> dict[ServerId, str]:
    return {ServerId(name, node): kind for name, node, kind in wire}
