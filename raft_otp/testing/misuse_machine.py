"""A machine (and queries) that misbehave on request, for the misuse tests on real
node processes (``tests/test_misuse_processes.py``): it lives in the package so a
node process can import it by path.

Commands:
    ["incr"]                 -> the new count
    ["now"]                  -> the entry time (``meta.system_time_ms``), also kept
                                per index in the state, so members can be compared
    ["raise", type, message] -> raises that built-in exception type
    ["bad_timer"]            -> returns a Timer effect with an unhashable name
"""

from __future__ import annotations

from typing import Any

from raft_otp.core.machine import ApplyMeta, Machine, Timer

_RAISABLE = {"KeyError": KeyError, "ValueError": ValueError, "RuntimeError": RuntimeError,
             "IndexError": IndexError}


class Misuse(Machine):
    def init(self, config: Any) -> dict[str, Any]:
        return {"count": 0, "times": []}

    def apply(self, meta: ApplyMeta, command: Any, state: dict[str, Any]) -> Any:
        op = command[0]
        if op == "incr":
            new = {**state, "count": state["count"] + 1}
            return new, new["count"]
        if op == "now":
            new = {**state, "times": state["times"] + [[meta.index, meta.system_time_ms]]}
            return new, meta.system_time_ms
        if op == "raise":
            raise _RAISABLE[command[1]](command[2])
        if op == "bad_timer":
            return {**state, "count": -1000}, "unreachable", [Timer({"a": 1}, 10)]
        raise ValueError(f"unknown command {op!r}")


def count(state: dict[str, Any]) -> int:
    return int(state["count"])


def whole(state: dict[str, Any]) -> dict[str, Any]:
    return state


def times(state: dict[str, Any]) -> list[list[int]]:
    return list(state["times"])


def raising_query(state: Any) -> Any:
    raise LookupError("this query always raises")


def unsendable_query(state: Any) -> Any:
    return object()  # not a msgpack value: cannot travel to another node
