"""Goal: the built-in Counter and KeyValue machines answer each command as documented and snapshot via release_cursor."""

from __future__ import annotations

import pytest

from raft_otp.core.machine import ApplyMeta, ReleaseCursor
from raft_otp.machines import Counter, KeyValue


def meta(i: int) -> ApplyMeta:
    return ApplyMeta(i, 1, 0, 0)


def test_counter() -> None:
    m = Counter()
    s = m.init(None)
    s, r = m.apply(meta(1), ["incr"], s)
    assert (s, r) == (1, 1)
    s, r = m.apply(meta(2), ["incr", 5], s)
    assert (s, r) == (6, 6)
    assert m.apply(meta(3), ["get"], s) == (6, 6)
    for bad in (["nope"], ["incr", "x"], ["incr", 1, 2], "incr", None):
        with pytest.raises(ValueError):
            m.apply(meta(4), bad, s)


def test_counter_release_cursor() -> None:
    m = Counter({"release_cursor_every": 2})
    out = m.apply(meta(2), ["incr"], 0)
    assert out[2] == [ReleaseCursor(2, 1)]


def test_kv_commands_and_replies() -> None:
    m = KeyValue({"release_cursor_every": 0})
    s = m.init(None)
    s, r = m.apply(meta(1), ["put", "k", {"a": 1}], s)
    assert r == ["ok"]
    assert m.apply(meta(2), ["get", "k"], s)[1] == ["ok", {"a": 1}]
    assert m.apply(meta(3), ["get", "x"], s)[1] == ["not_found"]
    s2, r = m.apply(meta(4), ["cas", "k", {"a": 2}, 3], s)
    assert r == [False, {"a": 1}] and s2 is s
    s, r = m.apply(meta(5), ["cas", "k", {"a": 1}, 3], s)
    assert r == [True, 3]
    s, r = m.apply(meta(6), ["cas", "new", None, 1], s)
    assert r == [True, 1]
    s, r = m.apply(meta(7), ["delete", "k"], s)
    assert r == ["ok"] and "k" not in s


def test_kv_state_is_never_mutated_in_place() -> None:
    m = KeyValue({"release_cursor_every": 1})
    s0 = m.init(None)
    s1, _r, effects = m.apply(meta(1), ["put", "a", 1], s0)
    assert s0 == {} and effects == [ReleaseCursor(1, s1)]
    m.apply(meta(2), ["put", "a", 2], s1)
    assert s1 == {"a": 1}


def test_kv_snapshot_roundtrip() -> None:
    m = KeyValue()
    state = {"a": [1, 2], "b": b"x"}
    assert m.snapshot_decode(m.snapshot_encode(state)) == state


def test_kv_refuses_malformed_commands_with_a_message() -> None:
    m = KeyValue()
    s = m.init(None)
    cases = [(["put"], "takes 2 argument"), (["frobnicate", "a"], "unknown command"),
             ([], "a command is a list"), (["get", ["k"]], "a key must be")]
    for cmd, words in cases:
        with pytest.raises(ValueError, match=words):
            m.apply(meta(1), cmd, s)
