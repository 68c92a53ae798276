"""Entry points of the pure core (RA ``ra_server:init/1``, ``recover/1``, ``handle_*``).

    state, effects = init_server(config, log, machine, meta, rng)
    state, effects = handle(state, event)

``init_server`` recovers: it loads the snapshot, scans the log for membership,
replays committed entries up to ``max(meta.last_applied, snapshot index)``
discarding their effects, takes the vote fences (``raft_otp.core.fences``: damaged
meta, a log shorter than it durably was) and starts as a leaderless follower (a
voter asks for a ``pre_vote`` timer).  ``handle`` dispatches on the role; the state object is
mutated in place and returned.  No I/O, clock, thread or global randomness here.
"""

from __future__ import annotations

import random
from typing import Any

from raft_otp.core import await_condition, election, fences, follower, leader, snapshot
from raft_otp.core import entries as enc
from raft_otp.core import membership, ticks
from raft_otp.core.apply import apply_committed
from raft_otp.core.common import become_follower, persist_term
from raft_otp.core.config import ServerConfig, ServerMeta
from raft_otp.core.effects import Effect
from raft_otp.core.events import Event, PreVoteResult
from raft_otp.core.log_api import Log
from raft_otp.core.machine import Machine
from raft_otp.core.state import ServerState


def init_server(config: ServerConfig, log: Log, machine: Machine, meta: ServerMeta,
                rng: random.Random) -> tuple[ServerState, list[Effect]]:
    state = ServerState(config, log, machine, rng)
    state.term = meta.term
    state.voted_for = meta.voted_for
    recovered = log.recover_snapshot()
    if recovered is not None:
        snapshot.install(state, recovered[0], recovered[1], None)
    else:
        state.machine = machine.which_module(0)
        state.machine_state = state.machine.init(config.machine_config)
        state.members = {m: "voter" for m in config.initial_members}
        state.prev_members = state.members
    _scan_membership(state)
    last_index = log.last_index_term()[0]
    state.commit_index = max(state.commit_index, min(meta.last_applied, last_index))
    state.applying_recovery = True
    apply_committed(state, [])
    state.applying_recovery = False
    effects: list[Effect] = []
    fences.init(state, meta.vote_unproven, meta.data_lost, meta.durable_commit)
    state.durable_floor = meta.durable_commit
    if (state.data_lost != meta.data_lost or state.vote_unproven != meta.vote_unproven
            or state.term != meta.term):
        persist_term(state, state.term, state.voted_for, effects)  # the fences, durably
    # an unproven vote is proven by a pre-vote round (every other voter's reply carries
    # its term): run one at once, while all may be up, not at the next election
    become_follower(state, None, effects, timer="leader_down" if state.vote_unproven else "pre_vote")
    return state, effects


def _scan_membership(state: ServerState) -> None:
    log = state.log
    index, last = log.first_index(), log.last_index_term()[0]
    sink: list[Effect] = []
    while index <= last:
        hi = min(last, index + 1023)
        for idx, _term, data in log.fetch(index, hi):
            if enc.kind_of(data) == enc.CLUSTER:
                membership.set_members(state, enc.members_from_wire(enc.decode(data)[1]), idx, sink)
        index = hi + 1


def handle(state: ServerState, event: Event) -> tuple[ServerState, list[Effect]]:
    """Feed one event; returns the (mutated) state and the effects to execute in order."""
    effects: list[Effect] = []
    if state.vote_unproven and type(event) is PreVoteResult:
        fences.term_report(state, event, effects)
    role = state.role
    if role == "leader":
        leader.handle(state, event, effects)
    elif role == "follower":
        follower.handle(state, event, effects)
    elif role == "pre_vote" or role == "candidate":
        election.handle(state, event, effects)
    elif role == "receive_snapshot":
        snapshot.handle(state, event, effects)
    elif role == "await_condition":
        await_condition.handle(state, event, effects)
    else:
        raise AssertionError(f"event {event!r} in role {role}")
    if state.role == "leader" or state.tick_armed:
        ticks.after_event(state, event, effects)
    if not state.durable_floor and state.log.last_written()[0] >= 1:
        fences.record_log_exists(state, effects)
    return state, effects


def overview(state: ServerState) -> dict[str, Any]:
    """Plain data for the console / metrics (RA ``ra_server:overview/1``)."""
    li, lt = state.log.last_index_term()
    return {
        "id": list(state.id),
        "role": state.role,
        "term": state.term,
        "leader": list(state.leader_id) if state.leader_id else None,
        "voted_for": list(state.voted_for) if state.voted_for else None,
        "vote_unproven": state.vote_unproven,
        "data_lost": state.data_lost,
        "commit_index": state.commit_index,
        "last_applied": state.last_applied,
        "last_index": li,
        "last_term": lt,
        "last_written_index": state.log.last_written()[0],
        "members": {f"{s.name}@{s.node}": k for s, k in state.members.items()},
        "machine_version": state.effective_machine_version,
        "peers": {f"{s.name}@{s.node}": {"next_index": p.next_index, "match_index": p.match_index,
                                          "status": p.status} for s, p in state.peers.items()},
        "machine": state.machine.overview(state.machine_state),
    }
