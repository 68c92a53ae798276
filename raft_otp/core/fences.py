"""Vote fences: a server that cannot prove its last vote, or that lost log it had
acknowledged, takes no part in elections until it can again (ours; RA has no
counterpart: it trusts its disk.  TigerBeetle's protocol-aware recovery is the model).

Two fences, both durable (``PersistMeta`` carries them; the meta store keeps them
with the term and vote, so a restart does not lift them):

``vote_unproven`` -- the meta store found damage inside ``meta.log`` (not a torn
tail): this server's last term/vote record may be gone.  Say it voted for X in
term T and the record is lost.  X's own record holds a term >= T (a candidate
makes its term durable before asking for votes; terms never go down; one damaged
store at a time).  So the fence lifts once *every other voter* has told us its
term in a reply to one of our pre-votes sent after this boot (a reply is sent after
the request, hence after our crash, hence after X's candidacy): their maximum F is
>= T.  We then take term F with a vote for ourselves (so nobody else gets our vote in
F, and we never stand in F) and vote normally from F+1 on.  Until then we grant no
vote or pre-vote and never become a candidate.  Hearing from a mere majority is not
enough: the voters of X that reply may not have voted yet when they answer.  The
cost: while a voter is unreachable, a damaged member cannot help elect a leader.

``data_lost`` -- the server booted with less log than it durably knew it had (its
log ends below the recorded ``durable_commit``), or the log layer reported a loss
(``MetaStore.report_data_loss``).  It may have acknowledged entries it no longer has,
so its "my log is at least this up to date" is false.  The fence records the term
L it had when the loss happened (it acknowledged nothing in a later term).  It
grants no vote or pre-vote and stands for nothing until it has caught up from a
leader of a term T > L: it holds, durably and matching that leader's log, the entry
at its commit index, and that entry is of term T.  Why that is enough: an entry it
acknowledged (term <= L) and that was ever committed was committed by a leader of
a term <= L < T; T's leader was elected without our vote (we were fenced), so its
voters' quorum met that commit quorum in a member that really holds the entry, and
Leader Completeness puts the entry in T's leader's log, before its first entry of
term T, hence below that commit index.  A leader of L itself is not enough: it may
still count our acknowledgement from before the loss (its match index for us) and
commit entries we no longer hold after we caught up to its commit index (the
simulator found this).  The price: with the old leader still leading, the fence
lifts only after the next election.  Commit counting needs nothing else: our
replies report our real log (a leader believes a follower whose log went back).
"""

from __future__ import annotations

from raft_otp.core.common import maybe_newer_term, persist_term
from raft_otp.core.effects import Effect, PersistLastApplied
from raft_otp.core.events import PreVoteResult
from raft_otp.core.state import ServerState


def may_vote(state: ServerState) -> bool:
    """Whether this server may grant a vote (or a pre-vote) or stand for election."""
    rules = state.cfg.rules
    return not (rules.fenced_by_vote_damage(state) or rules.fenced_by_data_loss(state))


def term_report(state: ServerState, event: PreVoteResult, effects: list[Effect]) -> None:
    """A reply to one of this boot's pre-vote rounds: note the voter's term; with
    every other voter heard, lift the ``vote_unproven`` fence (see module doc)."""
    if not state.vote_unproven or state.pre_vote_token == 0 or event.token != state.pre_vote_token:
        return
    voters = state.voters()
    if event.voter_id not in voters or event.voter_id == state.id:
        return
    state.term_reports[event.voter_id] = max(event.term, state.term_reports.get(event.voter_id, 0))
    if any(v not in state.term_reports for v in voters if v != state.id):
        return
    fence = max(state.term_reports.values())
    state.term_reports = {}
    if fence > state.term:
        maybe_newer_term(state, fence, effects)  # still fenced in this record
    state.vote_unproven = False
    if state.term == fence and state.voted_for is None:
        persist_term(state, fence, state.id, effects)  # our vote in F is spent: on ourselves
    else:
        persist_term(state, state.term, state.voted_for, effects)  # the fence lifted, durably


def init(state: ServerState, vote_unproven: bool, data_lost: int | None, durable_commit: int) -> None:
    """At boot: take the fences the meta store kept, and detect a lost log."""
    last_index, last_term = state.log.last_index_term()
    state.vote_unproven = vote_unproven
    if vote_unproven and last_term > state.term:
        state.term, state.voted_for = last_term, None  # a lower bound; still fenced
    if data_lost is None and last_index < durable_commit:
        data_lost = state.term  # lost while down: in the term it had then, or before
    state.data_lost = data_lost
    if state.voters() == [state.id]:
        # the only voter: no other vote can conflict with a lost one (nothing of a
        # term whose record was lost was acknowledged unless it is in the log, whose
        # last term we took), and there is nobody to catch up from: what was lost is
        # lost; fencing would only stop the cluster for good
        state.vote_unproven = False
        state.data_lost = None


def record_log_exists(state: ServerState, effects: list[Effect]) -> None:
    """The log durably holds an entry and no record says so yet: record
    ``durable_commit >= 1`` durably, ahead of this event's other effects (its
    acknowledgements).  Without it, a follower that acknowledged entries but never
    learned they were committed (its lazily recorded ``durable_commit`` still 0) and
    then lost its whole log would boot unfenced and could elect a leader without
    them (the simulator found this).  A log never goes below index 1 again once it
    had an entry (an overwrite replaces, a snapshot keeps its index), so booting with
    an empty log under this record means the log was lost."""
    state.durable_floor = 1
    effects.insert(0, PersistLastApplied(state.last_applied, 1, sync=True))


def check_caught_up(state: ServerState, effects: list[Effect]) -> None:
    """Follower of a known leader of a term after the loss: lift ``data_lost`` once it
    durably holds, matching that leader, the entry at its commit index and that entry
    is of the leader's term (see the module doc)."""
    if state.data_lost is None or state.leader_id is None or state.role != "follower" \
            or state.term <= state.data_lost:
        return
    commit = state.commit_index
    if commit <= 0 or min(state.log.last_written()[0], state.follower_match) < commit:
        return
    if state.log.fetch_term(commit) != state.term:
        return
    state.data_lost = None
    persist_term(state, state.term, state.voted_for, effects)
