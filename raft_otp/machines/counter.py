"""A replicated counter (the canonical RA example machine).

Commands: ``["incr"]`` / ``["incr", n]`` → the new value; ``["get"]`` → the value.
Anything else raises ``ValueError`` (the caller gets a ``MachineError``).
Config ``{"release_cursor_every": N}`` (default 1000, as ``kv`` and ``lock``) emits
``ReleaseCursor`` at every N-th log index so the log gets snapshotted and compacted
(0 = never: the whole log is kept).
"""

from __future__ import annotations

from typing import Any

from raft_otp.core.machine import ApplyMeta, Machine, ReleaseCursor


RELEASE_CURSOR_EVERY = 1000


class Counter(Machine):
    @property
    def release_cursor_every(self) -> int:
        """``release_cursor_every`` of the config (default 1000; 0: never)."""
        cfg = self.config if isinstance(self.config, dict) else {}
        every = cfg.get("release_cursor_every", RELEASE_CURSOR_EVERY)
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"release_cursor_every must be an int >= 0, got {every!r}")
        return every

    def init(self, config: Any) -> int:
        return 0

    def apply(self, meta: ApplyMeta, command: Any, state: int) -> Any:
        op = command[0] if isinstance(command, list) and command else command
        if op == "incr":
            if not isinstance(command, list) or len(command) > 2:
                raise ValueError(f"incr takes at most one argument: {command!r}")
            n = command[1] if len(command) > 1 else 1
            if isinstance(n, bool) or not isinstance(n, int):
                raise ValueError(f"incr needs an integer, got {n!r}")
            state = state + n
            every = self.release_cursor_every
            if every and meta.index % every == 0:
                return state, state, [ReleaseCursor(meta.index, state)]
            return state, state
        if op == "get":
            return state, state
        raise ValueError(f"unknown command {command!r}; known: ['incr'], ['incr', n], ['get']")

    def overview(self, state: int) -> Any:
        return {"value": state}
