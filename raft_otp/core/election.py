"""Elections: pre-vote, candidate and the voter side (RA ``ra_server:handle_pre_vote/2``,
``handle_candidate/2``, ``process_pre_vote/...``, ``process_request_vote/...``).

Pre-vote runs at the current term with a random token; receivers never record a
vote nor change term for it, and grant only if the candidate's log is at least as
up to date as theirs and its machine version is not older than their effective one.
"""

from __future__ import annotations

from raft_otp.core import fences
from raft_otp.core.common import (
    become_follower,
    election_timer,
    maybe_newer_term,
    not_leader,
    persist_term,
    reject_commands,
    send,
)
from raft_otp.core.effects import Effect, RoleChanged, SendRpcs
from raft_otp.core.events import (
    AddMember,
    AppendEntriesRpc,
    Command,
    Commands,
    ConsistentQuery,
    ElectionTimeout,
    Event,
    HeartbeatRpc,
    InstallSnapshotRpc,
    LeaderQuery,
    PreVoteResult,
    PreVoteRpc,
    RemoveMember,
    RequestVoteResult,
    RequestVoteRpc,
    TimeoutNowRpc,
    TransferLeadership,
    TriggerElection,
)
from raft_otp.core.quorum import has_quorum
from raft_otp.core.state import ServerState


def _up_to_date(state: ServerState, last_index: int, last_term: int) -> bool:
    return state.cfg.rules.grants_vote_to_log(state, last_index, last_term)


def has_live_leader(state: ServerState, candidate: object) -> bool:
    """Leader stickiness (Raft thesis 4.2.3, etcd ``checkQuorum`` lease): a follower
    that knows a leader it has not been told is down (no ``LeaderDown``/``NodeDown``)
    refuses to help anyone else to an election, so a restarted or partitioned-and-
    healed member cannot depose a healthy leader.  Idle leaders send no heartbeats,
    so "not told down" is all a follower has.  A pre-vote from its own leader means
    that one stopped leading (stepped down or restarted): no stickiness then."""
    return (state.role in ("follower", "receive_snapshot") and state.leader_id is not None
            and state.leader_id != candidate)


def handle_pre_vote_rpc(state: ServerState, rpc: PreVoteRpc, effects: list[Effect]) -> None:
    if state.leader_id is not None and state.leader_id == rpc.candidate_id and rpc.term == state.term \
            and state.role == "follower":
        # our leader pre-votes: it stopped leading (CheckQuorum, or it restarted).  Do not
        # stay held by it: look for a leader at once (its inbound may be cut, so it
        # may never win; see ``leader.check_quorum``)
        become_follower(state, None, effects, timer="leader_down")
    granted = (
        fences.may_vote(state)
        and not has_live_leader(state, rpc.candidate_id)
        and rpc.term >= state.term
        and rpc.machine_version >= state.effective_machine_version
        and state.members.get(rpc.candidate_id) == "voter"
        and _up_to_date(state, rpc.last_log_index, rpc.last_log_term)
    )
    send(effects, rpc.candidate_id, PreVoteResult(state.term, rpc.token, state.id, granted))


def handle_request_vote_rpc(state: ServerState, rpc: RequestVoteRpc, effects: list[Effect]) -> None:
    if not rpc.leadership_transfer and has_live_leader(state, rpc.candidate_id):
        # sticky: refuse without adopting the term, which would drop our leader too
        send(effects, rpc.candidate_id, RequestVoteResult(state.term, state.id, False))
        return
    maybe_newer_term(state, rpc.term, effects)
    granted = False
    if (rpc.term == state.term and fences.may_vote(state) and state.voted_for in (None, rpc.candidate_id)
            and _up_to_date(state, rpc.last_log_index, rpc.last_log_term)):
        granted = True
        if state.voted_for is None:
            persist_term(state, state.term, rpc.candidate_id, effects)  # durable before reply
    send(effects, rpc.candidate_id, RequestVoteResult(state.term, state.id, granted))


def start_pre_vote(state: ServerState, effects: list[Effect]) -> None:
    """Election timeout as a voter: begin a pre-vote round at the current term."""
    if not state.is_voter():
        return
    state.role = "pre_vote"
    state.leader_id = None
    state.pre_vote_token = state.rng.getrandbits(31)
    state.votes = {state.id}
    effects.append(RoleChanged("pre_vote", None, state.term))
    li, lt = state.log.last_index_term()
    rpc = PreVoteRpc(state.term, state.pre_vote_token, state.id, state.base_machine.version(), li, lt)
    sends = tuple((sid, rpc) for sid in state.voters() if sid != state.id)
    if sends:
        effects.append(SendRpcs(sends))
    election_timer(state, "pre_vote", effects)
    _check_pre_votes(state, effects)


def start_candidate(state: ServerState, effects: list[Effect], transfer: bool = False) -> None:
    """Pre-vote won (or leadership handed to us, ``transfer``): new term, vote for ourselves."""
    state.role = "candidate"
    state.leader_id = None
    persist_term(state, state.term + 1, state.id, effects)
    state.votes = {state.id}
    effects.append(RoleChanged("candidate", None, state.term))
    li, lt = state.log.last_index_term()
    rpc = RequestVoteRpc(state.term, state.id, li, lt, transfer)
    sends = tuple((sid, rpc) for sid in state.voters() if sid != state.id)
    if sends:
        effects.append(SendRpcs(sends))
    election_timer(state, "candidate", effects)
    _check_votes(state, effects)


def _check_pre_votes(state: ServerState, effects: list[Effect]) -> None:
    voters = state.voters()
    if fences.may_vote(state) and has_quorum(len(state.votes & set(voters)), len(voters)):
        start_candidate(state, effects)


def _check_votes(state: ServerState, effects: list[Effect]) -> None:
    voters = state.voters()
    if has_quorum(len(state.votes & set(voters)), len(voters)):
        from raft_otp.core.leader import become_leader

        become_leader(state, effects)


def handle(state: ServerState, event: Event, effects: list[Effect]) -> None:
    """Roles ``pre_vote`` and ``candidate``."""
    from raft_otp.core import follower

    match event:
        case PreVoteResult():
            if maybe_newer_term(state, event.term, effects):
                return
            # the token identifies the round; a voter behind us answers with its older term
            if (state.role == "pre_vote" and event.vote_granted and event.token == state.pre_vote_token
                    and event.term <= state.term):
                state.votes.add(event.voter_id)
                _check_pre_votes(state, effects)
        case RequestVoteResult():
            if maybe_newer_term(state, event.term, effects):
                return
            if state.role == "candidate" and event.vote_granted and event.term == state.term:
                state.votes.add(event.voter_id)
                _check_votes(state, effects)
        case AppendEntriesRpc() | InstallSnapshotRpc() | HeartbeatRpc():
            leader = event.leader_id
            if event.term >= state.term:
                maybe_newer_term(state, event.term, effects)
                become_follower(state, leader, effects)
            follower.handle(state, event, effects)
        case PreVoteRpc():
            handle_pre_vote_rpc(state, event, effects)
        case RequestVoteRpc():
            handle_request_vote_rpc(state, event, effects)
        case ElectionTimeout() | TriggerElection():
            start_pre_vote(state, effects)
        case TimeoutNowRpc():
            pass
        case Command() | Commands():
            reject_commands(state, event, effects)
        case LeaderQuery() | ConsistentQuery() | AddMember() | RemoveMember() | TransferLeadership():
            not_leader(state, event.reply_to, effects)
        case _:
            follower.handle_passive(state, event, effects)
