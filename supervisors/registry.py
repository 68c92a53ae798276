"""Registered names on a node (Erlang's ``register/2`` and ``whereis/1``).

A supervisor re-registers a named child's new ActorRef after every restart, so
callers that address an actor by name are not broken by restarts.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_names: dict[str, Any] = {}


class NameTaken(Exception):
    """The name is registered to another live actor."""


def register(name: str, ref: Any) -> None:
    """Register ``ref`` (a pykka ActorRef or any object) under ``name``.

    Replaces a registration whose actor is no longer alive; raises NameTaken otherwise."""
    with _lock:
        old = _names.get(name)
        if old is not None and old is not ref and getattr(old, "is_alive", lambda: True)():
            raise NameTaken(name)
        _names[name] = ref


def unregister(name: str, ref: Any | None = None) -> None:
    """Remove ``name`` (only if it still points at ``ref``, when given)."""
    with _lock:
        if ref is None or _names.get(name) is ref:
            _names.pop(name, None)


def whereis(name: str) -> Any | None:
    """The live ref registered under ``name``, or None."""
    ref = _names.get(name)
    if ref is not None and not getattr(ref, "is_alive", lambda: True)():
        return None
    return ref


def registered() -> dict[str, Any]:
    """A copy of every registration."""
    with _lock:
        return dict(_names)
