"""Jepsen-style fault runs on real node processes, checked for linearizability.

``python -m raft_otp.testing.nemesis --duration SECONDS --seed N [--nodes 3|5] [--out DIR]``

starts ``--nodes`` node processes (``raft_otp.testing.nemesis_procs``) and a
key-value cluster (``raft_otp.machines.kv``) with one member on each, runs
concurrent clients (``raft_otp.testing.nemesis_workload``) while a nemesis
injects one fault at a time, heals everything, reads every key, compares the
members' final states and checks the history with
``raft_otp.testing.linearizability``.  It exits 0 only if the history is
linearizable, no acknowledged write was lost and the members agree; its last
line is one JSON object::

    {"ops": N, "ok": N, "unknown": N, "faults": {kind: count}, "linearizable": true, "lost": 0}

``DIR`` holds ``history.jsonl`` (one operation a line), ``nemesis.jsonl`` (the
faults with their times on the history's clock), ``summary.json``, the node
logs ``nX.log`` and the data dirs.  Without ``--out`` a temporary directory is
used and removed after a passing run; a failing run's directory is always kept.

Faults (``--faults`` picks a subset; the seed picks the schedule):

=====================  =================================================================
``kill``               SIGKILL a node (the leader more often), restart it later
``kill-two``           SIGKILL the leader and a follower at once, restart both later
``kill-quorum``        cut a minority of followers off, let the rest run, then SIGKILL
                       all the rest at once; restart it, then heal
``kill-after-lag``     isolate a follower until it lags, heal, SIGKILL the leader at
                       once (the lagging node must not win the next election)
``pause``              SIGSTOP a node (the leader more often) for longer than an
                       election, then SIGCONT
``partition-majority`` cut the nodes into a majority and a minority (the leader on
                       either side)
``partition-bridge``   two sides that cannot talk, one node that talks to both
``partition-isolate``  one node (the leader more often) cut from all the others
``wal-crash``          crash the WAL actor inside a node (its supervisor restarts it)
``membership``         remove a member during load, then add a fresh one on that node
=====================  =================================================================

Partitions go through the node transport's fault hook (the admin endpoint's
``set_fault``) or, with ``--net netns``, through the kernel: each node in its own
network namespace, cut by blackhole routes (``raft_otp.testing.nemesis_netns``).
Either way the client node still reaches every node, as a client on the same
side of each partition would.

``--mutation NAME`` starts the nodes with that ``raft_otp.core.config.Mutations``
flag on (a bug on purpose); the run must then fail.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Callable

__all__ = ["FAULT_KINDS", "Nemesis", "main", "run"]

log = logging.getLogger("raft_otp.nemesis")

FAULT_KINDS = ("kill", "kill-two", "kill-quorum", "kill-after-lag", "pause", "partition-majority", "partition-bridge",
               "partition-isolate", "wal-crash", "membership")
KV_MACHINE = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": 200})
CLUSTER = "jepsen"
SYSTEM = "default"


class Nemesis:
    """One fault at a time, each healed before the next; the faults are logged."""

    def __init__(self, cluster: Any, rng: random.Random, members: list[Any],
                 now: Callable[[], float], events_path: str, *, kinds: tuple[str, ...],
                 hold_s: tuple[float, float] = (2.0, 5.0), calm_s: tuple[float, float] = (1.0, 3.0),
                 leader_bias: float = 0.6) -> None:
        self.cluster = cluster
        self.rng = rng
        self._members = list(members)
        self._lock = threading.Lock()
        self.now = now
        self.events = open(events_path, "w", encoding="utf-8")
        self.kinds = kinds
        self.hold_s = hold_s
        self.leader_bias = leader_bias
        self.calm_s = calm_s
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.finished = False
        self.generation = itertools.count(2)

    # ---- shared state ----------------------------------------------------------------

    def members(self) -> list[Any]:
        with self._lock:
            return list(self._members)

    def _set_members(self, members: list[Any]) -> None:
        with self._lock:
            self._members = list(members)

    def event(self, name: str, **info: Any) -> None:
        rec = {"t": round(self.now(), 6), "event": name, **info}
        self.events.write(json.dumps(rec, default=str) + "\n")
        self.events.flush()
        log.info("nemesis %s", rec)

    def leader_index(self, timeout: float = 3.0) -> int | None:
        """The node of the member that says it leads (highest term wins)."""
        import raft_otp
        from raft_otp.errors import RaftError
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            best: tuple[int, int] | None = None
            for sid in self.members():
                i = self.cluster.index_of(sid.node)
                if not self.cluster.nodes[i].alive() or self.cluster.nodes[i].paused:
                    continue
                try:
                    ov = raft_otp.member_overview(sid, timeout=0.5)
                except RaftError:
                    continue
                if ov.get("role") == "leader" and (best is None or ov.get("term", 0) > best[0]):
                    best = (ov.get("term", 0), i)
            if best is not None:
                return best[1]
            time.sleep(0.1)
        return None

    def victim(self, leader_bias: float | None = None) -> int:
        """A node for a fault: the leader's with probability ``leader_bias``."""
        bias = self.leader_bias if leader_bias is None else leader_bias
        nodes = [self.cluster.index_of(s.node) for s in self.members()]
        if self.rng.random() < bias:
            leader = self.leader_index()
            if leader is not None:
                return leader
        return self.rng.choice(nodes)

    def hold(self) -> None:
        time.sleep(self.rng.uniform(*self.hold_s))

    # ---- the schedule ------------------------------------------------------------------

    def run(self, stop_at: float, stop: threading.Event) -> None:
        """Inject faults until ``stop_at`` (monotonic) or ``stop``; always heals."""
        try:
            while not stop.is_set():
                if stop.wait(self.rng.uniform(*self.calm_s)):
                    break
                if time.monotonic() + self.hold_s[1] + 2 > stop_at:
                    break
                kind = self.rng.choice(self.kinds)
                try:
                    getattr(self, "fault_" + kind.replace("-", "_"))()
                    self.counts[kind] += 1
                except Exception as exc:  # a fault that could not be injected is reported
                    self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    self.event("fault-error", kind=kind, error=repr(exc))
                    log.exception("nemesis: %s failed", kind)
                    try:
                        self.heal()
                    except Exception as heal_exc:  # e.g. a node that does not come back
                        self.errors.append(f"heal after {kind}: {heal_exc!r}")
                        self.event("heal-error", kind=kind, error=repr(heal_exc))
                        break  # the run's final heal decides whether it can go on
        finally:
            try:
                self.heal()
            except Exception as exc:
                self.errors.append(f"final heal: {exc!r}")
                self.event("heal-error", kind="final", error=repr(exc))
        self.finished = True

    def heal(self) -> None:
        """Clear every network fault, resume paused nodes, restart dead ones."""
        c = self.cluster
        for i, np in enumerate(c.nodes):
            if np.paused:
                c.resume(i)
                self.event("resume", node=np.short)
        for i, np in enumerate(c.nodes):
            if not np.alive():
                c.start(i)
                self.event("restart", node=np.short)
        if c.netns is not None:
            c.netns.heal()
        for i, np in enumerate(c.nodes):
            try:
                c.admin(i, ["clear_faults"])
            except Exception as exc:
                self.event("heal-error", node=np.short, error=repr(exc))

    # ---- process faults ----------------------------------------------------------------

    def fault_kill(self) -> None:
        i = self.victim()
        self.event("kill", node=self.cluster.nodes[i].short)
        self.cluster.kill(i)
        self.hold()
        self.cluster.start(i)
        self.event("restart", node=self.cluster.nodes[i].short)

    def fault_kill_two(self) -> None:
        first = self.victim(leader_bias=0.9)
        others = [self.cluster.index_of(s.node) for s in self.members()]
        second = self.rng.choice([i for i in others if i != first])
        self.event("kill-two", nodes=[self.cluster.nodes[first].short,
                                      self.cluster.nodes[second].short])
        for i in (first, second):
            np = self.cluster.nodes[i]
            if np.proc is not None and np.proc.poll() is None:
                np.proc.kill()  # both at once; wait afterwards
        for i in (first, second):
            self.cluster.kill(i)
        self.hold()
        # The follower first: the old leader comes back to a cluster that moved on.
        for i in (second, first):
            self.cluster.start(i)
            self.event("restart", node=self.cluster.nodes[i].short)
            time.sleep(self.rng.uniform(0.5, 2.0))

    def fault_kill_quorum(self) -> None:
        """Cut a minority of followers off, let the leader's majority run on alone,
        then SIGKILL that whole majority at once and restart it before healing: what
        it acknowledged must have been durable on it, as no one else holds it."""
        c = self.cluster
        n = len(c.nodes)
        leader = self.leader_index()
        nodes = list(range(n))
        self.rng.shuffle(nodes)
        if leader is not None:
            nodes.remove(leader)
            nodes.append(leader)
        lagging, quorum = nodes[:(n - 1) // 2], nodes[(n - 1) // 2:]
        self.event("kill-quorum", lagging=[c.nodes[i].short for i in lagging],
                   killed=[c.nodes[i].short for i in quorum])
        for a in lagging:
            for b in quorum:
                self._cut(a, b)
        self.hold()
        for i in quorum:
            np = c.nodes[i]
            if np.proc is not None and np.proc.poll() is None:
                np.proc.kill()
        for i in quorum:
            c.kill(i)
        time.sleep(self.rng.uniform(0.5, 2.0))
        for i in quorum:
            c.start(i)
            self.event("restart", node=c.nodes[i].short)
        self._heal_network()
        self.event("heal", kind="kill-quorum")

    def fault_kill_after_lag(self) -> None:
        """Isolate a follower until it lags, heal, and at once SIGKILL the leader: the
        lagging node must not win the election that follows (Raft's up-to-date check)."""
        c = self.cluster
        leader = self.leader_index()
        if leader is None:
            raise RuntimeError("no leader to kill")
        members = [c.index_of(s.node) for s in self.members()]
        lagging = self.rng.choice([i for i in members if i != leader])
        others = [j for j in range(len(c.nodes)) if j != lagging]
        self.event("kill-after-lag", lagging=c.nodes[lagging].short, leader=c.nodes[leader].short)
        for j in others:
            self._cut(lagging, j)
        self.hold()
        self._heal_network()
        c.kill(leader)
        self.event("kill", node=c.nodes[leader].short)
        self.hold()
        c.start(leader)
        self.event("restart", node=c.nodes[leader].short)

    def fault_pause(self) -> None:
        i = self.victim()
        self.event("pause", node=self.cluster.nodes[i].short)
        self.cluster.pause(i)
        time.sleep(self.rng.uniform(max(3.0, self.hold_s[0]), max(5.0, self.hold_s[1])))
        self.cluster.resume(i)
        self.event("resume", node=self.cluster.nodes[i].short)

    def fault_wal_crash(self) -> None:
        i = self.victim()
        names = self.cluster.admin(i, ["registered"])
        wal = [n for n in names if "wal" in n.lower()]
        if not wal:
            raise RuntimeError(f"no WAL actor registered on {self.cluster.nodes[i].name}: {names}")
        self.event("wal-crash", node=self.cluster.nodes[i].short, actor=wal[0])
        self.cluster.admin(i, ["kill", wal[0]])
        self.hold()

    # ---- network faults (the transport's fault hook) -------------------------------------

    def _cut(self, a: int, b: int) -> None:
        c = self.cluster
        if c.netns is not None:  # in the kernel: blackhole routes between namespaces
            c.netns.cut(a, b)
            return
        c.admin(a, ["set_fault", c.nodes[b].name, {"partitioned": True}])
        c.admin(b, ["set_fault", c.nodes[a].name, {"partitioned": True}])

    def _heal_network(self) -> None:
        c = self.cluster
        if c.netns is not None:
            c.netns.heal()
        for i in range(len(c.nodes)):
            c.admin(i, ["clear_faults"])

    def _partition(self, kind: str, sides: list[list[int]], bridge: int | None = None) -> None:
        names = [[self.cluster.nodes[i].short for i in side] for side in sides]
        self.event(kind, sides=names,
                   bridge=None if bridge is None else self.cluster.nodes[bridge].short)
        for x, y in itertools.combinations(range(len(sides)), 2):
            for a in sides[x]:
                for b in sides[y]:
                    self._cut(a, b)
        self.hold()
        self._heal_network()
        self.event("heal", kind=kind)

    def fault_partition_majority(self) -> None:
        n = len(self.cluster.nodes)
        nodes = list(range(n))
        self.rng.shuffle(nodes)
        leader = self.leader_index()
        minority_size = (n - 1) // 2
        if leader is not None and self.rng.random() < 0.5:  # leader stranded in the minority
            nodes.remove(leader)
            nodes.insert(0, leader)
        self._partition("partition-majority", [nodes[:minority_size], nodes[minority_size:]])

    def fault_partition_bridge(self) -> None:
        n = len(self.cluster.nodes)
        nodes = list(range(n))
        self.rng.shuffle(nodes)
        bridge, rest = nodes[0], nodes[1:]
        half = len(rest) // 2
        self._partition("partition-bridge", [rest[:half], rest[half:]], bridge=bridge)

    def fault_partition_isolate(self) -> None:
        i = self.victim()
        others = [j for j in range(len(self.cluster.nodes)) if j != i]
        self._partition("partition-isolate", [[i], others])

    # ---- membership ----------------------------------------------------------------------

    def fault_membership(self) -> None:
        """Remove a member (a follower, or the leader now and then) under load, then
        start a fresh server on that node and add it back."""
        import raft_otp
        members = self.members()
        leader = self.leader_index()
        if leader is None:
            raise RuntimeError("no leader to change membership through")
        leader_sid = next(s for s in members if self.cluster.index_of(s.node) == leader)
        followers = [s for s in members if s != leader_sid]
        old = leader_sid if self.rng.random() < 0.25 else self.rng.choice(followers)
        self.event("remove-member", server=str(old))
        raft_otp.remove_member(leader_sid, old, timeout=10.0)
        remaining = [s for s in members if s != old]
        self._set_members(remaining)
        self.hold()
        try:
            raft_otp.force_delete_server(SYSTEM, old, timeout=10.0)
        except Exception as exc:
            self.event("delete-error", server=str(old), error=repr(exc))
        new = type(old)(f"kv{next(self.generation)}", old.node)
        raft_otp.start_server(SYSTEM, CLUSTER, new, KV_MACHINE, remaining + [new], timeout=10.0)
        deadline = time.monotonic() + 20.0
        while True:
            try:
                raft_otp.add_member(remaining[0], new, timeout=5.0)
                break
            except raft_otp.RaftError as exc:
                if time.monotonic() > deadline:
                    raise
                self.event("add-member-retry", server=str(new), error=repr(exc))
                time.sleep(0.5)
        self._set_members(remaining + [new])
        self.event("add-member", server=str(new))


# ---- a run -----------------------------------------------------------------------------


def _wait_leader(members: list[Any], timeout: float) -> Any:
    import raft_otp
    from raft_otp.errors import RaftError
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sid in members:
            try:
                if raft_otp.member_overview(sid, timeout=1.0).get("role") == "leader":
                    return sid
            except RaftError:
                pass
        time.sleep(0.1)
    raise TimeoutError(f"no leader among {members} within {timeout} s")


def _member_states(members: list[Any], timeout: float) -> tuple[bool, dict[str, Any]]:
    """Wait until every member's state machine holds the same state."""
    import raft_otp
    from raft_otp.errors import RaftError
    from raft_otp.testing.nemesis_workload import STATE_QUERY
    deadline = time.monotonic() + timeout
    states: dict[str, Any] = {}
    while True:
        states = {}
        for sid in members:
            try:
                states[str(sid)] = raft_otp.local_query(sid, STATE_QUERY, timeout=2.0)[0]
            except RaftError as exc:
                states[str(sid)] = f"<error {exc!r}>"
        values = list(states.values())
        if all(v == values[0] for v in values) and not isinstance(values[0], str):
            return True, states
        if time.monotonic() > deadline:
            return False, states
        time.sleep(0.3)


def _overviews(members: list[Any]) -> dict[str, Any]:
    """Each member's own view (role, term, commit and applied indexes), for the report."""
    import raft_otp
    from raft_otp.errors import RaftError
    out: dict[str, Any] = {}
    for sid in members:
        try:
            out[str(sid)] = raft_otp.member_overview(sid, timeout=2.0)
        except RaftError as exc:
            out[str(sid)] = repr(exc)
    return out


def run(duration_s: float, seed: int, nodes: int = 3, out_dir: str | None = None, *,
        kinds: tuple[str, ...] = FAULT_KINDS, clients: int = 6, mutation: str | None = None,
        op_timeout_s: float = 3.0, log_level: str = "INFO",
        hold_s: tuple[float, float] = (2.0, 5.0), converge_s: float = 60.0,
        leader_bias: float = 0.6, net: str = "transport") -> tuple[int, dict[str, Any]]:
    """One schedule; returns (exit code, full summary)."""
    from raft_otp.node import runtime as node_rt
    from raft_otp.testing import linearizability
    from raft_otp.testing.nemesis_procs import Cluster
    from raft_otp.testing.nemesis_workload import Client, History, final_reads, lost_writes

    import raft_otp

    keep = out_dir is not None
    run_dir = out_dir or tempfile.mkdtemp(prefix="raft_otp_nemesis_")
    os.makedirs(run_dir, exist_ok=True)
    logging.basicConfig(filename=os.path.join(run_dir, "harness.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    rng = random.Random(seed)
    netns = None
    if net == "netns":
        from raft_otp.testing.nemesis_netns import NetNs, available
        why = available()
        if why is not None:
            raise SystemExit(f"--net netns is not possible here: {why}")
        netns = NetNs(nodes)
        netns.setup()
    cluster = Cluster(run_dir, nodes, mutation=mutation, log_level=log_level, netns=netns)
    t0 = time.monotonic()
    history = History(os.path.join(run_dir, "history.jsonl"), t0)
    stop = threading.Event()
    summary: dict[str, Any] = {"seed": seed, "nodes": nodes, "duration_s": duration_s,
                               "faults_enabled": list(kinds), "mutation": mutation, "net": net,
                               "dir": run_dir}
    nemesis: Nemesis | None = None
    threads: list[threading.Thread] = []
    recovered = False
    states_equal = False
    lost: list[dict[str, Any]] = []
    try:
        cluster.start_all()
        cluster.join_as_client()
        members = [cluster.sid("kv", i) for i in range(nodes)]
        started, not_started = raft_otp.start_cluster(SYSTEM, CLUSTER, KV_MACHINE, members,
                                                      timeout=30)
        if not_started:
            raise RuntimeError(f"cluster did not start: {not_started}")
        nemesis = Nemesis(cluster, random.Random(rng.random()), members, history.now,
                          os.path.join(run_dir, "nemesis.jsonl"), kinds=kinds, hold_s=hold_s,
                          leader_bias=leader_bias)
        counter = itertools.count(1)
        lock = threading.Lock()

        def values() -> int:
            with lock:
                return next(counter)

        for c in range(clients):
            cl = Client(c, history, nemesis.members, stop, random.Random(rng.random()), values,
                        op_timeout_s=op_timeout_s)
            cl.start()
            threads.append(cl)
        stop_at = time.monotonic() + duration_s
        nem = threading.Thread(target=nemesis.run, args=(stop_at, stop), name="nemesis",
                               daemon=True)
        nem.start()
        while time.monotonic() < stop_at:
            time.sleep(0.2)
        # The nemesis heals when it sees the end of the schedule; clients keep going a
        # little on a healed cluster, then stop.
        nem.join(60)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(op_timeout_s + 5)
        nemesis.heal()
        members = nemesis.members()
        _wait_leader(members, 30)
        state = final_reads(history, members, time.monotonic() + 30)
        recovered = state is not None
        if state is not None:
            lost = lost_writes(history.ops, state)
        t_converge = time.monotonic()
        states_equal, states = _member_states(members, converge_s)
        summary["converged_after_s"] = round(time.monotonic() - t_converge, 3)
        summary["members"] = [str(m) for m in members]
        if not states_equal:
            summary["member_states"] = states
            summary["member_overviews"] = _overviews(members)
    except Exception as exc:
        log.exception("run failed")
        summary["error"] = f"{type(exc).__name__}: {exc}"
        print(f"nemesis: run failed: {exc!r}", file=sys.stderr)
    finally:
        stop.set()
        for t in threads:
            t.join(op_timeout_s + 5)
        history.close()
        if nemesis is not None:
            nemesis.events.close()
        cluster.close()
        if node_rt.is_started():
            node_rt.stop_node()
        if netns is not None:
            netns.close()

    ops = history.ops
    t_check = time.monotonic()
    result = linearizability.check_history(
        linearizability.op_from_json(op, n) for n, op in enumerate(ops))
    summary["check_s"] = round(time.monotonic() - t_check, 3)
    summary.update(
        ops=len(ops),
        ok=sum(1 for op in ops if op["ok"] is True),
        failed=sum(1 for op in ops if op["ok"] is False),
        unknown=sum(1 for op in ops if op["ok"] is None),
        faults=dict(nemesis.counts) if nemesis else {},
        fault_errors=nemesis.errors if nemesis else [],
        linearizable=result.linearizable,
        lost=len(lost),
        lost_examples=lost[:10],
        recovered=recovered,
        states_equal=states_equal,
        checker=result.to_json(),
    )
    if nemesis is not None and not nemesis.finished:
        summary.setdefault("error", "the nemesis thread died (see harness.log)")
    if nemesis is not None and any("did not become ready" in e for e in nemesis.errors):
        # A node that cannot restart from its data dir is a failure of the system
        # under test (recovery), not of the harness.
        summary.setdefault("error", "a node did not come back after a fault: "
                           + next(e for e in nemesis.errors if "did not become ready" in e))
    passed = (result.linearizable is True and not lost and recovered and states_equal
              and "error" not in summary)
    summary["passed"] = passed
    if not passed and result.linearizable is not True:
        summary["explain"] = result.explain()
    with open(os.path.join(run_dir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    if passed and not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return (0 if passed else 1), summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raft_otp.testing.nemesis",
                                description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, required=True, help="seconds of faults and load")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--nodes", type=int, default=3, choices=[3, 5])
    p.add_argument("--out", default=None, help="run directory (kept); default: a temp dir "
                                               "removed after a passing run")
    p.add_argument("--faults", default=",".join(FAULT_KINDS),
                   help="comma-separated subset of: " + ", ".join(FAULT_KINDS))
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--op-timeout", type=float, default=3.0, help="seconds before 'unknown'")
    p.add_argument("--mutation", default=None,
                   help="a raft_otp.core.config.Mutations flag to switch on in every node")
    p.add_argument("--hold", default="2,5",
                   help="MIN,MAX seconds each fault lasts (default %(default)s)")
    p.add_argument("--converge-timeout", type=float, default=60.0,
                   help="seconds the members get to reach equal states after healing")
    p.add_argument("--leader-bias", type=float, default=0.6,
                   help="probability that a fault aimed at one node aims at the leader")
    p.add_argument("--net", default="transport", choices=["transport", "netns"],
                   help="how partitions are made: the transport's fault hook, or blackhole "
                        "routes between one network namespace per node (root only)")
    p.add_argument("--node-log-level", default="INFO")
    a = p.parse_args(argv)

    def on_sigterm(signum: int, frame: Any) -> None:  # clean up as on Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    kinds = tuple(k.strip() for k in a.faults.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        p.error(f"unknown fault kinds {unknown}; choose from {FAULT_KINDS}")
    hold = tuple(float(x) for x in a.hold.split(","))
    if len(hold) != 2 or not 0 < hold[0] <= hold[1]:
        p.error("--hold wants MIN,MAX seconds with 0 < MIN <= MAX")
    code, s = run(a.duration, a.seed, a.nodes, a.out, kinds=kinds, clients=a.clients,
                  mutation=a.mutation, op_timeout_s=a.op_timeout, log_level=a.node_log_level,
                  hold_s=(hold[0], hold[1]), converge_s=a.converge_timeout,
                  leader_bias=a.leader_bias, net=a.net)
    print(f"nemesis: seed {a.seed}, {a.nodes} nodes, {a.duration:g} s, faults {s['faults']}, "
          f"failed ops {s['failed']}, recovered {s['recovered']}, members agree "
          f"{s['states_equal']}, {'PASS' if code == 0 else 'FAIL'}"
          + ("" if code == 0 and a.out is None else f" (run dir {s['dir']})"), file=sys.stderr)
    if s.get("explain"):
        print(s["explain"], file=sys.stderr)
    if s.get("error"):
        print(f"nemesis: error: {s['error']}", file=sys.stderr)
    print(json.dumps({"ops": s["ops"], "ok": s["ok"], "unknown": s["unknown"],
                      "faults": s["faults"], "linearizable": s["linearizable"],
                      "lost": s["lost"]}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
