"""A replicated lock service: named locks with leases and fencing tokens.

Our answer to PySyncObj's ``ReplLockManager`` and etcd's lock (RA ships no lock
machine).  Most callers use :mod:`raft_otp.machines.lock_client`; the commands
are plain lists, and so are the replies::

    ["acquire", name, owner, lease_ms]        -> ["granted", token, expires_ms]
                                               | ["held", holder, token, expires_ms]
                                               | ["full", max_locks]
    ["renew", name, owner, lease_ms(, token)] -> ["renewed", token, expires_ms]
                                               | ["held", holder, token, expires_ms] | ["free"]
    ["release", name, owner(, token)]         -> ["released", token, released_ms]
                                               | ["held", holder, token, expires_ms] | ["free"]
    ["holder", name]                          -> ["held", holder, token, expires_ms] | ["free"]

``["held", ...]`` always describes the current holder (it is the answer to a
caller that is not it); ``["free"]`` means nobody holds the lock.

Time.  Every decision uses the entry time only (``ApplyMeta.system_time_ms``:
the leader's wall clock when it appended the command, carried in the entry,
never decreasing along the log), never the clock of the member applying it, so
``apply`` is deterministic.  A grant at entry time ``t`` with ``lease_ms`` holds
the lock over ``[t, t + lease_ms)``: at ``expires_ms = t + lease_ms`` it is free.
Nothing runs when a lease runs out; an expired lock is dropped when a command
next touches its name (or at the next release cursor, see State).  Because the
entry time is taken after the caller sent its request, a caller that counts its
lease from the moment it sent the request (as ``lock_client`` does) stops using
the lock before any member would grant it again, as long as the leaders' clocks
agree to within that margin.  A new leader whose clock is behind extends the
running leases (time holds still until its clock catches up); one whose clock is
ahead by ``d`` shortens them by up to ``d``: as with etcd's leases, keep the
members' clocks synchronised (NTP) well within your leases.

Fencing token.  A grant's token is the Raft index of the entry that granted it.
It is unique and strictly increasing over the whole machine (so per lock name
too), it survives snapshots, restarts and leadership changes because it is the
log position itself, and it needs no state: a per-name counter would have to
outlive each released lock, so the state would grow with every name ever used.
(etcd's lock uses its store revision the same way.)  Tokens are not dense.  An
``acquire`` by the current holder, and a ``renew``, extend the lease and keep
the token; only a new grant (after a release or an expiry) has a new token.

Owners.  ``owner`` is the caller's identity, a string it chooses.  An
``acquire`` by the owner that holds the lock is answered ``granted`` with the
same token (and extends the lease to ``lease_ms`` from now), which makes a
retried acquire (after a lost answer) safe.  It also means two callers that use
one owner string share the lock: give each holder its own (``lock_client``
makes a fresh one per acquire unless told otherwise).  ``release`` and ``renew``
with a ``token`` act only on that grant, so an old grant's owner cannot release
a newer one.

Errors.  A malformed command (unknown operation, wrong arity, a name or owner
that is not a non-empty string of at most 256 characters, a lease that is not
an int in ``1..max_lease_ms``, a token that is not an int) raises
``BadArgument`` before the state is touched: the caller gets it as the
command's outcome and the state is unchanged.  Refusals (held, free, full) are
replies, not errors.

State.  ``{name: [owner, token, expires_ms]}``, expired records included until
they are dropped.  ``apply`` mutates the dict in place, only after the command
has been validated, and replaces a record instead of changing it; the state
handed to ``ReleaseCursor`` is a copy (expired records dropped first), so a
snapshot never sees a later command.  At most ``max_locks`` locks are held at
once; an acquire of another name is answered ``["full", max_locks]``.

Config (a dict, every key optional): ``max_lease_ms`` (default 3,600,000: one
hour; a lock held longer should be renewed), ``max_locks`` (default 100,000),
``release_cursor_every`` (default 1000, 0 = never; as in ``kv``).
"""

from __future__ import annotations

from typing import Any, Final

from raft_otp.core.machine import ApplyMeta, Machine, MachineEffect, ReleaseCursor
from raft_otp.errors import BadArgument, ConfigError

__all__ = ["Lock", "locks", "record", "MAX_NAME_CHARS", "MAX_OWNER_CHARS"]

MAX_NAME_CHARS: Final = 256
MAX_OWNER_CHARS: Final = 256
DEFAULT_MAX_LEASE_MS: Final = 3_600_000
DEFAULT_MAX_LOCKS: Final = 100_000
DEFAULT_RELEASE_CURSOR_EVERY: Final = 1000

# A record is [owner, token, expires_ms]; the positions:
OWNER: Final = 0
TOKEN: Final = 1
EXPIRES: Final = 2

LockState = dict[str, list[Any]]

_USAGE: Final = {
    "acquire": "['acquire', name, owner, lease_ms]",
    "renew": "['renew', name, owner, lease_ms] or ['renew', name, owner, lease_ms, token]",
    "release": "['release', name, owner] or ['release', name, owner, token]",
    "holder": "['holder', name]",
}
_ARITY: Final = {"acquire": (4, 4), "renew": (4, 5), "release": (3, 4), "holder": (2, 2)}
_TOKEN_AT: Final = {"renew": 4, "release": 3}  # position of the optional token
_CONFIG_MIN: Final = {"max_lease_ms": 1, "max_locks": 1, "release_cursor_every": 0}  # least values


class Lock(Machine):
    """Named locks with leases on the entry time and fencing tokens (see the module docstring)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = _config(config)
        self.max_lease_ms: int = cfg.get("max_lease_ms", DEFAULT_MAX_LEASE_MS)
        self.max_locks: int = cfg.get("max_locks", DEFAULT_MAX_LOCKS)
        self.release_cursor_every: int = cfg.get("release_cursor_every",
                                                 DEFAULT_RELEASE_CURSOR_EVERY)

    def init(self, config: Any) -> LockState:
        return {}

    def apply(self, meta: ApplyMeta, command: Any, state: LockState
              ) -> tuple[LockState, Any] | tuple[LockState, Any, list[MachineEffect]]:
        op, name, owner, lease_ms, token = self._parse(command)  # raises; nothing changed yet
        now = meta.system_time_ms
        match op:
            case "acquire":
                reply = self._acquire(state, name, owner, lease_ms, now, meta.index)
            case "renew":
                reply = _renew(state, name, owner, lease_ms, token, now)
            case "release":
                reply = _release(state, name, owner, token, now)
            case _:
                reply = _holder(state, name, now)
        every = self.release_cursor_every
        if every and meta.index % every == 0:
            _sweep(state, now)
            return state, reply, [ReleaseCursor(meta.index, dict(state))]
        return state, reply

    def overview(self, state: LockState) -> Any:
        return {"records": len(state), "max_locks": self.max_locks,
                "max_lease_ms": self.max_lease_ms}

    # ---- commands ------------------------------------------------------------------
    def _acquire(self, state: LockState, name: str, owner: str, lease_ms: int, now: int,
                 index: int) -> list[Any]:
        rec = _live(state, name, now)
        if rec is None:
            if len(state) >= self.max_locks:
                _sweep(state, now)
                if len(state) >= self.max_locks:
                    return ["full", self.max_locks]
            state[name] = [owner, index, now + lease_ms]
            return ["granted", index, now + lease_ms]
        if rec[OWNER] != owner:
            return ["held", *rec]
        state[name] = [owner, rec[TOKEN], now + lease_ms]
        return ["granted", rec[TOKEN], now + lease_ms]

    def _parse(self, command: Any) -> tuple[str, str, str, int, int | None]:
        """``(op, name, owner, lease_ms, token)`` of a valid command (unused fields
        ``""``, ``0``, None); ``BadArgument`` naming the fault otherwise."""
        op = _check_shape(command)
        name = _check_str(command, 1, "name", MAX_NAME_CHARS)
        owner = "" if op == "holder" else _check_str(command, 2, "owner", MAX_OWNER_CHARS)
        lease_ms = self._check_lease(command) if op in ("acquire", "renew") else 0
        token = _check_token(command, _TOKEN_AT[op]) if op in _TOKEN_AT else None
        return op, name, owner, lease_ms, token

    def _check_lease(self, command: list[Any]) -> int:
        lease_ms = command[3]
        if type(lease_ms) is not int or not 1 <= lease_ms <= self.max_lease_ms:
            raise BadArgument(f"lock: lease_ms must be an int in 1..{self.max_lease_ms} "
                              f"(max_lease_ms), got {_show(lease_ms)} in {_show(command)}")
        return lease_ms


def _holder(state: LockState, name: str, now: int) -> list[Any]:
    rec = _live(state, name, now)
    return ["free"] if rec is None else ["held", *rec]


def _renew(state: LockState, name: str, owner: str, lease_ms: int, token: int | None,
           now: int) -> list[Any]:
    rec = _live(state, name, now)
    if rec is None:
        return ["free"]
    if not _is_holder(rec, owner, token):
        return ["held", *rec]
    state[name] = [owner, rec[TOKEN], now + lease_ms]
    return ["renewed", rec[TOKEN], now + lease_ms]


def _release(state: LockState, name: str, owner: str, token: int | None, now: int) -> list[Any]:
    rec = _live(state, name, now)
    if rec is None:
        return ["free"]
    if not _is_holder(rec, owner, token):
        return ["held", *rec]
    del state[name]
    return ["released", rec[TOKEN], now]


def _is_holder(rec: list[Any], owner: str, token: int | None) -> bool:
    return rec[OWNER] == owner and (token is None or token == rec[TOKEN])


def _live(state: LockState, name: str, now: int) -> list[Any] | None:
    """The record of ``name`` if its lease runs at ``now``; an expired one is dropped."""
    rec = state.get(name)
    if rec is not None and now >= rec[EXPIRES]:
        del state[name]
        return None
    return rec


def _sweep(state: LockState, now: int) -> None:
    """Drop every expired record (at release cursors, and when the lock table is full)."""
    for name in [n for n, rec in state.items() if now >= rec[EXPIRES]]:
        del state[name]


# ---- validation (raises before the state is touched) ----------------------------------

def _check_shape(command: Any) -> str:
    if not isinstance(command, (list, tuple)) or not command:
        raise BadArgument(f"lock: a command is a non-empty list such as {_USAGE['acquire']}, "
                          f"got {_show(command)}")
    op = command[0]
    arity = _ARITY.get(op) if isinstance(op, str) else None
    if arity is None:
        raise BadArgument(f"lock: unknown command {_show(op)}; expected one of {', '.join(_ARITY)}")
    if not arity[0] <= len(command) <= arity[1]:
        raise BadArgument(f"lock: {op} takes {_USAGE[op]}, got {_show(command)}")
    return str(op)


def _check_str(command: Any, pos: int, what: str, max_chars: int) -> str:
    value = command[pos]
    if type(value) is not str or not 1 <= len(value) <= max_chars:
        raise BadArgument(f"lock: {what} must be a non-empty str of at most {max_chars} "
                          f"characters, got {_show(value)} in {_show(command)}")
    return value


def _check_token(command: Any, pos: int) -> int | None:
    token = command[pos] if len(command) > pos else None
    if token is not None and type(token) is not int:
        raise BadArgument(f"lock: token must be an int (a fencing token) or absent, "
                          f"got {_show(token)} in {_show(command)}")
    return token


def _config(config: Any) -> dict[str, int]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"lock: config must be a dict, got {_show(config)}")
    unknown = sorted(str(k) for k in config if k not in _CONFIG_MIN)
    if unknown:
        raise ConfigError(f"lock: unknown config key(s) {unknown}; known: {sorted(_CONFIG_MIN)}")
    for key, value in config.items():
        if type(value) is not int or value < _CONFIG_MIN[key]:
            raise ConfigError(f"lock: config {key} must be an int >= {_CONFIG_MIN[key]}, "
                              f"got {_show(value)}")
    return dict(config)


def _show(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---- queries (for local_query / consistent_query, e.g. "raft_otp.machines.lock:locks") ----

def locks(state: LockState) -> LockState:
    """Every record ``{name: [owner, token, expires_ms]}`` (a copy).  A query has no
    entry time, so expired records not yet dropped are included: compare
    ``expires_ms`` with a clock yourself, or send ``["holder", name]``."""
    return {name: list(rec) for name, rec in state.items()}


def record(state: LockState, name: str) -> list[Any] | None:
    """The record ``[owner, token, expires_ms]`` of ``name`` (possibly expired), or None."""
    rec = state.get(name)
    return None if rec is None else list(rec)
