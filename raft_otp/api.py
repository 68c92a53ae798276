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
from typing import Any, Callable, Iterable, Sequence, TypeVar, Union, cast, overload

from raft_otp.core import events as ev
from raft_otp.core.config import DEFAULT_MAX_COMMAND_BYTES
from raft_otp.core.machine import Machine
from raft_otp.core.entries import check_command
from raft_otp.core.types import ServerId
from raft_otp.errors import (AlreadyStarted, BadArgument, ClusterChangeNotPermitted, CommandTooLarge, DiskFull,
                             NodeDown, NotLeader, RaftError, ServerNotFound, SystemNotRunning, Timeout)
from raft_otp.server import client
from raft_otp.server.messages import CallReply, StateQuery
from raft_otp.system import runtime
from raft_otp.system.names import check_cluster_name, check_server_name
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

# ---- the types of the public calls' arguments ---------------------------------------
ServerRef = Union[ServerId, "tuple[str, str]", str]
"""A server: ``ServerId(name, node)``, a ``(name, node)`` pair, or a bare name (a
server on this node)."""
MachineSpec = Union["tuple[type[Machine] | str, Any]", "list[Any]"]
"""``(Machine subclass or "module:Class", config)``; a node imports the class by its path."""
QueryRef = Union[str, "tuple[str, Sequence[Any]]"]
"""A query that can travel: ``"module:function"`` (called as ``function(state)``) or
``("module:function", [args])`` (``function(state, *args)``)."""
Notify = Any
"""Where pipelined outcomes go: a pykka ActorRef, a ``queue.Queue``, a callable, a
``raft_otp.node.Mailbox`` or a ``(name, node)`` address."""
R = TypeVar("R")
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
    if isinstance(reason, RaftError):  # MachineError, QueryError, CommandTooLarge, ...
        raise reason
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


def _leader_call(server_id: ServerRef, make: Callable[[Any], Any], timeout: float,
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
                asked = "" if target == origin else f" (last asked: {target})"
                raise Timeout(f"{origin}: no answer within {timeout:g} s{asked}: "
                              "the outcome is unknown") from exc
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
        if resend and follow and not reply.ok and reply.value == "leadership_lost":
            # appended, then leadership moved on (a transfer, a newer term): the
            # command carries its client session, so sending it again (to whoever
            # leads now) applies it at most once and returns the original reply
            last_exc, maybe_delivered = Timeout(f"{target}: leadership lost with the command pending"), True
            time.sleep(min(_RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
            continue
        if maybe_delivered and not reply.ok and isinstance(reply.value, DiskFull):
            # the leader's disk alarm refused this attempt, but an earlier one of the
            # same session may be in the log (it is applied once the disk is back)
            raise Timeout(f"{origin}: {reply.value}; an earlier attempt got no answer: outcome unknown")
        if reply.ok or not follow or reply.value != "not_leader":
            return cast(CallReply, reply)
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

def start_server(system: System | str, cluster_name: str, server_id: ServerRef, machine: MachineSpec,
                 members: Sequence[ServerRef], timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Start one member (on its own node).  Returns the server's uid.

    Raises BadArgument for a name that breaks the rule of ``raft_otp.system.names``
    (before any node is asked), AlreadyStarted if the name exists on that node or
    the cluster name is used there by another cluster; nothing is created then."""
    sid = client.server_id(server_id)
    check_server_name(sid.name)
    check_cluster_name(cluster_name)
    path, config = machine_spec(machine)
    req = StartServerReq(sid.name, cluster_name, path, config,
                         [list(client.server_id(m)) for m in members])
    return cast(str, _system_call(system, sid.node, req, timeout))


def start_cluster(system: System | str, cluster_name: str, machine: MachineSpec,
                  server_ids: Sequence[ServerRef], timeout: float = DEFAULT_TIMEOUT_S
                  ) -> tuple[list[ServerId], list[ServerId]]:
    """Start every member of a new cluster and wait until it has a leader.

    The cluster name, the server names (``raft_otp.system.names``) and the machine
    are checked before any node is asked: BadArgument, nothing created.

    Returns ``(started, not_started)`` when a leader was elected (RA's partial
    success: members whose node was down, say, are ``not_started``).  When
    nothing is left started, raises the most specific of the members' errors
    (in this order: BadArgument, AlreadyStarted, SystemNotRunning, NodeDown,
    ServerNotFound, Timeout), its message giving every member's reason:

    * a member refused because its name, or the cluster's name, is in use on its
      node (a second ``start_cluster``) makes it AlreadyStarted: the members this
      call started are deleted again, and the servers that existed are untouched;
    * no leader elected before ``timeout`` (Timeout, or the members' NodeDown...):
      the started members are deleted again.

    A member whose start timed out may have been created on its node after all
    (its outcome is unknown); the message says so, and ``force_delete_server``
    removes it."""
    ids = [client.server_id(s) for s in server_ids]
    if not ids:
        raise BadArgument("start_cluster needs at least one server id")
    if len(set(ids)) != len(ids):
        raise BadArgument(f"duplicate server ids in {ids}")
    check_cluster_name(cluster_name)
    for sid in ids:
        check_server_name(sid.name)
    machine_spec(machine)  # validate before touching any node
    if any(client.is_local(s.node) for s in ids):
        get_system(system)  # SystemNotRunning now rather than "not started"
    deadline = time.monotonic() + timeout
    started, failed = _start_members(system, cluster_name, machine, ids, deadline)
    if started and not any(isinstance(e, (AlreadyStarted, BadArgument)) for e in failed.values()):
        # RA: a new cluster triggers one election instead of waiting out the pre-vote timer
        # (on a member picked by the cluster name, so many clusters spread their leaders)
        first = started[sum(cluster_name.encode()) % len(started)]
        try:
            trigger_election(first)
        except RaftError:
            pass
        try:
            _wait_for_leader([first, *(s for s in started if s != first)], deadline)
            return started, [sid for sid in ids if sid in failed]
        except Timeout as exc:
            failed.update({sid: exc for sid in started})
    raise _not_started(system, cluster_name, ids, started, failed, timeout)


def _start_members(system: System | str, cluster_name: str, machine: MachineSpec,
                   ids: list[ServerId], deadline: float
                   ) -> tuple[list[ServerId], dict[ServerId, RaftError]]:
    """Start every member of ``ids`` at once (one short-lived thread per member after
    the first: each asks its own node); (started in ``ids`` order, failed with why)."""
    outcomes: dict[ServerId, BaseException | None] = {}

    def start_one(sid: ServerId) -> None:
        try:
            start_server(system, cluster_name, sid, machine, ids, max(0.1, deadline - time.monotonic()))
            outcomes[sid] = None
        except BaseException as exc:  # handed to the caller's thread below
            outcomes[sid] = exc

    helpers = [threading.Thread(target=start_one, args=(sid,), name="raft_otp.start_member", daemon=True)
               for sid in ids[1:]]
    for t in helpers:
        t.start()
    start_one(ids[0])
    for t in helpers:
        t.join()
    started: list[ServerId] = []
    failed: dict[ServerId, RaftError] = {}
    for sid in ids:
        exc = outcomes[sid]
        if exc is None:
            started.append(sid)
        elif isinstance(exc, RaftError):
            _log.warning("start_cluster %s: %s not started: %r", cluster_name, sid, exc)
            failed[sid] = exc
    unexpected = next((e for e in outcomes.values() if e is not None and not isinstance(e, RaftError)), None)
    if unexpected is not None:  # a bug, not a member's refusal: as if started one by one
        raise unexpected
    return started, failed


# The error start_cluster raises when nothing is left started: the first of these
# classes that some member's failure is an instance of.
_START_ERRORS: tuple[type[RaftError], ...] = (
    BadArgument, AlreadyStarted, SystemNotRunning, NodeDown, ServerNotFound, Timeout)


def _not_started(system: System | str, cluster_name: str, ids: list[ServerId],
                 started: list[ServerId], failed: dict[ServerId, RaftError],
                 timeout: float) -> RaftError:
    """Delete the members this start_cluster started, and build the error that says
    why nothing is started (every member's reason, and what could not be undone)."""
    undo_s = min(DEFAULT_TIMEOUT_S, max(1.0, timeout))
    deleted: list[str] = []
    not_deleted: list[str] = []
    for sid in started:
        try:
            force_delete_server(system, sid, undo_s)
            deleted.append(_at(sid))
        except RaftError as exc:
            not_deleted.append(f"{_at(sid)} ({type(exc).__name__}: {exc})")
    unknown = [_at(sid) for sid, exc in failed.items() if isinstance(exc, Timeout) and sid not in started]
    text = f"cluster {cluster_name!r} not started: " + "; ".join(
        f"{_at(sid)}: {type(failed[sid]).__name__}: {failed[sid]}" for sid in ids if sid in failed)
    if deleted:
        text += f"; deleted again: {', '.join(deleted)}"
    if not_deleted:
        text += f"; could not delete again (force_delete_server them): {', '.join(not_deleted)}"
    if unknown:
        text += f"; outcome unknown, may exist on their node: {', '.join(unknown)}"
    cls = next((c for c in _START_ERRORS if any(isinstance(e, c) for e in failed.values())), RaftError)
    return cls(text)


def _at(sid: ServerId) -> str:
    return f"{sid.name}@{sid.node}"


def _wait_for_leader(ids: Sequence[ServerId], deadline: float) -> ServerId:
    """The leader that one of ``ids`` knows, asking each in turn until ``deadline``
    (rounds 5 ms apart, doubling up to 100 ms: thousands of clusters starting at once
    must not flood their nodes with pings); Timeout with each member's last answer if
    none knows one by then."""
    last: dict[ServerId, str] = {}
    pause_s = 0.005
    while True:
        for sid in ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = "; ".join(f"{_at(s)}: {last.get(s, 'not asked')}" for s in ids)
                raise Timeout(f"no leader elected in time ({seen})")
            try:
                r = client.call(sid, lambda to: StateQuery(to, "ping"), min(remaining, 1.0))
            except RaftError as exc:
                last[sid] = f"{type(exc).__name__}: {exc}"
                continue
            if r.leader is not None:
                return ServerId(*r.leader)
            last[sid] = "running, no leader known"
        time.sleep(min(pause_s, max(0.0, deadline - time.monotonic())))
        pause_s = min(0.1, pause_s * 2)


def restart_server(system: System | str, server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Start a stopped server again from its data (it recovers its log and snapshot)."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("restart", sid.name), timeout)


def stop_server(system: System | str, server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stop a server; its data stays (``restart_server`` brings it back)."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("stop", sid.name), timeout)


def force_delete_server(system: System | str, server_id: ServerRef,
                        timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stop a server and delete all its data, without telling the cluster."""
    sid = client.server_id(server_id)
    _system_call(system, sid.node, ServerOpReq("delete", sid.name), timeout)


_DELETE_PARALLEL_MAX = 16  # concurrent deletions (one thread each)


def delete_cluster(system: System | str, server_ids: Sequence[ServerRef],
                   timeout: float = DEFAULT_TIMEOUT_S
                   ) -> tuple[list[ServerId], dict[ServerId, RaftError]]:
    """Force-delete every member of a cluster, each on its node, all at once (at
    most 16 at a time), within ``timeout`` in total.

    Returns ``(deleted, failed)``.  ``deleted`` lists the servers that are gone
    (a server its node does not know counts as gone).  ``failed`` maps each
    server that could not be deleted to the exception that says why:
    ``NodeDown`` (its node is unreachable: its server and data are still there),
    ``Timeout`` (no answer in time: it may or may not be deleted),
    ``SystemNotRunning``, ...  Iterating ``failed`` gives the servers, so
    ``delete_cluster(system, failed)`` tries them again.  One member's failure
    never stops the others from being deleted, and raises nothing; an invalid id
    raises ``BadArgument`` before anything is deleted."""
    ids = list(dict.fromkeys(client.server_id(s) for s in server_ids))
    deadline = time.monotonic() + timeout
    outcome: dict[ServerId, BaseException | None] = {}

    def delete(sid: ServerId) -> None:
        try:
            force_delete_server(system, sid, max(0.0, deadline - time.monotonic()))
            outcome[sid] = None
        except Exception as exc:  # RaftErrors are reported; anything else is re-raised below
            outcome[sid] = exc

    if ids:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(len(ids), _DELETE_PARALLEL_MAX),
                                thread_name_prefix="raft_otp.delete_cluster") as pool:
            list(pool.map(delete, ids))
    done: list[ServerId] = []
    failed: dict[ServerId, RaftError] = {}
    for sid in ids:
        exc = outcome.get(sid)
        if exc is None:
            done.append(sid)
        elif isinstance(exc, RaftError):
            failed[sid] = exc
        else:
            raise exc
    return done, failed



# ---- membership ------------------------------------------------------------------------

_PROBE_CONNECT_S = 0.8  # a node that accepts no TCP connection within this is NodeDown


def add_member(server_id: ServerRef, new_member: ServerRef, kind: str = "voter",
               timeout: float = DEFAULT_TIMEOUT_S, *, require_running: bool = True) -> ServerId:
    """Add ``new_member`` to the cluster of ``server_id`` (any member; the change is
    committed through the leader).  Returns the leader that committed it; the call
    returns once the change is committed.  ``kind``: "voter" | "promotable" |
    "non_voter" ("promotable" joins as a non-voter and becomes a voter once it has
    caught up).

    With ``require_running=True`` (the default) the new member must run already:
    start it first with :func:`start_server` (the cluster's members and itself),
    then add it.  Before anything is submitted, its node is asked for it, and the
    call raises at once (in about a second at most, whatever ``timeout``):

    * ``NodeDown`` - its node is unreachable, or no node runs at that address
      (or this process is not a node);
    * ``ServerNotFound`` - its node runs no server of that name;
    * ``BadArgument`` - it is a member of another cluster (by cluster name), or
      already a member, or the node name is malformed.

    Those checks keep phantom members out: a voter that never runs still counts
    in every quorum, so a 3-voter cluster with one phantom needs 3 of 4 and stops
    committing as soon as one real member is down.

    ``require_running=False`` skips the checks and keeps RA's order (add, then
    start the server with the new member list): the change commits whether or
    not the member exists, and starting it is then the caller's job.  A voter
    added that way counts in the quorum from the moment the change is appended;
    "promotable" is the safer kind for that order, as it votes only once it has
    caught up.

    After the checks, raises ``BadArgument`` if the leader finds it already a
    member, ``ClusterChangeNotPermitted`` while another change is pending (or a
    new leader has not committed its first entry yet), ``Timeout`` when the
    outcome is unknown (the change may still commit: read :func:`members`)."""
    if kind not in ("voter", "promotable", "non_voter"):
        raise BadArgument(f"member kind must be voter, promotable or non_voter, got {kind!r}")
    ref = client.server_id(server_id)
    new = client.server_id(new_member)
    check_server_name(new.name)  # raft_otp.system.names: before anything is asked or committed
    deadline = time.monotonic() + timeout
    if require_running:
        _check_joinable(ref, new, deadline)
    elif not client.is_local(new.node):
        from raft_otp.node.transport import split_node_name
        split_node_name(new.node)  # BadArgument: never commit an id no node can have
    try:
        r = _leader_call(ref, lambda to: ev.AddMember(to, new, kind),  # type: ignore[arg-type]
                         _left_s(deadline))
    except Timeout as exc:  # its message would give the time left after the checks
        raise Timeout(f"{ref}: adding {new}: no answer within {timeout:g} s: the outcome is "
                      "unknown (read members)") from exc
    if not r.ok and r.value == "already_member":
        raise BadArgument(f"{new} is already a member of the cluster of {ref}")
    _ok(r, ref)
    return ServerId(*r.leader) if r.leader else ref


def _check_joinable(ref: ServerId, new: ServerId, deadline: float) -> None:
    """``new`` runs, on a reachable node, with ``ref``'s cluster name, and is not a member."""
    theirs = _running_overview(new, deadline, "new member")
    ours = _running_overview(ref, deadline, "member")
    cluster = ours.get("cluster")
    if theirs.get("cluster") != cluster:
        raise BadArgument(f"{new} is a server of cluster {theirs.get('cluster')!r}, "
                          f"not of {cluster!r} (the cluster of {ref})")
    if any(ServerId(*m) == new for m, _kind in ours.get("members") or []):
        raise BadArgument(f"{new} is already a member of cluster {cluster!r}")


def _running_overview(sid: ServerId, deadline: float, what: str) -> dict[str, Any]:
    """The overview of the server ``sid``, asked with a call its node answers at once
    with ``ServerNotFound`` when no process has that name (a plain send to an
    unknown name is dropped, and would only time out).  ``NodeDown`` if the node
    is unreachable; ``Timeout`` if the server does not answer by ``deadline``."""
    from raft_otp.errors import RemoteError
    from raft_otp.node import runtime as node_mod
    from raft_otp.node.mailbox import Mailbox
    from raft_otp.node.transport import split_node_name
    from raft_otp.server.messages import ReplySlot
    local = client.is_local(sid.node)
    if not local:
        split_node_name(sid.node)  # BadArgument for a malformed node name
    try:
        if local:
            slot = ReplySlot()
            node_mod.call(sid.name, StateQuery(slot, "overview"), _left_s(deadline))
            reply = slot.value if slot.wait(_left_s(deadline)) else None
        else:
            _check_node_reachable(sid.node, deadline)
            with Mailbox() as mbox:
                node_mod.call((sid.name, sid.node), StateQuery(mbox.address, "overview"),
                              _left_s(deadline))
                reply = mbox.get(_left_s(deadline))
    except Timeout:
        reply = None
    except (NodeDown, ServerNotFound) as exc:
        raise type(exc)(f"{what} {sid}: {exc}") from exc
    except (BadArgument, RemoteError) as exc:  # the name belongs to something else
        raise ServerNotFound(f"{what} {sid}: no raft_otp server of that name ({exc})") from exc
    if reply is None:
        raise Timeout(f"{what} {sid} did not answer in time (nothing was submitted)")
    if not (isinstance(reply, CallReply) and reply.ok and isinstance(reply.value, dict)):
        raise ServerNotFound(f"{what} {sid}: no raft_otp server of that name (it answered {reply!r})")
    return reply.value


def _check_node_reachable(node: str, deadline: float) -> None:
    """``NodeDown`` at once unless ``node`` is connected or accepts a TCP connection
    (the failure detector would take its detection time, 0.5-1 s, to say so)."""
    import socket
    from raft_otp.node import runtime as node_mod
    from raft_otp.node.transport import split_node_name
    _, host, port = split_node_name(node)
    if not node_mod.is_started():
        raise NodeDown(f"cannot reach {node}: this process is not a started node")
    if node in node_mod.nodes():
        return
    wait_s = min(_left_s(deadline), _PROBE_CONNECT_S)
    try:
        with socket.create_connection((host, port), timeout=wait_s):
            pass
    except TimeoutError:
        raise NodeDown(f"node {node}: nothing answered on {host}:{port} "
                       f"within {wait_s:.2g} s") from None
    except OSError as exc:
        raise NodeDown(f"node {node} is unreachable ({host}:{port}: "
                       f"{exc.strerror or exc})") from None


def _left_s(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def remove_member(server_id: ServerRef, member: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> ServerId:
    """Remove ``member`` from the cluster of ``server_id`` (any member; the change is
    committed through the leader); returns once it is committed, with the leader
    that committed it.  When ``member`` was that leader, it commits its own
    removal, steps down, and is what is returned: the others elect a new leader.

    ``member`` itself need not be reachable (a member whose node is gone, or that
    never ran, is removed like any other).  Its server is not told: it keeps
    running with its data until it is stopped or deleted
    (:func:`force_delete_server`, or :func:`leave_and_delete_server` for both).

    Raises ``BadArgument`` if it is not a member (a removal retried after a
    ``Timeout`` that had committed), ``ClusterChangeNotPermitted`` while another
    change is pending, ``NodeDown``/``ServerNotFound`` if ``server_id`` cannot be
    reached (nothing was submitted), ``Timeout`` when the outcome is unknown (read
    :func:`members`)."""
    ref = client.server_id(server_id)
    old = client.server_id(member)
    r = _leader_call(ref, lambda to: ev.RemoveMember(to, old), timeout)
    if not r.ok and r.value == "not_member":
        raise BadArgument(f"{old} is not a member of the cluster of {ref}")
    _ok(r, ref)
    return ServerId(*r.leader) if r.leader else ref


def leave_and_delete_server(system: System | str, server_ref: ServerRef, server_id: ServerRef,
                            timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Decommission ``server_id`` (RA ``leave_and_delete_server``): remove it from its
    cluster through ``server_ref`` (any member; the removal is a membership change
    committed through the leader), then stop it and delete its data on its node.

    A server that is no longer a member is just deleted.  Raises like
    :func:`remove_member` (e.g. ``ClusterChangeNotPermitted`` while another change
    is under way) without deleting anything.  If the removal committed but the
    deletion failed, raises the deletion's exception (``NodeDown``, ``Timeout``,
    ...) with a message that says "was removed from the cluster, but": call it
    again later, it then only deletes."""
    sid = client.server_id(server_id)
    ref = client.server_id(server_ref)
    if ref == sid:
        raise BadArgument("server_ref must be another member than the server to delete")
    current, _leader = members(ref, timeout)
    if sid not in current:
        force_delete_server(system, sid, timeout)
        return
    remove_member(ref, sid, timeout)
    from raft_otp.errors import SystemNotRunning
    try:
        force_delete_server(system, sid, timeout)
    except (NodeDown, ServerNotFound, Timeout, SystemNotRunning) as exc:
        raise type(exc)(f"{sid} was removed from the cluster, but its server and data "
                        f"were not deleted: {exc}") from exc


def members(server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[list[ServerId], ServerId | None]:
    """``(members, leader)`` as known by ``server_id`` (a follower may lag a change
    behind the leader)."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "members"), timeout)
    value = _ok(r, server_id)
    return [ServerId(*m) for m, _kind in value], (ServerId(*r.leader) if r.leader else None)


def transfer_leadership(server_id: ServerRef, target: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Hand leadership to ``target``; returns "ok" or "already_leader"."""
    t = client.server_id(target)
    r = _leader_call(server_id, lambda to: ev.TransferLeadership(to, t), timeout)
    if not r.ok and r.value == "already_leader":
        return "already_leader"
    _ok(r, server_id)
    return "ok"


def trigger_election(server_id: ServerRef) -> None:
    """Make ``server_id`` start an election now (fire and forget)."""
    client.send(client.server_id(server_id), ev.TriggerElection())


# ---- commands ----------------------------------------------------------------------

def process_command(server_id: ServerRef, command: Any, timeout: float = DEFAULT_TIMEOUT_S
                    ) -> tuple[Any, ServerId]:
    """Replicate ``command``, wait until applied; returns ``(reply, leader)``.

    Follows leader redirects.  Each call carries a client session (a client id
    per calling thread and a sequence number), so a resend after a lost answer is
    applied once and answered with the original reply.  ``Timeout``: the outcome
    is unknown (it may still be applied)."""
    if _T.ON: _T.mark("api", "process_command")  # TRACE
    _check_command(command)
    client_id, seq = _session()
    r = _leader_call(server_id, lambda to: ev.Command(command, to, None, "await_consensus", client_id, seq),
                     timeout, resend=True)
    value = _ok(r, server_id)
    if _T.ON: _T.mark("api", "process_command done")  # TRACE
    return value, (ServerId(*r.leader) if r.leader else client.server_id(server_id))


def _check_command(command: Any) -> None:
    """Refuse at the caller a command that cannot be encoded, would not decode the
    same, or is larger than ``max_command_bytes`` (the largest of the systems running
    in this process, at least the default); the leader checks its own limit too."""
    size = check_command(command)
    if size > DEFAULT_MAX_COMMAND_BYTES:
        limit = max([s.config.max_command_bytes for s in runtime.systems()] + [DEFAULT_MAX_COMMAND_BYTES])
        if size > limit:
            raise CommandTooLarge(size, limit)


_tls = threading.local()
_process_tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _session() -> tuple[str, int]:
    """(client id, next sequence number) of the calling thread (RA-style client session)."""
    sess = getattr(_tls, "session", None)
    if sess is None:
        sess = _tls.session = [f"{_process_tag}-{threading.get_ident()}", 0]
    sess[1] += 1
    return sess[0], sess[1]


def pipeline_command(server_id: ServerRef, command: Any, correlation: Any = None,
                     notify: Notify = None) -> None:
    """Send ``command`` without waiting (RA ``pipeline_command``).

    When ``notify`` is given, the outcome arrives there in batches:
    ``Applied(leader, [(correlation, reply), ...])`` or
    ``Rejected(leader, [correlation, ...], "not_leader")`` (then resend to the
    leader).  ``notify`` may be a pykka ActorRef, a ``queue.Queue``, a callable,
    a ``raft_otp.node.Mailbox`` or a ``(name, node)`` address.  Without
    ``notify`` nothing is reported."""
    pipeline_commands(server_id, [(command, correlation)], notify)


def pipeline_commands(server_id: ServerRef, commands: Iterable[tuple[Any, Any]],
                      notify: Notify = None) -> None:
    """Many ``(command, correlation)`` pairs in one message (one frame, one log write)."""
    sid = client.server_id(server_id)
    commands = list(commands)
    for c, _corr in commands:
        _check_command(c)
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


@overload
def local_query(server_id: ServerRef, query: Callable[[Any], R], timeout: float = ...,
                min_index: int = ...) -> tuple[R, ServerId | None]: ...
@overload
def local_query(server_id: ServerRef, query: QueryRef, timeout: float = ...,
                min_index: int = ...) -> tuple[Any, ServerId | None]: ...
def local_query(server_id: ServerRef, query: Callable[[Any], Any] | QueryRef,
                timeout: float = DEFAULT_TIMEOUT_S,
                min_index: int = 0) -> tuple[Any, ServerId | None]:
    """``query(state)`` on this member's state (possibly stale); ``(result, leader)``."""
    sid = client.server_id(server_id)
    fun = _query_fun(sid, query)
    r = client.call(sid, lambda to: ev.LocalQuery(to, fun, min_index), timeout)
    return _ok(r, sid), (ServerId(*r.leader) if r.leader else None)


@overload
def leader_query(server_id: ServerRef, query: Callable[[Any], R], timeout: float = ...
                 ) -> tuple[R, ServerId | None]: ...
@overload
def leader_query(server_id: ServerRef, query: QueryRef, timeout: float = ...
                 ) -> tuple[Any, ServerId | None]: ...
def leader_query(server_id: ServerRef, query: Callable[[Any], Any] | QueryRef,
                 timeout: float = DEFAULT_TIMEOUT_S) -> tuple[Any, ServerId | None]:
    """``query(state)`` on the leader's state (follows redirects)."""
    sid = client.server_id(server_id)
    fun = _query_fun(sid, query)
    r = _leader_call(sid, lambda to: ev.LeaderQuery(to, _fun_for(to, fun, query)), timeout, resend=True)
    return _ok(r, sid), (ServerId(*r.leader) if r.leader else None)


@overload
def consistent_query(server_id: ServerRef, query: Callable[[Any], R], timeout: float = ...
                     ) -> tuple[R, ServerId | None]: ...
@overload
def consistent_query(server_id: ServerRef, query: QueryRef, timeout: float = ...
                     ) -> tuple[Any, ServerId | None]: ...
def consistent_query(server_id: ServerRef, query: Callable[[Any], Any] | QueryRef,
                     timeout: float = DEFAULT_TIMEOUT_S) -> tuple[Any, ServerId | None]:
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

def ping(server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> ServerId | None:
    """Round trip to a server; returns the leader it knows."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "ping"), timeout)
    _ok(r, server_id)
    return ServerId(*r.leader) if r.leader else None


def member_overview(server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Role, term, indexes, members, log and machine overview of one server."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "overview"), timeout)
    return cast("dict[str, Any]", _ok(r, server_id))


def key_metrics(server_id: ServerRef, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """The server's counters and gauges (see ``raft_otp.server.metrics``)."""
    r = client.call(client.server_id(server_id), lambda to: StateQuery(to, "key_metrics"), timeout)
    return cast("dict[str, Any]", _ok(r, server_id))


def overview(system: System | str = "default", node: str | None = None,
             timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Every server of ``system`` on ``node`` (default: this node) with its state."""
    from raft_otp.node import runtime as node_mod
    return cast("dict[str, Any]", _system_call(system, node or node_mod.node_name(),
                                               SystemOverviewReq(), timeout))


def systems() -> list[System]:
    """Systems running on this node."""
    return runtime.systems()
