"""The wire protocol of raft_otp in one place.

* ``versions``: the protocol versions this build knows and how two nodes agree one;
* ``node_messages``: the frame header and the node-level message kinds (``K_*``);
* ``schema``: how an application message is described (code, fields, kinds) and the
  converters derived from a description;
* ``messages``: the table of every application message (Raft RPCs, client requests,
  answers, system requests).

:func:`install` registers the table with the node codec (``raft_otp.node.codec``);
it is idempotent and is called wherever messages may first be encoded or decoded
(starting a system, importing the API).  Golden-bytes tests
(``tests/test_protocol_golden.py``) pin every type's encoding.

Changing the wire (what this session did not need yet, and how the pieces fit): a
new message type takes a free code in the table and a golden example; a changed
encoding of an existing one is a new protocol version: raise ``versions.NEWEST``,
keep reading and writing every version from ``versions.OLDEST`` on (a link writes
the version its hello agreed: ``PeerLink.version``), give the new version its own
golden bytes beside the old ones, and raise ``OLDEST`` only once no deployed build
needs the old version.

This package's ``__init__`` imports nothing heavy: ``raft_otp.node`` reads
``versions`` and ``node_messages`` without pulling in the server layer.
"""

from __future__ import annotations

import threading

__all__ = ["install"]

_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Register every message type of ``raft_otp.protocol.messages`` with the node codec
    (idempotent; raises TypeError if the table and a class disagree)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        from raft_otp.node.codec import register_wire_type
        from raft_otp.protocol.messages import MESSAGE_TYPES
        from raft_otp.protocol.schema import from_fields, to_fields

        for mt in MESSAGE_TYPES:
            mt.check_class()
            register_wire_type(mt.code, mt.cls, to_fields(mt), from_fields(mt))
        _installed = True
