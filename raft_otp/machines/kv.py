"""A replicated key-value store with compare-and-set.

Commands (msgpack-able lists) and replies:

    ["put", key, value]            -> ["ok"]
    ["get", key]                   -> ["ok", value] | ["not_found"]
    ["cas", key, expected, new]    -> [True, new] on success | [False, current]
                                      (``expected`` None means "absent")
    ["delete", key]                -> ["ok"]

A malformed or unknown command raises ``ValueError``: its caller gets a
``MachineError`` naming the problem, and the state is unchanged.

The state is a dict copied on write (so a snapshot's state is never mutated
afterwards).  Config ``{"release_cursor_every": N}`` (default 1000) emits a
``ReleaseCursor`` every N applied commands.
"""

from __future__ import annotations

from typing import Any

from raft_otp.core.machine import ApplyMeta, Machine, ReleaseCursor

_MISSING = object()
_ARITY = {"get": 2, "put": 3, "delete": 2, "cas": 4}


def _check(command: Any) -> str:
    """The command's op, or ValueError saying what a well-formed command looks like."""
    if not isinstance(command, (list, tuple)) or not command:
        raise ValueError(f"a command is a list such as ['put', key, value], got {command!r}")
    op = command[0]
    arity = _ARITY.get(op) if isinstance(op, str) else None
    if arity is None:
        raise ValueError(f"unknown command {op!r}; known: {sorted(_ARITY)}")
    if len(command) != arity:
        raise ValueError(f"{op!r} takes {arity - 1} argument(s), got {len(command) - 1}: {command!r}")
    key = command[1]
    if isinstance(key, (list, dict)):
        raise ValueError(f"a key must be a str, bytes, number, bool or None, got {key!r}")
    return op


class KeyValue(Machine):
    def init(self, config: Any) -> dict[Any, Any]:
        return {}

    def _every(self) -> int:
        cfg = self.config if isinstance(self.config, dict) else {}
        return int(cfg.get("release_cursor_every", 1000))

    def apply(self, meta: ApplyMeta, command: Any, state: dict[Any, Any]) -> Any:
        op = _check(command)
        if op == "get":
            value = state.get(command[1], _MISSING)
            return state, (["not_found"] if value is _MISSING else ["ok", value])
        if op == "put":
            state = {**state, command[1]: command[2]}
            reply: Any = ["ok"]
        elif op == "delete":
            if command[1] in state:
                state = dict(state)
                del state[command[1]]
            reply = ["ok"]
        elif op == "cas":
            current = state.get(command[1])
            if current == command[2]:
                state = {**state, command[1]: command[3]}
                reply = [True, command[3]]
            else:
                reply = [False, current]
        else:  # pragma: no cover - _check knows every op
            raise AssertionError(op)
        every = self._every()
        if every and meta.index % every == 0:
            return state, reply, [ReleaseCursor(meta.index, state)]
        return state, reply

    def overview(self, state: dict[Any, Any]) -> Any:
        return {"keys": len(state)}
