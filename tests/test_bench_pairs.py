"""Goal: bench.pairs (issue 18's no-regression pairs) alternates which side runs first,
summarizes each mode right (medians, ratio NEW/OLD, pairs NEW won, PASS/FAIL against
0.95x / 1.05x), refuses bad arguments, and its per-tree runs work in every mode."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ lives at the repo root

from bench import pairs  # noqa: E402
from bench.pairs_summary import MEASURES, markdown_table, summarize  # noqa: E402


def _runs(key: str, values: list[float], cpu: list[int] | None = None) -> list[dict[str, object]]:
    return [{key: v, "cpu_us": cpu or [100, 50, 50]} for v in values]


def test_rounds_alternate_which_side_goes_first() -> None:
    assert [pairs.round_order(k) for k in range(4)] == [
        ("OLD", "NEW"), ("NEW", "OLD"), ("OLD", "NEW"), ("NEW", "OLD")]


def test_p50_summary_medians_ratio_wins_and_bar() -> None:
    old = _runs("p50_ms", [1.0, 1.2, 0.8, 1.1])       # median 1.05
    new = _runs("p50_ms", [0.9, 1.3, 0.9, 1.0])       # median 0.95; lower in pairs 1 and 4
    s = summarize("leader", old, new)
    assert (s.old_median, s.new_median) == pytest.approx((1.05, 0.95))
    assert s.ratio == pytest.approx(0.95 / 1.05)
    assert (s.new_better_pairs, s.pairs, s.passed) == (2, 4, True)
    assert s.old_cpu_us_median == 200 and s.new_cpu_us_median == 200


def test_p50_bar_is_at_most_1_05() -> None:
    assert summarize("client", _runs("p50_ms", [1.0]), _runs("p50_ms", [1.05])).passed
    slower = summarize("client", _runs("p50_ms", [1.0, 1.0]), _runs("p50_ms", [1.06, 0.9]))
    assert slower.ratio == pytest.approx(0.98) and slower.passed  # the ratio of medians decides
    failed = summarize("client", _runs("p50_ms", [1.0, 1.0, 1.0]), _runs("p50_ms", [1.2, 0.5, 1.1]))
    assert failed.ratio == pytest.approx(1.1) and not failed.passed and failed.new_better_pairs == 1


def test_pipelined_bar_is_at_least_0_95_and_higher_is_better() -> None:
    s = summarize("pipelined", _runs("rate", [1000, 1000, 1000]), _runs("rate", [960, 1100, 900]))
    assert s.ratio == pytest.approx(0.96) and s.passed and s.new_better_pairs == 1
    s = summarize("pipelined", _runs("rate", [1000, 1000]), _runs("rate", [940, 940]))
    assert s.ratio == pytest.approx(0.94) and not s.passed and s.new_better_pairs == 0
    # a tie is not a win
    tie = summarize("pipelined", _runs("rate", [1000]), _runs("rate", [1000]))
    assert tie.new_better_pairs == 0 and tie.passed


def test_summary_refuses_unpaired_runs() -> None:
    with pytest.raises(ValueError):
        summarize("leader", _runs("p50_ms", [1.0, 1.0]), _runs("p50_ms", [1.0]))
    with pytest.raises(ValueError):
        summarize("leader", [], [])


def test_table_and_json_carry_the_verdicts() -> None:
    ok = summarize("leader", _runs("p50_ms", [1.0]), _runs("p50_ms", [0.9]))
    bad = summarize("pipelined", _runs("rate", [1000.0]), _runs("rate", [500.0]))
    table = markdown_table("abc", "def", [ok, bad]).splitlines()
    assert len(table) == 4 and "OLD abc" in table[0] and "NEW def" in table[0]
    assert table[2].startswith("| leader:") and table[2].endswith("| <= 1.05 | PASS |")
    assert table[3].startswith("| pipelined:") and table[3].endswith("| >= 0.95 | FAIL |")
    assert "0.500" in table[3] and "1,000 cmd/s" in table[3]
    j = bad.to_json()
    assert (j["mode"], j["result"], j["ratio"], j["bar"]) == ("pipelined", "FAIL", 0.5, ">= 0.95")
    assert set(MEASURES) == {"leader", "client", "pipelined"}


def test_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["HEAD"], [], ["HEAD", "HEAD", "-n", "10"], ["HEAD", "HEAD", "--rounds", "0"],
                 ["HEAD", "HEAD", "--modes", "leader,nope"], ["HEAD", "HEAD", "--modes", ""],
                 ["HEAD", "HEAD", "--seconds", "0"], ["HEAD", "no-such-commit-h6"]):
        with pytest.raises(SystemExit) as exc:
            pairs.main(argv)
        assert exc.value.code == 2, argv
    err = capsys.readouterr().err
    assert "give two commits" in err and "modes are a comma-separated subset" in err
    assert "not a commit: no-such-commit-h6" in err


def test_the_per_tree_run_imports_nothing_from_bench() -> None:
    """pairs_runs.py runs with an older tree's bench/ package on the path: importing
    from bench there would measure with that tree's code on one side only."""
    tree = ast.parse((ROOT / "bench" / "pairs_runs.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if m == "bench" or m.startswith("bench.")], names


@pytest.mark.processes
@pytest.mark.parametrize("mode,args", [("leader", ["-n", "100"]), ("client", ["-n", "100"]),
                                       ("pipelined", ["--seconds", "0.5", "--window", "2000"])])
def test_a_run_in_this_tree(mode: str, args: list[str]) -> None:
    """One run of each mode in this tree, as bench.pairs starts it (by path, the tree as
    working directory): its JSON has the mode's figure and a CPU figure per process."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pairs_runs.py"), mode, *args],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    assert os.path.realpath(r["raft_otp"]) == str(ROOT / "raft_otp"), r  # the tree it started in
    key = MEASURES[mode].key
    assert r[key] > 0, r
    if mode == "pipelined":
        assert r["applied"] >= 2000 and len(r["cpu_us"]) == 4, r  # client + 3 nodes
    else:
        assert r["p99_ms"] >= r["p50_ms"] > 0.05, r
        assert len(r["cpu_us"]) == (3 if mode == "leader" else 4), r
        assert sum(r["cpu_us"]) > 20, r  # a replicated command costs CPU somewhere
