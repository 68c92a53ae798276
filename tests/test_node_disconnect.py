"""Goal: a closed connection makes a peer node_down at once (down_on_disconnect),
long before the silence detector would, and it does so again after a restart.

The silence detector is set to 20 s here, so only the transport's connection
monitor can produce a verdict within the few seconds each kill is given."""

from __future__ import annotations

import time

import pytest

from raft_otp import node as N
from raft_otp.node.testing import NodeProcess, free_port

pytestmark = pytest.mark.processes

COOKIE = "test-cookie-disc"
HEARTBEAT_MS = 100.0
SILENCE_DOWN_AFTER = 200  # 20 s of silence: far beyond what each kill waits
MONITOR_S = 5.0           # generous for 2 busy cores; still a quarter of the silence verdict


@pytest.fixture
def victim(tmp_path):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(COOKIE + "\n")
    proc = NodeProcess("v", str(cookie_file), heartbeat_ms=HEARTBEAT_MS,
                       down_after=SILENCE_DOWN_AFTER)
    try:
        proc.start()
        N.start_node(f"d@127.0.0.1:{free_port()}", COOKIE, config=N.NodeConfig(
            heartbeat_interval_ms=HEARTBEAT_MS, down_after_missed=SILENCE_DOWN_AFTER))
        yield proc
    finally:
        proc.stop()
        N.stop_node()


def test_each_kill_is_node_down_through_the_connection_monitor(victim) -> None:
    with N.Mailbox() as events:
        token = N.subscribe_node_events(events)
        try:
            for round_ in range(3):  # the monitor must stay armed after each event
                assert N.call(("echo", victim.name), round_, timeout=10) == ["echo", victim.name, round_]
                if round_ == 0:
                    assert events.get(5) == N.NodeEvent("node_up", victim.name)
                t0 = time.monotonic()
                victim.kill()
                assert events.get(MONITOR_S) == N.NodeEvent("node_down", victim.name)
                assert time.monotonic() - t0 < MONITOR_S
                victim.start()
                assert events.get(10) == N.NodeEvent("node_up", victim.name)
        finally:
            N.unsubscribe_node_events(token)
