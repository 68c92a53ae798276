"""The node's ZeroMQ transport: one I/O thread owns every socket.

Ports the job of Erlang's distribution carrier (dist_util + the port driver):

* each node binds one ROUTER on its ``host:port`` and connects one DEALER per peer;
  node-to-node traffic always flows DEALER(sender) -> ROUTER(receiver), so each
  direction of a pair is one ordered TCP stream;
* any thread may queue an encoded message for a peer (:meth:`Transport.enqueue`);
  the first queued message after a flush wakes the I/O thread through an eventfd,
  later ones do not; the I/O thread sends everything queued for a peer as one
  batch frame (see ``envelope``);
* *direct send*: a message for an idle link (nothing queued, parked or delayed,
  no fault, nothing sent for ``direct_send_idle_us``) is sent as a one-message
  frame by the calling thread itself, under the transport's send lock, saving
  the wake-up of the I/O thread (the largest cost of a lone message's trip);
  busy links keep batching in the I/O thread.  The I/O thread holds the same
  lock whenever it touches a DEALER (flush, heartbeats, opening and closing), and
  a DEALER is in the poller only while a frame is parked on it, which excludes
  the direct path: so each socket is used by one thread at a time, as ZeroMQ
  requires, and a link's messages stay in order;
* peer queues are bounded (drop and count beyond); ZeroMQ's ``IMMEDIATE`` keeps
  frames in our bounded queue while a peer is unreachable; ZeroMQ reconnects by
  itself;
* every peer link gets a heartbeat frame when nothing else was sent for an
  interval; the failure detector turns silence into node_down;
* incoming frames are authenticated, checked against replay (``replay``: each
  link has a session nonce and numbers its frames), decoded and handed to the
  runtime's ``on_messages`` in the I/O thread (delivery is a registry lookup and a
  tell);
* ``transport_security = "curve"`` (``security``): the ROUTER is a CURVE server
  with this node's secret key, every DEALER a CURVE client that knows its peer's
  public key from the allowed-keys file, and a ZAP handler on this thread accepts
  only the keys listed there.  The transport then has a ZeroMQ context of its own
  (a context has one ZAP endpoint).  Refused handshakes (a wrong key, garbage on
  the port) are counted from a monitor on the ROUTER (``handshake_failures``).

*Protocol versions* (``raft_otp.protocol.versions``): the first frame on every
link is a hello with this node's version range (sent when the link's socket is
made).  A hello that is not itself an answer is answered with one, so both ends of a
pair know both ranges even after one of them restarted.  Each end then writes the
highest version both know on its link.  A new link sends nothing but its hello
and heartbeats until the peer's hello arrives (messages queued meanwhile wait in
the link's bounded queue); a peer that sends a frame first (it predates hellos, or
its link is older than our restart) gets that frame's version until its hello
comes, and one that sends nothing within ``max(1 s, 5 heartbeats)`` our oldest.  A peer
whose range does not overlap ours is refused: its frames are dropped and counted
(``version_refused``, a WARNING naming both ranges once per peer and range), what
we queued for it is dropped (``version_dropped``), and since it is never heard
the failure detector reports it down.  A later hello with an overlapping range
(the peer was upgraded) lifts the refusal.  Frames from a peer that sent no hello
(a build before hellos) are taken if their version is one we know.

Temporary clients (``admin_call``) talk to the ROUTER from a DEALER of their own
and get replies back over the ROUTER, addressed by their identity.

*Port-less client nodes* (a node name whose port is 0, ``raft_otp.connect``) bind
nothing: every frame they send carries ``FLAG_CLIENT``, and they receive on their
DEALERs what the members send back over their ROUTERs (as etcd's clients get their
answers over the connection they opened).  A member remembers, per client node
name, the ROUTER identity of the connection it last heard that client on
(``client routes``, bounded), and :meth:`Transport.enqueue` to a name with no link
goes there: a server's reply to a ``(mailbox, client node)`` address needs no
change above the transport.  A client's empty frame (its heartbeat) is answered
with an empty frame, so the client's failure detector works as between nodes.  A
client node sends everything from the I/O thread (no direct send: its DEALERs
are always in the poller, for their replies) and renews each link's session
every ``client_session_renew_s`` (a member refuses a client session older than
its ``client_max_age_s`` when it first sees it, e.g. after the member restarted).
"""

from __future__ import annotations
from raft_otp import _trace as _T  # TRACE

import collections
import logging
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import zmq
from zmq.utils import z85

from raft_otp.errors import BadArgument
from raft_otp.node import envelope, replay
from raft_otp.node.detector import FailureDetector
from raft_otp.node.faults import NO_FAULT, Fault
from raft_otp.node.peer import PeerLink
from raft_otp.node.security import (AllowedKeys, Security, ensure_key_file, read_key_file,
                                    write_private)
from raft_otp.protocol import versions
from raft_otp.protocol.node_messages import FLAG_HELLO, K_HELLO

__all__ = ["NodeConfig", "Transport", "endpoint_of", "is_client_name", "split_node_name"]

logger = logging.getLogger("raft_otp.node")

# Plain ints: pyzmq's flag enums make every ``a | b`` a slow Python-level Flag.__or__.
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_DELAYED_MAX_FRAMES = 10_000
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NO_MSGS: list[Any] = []          # what a hello frame delivers (never appended to)
_CLIENT_ROUTES_MAX = 10_000      # port-less client nodes remembered by a member
_CLIENT_OUT_MAX_MSGS = 100_000   # replies queued for clients over the ROUTER
CLIENT_SESSION_RENEW_S = 60.0    # a client node's links take a new session this often
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_HANDSHAKE_FAILED = int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                        | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Transport and failure-detector settings (units in the names)."""

    heartbeat_interval_ms: float = 100.0
    down_after_missed: int = 5          # node_down after this many silent intervals
    peer_queue_max_msgs: int = 100_000  # per peer; beyond: dropped and counted
    batch_max_msgs: int = 2048
    batch_max_bytes: int = 1 << 20
    frame_max_bytes: int = 64 << 20     # bigger incoming frames are dropped by ZeroMQ
    zmq_hwm_frames: int = 1000
    tcp_keepalive_idle_s: int = 10
    recv_max_frames_per_wake: int = 512
    down_on_disconnect: bool = True     # a closed connection is node_down at once
    direct_send_idle_us: float = 200.0  # send from the caller on links idle this long; <0: never
    bind_retry_s: float = 2.0           # retry "address in use" this long when binding
    unreachable_forget_s: float = 60.0  # close idle links to nodes never heard from

    @property
    def detection_time_ms(self) -> float:
        return self.heartbeat_interval_ms * self.down_after_missed


def split_node_name(node: str) -> tuple[str, str, int]:
    """``name@host:port`` -> (name, host, port); raises BadArgument."""
    if not isinstance(node, str):
        raise BadArgument(f"node name must be a string, got {type(node).__name__}")
    name, sep, hostport = node.partition("@")
    host, sep2, port = hostport.rpartition(":")
    if not (name and sep and host and sep2 and port.isdigit() and 0 <= int(port) < 65536):
        raise BadArgument(f"node name {node!r} is not of the form name@host:port")
    return name, host, int(port)


def is_client_name(node: str) -> bool:
    """``node`` names a port-less client node (``name@host:0``): it binds nothing and
    is reached only over the connections it opened."""
    return node.endswith(":0") and "@" in node


def endpoint_of(node: str) -> str:
    _, host, port = split_node_name(node)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def _tune(sock: zmq.Socket, cfg: NodeConfig) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, cfg.zmq_hwm_frames)
    sock.setsockopt(zmq.RCVHWM, cfg.zmq_hwm_frames)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, cfg.tcp_keepalive_idle_s)


class Transport:
    """Sockets, batching, heartbeats and fault injection of one node."""

    def __init__(
        self,
        node: str,
        key: bytes,
        creation: int,
        config: NodeConfig,
        on_messages: Callable[[str, bytes | None, list[Any], bool], None],
        on_node_event: Callable[[str, str], None],
        rng: random.Random | None = None,
        security: Security | None = None,
    ) -> None:
        self.node = node
        self.config = config
        self.security = security or Security()
        self._key = key
        self._creation = creation
        # a port-less client node: binds nothing, receives on its DEALERs
        self.client_only = is_client_name(node)
        # protocol versions: ours, each peer's agreed one, peers refused (their range)
        self._versions = versions.supported()
        self._version_lo = self._versions.oldest
        self._version_hi = self._versions.newest
        self._peer_versions: dict[str, int] = {}
        self._refused_peers: dict[str, versions.VersionRange] = {}
        self._link_flags = envelope.FLAG_CLIENT if self.client_only else 0
        # a link's first frames wait this long at most for the peer's hello
        self._hello_wait_s = max(1.0, 5 * config.heartbeat_interval_ms / 1000.0)
        self._prefix = envelope.batch_prefix(node, creation, self._link_flags, self._version_lo)
        self._client_prefix = envelope.batch_prefix(node, creation, envelope.FLAG_CLIENT,
                                                    self._version_lo)
        # a client connection whose hello agreed another version -> its frames' prefix
        # (bounded as the client routes; a connection not in it gets our oldest)
        self._client_prefixes: dict[bytes, bytes] = {}
        self._replay = replay.ReplayGuard()
        self._reply_session = replay.new_session()  # replies to temporary clients (ROUTER)
        self._reply_counter = 0
        self._refusal_logged_s = -1e9
        self._on_messages = on_messages
        self._on_node_event = on_node_event
        self._rng = rng or random.Random()
        self._links: dict[str, PeerLink] = {}
        self._link_list: list[PeerLink] = []
        self._links_lock = threading.Lock()
        # (identity, item or None for an empty frame) -> over the ROUTER
        self._client_out: collections.deque[tuple[bytes, bytes | None]] = collections.deque()
        self._client_routes: dict[str, bytes] = {}  # port-less client node -> ROUTER identity
        self._faults: dict[str, Fault] = {}
        self.detector = FailureDetector(config.heartbeat_interval_ms, config.down_after_missed)
        self._woken = False
        self._stopping = False
        # held by the I/O thread whenever it uses a DEALER; taken (without waiting) by
        # a caller that sends a lone message on an idle link itself
        self._send_lock = threading.Lock()
        self._direct_idle_s = -1.0 if self.client_only else config.direct_send_idle_us / 1e6
        self._item_max_bytes = config.frame_max_bytes - 4096
        self.counters = dict.fromkeys(
            ("sent_msgs", "sent_batches", "sent_bytes", "recv_msgs", "recv_batches",
             "recv_bytes", "heartbeats_sent", "bad_frames", "refused", "dropped_fault",
             "send_errors", "wakeups", "io_errors", "forgotten_links", "direct_sends",
             "replayed", "old_session", "stale_client", "handshake_failures",
             "refused_keys", "client_gone", "hellos_sent", "hellos_recv", "version_refused",
             "version_dropped"), 0)
        self._forgotten_dropped = 0
        self.dead = False
        self._curve: tuple[bytes, bytes] | None = None  # (public, secret), Z85
        self._allowed: AllowedKeys | None = None
        self._zap: zmq.Socket[bytes] | None = None
        if self.security.mode == "curve":
            assert self.security.key_file and self.security.allowed_keys  # Security checks it
            public = ensure_key_file(self.security.key_file)
            self._curve = (public, read_key_file(self.security.key_file))
            if self.client_only and not os.path.exists(self.security.allowed_keys):
                raise BadArgument(f"allowed-keys file {self.security.allowed_keys} does not "
                                  "exist: a client needs the members' public keys")
            if not os.path.exists(self.security.allowed_keys):  # a first start: itself only
                write_private(self.security.allowed_keys, f"{node} {public.decode()}\n")
                logger.info("%s: created %s listing this node only; add the other nodes' "
                            "lines", node, self.security.allowed_keys)
            self._allowed = AllowedKeys(self.security.allowed_keys)
            self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            if not self.client_only:
                self._zap = self._ctx.socket(zmq.REP)
                self._zap.setsockopt(zmq.LINGER, 0)
                self._zap.bind(ZAP_ENDPOINT)
        else:
            self._ctx = zmq.Context.instance()
        self._router: Any = None
        self._router_mon: Any = None
        if not self.client_only:
            self._router = self._ctx.socket(zmq.ROUTER)
            _tune(self._router, config)
            self._router.setsockopt(zmq.MAXMSGSIZE, config.frame_max_bytes)
            self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if self._curve is not None:
                self._router.setsockopt(zmq.CURVE_SERVER, 1)
                self._router.setsockopt(zmq.CURVE_SECRETKEY, self._curve[1])
            self._router_mon = self._router.get_monitor_socket(_HANDSHAKE_FAILED)
            self._bind(endpoint_of(node), config.bind_retry_s)
        self._dealers: dict[Any, PeerLink] = {}  # client node: DEALER -> its link
        self._renew_s = time.monotonic() + CLIENT_SESSION_RENEW_S
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        weakref.finalize(self, os.close, self._wake_fd)
        self._poller = zmq.Poller()
        # Monitor sockets (down_on_disconnect) by their ZMQ_FD: the poller watches
        # that raw descriptor, not the socket, so an idle monitor costs zmq_poll one
        # pollfd instead of a mailbox check (poll + getpid syscalls) on every wake.
        self._monitor_socks: dict[int, tuple[Any, PeerLink]] = {}
        self._writable: set[Any] = set()
        self._thread = threading.Thread(target=self._run, name=f"raft_otp.node io {node}", daemon=True)

    def _bind(self, endpoint: str, retry_s: float) -> None:
        """Bind the ROUTER; retry EADDRINUSE briefly (ZeroMQ closes listeners
        asynchronously, so a node restarted in the same process may find its own
        previous listener still there for a moment)."""
        deadline = time.monotonic() + retry_s
        while True:
            try:
                self._router.bind(endpoint)
                return
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                self._router.disable_monitor()
                self._router_mon.close(0)
                self._router.close(0)
                if self._zap is not None:
                    self._zap.close(0)
                    self._ctx.term()
                raise BadArgument(f"cannot bind {endpoint}: {exc}") from None

    # ---- any thread --------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wake()
        self._thread.join(timeout_s)

    def link(self, node: str) -> PeerLink:
        """The link to ``node`` (created on first use)."""
        link = self._links.get(node)
        if link is None:
            endpoint = endpoint_of(node)
            if is_client_name(node):
                raise BadArgument(f"{node} is a port-less client node: it is reached only "
                                  "over a connection it opened")
            if self._allowed is not None and self._allowed.key_of(node) is None:
                raise BadArgument(f"node {node} has no public key in the allowed-keys file "
                                  f"{self._allowed.path} (transport_security 'curve')")
            with self._links_lock:
                link = self._links.get(node)
                if link is None:
                    link = PeerLink(node, endpoint, self.config.peer_queue_max_msgs,
                                    replay.new_session(self._rng), self._prefix,
                                    self._version_lo)
                    self._links[node] = link
                    self._link_list = [*self._link_list, link]
            self._wake()
        return link

    def enqueue(self, node: str, item: bytes) -> bool:
        """Queue one encoded message for ``node``; never blocks. False if dropped."""
        if len(item) > self._item_max_bytes:
            raise BadArgument(f"message of {len(item)} bytes exceeds frame_max_bytes")
        link = self._links.get(node)
        if link is None:
            if is_client_name(node):
                return self._enqueue_to_client(node, item)
            link = self.link(node)
        if _T.ON: _T.mark("tx", f"enqueue {node} woken={self._woken}")  # TRACE
        if (self._direct_idle_s >= 0 and not link.queue and link.pending is None
                and time.monotonic() - link.last_sent_s >= self._direct_idle_s
                and self._send_direct(link, item)):
            return True
        return self._queue(link, item)

    def enqueue_same(self, nodes: list[str], item: bytes) -> None:
        """:meth:`enqueue` of one encoded message for each of ``nodes``: the links that
        are idle get a one-message frame each (sealed per link: each has its own
        session and counter), sent back to back; the others queue it."""
        if len(item) > self._item_max_bytes:
            raise BadArgument(f"message of {len(item)} bytes exceeds frame_max_bytes")
        links = [self._links.get(node) or self.link(node) for node in nodes]
        rest = links
        if self._direct_idle_s >= 0 and self._send_lock.acquire(False):
            try:
                now = time.monotonic()
                rest = []
                for link in links:
                    if not self._link_idle(link) or now - link.last_sent_s < self._direct_idle_s:
                        rest.append(link)
                        continue
                    # one frame per link: each link numbers its own frames
                    if not self._sent_direct(link, self._frame(link, [item])):
                        rest.append(link)
            finally:
                self._send_lock.release()
        for link in rest:
            self._queue(link, item)

    def _queue(self, link: PeerLink, item: bytes) -> bool:
        """Queue ``item`` on ``link`` for the I/O thread (woken once); False if dropped."""
        if not link.offer(item):
            return False
        if not self._woken:
            self._woken = True
            os.eventfd_write(self._wake_fd, 1)
        return True

    def _send_direct(self, link: PeerLink, item: bytes) -> bool:
        """Send ``item`` as a one-message frame from the calling thread; False (nothing
        sent) when the I/O thread holds the send lock or the link is not idle after
        all: the caller then queues it."""
        if not self._send_lock.acquire(False):
            return False
        try:
            return self._link_idle(link) and self._sent_direct(link, self._frame(link, [item]))
        finally:
            self._send_lock.release()

    def _link_idle(self, link: PeerLink) -> bool:
        """(Holding the send lock.)  Nothing of ``link``'s is waiting or parked and no
        fault applies: a frame may go out on it from the calling thread."""
        return not (link.sock is None or link.queue or link.pending is not None or link.delayed
                    or link.hello_due or link.awaiting_hello or link.refused or self._stopping
                    or link.node in self._faults)

    def _sent_direct(self, link: PeerLink, frame: bytes) -> bool:
        """(Holding the send lock.)  Send a one-message ``frame`` on ``link``; False when
        ZeroMQ refused it (not connected, or at the high-water mark): the caller queues
        the message and the I/O thread sends it in a frame of its own (the refused
        frame's counter is skipped: the receiver only needs counters to increase)."""
        if not self._try_send(link, frame):
            return False
        c = self.counters
        c["sent_msgs"] += 1
        c["direct_sends"] += 1
        return True

    def enqueue_client(self, identity: bytes, item: bytes | None) -> bool:
        """Queue a message (None: an empty frame) for a client connected to our ROUTER;
        False (dropped and counted) beyond ``_CLIENT_OUT_MAX_MSGS`` queued."""
        if len(self._client_out) >= _CLIENT_OUT_MAX_MSGS:
            self.counters["client_gone"] += 1
            return False
        self._client_out.append((identity, item))
        if not self._woken:
            self._woken = True
            os.eventfd_write(self._wake_fd, 1)
        return True

    def _enqueue_to_client(self, node: str, item: bytes) -> bool:
        """A message for the port-less client node ``node``: over our ROUTER to the
        connection it was last heard on; dropped and counted if it never connected."""
        identity = self._client_routes.get(node)
        if identity is None:
            self.counters["client_gone"] += 1
            return False
        return self.enqueue_client(identity, item)

    def set_fault(self, node: str, fault: Fault) -> None:
        if fault.active:
            self._faults[node] = fault
        else:
            self._faults.pop(node, None)
        if fault.active:
            self.link(node)

    def faults(self) -> dict[str, dict[str, object]]:
        return {n: f.as_dict() for n, f in self._faults.items()}

    def is_up(self, node: str) -> bool:
        return self.detector.is_up(node)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counters)
        out["dropped_queue_full"] = self._forgotten_dropped + sum(
            link.dropped for link in self._link_list)
        out["queued"] = {link.node: len(link.queue) for link in self._link_list}
        out["nodes_up"] = self.detector.nodes_up()
        out["protocol"] = {"versions": [self._version_lo, self._version_hi],
                           "peers": dict(self._peer_versions),
                           "refused": {n: [r.oldest, r.newest]
                                       for n, r in self._refused_peers.items()}}
        out["io_thread_alive"] = self._thread.is_alive() and not self.dead
        return out

    def _wake(self) -> None:
        self._woken = True
        os.eventfd_write(self._wake_fd, 1)

    # ---- I/O thread --------------------------------------------------------------
    def _run(self) -> None:
        poller = self._poller
        if self._router is not None:
            poller.register(self._router, zmq.POLLIN)
            poller.register(self._router_mon, zmq.POLLIN)
        poller.register(self._wake_fd, zmq.POLLIN)
        if self._zap is not None:
            poller.register(self._zap, zmq.POLLIN)
        errors: list[float] = []
        try:
            while not self._stopping:
                try:
                    self._loop()
                except Exception:
                    # A bug here must not silently cut the node off: log, count, go on;
                    # a storm of them (like a supervisor's intensity limit) stops the node.
                    self.counters["io_errors"] += 1
                    logger.exception("%s: error in the transport I/O loop", self.node)
                    now = time.monotonic()
                    errors = [t for t in errors if now - t < 10.0] + [now]
                    if len(errors) > 20:
                        logger.critical("%s: transport I/O thread gives up", self.node)
                        self.dead = True
                        return
                    time.sleep(0.01)
        finally:
            self._close()

    def _loop(self) -> None:
        poller = self._poller
        interval_s = self.config.heartbeat_interval_ms / 1000.0
        next_tick = time.monotonic()
        counters = self.counters
        while not self._stopping:
            timeout_ms = max(0.0, (min(next_tick, self._next_delayed_s()) - time.monotonic()) * 1000)
            events = poller.poll(int(timeout_ms + 0.999))
            if _T.ON: _T.mark("io", f"poll returned {len(events)}")  # TRACE
            counters["wakeups"] += 1
            drain = False
            dealers: list[Any] = []
            for sock, _ev in events:
                if sock is self._router:
                    drain = True
                elif sock == self._wake_fd:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
                elif sock in self._monitor_socks:
                    self._on_monitor_event(*self._monitor_socks[sock])
                elif sock is self._router_mon:
                    self._on_router_monitor()
                elif sock is self._zap:
                    self._on_zap()
                elif _ev & _POLLOUT:
                    self._writable.add(sock)  # POLLOUT on a DEALER with a parked frame
                    if _ev & _POLLIN:
                        dealers.append(sock)
                else:
                    dealers.append(sock)  # (client node) replies on a DEALER
            self._woken = False
            # Send before receiving: a reply queued by a server goes out now rather than
            # after the decoding and delivery of every frame that arrived meanwhile.
            with self._send_lock:
                self._flush()
            if drain:
                self._drain_router()
            if dealers:
                with self._send_lock:
                    for sock in dealers:
                        self._drain_dealer(sock)
            now = time.monotonic()
            if now >= next_tick:
                with self._send_lock:
                    self._tick(now)
                next_tick = now + interval_s

    def _close(self) -> None:
        for mon, _link in self._monitor_socks.values():
            mon.close(0)
        with self._send_lock:
            self._stopping = True
            for link in self._link_list:
                if link.sock is not None:
                    link.sock.close(0)
                    link.sock = None
        if self._router is not None:
            self._router.disable_monitor()
            self._router_mon.close(0)
            self._router.close(0)
        if self._zap is not None:
            self._zap.close(0)
        if self._curve is not None:  # the transport's own context
            self._ctx.term()
        # The eventfd is closed by a finalizer, not here: a sender may still hold this
        # transport and write to it; closing now could let it write into a reused fd.

    def _next_delayed_s(self) -> float:
        due = float("inf")
        for link in self._link_list:
            if link.delayed:
                due = min(due, link.delayed[0][0])
        return due

    def _open(self, link: PeerLink) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        _tune(sock, self.config)
        if self._curve is not None:
            assert self._allowed is not None
            server_key = self._allowed.key_of(link.node)
            if server_key is None:  # removed from the file since the link was made
                logger.warning("%s: %s has no key in %s any more; its link will not connect",
                               self.node, link.node, self._allowed.path)
                server_key = self._curve[0]  # a handshake that fails: nothing is sent
            sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self._curve[0])
            sock.setsockopt(zmq.CURVE_SECRETKEY, self._curve[1])
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self.config.down_on_disconnect:
            mon = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            fd = mon.getsockopt(zmq.FD)
            self._monitor_socks[fd] = (mon, link)
            self._poller.register(fd, zmq.POLLIN)
            # ZMQ_FD only signals a change: take anything already there, so the
            # descriptor is armed for the next event.
            self._on_monitor_event(mon, link)
        if self.client_only:  # its replies come back on this socket
            sock.setsockopt(zmq.MAXMSGSIZE, self.config.frame_max_bytes)
            self._dealers[sock] = link
            self._poller.register(sock, zmq.POLLIN)
        sock.connect(link.endpoint)
        link.sock = sock  # the caller (_flush) holds the send lock
        self.detector.track(link.node, time.monotonic())
        link.hello_due = False
        # nothing but the hello until the peer's answer, unless its hello came first
        # (a link made again after _forget, or on a peer's hello)
        agreed = self._peer_versions.get(link.node)
        link.awaiting_hello = agreed is None and link.node not in self._refused_peers
        link.refused = link.node in self._refused_peers
        if agreed is not None and agreed != link.version:
            link.version = agreed
            link.prefix = envelope.batch_prefix(self.node, self._creation, self._link_flags, agreed)
        link.hello_sent_s = time.monotonic()
        self._send_hello(link, is_answer=False)  # the link's first frame
        if self.client_only and link.awaiting_hello:
            # a member answers a client's empty frame with one: one that predates
            # hellos answers it (and never our hello), so we know at once.  Behind the
            # hello if that is parked (the link connects): delayed frames go in order.
            empty = self._frame(link, [])
            if link.pending is not None:
                link.delayed.append((time.monotonic(), empty))
            elif not self._try_send(link, empty):
                self._set_pending(link, empty)

    def _flush(self) -> None:
        if self._client_out:
            self._flush_clients()
        now = time.monotonic()
        cfg = self.config
        for link in self._link_list:
            if link.sock is None:
                self._open(link)
            if link.delayed:
                self._send_delayed(link, now)
            if link.pending is not None:
                # Retry a parked frame only when ZeroMQ says the socket is writable (or on
                # the tick): a refused send raises zmq.Again, which is not cheap.
                if link.sock not in self._writable or not self._retry_pending(link):
                    continue
            if link.hello_due:
                link.hello_due = False
                self._send_hello(link, is_answer=True)
                if link.pending is not None:
                    continue
            if link.refused:
                if link.queue:
                    self.counters["version_dropped"] += len(link.queue)
                    link.queue.clear()
                continue
            if link.awaiting_hello:
                continue  # sent once the peer's hello says which version it reads
            while link.queue:
                if len(link.delayed) >= _DELAYED_MAX_FRAMES:
                    break  # a long delay fault: the bounded queue takes the backlog
                items = link.take(cfg.batch_max_msgs, cfg.batch_max_bytes)
                fault = self._faults.get(link.node, NO_FAULT)
                if fault is not NO_FAULT:
                    items = self._apply_fault(fault, items)
                    if not items:
                        continue
                frame = self._frame(link, items)
                self.counters["sent_msgs"] += len(items)
                if fault.delay_ms > 0 or link.delayed:  # behind delayed frames: keep order
                    link.delayed.append((now + fault.delay_ms / 1000.0, frame))
                    continue
                if not self._try_send(link, frame):
                    self._set_pending(link, frame)
                    break

    def _apply_fault(self, fault: Fault, items: list[bytes]) -> list[bytes]:
        if fault.partitioned:
            self.counters["dropped_fault"] += len(items)
            return []
        if fault.drop > 0:
            rnd = self._rng.random
            kept = [it for it in items if rnd() >= fault.drop]
            self.counters["dropped_fault"] += len(items) - len(kept)
            return kept
        return items

    def _send_delayed(self, link: PeerLink, now: float) -> None:
        while link.delayed and link.delayed[0][0] <= now and link.pending is None:
            _, frame = link.delayed.popleft()
            if not self._try_send(link, frame):
                self._set_pending(link, frame)

    def _retry_pending(self, link: PeerLink) -> bool:
        self._writable.discard(link.sock)
        assert link.pending is not None
        if not self._try_send(link, link.pending):
            return False
        self._set_pending(link, None)
        return True

    def _set_pending(self, link: PeerLink, frame: bytes | None) -> None:
        """Park a frame the socket refused; poll for POLLOUT on that socket meanwhile."""
        if frame is not None and link.pending is None:
            self._poller.register(link.sock, _POLLOUT | (_POLLIN if self.client_only else 0))
        elif frame is None and link.pending is not None:
            if self.client_only:
                self._poller.register(link.sock, _POLLIN)
            else:
                self._poller.unregister(link.sock)
        link.pending = frame

    def _frame(self, link: PeerLink, items: list[bytes]) -> bytes:
        """The next sealed frame on ``link`` of this node's messages ``items`` (already
        encoded).  Callers hold the send lock, and frames are sent in the order they
        are built, so a link's counters reach the receiver in increasing order."""
        link.counter += 1
        return envelope.seal(self._key, envelope.build_body(link.prefix, link.session,
                                                            link.counter, items))

    def _send_hello(self, link: PeerLink, is_answer: bool) -> None:
        """(Holding the send lock, nothing parked on ``link``.)  Send our version range
        as the next frame on ``link``: behind its delayed frames if a delay fault holds
        some (they have lower counters, which the peer must see first), else now,
        parked like any frame if ZeroMQ refuses it."""
        link.counter += 1
        frame = envelope.seal(self._key, envelope.hello_body(
            self.node, self._creation, self._link_flags, link.session, link.counter,
            self._versions, is_answer))
        self.counters["hellos_sent"] += 1
        if link.delayed:
            link.delayed.append((time.monotonic(), frame))
        elif not self._try_send(link, frame):
            self._set_pending(link, frame)

    def _client_frame(self, items: list[bytes], identity: bytes) -> bytes:
        """A sealed frame for a client connected to our ROUTER, at the version agreed
        with it (I/O thread only)."""
        self._reply_counter += 1
        return envelope.seal(self._key, envelope.build_body(
            self._client_prefixes.get(identity, self._client_prefix), self._reply_session,
            self._reply_counter, items))

    def _try_send(self, link: PeerLink, frame: bytes) -> bool:
        sock = link.sock
        try:
            if _T.ON: _T.mark("tx", f"zmq send {link.node} {len(frame)}B")  # TRACE
            sock.send(frame, _NOBLOCK)  # copy: zero-copy costs a pyzmq GC-thread hop per frame
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            self.counters["send_errors"] += 1
            logger.warning("%s: send to %s failed: %s", self.node, link.node, exc)
            return True  # frame is lost; do not retry forever
        c = self.counters
        c["sent_batches"] += 1
        c["sent_bytes"] += len(frame)
        link.last_sent_s = time.monotonic()
        return True

    def _flush_clients(self) -> None:
        out = self._client_out
        popleft = out.popleft
        while out:
            identity, item = popleft()
            items = [item] if item is not None else []
            while out and out[0][0] == identity and len(items) < self.config.batch_max_msgs:
                more = popleft()[1]
                if more is not None:
                    items.append(more)
            try:
                self._router.send_multipart([identity, self._client_frame(items, identity)],
                                            zmq.NOBLOCK)
            except zmq.ZMQError:  # gone (ROUTER_MANDATORY: EHOSTUNREACH) or full
                self.counters["send_errors"] += 1

    def _tick(self, now: float) -> None:
        interval_s = self.config.heartbeat_interval_ms / 1000.0
        if self.client_only and now >= self._renew_s:
            self._renew_s = now + CLIENT_SESSION_RENEW_S
            for link in self._link_list:  # (holding the send lock)
                link.session = replay.new_session(self._rng)
                link.counter = 0
        for link in self._link_list:
            if link.pending is not None:
                self._retry_pending(link)
        for link in self._link_list:
            if link.awaiting_hello and now - link.hello_sent_s > self._hello_wait_s:
                self._no_hello(link, f"none came in {self._hello_wait_s:.1f} s")
            # (heartbeats go out while a hello is awaited: a peer that predates hellos
            # answers them, which is how we learn it is one; ours, written at our
            # oldest version, are 90 % of an interval after the hello, its answer far
            # sooner)
            if link.sock is None or link.pending is not None or link.delayed or link.refused:
                continue
            if now - link.last_sent_s < interval_s * 0.9:
                continue
            fault = self._faults.get(link.node)
            if fault is not None and fault.partitioned:
                continue
            empty = self._frame(link, [])
            if self._try_send(link, empty):
                self.counters["heartbeats_sent"] += 1
            else:
                self._set_pending(link, empty)
        for event, node in self.detector.check(now):
            self._emit(event, node)
        for link in self._link_list:
            if (self.detector.never_heard_for_s(link.node, now) > self.config.unreachable_forget_s
                    and link.node not in self._faults):
                self._forget(link)

    def _forget(self, link: PeerLink) -> None:
        """Close a link to a node that never answered (a typo, a fuzzer's invented name).

        What was queued for it is dropped and counted; a later send makes a new link."""
        logger.info("%s: forgetting %s (never answered)", self.node, link.node)
        with self._links_lock:
            self._links.pop(link.node, None)
            self._link_list = [x for x in self._link_list if x is not link]
        if link.pending is not None:
            self._set_pending(link, None)  # unregisters its POLLOUT while the socket exists
        self._writable.discard(link.sock)
        if link.sock is not None and self.client_only:
            self._poller.unregister(link.sock)
        if link.sock is not None:
            if self.config.down_on_disconnect:
                link.sock.disable_monitor()
            link.sock.close(0)
            link.sock = None
        for fd, (mon, owner) in list(self._monitor_socks.items()):
            if owner is link:
                self._poller.unregister(fd)
                del self._monitor_socks[fd]
                mon.close(0)
        self._dealers = {s: x for s, x in self._dealers.items() if x is not link}
        self.detector.forget(link.node)
        self.counters["forgotten_links"] += 1
        self._forgotten_dropped += link.dropped + len(link.queue)

    def _on_monitor_event(self, mon: Any, link: PeerLink) -> None:
        """Take every event of ``link``'s monitor socket.  Receiving until zmq.Again is
        what re-arms its ZMQ_FD (an edge-style signal): stopping early would leave an
        event unseen until the next one."""
        while True:
            try:
                mon.recv_multipart(_NOBLOCK)  # [event id + value, endpoint]: only DISCONNECTED
            except zmq.Again:
                break
            for event, node in self.detector.lost(link.node, time.monotonic()):
                self._emit(event, node)

    def _key_matches(self, sender: str, zframe: Any) -> bool:
        """(curve) The connection's key is the one listed (or learned) for ``sender``."""
        assert self._allowed is not None
        try:
            key = zframe.get("User-Id").encode()
        except (AttributeError, zmq.ZMQError):
            return False
        listed = self._allowed.key_of(sender)
        if listed is not None:
            return listed == key
        return self._allowed.learn(sender, key)

    def _log_refusal(self, fmt: str, *args: Any) -> None:
        """A refusal at WARNING at most once per 10 s (a flood must not flood the log),
        the others at DEBUG; the counters count them all."""
        now = time.monotonic()
        if now - self._refusal_logged_s >= 10.0:
            self._refusal_logged_s = now
            logger.warning(fmt + " (further refusals for 10 s at DEBUG)", *args)
        else:
            logger.debug(fmt, *args)

    def _on_router_monitor(self) -> None:
        """Count the ROUTER's failed handshakes (a wrong or unlisted CURVE key, bytes
        that are not ZMTP); the connection is already closed by ZeroMQ."""
        while True:
            try:
                self._router_mon.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            self.counters["handshake_failures"] += 1

    def _on_zap(self) -> None:
        """Answer ZeroMQ's authentication requests (RFC 27 ZAP) for the ROUTER: a CURVE
        client key must be listed in the allowed-keys file."""
        assert self._zap is not None and self._allowed is not None
        while True:
            try:
                req = self._zap.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            version, request_id = (req + [b"", b""])[:2]
            user = None
            if len(req) >= 7 and req[5] == b"CURVE" and len(req[6]) == 32:
                try:
                    key = z85.encode(req[6])
                    user = key if self._allowed.allows(key) else None
                except Exception:  # the REP socket must answer every request
                    logger.exception("%s: ZAP check failed", self.node)
            if user is None:
                self.counters["refused_keys"] += 1
                self._log_refusal("%s: refused a connection from %s: its CURVE key is not in %s",
                               self.node, req[3].decode(errors="replace") if len(req) > 3 else "?",
                               self._allowed.path)
                reply = [version, request_id, b"400", b"key not allowed", b"", b""]
            else:
                # the key is the connection's User-Id: each frame's sender is checked
                # against it (_on_frame)
                reply = [version, request_id, b"200", b"OK", user, b""]
            self._zap.send_multipart(reply)

    def _emit(self, event: str, node: str) -> None:
        logger.info("%s: %s %s", self.node, event, node)
        try:
            self._on_node_event(event, node)
        except Exception:
            logger.exception("%s: node event handler failed", self.node)

    def _drain_router(self) -> None:
        router = self._router
        recv = router.recv
        events = router.getsockopt
        # Ask before receiving: a zmq.Again exception costs ~4x an EVENTS query.
        more = events(_EVENTS) & _POLLIN  # type: ignore[operator]
        for _ in range(self.config.recv_max_frames_per_wake):
            if not more:
                return
            frame = recv(_NOBLOCK, copy=False)
            parts = [frame.bytes]
            while frame.more:
                frame = recv(_NOBLOCK, copy=False)
                parts.append(frame.bytes)
            more = events(_EVENTS) & _POLLIN  # type: ignore[operator]
            try:
                self._on_frame(parts, not more, frame)
            except Exception:  # never let one frame take the node down
                self.counters["bad_frames"] += 1
                logger.exception("%s: error while handling a frame", self.node)

    def _on_frame(self, parts: list[bytes], last: bool = False, zframe: Any = None) -> None:
        """Authenticate, decode and deliver one frame; ``last``: no other frame is
        waiting (the receiver may then run a lone message's handler in this thread);
        ``zframe``: its ZeroMQ frame (curve: the connection's key is its User-Id)."""
        c = self.counters
        if len(parts) != 2:
            c["bad_frames"] += 1
            return
        identity, frame = parts
        body = envelope.unseal(self._key, frame)
        if body is None:
            c["refused"] += 1
            logger.debug("%s: refused a frame with a bad MAC", self.node)
            return
        try:
            version, sender, creation, flags, session, counter, msgs = envelope.parse_any(body)
        except envelope.BadFrame as exc:
            c["bad_frames"] += 1
            logger.debug("%s: bad frame: %s", self.node, exc)
            return
        client = bool(flags & envelope.FLAG_CLIENT)
        refusal = self._replay.check(sender, client, session, counter)
        if refusal is not None:
            c[refusal] += 1
            self._log_refusal("%s: refused a frame from %s: %s (session %x, counter %d)",
                              self.node, sender, refusal.replace("_", " "), session, counter)
            return
        if self._allowed is not None and not client and not self._key_matches(sender, zframe):
            c["refused_keys"] += 1
            self._log_refusal("%s: refused a frame from %s: its connection's key is not the "
                              "one %s lists for it", self.node, sender, self._allowed.path)
            return
        if flags & FLAG_HELLO:
            if not self._on_hello(sender, msgs, identity if client else None):
                return
            msgs = _NO_MSGS  # a hello frame carries nothing else
        elif version < self._version_lo or version > self._version_hi or sender in self._refused_peers:
            self._refuse_version(sender, version)
            return
        if client:
            # a port-less client node's heartbeats make a route too: a leader it never
            # sent a command to can still notify it (pipelined commands' outcomes)
            if self._client_routes.get(sender) != identity and is_client_name(sender):
                self._route_client(sender, identity)
            if not msgs:  # a client's heartbeat: answer, so its failure detector hears us
                self.enqueue_client(identity, None)
        else:
            fault = self._faults.get(sender)
            if fault is not None and fault.partitioned:
                c["dropped_fault"] += len(msgs)
                return
            link = self._links.get(sender)
            if link is None:
                try:
                    self.link(sender)
                except BadArgument:
                    c["bad_frames"] += 1
                    return
            elif link.awaiting_hello and msgs is not _NO_MSGS:
                self._no_hello(link, "a frame came first", version)
            for event, node in self.detector.heard(sender, creation, time.monotonic()):
                self._emit(event, node)
        c["recv_batches"] += 1
        c["recv_bytes"] += len(frame)
        if msgs:
            c["recv_msgs"] += len(msgs)
            if _T.ON: _T.mark("rx", f"frame from {sender} {len(msgs)} msgs")  # TRACE
            self._on_messages(sender, identity if client else None, msgs, last)

    def _on_hello(self, sender: str, msgs: list[Any], client_identity: bytes | None) -> bool:
        """(I/O thread.)  Agree a protocol version with ``sender`` from its hello, or
        refuse it; answer a hello that is not an answer.  True if ``sender`` may talk
        to us."""
        c = self.counters
        try:
            kind, oldest, newest, is_answer = msgs[0]
            if kind != K_HELLO:
                raise ValueError(kind)
            theirs = versions.VersionRange(oldest, newest)
        except (ValueError, TypeError, IndexError):
            c["bad_frames"] += 1
            return False
        c["hellos_recv"] += 1
        agreed = versions.negotiate(self._versions, theirs)
        if agreed is None:
            c["version_refused"] += 1
            if self._refused_peers.get(sender) != theirs:
                logger.warning("%s: refusing node %s: it speaks protocol versions %s, this node "
                               "%s; no version in common (upgrade one of them)",
                               self.node, sender, theirs, self._versions)
            self._refused_peers[sender] = theirs
            self._peer_versions.pop(sender, None)
        else:
            if sender in self._refused_peers or self._peer_versions.get(sender) != agreed:
                logger.info("%s: speaking protocol version %d with %s (its versions %s, ours %s)",
                            self.node, agreed, sender, theirs, self._versions)
            self._refused_peers.pop(sender, None)
            self._peer_versions[sender] = agreed
        if client_identity is not None:  # a client over our ROUTER: answer on its connection
            prefixes = self._client_prefixes
            prefixes.pop(client_identity, None)
            if agreed is not None and agreed != self._version_lo:
                if len(prefixes) >= _CLIENT_ROUTES_MAX:
                    del prefixes[next(iter(prefixes))]
                prefixes[client_identity] = envelope.batch_prefix(
                    self.node, self._creation, envelope.FLAG_CLIENT, agreed)
            if not is_answer:
                self._answer_client_hello(client_identity)
            return agreed is not None
        link = self._links.get(sender)
        if link is None and not self.client_only:
            try:
                link = self.link(sender)
            except BadArgument:
                return False
        if link is not None:
            link.refused = agreed is None
            if link.awaiting_hello:
                link.awaiting_hello = False
                self._wake()  # what was queued meanwhile goes out
            if agreed is not None and agreed != link.version:
                link.version = agreed
                link.prefix = envelope.batch_prefix(self.node, self._creation, self._link_flags,
                                                    agreed)
            if not is_answer:
                link.hello_due = True
                self._wake()
        return agreed is not None

    def _no_hello(self, link: PeerLink, why: str, heard_version: int | None = None) -> None:
        """Stop waiting for ``link``'s peer's hello: the peer predates hellos, or its link
        to us is older than ours to it (we restarted: its hello went to our previous
        incarnation, and it answers ours later), or its hello is late.  Meanwhile write
        the version of the frame we just took from it (one it writes, so one it reads,
        and one we read), else our oldest, as before hellos existed."""
        link.awaiting_hello = False
        if heard_version is not None and heard_version != link.version:
            link.version = heard_version
            link.prefix = envelope.batch_prefix(self.node, self._creation, self._link_flags,
                                                heard_version)
        logger.info("%s: no protocol hello from %s yet (%s): writing version %d to it until "
                    "one comes", self.node, link.node, why, link.version)
        self._wake()

    def _answer_client_hello(self, identity: bytes) -> None:
        """(I/O thread.)  Our hello, as an answer, to a client connected to our ROUTER."""
        self._reply_counter += 1
        frame = envelope.seal(self._key, envelope.hello_body(
            self.node, self._creation, envelope.FLAG_CLIENT, self._reply_session,
            self._reply_counter, self._versions, True))
        try:
            self._router.send_multipart([identity, frame], zmq.NOBLOCK)
            self.counters["hellos_sent"] += 1
        except zmq.ZMQError:
            self.counters["send_errors"] += 1

    def _refuse_version(self, sender: str, version: int) -> None:
        """Count and (rate-limited) log a frame from a refused peer or at a version we
        do not know."""
        self.counters["version_refused"] += 1
        theirs = self._refused_peers.get(sender)
        self._log_refusal("%s: refused a frame from %s written at protocol version %d: %s",
                          self.node, sender, version,
                          f"its versions {theirs} have none in common with ours {self._versions}"
                          if theirs is not None else f"this node knows {self._versions}")

    def _route_client(self, sender: str, identity: bytes) -> None:
        """Remember the connection the port-less client node ``sender`` is on (the
        oldest of ``_CLIENT_ROUTES_MAX`` are forgotten)."""
        routes = self._client_routes
        routes.pop(sender, None)
        if len(routes) >= _CLIENT_ROUTES_MAX:
            del routes[next(iter(routes))]
        routes[sender] = identity

    def _drain_dealer(self, sock: Any) -> None:
        """(Client node, holding the send lock.)  Take what a member sent back on one
        of our DEALERs: authenticated, replay-checked as that member's link (its
        replies to clients are one session with increasing counters), delivered."""
        link = self._dealers.get(sock)
        if link is None:
            return
        c = self.counters
        for _ in range(self.config.recv_max_frames_per_wake):
            try:
                frame = sock.recv(_NOBLOCK)
            except zmq.Again:
                return
            body = envelope.unseal(self._key, frame)
            if body is None:
                c["refused"] += 1
                continue
            try:
                version, sender, creation, flags, session, counter, msgs = envelope.parse_any(body)
            except envelope.BadFrame:
                c["bad_frames"] += 1
                continue
            if sender != link.node:
                c["bad_frames"] += 1
                continue
            refusal = self._replay.check(sender, False, session, counter)
            if refusal is not None:
                c[refusal] += 1
                continue
            if flags & FLAG_HELLO:
                if not self._on_hello(sender, msgs, None):
                    continue
                msgs = []
            elif (version < self._version_lo or version > self._version_hi
                    or sender in self._refused_peers):
                self._refuse_version(sender, version)
                continue
            elif link.awaiting_hello:
                self._no_hello(link, "a frame came first", version)
            for event, node in self.detector.heard(sender, creation, time.monotonic()):
                self._emit(event, node)
            c["recv_batches"] += 1
            c["recv_bytes"] += len(frame)
            if msgs:
                c["recv_msgs"] += len(msgs)
                try:
                    self._on_messages(sender, None, msgs, False)
                except Exception:
                    c["bad_frames"] += 1
                    logger.exception("%s: error while handling a frame", self.node)
