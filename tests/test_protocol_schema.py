"""Goal: the converters come from the schema table, not from the dataclass: the wire
order is the table's, ServerId and reply-address fields are rebuilt by their declared
kind (whatever their name), trailing fields with defaults may be missing, and a table
that differs from its class is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import pytest

from raft_otp.core.types import ServerId
from raft_otp.protocol.schema import Field, FieldKind, MessageType, conforms, from_fields, to_fields

K = FieldKind


@dataclass(frozen=True, slots=True)
class Probe:
    owner: Any          # a ServerId by its declared kind, not by a known name
    answer_at: Any      # a reply address
    count: int
    late: bool = False  # added later: older senders leave it out


REORDERED = MessageType("Probe", 99, Probe, (Field("count", K.INT), Field("owner", K.SERVER_ID),
                                             Field("answer_at", K.REPLY_TO), Field("late", K.BOOL)))
IN_ORDER = MessageType("Probe", 99, Probe, (Field("owner", K.SERVER_ID), Field("answer_at", K.REPLY_TO),
                                            Field("count", K.INT), Field("late", K.BOOL)))
SID = ServerId("s1", "n1@127.0.0.1:1")


def _wire(mt: MessageType, obj: Any) -> list[Any]:
    """What the peer receives: the fields through msgpack (tuples come back as lists)."""
    return msgpack.unpackb(msgpack.packb(list(to_fields(mt)(obj))), raw=False)


@pytest.mark.parametrize("mt", [REORDERED, IN_ORDER], ids=["reordered", "in_order"])
def test_round_trip_rebuilds_declared_kinds(mt: MessageType) -> None:
    probe = Probe(SID, ("mbox", "c@h:0"), 7, True)
    wire = _wire(mt, probe)
    assert wire == [getattr(probe, f.name) if f.kind is not K.SERVER_ID and f.kind is not K.REPLY_TO
                    else list(getattr(probe, f.name)) for f in mt.fields]
    back = from_fields(mt)(wire)
    assert back == probe
    assert type(back.owner) is ServerId and type(back.answer_at) is tuple


def test_the_table_order_is_the_wire_order() -> None:
    probe = Probe(SID, ("mbox", "c@h:0"), 7)
    assert _wire(REORDERED, probe)[0] == 7
    assert _wire(IN_ORDER, probe)[0] == list(SID)


@pytest.mark.parametrize("mt", [REORDERED, IN_ORDER], ids=["reordered", "in_order"])
def test_a_missing_trailing_field_takes_its_default(mt: MessageType) -> None:
    wire = _wire(mt, Probe(SID, None, 3))[:3]
    assert from_fields(mt)(wire) == Probe(SID, None, 3, False)


def test_a_table_that_differs_from_its_class_is_refused() -> None:
    missing = MessageType("Probe", 99, Probe, IN_ORDER.fields[:3])
    with pytest.raises(TypeError, match="late"):
        missing.check_class()
    extra = MessageType("Probe", 99, Probe, IN_ORDER.fields + (Field("ghost", K.INT),))
    with pytest.raises(TypeError, match="ghost"):
        extra.check_class()
    IN_ORDER.check_class()
    REORDERED.check_class()


def test_conforms_names_the_fields_that_do_not_fit() -> None:
    assert conforms(IN_ORDER, Probe(SID, ("m", "n@h:1"), 1)) == []
    bad = conforms(IN_ORDER, Probe(("s1", "n"), ("m", "n@h:1"), True))
    assert len(bad) == 2 and bad[0].startswith("owner=") and bad[1].startswith("count=")


def test_a_defaulted_server_id_field_may_be_missing_or_rebuilt() -> None:
    """CallReply's last field (a ServerId with a default) from a sender that left it out,
    and from one that sent it: rebuilt as ServerId only when there."""
    from raft_otp.protocol.messages import by_class
    from raft_otp.server.messages import CallReply

    decode = from_fields(by_class()[CallReply])
    assert decode([True, 1, list(SID)]) == CallReply(True, 1, SID, None)
    full = decode([False, "x", None, list(SID)])
    assert full == CallReply(False, "x", None, SID) and type(full.server) is ServerId
