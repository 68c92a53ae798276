"""The nemesis of the fault harness: one fault at a time on real node processes.

``raft_otp.testing.nemesis`` runs a schedule with it; the fault kinds are
described there.  Each ``fault_<kind>`` injects one fault, holds it, and heals
it; ``heal`` undoes everything (resume, restart, clear cuts).  Every fault and
heal is written to ``nemesis.jsonl`` with its time on the history's clock.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from typing import Any, Callable

__all__ = ["CLUSTER", "FAULT_KINDS", "KV_MACHINE", "Nemesis", "SYSTEM", "kv_machine", "wipe_log"]

log = logging.getLogger("raft_otp.nemesis")

FAULT_KINDS = ("kill", "kill-two", "kill-quorum", "kill-after-lag", "pause", "partition-majority",
               "partition-bridge", "partition-isolate", "wal-crash", "membership", "disk-loss", "disk-full")
RELEASE_CURSOR_EVERY = 200
CLUSTER = "jepsen"
SYSTEM = "default"


def kv_machine(release_cursor_every: int = RELEASE_CURSOR_EVERY) -> tuple[str, dict[str, int]]:
    """The cluster's machine: a snapshot point every ``release_cursor_every`` applied
    commands (0: the members never snapshot)."""
    return ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": release_cursor_every})


KV_MACHINE = kv_machine()

LOG_FILE_PATTERNS = ("**/*.wal", "**/*.segment", "**/*.snapshot")


def wipe_log(data_dir: str) -> list[str]:
    """A lost disk, as far as the log goes: delete every WAL file, segment, snapshot
    and checkpoint under a stopped node's data dir.  The meta store (term, vote, the
    durable commit index) and the server directory stay, as on a node whose log disk
    was replaced (see docs/fault-testing.md, "disk-loss")."""
    import glob
    import os
    gone = sorted({p for pat in LOG_FILE_PATTERNS
                   for p in glob.glob(os.path.join(data_dir, pat), recursive=True)})
    for p in gone:
        os.unlink(p)
    return gone


class Nemesis:
    """One fault at a time, each healed before the next; the faults are logged."""

    def __init__(self, cluster: Any, rng: random.Random, members: list[Any],
                 now: Callable[[], float], events_path: str, *, kinds: tuple[str, ...],
                 hold_s: tuple[float, float] = (2.0, 5.0), calm_s: tuple[float, float] = (1.0, 3.0),
                 leader_bias: float = 0.6, machine: Any = KV_MACHINE, disks: Any = None) -> None:
        self.cluster = cluster
        self.disks = disks  # raft_otp.testing.nemesis_disk.TmpfsDisks (disk-full), or None
        self.machine = machine
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
        if self.disks is not None:
            self.disks.free_all()
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
        """Isolate a follower until it lags, SIGKILL the leader, then heal: the lagging
        node must not win the election that follows (Raft's up-to-date check).

        The leader dies before the heal: a leader alive at the heal probes the
        lagging node at once (it answers pre-votes with an append) and catches it up
        within milliseconds, which left no stale candidate to test.  Right after the
        heal the lagging node is made to start an election (its timer firing first,
        as it may in any run): with the up-to-date check it cannot win.  Without
        that nudge the up-to-date follower, whose short timeout started at the
        leader's death, usually elected itself before the lagging node tried, and
        the ``vote_for_stale_log`` mutant often went unnoticed."""
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
        c.kill(leader)
        self.event("kill", node=c.nodes[leader].short)
        self._heal_network()
        self._nudge_election(lagging)
        self.hold()
        c.start(leader)
        self.event("restart", node=c.nodes[leader].short)

    def _nudge_election(self, i: int) -> None:
        """Make the member on node ``i`` start an election now (fire and forget)."""
        import raft_otp
        from raft_otp.errors import RaftError
        for sid in self.members():
            if self.cluster.index_of(sid.node) == i:
                try:
                    raft_otp.trigger_election(sid)
                    self.event("trigger-election", node=self.cluster.nodes[i].short)
                except RaftError as exc:
                    log.info("nemesis: trigger_election on %s failed: %r", sid, exc)

    def fault_disk_loss(self) -> None:
        """SIGKILL a node (the leader more often), delete its log (``wipe_log``), restart
        it.  It must not vote until it has caught up from a leader of a later term
        (``raft_otp.core.fences``), so what it had acknowledged stays committed.  Only
        when no member is still fenced from an earlier loss: with a majority fenced
        no leader could ever be elected (two lost disks of three lose data anyway)."""
        import raft_otp
        from raft_otp.errors import RaftError
        c = self.cluster
        for sid in self.members():
            try:
                if raft_otp.member_overview(sid, timeout=1.0).get("data_lost") is not None:
                    raise RuntimeError(f"{sid} is still fenced by an earlier disk loss")
            except RaftError:
                pass  # a member not answering now is not known to be fenced
        i = self.victim()
        np = c.nodes[i]
        self.event("disk-loss", node=np.short)
        c.kill(i)
        gone = wipe_log(np.data_dir)
        self.event("log-deleted", node=np.short, files=len(gone))
        self.hold()
        c.start(i)
        self.event("restart", node=np.short)

    def fault_disk_full(self) -> None:
        """Fill a node's data dir (a small tmpfs: ``raft_otp.testing.nemesis_disk``) until
        ENOSPC, hold, free it.  Its disk alarm goes on (a leader there refuses commands
        with DiskFull, its WAL waits), then off, without a restart."""
        if self.disks is None:
            raise RuntimeError("disk-full needs the data dirs on tmpfs mounts (not set up)")
        i = self.victim()
        np = self.cluster.nodes[i]
        filled = self.disks.fill(np.data_dir)
        self.event("disk-full", node=np.short, filled_bytes=filled)
        self.hold()
        self.disks.free(np.data_dir)
        self.event("disk-freed", node=np.short)

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
            if c.nodes[i].alive():  # a killed node's faults died with it; it restarts clean
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
        raft_otp.start_server(SYSTEM, CLUSTER, new, self.machine, remaining + [new], timeout=10.0)
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
