"""Ready-made queries that travel by import path (``"raft_otp.system.queries:state"``).

A query sent to a server on another node must be a module-level function the
remote node can import; these cover the built-in machines.
"""

from __future__ import annotations

from typing import Any


def state(machine_state: Any) -> Any:
    """The whole machine state (counter value, key-value dict)."""
    return machine_state


def get(machine_state: Any, key: Any, default: Any = None) -> Any:
    """``machine_state.get(key, default)`` for the key-value machine."""
    return machine_state.get(key, default)


def size(machine_state: Any) -> int:
    """``len(machine_state)``."""
    return len(machine_state)
