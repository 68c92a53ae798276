"""Goal: broken Raft rules reach a system's servers only through the Python call that starts it (tests); no production entry point, config key or environment variable selects one."""

from __future__ import annotations

import ast
import inspect
import os
import pathlib
import pickle
import subprocess
import sys
from typing import Any

import pytest

import raft_otp
from raft_otp import Machine, ServerId
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.core.state import ServerState
from raft_otp.errors import BadArgument, ConfigError
from raft_otp.system.config import FIELD_NAMES, SystemConfig
from raft_otp.system.harness import NodeProcs
from raft_otp.testing import mutations as mut
from raft_otp.testing.mutations import MUTATIONS, mutations_of, rules_for

ROOT = pathlib.Path(raft_otp.__file__).resolve().parent.parent
RULE_METHODS = {n for n, f in vars(Rules).items() if inspect.isfunction(f) and not n.startswith("_")}


def _overridden(cls: type) -> set[str]:
    return {n for n in RULE_METHODS if getattr(cls, n) is not getattr(Rules, n)}


# ---- building rules ---------------------------------------------------------------------

def test_the_nine_mutations_each_break_rules_of_their_own() -> None:
    assert sorted(MUTATIONS) == sorted([
        "commit_old_term_by_counting", "vote_for_stale_log", "consistent_query_without_heartbeat",
        "ack_before_durable", "leader_commit_own_unwritten", "reply_before_commit",
        "no_check_quorum", "ignore_vote_damage", "vote_despite_data_loss"])
    seen: set[str] = set()
    for name, cls in MUTATIONS.items():
        broken = _overridden(cls)
        assert broken, f"{name} breaks no rule"
        assert not broken & seen, f"{name} breaks a rule another mutation breaks: {broken & seen}"
        seen |= broken
        assert mutations_of(rules_for(name)) == (name,)
    assert _overridden(Rules) == set()


def test_rules_for_names_lists_and_combinations() -> None:
    assert rules_for("") is RAFT_RULES and rules_for(None) is RAFT_RULES and rules_for([]) is RAFT_RULES
    two = rules_for(" vote_for_stale_log, ack_before_durable")
    assert mutations_of(two) == ("vote_for_stale_log", "ack_before_durable")
    assert _overridden(type(two)) == (_overridden(MUTATIONS["vote_for_stale_log"])
                                      | _overridden(MUTATIONS["ack_before_durable"]))
    assert two == rules_for(["vote_for_stale_log", "ack_before_durable"])
    assert two != rules_for("vote_for_stale_log") and two != RAFT_RULES
    assert isinstance(two, Rules) and mutations_of(RAFT_RULES) == ()
    assert pickle.loads(pickle.dumps(two)) == two  # a combination is made at run time


def test_an_unknown_name_is_a_bad_argument_naming_the_known_ones() -> None:
    with pytest.raises(BadArgument, match="no_such_rule.*known.*vote_for_stale_log"):
        rules_for("vote_for_stale_log,no_such_rule")
    with pytest.raises(BadArgument):
        rules_for([42])  # type: ignore[list-item]


# ---- a system gets them from start_system only ------------------------------------------

class One(Machine):
    def init(self, config):  # type: ignore[no-untyped-def]
        return 0

    def apply(self, meta, command, state):  # type: ignore[no-untyped-def]
        return state + 1, state + 1


ASKED: list[ServerId] = []


class Spy(Rules):
    """Raft's rules, noting which servers asked the commit rule."""

    __slots__ = ()

    def leader_counted_index(self, state: ServerState) -> int:
        ASKED.append(state.id)
        return super().leader_counted_index(state)


def test_start_system_hands_its_rules_to_every_server(tmp_path) -> None:
    ASKED.clear()
    s = raft_otp.start_system({"name": "spied", "data_dir": str(tmp_path / "d")}, rules=Spy())
    try:
        assert s.ctx.rules == Spy()
        ids = [ServerId(f"spy{i}", raft_otp.node_name()) for i in range(2)]
        for sid in ids:
            raft_otp.start_cluster(s, sid.name, (One, None), [sid], timeout=10)
            assert raft_otp.process_command(sid, ["x"], timeout=10)[0] == 1
        assert set(ASKED) == set(ids)
    finally:
        raft_otp.stop_system(s)


def test_start_system_refuses_what_is_not_rules(tmp_path) -> None:
    with pytest.raises(BadArgument, match="rules"):
        raft_otp.start_system({"name": "bad", "data_dir": str(tmp_path / "d")},
                              rules="vote_for_stale_log")  # type: ignore[arg-type]


def test_the_system_config_has_no_mutations_key() -> None:
    assert not {"mutations", "rules"} & FIELD_NAMES
    with pytest.raises(ConfigError, match="unknown system config key.*'mutations'"):
        SystemConfig.from_any({"mutations": "vote_for_stale_log"})


# ---- production entry points --------------------------------------------------------------

def test_the_node_entry_point_has_no_mutation_option(capsys) -> None:
    from raft_otp.system.node_main import main
    with pytest.raises(SystemExit) as e:
        main(["--data-dir", "/nonexistent", "--node", "n@127.0.0.1:1", "--mutation", "vote_for_stale_log"])
    assert e.value.code == 2
    assert "unrecognized arguments: --mutation" in capsys.readouterr().err


def test_the_console_start_has_no_mutation_option(capsys) -> None:
    from raft_otp.console.cli import main
    with pytest.raises(SystemExit) as e:
        main(["start", "--data-dir", "/nonexistent", "--mutation", "vote_for_stale_log"])
    assert e.value.code == 2
    assert "--mutation" in capsys.readouterr().err


BROKEN = "not Raft's rules"  # the system's WARNING when it runs broken rules


def _node_log(tmp: pathlib.Path, **kwargs: Any) -> str:
    """Start one node process until it is ready, stop it; what it logged."""
    nodes = NodeProcs(str(tmp), 1, log_level="WARNING", **kwargs)
    try:
        nodes.start(timeout=30)
    finally:
        nodes.close()
    return (tmp / "n1.log").read_text()


def test_a_production_node_ignores_the_old_environment_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAFT_OTP_MUTATION", "reply_before_commit")
    assert BROKEN not in _node_log(tmp_path / "prod")
    # the control: the testing entry point does break the rule, and says so
    logged = _node_log(tmp_path / "test", node_module="raft_otp.testing.nemesis_node",
                       extra_args=["--mutation", "reply_before_commit"])
    assert BROKEN in logged and "reply_before_commit" in logged


# ---- who may import the mutations -------------------------------------------------------------

def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)  # import_module("..."), __import__("...")
    return names


def test_no_module_outside_raft_otp_testing_imports_the_mutations() -> None:
    assert mut.__name__ == "raft_otp.testing.mutations"
    offenders = []
    for top in ("raft_otp", "supervisors", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("raft_otp/testing/"):
                continue
            if mut.__name__ in _imports(path) or "RAFT_OTP_MUTATION" in path.read_text():
                offenders.append(rel)
    assert offenders == []


def test_importing_the_product_loads_no_mutation() -> None:
    code = ("import sys, raft_otp, raft_otp.system.node_main, raft_otp.console.cli;"
            "print(sorted(m for m in sys.modules if m.startswith('raft_otp.testing')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(ROOT), env=dict(os.environ, RAFT_OTP_MUTATION="vote_for_stale_log"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
