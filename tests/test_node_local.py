"""Goal: send/call/monitor work in-process without a started node, with clear errors."""

from __future__ import annotations

import threading

import pykka
import pytest
import supervisors

from raft_otp.errors import BadArgument, NodeDown, ServerNotFound, Timeout
from raft_otp import node as N
from supervisors import registry


class Echo(pykka.ThreadingActor):
    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: object) -> object:
        if message == "block" and self.gate is not None:
            self.gate.wait(5)
        if message == "raise":
            raise ValueError("boom")
        return ["echo", message]


@pytest.fixture
def echo():
    ref = Echo.start()
    registry.register("t-echo", ref)
    try:
        yield ref
    finally:
        registry.unregister("t-echo")
        ref.stop()


def test_no_node_means_nonode_and_local_delivery(echo) -> None:
    assert not N.is_started() and N.node_name() == N.NONODE
    assert N.call(("t-echo", N.node_name()), 1) == ["echo", 1]
    assert N.call("t-echo", 2) == ["echo", 2]
    with N.Mailbox() as mb:
        N.send(mb.address, "hello")
        N.send(mb.name, "again")
        assert mb.get(1) == "hello" and mb.get(1) == "again"
        assert registry.whereis(mb.name) is mb
    assert registry.whereis(mb.name) is None


def test_call_errors_are_distinct(echo) -> None:
    with pytest.raises(ServerNotFound):
        N.call("nobody", 1)
    with pytest.raises(ValueError):
        N.call("t-echo", "raise")
    with pytest.raises(NodeDown):
        N.call(("t-echo", "other@127.0.0.1:1"), 1)
    with pytest.raises(BadArgument):
        N.send(42, "x")


def test_local_call_timeout() -> None:
    gate = threading.Event()
    ref = Echo.start(gate)
    registry.register("t-slow", ref)
    try:
        with pytest.raises(Timeout):
            N.call("t-slow", "block", timeout=0.05)
    finally:
        gate.set()
        registry.unregister("t-slow")
        ref.stop()


def test_send_to_unknown_name_is_dropped_silently() -> None:
    N.send("nobody", "x")


def test_mailbox_get_times_out() -> None:
    with N.Mailbox() as mb, pytest.raises(Timeout):
        mb.get(0.01)


def test_local_monitor_via_monitor_remote(echo) -> None:
    with N.Mailbox() as mb:
        N.monitor_remote(("t-echo", N.node_name()), mb)
        echo.stop()
        down = mb.get(5)
        assert isinstance(down, supervisors.Down)
        N.monitor_remote(("nobody", N.node_name()), mb)
        assert mb.get(5).reason == "noproc"


def test_bad_node_names_are_refused() -> None:
    with pytest.raises(BadArgument):
        N.start_node("no-port@127.0.0.1", "c")
    with pytest.raises(BadArgument):
        N.start_node("n@127.0.0.1:1234")  # no cookie, none in the environment


def test_send_to_a_registered_callable() -> None:
    got: list[object] = []
    registry.register("t-fn", got.append)
    try:
        N.send("t-fn", 1)
        N.send(("t-fn", N.node_name()), 2)
        assert got == [1, 2]
    finally:
        registry.unregister("t-fn")
