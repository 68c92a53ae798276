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

A message is an array whose first element is its kind (the ``K_*`` table below).
``K_SEND`` is fire and forget, as Erlang's ``!``: a message for a name that is not
registered on the receiving node is dropped and counted (``unknown_dest``); Raft
RPCs between servers go this way and cost one registry lookup.  ``K_SEND_BOUNCE``
is the same send for a caller that waits for an answer at a reply address (a
``Mailbox``, see ``raft_otp.server.client.call``): it carries ``bounce_name``, a
name registered on the *sending* node, and when ``dest_name`` is not registered
(or its actor is dead) the receiving node answers ``[K_NOPROC, bounce_name,
dest_name]`` at once, and the sending node tells ``bounce_name`` a
``ServerNotFound`` naming the server and the node: the caller learns within a
round trip that nothing is running there instead of waiting out its timeout.
When the destination exists the message is delivered exactly as ``K_SEND`` (no
extra message, no extra lookup).  Kinds 7 and 8 were added without a version
change: a node that does not know them counts them in ``bad_msgs`` and drops
them (so a caller on a newer node waits out its timeout, as before).

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

__all__ = ["VERSION", "derive_key", "batch_prefix", "build_body", "sign", "seal", "unseal", "parse"]

VERSION = 3  # 2: no session and counter; 1: [body, HMAC-SHA256] in two parts
MAC_BYTES = 32
SMALL_BODY = 1 << 16  # bodies below this are MACed with keyed BLAKE2b, others HMAC-SHA256
FLAG_CLIENT = 1  # the sender is a temporary client (admin_call): reply over its socket

# Message kinds: the first element of every message array.
K_SEND = 0         # [K_SEND, dest_name, msg]
K_CALL = 1         # [K_CALL, dest_name, msg, call_id]
K_REPLY = 2        # [K_REPLY, call_id, ok, value | encoded error]
K_MONITOR = 3      # [K_MONITOR, target_name, monitor_id]
K_DEMONITOR = 4    # [K_DEMONITOR, monitor_id]
K_DOWN = 5         # [K_DOWN, monitor_id, reason]
K_ADMIN = 6        # [K_ADMIN, call_id, request]
K_SEND_BOUNCE = 7  # [K_SEND_BOUNCE, dest_name, msg, bounce_name]  as K_SEND; K_NOPROC back if no dest
K_NOPROC = 8       # [K_NOPROC, bounce_name, dest_name]  dest_name is not running on the sender

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SESSION_COUNTER = struct.Struct(">BQBQ")  # two msgpack uint64s: 0xcf + 8 bytes each


def derive_key(cookie: str | bytes) -> bytes:
    """The MAC key for a cookie (domain-separated so the raw cookie is never the key)."""
    raw = cookie.encode() if isinstance(cookie, str) else cookie
    return hashlib.sha256(b"raft_otp/node/v1\x00" + raw).digest()


def batch_prefix(sender: str, creation: int, flags: int = 0) -> bytes:
    """The constant start of every body this node sends (array of 7, first four fields)."""
    return b"\x97" + codec.packb(VERSION) + codec.packb(sender) + codec.packb(creation) + codec.packb(flags)


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


def parse(body: bytes | memoryview) -> tuple[str, int, int, int, int, list[Any]]:
    """``(sender, creation, flags, session, counter, messages)`` of an authenticated
    body; raises BadFrame."""
    try:
        decoded = codec.unpackb(body)
    except Exception as exc:  # msgpack raises several unrelated types
        raise BadFrame(f"undecodable body: {type(exc).__name__}") from None
    if not isinstance(decoded, list) or len(decoded) != 7:
        if isinstance(decoded, list) and decoded and decoded[0] != VERSION:
            raise BadFrame(f"unsupported wire version {decoded[0]!r}")
        raise BadFrame("body is not a 7-element array")
    version, sender, creation, flags, session, counter, msgs = decoded
    if version != VERSION:
        raise BadFrame(f"unsupported wire version {version!r}")
    if not (isinstance(sender, str) and isinstance(creation, int) and isinstance(flags, int)
            and isinstance(session, int) and isinstance(counter, int)):
        raise BadFrame("bad header fields")
    if not isinstance(msgs, list):
        raise BadFrame("messages are not an array")
    return sender, creation, flags, session, counter, msgs
