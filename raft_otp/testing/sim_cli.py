"""Command line of the simulator (``python -m raft_otp.testing.sim``)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from typing import Any


def _run(args: tuple[int, int, int, str | None, bool]) -> tuple[int, bool, str, dict[str, Any]]:
    from raft_otp.testing.sim import mutation_by_name, run_seed

    seed, servers, steps, mutation, trace = args
    ok, report, summary = run_seed(seed, servers, steps, mutation_by_name(mutation), trace)
    return seed, ok, report, summary


def run_many(seeds: int, steps: int = 2000, servers: int = 3, seed_start: int = 0, jobs: int = 1,
             mutation: str | None = None, trace: bool = False, stop_at_first: bool = False
             ) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
    work = [(seed_start + i, servers, steps, mutation, trace) for i in range(seeds)]
    failures: list[tuple[int, str]] = []
    summaries: list[dict[str, Any]] = []
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for seed, ok, report, summary in pool.imap_unordered(_run, work, chunksize=4):
                summaries.append(summary)
                if not ok:
                    failures.append((seed, report))
                    if stop_at_first:
                        pool.terminate()
                        break
    else:
        for item in work:
            seed, ok, report, summary = _run(item)
            summaries.append(summary)
            if not ok:
                failures.append((seed, report))
                if stop_at_first:
                    break
    failures.sort()
    return failures, summaries


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raft_otp.testing.sim", description=__doc__)
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--servers", type=int, choices=(3, 5), default=3)
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--mutation", default=None, help="NAME[,NAME]: break these Raft rules (raft_otp.testing.mutations)")
    p.add_argument("--trace", action="store_true", help="record every delivered event in failure traces")
    p.add_argument("--verbose", action="store_true", help="print the full report of each failing seed")
    a = p.parse_args(argv)
    from raft_otp.errors import BadArgument
    from raft_otp.testing.mutations import parse_names
    try:
        parse_names(a.mutation)
    except BadArgument as exc:
        p.error(f"--mutation: {exc}")
    t0 = time.perf_counter()
    failures, summaries = run_many(a.seeds, a.steps, a.servers, a.seed_start, a.jobs, a.mutation, a.trace)
    elapsed = time.perf_counter() - t0
    for seed, report in failures:
        if a.verbose:
            print(report)
        else:
            print(report.splitlines()[0])
        print(f"replay: python -m raft_otp.testing.sim --seeds 1 --seed-start {seed} --steps {a.steps} "
              f"--servers {a.servers}{' --mutation ' + a.mutation if a.mutation else ''} --trace --verbose")
    acked = sum(s.get("acked", 0) for s in summaries)
    elections = sum(s.get("elections", 0) for s in summaries)
    print(f"# acked increments {acked}, leaders elected {elections}, elapsed {elapsed:.1f}s", file=sys.stderr)
    print(json.dumps({"seeds": a.seeds, "steps": a.steps, "violations": len(failures),
                      "seeds_per_s": round(a.seeds / elapsed, 2) if elapsed > 0 else None}))
    return 0 if not failures else 1
