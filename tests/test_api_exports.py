"""Goal: the public surface of raft_otp is curated and pinned."""

from __future__ import annotations

import raft_otp

EXPECTED = [
    "Applied", "ApplyMeta", "BadArgument", "ClusterChangeNotPermitted", "CorruptFile", "Machine",
    "NodeDown", "NotLeader", "RaftError", "Rejected", "ServerId", "ServerNotFound", "System",
    "SystemConfig", "SystemNotRunning", "Timeout", "add_member", "consistent_query",
    "delete_cluster", "force_delete_server", "key_metrics", "leader_query",
    "leave_and_delete_server", "local_query",
    "member_overview", "members", "node", "overview", "ping", "pipeline_command",
    "pipeline_commands", "process_command", "remove_member", "restart_server", "start_cluster",
    "start_in", "start_server", "start_system", "stop_server", "stop_system",
    "transfer_leadership", "trigger_election",
]


def test_all_is_pinned() -> None:
    assert sorted(raft_otp.__all__) == sorted(EXPECTED)
    for name in raft_otp.__all__:
        assert hasattr(raft_otp, name), name


def test_node_is_callable_and_the_package() -> None:
    assert isinstance(raft_otp.node(), str)
    import raft_otp.node.runtime as rt
    assert raft_otp.node() == rt.node()
