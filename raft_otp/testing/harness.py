"""Small helpers for unit tests of the core: build a server over a ``MemoryLog``,
feed events, make the WAL report everything written, find effects by type."""

from __future__ import annotations

import random
from typing import Any, Iterable, TypeVar

from raft_otp.core import ServerConfig, ServerMeta, handle, init_server
from raft_otp.core import entries as enc
from raft_otp.core.events import LeaderDown, LogEvent
from raft_otp.core.machine import Machine
from raft_otp.core.memlog import MemoryLog
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.core.state import ServerState
from raft_otp.core.types import Entry, ServerId
from raft_otp.machines import Counter

T = TypeVar("T")


def sid(name: str) -> ServerId:
    return ServerId(name, f"node_{name}")


class Node:
    """One core server with its memory log and the log events it posted (``rules``:
    broken ones from ``raft_otp.testing.mutations.rules_for`` to test a mutation)."""

    def __init__(self, name: str, members: Iterable[str], *, entries: Iterable[tuple[int, Any]] = (),
                 term: int = 0, voted_for: str | None = None, machine: Machine | None = None,
                 rules: Rules = RAFT_RULES, batch: int = 128, pipeline: int = 4096,
                 seed: int = 1, commit_notify_delay_ms: int = 5) -> None:
        self.posted: list[object] = []
        self.log = MemoryLog(self.posted.append)
        index = 0
        batch_entries: list[Entry] = []
        for t, command in entries:  # (term, command) pairs; command None = noop
            index += 1
            data = enc.encode_noop(0) if command is None else enc.encode_usr(command, 0)
            batch_entries.append((index, t, data))
        if batch_entries:
            self.log.write(batch_entries)
            self.flush_quiet()
        self.id = sid(name)
        cfg = ServerConfig(self.id, "test", tuple(sid(m) for m in members), None,
                           max_append_entries_rpc_batch_size=batch, max_pipeline_count=pipeline,
                           commit_notify_delay_ms=commit_notify_delay_ms,
                           rules=rules)
        self.cfg = cfg
        self.machine = machine or Counter()
        self.meta = ServerMeta(term, sid(voted_for) if voted_for else None, 0)
        self.seed = seed
        self.state, self.init_effects = init_server(cfg, self.log, self.machine, self.meta,
                                                    random.Random(seed))

    def restart(self, crash: bool = True) -> list[Any]:
        """Crash (losing what was not durable) and recover from log and meta."""
        if crash:
            self.log.crash()
            self.posted.clear()
        self.state, effects = init_server(self.cfg, self.log, self.machine, self.meta, random.Random(self.seed))
        return effects

    def flush_quiet(self) -> None:
        while self.posted:
            self.log.handle_event(self.posted.pop(0))

    def __call__(self, event: object) -> list[Any]:
        from raft_otp.core.effects import PersistLastApplied, PersistMeta

        self.state, effects = handle(self.state, event)  # type: ignore[arg-type]
        for e in effects:
            if isinstance(e, PersistMeta):
                self.meta = self.meta._replace(term=e.term, voted_for=e.voted_for)
            elif isinstance(e, PersistLastApplied):
                self.meta = self.meta._replace(last_applied=e.index)
        return effects

    def written(self) -> list[Any]:
        """Deliver every pending log event (the WAL synced); returns the effects."""
        out: list[Any] = []
        while self.posted:
            out += self(LogEvent(self.posted.pop(0)))
        return out

    @property
    def s(self) -> ServerState:
        return self.state


def of(effects: list[Any], kind: type[T]) -> list[T]:
    return [e for e in effects if isinstance(e, kind)]


def sent(effects: list[Any], kind: type[T] | None = None) -> list[tuple[ServerId, Any]]:
    """Every (to, rpc) in SendRpc/SendRpcs effects, optionally of one RPC type."""
    from raft_otp.core.effects import SendRpc, SendRpcs

    out: list[tuple[ServerId, Any]] = []
    for e in effects:
        if isinstance(e, SendRpc):
            out.append((e.to, e.rpc))
        elif isinstance(e, SendRpcs):
            out += list(e.sends)
    return [(to, rpc) for to, rpc in out if kind is None or isinstance(rpc, kind)]


class Net:
    """Manual message routing between harness nodes for scripted scenarios.

    ``pump(allow)`` delivers queued RPCs (and WAL events, every node syncing
    promptly) until nothing moves; ``allow(frm, to, rpc)`` decides which RPCs the
    network carries (the others are dropped)."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.by_id = {n.id: n for n in nodes.values()}
        self.down: set[str] = set()
        self.queue: list[tuple[ServerId, ServerId, Any]] = []

    def feed(self, name: str, event: object) -> list[Any]:
        node = self.nodes[name]
        effects = node(event)
        self.queue += [(node.id, to, rpc) for to, rpc in sent(effects)]
        return effects

    def pump(self, allow: Any = lambda frm, to, rpc: True, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            moved = False
            for name, node in self.nodes.items():
                if name not in self.down and node.posted:
                    while node.posted:
                        self.feed(name, LogEvent(node.posted.pop(0)))
                    moved = True
            if self.queue:
                queue, self.queue = self.queue, []
                for frm, to, rpc in queue:
                    if to.name not in self.down and frm.name not in self.down and allow(frm, to, rpc):
                        self.feed(to.name, rpc)
                        moved = True
            if not moved:
                return
        raise AssertionError("network did not settle")

    def crash(self, name: str) -> None:
        """Crash ``name``; like the server actor's monitor of its leader, every node
        that followed it gets ``LeaderDown`` (leader stickiness relies on it)."""
        self.down.add(name)
        self.nodes[name].log.crash()
        self.nodes[name].posted.clear()
        crashed = self.nodes[name].id
        for other, node in self.nodes.items():
            if other not in self.down and node.s.leader_id == crashed:
                self.feed(other, LeaderDown(crashed))

    def restart(self, name: str) -> None:
        self.down.discard(name)
        self.nodes[name].restart(crash=False)


def usr(index: int, term: int, cmd: object = ("incr",)) -> Entry:
    """A user-command entry as a leader would encode it."""
    return (index, term, enc.encode_usr(list(cmd), 0))  # type: ignore[call-overload]


def elect(node: Node, voter: str = "b") -> list[Any]:
    """Drive ``node`` through pre-vote and vote to leader with ``voter``'s votes
    (enough for a three-member cluster)."""
    from raft_otp.core.events import ElectionTimeout, PreVoteResult, PreVoteRpc, RequestVoteResult

    eff = node(ElectionTimeout())
    pv = sent(eff, PreVoteRpc)[0][1]
    eff = node(PreVoteResult(node.s.term, pv.token, sid(voter), True))
    assert node.s.role == "candidate"
    eff += node(RequestVoteResult(node.s.term, sid(voter), True))
    assert node.s.role == "leader"
    return eff
