"""Goal: the Raft paper's Figure 8 scripted on five cores — counting an old-term entry toward commit lets a committed entry be overwritten; the correct rule does not commit it."""

from __future__ import annotations

import pytest

from raft_otp.core.events import AppendEntriesRpc, Command, ElectionTimeout, Tick
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.testing.harness import Net, Node
from raft_otp.testing.mutations import rules_for

NAMES = ["s1", "s2", "s3", "s4", "s5"]


def only(*pairs: tuple[str, str]):  # noqa: ANN201
    allowed = {frozenset(p) for p in pairs}
    return lambda frm, to, rpc: frozenset((frm.name, to.name)) in allowed


def between(group: set[str]):  # noqa: ANN201
    return lambda frm, to, rpc: frm.name in group and to.name in group


def scenario(rules: Rules) -> tuple[Net, int, int]:
    """Returns the net, s1's commit index before it crashes in (c), and the term at index 2 then."""
    nodes = {n: Node(n, NAMES, batch=1, rules=rules, seed=i) for i, n in enumerate(NAMES)}
    net = Net(nodes)
    # (a) s1 leads and commits its noop at 1 everywhere, then appends X at 2 that only s2 gets
    net.feed("s1", ElectionTimeout())
    net.pump()
    assert nodes["s1"].s.role == "leader"
    net.feed("s1", Command(["incr"], "x"))
    net.pump(only(("s1", "s2")))
    assert nodes["s2"].s.log.last_index_term()[0] == 2
    # (b) s1 crashes; s5 wins with s3 and s4, appends its noop at 2 that nobody gets
    net.crash("s1")
    net.feed("s5", ElectionTimeout())
    net.pump(lambda frm, to, rpc: not isinstance(rpc, AppendEntriesRpc) and to.name != "s2"
             and frm.name != "s2")
    assert nodes["s5"].s.role == "leader"
    net.crash("s5")
    # (c) s1 restarts, wins with s2 and s3, replicates X (batch size 1) to s3, then crashes
    net.restart("s1")
    net.feed("s1", ElectionTimeout())

    def phase_c(frm, to, rpc) -> bool:  # noqa: ANN001
        if frm.name not in ("s1", "s2", "s3") or to.name not in ("s1", "s2", "s3"):
            return False
        if isinstance(rpc, AppendEntriesRpc):  # nothing of the new term's noop gets out
            return all(e[0] <= 2 for e in rpc.entries) and rpc.prev_log_index <= 2 - (not rpc.entries)
        return True

    net.pump(phase_c)
    if nodes["s1"].s.role != "leader":  # s3's higher term (it voted in (b)) first catches s1 up
        net.feed("s1", ElectionTimeout())
        net.pump(phase_c)
    assert nodes["s1"].s.role == "leader"
    for now in (1000, 2000, 3000, 4000):  # stale peers get re-sent from their match index
        net.feed("s1", Tick(now))
        net.pump(phase_c)
    s1 = nodes["s1"].s
    commit, term_at_2 = s1.commit_index, s1.log.fetch_term(2) or 0
    net.crash("s1")
    # (d) s5 restarts, wins with s2, s3, s4 and replicates its own entry at 2
    net.restart("s5")
    for _ in range(3):
        net.feed("s5", ElectionTimeout())
        net.pump(between({"s2", "s3", "s4", "s5"}))
        if net.nodes["s5"].s.role == "leader":
            break
    return net, commit, term_at_2


def test_correct_rule_does_not_commit_the_old_term_entry() -> None:
    net, commit, _term = scenario(RAFT_RULES)
    assert commit == 1
    assert net.nodes["s5"].s.role == "leader"


def test_counting_old_terms_commits_an_entry_that_is_then_overwritten() -> None:
    net, commit, term_at_2 = scenario(rules_for("commit_old_term_by_counting"))
    assert commit == 2  # s1 believed X committed ...
    s5 = net.nodes["s5"].s
    assert s5.role == "leader" and s5.commit_index >= 2
    assert s5.log.fetch_term(2) != term_at_2  # ... and the new leader replaced it


@pytest.mark.parametrize("name", ["s2", "s3"])
def test_overwritten_entry_reaches_the_followers(name: str) -> None:
    net, _commit, term_at_2 = scenario(rules_for("commit_old_term_by_counting"))
    assert net.nodes[name].s.log.fetch_term(2) != term_at_2
