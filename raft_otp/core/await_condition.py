"""``await_condition`` role (RA ``ra_server:handle_await_condition/2``), used while the
WAL is down: the server neither votes nor accepts entries; a leader steps down.
``WalUp`` (or the 5 s timeout re-arming) brings it back as a leaderless follower."""

from __future__ import annotations

from raft_otp.core.common import become_follower, election_timer, not_leader, reject_commands
from raft_otp.core.effects import Effect, RoleChanged
from raft_otp.core.events import (
    AddMember,
    Command,
    Commands,
    ConsistentQuery,
    ElectionTimeout,
    Event,
    LeaderQuery,
    LocalQuery,
    LogEvent,
    RemoveMember,
    TransferLeadership,
    WalUp,
)
from raft_otp.core.state import ServerState


def enter(state: ServerState, effects: list[Effect]) -> None:
    if state.role != "follower":
        become_follower(state, None, effects)
    state.role = "await_condition"
    state.leader_id = None
    effects.append(RoleChanged("await_condition", None, state.term))
    election_timer(state, "await_condition", effects)


def handle(state: ServerState, event: Event, effects: list[Effect]) -> None:
    from raft_otp.core.follower import local_query, log_event

    match event:
        case WalUp():
            state.role = "candidate"  # force become_follower to announce the change
            become_follower(state, None, effects)
        case ElectionTimeout():
            election_timer(state, "await_condition", effects)
        case Command() | Commands():
            reject_commands(state, event, effects)
        case LocalQuery():
            local_query(state, event, effects)
        case LogEvent():
            log_event(state, event, effects)
        case LeaderQuery() | ConsistentQuery() | AddMember() | RemoveMember() | TransferLeadership():
            not_leader(state, event.reply_to, effects)
        case _:
            pass
