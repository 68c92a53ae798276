"""Replay protection for ``"mac"`` frames: a session nonce per link and a counter.

Every frame's authenticated header carries ``session`` (a uint64 chosen when the
sending side opens the link: the high 44 bits are its wall clock in ms, the low
20 bits random) and ``counter`` (1, 2, 3, ... per frame on that link).  A link is
one ordered TCP stream (DEALER -> ROUTER), so on the receiving side the counters
of a session only ever increase; :class:`ReplayGuard` keeps, per sending node,
the current session and the last counter, and refuses:

* ``"replayed"``: a counter not above the last one of the current session;
* ``"old_session"``: a session this node saw replaced (the last
  ``retired_per_sender`` of them per sender);
* ``"stale_client"``: a temporary client's session (``admin_call``: one session
  per request) older or newer than ``client_max_age_s`` by this node's clock, or
  already seen.

A session this node has not seen replaces the current one (a link reopened, or
the sender restarted).  Memory is bounded: at most ``max_senders`` senders and
``max_client_sessions`` client sessions are remembered (the oldest go first).

What it does not stop: a node that restarted has forgotten the sessions it saw,
so frames captured before its restart can be replayed to it (as they could to any
node before this check); ``"curve"`` mode closes that, since CURVE's keys differ on
every connection.  RA relies on Erlang distribution (TLS for a hostile network)
for all of this.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Literal

__all__ = ["ReplayGuard", "new_session", "session_time_ms", "Refusal"]

Refusal = Literal["replayed", "old_session", "stale_client"]
_RANDOM_BITS = 20


def new_session(rng: random.Random | None = None, now_ms: int | None = None) -> int:
    """A fresh session nonce: wall-clock ms in the high bits, random low bits, never 0."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    low = (rng or random).getrandbits(_RANDOM_BITS)
    return ((ms << _RANDOM_BITS) | low) & 0xFFFF_FFFF_FFFF_FFFF or 1


def session_time_ms(session: int) -> int:
    return session >> _RANDOM_BITS


class _Sender:
    __slots__ = ("session", "last", "retired")

    def __init__(self, session: int, retired_max: int) -> None:
        self.session = session
        self.last = 0
        self.retired: collections.deque[int] = collections.deque(maxlen=retired_max)


class ReplayGuard:
    """The receiving side's memory of sessions and counters (the I/O thread's alone)."""

    def __init__(self, *, max_senders: int = 4096, retired_per_sender: int = 16,
                 max_client_sessions: int = 4096, client_max_age_s: float = 120.0) -> None:
        self._senders: dict[str, _Sender] = {}
        self._clients: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._max_senders = max_senders
        self._retired_max = retired_per_sender
        self._max_clients = max_client_sessions
        self._client_max_age_ms = int(client_max_age_s * 1000)

    def check(self, sender: str, client: bool, session: int, counter: int) -> Refusal | None:
        """None (and the frame is recorded as seen) or why it is refused."""
        if client:
            return self._check_client(session, counter)
        s = self._senders.get(sender)
        if s is not None and s.session == session:  # the hot path
            if counter <= s.last:
                return "replayed"
            s.last = counter
            return None
        if s is None:
            if len(self._senders) >= self._max_senders:
                del self._senders[next(iter(self._senders))]
            s = self._senders[sender] = _Sender(session, self._retired_max)
        else:
            if session in s.retired:
                return "old_session"
            s.retired.append(s.session)
            s.session = session
        s.last = counter
        return None

    def _check_client(self, session: int, counter: int) -> Refusal | None:
        last = self._clients.get(session)
        if last is None:
            now_ms = int(time.time() * 1000)
            if abs(now_ms - session_time_ms(session)) > self._client_max_age_ms:
                return "stale_client"
            if len(self._clients) >= self._max_clients:
                self._clients.popitem(last=False)
        elif counter <= last:
            return "replayed"
        self._clients[session] = counter
        return None

    def senders(self) -> int:
        return len(self._senders)
