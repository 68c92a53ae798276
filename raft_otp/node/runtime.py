"""The node runtime: naming, location-transparent send/call, events, monitors.

This is raft_otp's ``net_kernel`` plus the ``!`` operator.  One node per OS
process.  Local delivery never serialises (``ref.tell`` / ``ref.ask``); remote
delivery encodes the message once in the sender's thread (so an unencodable
message raises in the caller, not in the I/O thread) and queues the bytes on the
peer link.  Incoming messages are delivered by the transport's I/O thread:
``SEND`` is a registry lookup and a ``tell`` (whether the receiver's handler then
runs on the I/O thread is the node scheduler's inline policy, decided in
``supervisors.scheduler``, not here); ``CALL`` puts the message in the actor's
inbox with a future whose completion queues the ``REPLY`` frame
(``CallbackFuture.add_done_callback``), so no thread waits for a remote call.  ``SEND_BOUNCE`` (see
:func:`send_or_bounce`) is a ``SEND`` whose sender is told at once, with a
``ServerNotFound``, when nothing runs under the destination name.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from _thread import allocate_lock as _allocate_lock
from dataclasses import dataclass
from typing import Any, Callable

import pykka
from supervisors import registry
from supervisors.scheduler import mark_inline_thread
from supervisors.scheduler import CallbackFuture, Envelope, peek_default

from raft_otp.errors import BadArgument, NodeDown, ServerNotFound, Timeout
from raft_otp.node import codec, envelope, security
from raft_otp.node.detector import DOWN, UNREACHABLE, UP
from raft_otp.node.envelope import (K_ADMIN, K_CALL, K_DEMONITOR, K_DOWN, K_MONITOR, K_NOPROC,
                                    K_REPLY, K_SEND, K_SEND_BOUNCE)
from raft_otp.node.faults import Fault
from raft_otp.node.monitors import RemoteMonitorRef, RemoteMonitors, deliver
from raft_otp.node.transport import NodeConfig, Transport, split_node_name

__all__ = [
    "NONODE", "NodeEvent", "node", "node_name", "client_node_name", "start_node", "stop_node", "is_started", "send", "send_or_bounce",
    "call",
    "monitor_remote", "demonitor_remote", "subscribe_node_events",
    "unsubscribe_node_events", "nodes", "set_fault", "transport_stats", "read_cookie",
    "set_status_provider",
]

logger = logging.getLogger("raft_otp.node")

INLINE_SHARE = 0.1
"""Beyond a frame with nothing waiting, at most this share of the I/O thread's time
goes to server steps run on it..."""
INLINE_BURST_S = 0.001
"""...in bursts of at most this long (see ``_Node.on_messages``)."""
_perf_counter = time.perf_counter
NONODE = "nonode@nohost"
_packb = codec.packb


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Delivered to subscribers: ``kind`` is ``'node_up'`` or ``'node_down'``."""

    kind: str
    node: str


def _answer_call(fut: Any, reply: Callable[[bool, Any], None],
                 dead: Callable[[], BaseException]) -> None:
    """Reply with a completed call future's value or exception."""
    try:
        value = fut.get(timeout=0)
    except pykka.ActorDeadError:
        reply(False, dead())
    except Exception as exc:
        reply(False, exc)
    else:
        reply(True, value)


class _Pending:
    """One outstanding remote call; ``lock`` is held until the reply (or failure) is in.

    A bare lock is the cheapest wait/wake primitive in CPython (an Event costs ~3 us
    to create and a Condition round to set)."""

    __slots__ = ("lock", "node", "ok", "value")

    def __init__(self, node: str) -> None:
        self.lock = _allocate_lock()
        self.lock.acquire()
        self.node = node
        self.ok = False
        self.value: Any = None

    def complete(self, ok: bool, value: Any) -> None:
        self.ok = ok
        self.value = value
        self.lock.release()


class _Node:
    """Everything that exists while a node is started."""

    def __init__(self, name: str, key: bytes, config: NodeConfig,
                 sec: security.Security | None = None) -> None:
        self.name = name
        self.config = config
        self.creation = random.getrandbits(31) or 1
        self.monitors = RemoteMonitors()
        self.subscribers: dict[int, Any] = {}
        self._sub_ids = itertools.count(1)
        self._call_ids = itertools.count(random.getrandbits(40))
        self.pending: dict[int, _Pending] = {}
        self.unknown_dest = 0
        self.bounced = 0  # K_SEND_BOUNCE messages answered with K_NOPROC
        self.bad_msgs = 0
        self._inline_credit = INLINE_BURST_S  # see on_messages
        self._inline_credit_at = 0.0
        self.transport = Transport(name, key, self.creation, config, self.on_messages,
                                   self.on_node_event, security=sec)

    # ---- incoming (I/O thread) -------------------------------------------------------
    def on_messages(self, sender: str, client: bytes | None, msgs: list[Any], idle: bool = False) -> None:
        """Deliver a frame's messages.  This (the I/O) thread offers itself to the
        scheduler for a message (``supervisors.scheduler.mark_inline_thread``: the
        scheduler decides whether the idle receiver's step runs here) when it has
        nothing else waiting (``idle``: the frame's last message, no other frame
        queued), and otherwise only within a small budget (``INLINE_SHARE`` of its
        time, bursts of at most ``INLINE_BURST_S``: the second of two answers that
        arrive together still runs here).  Beyond that, steps go to the scheduler's
        pool and the I/O thread stays with its sockets: under a storm (10,000
        servers of a restarted node pre-voting at once) it must keep up with the
        heartbeats, or its node looks down and the storm feeds itself."""
        whereis = registry.whereis
        last = msgs[-1] if idle else None
        for m in msgs:
            try:
                kind = m[0]
                if kind == K_SEND or kind == K_SEND_BOUNCE:
                    ref = whereis(m[1])
                    if ref is None:
                        self._undeliverable(sender, client, m)
                        continue
                    now = _perf_counter()
                    credit = min(INLINE_BURST_S, self._inline_credit
                                 + (now - self._inline_credit_at) * INLINE_SHARE)
                    if credit <= 0.0 and m is not last:
                        self._inline_credit, self._inline_credit_at = credit, now
                        ref.tell(m[2])
                        continue
                    mark_inline_thread(True)
                    try:
                        ref.tell(m[2])
                    finally:
                        mark_inline_thread(False)
                        done = _perf_counter()
                        self._inline_credit, self._inline_credit_at = credit - (done - now), done
                elif kind == K_REPLY:
                    p = self.pending.pop(m[1], None)
                    if p is not None:
                        p.complete(True, m[3]) if m[2] else p.complete(False, codec.decode_error(m[3]))
                elif kind == K_CALL:
                    self._on_call(sender, client, m[1], m[2], m[3])
                elif kind == K_MONITOR:
                    self._on_monitor(sender, m[1], m[2])
                elif kind == K_DEMONITOR:
                    lref = self.monitors.release(sender, m[1])
                    if lref is not None:
                        import supervisors

                        supervisors.demonitor(lref)
                elif kind == K_DOWN:
                    self.monitors.fire(m[1], m[2])
                elif kind == K_ADMIN:
                    self._on_admin(sender, client, m[1], m[2])
                elif kind == K_NOPROC:
                    self._on_noproc(sender, m[1], m[2])
                else:
                    self.bad_msgs += 1
            except pykka.ActorDeadError:
                self._undeliverable(sender, client, m)
            except AttributeError:
                if (m[0] == K_SEND or m[0] == K_SEND_BOUNCE) and _deliver_to_callable(m[1], m[2]):
                    continue
                self.bad_msgs += 1
            except Exception:
                self.bad_msgs += 1
                logger.debug("%s: bad message from %s", self.name, sender, exc_info=True)

    def _undeliverable(self, sender: str, client: bytes | None, m: list[Any]) -> None:
        """A SEND or SEND_BOUNCE whose destination is not registered, or dead: count
        it; a SEND_BOUNCE is answered with K_NOPROC to its bounce name."""
        self.unknown_dest += 1
        if m[0] != K_SEND_BOUNCE:
            return
        self.bounced += 1
        item = _packb([K_NOPROC, m[3], m[1]])
        if client is not None:
            self.transport.enqueue_client(client, item)
        else:
            self.transport.enqueue(sender, item)

    def _on_noproc(self, sender: str, bounce_name: Any, dest_name: Any) -> None:
        """``sender`` had nothing running as ``dest_name``: tell the waiting caller."""
        ref = registry.whereis(bounce_name)
        if ref is None:  # the caller stopped waiting
            self.unknown_dest += 1
            return
        deliver(ref, ServerNotFound(f"{dest_name!r} is not running on {sender}"))

    def _reply(self, sender: str, client: bytes | None, call_id: int, ok: bool, value: Any) -> None:
        if ok:
            try:
                item = _packb([K_REPLY, call_id, True, value])
            except codec.WireTypeError as exc:
                item = _packb([K_REPLY, call_id, False, codec.encode_error(exc)])
        else:
            item = _packb([K_REPLY, call_id, False, codec.encode_error(value)])
        if client is not None:
            self.transport.enqueue_client(client, item)
        else:
            self.transport.enqueue(sender, item)

    def _on_call(self, sender: str, client: bytes | None, name: str, msg: Any, call_id: int) -> None:
        ref = registry.whereis(name)
        if ref is None or not hasattr(ref, "actor_inbox"):
            why = "no process" if ref is None else "not an actor (cannot be called):"
            exc = ServerNotFound(f"{why} {name!r} on {self.name}")
            self._reply(sender, client, call_id, False, exc)
            return
        def reply(ok: bool, value: Any) -> None:
            self._reply(sender, client, call_id, ok, value)

        def dead() -> BaseException:
            return ServerNotFound(f"{name!r} on {self.name} is dead")

        if not ref.is_alive():
            reply(False, dead())
            return
        # our own envelope: any actor type's inbox takes it, and the future answers
        # the caller from the thread that completes it (no waiter thread)
        fut: CallbackFuture[Any] = CallbackFuture()
        fut.add_done_callback(lambda f: _answer_call(f, reply, dead))
        ref.actor_inbox.put(Envelope(msg, reply_to=fut))

    def _on_monitor(self, sender: str, name: str, monitor_id: int) -> None:
        import supervisors

        ref = registry.whereis(name)
        if ref is None:
            self.transport.enqueue(sender, _packb([K_DOWN, monitor_id, "noproc"]))
            return
        fired = []

        def on_down(down: Any) -> None:
            fired.append(True)
            self.monitors.release(sender, monitor_id)
            reason = down.reason
            if not isinstance(reason, str):
                reason = repr(reason)
            self.transport.enqueue(sender, _packb([K_DOWN, monitor_id, reason]))

        try:
            lref = supervisors.monitor(ref, on_down)
        except TypeError:  # not monitorable (a Mailbox): it never dies on its own
            return
        if not fired:
            self.monitors.hold(sender, monitor_id, lref)

    def _on_admin(self, sender: str, client: bytes | None, call_id: int, request: Any) -> None:
        from raft_otp.node import admin

        def work() -> None:
            try:
                result = admin.handle(request)
            except Exception as exc:  # reported to the admin client
                self._reply(sender, client, call_id, False, exc)
            else:
                self._reply(sender, client, call_id, True, result)

        threading.Thread(target=work, name="raft_otp.node admin", daemon=True).start()

    def on_node_event(self, kind: str, node: str) -> None:
        if kind == UNREACHABLE:  # never connected: fail its waiters, tell no subscriber
            self._fail_waiters(node)
            return
        if kind == DOWN:
            self._fail_waiters(node)
        event = NodeEvent(kind, node)
        for sub in list(self.subscribers.values()):
            deliver(sub, event)

    def _fail_waiters(self, node: str) -> None:
        """Pending calls to ``node`` raise NodeDown; monitors on it fire 'noconnection'."""
        for call_id, p in list(self.pending.items()):
            if p.node == node and self.pending.pop(call_id, None) is not None:
                p.complete(False, NodeDown(f"node {node} is down or unreachable"))
        self.monitors.node_down(node)

    # ---- outgoing (any thread) -------------------------------------------------------
    def call_remote(self, node: str, name: str, msg: Any, timeout: float) -> Any:
        t = self.transport
        if not t.is_up(node) and t.detector.silent_too_long(node, time.monotonic()):
            raise NodeDown(f"node {node} is not connected")
        call_id = next(self._call_ids)
        item = _packb([K_CALL, name, msg, call_id])
        p = _Pending(node)
        self.pending[call_id] = p
        if not t.enqueue(node, item):
            self.pending.pop(call_id, None)
            raise NodeDown(f"queue to node {node} is full")
        if not p.lock.acquire(True, timeout):
            if self.pending.pop(call_id, None) is not None:
                if not t.is_up(node):
                    raise NodeDown(f"node {node} did not answer within {timeout} s")
                raise Timeout(f"call to {name!r} on {node} timed out after {timeout} s")
            p.lock.acquire()  # the reply was taken as we timed out: complete() is imminent
        if p.ok:
            return p.value
        raise p.value


def _deliver_to_callable(name: Any, message: Any) -> bool:
    """Deliver to a registered plain callable (a "process" that is not an actor)."""
    ref = registry.whereis(name)
    if ref is None or hasattr(ref, "tell") or not callable(ref):
        return False
    ref(message)
    return True


_node: _Node | None = None
_node_lock = threading.Lock()


def node_name() -> str:
    """This process's node name (``nonode@nohost`` until :func:`start_node`)."""
    n = _node
    return n.name if n is not None else NONODE


node = node_name  # the name this module always had (``raft_otp.node.runtime.node``)


def client_node_name(host: str | None = None) -> str:
    """A fresh name for a port-less client node of this process:
    ``client-<pid>-<random>@<host>:0`` (port 0: it binds nothing, see
    ``raft_otp.node.transport``).  ``host`` only labels it (default: this host's name)."""
    import socket
    label = host or socket.gethostname() or "localhost"
    return f"client-{os.getpid()}-{random.getrandbits(32):08x}@{label}:0"


def is_started() -> bool:
    return _node is not None


def default_cookie_file() -> str:
    """``~/.raft_otp_cookie``: the cookie file ``raft-otp start`` creates and the CLI
    and the API use when given none."""
    return os.path.join(os.path.expanduser("~"), ".raft_otp_cookie")


def read_cookie(cookie: str | None = None, cookie_file: str | None = None) -> str:
    """The cookie given, else the first line of ``cookie_file``, else
    ``$RAFT_OTP_COOKIE_FILE``'s, else ``$RAFT_OTP_COOKIE``, else
    ``~/.raft_otp_cookie``'s (the CLI's order, :func:`default_cookie_file`).

    A cookie file its group or others may access is refused (BadArgument), as
    Erlang refuses such a ``~/.erlang.cookie``; a cookie file that does not exist
    or is empty is a BadArgument naming it."""
    if cookie is None and cookie_file is None:
        cookie_file = os.environ.get("RAFT_OTP_COOKIE_FILE") or None
        if cookie_file is None:
            cookie = os.environ.get("RAFT_OTP_COOKIE") or None
            if cookie is None and os.path.exists(default_cookie_file()):
                cookie_file = default_cookie_file()
    if cookie is None and cookie_file is not None:
        try:
            security.check_private(cookie_file, "cookie file")
            with open(cookie_file, encoding="utf-8") as f:
                cookie = f.readline().strip()
        except FileNotFoundError:
            raise BadArgument(f"cookie file {cookie_file} does not exist (pass the one the "
                              "nodes were started with)") from None
        if not cookie:
            raise BadArgument(f"cookie file {cookie_file} is empty")
    if not cookie:
        raise BadArgument("a cookie is required (cookie=, cookie_file=, $RAFT_OTP_COOKIE_FILE, "
                          f"$RAFT_OTP_COOKIE or {default_cookie_file()})")
    return cookie


def start_node(
    name: str,
    cookie: str | None = None,
    *,
    cookie_file: str | None = None,
    config: NodeConfig | None = None,
    transport_security: security.Security | None = None,
) -> str:
    """Make this process the node ``name@host:port`` (binds its ROUTER there).

    A name with port 0 (:func:`client_node_name`) makes a port-less client node:
    it binds nothing and gets its replies over the connections it opens to the
    nodes it talks to (``raft_otp.connect``).  The cookie: see :func:`read_cookie`.

    ``transport_security``: ``Security("mac")`` or ``Security("curve", key_file,
    allowed_keys)``; default :func:`raft_otp.node.security.default` (the CLI's
    flags, else ``$RAFT_OTP_TRANSPORT_SECURITY``, else ``"mac"``)."""
    global _node
    split_node_name(name)
    key = envelope.derive_key(read_cookie(cookie, cookie_file))
    sec = transport_security or security.default()
    with _node_lock:
        if _node is not None:
            raise BadArgument(f"this process is already node {_node.name}")
        n = _Node(name, key, config or NodeConfig(), sec)
        n.transport.start()
        _node = n
    logger.info("node %s started", name)
    return name


def stop_node() -> None:
    """Close the transport; the process goes back to being ``nonode@nohost``."""
    global _node
    with _node_lock:
        n, _node = _node, None
    if n is not None:
        n.transport.stop()
        for call_id in list(n.pending):
            p = n.pending.pop(call_id, None)
            if p is not None:
                p.complete(False, NodeDown("local node stopped"))
        logger.info("node %s stopped", n.name)


def _split_dest(dest: Any) -> tuple[str, str | None]:
    if isinstance(dest, str):
        return dest, None
    try:
        name, where = dest
    except (TypeError, ValueError):
        raise BadArgument(f"destination must be a name or (name, node), got {dest!r}") from None
    return name, where


def send_same(name: str, nodes: list[str], message: Any) -> None:
    """Send one ``message`` to the process registered as ``name`` on each of ``nodes``
    (all remote): encoded once, and where a link is idle one frame, sealed once, goes
    out on each link back to back (a leader's identical append_entries to its
    followers).  Same delivery rules as :func:`send`."""
    n = _node
    if n is None or n.name in nodes or NONODE in nodes:
        for node in nodes:
            send((name, node), message)
        return
    n.transport.enqueue_same(nodes, _packb([K_SEND, name, message]))


def send(dest: Any, message: Any) -> None:
    """Send ``message`` to ``(name, node)`` / a local name / an ActorRef; never blocks.

    The registered target is anything with ``tell`` (an ActorRef, a Mailbox) or a
    plain callable (called with the message; remotely, in the I/O thread).

    As in Erlang, delivery is not confirmed: unknown names and full queues drop
    the message (counted in :func:`transport_stats`).  Raises WireTypeError
    (a BadArgument) if a remote message cannot be encoded.
    """
    n = _node
    if isinstance(dest, (tuple, list)) and len(dest) == 2:
        name, where = dest
        if n is not None and where != n.name and where != NONODE:  # the remote fast path
            n.transport.enqueue(where, _packb([K_SEND, name, message]))
            return
    elif hasattr(dest, "tell"):
        dest.tell(message)
        return
    else:
        name, where = _split_dest(dest)
    if where is not None and where != NONODE and (n is None or where != n.name):
        raise NodeDown(f"cannot reach {where}: this process is not a started node")
    ref = registry.whereis(name)
    if ref is None:
        if n is not None:
            n.unknown_dest += 1
        return
    try:
        tell = ref.tell
    except AttributeError:
        if not callable(ref):
            raise BadArgument(f"{name!r} is registered to {ref!r}: no tell and not callable") from None
        ref(message)
        return
    try:
        tell(message)
    except pykka.ActorDeadError:
        if n is not None:
            n.unknown_dest += 1


def send_or_bounce(dest: tuple[str, str], message: Any, bounce: str) -> None:
    """:func:`send` for a caller waiting for an answer at the name ``bounce`` (a
    :class:`Mailbox` registered on this node): if nothing is registered as
    ``name`` on ``node`` when the message arrives (or its actor is dead), that
    node answers at once and ``bounce`` is told a ``ServerNotFound`` (an exception
    as a message).  When ``name`` is there it is a plain send (kind
    ``K_SEND_BOUNCE``, one field longer than ``K_SEND``; no extra message).

    Raises NodeDown if this process is not a started node (for a remote ``node``)
    or the queue to ``node`` is full (the message was dropped), and WireTypeError
    if the message cannot be encoded."""
    n = _node
    name, where = dest
    if n is not None and where != n.name and where != NONODE:
        if not n.transport.enqueue(where, _packb([K_SEND_BOUNCE, name, message, bounce])):
            raise NodeDown(f"queue to node {where} is full: {name!r} was not sent the message")
        return
    if where != NONODE and (n is None or where != n.name):
        raise NodeDown(f"cannot reach {where}: this process is not a started node")
    ref = registry.whereis(name)
    if ref is not None:
        try:
            tell = ref.tell if hasattr(ref, "tell") else ref
            tell(message)
            return
        except pykka.ActorDeadError:
            pass
    if n is not None:
        n.unknown_dest += 1
    back = registry.whereis(bounce)
    if back is not None:
        deliver(back, ServerNotFound(f"{name!r} is not running on {node()}"))


def call(dest: Any, message: Any, timeout: float = 5.0) -> Any:
    """Request/reply: the actor's ``on_receive`` result, or its exception re-raised.

    Raises ServerNotFound (no such actor), Timeout, NodeDown (node unreachable).
    """
    n = _node
    if isinstance(dest, pykka.ActorRef):
        ref: Any = dest
    else:
        name, where = _split_dest(dest)
        if not (where is None or where == NONODE or (n is not None and where == n.name)):
            if n is None:
                raise NodeDown(f"cannot reach {where}: this process is not a started node")
            return n.call_remote(where, name, message, timeout)
        ref = registry.whereis(name)
        if ref is None or not hasattr(ref, "ask"):
            raise ServerNotFound(f"no process {name!r} on {node()}")
    try:
        return ref.ask(message, timeout=timeout)
    except pykka.Timeout:
        raise Timeout(f"call to {dest!r} timed out after {timeout} s") from None
    except pykka.ActorDeadError:
        raise ServerNotFound(f"{dest!r} is dead") from None


def monitor_remote(dest: Any, watcher: Any) -> Any:
    """Monitor ``(name, node)``: ``watcher`` gets one ``supervisors.Down``.

    Reasons: the actor's exit reason, ``'noproc'`` (no such actor) or
    ``'noconnection'`` (its node went down).  Local targets use
    ``supervisors.monitor`` directly.
    """
    import supervisors

    n = _node
    name, where = _split_dest(dest)
    if where is None or where == NONODE or (n is not None and where == n.name):
        ref = registry.whereis(name)
        if ref is None:
            mref = RemoteMonitorRef(0, (name, node()))
            deliver(watcher, supervisors.Down(mref, (name, node()), "noproc"))  # type: ignore[arg-type]
            return mref
        if not isinstance(watcher, pykka.ActorRef) and hasattr(watcher, "tell"):
            return supervisors.monitor(ref, watcher.tell)
        return supervisors.monitor(ref, watcher)
    if n is None:
        raise NodeDown(f"cannot reach {where}: this process is not a started node")
    mref = n.monitors.add_watch((name, where), watcher)
    t = n.transport
    if not t.is_up(where) and t.detector.silent_too_long(where, time.monotonic()):
        n.monitors.fire(mref.id, "noconnection")
    elif not t.enqueue(where, _packb([K_MONITOR, name, mref.id])):
        n.monitors.fire(mref.id, "noconnection")
    return mref


def demonitor_remote(mref: Any) -> bool:
    """Remove a monitor made by :func:`monitor_remote`; True if it was active."""
    import supervisors

    if not isinstance(mref, RemoteMonitorRef):
        return supervisors.demonitor(mref)
    n = _node
    if n is None or not n.monitors.remove_watch(mref):
        return False
    n.transport.enqueue(mref.target[1], _packb([K_DEMONITOR, mref.id]))
    return True


def subscribe_node_events(subscriber: Any) -> int:
    """``subscriber`` (ActorRef/Mailbox: tell; or callable) gets NodeEvent values.

    Callables run in the transport's I/O thread: keep them short.  Returns a token
    for :func:`unsubscribe_node_events`.
    """
    n = _node
    if n is None:
        raise BadArgument("no node is started")
    token = next(n._sub_ids)
    n.subscribers[token] = subscriber
    return token


def unsubscribe_node_events(token: int) -> None:
    n = _node
    if n is not None:
        n.subscribers.pop(token, None)


def connect(node_name: str) -> None:
    """Open the link to ``node_name`` now (as Erlang's ``net_kernel:connect_node``):
    its idle-link heartbeats then reach that node within a heartbeat interval, so
    it sees this node up without waiting for a first message.  Raises BadArgument
    for a malformed node name; a no-op without a started node or for this node."""
    n = _node
    if n is None or node_name == n.name:
        return
    n.transport.link(node_name)


def node_known_down(node_name: str) -> bool:
    """True if ``node_name`` is down for this node's failure detector: tracked, not
    up, and silent for the detection time (a node never contacted is not known down;
    a name that never answered is, once the detection time has passed)."""
    n = _node
    if n is None:
        return False
    return n.transport.detector.silent_too_long(node_name, time.monotonic())


def nodes() -> list[str]:
    """Nodes currently connected (heard from within the detection time)."""
    n = _node
    return n.transport.detector.nodes_up() if n is not None else []


def set_fault(peer: str, drop: float = 0.0, delay_ms: float = 0.0, partitioned: bool = False) -> None:
    """Inject faults on the link to ``peer`` (all zero/False clears them)."""
    n = _node
    if n is None:
        raise BadArgument("no node is started")
    split_node_name(peer)
    n.transport.set_fault(peer, Fault(float(drop), float(delay_ms), bool(partitioned)))


def transport_stats() -> dict[str, Any]:
    """Counters: sent/received messages, batches, bytes, drops, bad frames, refusals."""
    n = _node
    if n is None:
        return {"node": NONODE}
    out = n.transport.stats()
    out["node"] = n.name
    out["unknown_dest"] = n.unknown_dest
    out["bounced"] = n.bounced
    out["bad_msgs"] = n.bad_msgs
    sched = peek_default()  # handlers run on the delivering thread (inline slices)
    out["direct_deliveries"] = sched.stats()["inline_slices"] if sched is not None else 0
    out["pending_calls"] = len(n.pending)
    out["monitors"] = n.monitors.counts()
    out["faults"] = n.transport.faults()
    return out


_status_provider: Callable[[], Any] | None = None


def set_status_provider(provider: Callable[[], Any] | None) -> None:
    """The system layer plugs in what the admin ``status`` request returns (or None)."""
    global _status_provider
    _status_provider = provider


def _status() -> Any:
    n = _node
    if n is None:
        return {"node": NONODE}
    base = {"node": n.name, "nodes": nodes(), "transport": transport_stats()}
    if _status_provider is not None:
        base["system"] = _status_provider()
    return base
