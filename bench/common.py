"""Shared pieces of the benchmark runner: the :class:`Figure` every part returns
and small timing helpers.

Each part is a module ``bench/<part>.py`` with ``run(quick: bool = False) ->
list[Figure]``; every figure is printed next to its peer (a limit or a rival
measured in the same run) and the ratio, oriented so that higher is better.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["Figure", "percentile", "median", "time_per_op", "now"]

now = time.perf_counter


@dataclass
class Figure:
    """One measured figure and the peer it is compared with."""

    name: str
    value: float
    unit: str
    peer: str
    peer_value: float
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """value/peer_value if higher is better, else peer_value/value (>1 means we win)."""
        num, den = ((self.value, self.peer_value) if self.higher_is_better
                    else (self.peer_value, self.value))
        if den == 0:
            return math.inf if num > 0 else math.nan
        return num / den

    def to_json(self) -> dict[str, Any]:
        """The JSON-line form: name, value, unit, peer, peer_value, ratio."""
        r = self.ratio
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "peer": self.peer,
            "peer_value": self.peer_value,
            "ratio": r if math.isfinite(r) else None,
        }


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by nearest rank."""
    if not samples:
        return math.nan
    xs = sorted(samples)
    k = max(0, min(len(xs) - 1, math.ceil(p / 100.0 * len(xs)) - 1))
    return xs[k]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def time_per_op(fn: Callable[[], Any], n: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` seconds per call of ``fn`` over ``n`` calls."""
    best = math.inf
    for _ in range(repeat):
        t0 = now()
        for _ in range(n):
            fn()
        best = min(best, (now() - t0) / n)
    return best
