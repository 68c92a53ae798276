"""Goal: a K_SEND_BOUNCE to a name that is not running comes back at once as a
ServerNotFound at the caller's mailbox; to a live name it is a plain send, and a
plain K_SEND to an unknown name is still dropped without an answer."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pykka
import pytest

from raft_otp import node as N
from raft_otp.errors import ServerNotFound, Timeout
from raft_otp.node import codec, envelope, runtime
from raft_otp.node.testing import NodeProcess, free_port
from supervisors import registry

COOKIE = "test-cookie-bounce"
PEER = "peer@127.0.0.1:1"  # never contacted: the unit tests record what would be sent


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[tuple[str, Any]]]]:
    """This process as a node whose transport records what it would send."""
    N.start_node(f"u@127.0.0.1:{free_port()}", COOKIE)
    n = runtime._node
    assert n is not None
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(n.transport, "enqueue",
                        lambda peer, item: sent.append((peer, codec.unpackb(item))) or True)
    try:
        yield n, sent
    finally:
        N.stop_node()


def test_bounce_to_an_unknown_name_answers_noproc_to_the_sender(node) -> None:
    n, sent = node
    n.on_messages(PEER, None, [[envelope.K_SEND_BOUNCE, "nobody", ["req"], "mbox-x"]])
    assert sent == [(PEER, [envelope.K_NOPROC, "mbox-x", "nobody"])]
    assert n.bounced == 1 and n.unknown_dest == 1


class _Dying:
    """Alive when looked up, dead when told (the actor stopped in between)."""

    def is_alive(self) -> bool:
        return True

    def tell(self, message: Any) -> None:
        raise pykka.ActorDeadError("stopped")


def test_bounce_to_an_actor_that_died_answers_noproc(node) -> None:
    n, sent = node
    registry.register("dying", _Dying())
    try:
        n.on_messages(PEER, None, [[envelope.K_SEND_BOUNCE, "dying", 1, "mbox-y"]])
    finally:
        registry.unregister("dying")
    assert sent == [(PEER, [envelope.K_NOPROC, "mbox-y", "dying"])]


def test_bounce_to_a_live_name_is_a_plain_send(node) -> None:
    n, sent = node
    with N.Mailbox() as mb:
        for idle in (False, True):
            n.on_messages(PEER, None, [[envelope.K_SEND_BOUNCE, mb.name, ["hello", idle], "mbox-z"]], idle)
            assert mb.get(1) == ["hello", idle]
    assert sent == [] and n.bounced == 0 and n.unknown_dest == 0


def test_plain_send_to_an_unknown_name_is_still_dropped_silently(node) -> None:
    n, sent = node
    n.on_messages(PEER, None, [[envelope.K_SEND, "nobody", ["req"]]])
    assert sent == [] and n.unknown_dest == 1 and n.bounced == 0


def test_noproc_tells_the_waiting_mailbox_a_server_not_found(node) -> None:
    n, _sent = node
    with N.Mailbox() as mb:
        n.on_messages(PEER, None, [[envelope.K_NOPROC, mb.name, "shop"]])
        exc = mb.get(1)
    assert isinstance(exc, ServerNotFound)
    assert "'shop'" in str(exc) and PEER in str(exc)
    n.on_messages(PEER, None, [[envelope.K_NOPROC, mb.name, "shop"]])  # the caller gave up: dropped
    assert n.bad_msgs == 0


def test_local_send_or_bounce(node) -> None:
    n, sent = node
    with N.Mailbox() as target, N.Mailbox() as back:
        runtime.send_or_bounce((target.name, n.name), "m", back.name)
        assert target.get(1) == "m" and back.get_nowait() is None
        runtime.send_or_bounce(("nobody", n.name), "m", back.name)
        assert isinstance(back.get(1), ServerNotFound)
    assert sent == []


def test_message_kinds_are_fixed_wire_values() -> None:
    kinds = {k: v for k, v in vars(envelope).items() if k.startswith("K_")}
    assert kinds == {"K_SEND": 0, "K_CALL": 1, "K_REPLY": 2, "K_MONITOR": 3, "K_DEMONITOR": 4,
                     "K_DOWN": 5, "K_ADMIN": 6, "K_SEND_BOUNCE": 7, "K_NOPROC": 8}


def test_send_or_bounce_encodes_one_message_of_kind_7(node) -> None:
    n, sent = node
    runtime.send_or_bounce(("srv", PEER), ["cmd", 1], "mbox-q")
    assert sent == [(PEER, [envelope.K_SEND_BOUNCE, "srv", ["cmd", 1], "mbox-q"])]


# ---- between two OS processes ----------------------------------------------------------

@pytest.fixture(scope="module")
def echo_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    cookie_file = tmp_path_factory.mktemp("bounce") / "cookie"
    cookie_file.write_text(COOKIE + "\n")
    proc = NodeProcess("b0", str(cookie_file))
    try:
        proc.start()
        N.start_node(f"t@127.0.0.1:{free_port()}", COOKIE)
        assert N.call(("echo", proc.name), "hello", timeout=10) == ["echo", proc.name, "hello"]
        yield proc
    finally:
        proc.stop()
        N.stop_node()


@pytest.mark.processes
def test_remote_bounce_arrives_within_a_round_trip(echo_node: NodeProcess) -> None:
    with N.Mailbox() as mb:
        t0 = time.monotonic()
        runtime.send_or_bounce(("nobody", echo_node.name), ["req"], mb.name)
        exc = mb.get(1.0)
        assert isinstance(exc, ServerNotFound), exc
        assert "'nobody'" in str(exc) and echo_node.name in str(exc)
        assert time.monotonic() - t0 < 1.0
        runtime.send_or_bounce(("echo", echo_node.name), ["forward", mb.address, "through"], mb.name)
        assert mb.get(5) == "through"
        with pytest.raises(Timeout):
            mb.get(0.3)  # delivered: no bounce follows
