"""Goal: machines and queries are named by import path and resolved on any node."""

from __future__ import annotations

import pytest

from raft_otp.core.machine import Machine
from raft_otp.errors import BadArgument
from raft_otp.system.config import SystemConfig
from raft_otp.system.resolve import (import_path, load_machine, machine_spec, query_ref,
                                     resolve, resolve_query)


class Adder(Machine):
    def init(self, config):  # type: ignore[no-untyped-def]
        return config or 0

    def apply(self, meta, command, state):  # type: ignore[no-untyped-def]
        return state + command, state + command


def get_state(state):  # type: ignore[no-untyped-def]
    return state


def test_machine_spec_forms() -> None:
    path = f"{__name__}:Adder"
    assert machine_spec((Adder, 5)) == (path, 5)
    assert machine_spec((path, 5)) == (path, 5)
    assert machine_spec(Adder) == (path, None)
    m = load_machine((path, 7))
    assert isinstance(m, Adder) and m.init(m.config) == 7


def test_machine_spec_refuses_non_machines() -> None:
    with pytest.raises(BadArgument):
        machine_spec((dict, None))
    with pytest.raises(BadArgument):
        machine_spec(("no_such_module_xyz:Foo", None))
    with pytest.raises(BadArgument):
        machine_spec((f"{__name__}:Missing", None))
    with pytest.raises(BadArgument):
        machine_spec(42)


def test_query_paths() -> None:
    assert query_ref(get_state) == f"{__name__}:get_state"
    lam = lambda s: s  # noqa: E731
    assert query_ref(lam) is lam
    assert resolve_query(f"{__name__}:get_state")(3) == 3
    assert resolve(f"{__name__}:Adder") is Adder
    with pytest.raises(BadArgument):
        query_ref("nocolon")
    with pytest.raises(BadArgument):
        import_path(lam)


def test_config_validation() -> None:
    assert SystemConfig.from_any({"name": "x", "data_dir": "/tmp"}).name == "x"
    with pytest.raises(BadArgument):
        SystemConfig.from_any({"nope": 1})
    with pytest.raises(BadArgument):
        SystemConfig(wal_sync_method="sometimes")
