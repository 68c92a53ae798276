"""A replicated counter (the canonical RA example machine).

Commands: ``["incr"]`` / ``["incr", n]`` → the new value; ``["get"]`` → the value.
Config ``{"release_cursor_every": N}`` emits ``ReleaseCursor`` every N applied
commands so the log gets snapshotted (0 = never).
"""

from __future__ import annotations

from typing import Any

from raft_otp.core.machine import ApplyMeta, Machine, ReleaseCursor


class Counter(Machine):
    def init(self, config: Any) -> int:
        return 0

    def apply(self, meta: ApplyMeta, command: Any, state: int) -> Any:
        op = command[0] if isinstance(command, list) and command else command
        if op == "incr":
            state = state + (command[1] if len(command) > 1 else 1)
            every = (self.config or {}).get("release_cursor_every", 0) if isinstance(self.config, dict) else 0
            if every and meta.index % every == 0:
                return state, state, [ReleaseCursor(meta.index, state)]
            return state, state
        if op == "get":
            return state, state
        return state, ["error", "unknown_command"]

    def overview(self, state: int) -> Any:
        return {"value": state}
