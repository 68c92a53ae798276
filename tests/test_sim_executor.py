"""The simulator runs the production effect executor (``raft_otp.server.executor``):
an effect broken there, on purpose, is a violation the simulator reports."""

from __future__ import annotations

from typing import Any

import pytest

from raft_otp.core import effects as fx
from raft_otp.server import executor as executor_mod
from raft_otp.testing import sim


def _first_violation(seeds: range, servers: int = 3) -> str | None:
    for seed in seeds:
        ok, report, _ = sim.run_seed(seed, servers=servers, steps=3000)
        if not ok:
            return report
    return None


def test_the_simulator_runs_the_production_executor() -> None:
    s = sim.Simulation(1, 3, 10)
    assert all(type(srv.executor) is executor_mod.Executor
               for srv in s.servers.values() if srv.alive)


def test_correct_executor_passes_the_same_seeds() -> None:
    assert _first_violation(range(40)) is None


@pytest.mark.parametrize("broken", ["votes_not_durable", "replies_a_wrong_value"])
def test_an_effect_broken_in_the_executor_is_a_violation(monkeypatch: pytest.MonkeyPatch,
                                                         broken: str) -> None:
    real = executor_mod.Executor.execute

    def execute(self: executor_mod.Executor, effects: list[Any]) -> None:
        out = []
        for e in effects:
            if broken == "votes_not_durable" and type(e) is fx.PersistMeta:
                continue  # term and vote forgotten at the next crash: two votes in a term
            if broken == "replies_a_wrong_value" and type(e) is fx.Reply and \
                    isinstance(e.value, int):
                e = fx.Reply(e.to, e.value + 1, e.leader)  # an answer the machine never gave
            out.append(e)
        real(self, out)

    monkeypatch.setattr(executor_mod.Executor, "execute", execute)
    report = _first_violation(range(300))
    assert report is not None, f"breaking {broken} in the executor went unnoticed"
    assert "VIOLATION" in report
