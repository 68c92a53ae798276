"""Frame layout and authentication (the part of Erlang distribution's handshake we keep).

One ZeroMQ message of a single part carries one *batch* of messages from one node
to another::

    body = msgpack array [VERSION, sender, creation, flags, session, counter, [msg, ...]]
    frame = body + mac(key, body)          (the MAC is the last 32 bytes)

``session`` and ``counter`` (each a msgpack uint64, 9 bytes) are the replay
protection of ``raft_otp.node.replay``: a nonce chosen when the sender opens the
link and the frame's number on it.  They are inside the MACed body, so they
cannot be changed without the key.

``key`` is derived from the deployment's shared cookie.  A frame whose MAC does not
verify is *refused*: nothing in it is decoded or delivered.  The MAC is keyed
BLAKE2b-256 for bodies under 64 KiB (about 1 us for a small frame: most frames are
one small RPC) and HMAC-SHA256 above (SHA-256 has hardware help, so it is the
faster of the two for snapshot chunks); both ends pick by the body's length.  One
part rather than ``[body, mac]``: each ZeroMQ message part is a send and a receive
call of its own.  We chose a per-batch MAC over ZeroMQ CURVE: it is paid per batch
(not per message), needs no ZAP handler thread, and works the same for temporary
admin clients.  It authenticates and, with the session and counter, refuses
replays; it does not encrypt: ``transport_security = "curve"`` puts these same
frames inside ZeroMQ CURVE (``raft_otp.node.security``).

A message is an array whose first element is its kind: the ``K_*`` kinds and
their fields are one table, ``raft_otp.protocol.node_messages`` (re-exported here).
``K_SEND`` is fire and forget, as Erlang's ``!``: a message for a name that is not
registered on the receiving node is dropped and counted (``unknown_dest``); Raft
RPCs between servers go this way and cost one registry lookup.  ``K_SEND_BOUNCE``
is the same send for a caller that waits for an answer at a reply address (a
``Mailbox``, see ``raft_otp.server.client.call``): when ``dest_name`` is not
registered (or its actor is dead) the receiving node answers ``K_NOPROC`` at once,
and the sending node tells the waiting caller a ``ServerNotFound``.

*Version negotiation* (``raft_otp.protocol.versions``): the header layout is the
same in every version, so a receiver reads the sender and the version of any
authentic frame.  The first frame on a new link is a *hello*: ``FLAG_HELLO`` in
the flags and one ``[K_HELLO, oldest, newest, is_answer]`` message, written at the
sender's oldest version; :func:`parse_any` returns the version for the transport
to check, :func:`parse` (for one-shot admin clients) accepts the current version
only.

``creation`` is a random number chosen when a node starts (Erlang's "creation"): a
peer seeing it change knows the node restarted, so monitors on the old incarnation
are fired as down.  Messages are pre-encoded by the sender thread, so building a
batch is a byte join: the array header is written by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

from raft_otp.node import codec
from raft_otp.protocol import node_messages, versions
# the kinds a node's runtime dispatches on (K_HELLO stays in the transport)
from raft_otp.protocol.node_messages import (FLAG_CLIENT, FLAG_HELLO, K_ADMIN, K_CALL,
                                             K_DEMONITOR, K_DOWN, K_MONITOR, K_NOPROC, K_REPLY,
                                             K_SEND, K_SEND_BOUNCE)

__all__ = ["VERSION", "FLAG_CLIENT", "FLAG_HELLO", "derive_key", "batch_prefix", "build_body",
           "hello_body", "sign", "seal", "unseal", "parse", "parse_any", "BadFrame",
           "K_SEND", "K_CALL", "K_REPLY", "K_MONITOR", "K_DEMONITOR", "K_DOWN", "K_ADMIN",
           "K_SEND_BOUNCE", "K_NOPROC"]

VERSION = versions.OLDEST  # what a node writes before it knows its peer's range
MAC_BYTES = 32
SMALL_BODY = 1 << 16  # bodies below this are MACed with keyed BLAKE2b, others HMAC-SHA256

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SESSION_COUNTER = struct.Struct(">BQBQ")  # two msgpack uint64s: 0xcf + 8 bytes each


def derive_key(cookie: str | bytes) -> bytes:
    """The MAC key for a cookie (domain-separated so the raw cookie is never the key)."""
    raw = cookie.encode() if isinstance(cookie, str) else cookie
    return hashlib.sha256(b"raft_otp/node/v1\x00" + raw).digest()


def batch_prefix(sender: str, creation: int, flags: int = 0, version: int = VERSION) -> bytes:
    """The constant start of every body this node sends on a link (array of 7, first
    four fields)."""
    return b"\x97" + codec.packb(version) + codec.packb(sender) + codec.packb(creation) + codec.packb(flags)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + _U16.pack(n)
    return b"\xdd" + _U32.pack(n)


def build_body(prefix: bytes, session: int, counter: int, items: list[bytes]) -> bytes:
    """A batch body from the prefix, the link's session and this frame's counter, and
    already-encoded messages."""
    return b"".join((prefix, _SESSION_COUNTER.pack(0xCF, session, 0xCF, counter),
                     _array_header(len(items)), *items))


def hello_body(sender: str, creation: int, flags: int, session: int, counter: int,
               announced: versions.VersionRange, is_answer: bool) -> bytes:
    """A hello frame's body: ``announced`` in one K_HELLO, written at its oldest version."""
    prefix = batch_prefix(sender, creation, flags | FLAG_HELLO, announced.oldest)
    item = codec.packb([node_messages.K_HELLO, announced.oldest, announced.newest, is_answer])
    return build_body(prefix, session, counter, [item])


_blake2b = hashlib.blake2b


def sign(key: bytes, body: bytes | memoryview) -> bytes:
    """The MAC of ``body`` (MAC_BYTES long)."""
    if len(body) < SMALL_BODY:
        return _blake2b(body, key=key, digest_size=MAC_BYTES).digest()
    return hmac.digest(key, body, "sha256")


def seal(key: bytes, body: bytes) -> bytes:
    """The frame for ``body``: the body followed by its MAC."""
    return body + sign(key, body)


def unseal(key: bytes, frame: bytes) -> memoryview | None:
    """The body of an authentic ``frame`` (a view, no copy), or None."""
    n = len(frame) - MAC_BYTES
    if n <= 0:
        return None
    view = memoryview(frame)
    body = view[:n]
    if not hmac.compare_digest(sign(key, body), view[n:]):
        return None
    return body


class BadFrame(ValueError):
    """A frame that authenticated but does not decode to a valid batch."""


def parse_any(body: bytes | memoryview) -> tuple[int, str, int, int, int, int, list[Any]]:
    """``(version, sender, creation, flags, session, counter, messages)`` of an
    authenticated body of any version (the caller checks the version); raises
    BadFrame."""
    try:
        decoded = codec.unpackb(body)
    except Exception as exc:  # msgpack raises several unrelated types
        raise BadFrame(f"undecodable body: {type(exc).__name__}") from None
    if not isinstance(decoded, list) or len(decoded) != 7:
        raise BadFrame("body is not a 7-element array")
    version, sender, creation, flags, session, counter, msgs = decoded
    if not (isinstance(version, int) and isinstance(sender, str) and isinstance(creation, int)
            and isinstance(flags, int) and isinstance(session, int) and isinstance(counter, int)):
        raise BadFrame("bad header fields")
    if not isinstance(msgs, list):
        raise BadFrame("messages are not an array")
    return version, sender, creation, flags, session, counter, msgs


def parse(body: bytes | memoryview) -> tuple[str, int, int, int, int, list[Any]]:
    """``(sender, creation, flags, session, counter, messages)`` of an authenticated
    body written at :data:`VERSION`; raises BadFrame."""
    version, sender, creation, flags, session, counter, msgs = parse_any(body)
    if version != VERSION:
        raise BadFrame(f"unsupported wire version {version!r}")
    return sender, creation, flags, session, counter, msgs
