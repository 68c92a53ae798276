"""The admin endpoint: what the console asks a running node.

Requests arrive as ``K_ADMIN`` messages on the node's ordinary ROUTER socket,
authenticated with the cookie like every frame, and are answered in a short-lived
thread (so a slow tree snapshot never stalls the I/O thread).  Requests are
plain lists:

=============================================  =======================================
``["ping"]``                                   ``["pong", node]``
``["tree"]``                                   ``supervisors.tree_snapshot()``
``["status"]``                                 node, connected nodes, counters, plus
                                               the system layer's status provider
``["stats"]``                                  ``transport_stats()``
``["process"]``                                {threads: ``threading.active_count()``,
                                               os_threads, rss_bytes} of the node process
``["registered"]``                             sorted registered names
``["kill", name]``                             crash that actor (its supervisor restarts it)
``["kill_urn", urn]``                          same, for an unnamed actor (urn from the tree)
``["set_fault", peer, {drop, delay_ms,         fault injection toward ``peer``
partitioned}]``
``["clear_faults"]``                           remove every fault
=============================================  =======================================

:func:`admin_call` is the client: it needs no node, only the cookie (and in
``"curve"`` mode a key listed in the node's allowed-keys file); it opens a
temporary DEALER, sends one signed request in a session of its own (the node
refuses a replay of it, ``raft_otp.node.replay``) and waits for the signed reply.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from typing import Any

import pykka
import zmq
from supervisors import registry

from raft_otp.errors import BadArgument, NodeDown, ServerNotFound
from raft_otp.node import codec, envelope, replay, security
from raft_otp.node.transport import endpoint_of

__all__ = ["handle", "admin_call", "kill", "kill_urn", "process_status"]

_ids = itertools.count(random.getrandbits(32))


def kill(name: str) -> bool:
    """Crash the actor registered as ``name`` (abnormal exit: its supervisor restarts it)."""
    ref = registry.whereis(name)
    if ref is None or not isinstance(ref, pykka.ActorRef):
        raise ServerNotFound(f"no actor registered as {name!r}")
    return _crash(ref)


def kill_urn(urn: str) -> bool:
    """Crash the actor whose pykka URN is ``urn`` (as shown by the tree snapshot)."""
    ref = pykka.ActorRegistry.get_by_urn(urn)
    if ref is None:
        raise ServerNotFound(f"no live actor with urn {urn!r}")
    return _crash(ref)


def _crash(ref: Any) -> bool:
    try:
        from supervisors._watch import kill as sup_kill  # exit reason 'killed', as exit(Pid, kill)
    except ImportError:  # pragma: no cover - fall back to a failing proxy call
        ref.tell(pykka.messages.ProxyCall(attr_path=("__raft_otp_killed__",), args=(), kwargs={}))
    else:
        sup_kill(ref, "killed")
    return True


def process_status() -> dict[str, int | None]:
    """The node process's Python threads (``threading.active_count()``), its OS
    threads (ZeroMQ's included; None where ``/proc`` is missing) and its RSS in bytes."""
    try:
        os_threads: int | None = len(os.listdir("/proc/self/task"))
    except OSError:
        os_threads = None
    rss: int | None = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return {"threads": threading.active_count(), "os_threads": os_threads, "rss_bytes": rss}


def handle(request: Any) -> Any:
    """Answer one admin request (runs in an admin worker thread)."""
    from raft_otp.node import runtime

    if not isinstance(request, list) or not request or not isinstance(request[0], str):
        raise BadArgument(f"admin request must be [op, ...], got {request!r}")
    op, args = request[0], request[1:]
    if op == "ping":
        return ["pong", runtime.node()]
    if op == "tree":
        import supervisors

        return supervisors.tree_snapshot()
    if op == "status":
        return runtime._status()
    if op == "stats":
        return runtime.transport_stats()
    if op == "process":
        return process_status()
    if op == "registered":
        return sorted(registry.registered())
    if op == "kill" and len(args) == 1:
        return kill(str(args[0]))
    if op == "kill_urn" and len(args) == 1:
        return kill_urn(str(args[0]))
    if op == "set_fault" and len(args) == 2 and isinstance(args[1], dict):
        opts = args[1]
        runtime.set_fault(
            str(args[0]),
            drop=float(opts.get("drop", 0.0)),
            delay_ms=float(opts.get("delay_ms", 0.0)),
            partitioned=bool(opts.get("partitioned", False)),
        )
        return True
    if op == "clear_faults":
        for peer in list(runtime.transport_stats().get("faults", {})):
            runtime.set_fault(peer)
        return True
    raise BadArgument(f"unknown admin request {request!r}")


def admin_call(node_name: str, request: Any, cookie: str, timeout: float = 5.0,
               transport_security: security.Security | None = None) -> Any:
    """Send one admin request to ``node_name`` and return its answer.

    Usable from any process (no node needed).  ``transport_security``: the transport
    security to use (default: :func:`raft_otp.node.security.default`).  Raises
    NodeDown if nothing answers in ``timeout`` seconds (unreachable node, wrong
    cookie or key: a refused frame gets no answer), or the remote error.
    """
    sec = transport_security or security.default()
    key = envelope.derive_key(cookie)
    call_id = next(_ids)
    prefix = envelope.batch_prefix("admin-client", 0, envelope.FLAG_CLIENT)
    body = envelope.build_body(prefix, replay.new_session(), 1,
                               [codec.packb([envelope.K_ADMIN, call_id, request])])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if sec.mode == "curve":
            _curve_client(sock, sec, node_name)
        sock.connect(endpoint_of(node_name))
        sock.send(envelope.seal(key, body))
        deadline = time.monotonic() + timeout
        while sock.poll(int(max(0.0, deadline - time.monotonic()) * 1000), zmq.POLLIN):
            parts = sock.recv_multipart()
            reply = envelope.unseal(key, parts[0]) if len(parts) == 1 else None
            if reply is None:
                continue
            msgs = envelope.parse(reply)[-1]
            for m in msgs:
                if m[0] == envelope.K_REPLY and m[1] == call_id:
                    if m[2]:
                        return m[3]
                    raise codec.decode_error(m[3])
        raise NodeDown(f"no admin answer from {node_name} within {timeout} s")
    finally:
        sock.close(0)



def _curve_client(sock: Any, sec: security.Security, node_name: str) -> None:
    """Make ``sock`` a CURVE client of ``node_name`` with the key pair of ``sec``."""
    assert sec.key_file and sec.allowed_keys
    public = security.ensure_key_file(sec.key_file)
    server_key = security.AllowedKeys(sec.allowed_keys).key_of(node_name)
    if server_key is None:
        raise BadArgument(f"node {node_name} has no public key in the allowed-keys file "
                          f"{sec.allowed_keys} (transport_security 'curve')")
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, security.read_key_file(sec.key_file))
