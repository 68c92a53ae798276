"""A machine whose ``apply`` takes as long as its command says: for tests of what a
slow state machine does (and must not do) to the other clusters of its nodes.

Commands: ``["sleep", ms]`` sleeps ``ms`` milliseconds in ``apply`` and returns the
number of commands applied so far; ``["count"]`` returns it at once.

The state also counts the applies that ran on a delivering thread of the node
(its transport I/O thread or the WAL's notifier: a thread marked with
``supervisors.scheduler.mark_inline_thread``) rather than the scheduler's pool
(``io_applies``, a local query).  That count is a diagnostic that differs from
replica to replica (it is not a replicated fact): never a model for a real machine.
"""

from __future__ import annotations

import time
from typing import Any

from supervisors.scheduler import is_inline_thread

from raft_otp.core.machine import ApplyMeta, Machine



class Sleeper(Machine):
    def init(self, config: Any) -> list[int]:
        return [0, 0]  # applied commands, of which on the I/O thread

    def apply(self, meta: ApplyMeta, command: Any, state: list[int]) -> Any:
        if isinstance(command, list) and len(command) == 2 and command[0] == "sleep" \
                and isinstance(command[1], (int, float)) and 0 <= command[1] <= 10_000:
            time.sleep(command[1] / 1000.0)
            on_io = is_inline_thread()
            new = [state[0] + 1, state[1] + on_io]
            return new, new[0]
        if command == ["count"]:
            return state, state[0]
        raise ValueError(f"unknown command {command!r}")


def applied(state: list[int]) -> int:
    """Local query: commands applied by this replica."""
    return state[0]


def io_applies(state: list[int]) -> int:
    """Local query: of those, how many ran on a delivering (I/O or WAL) thread."""
    return state[1]
