"""Transitions and replies shared by every role (RA ``ra_server`` helpers such as
``update_term``, ``become_follower`` and the ``not_leader`` replies)."""

from __future__ import annotations

from raft_otp.core.effects import (
    CancelElectionTimer,
    Effect,
    MachineEffects,
    Notify,
    PersistMeta,
    Rejected,
    ReplyError,
    RoleChanged,
    SendRpc,
    StartElectionTimer,
    StopSnapshotSender,
    TimerKind,
)
from raft_otp.core.events import Command, Commands
from raft_otp.core.machine import Checkpoint, ReleaseCursor
from raft_otp.core.state import ServerState
from raft_otp.core.types import ServerId
from raft_otp.errors import MachineError

LEADER_ONLY_EFFECTS = ("SendMsg", "ModCall", "Timer", "Monitor", "Demonitor", "LogRead")


def persist_term(state: ServerState, term: int, voted_for: ServerId | None, effects: list[Effect]) -> None:
    """Adopt ``term``/``voted_for``; the actor makes them durable before later effects."""
    if term != state.term:
        state.follower_match = 0
    state.term = term
    state.voted_for = voted_for
    effects.append(PersistMeta(term, voted_for, state.vote_unproven, state.data_lost))


def maybe_newer_term(state: ServerState, term: int, effects: list[Effect]) -> bool:
    """Figure 2: a higher term in any RPC makes us a follower of that term."""
    if term > state.term:
        persist_term(state, term, None, effects)
        if state.role != "follower" or state.leader_id is not None:
            become_follower(state, None, effects)
        return True
    return False


def election_timer(state: ServerState, kind: TimerKind, effects: list[Effect]) -> None:
    if state.is_voter():
        effects.append(StartElectionTimer(kind))
    else:
        effects.append(CancelElectionTimer())


def become_follower(state: ServerState, leader: ServerId | None, effects: list[Effect],
                    timer: TimerKind = "pre_vote") -> None:
    """Enter (or stay in) follower; with a known leader no election timer runs."""
    was = state.role
    if was == "leader":
        leader_cleanup(state, effects)
    elif was == "receive_snapshot":
        state.log.abort_snapshot_accept()
        state.snapshot_meta_receiving = None
    changed = was != "follower" or state.leader_id != leader
    if state.leader_id != leader:
        state.follower_match = 0
    state.role = "follower"
    state.leader_id = leader
    if changed:
        effects.append(RoleChanged("follower", leader, state.term))
        if leader is None:
            election_timer(state, timer, effects)
        elif state.vote_unproven:
            # a damaged vote is proven only by a pre-vote round every other voter
            # answers (raft_otp.core.fences): a leader's probe that arrives before the
            # boot-time round must not leave it waiting for a leader to fail
            election_timer(state, "pre_vote", effects)
        else:
            effects.append(CancelElectionTimer())
        if was != "follower":
            from raft_otp.core.machine_calls import callback

            machine_effects(state, callback(state, "state_enter", state.machine.state_enter,
                                            ("follower", state.machine_state), effects), effects)


def leader_cleanup(state: ServerState, effects: list[Effect]) -> None:
    """Leadership lost: callers of appended-but-unapplied commands learn the outcome
    is unknown; queries and admin calls fail with ``not_leader``."""
    for _index, cmd in state.pending:
        if cmd.mode == "await_consensus":
            effects.append(ReplyError(cmd.reply_to, "leadership_lost", None))
    state.pending.clear()
    for q in state.queries:
        effects.append(ReplyError(q.reply_to, "not_leader", None))
    state.queries.clear()
    if state.pending_cluster_change is not None:
        _idx, reply_to = state.pending_cluster_change
        if reply_to is not None:
            effects.append(ReplyError(reply_to, "leadership_lost", None))
        state.pending_cluster_change = None
    if state.transfer is not None:
        effects.append(ReplyError(state.transfer[1], "not_leader", None))
        state.transfer = None
    state.handoff = None
    for sid, peer in state.peers.items():
        if peer.status == "sending_snapshot":
            effects.append(StopSnapshotSender(sid))
    state.peers = {}


def reject_commands(state: ServerState, event: Command | Commands, effects: list[Effect]) -> None:
    """Not the leader: redirect callers (RA ``{error, not_leader, Leader}`` / ``rejected``)."""
    redirect(event.commands if isinstance(event, Commands) else (event,), state.leader_id, effects)


def redirect(cmds: tuple[Command, ...] | list[Command], leader: ServerId | None,
             effects: list[Effect]) -> None:
    """Send the callers of ``cmds`` to ``leader`` (the best hint): ``not_leader`` to
    awaiting callers, one ``Rejected`` per pipelining caller."""
    notify: dict[object, list[object]] = {}
    for cmd in cmds:
        if cmd.mode == "await_consensus":
            effects.append(ReplyError(cmd.reply_to, "not_leader", leader))
        elif cmd.mode == "notify":
            notify.setdefault(cmd.reply_to, []).append(cmd.correlation)
    for to, corrs in notify.items():
        effects.append(Rejected(to, tuple(corrs), leader))


def refuse(cmd: Command, err: Exception, leader: ServerId | None, effects: list[Effect]) -> None:
    """A command that never reaches the log (too large, not encodable, disk full): its
    caller learns why at once, as an error or as its pipelined outcome."""
    if cmd.mode == "await_consensus":
        effects.append(ReplyError(cmd.reply_to, err, leader))  # type: ignore[arg-type]
    elif cmd.mode == "notify":
        effects.append(Notify(cmd.reply_to, ((cmd.correlation, err),)))


def not_leader(state: ServerState, reply_to: object, effects: list[Effect]) -> None:
    effects.append(ReplyError(reply_to, "not_leader", state.leader_id))


def machine_effects(state: ServerState, mac_effects: list | tuple | None, effects: list[Effect]) -> None:
    """Carry out release_cursor/checkpoint against the log; pass the others out
    (leader-only ones dropped on followers, everything dropped during recovery)."""
    if not mac_effects or state.applying_recovery:
        return
    out = []
    for eff in mac_effects:
        if isinstance(eff, ReleaseCursor):
            meta = snapshot_meta_at(state, eff.index)
            if meta is not None:
                state.log.update_release_cursor(meta, eff.state)
        elif isinstance(eff, Checkpoint):
            meta = snapshot_meta_at(state, eff.index)
            if meta is not None:
                state.log.checkpoint(meta, eff.state)
        elif state.role == "leader" or type(eff).__name__ not in LEADER_ONLY_EFFECTS:
            out.append(eff)
    if out:
        effects.append(MachineEffects(tuple(out)))


def snapshot_meta_at(state: ServerState, index: int):  # -> SnapshotMeta | None
    from raft_otp.core.entries import members_to_wire
    from raft_otp.core.log_api import SnapshotMeta
    from raft_otp.core.membership import members_at

    term = state.log.fetch_term(index)
    if term is None or index > state.last_applied or index <= 0:
        return None
    cluster = {
        "members": members_to_wire(members_at(state, index)),
        "sessions": [_session_to_wire(cid, s) for cid, s in state.sessions.items()],
        "time_ms": state.applied_time_ms,
    }
    return SnapshotMeta(index, term, cluster, state.effective_machine_version)


def _session_to_wire(client_id: object, session: list) -> list:
    """A session as plain data: a command that failed in the machine keeps its
    MachineError (its fields, as a 4th element) so a retry gets the same outcome."""
    seq, reply = session
    if type(reply) is MachineError:
        return [client_id, seq, None, [reply.type_name, reply.message, reply.index]]
    return [client_id, seq, reply]


def session_from_wire(item: list) -> tuple[object, list]:
    if len(item) > 3:
        return item[0], [item[1], MachineError(*item[3])]
    return item[0], [item[1], item[2]]


def send(effects: list[Effect], to: ServerId, rpc: object) -> None:
    effects.append(SendRpc(to, rpc))  # type: ignore[arg-type]
