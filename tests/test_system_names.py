"""Goal: server and cluster names follow one documented rule (raft_otp.system.names)."""

from __future__ import annotations

import pytest

from raft_otp.errors import BadArgument
from raft_otp.system.names import NAME_MAX_CHARS, RULE, check_cluster_name, check_server_name


@pytest.mark.parametrize("name", ["a", "shop", "s1_t123", "kv.v2", "A-b_c.9", "9lives", "x" * NAME_MAX_CHARS])
def test_valid_names_pass_unchanged(name: str) -> None:
    assert check_server_name(name) == name and check_cluster_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a/b", "..", ".", ".hidden", "-rf", "_x", "x y", "tab\t", "new\nline", "ok\n", "héllo", "a:b",
    "x" * (NAME_MAX_CHARS + 1), "raft_otp.system.default", "raft_otp.notify.1",
])
def test_invalid_names_raise_bad_argument_with_the_rule(name: str) -> None:
    for check, kind in ((check_server_name, "server name"), (check_cluster_name, "cluster name")):
        with pytest.raises(BadArgument) as info:
            check(name)
        assert f"invalid {kind}" in str(info.value) and RULE in str(info.value)


def test_a_long_name_is_shortened_in_the_message_and_non_strings_are_refused() -> None:
    with pytest.raises(BadArgument, match=r"\.\.\. \(300 chars\)"):
        check_cluster_name("c" * 300)
    with pytest.raises(BadArgument, match="must be a str"):
        check_server_name(42)
