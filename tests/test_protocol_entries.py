"""Goal: ``entries.kind_of`` reads an entry's kind without decoding it, and agrees with
the decoder for every entry the encoders can make (the layout it relies on is pinned)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raft_otp.core import entries as enc
from raft_otp.core.types import ServerId

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=20) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10)
names = st.text(min_size=1, max_size=8)
members = st.dictionaries(st.builds(ServerId, names, names),
                          st.sampled_from(["voter", "promotable", "non_voter"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(command=values, time_ms=st.integers(0, 2**63 - 1), client_id=st.none() | values,
       seq=st.integers(0, 2**32))
def test_kind_of_a_command(command, time_ms, client_id, seq) -> None:
    data = enc.encode_usr(command, time_ms, client_id, seq)
    assert enc.kind_of(data) == enc.USR == enc.decode(data)[0]


@settings(max_examples=100, deadline=None)
@given(version=st.integers(0, 2**32), cluster=members)
def test_kind_of_a_noop_and_a_cluster_change(version, cluster) -> None:
    noop, change = enc.encode_noop(version), enc.encode_cluster(cluster)
    assert enc.kind_of(noop) == enc.NOOP == enc.decode(noop)[0]
    assert enc.kind_of(change) == enc.CLUSTER == enc.decode(change)[0]
    assert enc.members_from_wire(enc.decode(change)[1]) == cluster


def test_the_layout_kind_of_reads() -> None:
    """A fixarray header, then the kind as a one-byte positive fixint."""
    for data in (enc.encode_noop(1), enc.encode_usr(["x"], 5), enc.encode_usr(["x"], 5, "c", 1),
                 enc.encode_cluster({ServerId("a", "n@h:1"): "voter"})):
        assert 0x92 <= data[0] <= 0x95
        assert data[1] in enc.KINDS
    assert all(0 <= k < 0x80 for k in enc.KINDS)
