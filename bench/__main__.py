"""Benchmark runner: ``python -m bench [--only NAME ...] [--json] [--quick] [--clusters N]``.

``--clusters N`` is the number of clusters of the ``clusters`` part (and any part
module whose ``run`` takes ``clusters``).

Prints a table (or, with ``--json``, one JSON object per line per figure on
stdout) and writes ``bench/results/latest.json`` and ``latest.md``.  Results of
parts not run this time are kept from the previous ``latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import bench
from bench import PARTS
from bench.common import Figure

RESULTS = Path(__file__).resolve().parent / "results"


def _run_module(name: str, quick: bool, options: dict[str, Any] | None = None
                ) -> tuple[str, list[Figure], str | None]:
    """(status, figures, error text); status is ok, skipped or error.  ``options``
    (those not None) go to the module's ``run`` when it takes them."""
    try:
        mod = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return "skipped", [], "not implemented yet"
        return "error", [], traceback.format_exc()
    except Exception:
        return "error", [], traceback.format_exc()
    try:
        params = inspect.signature(mod.run).parameters
        extra = {k: v for k, v in (options or {}).items() if v is not None and k in params}
        return "ok", list(mod.run(quick=quick, **extra)), None
    except Exception:
        return "error", [], traceback.format_exc()


def _run_part(part: str, quick: bool, options: dict[str, Any] | None = None
              ) -> tuple[str, list[Figure], str | None, float]:
    """(status, figures, error text, seconds) over the part's modules: error if any
    module failed (the others' figures are kept), skipped if none exists."""
    t0 = time.perf_counter()
    figs: list[Figure] = []
    statuses, errors = [], []
    for name in bench.PART_MODULES.get(part, [part]):
        if len(bench.PART_MODULES.get(part, [part])) > 1:
            print(f"  {part}: {name} ...", file=sys.stderr, flush=True)
        status, more, err = _run_module(name, quick, options)
        statuses.append(status)
        figs += more
        if status == "error":
            errors.append(f"[{name}] {err}")
    if "error" in statuses:
        status = "error"
    elif all(s == "skipped" for s in statuses):
        return "skipped", [], "not implemented yet", 0.0
    else:
        status = "ok"
    return status, figs, "\n".join(errors) or None, time.perf_counter() - t0


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for part, res in results.items():
        if res["status"] != "ok":
            rows.append([part, f"({res['status']})", "", "", "", "", ""])
            continue
        for f in res["figures"]:
            rows.append([part, f["name"], _fmt(f["value"]), f["unit"], f["peer"],
                         _fmt(f["peer_value"]), _fmt(f["ratio"]) + ("x" if f["ratio"] else "")])
    return rows


HEADER = ["part", "figure", "value", "unit", "peer", "peer value", "ratio (>1 better)"]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    out = [f"# Benchmark results\n\n{meta['time']} on {meta['machine']}, Python "
           f"{meta['python']}, {meta['cpus']} CPUs{' (quick)' if meta['quick'] else ''}.\n",
           "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in _rows(results)]
    return "\n".join(out) + "\n"


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--only", nargs="+", action="extend", metavar="NAME", choices=PARTS,
                    help="run only these parts")
    ap.add_argument("--json", action="store_true", help="one JSON object per figure per line")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--clusters", type=_positive_int, metavar="N",
                    help="clusters in the clusters part (default 1000; 100 with --quick)")
    args = ap.parse_args(argv)
    parts = args.only or PARTS
    results: dict[str, Any] = {}
    failed = False
    for part in parts:
        if not args.json:
            print(f"running {part} ...", file=sys.stderr, flush=True)
        status, figs, err, secs = _run_part(part, args.quick, {"clusters": args.clusters})
        results[part] = {"status": status, "seconds": round(secs, 2),
                         "figures": [f.to_json() for f in figs], "error": err}
        if status == "error":
            failed = True
            print(f"bench part {part} failed ({len(figs)} figures kept):\n{err}", file=sys.stderr)
        elif status == "skipped":
            print(f"bench part {part}: skipped ({err})", file=sys.stderr)
        if args.json:
            for f in figs:
                print(json.dumps(f.to_json()), flush=True)
    meta = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.node(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "quick": args.quick,
            "clusters": args.clusters}
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    merged: dict[str, Any] = {}
    if latest.exists():
        try:
            merged = json.loads(latest.read_text()).get("parts", {})
        except (ValueError, OSError):
            merged = {}
    for part, res in results.items():
        if res["status"] != "skipped" or part not in merged:
            merged[part] = res
    ordered = {p: merged[p] for p in PARTS if p in merged}
    latest.write_text(json.dumps({"meta": meta, "parts": ordered}, indent=1) + "\n")
    (RESULTS / "latest.md").write_text(_markdown(ordered, meta))
    if not args.json:
        print(_table(_rows(results)))
        print(f"\nwritten {latest} and {RESULTS / 'latest.md'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
