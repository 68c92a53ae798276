"""Follower role (RA ``ra_server:handle_follower/2``).

A follower acknowledges only what its WAL made durable: an append_entries success
reply carries ``min(last_written, follower_match)`` where ``follower_match`` is the
highest index known to match the current leader's log.  New entries are
acknowledged when the ``Written`` log event arrives.  With a known leader no
election timer runs (idle clusters are silent); ``LeaderDown``/``NodeDown`` from
the actor start the way to pre-vote.
"""

from __future__ import annotations

from raft_otp.core import entries as enc
from raft_otp.core import membership
from raft_otp.core.apply import answer_local_queries, apply_committed
from raft_otp.core.common import (
    become_follower,
    election_timer,
    maybe_newer_term,
    not_leader,
    persist_term,
    reject_commands,
    send,
)
from raft_otp.core.effects import Effect, Reply, RoleChanged
from raft_otp.core.events import (
    AddMember,
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    Commands,
    ConsistentQuery,
    ElectionTimeout,
    Event,
    HeartbeatReply,
    HeartbeatRpc,
    InstallSnapshotResult,
    InstallSnapshotRpc,
    LeaderDown,
    LeaderQuery,
    LocalQuery,
    LogEvent,
    NodeDown,
    PreVoteResult,
    PreVoteRpc,
    RemoveMember,
    RequestVoteResult,
    RequestVoteRpc,
    Tick,
    TimeoutNowRpc,
    TransferLeadership,
    TriggerElection,
    WalDown,
)
from raft_otp.core.log_api import Written
from raft_otp.core.state import ServerState
from raft_otp.core.machine_calls import query_reply

from raft_otp.core import election, fences, snapshot


def handle(state: ServerState, event: Event, effects: list[Effect]) -> None:
    match event:
        case AppendEntriesRpc():
            append_entries(state, event, effects)
        case InstallSnapshotRpc():
            snapshot.install_snapshot(state, event, effects)
        case HeartbeatRpc():
            heartbeat(state, event, effects)
        case PreVoteRpc():
            election.handle_pre_vote_rpc(state, event, effects)
        case RequestVoteRpc():
            election.handle_request_vote_rpc(state, event, effects)
        case ElectionTimeout() | TriggerElection():
            election.start_pre_vote(state, effects)
        case TimeoutNowRpc():
            maybe_newer_term(state, event.term, effects)
            if event.term == state.term and state.is_voter() and fences.may_vote(state):
                election.start_candidate(state, effects, transfer=True)
        case LeaderDown():
            if state.leader_id is not None and event.leader in (None, state.leader_id):
                become_follower(state, None, effects, timer="leader_down")
        case NodeDown():
            # the leader's node is gone (its connection closed, or silent for the
            # detection time): RA's "short" timeout for a leader DOWN with reason
            # noconnection, not the long pre-vote one
            if state.leader_id is not None and state.leader_id.node == event.node:
                become_follower(state, None, effects, timer="connection_lost")
        case Command() | Commands():
            reject_commands(state, event, effects)
        case LeaderQuery() | ConsistentQuery() | AddMember() | RemoveMember() | TransferLeadership():
            not_leader(state, event.reply_to, effects)
        case _:
            handle_passive(state, event, effects)


def handle_passive(state: ServerState, event: Event, effects: list[Effect]) -> None:
    """Events every non-leader role treats alike."""
    match event:
        case LogEvent():
            log_event(state, event, effects)
        case LocalQuery():
            local_query(state, event, effects)
        case Tick():
            state.now_ms = event.now_ms
        case AppendEntriesReply() | InstallSnapshotResult() | HeartbeatReply() | PreVoteResult() | \
                RequestVoteResult():
            maybe_newer_term(state, event.term, effects)
        case WalDown():
            from raft_otp.core.await_condition import enter

            enter(state, effects)
        case _:
            pass  # LeaderDown/NodeDown/NodeUp/SnapshotSender*/WalUp: nothing to do in this role


def local_query(state: ServerState, q: LocalQuery, effects: list[Effect]) -> None:
    if q.min_index <= state.last_applied:
        query_reply(state, q.reply_to, q.fun, state.leader_id, effects)
    else:
        state.local_queries.append((q.min_index, q.reply_to, q.fun))


def log_event(state: ServerState, event: LogEvent, effects: list[Effect]) -> None:
    results = state.log.handle_event(event.payload)
    written = any(isinstance(r, Written) for r in results)
    if written and state.role == "follower" and state.leader_id is not None:
        _reply_success(state, effects)
        if state.data_lost is not None:
            fences.check_caught_up(state, effects)
    apply_committed(state, effects)
    if state.local_queries:
        answer_local_queries(state, effects)


def _reply_success(state: ServerState, effects: list[Effect]) -> None:
    assert state.leader_id is not None
    match = state.cfg.rules.follower_acked_index(state)
    term = state.log.fetch_term(match) or 0
    send(effects, state.leader_id,
         AppendEntriesReply(state.term, state.id, True, state.follower_match + 1, match, term))


def _reject(state: ServerState, leader: object, next_index: int, effects: list[Effect]) -> None:
    li, lt = state.log.last_index_term()
    send(effects, leader, AppendEntriesReply(state.term, state.id, False, next_index, li, lt))  # type: ignore


def append_entries(state: ServerState, rpc: AppendEntriesRpc, effects: list[Effect]) -> None:
    log = state.log
    if rpc.term < state.term:
        li, _lt = log.last_index_term()
        _reject(state, rpc.leader_id, li + 1, effects)
        return
    if rpc.term > state.term:
        persist_term(state, rpc.term, None, effects)
    if state.role != "follower" or state.leader_id != rpc.leader_id:
        become_follower(state, rpc.leader_id, effects)
    entries = rpc.entries
    prev = rpc.prev_log_index
    snap_index = log.first_index() - 1
    if prev < snap_index:
        # everything up to our snapshot is committed and identical: skip it
        skip = min(snap_index - prev, len(entries))
        entries = entries[skip:]
        prev = prev + skip
        # our snapshot holds committed entries only, so the leader's log (Leader
        # Completeness) matches ours up to its index
        if snap_index > state.follower_match:
            state.follower_match = snap_index
        if prev < snap_index:  # nothing new here
            _reply_success(state, effects)
            return
    else:
        prev_term = log.fetch_term(prev) if prev > 0 else 0  # index 0 has term 0 by definition
        if prev_term != rpc.prev_log_term:
            _reject(state, rpc.leader_id, _conflict_hint(state, prev, prev_term), effects)
            return
    last_index = log.last_index_term()[0]
    k, n = 0, len(entries)
    while k < n and entries[k][0] <= last_index and log.fetch_term(entries[k][0]) == entries[k][1]:
        k += 1
    wrote = k < n
    if wrote:
        new = entries[k:] if k else entries
        first = new[0][0]
        if first <= last_index:
            membership.revert_above(state, first - 1, effects)
        log.write(list(new))  # durable later: the success goes out on the written event
        for idx, _term, data in new:
            if enc.kind_of(data) == enc.CLUSTER:  # no decoding unless it is one
                membership.set_members(state, enc.members_from_wire(enc.decode(data)[1]), idx, effects)
    rpc_last = rpc.prev_log_index + len(rpc.entries)
    if rpc_last > state.follower_match:
        state.follower_match = rpc_last
    commit = min(rpc.leader_commit, state.follower_match)
    if commit > state.commit_index:
        state.commit_index = commit
    if not wrote or state.cfg.rules.follower_acked_index(state) >= rpc_last:
        _reply_success(state, effects)  # nothing new, or all of it durable already
    if state.data_lost is not None:
        fences.check_caught_up(state, effects)
    apply_committed(state, effects)
    if state.local_queries:
        answer_local_queries(state, effects)


def _conflict_hint(state: ServerState, prev: int, prev_term: int | None) -> int:
    """Where the leader should resume: past our log's end, or at the first index of
    the conflicting term (never at or below our commit index)."""
    log = state.log
    last_index = log.last_index_term()[0]
    if prev_term is None or prev > last_index:
        return last_index + 1
    floor = max(state.commit_index + 1, log.first_index())
    i = prev
    while i > floor and log.fetch_term(i - 1) == prev_term:
        i -= 1
    return max(min(i, prev), 1)


def heartbeat(state: ServerState, rpc: HeartbeatRpc, effects: list[Effect]) -> None:
    if rpc.term >= state.term:
        if rpc.term > state.term:
            persist_term(state, rpc.term, None, effects)
        if state.role != "follower" or state.leader_id != rpc.leader_id:
            become_follower(state, rpc.leader_id, effects)
    send(effects, rpc.leader_id, HeartbeatReply(state.term, state.id, rpc.query_index))


__all__ = ["handle", "handle_passive", "RoleChanged", "election_timer"]
