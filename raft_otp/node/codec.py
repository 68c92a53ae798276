"""Wire codec: msgpack with a registry of application message types.

Ports the role of Erlang's external term format for raft_otp.  Registered
classes (frozen dataclasses by default) travel as a msgpack ExtType whose payload
is the positional array of their fields, so a Raft RPC costs one small array,
never a dict of field names.  Registered objects nest (an RPC holding a
SnapshotMeta).  Nothing is ever pickled: an unregistered object cannot be sent.

Ext codes 0..15 are reserved for raft_otp.node; raft_otp's own messages take the
codes listed in ``raft_otp.protocol.messages`` (32..72 today), whose converters are
derived from that table rather than from the defaults here; applications use the
other codes of 16..127 (a clash raises at registration).
Tuples (and NamedTuples such as ServerId) travel as plain arrays and come back
as lists: msgpack only calls the type hook for tuple subclasses in strict mode,
which would cost a hook call per Entry tuple on the hot path.
"""

from __future__ import annotations

import dataclasses
import operator
import threading
from typing import Any, Callable

import msgpack

from raft_otp.errors import BadArgument, RemoteError, WireTypeError

__all__ = [
    "register_wire_type",
    "packb",
    "unpackb",
    "encode_error",
    "decode_error",
    "register_wire_error",
    "RemoteError",
    "WireTypeError",
]

ToFields = Callable[[Any], Any]
FromFields = Callable[[Any], Any]

_to: dict[type, tuple[int, ToFields]] = {}
_from: dict[int, FromFields] = {}
_owner: dict[int, type] = {}

RESERVED_MAX = 15


def register_wire_type(
    code: int,
    cls: type,
    to_fields: ToFields | None = None,
    from_fields: FromFields | None = None,
    *,
    _reserved_ok: bool = False,
) -> None:
    """Let instances of ``cls`` cross the wire as ExtType ``code``.

    ``to_fields(obj)`` returns a msgpack-encodable sequence and
    ``from_fields(seq)`` rebuilds the object; both default, for dataclasses, to
    the positional field values and ``cls(*fields)``.  Registering the same
    class under the same code again is a no-op; any other clash raises.
    """
    if not (0 <= code <= 127):
        raise BadArgument(f"wire type code {code} outside 0..127")
    if code <= RESERVED_MAX and not _reserved_ok:
        raise BadArgument(f"wire type codes 0..{RESERVED_MAX} are reserved for raft_otp.node")
    owner = _owner.get(code)
    if owner is not None and owner is not cls:
        raise BadArgument(f"wire type code {code} already used by {owner.__qualname__}")
    if cls in _to and _to[cls][0] != code:
        raise BadArgument(f"{cls.__qualname__} already registered as code {_to[cls][0]}")
    if to_fields is None:
        if not dataclasses.is_dataclass(cls):
            raise BadArgument(f"{cls.__qualname__} is not a dataclass: pass to_fields/from_fields")
        names = [f.name for f in dataclasses.fields(cls)]
        if len(names) == 1:
            get = operator.attrgetter(names[0])
            to_fields = lambda obj: (get(obj),)  # noqa: E731
        elif names:
            to_fields = operator.attrgetter(*names)
        else:
            to_fields = lambda obj: ()  # noqa: E731
    if from_fields is None:
        from_fields = lambda fields: cls(*fields)  # noqa: E731
    _to[cls] = (code, to_fields)
    _from[code] = from_fields
    _owner[code] = cls


# A fresh Packer per call keeps encoding thread-safe; the small initial buffer matters:
# msgpack's default 256 KiB buffer is mmap'd and freed on every nested (ExtType) pack,
# which made one small registered object cost ~9 us instead of ~1.5 us (measured).
_Packer = msgpack.Packer
_BUF = 4096
_local = threading.local()


class _Nesting:
    """Per-thread nested-packing state: the depth and one cached Packer per depth."""

    __slots__ = ("depth", "stack")

    def __init__(self) -> None:
        self.depth = 0
        self.stack: list[Any] = []


# ExtType is a namedtuple whose __new__ re-validates code and data in Python on every
# call; ours are valid by construction (code checked at registration, data is bytes).
_ExtType = msgpack.ExtType
_new_ext = tuple.__new__


def _default(obj: Any) -> Any:
    entry = _to.get(type(obj))
    if entry is None:
        if isinstance(obj, (set, frozenset)):
            return list(obj)
        raise WireTypeError(f"cannot put {type(obj).__qualname__} on the wire (register_wire_type)")
    code, to_fields = entry
    # Nested packing re-enters from inside an outer pack: one cached Packer per depth.
    try:
        st = _local.nesting
    except AttributeError:
        st = _local.nesting = _Nesting()
    depth = st.depth
    stack = st.stack
    if depth == len(stack):
        stack.append(_Packer(default=_default, buf_size=_BUF))
    st.depth = depth + 1
    try:
        return _new_ext(_ExtType, (code, stack[depth].pack(to_fields(obj))))
    except BaseException:
        stack[depth] = _Packer(default=_default, buf_size=_BUF)
        raise
    finally:
        st.depth = depth


def _ext_hook(code: int, data: bytes) -> Any:
    from_fields = _from.get(code)
    if from_fields is None:
        raise ValueError(f"unknown wire type code {code}")
    return from_fields(msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False))


def packb(obj: Any) -> bytes:
    """Encode ``obj`` (msgpack types plus registered classes); raises WireTypeError.

    The outermost Packer is cached per thread (halves the cost of a small message);
    nested ExtType payloads use fresh ones, so packing is never re-entered."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = _Packer(default=_default, buf_size=_BUF)
    try:
        return packer.pack(obj)
    except BaseException as exc:
        _local.packer = _Packer(default=_default, buf_size=_BUF)  # never reuse a half-used buffer
        if isinstance(exc, WireTypeError):
            raise
        if isinstance(exc, (TypeError, ValueError, OverflowError)):
            raise WireTypeError(f"cannot encode value: {exc}") from exc
        raise


def unpackb(data: bytes | memoryview) -> Any:
    """Decode bytes made by :func:`packb`; raises ValueError-family on bad input."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


# ---- errors across the wire --------------------------------------------------------

_errors: dict[str, type[BaseException]] = {}


ERROR_EXT = 1  # a registered exception carried as a value (a reply, a pipelined outcome)


def register_wire_error(cls: type[BaseException]) -> None:
    """Let exceptions of ``cls`` be rebuilt with their class on the calling node, both
    as a call's failure and as a value inside a message (ExtType ``ERROR_EXT``)."""
    _errors[cls.__qualname__] = cls
    _to[cls] = (ERROR_EXT, _error_fields)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value)


def _error_fields(exc: BaseException) -> list[Any]:
    """``[type name, message, attributes]``; only plain attributes travel."""
    attrs = {k: v for k, v in vars(exc).items() if not k.startswith("_") and _plain(v)}
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return [type(exc).__qualname__, message, attrs]


def encode_error(exc: BaseException) -> list[Any]:
    """``[type name, message, attributes]``; attributes only if they encode."""
    attrs = {k: v for k, v in vars(exc).items() if not k.startswith("_")}
    try:
        packb(attrs)
    except WireTypeError:
        attrs = {}
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return [type(exc).__qualname__, message, attrs]


def decode_error(fields: Any) -> BaseException:
    """Rebuild an exception made by :func:`encode_error` (RemoteError if unknown)."""
    try:
        type_name, message, attrs = fields
        cls = _errors.get(type_name)
        if cls is None:
            return RemoteError(str(type_name), str(message))
        exc = cls.__new__(cls)
        exc.args = (message,)
        if isinstance(attrs, dict):
            for k, v in attrs.items():
                try:
                    setattr(exc, k, v)
                except Exception:  # read-only attribute: keep what we have
                    pass
        return exc
    except Exception:  # malformed error payload
        return RemoteError("unknown", repr(fields)[:200])


_from[ERROR_EXT] = lambda fields: decode_error(fields)


def _register_builtins() -> None:
    import raft_otp.errors as errors_mod

    for value in vars(errors_mod).values():
        if isinstance(value, type) and issubclass(value, BaseException):
            register_wire_error(value)
    register_wire_error(RemoteError)
    for builtin in (ValueError, KeyError, TypeError, RuntimeError, LookupError, IndexError,
                    AttributeError, NotImplementedError, ZeroDivisionError, AssertionError):
        register_wire_error(builtin)


_register_builtins()
