"""Goal: the linearizability checker accepts exactly the linearizable key-value histories."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raft_otp.testing.linearizability import (
    Op,
    check_history,
    check_key,
    load_history,
    main,
)


def put(v, t0, t1, ok=True, key="k", result=None):
    return Op(key=key, f="put", value=v, result=result, ok=ok, invoke=t0,
              complete=t1 if ok is not None else None)


def get(r, t0, t1, ok=True, key="k"):
    return Op(key=key, f="get", result=r, ok=ok, invoke=t0,
              complete=t1 if ok is not None else None)


def cas(e, v, r, t0, t1, ok=True, key="k"):
    return Op(key=key, f="cas", expect=e, value=v, result=r, ok=ok, invoke=t0,
              complete=t1 if ok is not None else None)


def delete(t0, t1, ok=True, key="k"):
    return Op(key=key, f="delete", ok=ok, invoke=t0, complete=t1 if ok is not None else None)


def lin(*ops):
    return check_history(list(ops)).linearizable


# ---- known-good and known-bad histories ---------------------------------------------


def test_empty_history_is_linearizable():
    assert lin() is True


def test_read_of_absent_key_is_none():
    assert lin(get(None, 0, 1)) is True
    assert lin(get(1, 0, 1)) is False


def test_sequential_put_then_get():
    assert lin(put(1, 0, 1), get(1, 2, 3)) is True
    assert lin(put(1, 0, 1), get(None, 2, 3)) is False  # stale read after an acked put


def test_concurrent_read_may_see_either_value():
    assert lin(put(1, 0, 1), put(2, 2, 5), get(1, 3, 4)) is True
    assert lin(put(1, 0, 1), put(2, 2, 5), get(2, 3, 4)) is True
    assert lin(put(1, 0, 1), put(2, 2, 5), get(3, 3, 4)) is False


def test_reads_may_not_go_back_in_time():
    # Both reads overlap the write, but the second starts after the first saw 2.
    assert lin(put(1, 0, 1), put(2, 2, 10), get(2, 3, 4), get(1, 5, 6)) is False
    assert lin(put(1, 0, 1), put(2, 2, 10), get(1, 3, 4), get(2, 5, 6)) is True


def test_cas_semantics():
    assert lin(put(1, 0, 1), cas(1, 2, True, 2, 3), get(2, 4, 5)) is True
    assert lin(put(1, 0, 1), cas(1, 2, False, 2, 3)) is False  # must have swapped
    assert lin(put(1, 0, 1), cas(3, 2, True, 2, 3)) is False  # cannot have swapped
    assert lin(put(1, 0, 1), cas(3, 2, False, 2, 3), get(1, 4, 5)) is True
    # Two concurrent cas from the same value: only one may win.
    assert lin(put(1, 0, 1), cas(1, 2, True, 2, 4), cas(1, 3, True, 2, 4)) is False
    assert lin(put(1, 0, 1), cas(1, 2, True, 2, 4), cas(1, 3, False, 2, 4)) is True


def test_delete():
    assert lin(put(1, 0, 1), delete(2, 3), get(None, 4, 5)) is True
    assert lin(put(1, 0, 1), delete(2, 3), get(1, 4, 5)) is False


def test_failed_operation_never_took_effect():
    assert lin(put(1, 0, 1, ok=False), get(None, 2, 3)) is True
    assert lin(put(1, 0, 1, ok=False), get(1, 2, 3)) is False


def test_unknown_write_may_or_may_not_take_effect_any_time_later():
    assert lin(put(1, 0, None, ok=None), get(None, 2, 3)) is True
    assert lin(put(1, 0, None, ok=None), get(1, 2, 3)) is True
    # ... even long after the client gave up on it, and after a later read missed it.
    assert lin(put(1, 0, None, ok=None), get(None, 5, 6), get(1, 100, 101)) is True
    # But only once: after another value, it cannot come back without being re-written.
    assert lin(put(1, 0, None, ok=None), get(1, 2, 3), put(2, 4, 5), get(1, 6, 7)) is False
    # And never before its invocation.
    assert lin(get(1, 0, 1), put(1, 2, None, ok=None)) is False


def test_unknown_cas_and_delete():
    assert lin(put(1, 0, 1), cas(1, 2, None, 2, None, ok=None), get(2, 5, 6)) is True
    assert lin(put(1, 0, 1), cas(3, 2, None, 2, None, ok=None), get(2, 5, 6)) is False
    assert lin(put(1, 0, 1), delete(2, None, ok=None), get(None, 5, 6), get(None, 7, 8)) is True


def test_unknown_read_is_ignored():
    assert lin(put(1, 0, 1), get(None, 2, None, ok=None)) is True


def test_keys_are_independent():
    h = [put(1, 0, 1, key="a"), put(2, 0, 1, key="b"), get(1, 2, 3, key="a"),
         get(2, 2, 3, key="b")]
    assert lin(*h) is True
    h.append(get(1, 4, 5, key="b"))
    result = check_history(h)
    assert result.linearizable is False
    assert [k.key for k in result.violations] == ["b"]
    assert "NOT linearizable" in result.explain()


def test_equal_timestamps_count_as_concurrent():
    assert lin(put(1, 0, 2), get(None, 2, 3)) is True


def test_budget_exhaustion_is_undecided():
    # Many concurrent writes and a read nobody can explain: every order is tried.
    ops = [put(i, 0, 10) for i in range(1, 11)]
    ops.append(get(99, 11, 12))
    r = check_key(ops, max_configurations=500)
    assert r.linearizable is None
    assert "undecided" in r.explain()
    full = check_key(ops)
    assert full.linearizable is False
    assert full.configurations > 500


def test_rejects_malformed_operations():
    import pytest
    with pytest.raises(ValueError):
        Op(key="k", f="incr")
    with pytest.raises(ValueError):
        Op(key="k", f="get", ok=True, invoke=1.0, complete=None)
    with pytest.raises(ValueError):
        Op(key="k", f="get", ok=True, invoke=2.0, complete=1.0)


# ---- a brute-force oracle for small histories ---------------------------------------


def brute_force(ops: list[Op]) -> bool:
    """Try every subset of unknown writes and every real-time-respecting order."""
    definite = [op for op in ops if op.ok is True]
    unknown = [op for op in ops if op.ok is None and op.f != "get"]
    for r in range(len(unknown) + 1):
        for extra in itertools.combinations(unknown, r):
            chosen = definite + list(extra)
            for order in itertools.permutations(chosen):
                if _respects_real_time(order) and _legal(order):
                    return True
    return False


def _respects_real_time(order) -> bool:
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1:]:
            if b.ok is True and b.complete < a.invoke:
                return False
    return True


def _legal(order) -> bool:
    state = None
    for op in order:
        known = op.ok is True
        if op.f == "put":
            state = op.value
        elif op.f == "delete":
            state = None
        elif op.f == "get":
            if op.result != state:
                return False
        else:
            swapped = state == op.expect
            if known and bool(op.result) != swapped:
                return False
            if swapped:
                state = op.value
    return True


@st.composite
def small_histories(draw):
    n = draw(st.integers(0, 6))
    ops = []
    for _ in range(n):
        f = draw(st.sampled_from(["put", "get", "cas", "delete"]))
        t0 = draw(st.integers(0, 8))
        t1 = t0 + draw(st.integers(0, 5))
        ok = draw(st.sampled_from([True, True, True, None, False]))
        val = draw(st.sampled_from([1, 2, 3]))
        exp = draw(st.sampled_from([None, 1, 2, 3]))
        res = draw(st.sampled_from([None, 1, 2, 3])) if f == "get" else (
            draw(st.booleans()) if f == "cas" else None)
        ops.append(Op(key="k", f=f, value=val if f in ("put", "cas") else None,
                      expect=exp if f == "cas" else None, result=res if ok else None,
                      ok=ok, invoke=float(t0), complete=float(t1) if ok is not None else None))
    return ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_histories())
def test_agrees_with_brute_force_on_small_histories(ops):
    assert check_key(ops).linearizable is brute_force(ops)


# ---- histories generated from a sequential execution --------------------------------


@st.composite
def sequential_histories(draw, overlap=True, unknown=True):
    """Run random ops one after the other on a dict; give each op an interval that
    contains its linearization point (time 10*i).  Always linearizable."""
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    store: dict[str, int] = {}
    ops = []
    counter = itertools.count(1)
    for i in range(n):
        key = draw(st.sampled_from(keys))
        f = draw(st.sampled_from(["put", "get", "cas", "cas", "delete"]))
        cur = store.get(key)
        point = 10.0 * i
        t0 = point - (draw(st.floats(0, 25)) if overlap else 1.0)
        t1 = point + (draw(st.floats(0, 25)) if overlap else 1.0)
        outcome = draw(st.sampled_from(["ok"] * 6 + (["unknown", "failed"] if unknown else [])))
        value = expect = result = None
        if f == "put":
            value = next(counter)
        elif f == "cas":
            value = next(counter)
            expect = cur if draw(st.booleans()) else draw(st.sampled_from([None, 1, 2, 3]))
        if outcome == "failed":  # never took effect: the store does not change
            ops.append(Op(key=key, f=f, value=value, expect=expect, ok=False,
                          invoke=t0, complete=t1))
            continue
        if f == "put":
            store[key] = value
        elif f == "delete":
            store.pop(key, None)
        elif f == "get":
            result = cur
        else:
            result = cur == expect
            if result:
                store[key] = value
        if outcome == "unknown":
            ops.append(Op(key=key, f=f, value=value, expect=expect, ok=None, invoke=t0))
        else:
            ops.append(Op(key=key, f=f, value=value, expect=expect, result=result, ok=True,
                          invoke=t0, complete=t1))
    return ops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories())
def test_histories_from_a_sequential_execution_are_linearizable(ops):
    result = check_history(ops)
    assert result.linearizable is True, result.explain()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories(overlap=False, unknown=False), st.data())
def test_mutated_sequential_histories_are_not_linearizable(ops, data):
    """Without overlap the real-time order is total, so changing any observed result
    (a read's value, a cas's verdict) cannot be explained."""
    observed = [i for i, op in enumerate(ops) if op.ok is True and op.f in ("get", "cas")]
    if not observed:
        return
    i = data.draw(st.sampled_from(observed))
    op = ops[i]
    if op.f == "get":
        wrong = data.draw(st.sampled_from([None, -1, 1, 2, 3, 4]).filter(lambda v: v != op.result))
    else:
        wrong = not op.result
    ops[i] = Op(key=op.key, f=op.f, value=op.value, expect=op.expect, result=wrong, ok=True,
                invoke=op.invoke, complete=op.complete)
    assert check_history(ops).linearizable is False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequential_histories(overlap=False, unknown=False), st.data())
def test_lost_acknowledged_write_is_detected(ops, data):
    """Drop an acknowledged put that a later read observed: that read is unexplained
    (values are unique, so no other write could have produced it)."""
    seen_later = {(op.key, op.result) for op in ops if op.f == "get" and op.ok is True}
    puts = [i for i, op in enumerate(ops)
            if op.f == "put" and op.ok is True and (op.key, op.value) in seen_later]
    if not puts:
        return
    i = data.draw(st.sampled_from(puts))
    op = ops[i]
    ops[i] = Op(key=op.key, f=op.f, value=op.value, ok=False, invoke=op.invoke,
                complete=op.complete)
    assert check_history(ops).linearizable is False


def client_history(n_clients, per_client, seed, p_unknown=0.03, p_slow=0.05):
    """Clients doing one op at a time on one key; each op takes effect at a random
    point of its interval (some intervals long, as during a fault)."""
    rng = random.Random(seed)
    raw = []
    values = itertools.count(1)
    for _ in range(n_clients):
        t = rng.uniform(0, 1)
        for _ in range(per_client):
            latency = rng.uniform(0.5, 2) if rng.random() > p_slow else rng.uniform(5, 50)
            t0, t1 = t, t + latency
            raw.append((rng.uniform(t0, t1), t0, t1, rng.choice(["put", "get", "cas"]),
                        next(values), rng.random() < p_unknown, rng.random()))
            t = t1 + rng.uniform(0, 0.5)
    raw.sort()
    store, written, ops = None, [None], []
    for _, t0, t1, f, v, unknown, coin in raw:
        ok = None if unknown else True
        if f == "put":
            store = v
            written.append(v)
            ops.append(put(v, t0, t1, ok=ok))
        elif f == "get":
            ops.append(get(store, t0, t1))
        else:
            e = store if coin < 0.5 else written[-min(len(written), 3)]
            swapped = store == e
            if swapped:
                store = v
                written.append(v)
            ops.append(cas(e, v, swapped if ok else None, t0, t1, ok=ok))
    return ops


def test_long_concurrent_history_with_timeouts_is_checked_quickly():
    ops = client_history(n_clients=6, per_client=500, seed=3)
    result = check_history(ops)
    assert result.linearizable is True
    assert result.keys[0].configurations < 200_000


def test_violation_in_a_long_history_is_found():
    ops = client_history(n_clients=6, per_client=200, seed=4, p_unknown=0)
    # A read late in the history returns a value written long before (stale read).
    late = [i for i, op in enumerate(ops) if op.f == "get" and op.invoke > ops[-1].invoke - 20]
    first_put = next(op for op in ops if op.f == "put")
    op = ops[late[0]]
    ops[late[0]] = get(first_put.value, op.invoke, op.complete)
    result = check_history(ops)
    assert result.linearizable is False
    assert "NOT linearizable" in result.explain()


# ---- the file format and the command line -------------------------------------------


def _write(path, ops):
    with open(path, "w") as fh:
        for op in ops:
            fh.write(json.dumps(op.to_json()) + "\n")


def test_history_file_round_trip(tmp_path):
    ops = [put(1, 0.5, 1.5), get(1, 2.0, 3.0), cas(1, 2, True, 4, 5),
           put([1, "x"], 6, None, ok=None), delete(7, 8, ok=False)]
    _write(tmp_path / "h.jsonl", ops)
    loaded = load_history(str(tmp_path / "h.jsonl"))
    assert [(o.f, o.ok, o.result) for o in loaded] == [(o.f, o.ok, o.result) for o in ops]
    assert loaded[3].value == (1, "x")  # lists are frozen to be hashable


def test_cli_exit_codes(tmp_path, capsys):
    _write(tmp_path / "good.jsonl", [put(1, 0, 1), get(1, 2, 3)])
    _write(tmp_path / "bad.jsonl", [put(1, 0, 1), get(2, 2, 3)])
    assert main([str(tmp_path / "good.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["linearizable"] is True
    assert main([str(tmp_path / "bad.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "NOT linearizable" in captured.err
    proc = subprocess.run([sys.executable, "-m", "raft_otp.testing.linearizability",
                           str(tmp_path / "bad.jsonl")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert json.loads(proc.stdout.strip().splitlines()[-1])["linearizable"] is False
