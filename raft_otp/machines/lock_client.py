"""Client of the lock machine (:mod:`raft_otp.machines.lock`), blocking and asyncio.

A cluster runs the machine as ``("raft_otp.machines.lock:Lock", {})``; then::

    locks = LockClient(server_id)
    with locks.hold("reports", lease_s=10, wait_s=30) as lease:
        storage.write(data, fencing_token=lease.token)  # storage refuses older tokens
        if lease.remaining_s() < 2:
            lease = locks.renew(lease) or give_up()

    alocks = AsyncLockClient(server_id)
    async with alocks.hold("reports", lease_s=10) as lease:
        ...

What a caller can rely on:

* A ``Lease`` is valid until ``lease.deadline`` on the caller's
  ``time.monotonic()``: the moment the granting request was sent plus the
  lease.  The cluster grants the lock to nobody else before that (given clocks
  in sync; see the machine's docstring), so work done before the deadline is
  exclusive.  Past it, only the fencing token protects the resource.
* Every new grant has a larger ``token`` than every earlier one.
* Each ``acquire`` without ``owner`` uses a fresh owner id, so two tasks of one
  client never share a lock by accident.  Pass ``owner`` for a stable identity:
  an acquire by the owner already holding the lock returns its grant (extended).
* A ``Timeout`` means the outcome is unknown (as for any command).  ``acquire``
  retries with the same owner, which is safe; a lock granted to a caller that
  gave up is free again when its lease runs out.
* Reads (``holder``) go through the log: they are linearizable and see expiry
  on the entry time.

Calls go to the last leader seen (first to ``server_id``), following
redirects.  This is the RA-style alternative to PySyncObj's ``ReplLockManager``
(whose auto-unlock time is the lease here) and to etcd's ``concurrency.Mutex``
(whose revision is the fencing token here).  There is no automatic renewal:
call ``renew`` before ``remaining_s()`` runs low.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import socket
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

import raft_otp.aio
from raft_otp import api
from raft_otp.core.types import ServerId
from raft_otp.errors import BadArgument, NodeDown, RaftError, ServerNotFound, Timeout
from raft_otp.machines.lock import MAX_NAME_CHARS, MAX_OWNER_CHARS
from raft_otp.server import client as _client

__all__ = ["Lease", "Held", "LockClient", "AsyncLockClient", "new_owner"]

_log = logging.getLogger("raft_otp.lock_client")
_POLL_MIN_S = 0.01


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lock.

    ``token`` is the fencing token: hand it to the resource you guard and let it
    refuse any token smaller than the largest it has seen.  ``expires_ms`` is the
    expiry on the cluster's entry-time clock (ms since the epoch, the leader's
    wall clock); ``deadline`` is this caller's safe local bound on
    ``time.monotonic()`` (request sent + lease): stop relying on the lock then."""

    name: str
    owner: str
    token: int
    expires_ms: int
    lease_ms: int
    deadline: float

    def remaining_s(self) -> float:
        """Seconds of the lease left by the local bound (0.0 once past it)."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def granted_ms(self) -> int:
        """The entry time of the grant (or of the renewal that set ``expires_ms``)."""
        return self.expires_ms - self.lease_ms


@dataclass(frozen=True, slots=True)
class Held:
    """The lock is held by someone else: its owner, token and expiry (entry-time ms)."""

    name: str
    owner: str
    token: int
    expires_ms: int


def new_owner() -> str:
    """A fresh owner id: host, pid and 12 random hex digits."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


# ---- commands and replies (shared by both clients) ------------------------------------

def _lease_ms(lease_s: float) -> int:
    if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) \
            or not 0 < lease_s < math.inf:
        raise BadArgument(f"lease_s must be a positive number of seconds, got {lease_s!r}")
    return max(1, round(lease_s * 1000))


def _check(what: str, value: Any, max_chars: int) -> str:
    if type(value) is not str or not 1 <= len(value) <= max_chars:
        raise BadArgument(f"{what} must be a non-empty str of at most {max_chars} characters, "
                          f"got {value!r}")
    return value


def _acquire_cmd(name: str, owner: str, lease_ms: int) -> list[Any]:
    return ["acquire", _check("name", name, MAX_NAME_CHARS),
            _check("owner", owner, MAX_OWNER_CHARS), lease_ms]


def _holder_cmd(name: str) -> list[Any]:
    return ["holder", _check("name", name, MAX_NAME_CHARS)]


def _renew_cmd(lease: Lease, lease_ms: int) -> list[Any]:
    return ["renew", lease.name, lease.owner, lease_ms, lease.token]


def _release_cmd(lease: Lease) -> list[Any]:
    return ["release", lease.name, lease.owner, lease.token]


def _granted(name: str, owner: str, lease_ms: int, sent: float, reply: list[Any]) -> Lease | Held:
    """The answer to an acquire sent at ``sent`` (monotonic)."""
    if reply[0] == "granted":
        return Lease(name, owner, reply[1], reply[2], lease_ms, sent + lease_ms / 1000)
    if reply[0] == "held":
        return Held(name, reply[1], reply[2], reply[3])
    if reply[0] == "full":
        raise RaftError(f"lock service full: {reply[1]} locks held (its max_locks); "
                        f"{name!r} not granted")
    raise RaftError(f"unexpected reply {reply!r} from the lock machine")


def _renewed(lease: Lease, lease_ms: int, sent: float, reply: list[Any]) -> Lease | None:
    if reply[0] != "renewed":
        return None  # ["free"]: it ran out; ["held", ...]: someone else's now
    return Lease(lease.name, lease.owner, reply[1], reply[2], lease_ms, sent + lease_ms / 1000)


def _holder(name: str, reply: list[Any]) -> Held | None:
    return None if reply[0] == "free" else Held(name, reply[1], reply[2], reply[3])


class _Waiting:
    """The decisions of ``acquire`` between attempts: pause exponentially from
    10 ms up to ``max_s`` with jitter (less when the holder's lease ends sooner),
    and raise ``Timeout`` once ``wait_s`` is over."""

    def __init__(self, name: str, wait_s: float, max_s: float) -> None:
        self.name, self.wait_s, self.max_s = name, wait_s, max_s
        self.deadline = time.monotonic() + wait_s
        self.step_s = _POLL_MIN_S
        self.held: Held | None = None

    def pause_s(self, got: Held | None) -> float:
        """Seconds to wait after an attempt refused (``got``) or timed out (None)."""
        self.held = got or self.held
        left = self.deadline - time.monotonic()
        if left <= 0:
            who = (f"held by {self.held.owner!r} (token {self.held.token})" if self.held
                   else "no answer")
            raise Timeout(f"lock {self.name!r} not acquired within {self.wait_s} s: {who}")
        step = random.uniform(self.step_s / 2, self.step_s)
        self.step_s = min(self.step_s * 2, self.max_s)
        if got is not None:  # the leader's clock against ours: only a hint
            step = min(step, max(0.0, got.expires_ms / 1000 - time.time()) + 0.002)
        return max(0.001, min(left, step))


class _Base:
    def __init__(self, server_id: Any, *, timeout: float = api.DEFAULT_TIMEOUT_S,
                 poll_max_s: float = 0.25) -> None:
        """``server_id``: any member.  ``timeout`` bounds each call to the cluster;
        ``poll_max_s`` the pause between two attempts of ``acquire`` on a held lock."""
        self.origin: ServerId = _client.server_id(server_id)
        self.target: ServerId = self.origin  # the last leader seen
        self.timeout = timeout
        self.poll_max_s = poll_max_s


class LockClient(_Base):
    """Blocking client of a lock cluster."""

    def _command(self, command: list[Any]) -> Any:
        try:
            reply, leader = api.process_command(self.target, command, self.timeout)
        except Timeout:
            self.target = self.origin  # the next call starts from the member we were given
            raise
        except (ServerNotFound, NodeDown):
            if self.target == self.origin:
                raise
            self.target = self.origin  # the leader we remembered is gone (not delivered): ask again
            reply, leader = api.process_command(self.target, command, self.timeout)
        self.target = leader or self.origin
        return reply

    def try_acquire(self, name: str, lease_s: float, owner: str | None = None) -> Lease | Held:
        """One attempt: the ``Lease``, or who ``Held`` the lock."""
        owner = owner or new_owner()
        command = _acquire_cmd(name, owner, lease_ms := _lease_ms(lease_s))
        sent = time.monotonic()
        return _granted(name, owner, lease_ms, sent, self._command(command))

    def acquire(self, name: str, lease_s: float, owner: str | None = None,
                wait_s: float = 10.0) -> Lease:
        """Wait up to ``wait_s`` for the lock (polling while it is held); ``Timeout``
        if it stays held, or the cluster does not answer, that long."""
        owner = owner or new_owner()
        waiting = _Waiting(name, wait_s, self.poll_max_s)
        while True:
            got: Lease | Held | None
            try:
                got = self.try_acquire(name, lease_s, owner)
            except Timeout:
                got = None  # outcome unknown: asking again with the same owner is safe
            if isinstance(got, Lease):
                return got
            time.sleep(waiting.pause_s(got))

    def renew(self, lease: Lease, lease_s: float | None = None) -> Lease | None:
        """Extend ``lease`` to ``lease_s`` (default: its own) from now; None if it was lost."""
        lease_ms = lease.lease_ms if lease_s is None else _lease_ms(lease_s)
        sent = time.monotonic()
        return _renewed(lease, lease_ms, sent, self._command(_renew_cmd(lease, lease_ms)))

    def release(self, lease: Lease) -> bool:
        """Release ``lease``; False if it had already run out (or been taken over)."""
        return bool(self._command(_release_cmd(lease))[0] == "released")

    def holder(self, name: str) -> Held | None:
        """Who holds ``name`` now (a linearizable read through the log), or None."""
        return _holder(name, self._command(_holder_cmd(name)))

    @contextmanager
    def hold(self, name: str, lease_s: float, owner: str | None = None,
             wait_s: float = 10.0) -> Iterator[Lease]:
        """``acquire`` on entry, ``release`` on exit.  A release that fails is
        logged, not raised: the lease runs out by itself."""
        lease = self.acquire(name, lease_s, owner, wait_s)
        try:
            yield lease
        finally:
            try:
                self.release(lease)
            except RaftError as exc:
                _warn_release(lease, exc)


class AsyncLockClient(_Base):
    """asyncio client of a lock cluster: the methods of :class:`LockClient`,
    awaited, on :mod:`raft_otp.aio` (waiting costs no thread)."""

    async def _command(self, command: list[Any]) -> Any:
        try:
            reply, leader = await raft_otp.aio.process_command(self.target, command, self.timeout)
        except Timeout:
            self.target = self.origin  # the next call starts from the member we were given
            raise
        except (ServerNotFound, NodeDown):
            if self.target == self.origin:
                raise
            self.target = self.origin
            reply, leader = await raft_otp.aio.process_command(self.target, command, self.timeout)
        self.target = leader or self.origin
        return reply

    async def try_acquire(self, name: str, lease_s: float, owner: str | None = None
                          ) -> Lease | Held:
        """One attempt: the ``Lease``, or who ``Held`` the lock."""
        owner = owner or new_owner()
        command = _acquire_cmd(name, owner, lease_ms := _lease_ms(lease_s))
        sent = time.monotonic()
        return _granted(name, owner, lease_ms, sent, await self._command(command))

    async def acquire(self, name: str, lease_s: float, owner: str | None = None,
                      wait_s: float = 10.0) -> Lease:
        """Wait up to ``wait_s`` for the lock (polling while it is held); ``Timeout``
        if it stays held, or the cluster does not answer, that long."""
        owner = owner or new_owner()
        waiting = _Waiting(name, wait_s, self.poll_max_s)
        while True:
            got: Lease | Held | None
            try:
                got = await self.try_acquire(name, lease_s, owner)
            except Timeout:
                got = None  # outcome unknown: asking again with the same owner is safe
            if isinstance(got, Lease):
                return got
            await asyncio.sleep(waiting.pause_s(got))

    async def renew(self, lease: Lease, lease_s: float | None = None) -> Lease | None:
        """Extend ``lease`` to ``lease_s`` (default: its own) from now; None if it was lost."""
        lease_ms = lease.lease_ms if lease_s is None else _lease_ms(lease_s)
        sent = time.monotonic()
        return _renewed(lease, lease_ms, sent, await self._command(_renew_cmd(lease, lease_ms)))

    async def release(self, lease: Lease) -> bool:
        """Release ``lease``; False if it had already run out (or been taken over)."""
        return bool((await self._command(_release_cmd(lease)))[0] == "released")

    async def holder(self, name: str) -> Held | None:
        """Who holds ``name`` now (a linearizable read through the log), or None."""
        return _holder(name, await self._command(_holder_cmd(name)))

    @asynccontextmanager
    async def hold(self, name: str, lease_s: float, owner: str | None = None,
                   wait_s: float = 10.0) -> AsyncIterator[Lease]:
        """``acquire`` on entry, ``release`` on exit (a failed release is logged)."""
        lease = await self.acquire(name, lease_s, owner, wait_s)
        try:
            yield lease
        finally:
            try:
                await self.release(lease)
            except RaftError as exc:
                _warn_release(lease, exc)


def _warn_release(lease: Lease, exc: BaseException) -> None:
    _log.warning("release of lock %r (token %d) failed; it runs out by itself at %d ms: %s",
                 lease.name, lease.token, lease.expires_ms, exc)
