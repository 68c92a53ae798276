"""Interleaved A/B runs of the sequential latency of two commits:
``python -m bench.pairs REV_A REV_B [--rounds 7] [-n 2000] [--sync datasync]``.

On this 2-core VM one tree's sequential p50 moves by +/-20 % within minutes,
so a change is judged here only from pairs: each round runs commit A then
commit B back to back, each from its own ``git worktree`` (the node processes
inherit ``PYTHONPATH`` and so run that tree too).  A run is the bench's like
for like setup: a 3-member counter cluster whose leader is in the measuring
process (two node processes as followers), ``n`` sequential
``process_command`` calls after a warm-up.  Prints one line per run, then the
median p50 of each side, in how many pairs B was faster, the mean of the paired
differences, and the CPU per command summed over the three processes.  Not a
part of ``python -m bench``; ``docs/benchmarks.md`` ("Latency, fourth round")
quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

COUNTER = ("raft_otp.machines.counter:Counter", {})


@contextmanager
def local_leader_cluster(sync: str, name: str = "pairs") -> Iterator[tuple[Any, Any]]:
    """A 3-member counter cluster whose leader is a member in this process (a node and
    a system started here) and whose followers are two node processes; yields
    (the leader's id, the NodeProcs) after a warm-up of 250 commands, and stops all."""
    import raft_otp
    from raft_otp.core.types import ServerId
    from raft_otp.node import runtime as node_rt
    from raft_otp.system import runtime as sysrt
    from raft_otp.system.harness import NodeProcs, free_port
    from raft_otp.system.node_main import node_config

    base = tempfile.mkdtemp(prefix=f"raft_otp_{name}_")
    h = NodeProcs(base, 2, wal_sync_method=sync)
    try:
        h.start()
        me = f"n0@127.0.0.1:{free_port()}"
        node_rt.start_node(me, h.cookie, config=node_config())
        sysrt.start_system({"name": "default", "data_dir": os.path.join(base, "n0"), "wal_sync_method": sync})
        ids = [ServerId(name, me), h[0].sid(name), h[1].sid(name)]
        started, _ = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=20)
        if len(started) != 3:
            raise RuntimeError(f"cluster did not start: {started}")
        for _ in range(20):  # the leader must be the member in this process
            leader = raft_otp.ping(ids[0])
            if leader == ids[0]:
                break
            raft_otp.transfer_leadership(leader or ids[0], ids[0])
            time.sleep(0.3)
        else:
            raise RuntimeError("could not make the local member the leader")
        for _ in range(250):
            raft_otp.process_command(ids[0], ["incr"])
        yield ids[0], h
    finally:
        sysrt.stop_all()
        node_rt.stop_node()
        h.close()
        shutil.rmtree(base, ignore_errors=True)


def run_once(n: int, sync: str) -> dict[str, object]:
    """One run in this process, against whatever raft_otp is first on sys.path."""
    import psutil

    import raft_otp

    with local_leader_cluster(sync) as (leader, h):
        procs = [psutil.Process()] + [psutil.Process(p.pid) for p in h.nodes]

        def cpu() -> list[float]:
            return [sum(p.cpu_times()[:2]) for p in procs]
        c0 = cpu()
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            raft_otp.process_command(leader, ["incr"])
            lat.append(time.perf_counter() - t)
        c1 = cpu()
    lat.sort()
    return {"p50_ms": lat[n // 2] * 1e3, "p99_ms": lat[int(n * 0.99)] * 1e3,
            "cpu_us": [round((b - a) / n * 1e6) for a, b in zip(c0, c1)]}


def _run_in(tree: str, n: int, sync: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--run", "-n", str(n), "--sync", sync],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"run in {tree} failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def compare(rev_a: str, rev_b: str, rounds: int, n: int, sync: str) -> dict[str, object]:
    repo = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="raft_otp_pairs_trees_")
    trees = {}
    try:
        for label, rev in (("A", rev_a), ("B", rev_b)):
            path = os.path.join(tmp, label)
            subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", "-q", path, rev], check=True)
            trees[label] = path
        runs: dict[str, list[dict[str, object]]] = {"A": [], "B": []}
        for k in range(rounds):
            for label in ("A", "B"):
                r = _run_in(trees[label], n, sync)
                runs[label].append(r)
                print(f"round {k + 1} {label} p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms "
                      f"cpu/cmd {r['cpu_us']} us", flush=True)
    finally:
        for path in trees.values():
            subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", path], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    a = [float(r["p50_ms"]) for r in runs["A"]]  # type: ignore[arg-type]
    b = [float(r["p50_ms"]) for r in runs["B"]]  # type: ignore[arg-type]
    diffs = [y - x for x, y in zip(a, b)]
    summary = {
        "a": rev_a, "b": rev_b, "rounds": rounds, "n": n, "sync": sync,
        "a_p50_median_ms": round(statistics.median(a), 3), "b_p50_median_ms": round(statistics.median(b), 3),
        "b_faster_pairs": sum(d < 0 for d in diffs),
        "mean_diff_us": round(statistics.mean(diffs) * 1e3),
        "a_cpu_us_median": statistics.median(sum(r["cpu_us"]) for r in runs["A"]),  # type: ignore[arg-type]
        "b_cpu_us_median": statistics.median(sum(r["cpu_us"]) for r in runs["B"]),  # type: ignore[arg-type]
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pairs", description=__doc__.split("\n")[0])
    p.add_argument("revs", nargs="*", metavar="REV", help="the two commits to compare (A, then B)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("-n", type=int, default=2000, help="sequential commands per run")
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    p.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # one run, JSON out
    a = p.parse_args(argv)
    if a.n < 100 or a.rounds < 1:
        p.error("-n must be >= 100 and --rounds >= 1")
    if a.run:
        sys.path.insert(0, os.getcwd())  # the tree under test, before any installed copy
        print(json.dumps(run_once(a.n, a.sync)), flush=True)
        return 0
    if len(a.revs) != 2:
        p.error("give two commits: REV_A REV_B")
    s = compare(a.revs[0], a.revs[1], a.rounds, a.n, a.sync)
    print(f"A {s['a']}: p50 median {s['a_p50_median_ms']} ms, CPU/cmd {s['a_cpu_us_median']} us; "
          f"B {s['b']}: p50 median {s['b_p50_median_ms']} ms, CPU/cmd {s['b_cpu_us_median']} us; "
          f"B faster in {s['b_faster_pairs']} of {s['rounds']} pairs, mean difference {s['mean_diff_us']:+d} us")
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
