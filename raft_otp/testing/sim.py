"""Deterministic simulator: many core servers in one thread, a seeded fault-injecting
network, a fake clock, crashes that keep only what was durable, client load and
invariant checks after every step.

The simulator plays the server actor's role: it runs timers (RA's timeout classes,
scaled down 10x), delivers WAL ``written`` events after random delays, streams
snapshots chunk by chunk like the snapshot sender actor, monitors leaders
(``LeaderDown``/``NodeDown``) and executes every effect in order.  Each server's
failure detector is modelled per direction: a node it hears nothing from is
reported down to it (followers about their leader, leaders about their peers, for
CheckQuorum), so one-way cuts are down on one side only.  Beyond crash-recovery,
one server at a time may restart with its log gone (a lost disk, its meta kept) or
with its last term/vote record lost (damaged meta): the vote fences of
``raft_otp.core.fences`` must keep every invariant.

Run ``python -m raft_otp.testing.sim --seeds N [--steps S] [--servers 3|5]
[--seed-start K] [--jobs J] [--mutation NAME] [--trace]``.  It exits 0 only if no
invariant was violated; its last line is one JSON object
``{"seeds": N, "steps": S, "violations": V, "seeds_per_s": X}``.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from raft_otp.core import ServerConfig, ServerMeta, handle, init_server
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.core.effects import (
    MachineFailed,
    MembersChanged,
    Notify,
    Reply,
    ReplyError,
    RoleChanged,
    SendSnapshot,
    SnapshotInstalled,
)
from raft_otp.core.events import (
    AddMember,
    Command,
    Commands,
    ConsistentQuery,
    InstallSnapshotResult,
    InstallSnapshotRpc,
    LeaderDown,
    LeaderQuery,
    LogEvent,
    MemberKind,
    NodeDown,
    NodeUp,
    RemoveMember,
    SnapshotSenderDone,
    SnapshotSenderFailed,
    TransferLeadership,
)
from raft_otp.core.machine import ApplyMeta, Machine
from raft_otp.core.memlog import MemoryLog
from raft_otp.core.types import ServerId
from raft_otp.server.executor import Executor, TimerFired
from raft_otp.machines import Counter, KeyValue
from raft_otp.errors import MachineError
from raft_otp.testing.checks import CounterHistory, Invariants, RegisterHistory, Violation

# timer classes (ms), RA's divided by 10 so that a short run sees many elections
TIMERS_MS = {
    "leader_down": (1, 10),
    "connection_lost": (10, 60),
    "candidate": (10, 110),
    "pre_vote": (100, 200),
    "receive_snapshot": (300, 300),
    "await_condition": (500, 500),
}
TICK_MS = 50
CLIENT_TIMEOUT_MS = 400
SENDER_TIMEOUT_MS = 100
CHUNK_SIZE = 48

# event kinds in the queue
MSG, TIMER, LOGEV, TICK, CLIENT, FAULT, LOCAL, SENDER_TO, DRAIN = range(9)


def _get(state: Any) -> Any:
    return state


class RecordingMachine(Machine):
    """Wraps a machine and records every applied (index, term, command, entry time) for
    the state machine safety check, and checks that the entry time never decreases
    along what one server applies."""

    def __init__(self, inner: Machine, record: dict[int, tuple[int, Any]], inv: Invariants, name: str) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.record = record
        self.inv = inv
        self.name = name
        self.last: tuple[int, int] = (0, 0)  # (index, entry time) last applied here

    def init(self, config: Any) -> Any:
        return self.inner.init(config)

    def apply(self, meta: ApplyMeta, command: Any, state: Any) -> Any:
        seen = self.record.get(meta.index)
        applied = (meta.term, command, meta.system_time_ms)
        if seen is None:
            self.record[meta.index] = applied
        elif seen != applied:
            self.inv.fail(f"state machine safety: {self.name} applied {applied} at "
                          f"{meta.index}, another server applied {seen}")
        if meta.index > self.last[0] and meta.system_time_ms < self.last[1]:
            self.inv.fail(f"entry time decreased: {self.name} applied time {meta.system_time_ms} at "
                          f"{meta.index} after {self.last[1]} at {self.last[0]}")
        self.last = (meta.index, meta.system_time_ms)  # a replay after a restart starts lower
        return self.inner.apply(meta, command, state)

    def snapshot_encode(self, state: Any) -> bytes:
        return self.inner.snapshot_encode(state)

    def snapshot_decode(self, data: bytes) -> Any:
        return self.inner.snapshot_decode(data)


class SimServer:
    __slots__ = ("id", "state", "log", "meta", "meta_prev", "alive", "timer_gen", "epoch", "inbox", "machine",
                 "executor")

    def __init__(self, sid: ServerId) -> None:
        self.id = sid
        self.state: Any = None
        self.log: MemoryLog | None = None
        self.meta = ServerMeta()
        self.meta_prev = ServerMeta()  # the record before the last term/vote write
        self.alive = False
        self.timer_gen = 0
        self.epoch = 0
        self.inbox: list[Command] = []
        self.machine: Machine | None = None
        self.executor: Executor | None = None


class SimPorts:
    """The production effect executor's ports onto the simulation (its network,
    clock, timers, meta and snapshot senders): ``raft_otp.server.executor.Ports``."""

    def __init__(self, sim: "Simulation", srv: SimServer) -> None:
        self.sim = sim
        self.srv = srv
        self.epoch = srv.epoch

    def send(self, to: ServerId, rpc: Any) -> None:
        self.sim._send(self.srv.id, to, rpc)

    def send_same(self, name: str, nodes: list[str], rpc: Any) -> None:
        for node in nodes:
            self.sim._send(self.srv.id, ServerId(name, node), rpc)

    def reply(self, to: Any, e: Any) -> None:
        t = type(e)
        if t is Reply or t is ReplyError:
            self.sim._client_reply(e)
        elif t is Notify:
            for corr, value in e.replies:
                self.sim._client_reply(Reply(corr, value, self.srv.id))
        else:
            for corr in e.correlations:
                self.sim._client_reply(ReplyError(corr, "not_leader", e.leader))

    def persist_meta(self, term: int, voted_for: ServerId | None, vote_unproven: bool,
                     data_lost: int | None) -> None:
        srv = self.srv
        srv.meta_prev = srv.meta
        srv.meta = srv.meta._replace(term=term, voted_for=voted_for, vote_unproven=vote_unproven,
                                     data_lost=data_lost)

    def persist_last_applied(self, index: int, durable_commit: int, sync: bool) -> None:
        self.srv.meta = self.srv.meta._replace(last_applied=index, durable_commit=durable_commit)

    def election_timeout_ms(self, kind: str) -> int:
        lo, hi = TIMERS_MS[kind]
        return self.sim.rng.randint(lo, hi)

    def set_timer(self, message: TimerFired, delay_ms: int) -> None:
        self.sim._push(max(1, delay_ms), TIMER, self.srv.id, (self.epoch, message))

    def cancel_timer(self, key: str) -> None:
        pass  # its generation is dead: the executor drops it when it fires

    def role_changed(self, e: RoleChanged, old_role: str, old_leader: ServerId | None) -> None:
        """The node's monitors and failure detector, as the real server's ports set them
        up: a follower whose leader is dead, or cut off from it, hears so."""
        sim, srv = self.sim, self.srv
        sid = srv.id
        sim._note(f"{sid.name} -> {e.role} t{e.term} leader={e.leader and e.leader.name}")
        if e.role == "follower" and e.leader is not None:
            leader = sim.servers.get(e.leader)
            if leader is None or not leader.alive:
                sim._push(sim.rng.randint(1, 20), LOCAL, sid, LeaderDown(e.leader))
            elif (e.leader, sid) in sim.blocked:  # we hear nothing from its node
                sim._push(sim.rng.randint(20, 80), LOCAL, sid, NodeDown(e.leader.node))
        if e.role == "follower" and srv.state is not None and srv.state.removed:
            for other in sim.servers.values():
                if other.alive and other.state.leader_id == sid:
                    sim._push(sim.rng.randint(5, 50), LOCAL, other.id, LeaderDown(sid))

    def members_changed(self, e: MembersChanged) -> None:
        pass

    def start_snapshot(self, e: SendSnapshot) -> None:
        self.sim._start_sender(self.srv, e)

    def stop_snapshot(self, peer: ServerId) -> None:
        self.sim.senders.pop((self.srv.id, peer), None)

    def machine_effects(self, effects: tuple[Any, ...]) -> None:
        pass

    def snapshot_installed(self, e: SnapshotInstalled) -> None:
        pass

    def machine_failed(self, e: MachineFailed) -> None:
        self.sim.machine_failures += 1


class Client:
    __slots__ = ("idx", "seq", "op", "target", "op_no", "invoke_ms", "attempts")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.seq = 0
        self.op: Any = None
        self.target: ServerId | None = None
        self.op_no = 0
        self.invoke_ms = 0
        self.attempts = 0


class Simulation:
    def __init__(self, seed: int, servers: int = 3, steps: int = 2000, machine: str = "counter",
                 rules: Rules = RAFT_RULES, trace: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        # each server's wall clock is off by up to 0.5 s (a stream of its own, so the
        # seeds' scenarios stay): entry times must still never decrease along the log
        clock_rng = random.Random(seed * 104729 + 3)
        self.clock_skew_ms = [clock_rng.randint(-500, 500) for _ in range(servers + 2)]
        self.n = servers
        self.max_steps = steps
        self.machine_kind = machine
        self.rules = rules  # broken ones: raft_otp.testing.mutations
        self.now = 0
        self.queue: list[tuple[int, int, int, Any, Any]] = []
        self.seq = 0
        self.inv = Invariants()
        self.history = CounterHistory()
        self.registers = RegisterHistory()
        self.applied: dict[int, tuple[int, Any]] = {}
        self.trace_on = trace
        self.trace: list[str] = []
        ids = [ServerId(f"s{i}", f"n{i}") for i in range(servers + 2)]
        self.ids = ids
        self.servers = {sid: SimServer(sid) for sid in ids}
        self.initial = tuple(ids[:servers])
        self.blocked: set[tuple[ServerId, ServerId]] = set()
        self.senders: dict[tuple[ServerId, ServerId], list[Any]] = {}
        self.loss = self.rng.choice((0.0, 0.01, 0.05, 0.15))
        self.dup = self.rng.choice((0.0, 0.02))
        self.delay_max = self.rng.choice((2, 5, 15))
        self.snap_every = self.rng.choice((7, 25, 1000))
        self.wal_delay_max = self.rng.choice((2, 10, 40, 100))
        self.batch = self.rng.choice((1, 2, 8, 128))
        self.pipeline = self.rng.choice((2, 32, 4096))
        self.clients = [Client(i) for i in range(self.rng.choice((2, 5, 8)))]
        self.steps = 0
        self.machine_failures = 0  # MachineFailed effects seen (poison commands applied)
        self.last_commit: dict[ServerId, int] = {}
        for sid in self.initial:
            self._start(sid, fresh=True)
        for c in self.clients:
            self._push(self.rng.randint(1, 50), CLIENT, c.idx, None)
        self._push(self.rng.randint(100, 400), FAULT, None, None)

    # ---- plumbing -----------------------------------------------------------------
    def _push(self, delay: int, kind: int, a: Any, b: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, kind, a, b))

    def _note(self, text: str) -> None:
        self.trace.append(f"[{self.steps} t={self.now}] {text}")
        if len(self.trace) > 80:
            del self.trace[:20]

    def _make_machine(self, sid: ServerId) -> Machine:
        inner: Machine
        if self.machine_kind == "kv":
            inner = KeyValue({"release_cursor_every": self.snap_every})
        else:
            inner = Counter({"release_cursor_every": self.snap_every})
        return RecordingMachine(inner, self.applied, self.inv, sid.name)

    def _start(self, sid: ServerId, fresh: bool) -> None:
        srv = self.servers[sid]
        srv.epoch += 1
        epoch = srv.epoch
        machine = srv.machine if srv.machine is not None else self._make_machine(sid)
        srv.machine = machine

        def notify(payload: object, sid: ServerId = sid, epoch: int = epoch) -> None:
            self._push(self.rng.randint(0, self.wal_delay_max), LOGEV, sid, (epoch, payload))

        if srv.log is None:
            srv.log = MemoryLog(notify, min_snapshot_interval=5, encode=machine.snapshot_encode,
                                decode=machine.snapshot_decode)
        else:
            srv.log.set_notify(notify)
        members = self.initial if fresh and sid in self.initial else ()
        cfg = ServerConfig(sid, "sim", members, None, max_append_entries_rpc_batch_size=self.batch,
                           max_pipeline_count=self.pipeline, tick_ms=TICK_MS, rules=self.rules)
        srv.alive = True
        srv.inbox = []
        srv.timer_gen += 1
        srv.executor = Executor(sid, SimPorts(self, srv))
        state, effects = init_server(cfg, srv.log, machine, srv.meta, random.Random(self.rng.random()))
        srv.state = state
        self.last_commit[sid] = state.commit_index
        self._note(f"start {sid.name} {state!r}")
        srv.executor.execute(effects)

    def _crash(self, sid: ServerId) -> None:
        srv = self.servers[sid]
        srv.alive = False
        srv.timer_gen += 1
        srv.epoch += 1
        assert srv.log is not None
        srv.log.crash()
        for key in [k for k in self.senders if k[0] == sid]:
            del self.senders[key]
        self._note(f"crash {sid.name}")
        for other in self.servers.values():
            if other.alive and other.state.leader_id == sid:
                self._push(self.rng.randint(5, 50), LOCAL, other.id, LeaderDown(sid))

    # ---- effects ------------------------------------------------------------------
    def _send(self, frm: ServerId, to: ServerId, rpc: Any) -> None:
        if (frm, to) in self.blocked or to not in self.servers:
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return
        self._push(rng.randint(1, self.delay_max), MSG, to, rpc)
        if self.dup and rng.random() < self.dup:
            self._push(rng.randint(1, self.delay_max * 2), MSG, to, rpc)

    # ---- snapshot sender (the actor's temporary child in the real system) -----------
    def _start_sender(self, srv: SimServer, eff: SendSnapshot) -> None:
        assert srv.log is not None
        got = srv.log.snapshot_chunks(CHUNK_SIZE)
        if got is None:
            self._push(1, LOCAL, srv.id, SnapshotSenderFailed(eff.to))
            return
        meta, chunks = got
        sender = [meta, list(chunks), 0, eff.term, 0]  # meta, chunks, acked, term, gen
        self.senders[(srv.id, eff.to)] = sender
        self._sender_next(srv.id, eff.to, sender)

    def _sender_next(self, frm: ServerId, to: ServerId, sender: list[Any]) -> None:
        meta, chunks, acked, term, _gen = sender
        n = acked + 1
        rpc = InstallSnapshotRpc(term, frm, meta, n, n == len(chunks), chunks[acked])
        sender[4] += 1
        self._send(frm, to, rpc)
        self._push(SENDER_TIMEOUT_MS, SENDER_TO, frm, (to, sender[4]))

    def _sender_result(self, sid: ServerId, res: InstallSnapshotResult) -> None:
        sender = self.senders.get((sid, res.from_id))
        if sender is None or res.term != sender[3]:
            return
        if res.last_index > 0:
            del self.senders[(sid, res.from_id)]
            self._push(0, LOCAL, sid, SnapshotSenderDone(res.from_id, sender[0].index))
        elif res.chunk_num == sender[2] + 1:
            sender[2] += 1
            if sender[2] < len(sender[1]):
                self._sender_next(sid, res.from_id, sender)

    # ---- clients ------------------------------------------------------------------
    def _pick_target(self, c: Client) -> ServerId:
        if c.target is not None and self.rng.random() < 0.9:
            return c.target
        members = [s for s in self.ids if self.servers[s].alive]
        return self.rng.choice(members or self.ids)

    def _client_step(self, c: Client) -> None:
        if c.op is None:
            r = self.rng.random()
            c.op_no += 1
            c.invoke_ms = self.now
            c.attempts = 0
            if r < 0.7:
                c.seq += 1
                c.op = "incr" if self.machine_kind == "counter" else "put"
                self.history.invoke(c.idx, c.op_no, "incr", self.now)
                if c.op == "put":
                    self.registers.put_invoke(c.idx, c.seq, self.now)
            elif r < 0.9:
                c.op = "cquery"
                self.history.invoke(c.idx, c.op_no, "read", self.now)
            elif r < 0.97:
                c.op = "lquery"
            else:  # a command the machine raises on: a MachineError, the same everywhere
                c.seq += 1
                c.op = "poison"
        c.attempts += 1
        target = self._pick_target(c)
        if c.op == "cquery" and self.rng.random() < 0.5:
            # a client with stale routing: ask any server that believes it leads
            leaders = [s.id for s in self.servers.values() if s.alive and s.state.role == "leader"]
            if leaders:
                target = self.rng.choice(leaders)
        srv = self.servers[target]
        ref = (c.idx, c.op_no)
        if c.op in ("incr", "put", "poison"):
            data = {"incr": ["incr"], "put": ["put", f"k{c.idx}", c.seq], "poison": ["poison", c.seq]}[c.op]
            if c.idx % 2:  # pipelined (RA pipeline_command): answers come in Notify batches
                cmd = Command(data, "pipe", ref, "notify", f"c{c.idx}", c.seq)
            else:
                cmd = Command(data, ref, None, "await_consensus", f"c{c.idx}", c.seq)
            if srv.alive:
                if not srv.inbox:
                    self._push(self.rng.randint(0, 2), DRAIN, target, srv.epoch)
                srv.inbox.append(cmd)
        elif srv.alive:
            ev = ConsistentQuery(ref, _get) if c.op == "cquery" else LeaderQuery(ref, _get)
            self._push(self.rng.randint(0, 2), LOCAL, target, ev)
        self._push(CLIENT_TIMEOUT_MS, CLIENT, c.idx, ("timeout", c.op_no, c.attempts))

    def _client_reply(self, eff: Reply | ReplyError) -> None:
        to = eff.to
        if not isinstance(to, tuple) or len(to) != 2:
            return  # admin calls
        c = self.clients[to[0]]
        if c.op is None or to[1] != c.op_no:
            return
        if c.op == "poison" and (isinstance(eff, Reply) or isinstance(eff.reason, MachineError)):
            value = eff.value if isinstance(eff, Reply) else eff.reason
            if type(value) is not MachineError:
                self.inv.fail(f"a poison command was answered {value!r}, not a MachineError")
            c.op = None
            self._push(self.rng.randint(0, 10), CLIENT, c.idx, None)
        elif isinstance(eff, Reply):
            if c.op == "incr":
                self.history.complete(c.idx, c.op_no, eff.value, self.now)
            elif c.op == "cquery" and self.machine_kind == "counter":
                self.history.complete(c.idx, c.op_no, eff.value, self.now)
            elif c.op == "put":
                self.registers.put_done(c.idx, c.seq, self.now)
            elif c.op == "cquery" and isinstance(eff.value, dict):
                self.registers.read(c.invoke_ms, self.now, eff.value)
            c.target = eff.leader
            c.op = None
            self._push(self.rng.randint(0, 10), CLIENT, c.idx, None)
        else:
            if eff.reason == "not_leader":
                c.target = eff.leader
            else:
                c.target = None
            if c.op in ("cquery", "lquery"):  # reads are not retried: start the next operation
                self.history.abandon(c.idx, c.op_no)
                c.op = None
                self._push(self.rng.randint(1, 10), CLIENT, c.idx, None)
            else:
                self._push(self.rng.randint(1, 10), CLIENT, c.idx, ("retry", c.op_no, c.attempts))

    # ---- faults -------------------------------------------------------------------
    def _leader(self) -> SimServer | None:
        best = None
        for srv in self.servers.values():
            if srv.alive and srv.state.role == "leader" and (best is None or srv.state.term > best.state.term):
                best = srv
        return best

    def _fault(self) -> None:
        rng = self.rng
        r = rng.random()
        alive = [s for s in self.servers.values() if s.alive]
        dead = [s for s in self.servers.values() if not s.alive and s.log is not None]
        leader = self._leader()
        if r < 0.04:
            self._note("power cut")
            for srv in alive:
                self._crash(srv.id)
        elif r < 0.22:
            if len(dead) < (self.n - 1) // 2 + (1 if rng.random() < 0.2 else 0) and alive:
                self._crash(rng.choice(alive).id)
        elif r < 0.45:
            if dead:
                self._start(rng.choice(dead).id, fresh=False)
            if len(dead) > 1:
                self._start(rng.choice(dead).id, fresh=False)
        elif r < 0.55:
            victim = leader.id if leader is not None and rng.random() < 0.5 else rng.choice(self.ids)
            for other in self.ids:
                if other != victim:
                    self.blocked.add((victim, other))
                    if rng.random() < 0.8:
                        self.blocked.add((other, victim))
            self._note(f"partition {victim.name}")
            # each side's failure detector: a node it hears nothing from is down (a
            # one-way cut is down on one side only); followers watch their leader,
            # leaders their peers (CheckQuorum)
            for srv in alive:
                lid = srv.state.leader_id
                if srv.state.role == "leader":
                    for other in self.ids:
                        if other != srv.id and (other, srv.id) in self.blocked:
                            self._push(rng.randint(20, 80), LOCAL, srv.id, NodeDown(other.node))
                elif lid is not None and (lid, srv.id) in self.blocked:
                    self._push(rng.randint(20, 80), LOCAL, srv.id, NodeDown(lid.node))
        elif r < 0.7:
            down = sorted(self.blocked)  # sorted: a set's order varies between processes
            self.blocked.clear()
            self._note("heal")
            for a, b in down:
                if self.servers[b].alive:
                    self._push(rng.randint(1, 20), LOCAL, b, NodeUp(a.node))
        elif r < 0.8 and leader is not None:
            target = rng.choice(self.ids)
            kind: MemberKind = rng.choice(("voter", "promotable", "non_voter"))
            if target in leader.state.members and target != leader.id and rng.random() < 0.6:
                self._note(f"remove {target.name}")
                self._deliver(leader, RemoveMember("admin", target))
            elif target not in leader.state.members:
                if not self.servers[target].alive and self.servers[target].log is None:
                    self._start(target, fresh=True)
                self._note(f"add {target.name} {kind}")
                self._deliver(leader, AddMember("admin", target, kind))
        elif r < 0.88 and leader is not None:
            target = rng.choice(self.ids)
            self._note(f"transfer to {target.name}")
            self._deliver(leader, TransferLeadership("admin", target))
        elif r < 0.93 and leader is None:
            pass
        elif r < 0.97:
            self._disk_fault(rng)
        self._push(rng.randint(50, 300), FAULT, None, None)

    def _disk_fault(self, rng: random.Random) -> None:
        """Beyond crash-recovery: a server restarts with its log gone (its disk lost; the
        meta kept) or with its last term/vote record lost to damage in the meta file.
        One such server at a time: with a majority fenced nobody could be elected."""
        fenced = [s for s in self.servers.values() if s.state is not None
                  and (s.state.data_lost is not None or s.state.vote_unproven
                      or s.meta.data_lost is not None or s.meta.vote_unproven)]
        candidates = [s for s in self.servers.values() if s.log is not None and s.id in self.initial]
        if fenced or not candidates:
            return
        srv = rng.choice(candidates)
        if srv.alive:
            self._crash(srv.id)
        if rng.random() < 0.5:
            self._note(f"disk loss {srv.id.name} (durable_commit {srv.meta.durable_commit})")
            srv.log = None
            srv.machine = None
            self._start(srv.id, fresh=True)  # its initial members come from its config
            return
        self._note(f"meta damage {srv.id.name}: {srv.meta} -> {srv.meta_prev}")
        srv.meta = srv.meta_prev._replace(vote_unproven=True)
        self._start(srv.id, fresh=False)

    # ---- main loop ----------------------------------------------------------------
    def _deliver(self, srv: SimServer, event: Any) -> None:
        state = srv.state
        prev_role = state.role
        if self.trace_on:
            self._note(f"{srv.id.name} <- {_short(event)}")
        state, effects = handle(state, event)
        assert srv.executor is not None
        srv.executor.execute(effects)
        inv = self.inv
        if state.role == "leader":
            if prev_role != "leader":
                inv.new_leader(state)
            inv.leader_of_term(state)
        if state.commit_index != self.last_commit[srv.id]:
            inv.committed(state, self.last_commit[srv.id])
            self.last_commit[srv.id] = state.commit_index

    def step(self) -> bool:
        if not self.queue:
            return False
        when, _seq, kind, a, b = heapq.heappop(self.queue)
        self.now = when
        self.steps += 1
        if kind == MSG:
            srv = self.servers[a]
            if srv.alive:
                if type(b) is InstallSnapshotResult:
                    self._deliver(srv, b)
                    self._sender_result(a, b)
                else:
                    self._deliver(srv, b)
        elif kind == TIMER:
            srv = self.servers[a]
            if srv.alive and b[0] == srv.epoch and srv.executor is not None:
                event = srv.executor.timer_event(b[1], self.now)
                if event is not None:
                    self._deliver(srv, event)
        elif kind == LOGEV:
            srv = self.servers[a]
            if srv.alive and b[0] == srv.epoch:
                self._deliver(srv, LogEvent(b[1]))
        elif kind == DRAIN:
            srv = self.servers[a]
            if srv.alive and b == srv.epoch and srv.inbox:
                cmds, srv.inbox = srv.inbox, []
                skew = self.clock_skew_ms[self.ids.index(srv.id)]
                self._deliver(srv, Commands(cmds, max(0, self.now + skew)))
        elif kind == LOCAL:
            srv = self.servers[a]
            if srv.alive:
                self._deliver(srv, b)
        elif kind == CLIENT:
            c = self.clients[a]
            if b is None or (c.op is not None and b[1] == c.op_no and b[2] == c.attempts):
                if b is not None and b[0] == "timeout":
                    c.target = None
                    if c.op in ("cquery", "lquery"):
                        self.history.abandon(c.idx, c.op_no)
                        c.op = None
                self._client_step(c)
        elif kind == SENDER_TO:
            to, gen = b
            sender = self.senders.get((a, to))
            if sender is not None and sender[4] == gen:
                del self.senders[(a, to)]
                if self.servers[a].alive:
                    self._deliver(self.servers[a], SnapshotSenderFailed(to))
        elif kind == FAULT:
            self._fault()
        if self.steps % 250 == 0:
            self.check_logs()
        return True

    def check_logs(self) -> None:
        logs = [s.log for s in self.servers.values() if s.log is not None]
        self.inv.log_matching(logs)

    def run(self) -> None:
        try:
            while self.steps < self.max_steps and self.step():
                pass
            self.check_logs()
            self.history.check()
            self.registers.check()
        except Violation:
            raise
        except Exception as exc:  # a crash of the core is a finding too
            raise Violation(f"exception: {exc!r}") from exc

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "steps": self.steps, "now_ms": self.now,
            "elections": len(self.inv.leaders), "commit": max((s.state.commit_index for s in self.servers.values()
                                                              if s.state is not None), default=0),
            "acked": self.history.acked(),
        }


def _short(event: Any) -> str:
    text = repr(event)
    return text if len(text) < 160 else text[:157] + "..."


def run_seed(seed: int, servers: int = 3, steps: int = 2000, rules: Rules = RAFT_RULES,
             trace: bool = False) -> tuple[bool, str, dict[str, Any]]:
    """Run one seed.  Returns (ok, failure report, summary)."""
    machine = "kv" if seed % 4 == 3 else "counter"
    sim = Simulation(seed, servers, steps, machine, rules, trace=trace)
    try:
        sim.run()
    except Violation as v:
        report = "\n".join([f"VIOLATION seed={seed} servers={servers} steps={steps}: {v}",
                            *sim.trace[-60:],
                            *(f"  {s!r}" for s in (x.state for x in sim.servers.values()) if s is not None)])
        return False, report, sim.summary()
    return True, "", sim.summary()


def mutation_by_name(name: str | None) -> Rules:
    """The rules of ``--mutation NAME[,NAME]`` (none: Raft's own)."""
    from raft_otp.testing.mutations import rules_for
    return rules_for(name)


if __name__ == "__main__":
    from raft_otp.testing.sim_cli import main

    raise SystemExit(main())
