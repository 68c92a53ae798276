"""A client of a cluster that binds no port (``raft_otp.connect``), as etcd's clients.

:func:`connect` makes this process a *port-less client node* (a node name with
port 0, ``raft_otp.node.transport``): it opens connections to the members' nodes
and gets every answer back over them, so it needs no reachable address of its
own (a laptop behind NAT, a container without published ports, the CLI).  If
the process is already a node (it runs servers), the client uses that node.

A :class:`Client` knows the members' nodes.  Its calls take a cluster name (the
server of that name on each node, as ``raft-otp cluster start`` creates them) or
a ``ServerId``.  Commands and queries that need the leader go to the leader last
seen for that cluster, else to each node in turn; a member that is not there or
whose node is down (``ServerNotFound`` / ``NodeDown``: not delivered, or a
``Timeout`` because its node went down with the request) is skipped for the
next, within the one ``timeout``; a command keeps its client session across
members, so it is applied at most once.  Everything else is the blocking API's
semantics (``raft_otp.api``): ``Timeout`` means the outcome is unknown,
``MachineError`` / ``QueryError`` come from the servers, ``process_command``
carries a client session (applied at most once).  :class:`AsyncClient` has the
same calls for asyncio (``raft_otp.aio``)::

    with raft_otp.connect(["n1@10.0.0.1:7001", "n2@10.0.0.2:7001"]) as c:
        reply, leader = c.process_command("shop", ["put", "apples", 3])
"""

from __future__ import annotations

import threading
import time
from typing import Any, Awaitable, Callable, Sequence, TypeVar, overload

from raft_otp import aio, api
from raft_otp.core import events as ev
from raft_otp.core.types import ServerId
from raft_otp.errors import BadArgument, NodeDown, RaftError, ServerNotFound, Timeout
from raft_otp.node import runtime as node_rt
from raft_otp.node.security import Security
from raft_otp.node.transport import split_node_name
from raft_otp.system.names import check_cluster_name

__all__ = ["AsyncClient", "Client", "connect", "connect_async"]

T = TypeVar("T")
R = TypeVar("R")
Query = Callable[[Any], Any] | api.QueryRef
Target = str | ServerId | tuple[str, str]
"""A cluster name (its server on each of the client's nodes) or one server."""

_lock = threading.Lock()
_users = 0          # open clients sharing the client node this module started
_started_here = False


def _acquire_node(cookie: str | None, cookie_file: str | None,
                  transport_security: Security | None, host: str | None) -> str:
    """Start the port-less client node (or share the node this process is)."""
    global _users, _started_here
    with _lock:
        if node_rt.is_started():
            _users += 1 if _started_here else 0
            return node_rt.node_name()
        name = node_rt.start_node(node_rt.client_node_name(host), cookie, cookie_file=cookie_file,
                                  transport_security=transport_security)
        _started_here, _users = True, 1
        return name


def _release_node() -> None:
    global _users, _started_here
    with _lock:
        if not _started_here:
            return
        _users -= 1
        if _users <= 0:
            _started_here, _users = False, 0
            node_rt.stop_node()


class _Tried:
    """The failures of one call's members: which allow asking the next member, and
    the error to raise when none answered."""

    __slots__ = ("target", "timeout", "last", "unknown")

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.last: Exception | None = None
        self.unknown: Timeout | None = None  # an attempt that may have been delivered

    def failed(self, sid: ServerId, exc: Exception) -> None:
        """Record ``exc`` from ``sid``; re-raise it unless the next member may be asked:
        not delivered (ServerNotFound, NodeDown), or a Timeout from a member whose node
        the failure detector now knows down (the request went down with it)."""
        if isinstance(exc, Timeout):
            if not node_rt.node_known_down(sid.node):
                raise exc
            self.unknown = exc
        self.last = exc

    def error(self) -> Exception:
        if self.unknown is not None:  # an earlier attempt may have been applied
            return Timeout(f"{self.target!r}: no member answered; {self.unknown}")
        if self.last is None:
            return Timeout(f"{self.target!r}: no answer within {self.timeout:g} s")
        return self.last


class _Base:
    """What the blocking and the asyncio clients share: the nodes, the leaders seen."""

    def __init__(self, nodes: Sequence[str], *, cookie: str | None = None,
                 cookie_file: str | None = None, transport_security: Security | None = None,
                 timeout: float = api.DEFAULT_TIMEOUT_S, host: str | None = None) -> None:
        if isinstance(nodes, str) or not nodes:
            raise BadArgument("connect needs a non-empty list of node names (name@host:port)")
        for n in nodes:
            split_node_name(n)
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise BadArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.nodes: list[str] = list(dict.fromkeys(nodes))
        self.timeout: float = float(timeout)
        self._leaders: dict[str, ServerId] = {}
        self.node_name: str = _acquire_node(cookie, cookie_file, transport_security, host)
        self._open = True
        for n in self.nodes:  # open the links now: the first call finds them connected
            node_rt.connect(n)

    def close(self) -> None:
        """Close the client (the client node stops with the last open client)."""
        if self._open:
            self._open = False
            _release_node()

    def _members(self, target: Target) -> list[ServerId]:
        """The servers to try for ``target``, the leader last seen first."""
        if not self._open:
            raise BadArgument("this client is closed")
        if isinstance(target, str):
            check_cluster_name(target)
            ids = [ServerId(target, n) for n in self.nodes]
            leader = self._leaders.get(target)
            if leader is not None:
                ids = [leader] + [s for s in ids if s != leader]
            return ids
        if isinstance(target, (tuple, list)) and len(target) == 2:
            return [ServerId(target[0], target[1])]
        raise BadArgument(f"target must be a cluster name or a ServerId, got {target!r}")

    def _seen(self, target: Target, leader: ServerId | None) -> None:
        if isinstance(target, str) and leader is not None:
            self._leaders[target] = ServerId(*leader)

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout


class Client(_Base):
    """A blocking client of the clusters on ``nodes`` (see the module docstring)."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _each(self, target: Target, timeout: float | None,
              call: Callable[[ServerId, float], T]) -> T:
        """``call(server, seconds_left)`` on each member in turn until one is reached."""
        t = self._timeout(timeout)
        deadline = time.monotonic() + t
        tried = _Tried(target, t)
        for sid in self._members(target):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return call(sid, left)
            except (ServerNotFound, NodeDown, Timeout) as exc:
                tried.failed(sid, exc)  # raises unless the next member may be asked
        raise tried.error()

    def process_command(self, target: Target, command: Any,
                        timeout: float | None = None) -> tuple[Any, ServerId]:
        """Replicate ``command`` through the leader; ``(reply, leader)``.  One client
        session number for every member tried: applied at most once."""
        api._check_command(command)
        client_id, seq = api._session()

        def one(sid: ServerId, t: float) -> tuple[Any, ServerId]:
            r = api._leader_call(sid, lambda to: ev.Command(command, to, None, "await_consensus",
                                                            client_id, seq), t, resend=True)
            return api._ok(r, sid), (ServerId(*r.leader) if r.leader else sid)

        reply, leader = self._each(target, timeout, one)
        self._seen(target, leader)
        return reply, leader

    def pipeline_command(self, target: Target, command: Any, correlation: Any = None,
                         notify: Any = None) -> None:
        """Send without waiting, to the leader last seen (else the first member);
        ``Applied`` / ``Rejected`` arrive at ``notify`` (see ``raft_otp.pipeline_command``)."""
        api.pipeline_command(self._members(target)[0], command, correlation, notify)

    @overload
    def local_query(self, target: Target, query: Callable[[Any], R], timeout: float | None = ...,
                    min_index: int = ...) -> tuple[R, ServerId | None]: ...
    @overload
    def local_query(self, target: Target, query: api.QueryRef, timeout: float | None = ...,
                    min_index: int = ...) -> tuple[Any, ServerId | None]: ...
    def local_query(self, target: Target, query: Query, timeout: float | None = None,
                    min_index: int = 0) -> tuple[Any, ServerId | None]:
        """``query(state)`` on the first member reached (possibly stale)."""
        return self._each(target, timeout,
                          lambda sid, t: api.local_query(sid, query, t, min_index))

    @overload
    def leader_query(self, target: Target, query: Callable[[Any], R],
                     timeout: float | None = ...) -> tuple[R, ServerId | None]: ...
    @overload
    def leader_query(self, target: Target, query: api.QueryRef,
                     timeout: float | None = ...) -> tuple[Any, ServerId | None]: ...
    def leader_query(self, target: Target, query: Query,
                     timeout: float | None = None) -> tuple[Any, ServerId | None]:
        """``query(state)`` on the leader's state."""
        value, leader = self._each(target, timeout, lambda sid, t: api.leader_query(sid, query, t))
        self._seen(target, leader)
        return value, leader

    @overload
    def consistent_query(self, target: Target, query: Callable[[Any], R],
                         timeout: float | None = ...) -> tuple[R, ServerId | None]: ...
    @overload
    def consistent_query(self, target: Target, query: api.QueryRef,
                         timeout: float | None = ...) -> tuple[Any, ServerId | None]: ...
    def consistent_query(self, target: Target, query: Query,
                         timeout: float | None = None) -> tuple[Any, ServerId | None]:
        """Linearizable ``query(state)`` (the leader, after a heartbeat quorum)."""
        value, leader = self._each(target, timeout,
                                   lambda sid, t: api.consistent_query(sid, query, t))
        self._seen(target, leader)
        return value, leader

    def members(self, target: Target,
                timeout: float | None = None) -> tuple[list[ServerId], ServerId | None]:
        """``(members, leader)`` as the first member reached knows them."""
        ids, leader = self._each(target, timeout, lambda sid, t: api.members(sid, t))
        self._seen(target, leader)
        return ids, leader

    def leader(self, target: Target, timeout: float | None = None) -> ServerId | None:
        """The leader the first member reached knows (None during an election)."""
        leader = self._each(target, timeout, lambda sid, t: api.ping(sid, t))
        self._seen(target, leader)
        return leader

    def transfer_leadership(self, target: Target, to: ServerId | tuple[str, str] | str,
                            timeout: float | None = None) -> str:
        """Hand leadership to ``to`` (a ServerId, or a node of this client for a
        cluster name); "ok" or "already_leader"."""
        if isinstance(to, str):
            if not isinstance(target, str):
                raise BadArgument("transfer_leadership: give `to` as a ServerId")
            split_node_name(to)
            to = ServerId(target, to)
        dest = ServerId(*to)
        return self._each(target, timeout, lambda sid, t: api.transfer_leadership(sid, dest, t))

    def member_overview(self, server: ServerId | tuple[str, str],
                        timeout: float | None = None) -> dict[str, Any]:
        """Role, term, indexes, log and machine overview of one server."""
        return api.member_overview(ServerId(*server), self._timeout(timeout))

    def key_metrics(self, server: ServerId | tuple[str, str],
                    timeout: float | None = None) -> dict[str, Any]:
        """One server's counters and gauges."""
        return api.key_metrics(ServerId(*server), self._timeout(timeout))

    def start_cluster(self, cluster: str, machine: api.MachineSpec,
                      nodes: Sequence[str] | None = None,
                      timeout: float | None = None, system: str = "default"
                      ) -> tuple[list[ServerId], list[ServerId]]:
        """Start ``cluster`` with a server named ``cluster`` on each of ``nodes``
        (default: this client's), in the system ``system`` of each node."""
        ids = [ServerId(cluster, n) for n in (nodes or self.nodes)]
        return api.start_cluster(system, cluster, machine, ids, self._timeout(timeout))

    def delete_cluster(self, cluster: str, nodes: Sequence[str] | None = None,
                       timeout: float | None = None, system: str = "default"
                       ) -> tuple[list[ServerId], dict[ServerId, RaftError]]:
        """Force-delete every server named ``cluster`` on ``nodes`` (default: this client's)."""
        ids = [ServerId(cluster, n) for n in (nodes or self.nodes)]
        return api.delete_cluster(system, ids, self._timeout(timeout))


class AsyncClient(_Base):
    """:class:`Client`'s command and query calls for asyncio (no thread waits)."""

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _each(self, target: Target, timeout: float | None,
                    call: Callable[[ServerId, float], Awaitable[T]]) -> T:
        t = self._timeout(timeout)
        deadline = time.monotonic() + t
        tried = _Tried(target, t)
        for sid in self._members(target):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return await call(sid, left)
            except (ServerNotFound, NodeDown, Timeout) as exc:
                tried.failed(sid, exc)
        raise tried.error()

    async def process_command(self, target: Target, command: Any,
                              timeout: float | None = None) -> tuple[Any, ServerId | None]:
        """``await`` form of :meth:`Client.process_command` (a client session per task)."""
        api._check_command(command)
        client_id, seq = aio._task_session()

        async def one(sid: ServerId, t: float) -> tuple[Any, ServerId | None]:
            r = await aio._leader_call(sid, lambda to: ev.Command(
                command, to, None, "await_consensus", client_id, seq), t, session=True)
            return aio._result(r, sid)

        reply, leader = await self._each(target, timeout, one)
        self._seen(target, leader)
        return reply, leader

    @overload
    async def local_query(self, target: Target, query: Callable[[Any], R],
                          timeout: float | None = ...,
                          min_index: int = ...) -> tuple[R, ServerId | None]: ...
    @overload
    async def local_query(self, target: Target, query: api.QueryRef, timeout: float | None = ...,
                          min_index: int = ...) -> tuple[Any, ServerId | None]: ...
    async def local_query(self, target: Target, query: Query, timeout: float | None = None,
                          min_index: int = 0) -> tuple[Any, ServerId | None]:
        """``await`` form of :meth:`Client.local_query`."""
        return await self._each(target, timeout,
                                lambda sid, t: aio.local_query(sid, query, t, min_index))

    @overload
    async def leader_query(self, target: Target, query: Callable[[Any], R],
                           timeout: float | None = ...) -> tuple[R, ServerId | None]: ...
    @overload
    async def leader_query(self, target: Target, query: api.QueryRef,
                           timeout: float | None = ...) -> tuple[Any, ServerId | None]: ...
    async def leader_query(self, target: Target, query: Query,
                           timeout: float | None = None) -> tuple[Any, ServerId | None]:
        """``await`` form of :meth:`Client.leader_query`."""
        value, leader = await self._each(target, timeout,
                                         lambda sid, t: aio.leader_query(sid, query, t))
        self._seen(target, leader)
        return value, leader

    @overload
    async def consistent_query(self, target: Target, query: Callable[[Any], R],
                               timeout: float | None = ...) -> tuple[R, ServerId | None]: ...
    @overload
    async def consistent_query(self, target: Target, query: api.QueryRef,
                               timeout: float | None = ...) -> tuple[Any, ServerId | None]: ...
    async def consistent_query(self, target: Target, query: Query,
                               timeout: float | None = None) -> tuple[Any, ServerId | None]:
        """``await`` form of :meth:`Client.consistent_query`."""
        value, leader = await self._each(target, timeout,
                                         lambda sid, t: aio.consistent_query(sid, query, t))
        self._seen(target, leader)
        return value, leader

    def pipeline_command(self, target: Target, command: Any, correlation: Any = None,
                         notify: Any = None) -> None:
        """As :meth:`Client.pipeline_command`; an ``asyncio.Queue`` works as ``notify``."""
        aio.pipeline_command(self._members(target)[0], command, correlation, notify)


def connect(nodes: Sequence[str], *, cookie: str | None = None, cookie_file: str | None = None,
            transport_security: Security | None = None, timeout: float = api.DEFAULT_TIMEOUT_S,
            host: str | None = None) -> Client:
    """A :class:`Client` of the clusters on ``nodes`` (``["n1@host:port", ...]``).

    Binds no port.  The cookie: ``cookie``, else ``cookie_file``, else
    ``$RAFT_OTP_COOKIE_FILE``, ``$RAFT_OTP_COOKIE``, ``~/.raft_otp_cookie`` (the
    CLI's order).  ``transport_security``: ``Security("curve", key_file,
    allowed_keys)`` for nodes started in curve mode (this client's public key must
    be listed in their allowed-keys files, and theirs in ``allowed_keys``);
    default as the nodes' (``raft_otp.node.security.default``).  ``timeout``: the
    default of every call.  ``host`` only labels the client's node name.  Raises
    BadArgument for a malformed node name or a missing cookie; nothing is sent
    until the first call."""
    return Client(nodes, cookie=cookie, cookie_file=cookie_file,
                  transport_security=transport_security, timeout=timeout, host=host)


def connect_async(nodes: Sequence[str], *, cookie: str | None = None,
                  cookie_file: str | None = None, transport_security: Security | None = None,
                  timeout: float = api.DEFAULT_TIMEOUT_S, host: str | None = None) -> AsyncClient:
    """:func:`connect` for asyncio: an :class:`AsyncClient`."""
    return AsyncClient(nodes, cookie=cookie, cookie_file=cookie_file,
                       transport_security=transport_security, timeout=timeout, host=host)

