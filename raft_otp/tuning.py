"""Process settings for a process that hosts Raft servers.

Python's cyclic garbage collector runs a generation-0 pass every 700 container
allocations by default.  A replicated command allocates hundreds of short-lived
containers in each process it crosses (messages, entries, effects), nearly all
freed by reference counting, so the default makes the collector run every few
commands on the latency path of a sequential command.  Raising the threshold
made the sequential p50 measurably lower (``docs/benchmarks.md``, "Latency,
fourth round").  Node processes started by ``raft_otp`` (``run_node``, the
console, the benchmarks) apply it; an application that hosts servers in its own
process may call :func:`tune_gc` itself.
"""

from __future__ import annotations

import gc

from raft_otp.errors import BadArgument

__all__ = ["DEFAULT_GC_THRESHOLD", "tune_gc"]

DEFAULT_GC_THRESHOLD = 50_000
"""Generation-0 threshold set by :func:`tune_gc` (Python's default: 700)."""


def tune_gc(threshold0: int = DEFAULT_GC_THRESHOLD) -> tuple[int, int, int]:
    """Set this process's collector thresholds to ``(threshold0, 50, 100)`` (``0``:
    leave them as they are); returns the thresholds in force before.  Garbage in
    reference cycles then waits longer to be collected (at most ``threshold0``
    container allocations, then the older generations less often), nothing else
    changes."""
    if not isinstance(threshold0, int) or isinstance(threshold0, bool) or threshold0 < 0:
        raise BadArgument(f"gc threshold must be an int >= 0, not {threshold0!r}")
    before: tuple[int, int, int] = gc.get_threshold()
    if threshold0:
        gc.set_threshold(threshold0, 50, 100)
    return before
