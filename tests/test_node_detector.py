"""Goal: the failure detector turns silence into node_down and a new creation into down+up."""

from __future__ import annotations

from raft_otp.node.detector import DOWN, UP, FailureDetector


def test_up_on_first_frame_down_after_missed_intervals() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=3)
    assert fd.heard("b", 1, now_s=0.0) == [(UP, "b")]
    assert fd.heard("b", 1, now_s=0.1) == []
    assert fd.check(0.35) == []
    assert fd.check(0.41) == [(DOWN, "b")]
    assert fd.check(0.5) == []           # reported once
    assert not fd.is_up("b")
    assert fd.heard("b", 1, now_s=0.6) == [(UP, "b")]


def test_restart_with_new_creation_is_down_then_up() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=3)
    fd.heard("b", 1, 0.0)
    assert fd.heard("b", 2, 0.05) == [(DOWN, "b"), (UP, "b")]


def test_tracked_but_never_heard_is_silent_after_timeout_without_events() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=2)
    fd.track("c", 0.0)
    assert not fd.silent_too_long("c", 0.1)
    assert fd.silent_too_long("c", 0.25)
    assert fd.nodes_up() == [] and fd.known() == ["c"]


def test_lost_connection_is_down_at_once_and_calls_fail_fast() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=5)
    fd.heard("b", 1, 0.0)
    assert fd.lost("b", 0.01) == [(DOWN, "b")]
    assert fd.silent_too_long("b", 0.02)
    assert fd.lost("b", 0.03) == []
    assert fd.heard("b", 2, 0.04) == [(UP, "b")]


def test_never_heard_peer_is_reported_unreachable_once() -> None:
    from raft_otp.node.detector import UNREACHABLE

    fd = FailureDetector(interval_ms=100, down_after_missed=2)
    fd.track("c", 0.0)
    assert fd.check(0.1) == []
    assert fd.check(0.25) == [(UNREACHABLE, "c")]
    assert fd.check(0.5) == []


def test_own_stall_is_not_counted_as_missed_heartbeats() -> None:
    # the detector's own thread was starved 0.1 -> 1.0 s: its peers are not to blame
    fd = FailureDetector(interval_ms=100, down_after_missed=3)
    fd.heard("b", 1, now_s=0.0)
    fd.track("c", 0.0)
    assert fd.check(0.1) == []
    assert fd.check(1.0) == []  # a gap of 9 intervals since the previous check
    assert fd.is_up("b") and not fd.silent_too_long("c", 1.0)
    assert fd.heard("b", 1, now_s=1.01) == []  # its queued heartbeat is read after the stall
    assert fd.check(1.1) == [] and fd.is_up("b")


def test_a_really_silent_peer_is_still_declared_down_after_a_stall() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=3)
    fd.heard("b", 1, now_s=0.0)
    assert fd.check(0.1) == []
    assert fd.check(1.0) == []  # stall discounted: 1 interval missed before it
    events: list[tuple[str, str]] = []
    now = 1.0
    while not events and now < 2.0:
        now = round(now + 0.1, 3)
        events = fd.check(now)
    assert events == [(DOWN, "b")] and now <= 1.0 + 0.3 + 1e-9


def test_regular_checks_are_not_a_stall() -> None:
    fd = FailureDetector(interval_ms=100, down_after_missed=3)
    fd.heard("b", 1, now_s=0.0)
    assert [fd.check(t / 10) for t in range(1, 4)] == [[], [], []]
    assert fd.check(0.41) == [(DOWN, "b")]  # checks 1.1 intervals apart: no discount
