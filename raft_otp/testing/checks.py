"""Invariant checkers of the simulator (Raft paper Figure 3 properties plus a
linearizability check of the counter's history)."""

from __future__ import annotations

from typing import Any


class Violation(AssertionError):
    """An invariant was broken."""


class Invariants:
    """Election safety, leader completeness, committed entries never lost/changed,
    log matching.  State machine safety is checked by the recording machine."""

    def __init__(self) -> None:
        self.leaders: dict[int, Any] = {}  # term -> leader id
        self.committed_terms: dict[int, int] = {}  # index -> term of every committed entry seen
        self.max_committed = 0

    def fail(self, msg: str) -> None:
        raise Violation(msg)

    def leader_of_term(self, state: Any) -> None:
        seen = self.leaders.setdefault(state.term, state.id)
        if seen != state.id:
            self.fail(f"election safety: two leaders in term {state.term}: {seen} and {state.id}")

    def new_leader(self, state: Any) -> None:
        log = state.log
        last = log.last_index_term()[0]
        if last < self.max_committed:
            self.fail(f"leader completeness: {state.id.name} leads term {state.term} with last index "
                      f"{last} < committed {self.max_committed}")
        first = log.first_index()
        for index, term in self.committed_terms.items():
            if index >= first:
                got = log.fetch_term(index)
                if got != term:
                    self.fail(f"leader completeness: {state.id.name} (term {state.term}) has term {got} at "
                              f"committed index {index} (term {term})")

    def committed(self, state: Any, previous: int) -> None:
        log = state.log
        lo = max(previous + 1, log.first_index())
        for index in range(lo, state.commit_index + 1):
            term = log.fetch_term(index)
            if term is None:
                self.fail(f"{state.id.name} committed {index} which it does not have")
            seen = self.committed_terms.setdefault(index, term)
            if seen != term:
                self.fail(f"committed entry changed: index {index} term {seen} on one server, "
                          f"{term} committed by {state.id.name}")
        if state.commit_index > self.max_committed:
            self.max_committed = state.commit_index

    def log_matching(self, logs: list[Any]) -> None:
        """If two logs hold an entry with the same index and term, they are
        identical in all entries up to that index."""
        for i in range(len(logs)):
            for j in range(i + 1, len(logs)):
                a, b = logs[i], logs[j]
                lo = max(a.first_index(), b.first_index())
                hi = min(a.last_index_term()[0], b.last_index_term()[0])
                top = hi
                while top >= lo and a.fetch_term(top) != b.fetch_term(top):
                    top -= 1
                if top < lo:
                    continue
                ea, eb = a.fetch(lo, top), b.fetch(lo, top)
                if ea != eb:
                    for x, y in zip(ea, eb):
                        if x != y:
                            self.fail(f"log matching: entries differ at {x[0]}: {x[:2]} vs {y[:2]} below a "
                                      f"common entry at {top}")


class CounterHistory:
    """Client history of a counter: increments (reply = new value) and consistent
    reads.  Checked for linearizability with necessary conditions that are cheap:
    unique increment results; real-time order (an operation that starts after
    another completed sees a larger value, or an equal one for two reads); no
    operation observes more increments than were invoked before it completed."""

    def __init__(self) -> None:
        self.ops: dict[tuple[int, int], list[Any]] = {}  # (client, op) -> [kind, invoke, response, value]

    def invoke(self, client: int, op: int, kind: str, now: int) -> None:
        self.ops[(client, op)] = [kind, now, None, None]

    def complete(self, client: int, op: int, value: Any, now: int) -> None:
        rec = self.ops.get((client, op))
        if rec is not None and rec[2] is None:
            rec[2] = now
            rec[3] = value

    def abandon(self, client: int, op: int) -> None:
        rec = self.ops.get((client, op))
        if rec is not None and rec[2] is None and rec[0] == "read":
            del self.ops[(client, op)]

    def acked(self) -> int:
        return sum(1 for r in self.ops.values() if r[2] is not None and r[0] == "incr")

    def check(self) -> None:
        done = [r for r in self.ops.values() if r[2] is not None and isinstance(r[3], int)]
        incr_values = [r[3] for r in done if r[0] == "incr"]
        if len(set(incr_values)) != len(incr_values):
            raise Violation("linearizability: two increments returned the same value")
        # real time order: sweep by invoke time over completions sorted by response
        by_resp = sorted(done, key=lambda r: r[2])
        by_inv = sorted(done, key=lambda r: r[1])
        k, best = 0, -1
        for r in by_inv:
            while k < len(by_resp) and by_resp[k][2] < r[1]:
                best = max(best, by_resp[k][3])
                k += 1
            if r[0] == "incr" and r[3] <= best:
                raise Violation(f"linearizability: increment returned {r[3]} at {r[2]} though {best} was "
                                f"observed before it was invoked at {r[1]}")
            if r[0] == "read" and r[3] < best:
                raise Violation(f"linearizability: read returned {r[3]} at {r[2]} though {best} was "
                                f"observed before it was invoked at {r[1]} (stale read)")
        # no future: value <= increments invoked before the response
        invokes = sorted(r[1] for r in self.ops.values() if r[0] == "incr")
        import bisect

        for r in done:
            if r[3] > bisect.bisect_right(invokes, r[2]):
                raise Violation(f"linearizability: {r[0]} saw {r[3]} at {r[2]}, more increments than invoked")


class RegisterHistory:
    """Key-value history where client ``j`` writes increasing sequence numbers to
    its own key ``k{j}``.  A linearizable read of ``k{j}`` returns at least the
    newest write of ``j`` acknowledged before the read was invoked and at most the
    newest write invoked before the read returned."""

    def __init__(self) -> None:
        self.invoked: dict[int, list[tuple[int, int]]] = {}  # client -> [(time, seq)]
        self.acked: dict[int, list[tuple[int, int]]] = {}
        self.reads: list[tuple[int, int, dict[Any, Any]]] = []

    def put_invoke(self, client: int, seq: int, now: int) -> None:
        self.invoked.setdefault(client, []).append((now, seq))

    def put_done(self, client: int, seq: int, now: int) -> None:
        self.acked.setdefault(client, []).append((now, seq))

    def read(self, invoke: int, response: int, state: dict[Any, Any]) -> None:
        self.reads.append((invoke, response, state))

    def check(self) -> None:
        for invoke, response, state in self.reads:
            for client, acks in self.acked.items():
                value = state.get(f"k{client}", 0)
                floor = max((seq for t, seq in acks if t < invoke), default=0)
                if value < floor:
                    raise Violation(f"linearizability: read at {invoke}..{response} saw k{client}={value} "
                                    f"though write {floor} was acknowledged before (stale read)")
            for client, invs in self.invoked.items():
                value = state.get(f"k{client}", 0)
                ceiling = max((seq for t, seq in invs if t <= response), default=0)
                if value > ceiling:
                    raise Violation(f"linearizability: read saw k{client}={value}, never written by then")
