"""Receiving a snapshot (RA ``ra_server:handle_receive_snapshot/2``).

Chunk 1 starts the transfer (``receive_snapshot`` role, timer reset per chunk);
duplicated chunks are re-acknowledged, out-of-order ones ignored (the sender keeps
a bounded window of chunks in flight on one ordered link, so a gap means a lost
chunk: the sender times out and the transfer is retried from chunk 1); the last
chunk installs the snapshot: machine state, membership,
client sessions and machine version come from it; ``snapshot_installed`` runs.
An ``InstallSnapshotResult`` with ``last_index > 0`` tells the sender we are done.
"""

from __future__ import annotations

from raft_otp.core import entries as enc
from raft_otp.core.common import (become_follower, machine_effects, maybe_newer_term, persist_term, send,
                                  session_from_wire)
from raft_otp.core.effects import CancelElectionTimer, Effect, MembersChanged, RoleChanged, SnapshotInstalled
from raft_otp.core.effects import StartElectionTimer
from raft_otp.core.events import (
    AppendEntriesRpc,
    ElectionTimeout,
    Event,
    HeartbeatRpc,
    InstallSnapshotResult,
    InstallSnapshotRpc,
    LeaderDown,
    NodeDown,
    PreVoteRpc,
    RequestVoteRpc,
)
from raft_otp.core.log_api import SnapshotMeta
from raft_otp.errors import DiskFull
from raft_otp.core.state import ServerState
from raft_otp.core.machine_calls import callback


def install_snapshot(state: ServerState, rpc: InstallSnapshotRpc, effects: list[Effect]) -> None:
    if rpc.term < state.term:
        send(effects, rpc.leader_id, InstallSnapshotResult(state.term, state.id, rpc.chunk_num, 0, 0))
        return
    if rpc.term > state.term:
        persist_term(state, rpc.term, None, effects)
    receiving = state.role == "receive_snapshot" and state.leader_id == rpc.leader_id
    if not receiving and (state.role != "follower" or state.leader_id != rpc.leader_id):
        become_follower(state, rpc.leader_id, effects)
    if rpc.chunk_num == 1 and (not receiving or state.snapshot_meta_receiving != rpc.meta):
        if rpc.meta.index <= state.last_applied or _log_holds(state, rpc.meta):
            # we already have all of it: tell the sender to stop.  A log that holds the
            # snapshot's last entry (same index and term, durable) is kept with what
            # follows it (Raft's InstallSnapshot rule 6): those entries may have been
            # acknowledged, and a late snapshot (a delayed transfer) must not drop them
            state.follower_match = max(state.follower_match, rpc.meta.index)
            send(effects, rpc.leader_id,
                 InstallSnapshotResult(state.term, state.id, rpc.chunk_num, rpc.meta.index, rpc.meta.term))
            return
        if receiving:
            state.log.abort_snapshot_accept()
        state.log.begin_snapshot_accept(rpc.meta)
        state.role = "receive_snapshot"
        state.snapshot_meta_receiving = rpc.meta
        state.snapshot_chunk_expected = 1
        effects.append(RoleChanged("receive_snapshot", rpc.leader_id, state.term))
    elif state.role != "receive_snapshot" or state.snapshot_meta_receiving != rpc.meta:
        return  # a chunk of a transfer we are not part of: the sender will time out
    if rpc.chunk_num < state.snapshot_chunk_expected:
        send(effects, rpc.leader_id, InstallSnapshotResult(state.term, state.id, rpc.chunk_num, 0, 0))
        return
    if rpc.chunk_num > state.snapshot_chunk_expected:
        return
    try:
        state.log.accept_snapshot_chunk(rpc.data)
    except DiskFull:  # not written (the disk alarm is on): give the transfer up, unanswered;
        become_follower(state, rpc.leader_id, effects)  # the sender retries it from chunk 1
        return
    state.snapshot_chunk_expected += 1
    if not rpc.is_last:
        effects.append(StartElectionTimer("receive_snapshot"))
        send(effects, rpc.leader_id, InstallSnapshotResult(state.term, state.id, rpc.chunk_num, 0, 0))
        return
    meta, machine_state = state.log.complete_snapshot_accept()
    state.snapshot_meta_receiving = None
    install(state, meta, machine_state, effects)
    state.role = "follower"
    state.follower_match = meta.index
    effects.append(RoleChanged("follower", state.leader_id, state.term))
    effects.append(CancelElectionTimer())
    effects.append(SnapshotInstalled(meta))
    machine_effects(state, callback(state, "snapshot_installed", state.machine.snapshot_installed,
                                    (meta, state.machine_state), effects), effects)
    send(effects, rpc.leader_id, InstallSnapshotResult(state.term, state.id, rpc.chunk_num, meta.index, meta.term))


def _log_holds(state: ServerState, meta: SnapshotMeta) -> bool:
    """Our log durably has the snapshot's last entry (so, by log matching, all of it)."""
    log = state.log
    return log.last_written()[0] >= meta.index and log.fetch_term(meta.index) == meta.term


def install(state: ServerState, meta: SnapshotMeta, machine_state: object, effects: list[Effect] | None) -> None:
    """Adopt a snapshot's state (also used by recovery)."""
    state.machine_state = machine_state
    state.last_applied = meta.index
    if meta.index > state.commit_index:
        state.commit_index = meta.index
    cluster = meta.cluster or {}
    state.members = enc.members_from_wire(cluster.get("members", []))
    state.prev_members = state.members
    state.cluster_index = state.prev_cluster_index = meta.index
    state.sessions = dict(session_from_wire(item) for item in cluster.get("sessions", []))
    state.applied_time_ms = cluster.get("time_ms", 0)
    state.effective_machine_version = meta.machine_version
    state.machine = state.base_machine.which_module(meta.machine_version)
    if effects is not None:
        effects.append(MembersChanged(tuple(sorted(state.members.items()))))


def handle(state: ServerState, event: Event, effects: list[Effect]) -> None:
    """Role ``receive_snapshot``."""
    from raft_otp.core import follower

    match event:
        case InstallSnapshotRpc():
            install_snapshot(state, event, effects)
        case AppendEntriesRpc() | HeartbeatRpc():
            if event.term > state.term or (event.term == state.term and event.leader_id != state.leader_id):
                maybe_newer_term(state, event.term, effects)
                become_follower(state, event.leader_id, effects)
                follower.handle(state, event, effects)
        case PreVoteRpc() | RequestVoteRpc():
            follower.handle(state, event, effects)
        case ElectionTimeout():
            become_follower(state, None, effects)
        case LeaderDown() | NodeDown():
            follower.handle(state, event, effects)
        case _:
            follower.handle(state, event, effects) if _is_passive(event) else None


def _is_passive(event: Event) -> bool:
    return not isinstance(event, (ElectionTimeout,))
