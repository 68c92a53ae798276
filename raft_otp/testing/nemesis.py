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
``kill-after-lag``     isolate a follower until it lags, SIGKILL the leader, then heal
                       (the lagging node must not win the next election)
``pause``              SIGSTOP a node (the leader more often) for longer than an
                       election, then SIGCONT
``partition-majority`` cut the nodes into a majority and a minority (the leader on
                       either side)
``partition-bridge``   two sides that cannot talk, one node that talks to both
``partition-isolate``  one node (the leader more often) cut from all the others
``wal-crash``          crash the WAL actor inside a node (its supervisor restarts it)
``membership``         remove a member during load, then add a fresh one on that node
``disk-loss``          SIGKILL a node (the leader more often), delete its WAL, segments
                       and snapshots (its meta stays), restart it: it must not vote
                       until it has caught up (skipped while a member is still fenced)
``disk-full``          fill a node's data dir (each a 96 MiB tmpfs mount, made before
                       the nodes start) until ENOSPC, hold, free it: its disk alarm
                       goes on and off without a restart (needs root: where mounting is
                       not allowed the kind is skipped, said on stderr and in the summary)
=====================  =================================================================

Partitions go through the node transport's fault hook (the admin endpoint's
``set_fault``) or, with ``--net netns``, through the kernel: each node in its own
network namespace, cut by blackhole routes (``raft_otp.testing.nemesis_netns``).
Either way the client node still reaches every node, as a client on the same
side of each partition would.

``--mutation NAME[,NAME]`` starts the nodes with those broken Raft rules
(``raft_otp.testing.mutations``, through ``nemesis_node --mutation``: a bug on
purpose); the run must then fail.

``--release-cursor-every N`` (default 200) is how often the key-value machine
offers a snapshot point; 0 means no snapshots.  The ``vote_for_stale_log``
mutant test uses 0: with snapshots a stale leader is often wedged (see
docs/fault-testing.md) and loses nothing a client could see.
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
from typing import Any

from raft_otp.errors import BadArgument
from raft_otp.testing.mutations import parse_names
from raft_otp.testing.nemesis_faults import (CLUSTER, FAULT_KINDS, RELEASE_CURSOR_EVERY, SYSTEM,
                                             Nemesis, kv_machine)

__all__ = ["FAULT_KINDS", "Nemesis", "main", "run"]

log = logging.getLogger("raft_otp.nemesis")

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
        leader_bias: float = 0.6, net: str = "transport",
        release_cursor_every: int = RELEASE_CURSOR_EVERY) -> tuple[int, dict[str, Any]]:
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
    disks, skipped = None, {}
    if "disk-full" in kinds:
        from raft_otp.testing import nemesis_disk
        why = nemesis_disk.available()
        if why is None:
            disks = nemesis_disk.TmpfsDisks()
        else:
            skipped["disk-full"] = why
            kinds = tuple(k for k in kinds if k != "disk-full")
            print(f"nemesis: disk-full skipped: {why}", file=sys.stderr)
            if not kinds:
                raise SystemExit(f"nemesis: no fault kind left (disk-full: {why})")
    t0 = time.monotonic()
    history = History(os.path.join(run_dir, "history.jsonl"), t0)
    stop = threading.Event()
    summary: dict[str, Any] = {"seed": seed, "nodes": nodes, "duration_s": duration_s,
                               "faults_enabled": list(kinds), "mutation": mutation, "net": net,
                               "dir": run_dir, "release_cursor_every": release_cursor_every,
                               "faults_skipped": skipped}
    nemesis: Nemesis | None = None
    threads: list[threading.Thread] = []
    recovered = False
    states_equal = False
    lost: list[dict[str, Any]] = []
    try:
        if disks is not None:  # before the nodes' first start: the mounts hide nothing
            disks.setup([np.data_dir for np in cluster.nodes])
        cluster.start_all()
        cluster.join_as_client()
        members = [cluster.sid("kv", i) for i in range(nodes)]
        machine = kv_machine(release_cursor_every)
        started, not_started = raft_otp.start_cluster(SYSTEM, CLUSTER, machine, members,
                                                      timeout=30)
        if not_started:
            raise RuntimeError(f"cluster did not start: {not_started}")
        nemesis = Nemesis(cluster, random.Random(rng.random()), members, history.now,
                          os.path.join(run_dir, "nemesis.jsonl"), kinds=kinds, hold_s=hold_s,
                          leader_bias=leader_bias, machine=machine, disks=disks)
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
        if disks is not None:
            for err in disks.close():
                summary.setdefault("error", err)
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
                   help="NAME[,NAME]: break these Raft rules in every node "
                        "(raft_otp.testing.mutations)")
    p.add_argument("--hold", default="2,5",
                   help="MIN,MAX seconds each fault lasts (default %(default)s)")
    p.add_argument("--converge-timeout", type=float, default=60.0,
                   help="seconds the members get to reach equal states after healing")
    p.add_argument("--leader-bias", type=float, default=0.6,
                   help="probability that a fault aimed at one node aims at the leader")
    p.add_argument("--net", default="transport", choices=["transport", "netns"],
                   help="how partitions are made: the transport's fault hook, or blackhole "
                        "routes between one network namespace per node (root only)")
    p.add_argument("--release-cursor-every", type=int, default=RELEASE_CURSOR_EVERY,
                   help="the key-value machine offers a snapshot point every N applied "
                        "commands (default %(default)s); 0: no snapshots at all")
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
    if a.release_cursor_every < 0:
        p.error("--release-cursor-every wants N >= 0")
    try:
        parse_names(a.mutation)
    except BadArgument as exc:
        p.error(f"--mutation: {exc}")
    code, s = run(a.duration, a.seed, a.nodes, a.out, kinds=kinds, clients=a.clients,
                  mutation=a.mutation, op_timeout_s=a.op_timeout, log_level=a.node_log_level,
                  hold_s=(hold[0], hold[1]), converge_s=a.converge_timeout,
                  leader_bias=a.leader_bias, net=a.net,
                  release_cursor_every=a.release_cursor_every)
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
