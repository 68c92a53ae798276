"""The arithmetic of ``bench.pairs``: per mode, the median of each side, the ratio
NEW/OLD of the medians, in how many pairs NEW was better, and the verdict against
issue 18's no-regression bar (pipelined commands/s at least 0.95x the old,
sequential p50 at most 1.05x the old).  Pure functions, no I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["Measure", "MEASURES", "ModeSummary", "summarize", "markdown_table"]


@dataclass(frozen=True)
class Measure:
    """What a mode's runs are judged on: the figure's key in a run's JSON, its unit,
    which way is better, and the bar on the ratio NEW/OLD of the medians."""

    title: str
    key: str
    unit: str
    higher_is_better: bool
    bar: float

    def passes(self, ratio: float) -> bool:
        """Whether NEW/OLD = ``ratio`` meets the bar (>= it when higher is better, else <=)."""
        return ratio >= self.bar if self.higher_is_better else ratio <= self.bar

    def better(self, old: float, new: float) -> bool:
        """Whether ``new`` beats ``old`` (strictly)."""
        return new > old if self.higher_is_better else new < old

    @property
    def bar_text(self) -> str:
        """The bar as written in the table: ">= 0.95" or "<= 1.05"."""
        return f"{'>=' if self.higher_is_better else '<='} {self.bar:g}"


MEASURES: dict[str, Measure] = {
    "leader": Measure("sequential p50, caller in the leader's process",
                      "p50_ms", "ms", False, 1.05),
    "client": Measure("sequential p50, caller on a port-less client node",
                      "p50_ms", "ms", False, 1.05),
    "pipelined": Measure("pipelined commands/s, from a client node", "rate", "cmd/s", True, 0.95),
}
"""The modes of ``bench.pairs`` and their bars (issue 18, "No regression")."""


@dataclass(frozen=True)
class ModeSummary:
    """One mode's pairs, summarized."""

    mode: str
    old_median: float
    new_median: float
    ratio: float
    new_better_pairs: int
    pairs: int
    bar: float
    passed: bool
    old_cpu_us_median: float
    new_cpu_us_median: float

    def to_json(self) -> dict[str, Any]:
        m = MEASURES[self.mode]
        return {"mode": self.mode, "title": m.title, "key": m.key, "unit": m.unit,
                "old_median": self.old_median, "new_median": self.new_median,
                "ratio": round(self.ratio, 4), "new_better_pairs": self.new_better_pairs,
                "pairs": self.pairs, "bar": m.bar_text,
                "result": "PASS" if self.passed else "FAIL",
                "old_cpu_us_median": self.old_cpu_us_median,
                "new_cpu_us_median": self.new_cpu_us_median}


def summarize(mode: str, old_runs: Sequence[dict[str, Any]],
              new_runs: Sequence[dict[str, Any]]) -> ModeSummary:
    """Summarize a mode's runs; ``old_runs[k]`` and ``new_runs[k]`` are round ``k``'s pair.
    Each run is a run's JSON: the mode's figure (``MEASURES[mode].key``) and
    ``cpu_us``, the CPU per command of each process (summed here)."""
    if not old_runs or len(old_runs) != len(new_runs):
        raise ValueError(f"{mode}: need as many OLD as NEW runs, at least one "
                         f"({len(old_runs)}, {len(new_runs)})")
    m = MEASURES[mode]
    old = [float(r[m.key]) for r in old_runs]
    new = [float(r[m.key]) for r in new_runs]
    old_median, new_median = statistics.median(old), statistics.median(new)
    if old_median <= 0:
        raise ValueError(f"{mode}: OLD median {old_median} is not positive")
    ratio = new_median / old_median
    return ModeSummary(
        mode=mode, old_median=old_median, new_median=new_median, ratio=ratio,
        new_better_pairs=sum(m.better(o, n) for o, n in zip(old, new)), pairs=len(old),
        bar=m.bar, passed=m.passes(ratio),
        old_cpu_us_median=statistics.median(sum(r["cpu_us"]) for r in old_runs),
        new_cpu_us_median=statistics.median(sum(r["cpu_us"]) for r in new_runs))


def _fmt(value: float, unit: str) -> str:
    return f"{value:.3f} {unit}" if unit == "ms" else f"{value:,.0f} {unit}"


def markdown_table(old: str, new: str, summaries: Sequence[ModeSummary]) -> str:
    """The summaries as a Markdown table (the form ``docs/benchmarks.md`` quotes)."""
    lines = [f"| measure | OLD {old} | NEW {new} | NEW/OLD | NEW better | CPU/cmd OLD -> NEW "
             "| bar | result |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        m = MEASURES[s.mode]
        lines.append(f"| {s.mode}: {m.title} "
                     f"| {_fmt(s.old_median, m.unit)} | {_fmt(s.new_median, m.unit)} "
                     f"| {s.ratio:.3f} | {s.new_better_pairs} of {s.pairs} "
                     f"| {s.old_cpu_us_median:.0f} -> {s.new_cpu_us_median:.0f} us "
                     f"| {m.bar_text} | {'PASS' if s.passed else 'FAIL'} |")
    return "\n".join(lines)
