"""Goal: the wire codec and frame envelope round-trip values and reject bad input cleanly."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft_otp.errors import BadArgument, NotLeader, ServerNotFound
from raft_otp.node import codec, envelope


@dataclasses.dataclass(frozen=True, slots=True)
class Meta:
    index: int
    term: int
    cluster: list


@dataclasses.dataclass(frozen=True, slots=True)
class Rpc:
    term: int
    leader: str
    entries: list
    meta: Meta


@dataclasses.dataclass(frozen=True, slots=True)
class One:
    x: int


class Opaque:
    pass


class Unknown(Exception):
    pass


codec.register_wire_type(120, Meta)
codec.register_wire_type(121, Rpc)
codec.register_wire_type(122, One)


def test_registered_dataclasses_nest_and_round_trip() -> None:
    rpc = Rpc(3, "s1", [[1, 3, b"x"], [2, 3, b"y"]], Meta(7, 2, [["a", "n@h:1"]]))
    assert codec.unpackb(codec.packb(rpc)) == rpc
    assert codec.unpackb(codec.packb(One(5))) == One(5)


def test_registered_object_is_a_compact_ext_not_a_dict() -> None:
    raw = msgpack.unpackb(codec.packb(Meta(1, 2, [])))
    assert isinstance(raw, msgpack.ExtType) and raw.code == 120
    assert msgpack.unpackb(raw.data) == [1, 2, []]


def test_unregistered_object_raises_wire_type_error() -> None:
    with pytest.raises(codec.WireTypeError):
        codec.packb(["ok", Opaque()])
    assert issubclass(codec.WireTypeError, BadArgument)


def test_register_conflicts_and_reserved_codes_are_refused() -> None:
    with pytest.raises(BadArgument):
        codec.register_wire_type(120, One)      # code taken
    with pytest.raises(BadArgument):
        codec.register_wire_type(3, One)        # reserved
    with pytest.raises(BadArgument):
        codec.register_wire_type(123, Opaque)   # not a dataclass, no to_fields
    codec.register_wire_type(120, Meta)         # same pair again: no-op


def test_unknown_ext_code_is_a_decode_error() -> None:
    data = msgpack.packb(msgpack.ExtType(99, msgpack.packb([1])))
    with pytest.raises(ValueError):
        codec.unpackb(data)


def test_errors_cross_with_their_class_and_attributes() -> None:
    exc = codec.decode_error(codec.encode_error(NotLeader("s1", ["s2", "n@h:1"])))
    assert isinstance(exc, NotLeader) and exc.leader == ["s2", "n@h:1"]
    exc2 = codec.decode_error(codec.encode_error(ServerNotFound("nope")))
    assert isinstance(exc2, ServerNotFound) and str(exc2) == "nope"
    exc3 = codec.decode_error(codec.encode_error(Unknown("k")))
    assert isinstance(exc3, codec.RemoteError) and exc3.type_name == "Unknown"
    exc4 = codec.decode_error(codec.encode_error(KeyError("k")))
    assert isinstance(exc4, KeyError) and exc4.args == ("k",)
    assert isinstance(codec.decode_error("garbage"), codec.RemoteError)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_plain_values_round_trip(v: object) -> None:
    assert codec.unpackb(codec.packb(v)) == v


def test_batch_body_parses_back() -> None:
    prefix = envelope.batch_prefix("n1@127.0.0.1:1", 42)
    for n in (0, 1, 15, 16, 300, 70000):
        items = [codec.packb([envelope.K_SEND, "x", i]) for i in range(n)]
        sender, creation, flags, session, counter, msgs = envelope.parse(
            envelope.build_body(prefix, 2**64 - 1, n, items))
        assert (sender, creation, flags, session, counter, len(msgs)) == (
            "n1@127.0.0.1:1", 42, 0, 2**64 - 1, n, n)
        assert n == 0 or msgs[-1] == [envelope.K_SEND, "x", n - 1]


@pytest.mark.parametrize("payload", [0, 100, envelope.SMALL_BODY])  # BLAKE2b and HMAC-SHA256 sizes
def test_mac_verifies_only_with_the_same_cookie(payload: int) -> None:
    items = [codec.packb(b"p" * payload)] if payload else []
    body = envelope.build_body(envelope.batch_prefix("a@h:1", 1), 7, 1, items)
    good, bad = envelope.derive_key("c1"), envelope.derive_key("c2")
    frame = envelope.seal(good, body)
    assert len(frame) == len(body) + envelope.MAC_BYTES
    assert bytes(envelope.unseal(good, frame)) == body
    assert envelope.unseal(bad, frame) is None
    assert envelope.unseal(good, frame[:-1]) is None                 # torn MAC
    assert envelope.unseal(good, body + b"x" + frame[len(body):]) is None  # body changed
    flipped = bytes([frame[0] ^ 1]) + frame[1:]
    assert envelope.unseal(good, flipped) is None
    assert envelope.unseal(good, frame[: envelope.MAC_BYTES]) is None  # no body at all
    assert envelope.sign(good, body) != envelope.sign(bad, body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | values.map(lambda v: msgpack.packb(v)))
def test_garbage_bodies_raise_only_bad_frame(data: bytes) -> None:
    try:
        envelope.parse(data)
    except envelope.BadFrame:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | values.map(lambda v: msgpack.packb(v)))
def test_garbage_bodies_raise_only_bad_frame_at_any_version(data: bytes) -> None:
    try:
        envelope.parse_any(data)
    except envelope.BadFrame:
        pass


def test_parse_any_reads_every_version_and_parse_only_the_current_one() -> None:
    for version in (1, 3, 4, 200):
        body = envelope.build_body(envelope.batch_prefix("a@h:1", 5, 0, version), 9, 1,
                                   [codec.packb([envelope.K_SEND, "x", 1])])
        assert envelope.parse_any(body) == (version, "a@h:1", 5, 0, 9, 1, [[envelope.K_SEND, "x", 1]])
        if version == envelope.VERSION:
            assert envelope.parse(body)[0] == "a@h:1"
        else:
            with pytest.raises(envelope.BadFrame, match="unsupported wire version"):
                envelope.parse(body)


def test_a_hello_frame_is_written_at_the_oldest_version_it_announces() -> None:
    from raft_otp.protocol import node_messages, versions

    body = envelope.hello_body("a@h:1", 5, envelope.FLAG_CLIENT, 9, 1,
                               versions.VersionRange(4, 6), True)
    version, sender, _creation, flags, _session, counter, msgs = envelope.parse_any(body)
    assert (version, sender, counter) == (4, "a@h:1", 1)
    assert flags == envelope.FLAG_CLIENT | envelope.FLAG_HELLO
    assert msgs == [[node_messages.K_HELLO, 4, 6, True]]
