"""Goal: the public surface of raft_otp is curated and pinned."""

from __future__ import annotations

import pytest

import raft_otp

EXPECTED = [
    "Applied", "ApplyMeta", "AsyncClient", "BadArgument", "Checkpoint", "Client",
    "ClusterChangeNotPermitted", "CorruptFile", "Demonitor", "LogRead", "Machine", "MachineEffect", "ModCall",
    "Monitor", "ReleaseCursor", "SendMsg", "Timer", "connect", "connect_async",
    "NodeDown", "NotLeader", "RaftError", "Rejected", "ServerId", "ServerNotFound", "System",
    "SystemConfig", "SystemNotRunning", "Timeout", "add_member", "consistent_query",
    "delete_cluster", "force_delete_server", "key_metrics", "leader_query",
    "leave_and_delete_server", "local_query",
    "member_overview", "members", "node_name", "overview", "ping", "pipeline_command",
    "pipeline_commands", "process_command", "remove_member", "restart_server", "start_cluster",
    "start_in", "start_server", "start_system", "stop_server", "stop_system",
    "transfer_leadership", "trigger_election",
]


def test_all_is_pinned() -> None:
    assert sorted(raft_otp.__all__) == sorted(EXPECTED)
    for name in raft_otp.__all__:
        assert hasattr(raft_otp, name), name


def test_node_name_is_a_function_and_node_the_package() -> None:
    import types
    import raft_otp.node.runtime as rt
    assert raft_otp.node_name() == rt.node_name()
    assert isinstance(raft_otp.node, types.ModuleType) and raft_otp.node.start_node is rt.start_node
    with pytest.warns(DeprecationWarning, match="node_name"):  # the old call still works
        assert raft_otp.node() == rt.node_name()


EFFECTS = ["Checkpoint", "Demonitor", "LogRead", "ModCall", "Monitor", "ReleaseCursor",
           "SendMsg", "Timer"]


def test_machine_effects_are_exported_with_their_contract() -> None:
    """Each effect is raft_otp.core.machine's class, and its docstring states its
    contract (who carries it out; the timer's name rule)."""
    from raft_otp.core import machine
    assert set(EFFECTS) == {c.__name__ for c in machine.MachineEffect.__args__}
    for name in EFFECTS:
        cls = getattr(raft_otp, name)
        assert cls is getattr(machine, name)
        doc = cls.__doc__ or ""
        assert ("Leader only" in doc) != (name in ("ReleaseCursor", "Checkpoint")), name
    assert "hashable" in (raft_otp.Timer.__doc__ or "")
    assert "On every member" in (raft_otp.ReleaseCursor.__doc__ or "")


def test_the_readme_effects_table_lists_every_effect() -> None:
    import pathlib
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("**Effects**", 1)[1].split("\n\n", 2)[1]
    for name in EFFECTS:
        assert f"`{name}(" in table, name
