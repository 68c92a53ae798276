"""Interleaved A/B runs of two commits:
``python -m bench.pairs OLD NEW [--rounds 8] [-n 2000] [--modes leader,client,pipelined] [--json]``.

On this 2-core VM one tree's sequential p50 moves by +/-20 % within minutes,
so a change is judged here only from pairs: each round runs every mode for both
commits back to back, OLD first in odd rounds and NEW first in even ones (so a
drift falls on both sides alike), each from its own ``git worktree`` (the run is
``bench/pairs_runs.py`` of this checkout, with the tree as working directory and
``PYTHONPATH``: that tree's ``raft_otp`` runs in it and in its node processes).
The modes (``bench.pairs_runs``):

* ``leader``: sequential ``process_command`` p50, the caller in the leader's
  process (two node processes as followers), ``n`` commands after a warm-up;
* ``client``: the same from a port-less client node (``raft_otp.connect``)
  against a cluster on three node processes;
* ``pipelined``: pipelined commands/s from a client node against a cluster on
  three node processes, ``bench.cluster``'s frame and in-flight window, for
  ``--seconds``.

Prints one line per run, then per mode the median of each side, the ratio
NEW/OLD, in how many pairs NEW was better and the verdict against issue 18's
no-regression bar (``bench.pairs_summary``: pipelined >= 0.95x, p50 <= 1.05x) as
a Markdown table; ``--json`` prints the summary as one JSON object on stdout (the
rest then goes to stderr).  Not a part of ``python -m bench``;
``docs/benchmarks.md`` quotes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, TextIO

from bench.pairs_runs import MODES, local_leader_cluster
from bench.pairs_summary import ModeSummary, markdown_table, summarize

__all__ = ["compare", "local_leader_cluster", "main", "resolve_commit", "round_order"]

_log = logging.getLogger("bench.pairs")
RUNS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs_runs.py")
RUN_TIMEOUT_S = 600


def round_order(k: int) -> tuple[str, str]:
    """Which side runs first in round ``k`` (0-based): OLD in even rounds, NEW in odd."""
    return ("OLD", "NEW") if k % 2 == 0 else ("NEW", "OLD")


def _run_in(tree: str, mode: str, args: list[str]) -> dict[str, Any]:
    """One run of ``mode`` in ``tree`` (``bench/pairs_runs.py`` of this checkout); its JSON."""
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, RUNS_SCRIPT, mode, *args], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} run in {tree} failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    ran = os.path.realpath(str(result.get("raft_otp", "")))
    if os.path.dirname(ran) != os.path.realpath(tree):
        raise RuntimeError(f"{mode} run in {tree} ran the raft_otp in {ran}")
    return result


def _run_retrying(tree: str, mode: str, args: list[str]) -> dict[str, Any]:
    """A run, tried once more if it fails (a cluster that did not start on a loaded box
    should not cost an hour of pairs); the second failure is raised."""
    try:
        return _run_in(tree, mode, args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        _log.warning("retrying once: %s", exc)
        return _run_in(tree, mode, args)


def _run_line(k: int, mode: str, side: str, r: dict[str, Any]) -> str:
    cpu = f"cpu/cmd {r['cpu_us']} us"
    if mode == "pipelined":
        return f"round {k + 1} {mode} {side} {r['rate']:,.0f} cmd/s {cpu}"
    return f"round {k + 1} {mode} {side} p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms {cpu}"


def resolve_commit(rev: str) -> str | None:
    """``rev``'s commit as an abbreviated hash in the checkout of the working directory,
    or None if it names no commit (the name "HEAD" moves; the hash says what ran)."""
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "--short=9", f"{rev}^{{commit}}"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def compare(old: str, new: str, rounds: int, modes: list[str], run_args: list[str],
            out: TextIO = sys.stdout) -> list[ModeSummary]:
    """Run ``rounds`` rounds of every mode for both commits (each from its own worktree,
    removed afterwards), printing a line per run to ``out``; each mode's summary."""
    repo = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="raft_otp_pairs_trees_")
    trees: dict[str, str] = {}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"OLD": [], "NEW": []} for m in modes}
    try:
        for side, rev in (("OLD", old), ("NEW", new)):
            path = os.path.join(tmp, side)
            subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", "-q", path, rev],
                           check=True)
            trees[side] = path
        for k in range(rounds):
            for mode in modes:
                for side in round_order(k):
                    r = _run_retrying(trees[side], mode, run_args)
                    runs[mode][side].append(r)
                    print(_run_line(k, mode, side, r), file=out, flush=True)
    finally:
        for path in trees.values():
            subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", path], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return [summarize(m, runs[m]["OLD"], runs[m]["NEW"]) for m in modes]


def _parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(
            f"modes are a comma-separated subset of {','.join(MODES)}, got {text!r}")
    return modes


def main(argv: list[str] | None = None) -> int:
    from bench.cluster import FRAME, WINDOW  # the pipelined figure's frame and in-flight depth

    p = argparse.ArgumentParser(prog="python -m bench.pairs", description=__doc__.split("\n")[0])
    p.add_argument("revs", nargs="*", metavar="REV",
                   help="the two commits to compare: OLD, then NEW")
    p.add_argument("--rounds", type=int, default=8, help="pairs per mode")
    p.add_argument("-n", type=int, default=2000,
                   help="sequential commands per run (leader, client)")
    p.add_argument("--seconds", type=float, default=6.0, help="pipelined load per run")
    p.add_argument("--modes", type=_parse_modes, default=list(MODES),
                   help=f"comma-separated, of {','.join(MODES)} (default all)")
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    p.add_argument("--json", action="store_true",
                   help="the summary as JSON on stdout, the rest on stderr")
    a = p.parse_args(argv)
    if a.n < 100 or a.rounds < 1 or a.seconds <= 0:
        p.error("-n must be >= 100, --rounds >= 1 and --seconds > 0")
    if len(a.revs) != 2:
        p.error("give two commits: OLD NEW")
    old, new = (resolve_commit(r) for r in a.revs)
    if old is None or new is None:
        p.error(f"not a commit: {a.revs[0] if old is None else a.revs[1]}")
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    out = sys.stderr if a.json else sys.stdout
    run_args = ["-n", str(a.n), "--seconds", str(a.seconds), "--sync", a.sync,
                "--frame", str(FRAME), "--window", str(WINDOW)]
    print(f"OLD {a.revs[0]} = {old}, NEW {a.revs[1]} = {new}", file=out, flush=True)
    summaries = compare(old, new, a.rounds, a.modes, run_args, out)
    print(markdown_table(old, new, summaries), file=out, flush=True)
    if a.json:
        print(json.dumps({"old": old, "new": new, "old_rev": a.revs[0], "new_rev": a.revs[1],
                          "rounds": a.rounds, "n": a.n,
                          "seconds": a.seconds, "sync": a.sync, "frame": FRAME, "window": WINDOW,
                          "modes": [s.to_json() for s in summaries],
                          "passed": all(s.passed for s in summaries)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
