"""The public API, with RA's names (``ra.erl``).

Server ids are ``ServerId(name, node)``; a server on another node is reached
through the node transport, and managing it (start, stop, delete) goes to
that node's system actor by name.  Every call takes ``timeout`` in seconds and
raises one of ``raft_otp.errors`` on an expected failure:

* ``NotLeader(server, leader)`` - only from calls that do not follow redirects;
  ``process_command`` and the membership calls follow the leader hint
  themselves until ``timeout``;
* ``ServerNotFound`` / ``NodeDown`` - the server or its node is unreachable
  (the request was not delivered);
* ``Timeout`` - no answer in time: the outcome is unknown;
* ``ClusterChangeNotPermitted`` - a membership change is pending or refused;
* ``BadArgument`` - an invalid machine, query or id.

Machines are given as ``(class or "module:Class", config)``; a remote node
imports the class by its path.  Queries are callables of the machine state;
to reach a server on another node a query must be a module-level function
(sent as its import path) or ``("module:function", [args])`` which is called
as ``function(state, *args)``.
"""

from __future__ import annotations
from raft_otp import _trace as _T  # TRACE

import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Sequence

from raft_otp.core import events as ev
from raft_otp.core.types import ServerId
from raft_otp.errors import (BadArgument, ClusterChangeNotPermitted, NodeDown, NotLeader,
                             RaftError, ServerNotFound, Timeout)
from raft_otp.server import client
from raft_otp.server.messages import CallReply, StateQuery
from raft_otp.system import runtime
from raft_otp.system.resolve import machine_spec, query_ref
from raft_otp.system.runtime import System, get_system, start_in, start_system, stop_system
from raft_otp.system.system_actor import (ServerOpReq, StartServerReq, SystemOverviewReq,
                                          actor_name)

__all__ = [
    "add_member", "consistent_query", "delete_cluster", "force_delete_server", "key_metrics",
    "leader_query", "leave_and_delete_server", "local_query", "member_overview", "members", "overview", "ping",
    "pipeline_command", "pipeline_commands", "process_command", "remove_member",
    "restart_server", "start_cluster", "start_in", "start_server", "start_system",
    "stop_server", "stop_system", "transfer_leadership", "trigger_election",
]

DEFAULT_TIMEOUT_S = 5.0
_log = logging.getLogger("raft_otp.api")

# Wire types (requests and replies) must be known to a client-only node too.
from raft_otp.server.wire import register_all as _register_server_wire  # noqa: E402

_register_server_wire()
runtime._register_system_wire()
_RETRY_PAUSE_S = 0.02


def _sys_name(system: System | str) -> str:
    return system.name if isinstance(system, System) else system


def _raise_for(reply: CallReply, target: ServerId) -> None:
    """Map a failed CallReply to the exception tree."""
    reason = reply.value
    if reason == "not_leader":
        raise NotLeader(target, reply.leader)
    if reason in ("cluster_change_not_permitted", "already_member", "not_member", "not_caught_up"):
        raise ClusterChangeNotPermitted(f"{target}: {reason}")
    if reason == "timeout":
        raise Timeout(f"{target}: timed out")
    if reason == "leadership_lost":
        raise Timeout(f"{target}: leadership lost while the command was pending; outcome unknown")
    if isinstance(reason, str) and reason.startswith("bad_query"):
        raise BadArgument(f"{target}: {reason}")
    raise RaftError(f"{target}: {reason}")


def _leader_call(server_id: Any, make: Callable[[Any], Any], timeout: float,
                 follow: bool = True, resend: bool = False) -> CallReply:
    """Call a server, following ``not_leader`` hints (and waiting out elections) until
    ``timeout``.  Failures that prove non-delivery are retried.  With ``resend`` (safe
    for queries, and for commands carrying a client session) an attempt that got no
    answer within ``max(1 s, timeout/4)`` is sent again, to the member first given:
    a message to a server that died (or restarted) just then is lost silently."""
    target = origin = client.server_id(server_id)
    deadline = time.monotonic() + timeout
    attempt_s = max(1.0, timeout / 4) if resend else None
    last_exc: Exception | None = None
    maybe_delivered = False  # an earlier attempt ended without an answer
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if last_exc is not None:
                raise Timeout(f"{origin}: no leader answered within {timeout} s ({last_exc})")
            raise Timeout(f"{origin}: no answer within {timeout} s")
        try:
            wait = remaining if attempt_s is None else min(remaining, attempt_s)
            reply = client.call(target, make, wait)
        except Timeout as exc:
            if attempt_s is None or deadline - time.monotonic() <= 0:
                raise
            last_exc, target, maybe_delivered = exc, origin, True
            continue
        except (ServerNotFound, NodeDown) as exc:
            if target == origin or not follow:
                if maybe_delivered:  # this attempt was not delivered, an earlier one may have been
                    raise Timeout(f"{origin}: {exc}; an earlier attempt got no answer: outcome unknown") from exc
                raise
            last_exc, target = exc, origin  # stale hint: ask the member we were given
            time.sleep(min(_RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
            continue
        if reply.ok or not follow or reply.value != "not_leader":
            return reply
        last_exc = NotLeader(target, reply.leader)
        if reply.leader is not None and reply.leader != target:
            target = ServerId(*reply.leader)
        else:  # election under way
            time.sleep(min(_RETRY_PAUSE_S * 5, max(0.0, deadline - time.monotonic())))


def _ok(reply: CallReply, target: Any) -> Any:
    if not reply.ok:
        _raise_for(reply, client.server_id(target))
    return reply.value


def _system_call(system: System | str, node: str, request: Any, timeout: float) -> Any:
    """Synchronous request to the system actor ``system`` on ``node`` (local or remote)."""
    from raft_otp.node import runtime as node_mod
    name = actor_name(_sys_name(system))
    if client.is_local(node):
        get_system(system)
        return node_mod.call(name, request, timeout)
    return node_mod.call((name, node), request, timeout)


# ---- servers and clusters ------------------------------------------------------------

def start_server(system: System | str, cluster_name: str, server_id: Any, machine: Any,
                 members: Sequence[Any], timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Start one member (on its own node).  Returns the server's uid."""
    sid = client.server_id(server_id)
    path, config = machine_spec(machine)
    req = StartServerReq(sid.name, cluster_name, path, config,
                         [list(client.server_id(m)) for m in members])
    return _system_call(system, sid.node, req, timeout)


def start_cluster(system: System | str, cluster_name: str, machine: Any,
                  server_ids: Sequence[Any], timeout: float = DEFAULT_TIMEOUT_S
                  ) -> tuple[list[ServerId], list[ServerId]]:
    """Start every member of a new cluster and wait until it has a leader.

    Returns ``(started, not_started)``.  If no member could be started, or no
    leader appears before ``timeout``, the started ones are deleted again and
    everything is reported as not started (RA's behaviour)."""
    ids = [client.server_id(s) for s in server_ids]
    if not ids:
        raise BadArgument("start_cluster needs at least one server id")
    if len(set(ids)) != len(ids):
        raise BadArgument(f"duplicate server ids in {ids}")
    machine_spec(machine)  # validate before touching any node
    if any(client.is_local(s.node) for s in ids):
        get_system(system)  # SystemNotRunning now rather than "not started"
    deadline = time.monotonic() + timeout
    started, not_started = [], []
    for sid in ids:
        try:
            start_server(system, cluster_name, sid, machine, ids,
                         max(0.1, deadline - time.monotonic()))
            started.append(sid)
        except RaftError as exc:
            _log.warning("start_cluster %s: %s not started: %r", cluster_name, sid, exc)
            not_started.append(sid)
    if not started:
        return [], ids
    try:  # RA: a new cluster triggers one election instead of waiting out the pre-vote timer
        # (on a member picked by the cluster name, so many clusters spread their leaders)
        trigger_election(started[sum(cluster_name.encode()) % len(started)])
    except RaftError:
        pass
    try:
        _wait_for_leader(started, deadline)
    except Timeout:
        for sid in started:
            try:
                force_delete_server(system, sid)
            except RaftError:
                pass
        return [], ids
    return started, not_started


def _wait_for_leader(ids: Sequence[ServerId], deadline: float) -> ServerId:
    while True:
        for sid in ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"no leader elected among {ids}")
            try:
                r = client.call(sid, lambda to: StateQuery(to, "ping"), min(remaining, 1.0))
            except RaftError:
                continue
            if r.leader is not None:
                return ServerId(*r.leader)
        time.sleep(0.01)


def restart_server(system: System | str, server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Start a stopped server again from its data (it recovers its log and snapshot)."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("restart", sid.name), timeout)


def stop_server(system: System | str, server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stop a server; its data stays (``restart_server`` brings it back)."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("stop", sid.name), timeout)


def force_delete_server(system: System | str, server_id: Any,
                        timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stop a server and delete all its data, without telling the cluster."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("delete", sid.name), timeout)


def delete_cluster(system: System | str, server_ids: Sequence[Any],
                   timeout: float = DEFAULT_TIMEOUT_S) -> tuple[list[ServerId], list[ServerId]]:
    """Delete every member of a cluster (each on its node).  Returns (deleted, failed)."""
    done, failed = [], []
    for s in server_ids:
        sid = client.server_id(s)
        try:
            force_delete_server(system, sid, timeout)
            done.append(sid)
        except RaftError:
            failed.append(sid)
    return done, failed


# ---- membership ------------------------------------------------------------------------

def add_member(server_id: Any, new_member: Any, kind: str = "voter",
               timeout: float = DEFAULT_TIMEOUT_S) -> ServerId:
    """Add ``new_member`` (already started with the cluster's members) to the cluster.
    Returns the leader.  ``kind``: "voter" | "promotable" | "non_voter"."""
    if kind not in ("voter", "promotable", "non_voter"):
        raise BadArgument(f"member kind must be voter, promotable or non_voter, got {kind!r}")
    new = client.server_id(new_member)
    r = _leader_call(server_id, lambda to: ev.AddMember(to, new, kind), timeout)  # type: ignore[arg-type]
    _ok(r, server_id)
    return ServerId(*r.leader) if r.leader else client.server_id(server_id)


def remove_member(server_id: Any, member: Any, timeout: float = DEFAULT_TIMEOUT_S) -> ServerId:
    """Remove ``member`` from the cluster; returns the leader."""
    old = client.server_id(member)
    r = _leader_call(server_id, lambda to: ev.RemoveMember(to, old), timeout)
    _ok(r, server_id)
    return ServerId(*r.leader) if r.leader else client.server_id(server_id)


def leave_and_delete_server(system: System | str, server_ref: Any, server_id: Any,
                            timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Decommission ``server_id`` (RA ``leave_and_delete_server``): remove it from its
    cluster through ``server_ref`` (any member; the removal is a membership change
    committed through the leader), then stop it and delete its data on its node.

    A server that is no longer a member is just deleted.  Raises like
    :func:`remove_member` (e.g. ``ClusterChangeNotPermitted`` while another change
    is under way) without deleting anything, and like :func:`force_delete_server`
    if the removal committed but the deletion failed (call it again then)."""
    sid = client.server_id(server_id)
    ref = client.server_id(server_ref)
    if ref == sid:
        raise BadArgument("server_ref must be another member than the server to delete")
    current, _leader = members(ref, timeout)
    if sid in current:
        remove_member(ref, sid, timeout)
    force_delete_server(system, sid, timeout)


def members(server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[list[ServerId], ServerId | None]:
    """``(members, leader)`` as known by ``server_id``."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "members"), timeout)
    value = _ok(r, server_id)
    return [ServerId(*m) for m, _kind in value], (ServerId(*r.leader) if r.leader else None)


def transfer_leadership(server_id: Any, target: Any, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Hand leadership to ``target``; returns "ok" or "already_leader"."""
    t = client.server_id(target)
    r = _leader_call(server_id, lambda to: ev.TransferLeadership(to, t), timeout)
    if not r.ok and r.value == "already_leader":
        return "already_leader"
    _ok(r, server_id)
    return "ok"


def trigger_election(server_id: Any) -> None:
    """Make ``server_id`` start an election now (fire and forget)."""
    client.send(client.server_id(server_id), ev.TriggerElection())


# ---- commands ----------------------------------------------------------------------

def process_command(server_id: Any, command: Any, timeout: float = DEFAULT_TIMEOUT_S
                    ) -> tuple[Any, ServerId]:
    """Replicate ``command``, wait until applied; returns ``(reply, leader)``.

    Follows leader redirects.  Each call carries a client session (a client id
    per calling thread and a sequence number), so a resend after a lost answer is
    applied once and answered with the original reply.  ``Timeout``: the outcome
    is unknown (it may still be applied)."""
    if _T.ON: _T.mark("api", "process_command")  # TRACE
    client_id, seq = _session()
    r = _leader_call(server_id, lambda to: ev.Command(command, to, None, "await_consensus", client_id, seq),
                     timeout, resend=True)
    value = _ok(r, server_id)
    if _T.ON: _T.mark("api", "process_command done")  # TRACE
    return value, (ServerId(*r.leader) if r.leader else client.server_id(server_id))


_tls = threading.local()
_process_tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _session() -> tuple[str, int]:
    """(client id, next sequence number) of the calling thread (RA-style client session)."""
    sess = getattr(_tls, "session", None)
    if sess is None:
        sess = _tls.session = [f"{_process_tag}-{threading.get_ident()}", 0]
    sess[1] += 1
    return sess[0], sess[1]


def pipeline_command(server_id: Any, command: Any, correlation: Any = None,
                     notify: Any = None) -> None:
    """Send ``command`` without waiting (RA ``pipeline_command``).

    When ``notify`` is given, the outcome arrives there in batches:
    ``Applied(leader, [(correlation, reply), ...])`` or
    ``Rejected(leader, [correlation, ...], "not_leader")`` (then resend to the
    leader).  ``notify`` may be a pykka ActorRef, a ``queue.Queue``, a callable,
    a ``raft_otp.node.Mailbox`` or a ``(name, node)`` address.  Without
    ``notify`` nothing is reported."""
    pipeline_commands(server_id, [(command, correlation)], notify)


def pipeline_commands(server_id: Any, commands: Iterable[tuple[Any, Any]], notify: Any = None) -> None:
    """Many ``(command, correlation)`` pairs in one message (one frame, one log write)."""
    sid = client.server_id(server_id)
    if notify is None:
        cmds = [ev.Command(c, None, corr, "noreply") for c, corr in commands]
    else:
        to = notify if client.is_local(sid.node) else client.remote_address_for(notify)
        cmds = [ev.Command(c, to, corr, "notify") for c, corr in commands]
    if not cmds:
        return
    client.send(sid, cmds[0] if len(cmds) == 1 else ev.Commands(cmds))


# ---- queries ---------------------------------------------------------------------------

def _query_fun(sid: ServerId, query: Any) -> Any:
    if isinstance(query, tuple) and len(query) == 2 and isinstance(query[0], str):
        return [query_ref(query[0]), list(query[1])]
    ref = query_ref(query)
    if callable(ref) and not client.is_local(sid.node):
        raise BadArgument(
            f"query {query!r} has no import path; a server on another node needs a "
            "module-level function or 'module:function'")
    return ref


def local_query(server_id: Any, query: Any, timeout: float = DEFAULT_TIMEOUT_S,
                min_index: int = 0) -> tuple[Any, ServerId | None]:
    """``query(state)`` on this member's state (possibly stale); ``(result, leader)``."""
    sid = client.server_id(server_id)
    fun = _query_fun(sid, query)
    r = client.call(sid, lambda to: ev.LocalQuery(to, fun, min_index), timeout)
    return _ok(r, sid), (ServerId(*r.leader) if r.leader else None)


def leader_query(server_id: Any, query: Any, timeout: float = DEFAULT_TIMEOUT_S
                 ) -> tuple[Any, ServerId | None]:
    """``query(state)`` on the leader's state (follows redirects)."""
    sid = client.server_id(server_id)
    fun = _query_fun(sid, query)
    r = _leader_call(sid, lambda to: ev.LeaderQuery(to, _fun_for(to, fun, query)), timeout, resend=True)
    return _ok(r, sid), (ServerId(*r.leader) if r.leader else None)


def consistent_query(server_id: Any, query: Any, timeout: float = DEFAULT_TIMEOUT_S
                     ) -> tuple[Any, ServerId | None]:
    """Linearizable ``query(state)``: answered by the leader after a heartbeat quorum."""
    sid = client.server_id(server_id)
    fun = _query_fun(sid, query)
    r = _leader_call(sid, lambda to: ev.ConsistentQuery(to, _fun_for(to, fun, query)), timeout, resend=True)
    return _ok(r, sid), (ServerId(*r.leader) if r.leader else None)


def _fun_for(reply_to: Any, fun: Any, query: Any) -> Any:
    """A redirect may lead to a remote leader: a local-only callable cannot go there."""
    if callable(fun) and isinstance(reply_to, (tuple, list)):
        raise BadArgument(f"query {query!r} has no import path; the leader is on another node")
    return fun


# ---- observation -------------------------------------------------------------------

def ping(server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> ServerId | None:
    """Round trip to a server; returns the leader it knows."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "ping"), timeout)
    _ok(r, server_id)
    return ServerId(*r.leader) if r.leader else None


def member_overview(server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Role, term, indexes, members, log and machine overview of one server."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "overview"), timeout)
    return _ok(r, server_id)


def key_metrics(server_id: Any, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """The server's counters and gauges (see ``raft_otp.server.metrics``)."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "key_metrics"), timeout)
    return _ok(r, server_id)


def overview(system: System | str = "default", node: str | None = None,
             timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Every server of ``system`` on ``node`` (default: this node) with its state."""
    from raft_otp.node import runtime as node_mod
    return _system_call(system, node or node_mod.node(), SystemOverviewReq(), timeout)


def systems() -> list[System]:
    """Systems running on this node."""
    return runtime.systems()
