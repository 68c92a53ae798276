"""The application messages that cross between nodes: one table, codes and fields.

Every message a node sends to another inside a ``K_SEND``/``K_CALL``/``K_REPLY``
(``raft_otp.protocol.node_messages``) that is not plain msgpack is listed here with
its ExtType code and its fields in wire order.  :func:`install` derives the node
codec's converters from this table; nothing else registers these types.

Code map (the wire format: a code is never reused; new types take free codes):

* 32..42  Raft RPCs between servers (RA's ``#append_entries_rpc{}`` ...)
* 48      SnapshotMeta (nested in InstallSnapshotRpc)
* 49..57  requests from callers to a server (they are the core's own events)
* 58..61  the server's state call and its answers to callers
* 70..72  requests to a node's system actor
"""

from __future__ import annotations

from raft_otp.core import events as ev
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.protocol.schema import Field, FieldKind, MessageType
from raft_otp.server import messages as msg
from raft_otp.system import system_actor as sa

__all__ = ["MESSAGE_TYPES", "by_code", "by_class"]

K = FieldKind


def _m(code: int, cls: type, *fields: tuple[str, FieldKind], doc: str = "") -> MessageType:
    return MessageType(cls.__name__, code, cls, tuple(Field(n, k) for n, k in fields), doc)


MESSAGE_TYPES: tuple[MessageType, ...] = (
    # ---- Raft RPCs between servers ---------------------------------------------------
    _m(32, ev.PreVoteRpc, ("term", K.INT), ("token", K.INT), ("candidate_id", K.SERVER_ID),
       ("machine_version", K.INT), ("last_log_index", K.INT), ("last_log_term", K.INT)),
    _m(33, ev.PreVoteResult, ("term", K.INT), ("token", K.INT), ("voter_id", K.SERVER_ID),
       ("vote_granted", K.BOOL)),
    _m(34, ev.RequestVoteRpc, ("term", K.INT), ("candidate_id", K.SERVER_ID),
       ("last_log_index", K.INT), ("last_log_term", K.INT), ("leadership_transfer", K.BOOL),
       doc="leadership_transfer may be missing (peers before it sent 4 fields)"),
    _m(35, ev.RequestVoteResult, ("term", K.INT), ("voter_id", K.SERVER_ID),
       ("vote_granted", K.BOOL)),
    _m(36, ev.AppendEntriesRpc, ("term", K.INT), ("leader_id", K.SERVER_ID),
       ("leader_commit", K.INT), ("prev_log_index", K.INT), ("prev_log_term", K.INT),
       ("entries", K.ENTRIES)),
    _m(37, ev.AppendEntriesReply, ("term", K.INT), ("from_id", K.SERVER_ID), ("success", K.BOOL),
       ("next_index", K.INT), ("last_index", K.INT), ("last_term", K.INT)),
    _m(38, ev.InstallSnapshotRpc, ("term", K.INT), ("leader_id", K.SERVER_ID),
       ("meta", K.SNAPSHOT_META), ("chunk_num", K.INT), ("is_last", K.BOOL), ("data", K.BYTES)),
    _m(39, ev.InstallSnapshotResult, ("term", K.INT), ("from_id", K.SERVER_ID),
       ("chunk_num", K.INT), ("last_index", K.INT), ("last_term", K.INT)),
    _m(40, ev.HeartbeatRpc, ("term", K.INT), ("leader_id", K.SERVER_ID), ("query_index", K.INT)),
    _m(41, ev.HeartbeatReply, ("term", K.INT), ("from_id", K.SERVER_ID), ("query_index", K.INT)),
    _m(42, ev.TimeoutNowRpc, ("term", K.INT), ("leader_id", K.SERVER_ID)),
    _m(48, SnapshotMeta, ("index", K.INT), ("term", K.INT), ("cluster", K.VALUE),
       ("machine_version", K.INT)),
    # ---- requests from callers to a server ------------------------------------------
    _m(49, ev.Command, ("data", K.VALUE), ("reply_to", K.REPLY_TO), ("correlation", K.VALUE),
       ("mode", K.STR), ("client_id", K.VALUE), ("seq", K.INT)),
    _m(50, ev.Commands, ("commands", K.COMMANDS), ("now_ms", K.INT)),
    _m(51, ev.LocalQuery, ("reply_to", K.REPLY_TO), ("fun", K.QUERY), ("min_index", K.INT)),
    _m(52, ev.LeaderQuery, ("reply_to", K.REPLY_TO), ("fun", K.QUERY)),
    _m(53, ev.ConsistentQuery, ("reply_to", K.REPLY_TO), ("fun", K.QUERY)),
    _m(54, ev.AddMember, ("reply_to", K.REPLY_TO), ("server", K.SERVER_ID), ("kind", K.STR)),
    _m(55, ev.RemoveMember, ("reply_to", K.REPLY_TO), ("server", K.SERVER_ID)),
    _m(56, ev.TransferLeadership, ("reply_to", K.REPLY_TO), ("target", K.SERVER_ID)),
    _m(57, ev.TriggerElection),
    # ---- the server's state call and its answers ------------------------------------
    _m(58, msg.StateQuery, ("reply_to", K.REPLY_TO), ("what", K.STR)),
    _m(59, msg.CallReply, ("ok", K.BOOL), ("value", K.VALUE), ("leader", K.OPT_SERVER_ID),
       ("server", K.OPT_SERVER_ID)),
    _m(60, msg.Applied, ("leader", K.OPT_SERVER_ID), ("replies", K.LIST)),
    _m(61, msg.Rejected, ("leader", K.OPT_SERVER_ID), ("correlations", K.LIST), ("reason", K.STR)),
    # ---- requests to a node's system actor -------------------------------------------
    _m(70, sa.StartServerReq, ("name", K.STR), ("cluster_name", K.STR), ("machine_path", K.STR),
       ("machine_config", K.VALUE), ("members", K.LIST),
       doc="members are [name, node] pairs, checked by the system actor"),
    _m(71, sa.ServerOpReq, ("op", K.STR), ("name", K.STR)),
    _m(72, sa.SystemOverviewReq),
)
"""Every application message type (see the module docstring for the code map)."""


def by_code() -> dict[int, MessageType]:
    return {mt.code: mt for mt in MESSAGE_TYPES}


def by_class() -> dict[type, MessageType]:
    return {mt.cls: mt for mt in MESSAGE_TYPES}
