"""Schema of an application message: its wire code and its fields in wire order, each
with a kind; the node codec's converters are derived from it.

A registered message travels as a msgpack ExtType whose payload is the array of its
field values in the schema's order (the same bytes as before the table existed:
the order was the dataclass's, by convention).  The kinds say what a field holds and
what the decoder rebuilds: a ``server_id`` arrives as a 2-array and is rebuilt as a
``ServerId`` (the core compares and hashes them), a ``reply_to`` address as a tuple
(the core keys on it); every other kind is decoded as msgpack gives it.

Trailing fields with a default may be missing from what an older peer sent (how
``RequestVoteRpc.leadership_transfer`` was added); the decoder passes what arrived.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from dataclasses import dataclass
from typing import Any, Callable

from raft_otp.core.types import ServerId

__all__ = ["FieldKind", "Field", "MessageType", "to_fields", "from_fields", "conforms"]


class FieldKind(enum.Enum):
    """What a field holds on the wire."""

    INT = "int"
    BOOL = "bool"
    STR = "str"
    BYTES = "bytes"
    VALUE = "value"                  # any msgpack value (a command, a reply, a config)
    SERVER_ID = "server_id"          # [name, node], rebuilt as ServerId
    OPT_SERVER_ID = "server_id?"     # the same, or nil
    REPLY_TO = "reply_to"            # a reply address [name, node], rebuilt as a tuple
    QUERY = "query"                  # "module:function" or ["module:function", [args]]
    ENTRIES = "entries"              # [[index, term, data bytes], ...] (kept as lists)
    SNAPSHOT_META = "snapshot_meta"  # a nested SnapshotMeta (its own ExtType)
    COMMANDS = "commands"            # a list of nested Command (each its own ExtType)
    LIST = "list"                    # a list of msgpack values


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: FieldKind


@dataclass(frozen=True, slots=True)
class MessageType:
    """One application message: ``code`` is its ExtType code (the wire format: never
    reuse one), ``fields`` its wire order."""

    name: str
    code: int
    cls: type
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def check_class(self) -> None:
        """Raise TypeError (a programmer error) unless the table's fields are exactly the
        class's."""
        if not dataclasses.is_dataclass(self.cls):
            raise TypeError(f"{self.name}: {self.cls.__qualname__} is not a dataclass")
        declared = {f.name for f in dataclasses.fields(self.cls)}
        if set(self.names) != declared or len(self.names) != len(declared):
            raise TypeError(f"{self.name}: table fields {sorted(self.names)} are not the "
                                f"class's {sorted(declared)}")


def _server_id(x: Any) -> Any:
    if x is None or isinstance(x, ServerId):
        return x
    return ServerId(x[0], x[1])


def _reply_to(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


_REBUILD: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.SERVER_ID: _server_id,
    FieldKind.OPT_SERVER_ID: _server_id,
    FieldKind.REPLY_TO: _reply_to,
}


def to_fields(mt: MessageType) -> Callable[[Any], Any]:
    """The encoder: an object -> its field values in wire order."""
    names = mt.names
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return operator.attrgetter(*names)


def from_fields(mt: MessageType) -> Callable[[Any], Any]:
    """The decoder: wire values -> the object (ServerIds and addresses rebuilt)."""
    cls = mt.cls
    names = mt.names
    conv = [(i, _REBUILD[f.kind]) for i, f in enumerate(mt.fields) if f.kind in _REBUILD]
    init_order = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    if names != init_order[:len(names)] or len(names) != len(init_order):
        def build_by_name(values: Any) -> Any:
            values = list(values)
            for i, f in conv:
                if i < len(values):
                    values[i] = f(values[i])
            return cls(**dict(zip(names, values)))
        return build_by_name
    if not conv:
        return lambda values: cls(*values)
    # fields without a default are always there: convert those without a length check
    required = sum(1 for f in dataclasses.fields(cls)
                   if f.init and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING)
    always = [(i, f) for i, f in conv if i < required]
    maybe = [(i, f) for i, f in conv if i >= required]
    if not maybe:
        def build(values: Any) -> Any:
            values = list(values)
            for i, f in always:
                values[i] = f(values[i])
            return cls(*values)
        return build

    def build_with_defaults(values: Any) -> Any:
        values = list(values)
        for i, f in always:
            values[i] = f(values[i])
        n = len(values)
        for i, f in maybe:
            if i < n:
                values[i] = f(values[i])
        return cls(*values)
    return build_with_defaults


_PLAIN_CHECKS: dict[FieldKind, Callable[[Any], bool]] = {
    FieldKind.INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
    FieldKind.BOOL: lambda v: isinstance(v, bool),
    FieldKind.STR: lambda v: isinstance(v, str),
    FieldKind.BYTES: lambda v: isinstance(v, bytes),
    FieldKind.VALUE: lambda v: True,
    FieldKind.SERVER_ID: lambda v: isinstance(v, ServerId),
    FieldKind.OPT_SERVER_ID: lambda v: v is None or isinstance(v, ServerId),
    FieldKind.REPLY_TO: lambda v: v is None or (isinstance(v, (tuple, list)) and len(v) == 2),
    FieldKind.QUERY: lambda v: isinstance(v, str) or (isinstance(v, (tuple, list)) and len(v) == 2),
    FieldKind.ENTRIES: lambda v: isinstance(v, (tuple, list)) and all(
        isinstance(e, (tuple, list)) and len(e) == 3 and isinstance(e[2], bytes) for e in v),
    FieldKind.LIST: lambda v: isinstance(v, (tuple, list)),
}


def conforms(mt: MessageType, obj: Any) -> list[str]:
    """The fields of ``obj`` whose values do not fit their kind (empty when all do);
    nested kinds are checked for their class only."""
    from raft_otp.core.log_api import SnapshotMeta
    from raft_otp.core.events import Command

    bad = []
    for f in mt.fields:
        v = getattr(obj, f.name)
        if f.kind is FieldKind.SNAPSHOT_META:
            ok = isinstance(v, SnapshotMeta)
        elif f.kind is FieldKind.COMMANDS:
            ok = isinstance(v, (tuple, list)) and all(isinstance(c, Command) for c in v)
        else:
            ok = _PLAIN_CHECKS[f.kind](v)
        if not ok:
            bad.append(f"{f.name}={v!r:.60} is not {f.kind.value}")
    return bad
