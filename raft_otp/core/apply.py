"""Applying committed entries to the machine (RA ``ra_server:apply_to/5``).

Applies up to ``min(commit_index, last_written)`` in bounded batches, answers the
leader's waiting callers (``Reply`` per await_consensus command, one ``Notify``
per caller for pipelined ones), dedups client-session retries, carries out
machine upgrades carried by noop entries and cluster-change commits.
"""

from __future__ import annotations

from typing import Any

from raft_otp.core import entries as enc
from raft_otp.core.common import become_follower, machine_effects
from raft_otp.core.effects import Effect, Notify, PersistLastApplied, Reply, ReplyError, SendRpc
from raft_otp.core.events import TimeoutNowRpc
from raft_otp.core.machine import ApplyMeta
from raft_otp.core.machine_calls import check_apply_result, failed, query_reply
from raft_otp.errors import MachineError
from raft_otp.core.state import ServerState

_unpack = enc.decode_unchecked
USR = enc.USR


def apply_committed(state: ServerState, effects: list[Effect]) -> None:
    target = min(state.commit_index, state.log.last_written()[0])
    if target <= state.last_applied:
        return
    notify: dict[Any, list[tuple[Any, Any]]] = {}
    batch = state.cfg.apply_batch_size
    while state.last_applied < target:
        hi = min(target, state.last_applied + batch)
        fetched = state.log.fetch(state.last_applied + 1, hi)
        assert fetched and fetched[0][0] == state.last_applied + 1, "committed entries missing"
        for entry in fetched:
            state.last_applied = entry[0]
            _apply_entry(state, entry, notify, effects)
    if not state.applying_recovery:
        effects.append(PersistLastApplied(state.last_applied, max(
            state.durable_floor, min(state.log.last_written()[0], state.commit_index))))
        for to, replies in notify.items():
            effects.append(Notify(to, tuple(replies)))
        if state.local_queries:
            answer_local_queries(state, effects)
        if state.role == "leader":
            from raft_otp.core.leader import check_queries, leader_after_apply

            check_queries(state, effects)
            leader_after_apply(state, effects)


def _apply_entry(state: ServerState, entry: tuple[int, int, bytes], notify: dict[Any, list[tuple[Any, Any]]],
                 effects: list[Effect]) -> None:
    index, term, data = entry
    try:
        value = _unpack(data)
    except Exception as exc:  # a command that encoded but does not decode (a tuple map key)
        value = [USR, None, 0]
        reply: Any = _undecodable(state, index, exc, effects)
    else:
        reply = None
    kind = value[0]
    if kind == USR:
        if reply is None:
            reply = _apply_usr(state, index, term, value, effects)
        pending = state.pending
        if pending and pending[0][0] <= index and state.role == "leader":
            while pending and pending[0][0] < index:
                pending.popleft()
            if pending and pending[0][0] == index:
                cmd = pending.popleft()[1]
                mode = cmd.mode
                if mode == "notify":
                    to = cmd.reply_to
                    batch = notify.get(to)
                    if batch is None:
                        notify[to] = [(cmd.correlation, reply)]
                    else:
                        batch.append((cmd.correlation, reply))
                elif mode == "await_consensus":
                    if type(reply) is MachineError:
                        effects.append(ReplyError(cmd.reply_to, reply, state.id))
                    else:
                        effects.append(Reply(cmd.reply_to, reply, state.id))
    elif kind == enc.NOOP:
        version = value[1]
        if version > state.effective_machine_version:
            state.effective_machine_version = version
            state.machine = state.base_machine.which_module(version)
        if state.role == "leader" and index == state.first_term_index:
            state.first_term_applied = True
    elif kind == enc.CLUSTER:  # already in effect since appended; now committed
        pcc = state.pending_cluster_change
        if pcc is not None and pcc[0] == index:
            state.pending_cluster_change = None
            if pcc[1] is not None and not state.applying_recovery:
                effects.append(Reply(pcc[1], "ok", state.id))
        if state.role == "leader" and index == state.cluster_index and state.id not in state.members:
            _leader_removed(state, effects)
    else:
        raise ValueError(f"malformed entry {index}: {value!r}")


def _undecodable(state: ServerState, index: int, exc: Exception, effects: list[Effect]) -> MachineError:
    """The entry's bytes do not decode (the same on every member): it fails as a command."""
    if state.cfg.on_machine_error == "crash":
        raise exc
    return failed(state, "apply", index, ValueError(f"the command does not decode: {exc}"), effects)


def _apply_usr(state: ServerState, index: int, term: int, value: list[Any], effects: list[Effect]) -> Any:
    state.applied_time_ms = value[2]
    session = None
    has_session = len(value) > 3
    if has_session:
        session = state.sessions.get(value[3])
        if session is not None and value[4] <= session[0]:
            return session[1] if value[4] == session[0] else None  # duplicate: original reply
    try:
        result = state.machine.apply(ApplyMeta(index, term, state.effective_machine_version, value[2]),
                                     value[1], state.machine_state)
        check_apply_result(result)
    except Exception as exc:  # the command's outcome, the same on every member
        if state.cfg.on_machine_error == "crash":
            raise
        result = (state.machine_state, failed(state, "apply", index, exc, effects))
    state.machine_state = result[0]
    reply = result[1]
    if has_session:  # before the machine effects: a snapshot taken there includes it
        sessions = state.sessions
        key = value[3]
        if session is None:
            sessions[key] = [value[4], reply]
            if len(sessions) > state.cfg.max_client_sessions:
                del sessions[next(iter(sessions))]
        else:
            session[0] = value[4]
            session[1] = reply
            if next(reversed(sessions)) != key:  # the dict's order is least recently used first
                del sessions[key]
                sessions[key] = session
    if len(result) > 2:
        machine_effects(state, result[2], effects)
    return reply


def _leader_removed(state: ServerState, effects: list[Effect]) -> None:
    """Our own removal committed: hand leadership to the most caught-up voter, step down."""
    best = None
    for sid, peer in state.peers.items():
        if peer.kind == "voter" and (best is None or peer.match_index > state.peers[best].match_index):
            best = sid
    if best is not None:
        effects.append(SendRpc(best, TimeoutNowRpc(state.term, state.id)))
    state.removed = True
    become_follower(state, None, effects)


def answer_local_queries(state: ServerState, effects: list[Effect]) -> None:
    waiting = []
    for min_index, reply_to, fun in state.local_queries:
        if min_index <= state.last_applied:
            query_reply(state, reply_to, fun, state.leader_id, effects)
        else:
            waiting.append((min_index, reply_to, fun))
    state.local_queries = waiting
