"""Linearizability checker for key-value histories (Wing & Gong search, memoised).

This is the checker the fault tests (``raft_otp.testing.nemesis``) run over the
history of a real cluster under faults.  It ports no code; the ideas are the
classic ones:

- Wing & Gong's search for a linearization: repeatedly pick, among the
  operations not yet linearized, one that may go next (no other pending
  operation completed before it was invoked), apply it to a sequential model,
  backtrack when the model rejects its result;
- Lowe's memoisation (also used by Porcupine and Knossos): a configuration
  ``(set of linearized operations as a bitmask, model state)`` is explored at
  most once;
- P-compositionality (Herlihy & Wing's locality): a key-value history is
  linearizable iff every key's sub-history is, so each key is searched alone.

Operations with an unknown outcome (``ok`` null: the client timed out) may or
may not have taken effect: they have no completion time, stay concurrent with
everything after their invocation, and need not be linearized at all.  An
unknown read constrains nothing and is dropped; an unknown write is only ever
linearized where it changes the state.  Failed operations (``ok`` false) are
known not to have taken effect and are dropped.

History file format (one JSON object a line, see ``docs/fault-testing.md``)::

    {"key": k, "f": "put"|"get"|"cas"|"delete", "value": v, "expect": e,
     "result": r, "ok": true|false|null, "invoke": s, "complete": s|null}

``result`` is the value read for a ``get`` (null when absent) and a boolean for
a ``cas`` (did it swap); it is ignored for ``put`` and ``delete``.

Run ``python -m raft_otp.testing.linearizability history.jsonl`` to check a
file: exit 0 linearizable, 1 not, 2 undecided within the search budget.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

__all__ = [
    "CheckResult",
    "KeyResult",
    "Op",
    "check_history",
    "check_key",
    "load_history",
    "main",
    "op_from_json",
]

F_PUT = "put"
F_GET = "get"
F_CAS = "cas"
F_DELETE = "delete"
FUNCTIONS = (F_PUT, F_GET, F_CAS, F_DELETE)

# Search budget per key: configurations explored before the answer is "unknown".
MAX_CONFIGURATIONS_DEFAULT = 2_000_000

_INVALID = object()  # the model rejects the operation in this state


def freeze(value: Any) -> Any:
    """A hashable copy of a JSON/msgpack value (lists -> tuples, dicts -> sorted tuples)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return ("__dict__",) + tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on one key.

    ``ok`` is True (completed, ``result`` observed), False (known not to have
    taken effect) or None (unknown outcome; ``complete`` is ignored).
    """

    key: Any
    f: str
    value: Any = None
    expect: Any = None
    result: Any = None
    ok: bool | None = True
    invoke: float = 0.0
    complete: float | None = None
    index: int = -1  # position in the original history, for reports

    def __post_init__(self) -> None:
        if self.f not in FUNCTIONS:
            raise ValueError(f"unknown operation {self.f!r} (expected one of {FUNCTIONS})")
        if self.ok is True:
            if self.complete is None:
                raise ValueError(f"completed operation without completion time: {self}")
            if self.complete < self.invoke:
                raise ValueError(f"operation completes before it is invoked: {self}")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "f": self.f, "value": self.value}
        if self.f == F_CAS:
            d["expect"] = self.expect
        d.update(result=self.result, ok=self.ok, invoke=self.invoke, complete=self.complete)
        return d


def op_from_json(d: dict[str, Any], index: int = -1) -> Op:
    """Parse one history line (extra fields such as ``client`` are ignored)."""
    ok = d.get("ok")
    if ok not in (True, False, None):
        raise ValueError(f"line {index}: 'ok' must be true, false or null, not {ok!r}")
    complete = d.get("complete")
    return Op(
        key=freeze(d["key"]),
        f=d["f"],
        value=freeze(d.get("value")),
        expect=freeze(d.get("expect")),
        result=freeze(d.get("result")),
        ok=ok,
        invoke=float(d["invoke"]),
        complete=None if complete is None else float(complete),
        index=index,
    )


def load_history(path: str) -> list[Op]:
    """Read a ``history.jsonl`` file (blank lines skipped)."""
    ops = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            line = line.strip()
            if line:
                ops.append(op_from_json(json.loads(line), index=n))
    return ops


# ---- the sequential model: one register per key ------------------------------------


def _step(state: Any, op: Op) -> Any:
    """The register's next state after ``op`` from ``state``, or ``_INVALID``.

    For an operation of unknown outcome the result is not checked, and a
    transition that would leave the state unchanged is refused: linearizing
    it is never needed (it may as well not have happened), and refusing it
    keeps the search from exploring equivalent configurations.
    """
    known = op.ok is True
    f = op.f
    if f == F_PUT:
        return op.value
    if f == F_DELETE:
        return None
    if f == F_GET:
        if not known:
            return _INVALID
        return state if op.result == state else _INVALID
    # cas
    if known:
        if bool(op.result):
            return op.value if state == op.expect else _INVALID
        return state if state != op.expect else _INVALID
    return op.value if state == op.expect else _INVALID


# ---- results -----------------------------------------------------------------------


@dataclass(slots=True)
class KeyResult:
    """Outcome of the search for one key."""

    key: Any
    linearizable: bool | None  # None: budget exhausted before an answer
    ops: int  # operations searched (after dropping failed ops and unknown reads)
    configurations: int  # distinct (linearized set, state) explored
    elapsed_s: float
    # When not linearizable: the longest linearization found, and the operations
    # that could not extend it (for the report).
    longest_prefix: list[Op] = field(default_factory=list)
    stuck_state: Any = None
    blocked: list[Op] = field(default_factory=list)

    def explain(self) -> str:
        if self.linearizable:
            return f"key {self.key!r}: linearizable ({self.ops} ops)"
        if self.linearizable is None:
            return (f"key {self.key!r}: undecided after {self.configurations} "
                    f"configurations ({self.ops} ops)")
        lines = [f"key {self.key!r}: NOT linearizable ({self.ops} ops, "
                 f"{self.configurations} configurations explored)"]
        tail = self.longest_prefix[-5:]
        lines.append(f"  longest linearization: {len(self.longest_prefix)} ops, ending with:")
        lines += [f"    {_fmt(op)}" for op in tail]
        lines.append(f"  state there: {self.stuck_state!r}; none of these can come next:")
        lines += [f"    {_fmt(op)}" for op in self.blocked[:8]]
        return "\n".join(lines)


@dataclass(slots=True)
class CheckResult:
    """Outcome of checking a whole history."""

    linearizable: bool | None
    keys: list[KeyResult]

    @property
    def violations(self) -> list[KeyResult]:
        return [k for k in self.keys if k.linearizable is False]

    def explain(self) -> str:
        bad = [k for k in self.keys if not k.linearizable]
        if not bad:
            return f"linearizable ({len(self.keys)} keys)"
        return "\n".join(k.explain() for k in bad)

    def to_json(self) -> dict[str, Any]:
        return {
            "linearizable": self.linearizable,
            "keys": len(self.keys),
            "ops": sum(k.ops for k in self.keys),
            "configurations": sum(k.configurations for k in self.keys),
            "violations": [repr(k.key) for k in self.violations],
            "undecided": [repr(k.key) for k in self.keys if k.linearizable is None],
        }


def _fmt(op: Op) -> str:
    args = {F_PUT: f"{op.value!r}", F_GET: "", F_DELETE: "",
            F_CAS: f"{op.expect!r} -> {op.value!r}"}[op.f]
    outcome = {True: f"= {op.result!r}", False: "failed", None: "unknown"}[op.ok]
    end = "…" if op.ok is not True else f"{op.complete:.6f}"
    return f"#{op.index} {op.f}({args}) {outcome}  [{op.invoke:.6f}, {end}]"


# ---- the search --------------------------------------------------------------------


def _written(op: Op) -> Any:
    """The value an operation writes (None for a delete; reads write nothing)."""
    return None if op.f == F_DELETE else op.value


def _relevant(ops: Iterable[Op]) -> list[Op]:
    """Drop what cannot matter: failed operations and reads of unknown outcome."""
    return [op for op in ops if op.ok is True or (op.ok is None and op.f != F_GET)]


def check_key(ops: Iterable[Op], initial: Any = None, *,
              max_configurations: int = MAX_CONFIGURATIONS_DEFAULT) -> KeyResult:
    """Search a linearization of the operations on one key (a register from ``initial``).

    A configuration is ``(R, state, U)``: R the completed operations linearized
    (bit r = the r-th to complete), U the unknown-outcome writes linearized.
    The search is depth first; every configuration is entered at most once, and
    more: ``(R, state, U)`` is skipped when some ``(R, state, U')`` with
    ``U' ⊆ U`` was already entered, because having more unknown writes still
    available can only allow more continuations.  Without that subsumption a
    few dozen timed-out writes make the search exponential.
    """
    t0 = time.monotonic()
    ops = _relevant(ops)
    key = ops[0].key if ops else None
    # Completed operations, numbered by completion time: the lowest unset bit of R
    # is the pending operation that completes first; nothing invoked after that
    # completion may be linearized before it.
    req = sorted((op for op in ops if op.ok is True), key=lambda op: (op.complete, op.invoke))
    # Unknown writes whose value no operation observes (no read returned it, no
    # cas expects it) are interchangeable "junk": linearizing one only ever helps
    # a completed cas that failed while the state equalled its expected value.
    # They are tried only then, and only the first that applies.
    observed = {op.result for op in req if op.f == F_GET}
    observed.update(op.expect for op in ops if op.f == F_CAS)
    unk_all = sorted((op for op in ops if op.ok is not True), key=lambda op: op.invoke)
    unk = [op for op in unk_all if _written(op) in observed]
    junk = [op for op in unk_all if _written(op) not in observed]
    n_req, n_unk, n_junk = len(req), len(unk), len(junk)
    req_inv = [op.invoke for op in req]
    req_cmp = [math.inf if op.complete is None else op.complete for op in req]
    by_inv = sorted(range(n_req), key=lambda r: (req_inv[r], r))
    unk_inv = [op.invoke for op in unk]
    junk_inv = [op.invoke for op in junk]
    failed_cas = [op.f == F_CAS and not op.result for op in req]
    read_only = [op.f == F_GET or (op.f == F_CAS and not op.result) for op in req]
    full = (1 << n_req) - 1
    junk_base = n_unk  # junk writes use the U bits above the observed unknown ones
    unk_and_junk = unk + junk

    def successors(r_mask: int, u_mask: int, state: Any, lo_i: int
                   ) -> Iterator[tuple[int, int, Any]]:
        first = (~r_mask & (r_mask + 1)).bit_length() - 1  # lowest unset bit
        min_complete = req_cmp[first]
        window = []
        for k in range(lo_i, n_req):
            r = by_inv[k]
            if req_inv[r] > min_complete:
                break
            if not (r_mask >> r) & 1:
                window.append(r)
        window.sort()
        # A completed read (a get, or a cas that failed) that agrees with the state
        # goes next without branching: any linearization from here can be
        # rearranged to take it first, since it is ready and changes nothing.
        for r in window:
            if read_only[r] and _step(state, req[r]) is not _INVALID:
                yield r_mask | (1 << r), u_mask, state
                return
        for r in window:
            nxt = _step(state, req[r])
            if nxt is not _INVALID:
                yield r_mask | (1 << r), u_mask, nxt
        for u in range(n_unk):
            if unk_inv[u] > min_complete:
                break
            if not (u_mask >> u) & 1:
                nxt = _step(state, unk[u])
                if nxt is not _INVALID:
                    yield r_mask, u_mask | (1 << u), nxt
        if n_junk and any(failed_cas[r] and req[r].expect == state for r in window):
            for j in range(n_junk):
                if junk_inv[j] > min_complete:
                    break
                bit = 1 << (junk_base + j)
                if not u_mask & bit:
                    nxt = _step(state, junk[j])
                    if nxt is not _INVALID:
                        yield r_mask, u_mask | bit, nxt
                        break

    def advance(r_mask: int, lo_i: int) -> int:
        while lo_i < n_req and (r_mask >> by_inv[lo_i]) & 1:
            lo_i += 1
        return lo_i

    # (R, state) -> the U sets entered with it (kept free of supersets).
    seen: dict[tuple[int, Any], list[int]] = {}
    entered = 0

    def enter(r_mask: int, u_mask: int, state: Any) -> bool:
        nonlocal entered
        conf = (r_mask, state)
        lst = seen.get(conf)
        if lst is None:
            seen[conf] = [u_mask]
        else:
            for u in lst:
                if u & ~u_mask == 0:
                    return False  # subsumed
            lst[:] = [u for u in lst if u_mask & ~u != 0]
            lst.append(u_mask)
        entered += 1
        return True

    result: bool | None = True if n_req == 0 else None
    path: list[Op] = []
    best: tuple[list[Op], Any, int] = ([], initial, 0)
    best_done = -1
    stack = [(0, 0, initial, advance(0, 0), successors(0, 0, initial, 0))]
    while stack and result is None:
        r_mask, u_mask, state, lo_i, it = stack[-1]
        for nr, nu, nxt in it:
            if not enter(nr, nu, nxt):
                continue
            path.append(req[(nr ^ r_mask).bit_length() - 1] if nr != r_mask
                        else unk_and_junk[(nu ^ u_mask).bit_length() - 1])
            if nr == full:
                result = True
                break
            done = nr.bit_count()
            if done > best_done:
                best, best_done = (list(path), nxt, nr), done
            if entered >= max_configurations:
                stack.clear()
                break
            n_lo = advance(nr, lo_i)
            stack.append((nr, nu, nxt, n_lo, successors(nr, nu, nxt, n_lo)))
            break
        else:
            stack.pop()
            if path:
                path.pop()
    if result is None and entered < max_configurations:
        result = False
    out = KeyResult(key=key, linearizable=result, ops=len(ops), configurations=entered,
                    elapsed_s=time.monotonic() - t0)
    if result is False:
        prefix, state, r_mask = best
        out.longest_prefix = prefix
        out.stuck_state = state
        out.blocked = [req[r] for r in range(n_req) if not (r_mask >> r) & 1]
    return out


def check_history(ops: Iterable[Op], *,
                  max_configurations: int = MAX_CONFIGURATIONS_DEFAULT) -> CheckResult:
    """Check a key-value history key by key (every key starts absent)."""
    by_key: dict[Any, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    results = [check_key(k_ops, None, max_configurations=max_configurations)
               for _, k_ops in sorted(by_key.items(), key=lambda kv: repr(kv[0]))]
    if any(r.linearizable is False for r in results):
        verdict: bool | None = False
    elif any(r.linearizable is None for r in results):
        verdict = None
    else:
        verdict = True
    return CheckResult(linearizable=verdict, keys=results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raft_otp.testing.linearizability",
        description="Check a key-value history (JSON lines) for linearizability.")
    parser.add_argument("history", help="history.jsonl, one operation a line")
    parser.add_argument("--max-configurations", type=int, default=MAX_CONFIGURATIONS_DEFAULT,
                        help="search budget per key (default %(default)s)")
    args = parser.parse_args(argv)
    result = check_history(load_history(args.history),
                           max_configurations=args.max_configurations)
    if not result.linearizable:
        print(result.explain(), file=sys.stderr)
    print(json.dumps(result.to_json()))
    return {True: 0, False: 1, None: 2}[result.linearizable]


if __name__ == "__main__":
    sys.exit(main())
