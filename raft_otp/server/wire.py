"""Kept for callers of ``register_all``: the wire registration of the server layer's
messages is now one table in ``raft_otp.protocol.messages``, installed by
:func:`raft_otp.protocol.install` (codes, fields and their kinds; no guessing of
``ServerId`` fields from their names)."""

from __future__ import annotations

from raft_otp.protocol import install

__all__ = ["register_all"]


def register_all() -> None:
    """Register every application message type with the node codec (idempotent)."""
    install()
