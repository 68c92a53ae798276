"""Leader role (RA ``ra_server:handle_leader/2``): the append path, replication
with per-peer next/match index, batching and pipelining, commit by quorum of
durable match indexes, consistent queries, membership changes, leadership
transfer, snapshots to lagging peers.

Hot path: ``Commands`` → one encode per command, one ``log.append`` for the batch,
one ``SendRpcs`` with at most ``max_append_entries_rpc_batch_size`` entries per
RPC and at most ``max_pipeline_count`` entries in flight per peer.  Idle leaders
send nothing; ``Tick`` only re-sends to peers that made no progress.
"""

from __future__ import annotations

from raft_otp.core import entries as enc
from raft_otp.core import membership
from raft_otp.core.apply import apply_committed
from raft_otp.core.common import (become_follower, machine_effects, maybe_newer_term, redirect, refuse,
                                  send)
from raft_otp.core.effects import (
    CancelElectionTimer,
    Effect,
    Reply,
    ReplyError,
    RoleChanged,
    SendRpc,
    SendRpcs,
    SendSnapshot,
    StartCommitTimer,
    StopSnapshotSender,
)
from raft_otp.core.events import (
    AddMember,
    AppendEntriesReply,
    AppendEntriesRpc,
    Command,
    Commands,
    CommitTimeout,
    ConsistentQuery,
    Event,
    HeartbeatReply,
    HeartbeatRpc,
    InstallSnapshotResult,
    InstallSnapshotRpc,
    LeaderQuery,
    LocalQuery,
    LogEvent,
    NodeDown,
    NodeUp,
    PreVoteResult,
    PreVoteRpc,
    RemoveMember,
    RequestVoteResult,
    RequestVoteRpc,
    SnapshotSenderDone,
    SnapshotSenderFailed,
    Tick,
    TimeoutNowRpc,
    TransferLeadership,
    WalDown,
)
from raft_otp.core.log_api import SnapshotWritten
from raft_otp.core.quorum import agreed_index
from raft_otp.core.state import Peer, PendingQuery, ServerState
from raft_otp.core.machine_calls import callback, query_reply
from raft_otp.core.types import ServerId
from raft_otp.errors import CommandTooLarge, WireTypeError


def become_leader(state: ServerState, effects: list[Effect]) -> None:
    state.role = "leader"
    state.leader_id = state.id
    state.peers = {}
    state.pending.clear()
    state.queries.clear()
    state.query_index = 0
    state.transfer = None
    state.handoff = None
    state.pending_cluster_change = None
    state.commit_timer_armed = False  # a timer of an earlier term may still fire: harmless
    membership.sync_peers(state)
    li = state.log.last_index_term()[0]
    state.entry_time_ms = last_entry_time(state, li)
    state.first_term_index = li + 1
    state.first_term_applied = False
    state.log.append([(li + 1, state.term, enc.encode_noop(state.base_machine.version()))])
    effects.append(CancelElectionTimer())
    effects.append(RoleChanged("leader", state.id, state.term))
    machine_effects(state, callback(state, "state_enter", state.machine.state_enter,
                                    ("leader", state.machine_state), effects), effects)
    replicate(state, effects)
    evaluate_commit(state, effects)


def last_entry_time(state: ServerState, last_index: int) -> int:
    """The time of the last command in our log: the floor of the times this leader
    stamps.  Times never decrease along a log (each leader starts from its own log's
    last), so the last command not yet applied has the largest, else the last applied."""
    for index in range(last_index, state.last_applied, -1):
        fetched = state.log.fetch(index, index)
        if not fetched:
            break
        value = enc.decode_unchecked(fetched[0][2])
        if value[0] == enc.USR:
            return max(value[2], state.applied_time_ms)
    return state.applied_time_ms


def handle(state: ServerState, event: Event, effects: list[Effect]) -> None:
    sender = _sender(state, event)
    if sender is not None:
        sender.heard = True
        sender.node_down = False
    match event:
        case Commands():
            append_commands(state, event.commands, effects, event.now_ms)
        case Command():
            append_commands(state, (event,), effects, state.now_ms)
        case AppendEntriesReply():
            append_entries_reply(state, event, effects)
        case LogEvent():
            for result in state.log.handle_event(event.payload):
                if isinstance(result, SnapshotWritten):
                    pass  # the log dropped what the snapshot covers
            evaluate_commit(state, effects)
            apply_committed(state, effects)
        case Tick():
            tick(state, event.now_ms, effects)
        case CommitTimeout():
            commit_timeout(state, effects)
        case HeartbeatReply():
            if maybe_newer_term(state, event.term, effects):
                return
            peer = state.peers.get(event.from_id)
            if peer is not None and event.term == state.term and event.query_index > peer.query_index:
                peer.query_index = event.query_index
                check_queries(state, effects)
        case ConsistentQuery():
            consistent_query(state, event, effects)
        case LeaderQuery():
            query_reply(state, event.reply_to, event.fun, state.id, effects)
        case LocalQuery():
            follower.local_query(state, event, effects)
        case AddMember() | RemoveMember():
            change_membership(state, event, effects)
        case TransferLeadership():
            transfer_leadership(state, event, effects)
        case InstallSnapshotResult():
            if maybe_newer_term(state, event.term, effects):
                return
            peer = state.peers.get(event.from_id)
            if peer is not None and event.last_index > 0:
                _advance(peer, event.last_index)
                peer.status = "normal"
                evaluate_commit(state, effects)
                _send_to_peer(state, event.from_id, peer, effects)
        case SnapshotSenderDone():
            peer = state.peers.get(event.peer)
            if peer is not None and peer.status == "sending_snapshot":
                peer.status = "normal"
                if peer.next_index <= event.index:
                    peer.next_index = event.index + 1
                _send_to_peer(state, event.peer, peer, effects)
        case SnapshotSenderFailed():
            peer = state.peers.get(event.peer)
            if peer is not None:
                peer.status = "normal"  # retried by the next tick
        case AppendEntriesRpc() | InstallSnapshotRpc() | HeartbeatRpc() | TimeoutNowRpc():
            if event.term > state.term:
                maybe_newer_term(state, event.term, effects)
                follower.handle(state, event, effects)
            elif event.term < state.term and not isinstance(event, TimeoutNowRpc):
                follower.handle(state, event, effects)  # answers with our term
            # same term from another leader cannot happen (one leader per term)
        case PreVoteRpc():
            pre_vote_to_leader(state, event, effects)
        case NodeUp():
            node_up(state, event.node, effects)
        case NodeDown():
            node_down(state, event.node, effects)
        case RequestVoteRpc():
            election.handle_request_vote_rpc(state, event, effects)
        case WalDown():
            from raft_otp.core.await_condition import enter

            enter(state, effects)
        case _:
            follower.handle_passive(state, event, effects)


# ---- append path ----------------------------------------------------------------

def append_commands(state: ServerState, commands: tuple[Command, ...] | list[Command], effects: list[Effect],
                    now_ms: int) -> None:
    if state.handoff is not None:
        redirect(commands, state.handoff, effects)
        return
    term = state.term
    index = state.log.last_index_term()[0]
    now = state.entry_time_ms
    if now_ms > now:
        now = state.entry_time_ms = now_ms
    batch = []
    pending = state.pending
    encode = enc.encode_usr
    answered_at_append = state.cfg.rules.answers_at_append
    limit = state.cfg.max_command_bytes
    for cmd in commands:
        try:
            data = encode(cmd.data, now, cmd.client_id, cmd.seq)
        except Exception as exc:  # not msgpack (a caller that skipped the API's check)
            refuse(cmd, WireTypeError(f"command cannot be encoded: {exc}"), state.id, effects)
            continue
        if len(data) > limit:
            refuse(cmd, CommandTooLarge(len(data), limit), state.id, effects)
            continue
        index += 1
        batch.append((index, term, data))
        if cmd.mode != "noreply" and not (cmd.mode == "await_consensus"
                                          and answered_at_append(state, index, now, data, cmd, effects)):
            pending.append((index, cmd))
    if batch:
        state.log.append(batch)
        replicate(state, effects)
        evaluate_commit(state, effects)


def replicate(state: ServerState, effects: list[Effect], tell_commit: bool = True) -> None:
    """Send whatever each normal peer is missing, within the pipeline bound.
    ``tell_commit=False``: a peer with no entries to send is told a newer commit
    index later (see ``_defer_commit``)."""
    sends: list[tuple[ServerId, object]] = []
    for sid, peer in state.peers.items():
        if peer.status == "normal":
            _fill(state, sid, peer, sends, effects, tell_commit=tell_commit)
    _flush(sends, effects)


def _defer_commit(state: ServerState, effects: list[Effect]) -> None:
    """A peer needs a newer commit index but has no entries to carry it: start the
    commit timer (once) instead of sending a commit-only append_entries now."""
    if not state.commit_timer_armed:
        state.commit_timer_armed = True
        for peer in state.peers.values():
            peer.sent_since_commit_timer = False
        effects.append(StartCommitTimer(state.commit_timer_ms))


COMMIT_TIMER_BACKOFF = 8
"""Under steady load the commit timer keeps finding every peer busy; it then waits
up to this many times ``commit_notify_delay_ms`` (doubling each time), so a busy
leader does not take a timer event every few milliseconds."""


def commit_timeout(state: ServerState, effects: list[Effect]) -> None:
    """The commit timer fired: a peer that got append_entries since it started will
    hear the commit index with the next one (or at the next timeout); the others get
    a commit-only append_entries now."""
    state.commit_timer_armed = False
    sends: list = []
    again = False
    base = state.cfg.commit_notify_delay_ms
    for sid, peer in state.peers.items():
        if peer.status != "normal" or peer.commit_index_sent >= state.commit_index:
            continue
        if peer.sent_since_commit_timer:
            again = True
        else:
            _fill(state, sid, peer, sends, effects)
    _flush(sends, effects)
    if again:  # busy peers: look again, a little later each time
        state.commit_timer_ms = min(2 * state.commit_timer_ms, COMMIT_TIMER_BACKOFF * base)
        _defer_commit(state, effects)
    else:
        state.commit_timer_ms = base


def _flush(sends: list, effects: list[Effect]) -> None:
    if len(sends) == 1:
        effects.append(SendRpc(sends[0][0], sends[0][1]))
    elif sends:
        effects.append(SendRpcs(tuple(sends)))


def _send_to_peer(state: ServerState, sid: ServerId, peer: Peer, effects: list[Effect], force: bool = False,
                  tell_commit: bool = True) -> None:
    sends: list = []
    if peer.status == "normal":
        _fill(state, sid, peer, sends, effects, force, tell_commit=tell_commit)
    _flush(sends, effects)


def _fill(state: ServerState, sid: ServerId, peer: Peer, sends: list, effects: list[Effect],
          force: bool = False, max_rpcs: int = 1 << 30, tell_commit: bool = True) -> None:
    log = state.log
    last = log.last_index_term()[0]
    batch = state.cfg.max_append_entries_rpc_batch_size
    max_inflight = state.cfg.max_pipeline_count
    commit = state.commit_index
    sent = False
    while (peer.next_index <= last and peer.next_index - 1 - peer.match_index < max_inflight
           and max_rpcs > 0):
        max_rpcs -= 1
        nxt = peer.next_index
        prev_term = log.fetch_term(nxt - 1) if nxt > 1 else 0
        if nxt < log.first_index() or prev_term is None:
            _start_snapshot(state, sid, peer, effects)
            return
        to = min(last, nxt + batch - 1, peer.match_index + max_inflight)
        entries = log.fetch(nxt, to)
        sends.append((sid, AppendEntriesRpc(state.term, state.id, commit, nxt - 1, prev_term, entries)))
        peer.next_index = to + 1
        peer.commit_index_sent = commit
        sent = True
    if sent:
        peer.sent_since_commit_timer = True
    elif not force and peer.commit_index_sent < commit and not tell_commit \
            and state.cfg.commit_notify_delay_ms > 0:
        _defer_commit(state, effects)
    elif force or peer.commit_index_sent < commit:
        # nothing new: tell the peer the commit index, anchored where its next entries
        # would go (as RA): a peer that does not have that entry (a new member with an
        # empty log, one that lost what was in flight) rejects it and reports its last
        # index, so the leader resumes from there (or sends a snapshot) at once instead
        # of waiting for a tick to find the peer stale.  A peer whose acknowledged log
        # ends below what the log still holds (cut off while a snapshot was taken) gets
        # that snapshot now.
        if peer.match_index + 1 < log.first_index():
            _start_snapshot(state, sid, peer, effects)
            return
        prev = peer.next_index - 1
        prev_term = log.fetch_term(prev) if prev > 0 else 0
        if prev_term is None:
            if prev < log.first_index():
                _start_snapshot(state, sid, peer, effects)
            return
        sends.append((sid, AppendEntriesRpc(state.term, state.id, commit, prev, prev_term, [])))
        peer.commit_index_sent = commit


def _start_snapshot(state: ServerState, sid: ServerId, peer: Peer, effects: list[Effect]) -> None:
    meta = state.log.snapshot_meta()
    if meta is None:
        return
    peer.status = "sending_snapshot"
    peer.snapshot_ticks = 0
    effects.append(SendSnapshot(sid, meta, state.term))


def _advance(peer: Peer, match: int) -> bool:
    if match > peer.match_index:
        peer.match_index = match
        if peer.next_index <= match:
            peer.next_index = match + 1
        return True
    return False


def append_entries_reply(state: ServerState, reply: AppendEntriesReply, effects: list[Effect]) -> None:
    if maybe_newer_term(state, reply.term, effects):
        return
    peer = state.peers.get(reply.from_id)
    if peer is None or reply.term != state.term:
        return
    if reply.success:
        if _advance(peer, reply.last_index):
            evaluate_commit(state, effects)
            if state.role != "leader":
                return
            if peer.kind == "promotable":
                _maybe_promote(state, reply.from_id, peer, effects)
            if state.transfer is not None and state.transfer[0] == reply.from_id:
                _maybe_transfer(state, effects)
        peer.reject_next = 0
        _send_to_peer(state, reply.from_id, peer, effects, tell_commit=False)
    else:
        _append_entries_failed(state, reply, peer, effects)


def _append_entries_failed(state: ServerState, reply: AppendEntriesReply, peer: Peer,
                           effects: list[Effect]) -> None:
    """A peer rejected an append_entries.  If it reports a last index below the match
    index we recorded, its log went backwards (data dir wiped, non-durable storage):
    believe it, as RA does, and resume from its real end (a snapshot if that is now
    below our first index).  Otherwise step next_index back to the conflict hint.

    At most one RPC goes out per failure reply, and none when the reply tells us
    nothing new (same resume point as the previous failure, e.g. the other replies of
    a rejected pipeline): a peer that keeps failing is retried by ``tick``, never in a
    reply/resend busy loop."""
    if reply.last_index < peer.match_index:
        # below the hint the peer has nothing it disputes; never claim past its end
        peer.match_index = max(0, min(reply.last_index, reply.next_index - 1))
        peer.next_index = peer.match_index + 1
        peer.tick_match = -1
    else:
        peer.next_index = max(peer.match_index + 1, min(reply.next_index, peer.next_index))
    if peer.next_index == peer.reject_next:
        return  # a repeat: nothing learned, let the tick retry
    peer.reject_next = peer.next_index
    sends: list = []
    if peer.status == "normal":
        _fill(state, reply.from_id, peer, sends, effects, force=True, max_rpcs=1)
    _flush(sends, effects)


def node_up(state: ServerState, node: str, effects: list[Effect]) -> None:
    """A node came (back) up: probe our peers on it at once with an append_entries
    from their match index, so a restarted follower learns its leader and the commit
    index now rather than at its election timeout (RA's leader does the same on
    ``nodeup``)."""
    sends: list = []
    for sid, peer in state.peers.items():
        if sid.node == node:
            peer.node_down = False
            _probe(state, sid, peer, sends, effects)
    _flush(sends, effects)


def _probe(state: ServerState, sid: ServerId, peer: Peer, sends: list, effects: list[Effect]) -> None:
    """One append_entries from the peer's match index (what was in flight to it may be
    lost), entries or not, so it learns its leader and the commit index now."""
    if peer.status == "normal":
        peer.next_index = peer.match_index + 1
        _fill(state, sid, peer, sends, effects, force=True, max_rpcs=1)


def pre_vote_to_leader(state: ServerState, rpc: PreVoteRpc, effects: list[Effect]) -> None:
    """A member pre-votes while we lead (it restarted, or lost us for a while): not
    granted, and probe it with an append_entries at once so it learns its leader
    now rather than after more election rounds (RA enforces leadership the same way)."""
    send(effects, rpc.candidate_id, PreVoteResult(state.term, rpc.token, state.id, False))
    peer = state.peers.get(rpc.candidate_id)
    if peer is not None:
        sends: list = []
        _probe(state, rpc.candidate_id, peer, sends, effects)
        _flush(sends, effects)


def evaluate_commit(state: ServerState, effects: list[Effect]) -> None:
    """Figure 2: commit the highest index replicated (durably) on a quorum of
    voters, if it is of the current term."""
    rules = state.cfg.rules
    indexes = [p.match_index for p in state.peers.values() if p.kind == "voter"]
    if state.members.get(state.id) == "voter":
        indexes.append(rules.leader_counted_index(state))
    agreed = agreed_index(indexes)
    if agreed > state.commit_index:
        if rules.commit_counts_entry(state, agreed):
            state.commit_index = agreed
            apply_committed(state, effects)
            if state.role == "leader":
                # new entries go now; idle peers hear the new commit index a little later
                replicate(state, effects, tell_commit=False)


def tick(state: ServerState, now_ms: int, effects: list[Effect]) -> None:
    state.now_ms = now_ms
    if state.handoff is not None:
        state.handoff_ticks += 1
        if state.handoff_ticks >= 2:  # the target did not take over: lead on
            state.handoff = None
    last = state.log.last_index_term()[0]
    for peer in state.peers.values():
        if peer.heard or not peer.owed:
            peer.silent_ticks = 0
        else:
            peer.silent_ticks += 1
        peer.heard = False
        peer.owed = peer.status == "normal" and (peer.match_index < last or peer.query_index < state.query_index)
    if check_quorum(state, effects):
        return
    sends: list = []
    for sid, peer in state.peers.items():
        if peer.status == "sending_snapshot":
            peer.snapshot_ticks += 1
            if peer.snapshot_ticks > state.cfg.snapshot_sender_timeout_ticks:
                effects.append(StopSnapshotSender(sid))  # the sender never reported: retry
                peer.status = "normal"
        stale = peer.match_index < last or peer.commit_index_sent < state.commit_index
        if peer.status == "normal" and stale and peer.match_index == peer.tick_match:
            peer.next_index = peer.match_index + 1  # re-send what may have been lost
            _fill(state, sid, peer, sends, effects, force=True)
        peer.tick_match = peer.match_index
    _flush(sends, effects)
    machine_effects(state, callback(state, "tick", state.machine.tick, (now_ms, state.machine_state),
                                    effects), effects)


# ---- CheckQuorum -----------------------------------------------------------------------

CHECK_QUORUM_SILENT_TICKS = 2
"""A peer that owed us an answer (entries or a query heartbeat in flight) at this many
tick checks in a row and sent nothing in between is not heard from: ~1-2 s at RA's
1 s tick, the span of a pre-vote election timeout."""


def _sender(state: ServerState, event: Event) -> Peer | None:
    """The peer a message of the current term came from (it can reach us), if any."""
    t = type(event)
    if t is AppendEntriesReply or t is HeartbeatReply or t is InstallSnapshotResult:
        sid = event.from_id  # type: ignore[union-attr]
    elif t is PreVoteRpc or t is RequestVoteRpc:
        sid = event.candidate_id  # type: ignore[union-attr]
    elif t is PreVoteResult or t is RequestVoteResult:
        sid = event.voter_id  # type: ignore[union-attr]
    else:
        return None
    if event.term != state.term:  # type: ignore[union-attr]
        return None  # an older term's message may be stale; a newer one deposes us anyway
    return state.peers.get(sid)


def node_down(state: ServerState, node: str, effects: list[Effect]) -> None:
    """The failure detector heard nothing from ``node`` for its detection time: what we
    heard from its members before does not count any more."""
    for sid, peer in state.peers.items():
        if sid.node == node:
            peer.node_down = True
            peer.heard = False
    check_quorum(state, effects)


def check_quorum(state: ServerState, effects: list[Effect]) -> bool:
    """CheckQuorum (etcd ``checkQuorum``, Raft thesis 6.2): a leader that has not heard
    from a quorum of voters (itself included) steps down, and at once asks for
    pre-votes: its followers, seeing their leader pre-vote, drop it and elect another
    (``election.handle_pre_vote_rpc``), so a leader that can send but not hear (a
    one-way partition) does not hold the cluster.  Returns True if it stepped down.

    "Heard from" without heartbeats (idle clusters stay silent): a voter counts
    unless the node failure detector reported its node down (and no message of our
    term came from it since), or it owed us an answer at ``CHECK_QUORUM_SILENT_TICKS``
    tick checks in a row and sent nothing.  The node detector's heartbeats are the
    only traffic of an idle cluster; the second rule catches a link that carries
    node heartbeats but loses our messages.  Liveness only: no safety rule rests on it."""
    if state.role != "leader":
        return False
    voters = state.voters()
    live = 1 if state.id in voters else 0
    for sid, peer in state.peers.items():
        if peer.kind == "voter" and (peer.heard or (not peer.node_down
                                                    and peer.silent_ticks < CHECK_QUORUM_SILENT_TICKS)):
            live += 1
    if state.cfg.rules.keeps_leadership(state, live, len(voters)):
        return False
    become_follower(state, None, effects)
    if state.is_voter() and fences.may_vote(state):
        election.start_pre_vote(state, effects)
    return True


def leader_after_apply(state: ServerState, effects: list[Effect]) -> None:
    """After applying: promotions that were waiting for the noop / a change to commit."""
    for sid, peer in list(state.peers.items()):
        if peer.kind == "promotable":
            _maybe_promote(state, sid, peer, effects)


# ---- queries ----------------------------------------------------------------------

def consistent_query(state: ServerState, q: ConsistentQuery, effects: list[Effect]) -> None:
    if not state.cfg.rules.consistent_query_needs_heartbeat(state):
        query_reply(state, q.reply_to, q.fun, state.id, effects)
        return
    state.query_index += 1
    target = max(state.commit_index, state.first_term_index)
    state.queries.append(PendingQuery(state.query_index, target, q.reply_to, q.fun))
    rpc = HeartbeatRpc(state.term, state.id, state.query_index)
    sends = tuple((sid, rpc) for sid, p in state.peers.items() if p.kind == "voter")
    if sends:
        effects.append(SendRpcs(sends))
    check_queries(state, effects)


def check_queries(state: ServerState, effects: list[Effect]) -> None:
    if not state.queries:
        return
    indexes = [p.query_index for p in state.peers.values() if p.kind == "voter"]
    if state.members.get(state.id) == "voter":
        indexes.append(state.query_index)
    confirmed = agreed_index(indexes)
    queries = state.queries
    while queries and queries[0].query_index <= confirmed and queries[0].commit_index <= state.last_applied:
        q = queries.popleft()
        query_reply(state, q.reply_to, q.fun, state.id, effects)


# ---- membership & transfer ----------------------------------------------------------

def _change_permitted(state: ServerState) -> bool:
    return state.first_term_applied and state.cluster_index <= state.commit_index \
        and state.pending_cluster_change is None


def change_membership(state: ServerState, event: AddMember | RemoveMember, effects: list[Effect]) -> None:
    if not _change_permitted(state):
        effects.append(ReplyError(event.reply_to, "cluster_change_not_permitted", state.id))
        return
    members = dict(state.members)
    if isinstance(event, AddMember):
        if event.server in members:
            effects.append(ReplyError(event.reply_to, "already_member", state.id))
            return
        members[event.server] = event.kind
    else:
        if event.server not in members:
            effects.append(ReplyError(event.reply_to, "not_member", state.id))
            return
        del members[event.server]
    _append_cluster_change(state, members, event.reply_to, effects)


def _append_cluster_change(state: ServerState, members: dict[ServerId, str], reply_to: object,
                           effects: list[Effect]) -> None:
    index = state.log.last_index_term()[0] + 1
    state.log.append([(index, state.term, enc.encode_cluster(members))])
    state.pending_cluster_change = (index, reply_to)
    membership.set_members(state, members, index, effects)
    replicate(state, effects)
    evaluate_commit(state, effects)


def _maybe_promote(state: ServerState, sid: ServerId, peer: Peer, effects: list[Effect]) -> None:
    if peer.match_index >= peer.promote_target and _change_permitted(state):
        members = dict(state.members)
        members[sid] = "voter"
        _append_cluster_change(state, members, None, effects)


def transfer_leadership(state: ServerState, event: TransferLeadership, effects: list[Effect]) -> None:
    if event.target == state.id:
        effects.append(ReplyError(event.reply_to, "already_leader", state.id))
    elif state.members.get(event.target) != "voter":
        effects.append(ReplyError(event.reply_to, "not_member", state.id))
    else:
        if state.transfer is not None:
            effects.append(ReplyError(state.transfer[1], "not_caught_up", state.id))
        state.transfer = (event.target, event.reply_to)
        _maybe_transfer(state, effects)


def _maybe_transfer(state: ServerState, effects: list[Effect]) -> None:
    assert state.transfer is not None
    target, reply_to = state.transfer
    peer = state.peers.get(target)
    if peer is None:
        state.transfer = None
        effects.append(ReplyError(reply_to, "not_member", state.id))
    elif peer.match_index >= state.log.last_index_term()[0]:
        state.transfer = None
        send(effects, target, TimeoutNowRpc(state.term, state.id))
        effects.append(Reply(reply_to, "ok", state.id))
        # Take no new command while the target stands: one appended now would make our
        # log longer than its and the voters that have it would refuse it (the transfer
        # would fail and the command would be lost with our leadership anyway).
        state.handoff, state.handoff_ticks = target, 0
    else:
        _send_to_peer(state, target, peer, effects)


__all__ = ["become_leader", "handle", "check_queries", "leader_after_apply", "become_follower"]


from raft_otp.core import election, fences, follower  # noqa: E402  (import cycle: they import this module)
