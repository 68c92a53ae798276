"""Goal: snapshot retries back off like RA (min(5 s * 2^(n-1), 60 s)) and restart on the peer's node_up."""

from __future__ import annotations

from raft_otp.core import effects as fx
from raft_otp.core.types import ServerId
from raft_otp.server import snapshot_retry as sr


def test_backoff_schedule() -> None:
    assert [sr.backoff_s(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]


def test_failure_waits_then_node_up_restarts(monkeypatch) -> None:
    armed: list = []
    monkeypatch.setattr(sr.timers, "send_after", lambda to, msg, d: armed.append((msg, d)) or len(armed))
    monkeypatch.setattr(sr.timers, "cancel", lambda t: None)
    down = {"n2": True}
    monkeypatch.setattr(sr._core, "node_known_down", lambda node: down[node])
    r = sr.SnapshotRetries(owner=None, local_node="n1")
    peer = ServerId("s", "n2")
    req = fx.SendSnapshot(peer, None, 3)  # type: ignore[arg-type]
    assert r.may_start(req) is False            # node down: not started, retry armed
    assert armed[-1][1] == 5
    assert r.may_start(req) is False            # backing off
    assert r.fired(armed[-1][0]) is req         # the timer fires: start again ...
    assert r.may_start(req) is False            # ... node still down: next delay doubles
    assert armed[-1][1] == 10
    down["n2"] = False
    assert r.node_up("n2") == [req]             # node_up: restart at once
    assert r.fired(armed[-1][0]) is None        # the old timer is stale
    assert r.may_start(req) is True
    r.forget(peer)
    assert r.peers == {}


def test_a_node_never_heard_from_is_tried_at_once(monkeypatch) -> None:
    """A new member's node is often one the leader never talked to: only a node the
    failure detector knows down holds a transfer back (waiting for its NodeUp cost
    the new member's election timeout: 1.4 s of a 2.35 s install of 100 MB)."""
    monkeypatch.setattr(sr.timers, "send_after", lambda to, msg, d: 1)
    monkeypatch.setattr(sr.timers, "cancel", lambda t: None)
    known_down: set[str] = set()
    monkeypatch.setattr(sr._core, "node_known_down", lambda node: node in known_down)
    monkeypatch.setattr(sr._core, "node_is_up", lambda node: False)  # never heard from
    r = sr.SnapshotRetries(owner=None, local_node="n1")
    req = fx.SendSnapshot(ServerId("s", "n4"), None, 3)  # type: ignore[arg-type]
    assert r.may_start(req) is True
    known_down.add("n4")
    r.forget(req.to)
    assert r.may_start(req) is False
