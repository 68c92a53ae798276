"""Goal: the bench runner contract (Figure, JSON lines, skipped parts, result files) holds."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root

import bench  # noqa: E402
import bench.__main__ as runner  # noqa: E402
from bench.common import Figure, percentile  # noqa: E402


def test_figure_ratio_is_oriented_so_higher_is_better():
    assert Figure("t", 200.0, "ops/s", "peer", 100.0).ratio == 2.0
    assert Figure("l", 2.0, "ms", "peer", 1.0, higher_is_better=False).ratio == 0.5
    j = Figure("z", 0.0, "ms", "peer", 1.0, higher_is_better=False).to_json()
    assert j["ratio"] is None and set(j) == {"name", "value", "unit", "peer", "peer_value", "ratio"}
    assert math.isclose(percentile(list(range(1, 101)), 99), 99)


@pytest.fixture
def fake_part(monkeypatch, tmp_path):
    mod = types.ModuleType("bench.fakepart")
    mod.run = lambda quick=False: [Figure("f", 3.0, "x", "p", 1.5), Figure("g", 1.0, "ms", "p",
                                                                           2.0, False)]
    broken = types.ModuleType("bench.brokenpart")

    def boom(quick=False):
        raise RuntimeError("part failed")
    broken.run = boom
    monkeypatch.setitem(sys.modules, "bench.fakepart", mod)
    monkeypatch.setitem(sys.modules, "bench.brokenpart", broken)
    monkeypatch.setattr(bench, "PARTS", bench.PARTS + ["fakepart", "brokenpart", "nosuchpart"])
    monkeypatch.setattr(runner, "PARTS", bench.PARTS)
    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    return tmp_path


def test_runner_json_lines_skips_missing_parts_and_writes_results(fake_part, capsys):
    rc = runner.main(["--only", "fakepart", "nosuchpart", "--json"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["name"], x["ratio"]) for x in lines] == [("f", 2.0), ("g", 2.0)]
    latest = json.loads((fake_part / "latest.json").read_text())
    assert latest["parts"]["nosuchpart"]["status"] == "skipped"
    assert latest["parts"]["fakepart"]["figures"][0]["value"] == 3.0
    assert "| fakepart | f |" in (fake_part / "latest.md").read_text()


def test_runner_reports_a_failing_part_and_keeps_others(fake_part, capsys):
    assert runner.main(["--only", "fakepart"]) == 0
    rc = runner.main(["--only", "brokenpart"])
    assert rc == 1
    out = capsys.readouterr()
    assert "part failed" in out.err
    parts = json.loads((fake_part / "latest.json").read_text())["parts"]
    assert parts["brokenpart"]["status"] == "error"
    assert parts["fakepart"]["status"] == "ok"  # kept from the previous run
