"""asyncio forms of the command and query calls.

The server answers into an asyncio future on the caller's loop (through
``loop.call_soon_threadsafe``), so waiting costs no thread.  Local servers get
the future's bridge as ``reply_to`` directly; remote ones reply to a mailbox
whose ``tell`` resolves the future.  Redirects to the leader are followed as in
the blocking API::

    reply, leader = await raft_otp.aio.process_command(sid, ["incr"])
"""

from __future__ import annotations

import asyncio
import itertools
import time
import weakref
from typing import Any, Callable, TypeVar, cast, overload

from supervisors import registry

from raft_otp.core import events as ev
from raft_otp.core.types import ServerId
from raft_otp.errors import DiskFull, NodeDown, NotLeader, ServerNotFound, Timeout
from raft_otp.server import client
from raft_otp.server.messages import CallReply
from raft_otp import api

__all__ = ["process_command", "local_query", "leader_query", "consistent_query", "pipeline_command"]

R = TypeVar("R")


class _Bridge:
    """A reply target that resolves an asyncio future from any thread."""

    __slots__ = ("loop", "future", "name")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.name: str | None = None

    def deliver(self, message: Any) -> None:
        self.loop.call_soon_threadsafe(self._set, message)

    tell = deliver

    def is_alive(self) -> bool:
        return not self.future.done()

    def _set(self, message: Any) -> None:
        if not self.future.done():
            self.future.set_result(message)


async def _call(target: ServerId, make: Callable[[Any], Any], timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    bridge = _Bridge(loop)
    if client.is_local(target.node):
        ref = registry.whereis(target.name)
        if ref is None:
            raise ServerNotFound(f"no process registered as {target.name!r}")
        ref.tell(make(bridge))
    else:
        token = client.watch_node_down(target.node, target.name, bridge)  # ends the wait early
        addr = client.remote_address_for(bridge)
        try:
            from raft_otp.node import runtime as node_mod
            node_mod.send_or_bounce(target, make(addr), addr[0])  # ServerNotFound at once if absent
        except (ServerNotFound, NodeDown):
            client.unwatch_node_down(token)
            client.release_address(bridge)
            raise
    try:
        msg = await asyncio.wait_for(bridge.future, timeout)
    except asyncio.TimeoutError:
        raise Timeout(f"no answer from {target} within {timeout:.3f} s") from None
    finally:
        if not client.is_local(target.node):
            client.unwatch_node_down(token)
            client.release_address(bridge)
    if type(msg) is client.WentDown:
        raise msg.error(target.name)
    if isinstance(msg, Exception):  # the target's node bounced the request (not running there)
        raise msg
    return msg


async def _leader_call(server_id: api.ServerRef, make: Callable[[Any], Any], timeout: float,
                       session: bool = False) -> CallReply:
    """Follow leader hints until ``timeout``.  ``session``: the request is a command
    carrying a client session, so one that was pending when its leader lost
    leadership is sent again (applied at most once, as in the blocking API)."""
    target = origin = client.server_id(server_id)
    deadline = time.monotonic() + timeout
    maybe_delivered = False  # a pending attempt lost its leader: it may be in the log
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"{origin}: no leader answered within {timeout} s")
        try:
            reply = await _call(target, make, remaining)
        except (ServerNotFound, NodeDown):
            if target == origin:
                raise
            target = origin
            await asyncio.sleep(0.02)
            continue
        if session and not reply.ok and reply.value == "leadership_lost":
            maybe_delivered = True
            await asyncio.sleep(0.02)
            continue
        if maybe_delivered and not reply.ok and isinstance(reply.value, DiskFull):
            raise Timeout(f"{origin}: {reply.value}; an earlier attempt was pending: outcome unknown")
        if reply.ok or reply.value != "not_leader":
            return cast(CallReply, reply)
        if reply.leader is not None and ServerId(*reply.leader) != target:
            target = ServerId(*reply.leader)
        else:
            await asyncio.sleep(0.1)


def _result(reply: CallReply, sid: api.ServerRef) -> tuple[Any, ServerId | None]:
    value = api._ok(reply, sid)
    return value, (ServerId(*reply.leader) if reply.leader else None)


async def process_command(server_id: api.ServerRef, command: Any, timeout: float = api.DEFAULT_TIMEOUT_S
                          ) -> tuple[Any, ServerId | None]:
    """``await`` form of :func:`raft_otp.process_command` (a client session per task:
    each asyncio task's commands are numbered in the order it awaits them)."""
    api._check_command(command)
    client_id, seq = _task_session()
    r = await _leader_call(server_id, lambda to: ev.Command(command, to, None, "await_consensus",
                                                            client_id, seq), timeout, session=True)
    return _result(r, server_id)


_task_sessions: "weakref.WeakKeyDictionary[asyncio.Task[Any], list[Any]]" = weakref.WeakKeyDictionary()
_task_ids = itertools.count(1)


def _task_session() -> tuple[str, int]:
    """(client id, next sequence number) of the calling task."""
    task = asyncio.current_task()
    if task is None:  # not in a task (a bare coroutine driven by hand): a fresh session
        return f"{api._process_tag}-a{next(_task_ids)}", 1
    sess = _task_sessions.get(task)
    if sess is None:
        sess = _task_sessions[task] = [f"{api._process_tag}-a{next(_task_ids)}", 0]
    sess[1] += 1
    return sess[0], sess[1]


@overload
async def local_query(server_id: api.ServerRef, query: Callable[[Any], R], timeout: float = ...,
                      min_index: int = ...) -> tuple[R, ServerId | None]: ...
@overload
async def local_query(server_id: api.ServerRef, query: api.QueryRef, timeout: float = ...,
                      min_index: int = ...) -> tuple[Any, ServerId | None]: ...
async def local_query(server_id: api.ServerRef, query: Callable[[Any], Any] | api.QueryRef,
                      timeout: float = api.DEFAULT_TIMEOUT_S,
                      min_index: int = 0) -> tuple[Any, ServerId | None]:
    """``await`` form of :func:`raft_otp.local_query`."""
    sid = client.server_id(server_id)
    fun = api._query_fun(sid, query)
    r = await _call(sid, lambda to: ev.LocalQuery(to, fun, min_index), timeout)
    return _result(r, sid)


@overload
async def leader_query(server_id: api.ServerRef, query: Callable[[Any], R], timeout: float = ...
                       ) -> tuple[R, ServerId | None]: ...
@overload
async def leader_query(server_id: api.ServerRef, query: api.QueryRef, timeout: float = ...
                       ) -> tuple[Any, ServerId | None]: ...
async def leader_query(server_id: api.ServerRef, query: Callable[[Any], Any] | api.QueryRef,
                       timeout: float = api.DEFAULT_TIMEOUT_S) -> tuple[Any, ServerId | None]:
    """``await`` form of :func:`raft_otp.leader_query`."""
    sid = client.server_id(server_id)
    fun = api._query_fun(sid, query)
    r = await _leader_call(sid, lambda to: ev.LeaderQuery(to, api._fun_for(to, fun, query)), timeout)
    return _result(r, sid)


@overload
async def consistent_query(server_id: api.ServerRef, query: Callable[[Any], R],
                           timeout: float = ...) -> tuple[R, ServerId | None]: ...
@overload
async def consistent_query(server_id: api.ServerRef, query: api.QueryRef,
                           timeout: float = ...) -> tuple[Any, ServerId | None]: ...
async def consistent_query(server_id: api.ServerRef, query: Callable[[Any], Any] | api.QueryRef,
                           timeout: float = api.DEFAULT_TIMEOUT_S) -> tuple[Any, ServerId | None]:
    """``await`` form of :func:`raft_otp.consistent_query`."""
    sid = client.server_id(server_id)
    fun = api._query_fun(sid, query)
    r = await _leader_call(sid, lambda to: ev.ConsistentQuery(to, api._fun_for(to, fun, query)),
                           timeout)
    return _result(r, sid)


def pipeline_command(server_id: api.ServerRef, command: Any, correlation: Any = None,
                     notify: Callable[[Any], Any] | asyncio.Queue[Any] | None = None) -> None:
    """Non-blocking; with an ``asyncio.Queue`` as ``notify`` the Applied/Rejected
    notifications are put on it from the loop that called this."""
    if isinstance(notify, asyncio.Queue):
        api.pipeline_command(server_id, command, correlation, _queue_target(notify))
    else:
        api.pipeline_command(server_id, command, correlation, notify)


_queue_targets: dict[int, tuple[asyncio.Queue[Any], Callable[[Any], None]]] = {}


def _queue_target(q: asyncio.Queue[Any]) -> Callable[[Any], None]:
    """One stable callable per queue (so a remote server sees one address per queue)."""
    hit = _queue_targets.get(id(q))
    if hit is not None and hit[0] is q:
        return hit[1]
    loop = asyncio.get_running_loop()

    def put(m: Any) -> None:
        loop.call_soon_threadsafe(q.put_nowait, m)
    _queue_targets[id(q)] = (q, put)
    return put


_NotLeader = NotLeader  # re-exported name for callers catching it from here
