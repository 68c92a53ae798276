"""Client side of calls to servers and system actors (RA ``ra_server_proc:call`` helpers).

A local target gets the request by a plain ``tell`` with a :class:`ReplySlot`
as ``reply_to`` (no serialisation, no future); a remote one gets it through
the node transport with a registered :class:`Mailbox` address as ``reply_to``,
sent with ``send_or_bounce``: if the target is not running on its node, that
node bounces the request and the caller gets ``ServerNotFound`` within a round
trip, not at the end of its timeout.
Replies to pipelined commands go to whatever the caller gave; a caller-local
object (queue, callable, actor ref) is exposed to remote servers through a
registered forwarder with a stable name.
"""

from __future__ import annotations
from raft_otp import _trace as _T  # TRACE

import itertools
import threading
import time
from typing import Any, Callable

from supervisors import registry
from supervisors.scheduler import is_inline_thread, mark_inline_thread

from raft_otp.core.types import ServerId
from raft_otp.errors import BadArgument, NodeDown, ServerNotFound, Timeout
from raft_otp.server.messages import ReplySlot


def local_node() -> str:
    from raft_otp.node import runtime as node_mod
    return node_mod.node()


def server_id(x: Any) -> ServerId:
    """Accept ServerId, (name, node) or a bare name (local node)."""
    if isinstance(x, ServerId):
        return x
    if isinstance(x, str):
        return ServerId(x, local_node())
    if isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(p, str) for p in x):
        return ServerId(x[0], x[1])
    raise BadArgument(f"not a server id: {x!r} (want ServerId(name, node))")


def is_local(node: str) -> bool:
    return node == local_node()


def call(dest: tuple[str, str], make: Callable[[Any], Any], timeout: float) -> Any:
    """Send ``make(reply_to)`` to ``dest`` and wait for one answer.

    Raises ServerNotFound (``dest`` is not running on its node: the request was
    not delivered), NodeDown (its node is not reachable) or Timeout (no answer
    within ``timeout`` s: the outcome is unknown)."""
    name, node = dest
    deadline = time.monotonic() + timeout
    if is_local(node):
        ref = registry.whereis(name)
        if ref is None:
            raise ServerNotFound(f"no process registered as {name!r} on {node}")
        slot = ReplySlot()
        # this thread only waits for the answer: an idle server's step for it may run
        # here (the scheduler decides, as for the node's delivering threads)
        was_inline = is_inline_thread()
        mark_inline_thread(True)
        try:
            ref.tell(make(slot))
        except Exception as exc:  # pykka.ActorDeadError
            raise ServerNotFound(f"{name!r} on {node} is not running") from exc
        finally:
            mark_inline_thread(was_inline)
        if not slot.wait(max(0.0, deadline - time.monotonic())):
            raise Timeout(f"no answer from {name!r} on {node} within {timeout:g} s: outcome unknown")
        return slot.value
    from raft_otp.node import runtime as node_mod
    from raft_otp.node.mailbox import Mailbox
    mbox = Mailbox()
    try:
        token = watch_node_down(node, name, mbox)
    except NodeDown:
        mbox.close()
        raise
    try:
        try:
            node_mod.send_or_bounce((name, node), make(mbox.address), mbox.name)
        except (ServerNotFound, NodeDown, BadArgument):
            raise
        except Exception as exc:
            raise NodeDown(f"cannot send to {name!r} on {node}: {exc}") from exc
        try:
            msg = mbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except Timeout:
            raise Timeout(f"no answer from {name!r} on {node} within {timeout:g} s: "
                          "outcome unknown") from None
        if _T.ON: _T.mark("cli", "mbox got")  # TRACE
        if type(msg) is WentDown:
            raise msg.error(name)
        down = _as_down(msg)
        if down is not None:
            raise down
        return msg
    finally:
        unwatch_node_down(token)
        mbox.close()


def watch_node_down(node: str, name: str, target: Any) -> int:
    """Before a request to ``name`` on ``node``: ``NodeDown`` (nothing is sent) if
    this process is not a node or its failure detector knows ``node`` down; else
    ``target.tell(WentDown(node))`` when ``node`` goes down (subscribed before the
    check, so a node going down in between is not missed).  Returns the token for
    :func:`unwatch_node_down`."""
    from raft_otp.node import runtime as node_mod
    if not node_mod.is_started():
        raise NodeDown(f"cannot reach {node}: this process is not a started node")
    token = node_mod.subscribe_node_events(
        lambda e: e.kind == "node_down" and e.node == node and target.tell(WentDown(node)))
    if node_mod.node_known_down(node):
        node_mod.unsubscribe_node_events(token)
        raise NodeDown(f"cannot reach {name!r}: node {node} is down")
    return token


def unwatch_node_down(token: int) -> None:
    from raft_otp.node import runtime as node_mod
    node_mod.unsubscribe_node_events(token)


class WentDown:
    """Told to a waiting caller when the target's node goes down (outcome unknown)."""

    __slots__ = ("node",)

    def __init__(self, node: str) -> None:
        self.node = node

    def error(self, name: str) -> Timeout:
        return Timeout(f"node {self.node} went down while {name!r} had the request: outcome unknown")


def _as_down(msg: Any) -> Exception | None:
    """An exception told to the mailbox instead of a reply: the ``ServerNotFound``
    of a bounced request (``runtime.send_or_bounce``)."""
    if isinstance(msg, BaseException):
        return msg if isinstance(msg, Exception) else None
    return None


def send(dest: tuple[str, str], message: Any) -> None:
    """Fire-and-forget to a local or remote name (raises ServerNotFound locally)."""
    name, node = dest
    if is_local(node):
        ref = registry.whereis(name)
        if ref is None:
            raise ServerNotFound(f"no process registered as {name!r} on {node}")
        ref.tell(message)
        return
    from raft_otp.node import runtime as node_mod
    node_mod.send((name, node), message)


# ---- pipeline notification targets ----------------------------------------------------

class _Forwarder:
    """A registered name that hands messages to a caller-local target."""

    __slots__ = ("name", "target", "_deliver")

    def __init__(self, name: str, target: Any) -> None:
        from raft_otp.server.deliver import deliver
        self.name = name
        self.target = target
        self._deliver = deliver

    def tell(self, message: Any) -> None:
        self._deliver(self.target, message)

    def is_alive(self) -> bool:
        alive = getattr(self.target, "is_alive", None)
        return bool(alive()) if callable(alive) else True


_fwd_lock = threading.Lock()
_fwd_by_target: dict[int, _Forwarder] = {}
_fwd_ids = itertools.count(1)


def remote_address_for(target: Any) -> tuple[str, str]:
    """A ``(name, node)`` address that reaches ``target`` from another node."""
    if isinstance(target, (tuple, list)) and len(target) == 2 and isinstance(target[1], str):
        return (target[0], target[1])
    addr = getattr(target, "address", None)
    if isinstance(addr, tuple):
        return addr
    with _fwd_lock:
        fwd = _fwd_by_target.get(id(target))
        if fwd is None or fwd.target is not target:
            fwd = _Forwarder(f"raft_otp.notify.{next(_fwd_ids)}", target)
            registry.register(fwd.name, fwd)
            _fwd_by_target[id(target)] = fwd
    return (fwd.name, local_node())


def release_address(target: Any) -> None:
    """Forget the forwarder made for ``target`` (optional housekeeping)."""
    with _fwd_lock:
        fwd = _fwd_by_target.pop(id(target), None)
    if fwd is not None:
        registry.unregister(fwd.name, fwd)
