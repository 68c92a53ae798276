"""Power cuts on a real cluster: ``python -m raft_otp.testing.powercut --seeds N [--mutation NAME]``.

Three systems in this process (one member of a 3-member cluster each: its own
WAL, segment writer, meta store, supervisors and server actor, the real code
end to end) share one :class:`~raft_otp.testing.powercut_fs.PowerCutFS`, so one
power cut hits every machine at once, the worst case for durability: whatever
any of them had not synced may be lost or torn.  (Three systems rather than
three members on one WAL: a WAL shared by the members would sync all of them
at once, and a lost follower write could never be told from a lost leader
write.)  The systems' own small files outside the log (directory, data-dir
lock) are real files that a cut does not touch.

A run drives a workload through ``process_command`` and ``pipeline_commands``,
with a machine (:class:`Journal`) that appends each command's id to its state
and takes snapshots through ``release_cursor`` every few commands; tiny WAL
files and segments make rollovers, segment flushes and segment deletions
happen within a few dozen commands.  When the power goes (at a chosen sync
point, or between two), the systems are stopped, the disk reboots with what
survived, and the cluster is recovered adversarially: the two members that
were not leading start first and elect a leader among themselves (as when the
old leader's machine does not come back), then the old leader rejoins.  The
checks, after a barrier command is applied everywhere:

* every acknowledged command is present, at the position its reply gave;
* nothing overwritten comes back: every state a member was seen to apply
  before the cut is a prefix of the final state, and no command appears twice;
* all members agree (equal states), and the cluster recovered at all.

Two workloads: the **scripted** one (commands, a burst, a member stopped while
the others commit, one of them on a slow disk, its return by a snapshot, an
uncommitted tail on an isolated leader that a new leader overwrites, a
leadership transfer; its ``short`` form stops after the member's return) is run
once without a cut to count its sync points, then once per sync point with the
power cut there; the **random** one (per seed) cuts at random sync points or
between them, twice per run.  Each seed also varies what a cut does to unsynced
writes (dropped, torn, reordered).  A slow disk widens the window in which a
follower that acknowledges early is acknowledged but not yet durable; without
one, its own inline sync usually closes the window before the answer leaves.

The last line printed is ``{"cuts": C, "violations": V, "lost": L}``; the exit
status is 1 when V > 0.  ``--mutation ack_before_durable`` (followers
acknowledge before their WAL synced) must make V > 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import raft_otp
from raft_otp.core.machine import ApplyMeta, Machine, ReleaseCursor
from raft_otp.core.types import ServerId
from raft_otp.errors import BadArgument, RaftError
from raft_otp.testing.mutations import rules_for
from raft_otp.testing.powercut_fs import PowerCutFS

log = logging.getLogger("raft_otp.testing.powercut")

BARRIER = -1  # command id of the barrier put after a recovery (each recovery's own: -1, -2, ...)


class Journal(Machine):
    """State: the ids of the applied ``["put", id]`` commands, in order; the reply is
    the id's position.  Config ``{"every": N}``: a release cursor every N commands."""

    def init(self, config: Any) -> list[int]:
        return []

    def apply(self, meta: ApplyMeta, command: Any, state: Any) -> Any:
        if not (isinstance(command, list) and len(command) == 2 and command[0] == "put"):
            raise ValueError(f"unknown command {command!r}")
        new = [*state, command[1]]
        every = (self.config or {}).get("every", 0) if isinstance(self.config, dict) else 0
        if every and len(new) % every == 0:
            return new, len(new) - 1, [ReleaseCursor(meta.index, new)]
        return new, len(new) - 1


def _state(s: Any) -> Any:
    return s


# ---- one run ----------------------------------------------------------------------------------

@dataclass(slots=True)
class Outcome:
    cuts: int = 0
    violations: list[str] = field(default_factory=list)
    lost: int = 0


class PowerOff(Exception):
    """The power went: the workload stops (raised by the workload's helpers)."""


class Cluster:
    """Three systems on one PowerCutFS, one member each."""

    def __init__(self, base: str, fs: PowerCutFS, tag: str, mutations: str = "",
                 call_timeout_s: float = 5.0) -> None:
        self.base = base
        self.fs = fs
        self.tag = tag
        self.rules = rules_for(mutations)  # broken Raft rules, if any (raft_otp.testing.mutations)
        self.timeout = call_timeout_s
        self.names = [f"pc{k}_{tag}" for k in range(3)]
        self.ids = [ServerId(f"m{k}_{tag}", raft_otp.node_name()) for k in range(3)]
        self.systems: list[Any] = [None, None, None]
        self.leader: ServerId | None = None
        self.stopped: set[int] = set()  # members stopped by the workload
        self.acked: dict[int, int] = {}  # command id -> position, acknowledged while powered
        self.seen: list[list[int]] = []  # states members were seen to apply while powered
        self.next_id = 0
        self.barriers = 0
        self.created = False  # the cluster was formed before the power went
        self.marks: dict[str, int] = {}  # workload phase -> sync points before it

    # -- systems -------------------------------------------------------------------------------
    def boot(self, k: int) -> None:
        """Start system ``k`` after a cut and its member (its system's directory, a real
        file the cut does not touch, may say the workload had stopped it)."""
        self.start_system(k)
        self._guard(lambda: raft_otp.restart_server(self.systems[k], self.ids[k], self.timeout))

    def start_system(self, k: int) -> None:
        cfg = {"name": self.names[k], "data_dir": f"{self.base}/{k}", "wal_max_size_bytes": 4096,
               "segment_max_entries": 8, "min_snapshot_interval": 8,
               "receive_snapshot_timeout_ms": 1000,
               "log_options": {"file_io": self.fs, "wal_workers": 2}}
        self.systems[k] = raft_otp.start_system(cfg, rules=self.rules)

    def stop_all(self) -> None:
        for k, s in enumerate(self.systems):
            if s is not None:
                try:
                    raft_otp.stop_system(s)
                except RaftError:
                    pass
                self.systems[k] = None

    def create(self) -> None:
        for k in range(3):
            self.start_system(k)
        for k in range(3):
            self._guard(lambda: raft_otp.start_server(self.systems[k], f"pc_{self.tag}", self.ids[k],
                                                         (Journal, {"every": 6}), self.ids, self.timeout))
        self.elect(0)
        self.created = self.leader is not None

    # -- calls ----------------------------------------------------------------------------------
    def powered(self) -> bool:
        return self.fs.powered

    def _guard(self, f: Callable[[], Any]) -> Any:
        """Run a call; None if it failed (outcome unknown); PowerOff once the power is gone."""
        if not self.fs.powered:
            raise PowerOff()
        try:
            return f()
        except RaftError as exc:
            log.debug("call failed: %r", exc)
            return None
        finally:
            if not self.fs.powered:
                raise PowerOff()

    def up(self) -> list[int]:
        return [k for k in range(3) if k not in self.stopped]

    def find_leader(self, timeout_s: float | None = None) -> ServerId | None:
        deadline = time.monotonic() + (timeout_s or self.timeout)
        while time.monotonic() < deadline:
            for k in self.up():
                got = self._guard(lambda: raft_otp.members(self.ids[k], timeout=1.0))
                if got is not None and got[1] is not None and got[1] in [self.ids[j] for j in self.up()]:
                    self.leader = got[1]
                    return self.leader
            self.fs.power_off_event.wait(0.02)  # an election is under way
        return None

    def put(self) -> None:
        cid = self.next_id
        self.next_id += 1
        target = self.leader or self.ids[self.up()[0]]
        got = self._guard(lambda: raft_otp.process_command(target, ["put", cid], timeout=self.timeout))
        if got is not None:
            pos, self.leader = got
            if self.fs.powered:
                self.acked[cid] = pos

    def burst(self, n: int, wait: bool = True, pace_s: float = 0.0) -> None:
        """``n`` puts pipelined to the leader, one message each (so they reach the
        followers as several appends, and a follower's WAL may be busy); with
        ``wait``, until all are answered; ``pace_s`` apart (a steady stream: each
        its own append to the followers).  An answer counts as an acknowledgement
        when the power is still on as the leader gives it."""
        if self.leader is None and self.find_leader() is None:
            return
        cids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        left = set(cids)
        lock = threading.Lock()
        done = threading.Event()

        def notify(msg: Any) -> None:  # on the leader's thread, as it answers
            powered = self.fs.powered
            with lock:
                if isinstance(msg, raft_otp.Applied):
                    for corr, pos in msg.replies:
                        if powered and isinstance(pos, int):
                            self.acked[corr] = pos
                        left.discard(corr)
                else:  # rejected: not the leader any more
                    left.difference_update(msg.correlations)
                if not left:
                    done.set()

        leader = self.leader
        if leader is None:
            return
        for c in cids:
            self._guard(lambda: raft_otp.pipeline_command(leader, ["put", c], c, notify))
            if pace_s and self.fs.power_off_event.wait(pace_s):
                break
        if not wait:
            return
        deadline = time.monotonic() + 2.0
        while not done.wait(0.02) and self.fs.powered and time.monotonic() < deadline:
            pass
        if not self.fs.powered:
            raise PowerOff()

    def sample(self) -> None:
        """Record what each running member has applied (checked against the end state)."""
        for k in self.up():
            got = self._guard(lambda: raft_otp.local_query(self.ids[k], _state, timeout=1.0))
            if got is not None:
                self.seen.append(list(got[0]))

    def stop_member(self, k: int) -> None:
        self._guard(lambda: raft_otp.stop_server(self.systems[k], self.ids[k], self.timeout))
        self.stopped.add(k)
        if self.leader == self.ids[k]:
            self.leader = None

    def restart_member(self, k: int) -> None:
        self._guard(lambda: raft_otp.restart_server(self.systems[k], self.ids[k], self.timeout))
        self.stopped.discard(k)

    def running(self, ks: list[int]) -> None:
        """Until members ``ks`` answer (a pre-vote sent to a member still starting is lost,
        and its sender then waits out an election timeout)."""
        for k in ks:
            self._guard(lambda: raft_otp.ping(self.ids[k], timeout=self.timeout))

    def elect(self, k: int, tries: int = 10) -> None:
        """Make member ``k`` campaign, then every running member, until one leads."""
        self.running(self.up())
        ks = [k]
        for _ in range(tries):
            for j in ks:
                self._guard(lambda: raft_otp.trigger_election(self.ids[j]))
            if self.find_leader(0.3) is not None:
                return
            ks = self.up()

    def transfer(self, k: int) -> None:
        if self.leader is None or self.leader == self.ids[k]:
            return
        old = self.leader
        self._guard(lambda: raft_otp.transfer_leadership(old, self.ids[k], 1.0))
        deadline = time.monotonic() + 1.0
        while self.find_leader() == old and time.monotonic() < deadline:
            self.fs.power_off_event.wait(0.01)  # the old leader still answers for itself

    def leader_index(self) -> int | None:
        return self.ids.index(self.leader) if self.leader in self.ids else None

    def wait_last_index(self, k: int, index: int) -> None:
        """Until member ``k`` holds ``index`` in its log (its WAL has it or soon will)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            got = self._guard(lambda: raft_otp.key_metrics(self.ids[k], timeout=1.0))
            if got is not None and got.get("last_index", 0) >= index:
                return
            self.fs.power_off_event.wait(0.005)

    # -- after a cut ---------------------------------------------------------------------------
    def recover_and_check(self, rng: random.Random, out: Outcome) -> bool:
        """Stop what runs, reboot the disk, restart the old leader last, check; False when
        the run ends here (the cluster did not come back: a violation is recorded; or
        it was never formed)."""
        old = self.leader_index()
        if old is None:
            old = rng.randrange(3)
        self.stop_all()
        self.fs.power_on()
        out.cuts += 1
        self.stopped = set()
        if not self.created:  # cut while forming the cluster: the systems must boot, no more
            for k in range(3):
                self.start_system(k)
            return False
        first = [k for k in range(3) if k != old]
        for k in first:
            self.boot(k)
        rng.shuffle(first)
        self.stopped = {old}
        self.running(first)
        for _ in range(20):  # both campaign: the one with the longer log wins
            for k in first:
                self._guard(lambda: raft_otp.trigger_election(self.ids[k]))
            if self.find_leader(0.5) is not None:
                break
        leader = self.leader
        if leader is None:
            out.violations.append(f"no leader among members {first} after the cut")
        elif self._barrier() is None:  # what the two of them decided is now committed
            out.violations.append(f"members {first} elected a leader but commit nothing after the cut")
        self.boot(old)
        self.stopped = set()
        if leader is not None:
            # the new leader may have given up on the old one while it was not running
            # (a snapshot transfer waits out its timeout): hand leadership on once more
            self._guard(lambda: raft_otp.ping(self.ids[old], timeout=self.timeout))
            nxt = next(k for k in first if self.ids[k] != self.leader)
            self.transfer(nxt)
        if self.find_leader(20.0) is None:
            out.violations.append("no leader after the cut with all three members")
            return False
        bid = self._barrier()
        if bid is None:
            out.violations.append("the barrier command was not applied after the cut")
            return False
        states = self._states_with(bid)
        if states is None:
            out.violations.append("not every member applied the barrier after the cut")
            return False
        self._check(states, out)
        return True

    def _barrier(self) -> int | None:
        """Commit a barrier command (its id, or None if it could not be in 30 s)."""
        self.barriers += 1
        bid = -self.barriers
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            got = self._guard(lambda: raft_otp.process_command(self.leader or self.ids[self.up()[0]],
                                                               ["put", bid], timeout=self.timeout))
            if got is not None:
                self.leader = got[1]
                return bid
            self.find_leader()
        return None

    def _states_with(self, bid: int) -> list[list[int]] | None:
        deadline = time.monotonic() + 30.0
        states: list[list[int]] = []
        for k in range(3):
            while True:
                got = self._guard(lambda: raft_otp.local_query(self.ids[k], _state, timeout=1.0))
                if got is not None and bid in got[0]:
                    states.append(list(got[0]))
                    break
                if time.monotonic() > deadline:
                    return None
                self.fs.power_off_event.wait(0.01)  # never set while powered: a bounded poll
        return states

    def _check(self, states: list[list[int]], out: Outcome) -> None:
        final = states[0]
        for k, s in enumerate(states[1:], 1):
            if s != final:
                out.violations.append(f"members disagree: m0 has {len(final)} commands, m{k} {len(s)}; "
                                      f"first difference at {_first_diff(final, s)}")
        have = set(final)
        lost = [c for c in self.acked if c not in have]
        out.lost += len(lost)
        if lost:
            out.violations.append(f"{len(lost)} acknowledged commands lost: {sorted(lost)[:10]}")
            for c in lost:
                del self.acked[c]  # counted once, not again after the next cut
        moved = [c for c, p in self.acked.items() if c not in lost and (p >= len(final) or final[p] != c)]
        if moved:
            out.violations.append(f"{len(moved)} acknowledged commands not at their position: {moved[:10]}")
        if len(set(final)) != len(final):
            out.violations.append("a command was applied twice")
        for s in self.seen:
            if final[: len(s)] != s:
                out.violations.append(f"an applied state seen before the cut is not a prefix of the final "
                                      f"one (differs at {_first_diff(final, s)})")
                break
        self.seen = [final]


def _first_diff(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ---- workloads ----------------------------------------------------------------------------------

def scripted(c: Cluster, short: bool = False) -> None:
    """The scripted workload (raises PowerOff when the power goes).  ``short``: up to
    the lagging member's return (no overwritten tail, no transfer)."""
    c.create()
    for _ in range(3):
        c.put()
    c.burst(12)
    c.sample()
    lead = c.leader_index()
    if lead is None:
        return
    lag = (lead + 1) % 3
    c.stop_member(lag)  # the other two commit without it, one of them on a slow disk
    slow = next(k for k in range(3) if k not in (lead, lag))
    c.fs.slow_disk(f"{c.base}/{slow}", 0.005)
    c.marks["slow_disk"] = c.fs.syncs
    c.burst(16, pace_s=0.001)
    c.put()
    c.fs.slow_disk(f"{c.base}/{slow}", None)
    c.marks["slow_disk_end"] = c.fs.syncs
    c.sample()
    c.restart_member(lag)  # catches up, by a snapshot
    c.put()
    if short:
        c.sample()
        return
    c.put()
    # an uncommitted tail on an isolated leader, overwritten by the next leader
    lead = c.leader_index()
    if lead is None:
        return
    others = [k for k in range(3) if k != lead]
    for k in others:
        c.stop_member(k)
    before = c._guard(lambda: raft_otp.key_metrics(c.ids[lead], timeout=1.0))
    c.burst(5, wait=False)
    if before is not None:
        c.wait_last_index(lead, before["last_index"] + 5)
    c.stop_member(lead)
    for k in others:
        c.restart_member(k)
    c.elect(others[0])
    c.put()
    c.put()
    c.restart_member(lead)  # its tail is overwritten
    c.put()
    c.sample()
    c.transfer(others[1])  # to the follower that has been up all along (caught up)
    c.burst(6)
    c.put()
    c.sample()


def random_steps(c: Cluster, rng: random.Random, steps: int) -> None:
    """``steps`` random operations on a created cluster (raises PowerOff)."""
    for _ in range(steps):
        r = rng.random()
        if r < 0.4:
            c.put()
        elif r < 0.65:
            c.burst(rng.randint(2, 15), pace_s=rng.choice((0.0, 0.001)))
        elif r < 0.72:
            c.sample()
        elif r < 0.8 and not c.stopped:
            c.stop_member(rng.randrange(3))
            if c.leader is None:
                c.find_leader()
        elif r < 0.88 and c.stopped:
            c.restart_member(next(iter(c.stopped)))
        elif r < 0.94:
            c.transfer(rng.choice(c.up()))
        else:
            c.elect(rng.choice(c.up()))


# ---- drivers ----------------------------------------------------------------------------------

def _run(fs: PowerCutFS, body: Callable[[Cluster], None], cuts: int, mutations: str,
         rng: random.Random, out: Outcome) -> dict[str, int]:
    """Create a cluster on ``fs`` and run ``body`` on it; after each power cut, recover and
    check, and go on with ``body``'s next part (``cuts`` times, the last one forced)."""
    base = tempfile.mkdtemp(prefix="raft_otp_powercut_")
    c = Cluster(base, fs, f"{time.monotonic_ns() % 10**9}_{rng.randrange(10**6)}", mutations)
    try:
        for i in range(cuts):
            try:
                body(c)
            except PowerOff:
                pass
            if fs.powered:
                fs.cut_now()  # the workload ended first: cut at its end
            if not c.recover_and_check(rng, out):
                break
            if i + 1 < cuts:
                fs.cut_at_sync(rng.randint(1, 120))
        return c.marks
    finally:
        c.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def _scripted(short: bool) -> Callable[[Cluster], None]:
    def body(c: Cluster) -> None:
        scripted(c, short)
        c.marks["end"] = c.fs.syncs

    return body


def count_scripted_syncs(seed: int, mutations: str = "", short: bool = False) -> tuple[int, dict[str, int]]:
    """Sync points of the scripted workload run without a cut (varies a little with
    timing), and the sync point at which each marked phase began."""
    fs = PowerCutFS(seed)
    marks = _run(fs, _scripted(short), 1, mutations, random.Random(seed), Outcome())
    return marks["end"], marks


def run_scripted_cut(seed: int, point: int, mutations: str = "", short: bool = False) -> Outcome:
    """The scripted workload with the power cut at sync point ``point``, then checked."""
    fs = PowerCutFS(seed)
    fs.cut_at_sync(point)
    out = Outcome()
    _run(fs, _scripted(short), 1, mutations, random.Random(seed), out)
    return out


def run_random(seed: int, mutations: str = "", cuts: int = 2) -> Outcome:
    """The random workload of ``seed`` with ``cuts`` random power cuts."""
    rng = random.Random(seed)
    fs = PowerCutFS(seed)
    if rng.random() < 0.8:
        fs.cut_at_sync(rng.randint(1, 200))
    slow = rng.randrange(3) if rng.random() < 0.5 else None  # one machine with a slow disk

    def body(c: Cluster) -> None:
        if not c.created:
            c.create()
            if slow is not None:
                c.fs.slow_disk(f"{c.base}/{slow}", 0.005)
        random_steps(c, rng, rng.randint(5, 25))
        if rng.random() < 0.2:
            c.fs.cut_now()

    out = Outcome()
    _run(fs, body, cuts, mutations, rng, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raft_otp.testing.powercut", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="random-workload seeds (each: 2 cuts)")
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--mutation", default="",
                    help="NAME[,NAME]: break these Raft rules (raft_otp.testing.mutations)")
    ap.add_argument("--scripted-every", type=int, default=1,
                    help="cut the scripted workload at every Nth sync point (0: skip it)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        rules_for(a.mutation)
    except BadArgument as exc:
        ap.error(f"--mutation: {exc}")
    logging.basicConfig(level=logging.CRITICAL)
    total = Outcome()
    t0 = time.monotonic()

    def report(what: str, out: Outcome) -> None:
        total.cuts += out.cuts
        total.lost += out.lost
        total.violations += [f"{what}: {v}" for v in out.violations]
        if out.violations and not a.quiet:
            for v in out.violations:
                print(f"VIOLATION {what}: {v}", flush=True)

    if a.scripted_every > 0:
        n, _marks = count_scripted_syncs(a.seed_start, a.mutation)
        if not a.quiet:
            print(f"scripted workload: {n} sync points", flush=True)
        for point in range(1, n + 1, a.scripted_every):
            report(f"scripted cut at sync {point}", run_scripted_cut(a.seed_start + point, point, a.mutation))
    for seed in range(a.seed_start, a.seed_start + a.seeds):
        report(f"random seed {seed}", run_random(seed, a.mutation))
        if not a.quiet and (seed - a.seed_start + 1) % 20 == 0:
            print(f"{seed - a.seed_start + 1} seeds, {total.cuts} cuts, {len(total.violations)} violations, "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
    print(json.dumps({"cuts": total.cuts, "violations": len(total.violations), "lost": total.lost}), flush=True)
    return 1 if total.violations else 0


if __name__ == "__main__":
    from raft_otp.testing.powercut import main as _main  # the machine class by its module name, not __main__

    sys.exit(_main())
