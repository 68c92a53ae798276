"""Goal: quorum arithmetic and entry encoding hold for arbitrary inputs (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from raft_otp.core import entries as enc
from raft_otp.core.quorum import agreed_index, has_quorum, majority
from raft_otp.core.types import ServerId


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=9))
def test_agreed_index_is_reached_by_a_majority_and_is_the_highest_such(indexes: list[int]) -> None:
    agreed = agreed_index(indexes)
    q = majority(len(indexes))
    assert sum(1 for i in indexes if i >= agreed) >= q
    assert sum(1 for i in indexes if i >= agreed + 1) < q


@given(st.integers(min_value=1, max_value=99))
def test_two_majorities_always_intersect(n: int) -> None:
    assert 2 * majority(n) > n and has_quorum(majority(n), n) and not has_quorum(majority(n) - 1, n)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=10,
)


@given(json_like, st.integers(min_value=0, max_value=2**40), st.one_of(st.none(), st.text(max_size=6)),
       st.integers(min_value=0, max_value=2**31))
def test_usr_entries_roundtrip(command: object, ts: int, client: str | None, seq: int) -> None:
    value = enc.decode(enc.encode_usr(command, ts, client, seq))
    assert value[0] == enc.USR and value[1] == command and value[2] == ts
    if client is not None:
        assert value[3:] == [client, seq]


def test_kind_is_the_second_byte_of_every_entry() -> None:
    members = {ServerId("a", "n"): "voter"}
    for data, kind in ((enc.encode_noop(3), enc.NOOP), (enc.encode_usr(["x"], 1), enc.USR),
                       (enc.encode_cluster(members), enc.CLUSTER)):
        assert data[1] == kind  # the follower's cheap cluster-change check relies on it
    assert enc.members_from_wire(enc.decode(enc.encode_cluster(members))[1]) == members
