"""Goal: every message's encoding is pinned as bytes, so an accidental change to the wire
format (a field moved, a code renumbered, a kind rebuilt differently) fails here; and a
message type added to the protocol tables without a golden example fails too.

The bytes were taken from the encoder before the protocol tables existed (the same
bytes: the tables changed where the knowledge lives, not the wire).  A deliberate
change of the wire is a new protocol version (``raft_otp.protocol.versions``) and a
new golden entry, never an edit of an old one.
"""

from __future__ import annotations

import dataclasses

import pytest

from raft_otp import protocol
from raft_otp.node import codec, envelope
from raft_otp.protocol import node_messages, schema, versions
from raft_otp.protocol.messages import MESSAGE_TYPES

protocol.install()

from raft_otp.core import events as ev
from raft_otp.core import entries as enc
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.core.types import ServerId
from raft_otp.server import messages as msg
from raft_otp.system import system_actor as sa

A = ServerId("s1", "n1@127.0.0.1:7001")
B = ServerId("s2", "n2@127.0.0.1:7002")
ADDR = ("mbox-7", "c1@127.0.0.1:0")
META = SnapshotMeta(120, 4, [["s1", "n1@127.0.0.1:7001", "voter"]], 2)
# entries, like every array but a ServerId or a reply address, come back as lists
ENTRIES = [[11, 4, enc.encode_usr(["put", "k", 1], 1700000000123)],
           [12, 4, enc.encode_noop(2)],
           [13, 4, enc.encode_cluster({A: "voter", B: "promotable"})]]
CMD = ev.Command(["put", "k", b"v"], ADDR, 17, "notify", "client-9", 3)

EXAMPLES = {
    "PreVoteRpc": ev.PreVoteRpc(5, 77, A, 2, 130, 4),
    "PreVoteResult": ev.PreVoteResult(5, 77, B, True),
    "RequestVoteRpc": ev.RequestVoteRpc(6, A, 130, 4, True),
    "RequestVoteResult": ev.RequestVoteResult(6, B, False),
    "AppendEntriesRpc": ev.AppendEntriesRpc(4, A, 10, 10, 4, ENTRIES),
    "AppendEntriesReply": ev.AppendEntriesReply(4, B, True, 14, 13, 4),
    "InstallSnapshotRpc": ev.InstallSnapshotRpc(4, A, META, 1, False, b"\x00chunk\xff"),
    "InstallSnapshotResult": ev.InstallSnapshotResult(4, B, 1, 120, 4),
    "HeartbeatRpc": ev.HeartbeatRpc(4, A, 9),
    "HeartbeatReply": ev.HeartbeatReply(4, B, 9),
    "TimeoutNowRpc": ev.TimeoutNowRpc(4, A),
    "SnapshotMeta": META,
    "Command": CMD,
    "Commands": ev.Commands([CMD, ev.Command(["get", "k"], ADDR, 18, "notify")], 1700000000456),
    "LocalQuery": ev.LocalQuery(ADDR, "raft_otp.machines.kv:get_all", 12),
    "LeaderQuery": ev.LeaderQuery(ADDR, ["raft_otp.machines.kv:get", ["k"]]),
    "ConsistentQuery": ev.ConsistentQuery(ADDR, "raft_otp.machines.kv:get_all"),
    "AddMember": ev.AddMember(ADDR, B, "promotable"),
    "RemoveMember": ev.RemoveMember(ADDR, B),
    "TransferLeadership": ev.TransferLeadership(ADDR, B),
    "TriggerElection": ev.TriggerElection(),
    "StateQuery": msg.StateQuery(ADDR, "overview"),
    "CallReply": msg.CallReply(True, {"applied": 13}, A, B),
    "Applied": msg.Applied(A, [[17, "ok"], [18, None]]),
    "Rejected": msg.Rejected(None, [19, 20], "not_leader"),
    "StartServerReq": sa.StartServerReq("s3", "kv1", "raft_otp.machines.kv:KV", {"a": 1},
                                        [list(A), list(B)]),
    "ServerOpReq": sa.ServerOpReq("restart", "s3"),
    "SystemOverviewReq": sa.SystemOverviewReq(),
}

# node-level messages: [kind, fields...] (a K_SEND carries a registered message)
NODE_EXAMPLES = {
    "K_SEND": [0, "s2", EXAMPLES["HeartbeatRpc"]],
    "K_CALL": [1, "raft_otp.system.default", sa.ServerOpReq("is_running", "s3"), 123456789],
    "K_REPLY": [2, 123456789, True, True],
    "K_MONITOR": [3, "s2", 42],
    "K_DEMONITOR": [4, 42],
    "K_DOWN": [5, 42, "noproc"],
    "K_ADMIN": [6, 7, ["stats"]],
    "K_SEND_BOUNCE": [7, "s2", EXAMPLES["Command"], "mbox-7"],
    "K_NOPROC": [8, "mbox-7", "s2"],
    "K_HELLO": [9, 3, 3, False],
}

GOLDEN = {
    "PreVoteRpc": "c71d2096054d92a27331b16e31403132372e302e302e313a3730303102cc8204",
    "PreVoteResult": "c71a2194054d92a27332b16e32403132372e302e302e313a37303032c3",
    "RequestVoteRpc": "c71c22950692a27331b16e31403132372e302e302e313a37303031cc8204c3",
    "RequestVoteResult": "c71923930692a27332b16e32403132372e302e302e313a37303032c2",
    "AppendEntriesRpc": ("c78124960492a27331b16e31403132372e302e302e313a373030310a0a0493930b04c413930193a3707574a1"
                         "6b01cf0000018bcfe5687b930c04c403920002930d04c44092029293a27331b16e31403132372e302e302e31"
                         "3a37303031a5766f74657293a27332b16e32403132372e302e302e313a37303032aa70726f6d6f7461626c65"),
    "AppendEntriesReply": "c71c25960492a27332b16e32403132372e302e302e313a37303032c30e0d04",
    "InstallSnapshotRpc": ("c74726960492a27331b16e31403132372e302e302e313a37303031c721309478049193a27331b16e31403132"
                           "372e302e302e313a37303031a5766f7465720201c2c407006368756e6bff"),
    "InstallSnapshotResult": "c71b27950492a27332b16e32403132372e302e302e313a37303032017804",
    "HeartbeatRpc": "c71928930492a27331b16e31403132372e302e302e313a3730303109",
    "HeartbeatReply": "c71929930492a27332b16e32403132372e302e302e313a3730303209",
    "TimeoutNowRpc": "c7182a920492a27331b16e31403132372e302e302e313a37303031",
    "SnapshotMeta": "c721309478049193a27331b16e31403132372e302e302e313a37303031a5766f74657202",
    "Command": ("c734319693a3707574a16bc4017692a66d626f782d37ae6331403132372e302e302e313a3011a66e6f746966"
                "79a8636c69656e742d3903"),
    "Commands": ("c76e329292c734319693a3707574a16bc4017692a66d626f782d37ae6331403132372e302e302e313a3011a6"
                 "6e6f74696679a8636c69656e742d3903c729319692a3676574a16b92a66d626f782d37ae6331403132372e30"
                 "2e302e313a3012a66e6f74696679c000cf0000018bcfe569c8"),
    "LocalQuery": ("c736339392a66d626f782d37ae6331403132372e302e302e313a30bc726166745f6f74702e6d616368696e65"
                   "732e6b763a6765745f616c6c0c"),
    "LeaderQuery": ("c735349292a66d626f782d37ae6331403132372e302e302e313a3092b8726166745f6f74702e6d616368696e"
                    "65732e6b763a67657491a16b"),
    "ConsistentQuery": ("c735359292a66d626f782d37ae6331403132372e302e302e313a30bc726166745f6f74702e6d616368696e65"
                        "732e6b763a6765745f616c6c"),
    "AddMember": ("c739369392a66d626f782d37ae6331403132372e302e302e313a3092a27332b16e32403132372e302e302e31"
                  "3a37303032aa70726f6d6f7461626c65"),
    "RemoveMember": ("c72e379292a66d626f782d37ae6331403132372e302e302e313a3092a27332b16e32403132372e302e302e31"
                     "3a37303032"),
    "TransferLeadership": ("c72e389292a66d626f782d37ae6331403132372e302e302e313a3092a27332b16e32403132372e302e302e31"
                           "3a37303032"),
    "TriggerElection": "d43990",
    "StateQuery": "c7213a9292a66d626f782d37ae6331403132372e302e302e313a30a86f76657276696577",
    "CallReply": ("c7383b94c381a76170706c6965640d92a27331b16e31403132372e302e302e313a3730303192a27332b16e32"
                  "403132372e302e302e313a37303032"),
    "Applied": "c7203c9292a27331b16e31403132372e302e302e313a37303031929211a26f6b9212c0",
    "Rejected": "d83d93c0921314aa6e6f745f6c6561646572",
    "StartServerReq": ("c7514695a27333a36b7631b7726166745f6f74702e6d616368696e65732e6b763a4b5681a161019292a27331"
                       "b16e31403132372e302e302e313a3730303192a27332b16e32403132372e302e302e313a37303032"),
    "ServerOpReq": "c70c4792a772657374617274a27333",
    "SystemOverviewReq": "d44890",
}

NODE_GOLDEN = {
    "K_SEND": "9300a27332c71928930492a27331b16e31403132372e302e302e313a3730303109",
    "K_CALL": ("9401b7726166745f6f74702e73797374656d2e64656661756c74c70f4792aa69735f72756e6e696e67a27333"
               "ce075bcd15"),
    "K_REPLY": "9402ce075bcd15c3c3",
    "K_MONITOR": "9303a273322a",
    "K_DEMONITOR": "92042a",
    "K_DOWN": "93052aa66e6f70726f63",
    "K_ADMIN": "93060791a57374617473",
    "K_SEND_BOUNCE": ("9407a27332c734319693a3707574a16bc4017692a66d626f782d37ae6331403132372e302e302e313a3011a6"
                      "6e6f74696679a8636c69656e742d3903a66d626f782d37"),
    "K_NOPROC": "9308a66d626f782d37a27332",
    "K_HELLO": "94090303c2",
}

FRAME_GOLDEN = ("9703b16e31403132372e302e302e313a37303031cd303900cf0123456789abcdefcf00000000000000079193"
                "00a27332c71928930492a27331b16e31403132372e302e302e313a37303031091e4e81b33e61f0fe3ace8ec8"
                "3b3ee87a5418c0ed41862b5533e8e2baf0252f75")

HELLO_FRAME_GOLDEN = ("9703b16e31403132372e302e302e313a37303031cd303902cf0123456789abcdefcf000000000000000191"
                      "94090303c2c24893d7a4faf599ec1d46583e633fbff3179533c198dcc77b17d448c901639d")

FRAME_KEY = envelope.derive_key("golden-cookie")
FRAME_SENDER = "n1@127.0.0.1:7001"
FRAME_SESSION = 0x0123456789ABCDEF


def _hex(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else "".join(value)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_message_encoding_is_pinned(name: str) -> None:
    assert codec.packb(EXAMPLES[name]).hex() == _hex(GOLDEN[name])


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_pinned_bytes_decode_to_the_example(name: str) -> None:
    decoded = codec.unpackb(bytes.fromhex(_hex(GOLDEN[name])))
    assert type(decoded) is type(EXAMPLES[name])
    assert decoded == EXAMPLES[name]


def test_every_message_type_has_a_golden_example() -> None:
    in_tables = {mt.name for mt in MESSAGE_TYPES}
    assert in_tables == set(GOLDEN), (
        f"types without golden bytes: {sorted(in_tables - set(GOLDEN))}; "
        f"golden bytes of no type: {sorted(set(GOLDEN) - in_tables)}")
    assert set(EXAMPLES) == set(GOLDEN)
    kinds = {m.name for m in node_messages.NODE_MESSAGES}
    assert kinds == set(NODE_GOLDEN) == set(NODE_EXAMPLES)


@pytest.mark.parametrize("mt", MESSAGE_TYPES, ids=lambda mt: mt.name)
def test_each_example_fits_its_schema(mt: schema.MessageType) -> None:
    example = EXAMPLES[mt.name]
    assert type(example) is mt.cls
    assert schema.conforms(mt, example) == []
    # the ExtType code on the wire is the table's
    assert codec.packb(example)[0] in (0xC7, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8)
    ext = codec.unpackb(codec.packb([example]))  # nested: still the same object
    assert ext == [example]


@pytest.mark.parametrize("name", sorted(NODE_GOLDEN))
def test_node_message_encoding_is_pinned(name: str) -> None:
    message = NODE_EXAMPLES[name]
    kind = next(m for m in node_messages.NODE_MESSAGES if m.name == name)
    assert message[0] == kind.kind == getattr(node_messages, name)
    assert len(message) == 1 + len(kind.fields)
    assert codec.packb(message).hex() == _hex(NODE_GOLDEN[name])
    assert codec.unpackb(bytes.fromhex(_hex(NODE_GOLDEN[name]))) == message


def test_frame_encoding_is_pinned() -> None:
    prefix = envelope.batch_prefix(FRAME_SENDER, 12345, 0)
    body = envelope.build_body(prefix, FRAME_SESSION, 7, [codec.packb(NODE_EXAMPLES["K_SEND"])])
    frame = envelope.seal(FRAME_KEY, body)
    assert frame.hex() == _hex(FRAME_GOLDEN)
    parsed = envelope.parse_any(envelope.unseal(FRAME_KEY, frame))
    assert parsed == (3, FRAME_SENDER, 12345, 0, FRAME_SESSION, 7, [NODE_EXAMPLES["K_SEND"]])
    assert tuple(node_messages.FRAME_HEADER) == ("version", "sender", "creation", "flags",
                                                 "session", "counter", "messages")


def test_hello_frame_is_pinned() -> None:
    body = envelope.hello_body(FRAME_SENDER, 12345, 0, FRAME_SESSION, 1,
                               versions.VersionRange(3, 3), False)
    frame = envelope.seal(FRAME_KEY, body)
    assert frame.hex() == _hex(HELLO_FRAME_GOLDEN)
    version, sender, _c, flags, _s, counter, msgs = envelope.parse_any(envelope.unseal(FRAME_KEY, frame))
    assert (version, sender, flags, counter) == (3, FRAME_SENDER, node_messages.FLAG_HELLO, 1)
    assert msgs == [NODE_EXAMPLES["K_HELLO"]]


def test_codes_and_names_are_unique_and_outside_the_reserved_range() -> None:
    codes = [mt.code for mt in MESSAGE_TYPES]
    assert len(codes) == len(set(codes))
    assert all(codec.RESERVED_MAX < c <= 127 for c in codes)
    assert len({mt.name for mt in MESSAGE_TYPES}) == len(MESSAGE_TYPES)
    kinds = [m.kind for m in node_messages.NODE_MESSAGES]
    assert kinds == list(range(len(kinds)))


@pytest.mark.parametrize("mt", MESSAGE_TYPES, ids=lambda mt: mt.name)
def test_the_table_lists_exactly_the_class_fields(mt: schema.MessageType) -> None:
    mt.check_class()  # raises TypeError on a field missing from the table or the class


def test_a_request_vote_from_a_peer_before_leadership_transfer_decodes() -> None:
    """An older peer sent RequestVoteRpc with 4 fields: the default fills the fifth."""
    four = bytes.fromhex(_hex(GOLDEN["RequestVoteRpc"]))
    old = codec.packb(codec.unpackb(four))  # re-encode, then drop the last field by hand
    import msgpack

    ext = msgpack.unpackb(old, raw=False, ext_hook=lambda code, data: (code, data))
    fields = msgpack.unpackb(ext[1], raw=False)[:4]
    short = msgpack.packb(msgpack.ExtType(ext[0], msgpack.packb(fields)))
    rv = codec.unpackb(short)
    assert rv == dataclasses.replace(EXAMPLES["RequestVoteRpc"], leadership_transfer=False)


def test_every_rpc_and_every_remote_request_is_in_the_table() -> None:
    """A new RPC of the core (or a new client request) cannot cross the wire unlisted."""
    from raft_otp.core import events as ev

    listed = {mt.cls for mt in MESSAGE_TYPES}
    assert set(ev.RPC_TYPES) <= listed
    remote_requests = {ev.Command, ev.Commands, ev.LocalQuery, ev.LeaderQuery, ev.ConsistentQuery,
                       ev.AddMember, ev.RemoveMember, ev.TransferLeadership, ev.TriggerElection}
    assert remote_requests <= listed
    for mt in MESSAGE_TYPES:  # what the codec uses is the table's code
        assert codec._to[mt.cls][0] == mt.code
