"""Goal: a member that lost its log (WAL and segments deleted while it was down, meta
kept) does not vote until it has caught up from a leader of a later term, so entries
committed with its help are never lost: on 3 node processes, with the leader dead
the cluster stays unavailable, and when the old leader returns every committed entry
is kept.  Without the rule (--mutation vote_despite_data_loss) they are gone."""

from __future__ import annotations

import glob
import os
import time

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import RaftError
from raft_otp.system.harness import NodeProcs, running_nodes
from raft_otp.testing.sim import mutation_by_name, run_seed

KV = ("raft_otp.machines.kv:KeyValue", {})
STATE = "raft_otp.system.queries:state"
N_KEYS = 20


def wipe_log(data_dir: str) -> list[str]:
    """Delete every WAL file and segment under a (stopped) node's data dir; the meta
    store and the server directory stay."""
    gone = [p for pat in ("**/*.wal", "**/*.segment")
            for p in glob.glob(os.path.join(data_dir, pat), recursive=True)]
    for p in gone:
        os.unlink(p)
    return gone


def _commits(sid: ServerId, budget_s: float) -> bool:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        try:
            raft_otp.process_command(sid, ["put", "probe", 1], timeout=1.0)
            return True
        except RaftError:
            pass
    return False


def _scenario(tmp: str, mutation: str | None) -> tuple[bool, dict]:
    """Returns (whether B and A committed while the old leader was dead, the final state
    of every member once the old leader is back)."""
    # a mutation only through the testing entry point (the production one has no such option)
    extra = {"node_module": "raft_otp.testing.nemesis_node",
             "extra_args": ["--mutation", mutation]} if mutation else {}
    with running_nodes(tmp, 3, **extra) as nodes:
        ids = [nodes[i].sid("dl") for i in range(3)]
        _s, not_started = raft_otp.start_cluster("default", "dl", KV, ids, timeout=20)
        assert not_started == []
        _r, leader = raft_otp.process_command(ids[0], ["put", "k0", 0], timeout=10)
        li = ids.index(leader)
        a, b = [i for i in range(3) if i != li]
        # B lags: cut from the leader both ways
        nodes.admin(li, ["set_fault", nodes[b].name, {"partitioned": True}])
        nodes.admin(b, ["set_fault", nodes[li].name, {"partitioned": True}])
        for k in range(1, N_KEYS + 1):  # committed by the leader and A
            raft_otp.process_command(leader, ["put", f"k{k}", k], timeout=10)
        nodes.stop(a)  # its meta keeps the durable commit index (flushed lazily, and at stop)
        assert wipe_log(nodes[a].data_dir), "no WAL or segment found to delete"
        nodes.kill(li)
        nodes.admin(b, ["clear_faults"])
        nodes.start(a)
        committed_without_leader = _commits(ids[b], 6.0) or _commits(ids[a], 2.0)
        if mutation is None:
            ov = raft_otp.member_overview(ids[a], timeout=5)
            assert ov["data_lost"] is not None and ov["role"] != "leader", ov
        nodes.start(li)
        assert _commits(ids[li], 30.0) or _commits(ids[b], 10.0), "no leader after the old one returned"
        _r, leader2 = raft_otp.process_command(ids[b], ["put", "end", 1], timeout=15)
        commit = raft_otp.member_overview(leader2, timeout=5)["commit_index"]
        states = {i: raft_otp.local_query(ids[i], STATE, timeout=15, min_index=commit)[0] for i in range(3)}
        if mutation is None:
            deadline = time.monotonic() + 15
            while raft_otp.member_overview(ids[a], timeout=5)["data_lost"] is not None:
                assert time.monotonic() < deadline, "A never caught up"
                raft_otp.process_command(leader2, ["put", "tick", 1], timeout=10)
                time.sleep(0.1)
        return committed_without_leader, states


@pytest.mark.processes
def test_a_member_that_lost_its_log_keeps_the_cluster_from_losing_committed_entries(tmp_path) -> None:
    committed, states = _scenario(str(tmp_path), None)
    assert not committed, "B was elected with A's vote: it lacks the committed entries"
    for i, state in states.items():
        assert all(state.get(f"k{k}") == k for k in range(N_KEYS + 1)), (i, state)
    assert states[0] == states[1] == states[2]


@pytest.mark.processes
@pytest.mark.slow
def test_without_the_rule_the_committed_entries_are_gone(tmp_path) -> None:
    committed, states = _scenario(str(tmp_path), "vote_despite_data_loss")
    assert committed
    assert any(all(f"k{k}" not in s for k in range(1, N_KEYS + 1)) for s in states.values())


def test_the_simulator_finds_the_loss_without_the_rule() -> None:
    """Disk-loss restarts in the simulator: without the rule a committed entry is lost."""
    flags = mutation_by_name("vote_despite_data_loss")
    for seed in range(300):
        ok, report, _ = run_seed(seed, 3, 3000, flags)
        if not ok:
            assert "VIOLATION" in report
            return
    pytest.fail("vote_despite_data_loss not detected in 300 seeds")


@pytest.mark.processes
def test_a_member_with_damaged_meta_boots_proves_its_vote_and_votes_again(tmp_path) -> None:
    """A byte flipped in the last meta record (issue 19: read as a torn tail, the last
    vote dropped): the node boots, reports damage (not a torn tail), its member
    starts vote_unproven and is proven by its boot-time pre-vote round."""
    with running_nodes(str(tmp_path), 3) as nodes:
        ids = [nodes[i].sid("md") for i in range(3)]
        _s, not_started = raft_otp.start_cluster("default", "md", KV, ids, timeout=20)
        assert not_started == []
        _r, leader = raft_otp.process_command(ids[0], ["put", "a", 1], timeout=10)
        f = next(i for i in range(3) if ids[i] != leader)
        nodes.stop(f)
        (meta,) = glob.glob(os.path.join(nodes[f].data_dir, "**", "meta.log"), recursive=True)
        with open(meta, "r+b") as fh:
            fh.seek(-2, os.SEEK_END)
            b = fh.read(1)
            fh.seek(-2, os.SEEK_END)
            fh.write(bytes([b[0] ^ 0xFF]))
        nodes.start(f)
        deadline = time.monotonic() + 15
        while True:
            try:
                ov = raft_otp.member_overview(ids[f], timeout=2)
                if ov["vote_unproven"] is False:
                    break
            except RaftError:
                pass
            assert time.monotonic() < deadline, "the damaged member never proved its vote"
            time.sleep(0.1)
        raft_otp.process_command(ids[f], ["put", "b", 2], timeout=10)
        with open(os.path.join(str(tmp_path), nodes[f].name.split("@")[0] + ".log")) as fh:
            log_text = fh.read()
        assert "damaged at offset" in log_text and "torn tail" not in log_text
