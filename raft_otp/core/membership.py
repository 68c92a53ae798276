"""Cluster membership (RA ``ra_server`` cluster change handling, ``ra_membership``).

One change at a time: a cluster-change entry carries the full new member map and
takes effect as soon as it is appended (leader) or written (follower).  If an
uncommitted change is truncated away, the previous map is restored; only one
change can be uncommitted, so one level of history is enough.
"""

from __future__ import annotations

from raft_otp.core.effects import Effect, MembersChanged
from raft_otp.core.state import Peer, ServerState
from raft_otp.core.types import ServerId


def set_members(state: ServerState, members: dict[ServerId, str], index: int, effects: list[Effect]) -> None:
    """Make ``members`` (appended at ``index``) the cluster in effect."""
    if index > state.cluster_index:
        state.prev_members = state.members
        state.prev_cluster_index = state.cluster_index
    state.members = members
    state.cluster_index = index
    if state.role == "leader":
        sync_peers(state)
    effects.append(MembersChanged(tuple(sorted(members.items()))))


def revert_above(state: ServerState, index: int, effects: list[Effect]) -> None:
    """Entries above ``index`` were truncated: undo a cluster change among them."""
    if state.cluster_index > index:
        assert state.prev_cluster_index <= index, "two uncommitted cluster changes truncated"
        state.members = state.prev_members
        state.cluster_index = state.prev_cluster_index
        effects.append(MembersChanged(tuple(sorted(state.members.items()))))


def members_at(state: ServerState, index: int) -> dict[ServerId, str]:
    """The member map in effect at ``index`` (for snapshot meta)."""
    return state.members if state.cluster_index <= index else state.prev_members


def sync_peers(state: ServerState) -> None:
    """Leader: create/remove ``Peer`` records to follow the member map."""
    next_index = state.log.last_index_term()[0] + 1
    for sid, kind in state.members.items():
        if sid == state.id:
            continue
        peer = state.peers.get(sid)
        if peer is None:
            peer = state.peers[sid] = Peer(kind, next_index)
            if kind == "promotable":
                peer.promote_target = state.log.last_index_term()[0]
        else:
            peer.kind = kind
    for sid in [s for s in state.peers if s not in state.members]:
        del state.peers[sid]
