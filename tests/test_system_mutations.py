"""Goal: SystemConfig.mutations reaches every server's ServerConfig; bad names are refused clearly."""

from __future__ import annotations

import pytest

from raft_otp.core.config import Mutations
from raft_otp.errors import BadArgument
from raft_otp.server import _core
from raft_otp.system.config import SystemConfig, active_mutations
from raft_otp.system.node_main import main


def test_string_and_object_forms() -> None:
    assert SystemConfig().mutations == Mutations()
    c = SystemConfig(mutations="vote_for_stale_log, ack_before_durable")
    assert c.mutations == Mutations(vote_for_stale_log=True, ack_before_durable=True)
    assert active_mutations(c.mutations) == ["vote_for_stale_log", "ack_before_durable"]
    m = Mutations(consistent_query_without_heartbeat=True)
    assert SystemConfig(mutations=m).mutations is m
    assert SystemConfig.from_any({"mutations": "vote_for_stale_log"}).mutations.vote_for_stale_log
    assert SystemConfig().replace(mutations="ack_before_durable").mutations.ack_before_durable


def test_unknown_flag_is_a_bad_argument() -> None:
    with pytest.raises(BadArgument, match="no_such_flag.*known"):
        SystemConfig(mutations="vote_for_stale_log,no_such_flag")
    with pytest.raises(BadArgument):
        SystemConfig(mutations=42)


def test_server_layer_passes_them_into_server_config() -> None:
    c = SystemConfig(mutations="leader_commit_own_unwritten")
    assert _core._mutations(c) == Mutations(leader_commit_own_unwritten=True)


def test_cli_refuses_an_unknown_flag(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--data-dir", "/nonexistent", "--node", "n@127.0.0.1:1", "--mutation", "nope"])
    assert e.value.code == 2
    assert "unknown mutation" in capsys.readouterr().err
