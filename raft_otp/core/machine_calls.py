"""Calling the user's machine: its exceptions and invalid effects become outcomes.

RA lets a raising ``apply`` crash the server; its supervisor restarts it, the
replay raises again, and every member of the cluster ends in the same crash
loop: one bad command halts the cluster.  Here (``on_machine_error = "reply"``,
the default) a machine's failure is data:

* ``apply`` raising, returning something that is not ``(state, reply)`` /
  ``(state, reply, effects)``, or returning an invalid effect: the command's
  reply is a :class:`~raft_otp.errors.MachineError` (type, message, index), the
  machine state stays the object it was before the command, and the server runs
  on.  ``apply`` is deterministic, so this happens on every member at the same
  index (and again, identically, in a replay): the members stay equal.
* ``tick``, ``state_enter`` and ``snapshot_installed`` raising or returning an
  invalid effect: their effects are dropped, and the failure is reported.
* A query function raising: that caller gets a
  :class:`~raft_otp.errors.QueryError`; nothing else changes.

Every failure is also a ``MachineFailed`` effect (the server logs and counts it).
``on_machine_error = "crash"`` restores RA's behaviour for ``apply`` and the
callbacks (never for queries: a bad query is the caller's).
"""

from __future__ import annotations

from typing import Any, Callable

from raft_otp.core import machine as mfx
from raft_otp.core.effects import Effect, MachineFailed, Reply, ReplyError
from raft_otp.core.state import ServerState
from raft_otp.errors import MachineError, QueryError

class InvalidEffect(TypeError):
    """A machine returned an effect that cannot be carried out (names the effect)."""


def _addr_ok(to: Any) -> bool:
    return isinstance(to, str) or (isinstance(to, (tuple, list)) and len(to) == 2
                                   and all(isinstance(p, str) for p in to))


def _fun_ok(fun: Any) -> bool:
    return isinstance(fun, str) and ":" in fun


def check_effect(eff: Any) -> None:
    """Raise :class:`InvalidEffect` if ``eff`` is not a machine effect the server can
    carry out.  Checked on every member whatever its role, so the outcome is the same
    everywhere (leader-only effects are dropped on followers only after this)."""
    t = type(eff)
    if t is mfx.Timer:
        try:
            hash(eff.name)
        except TypeError:
            raise InvalidEffect(f"{eff!r}: a timer name must be hashable (a str, int or tuple), "
                                f"not {type(eff.name).__name__}") from None
        if eff.ms is not None and (isinstance(eff.ms, bool) or not isinstance(eff.ms, (int, float))
                                   or eff.ms < 0):
            raise InvalidEffect(f"{eff!r}: ms must be a number >= 0, or None to cancel")
    elif t is mfx.SendMsg:
        if not _addr_ok(eff.to):
            raise InvalidEffect(f"{eff!r}: to must be a registered name or (name, node)")
    elif t is mfx.ReleaseCursor or t is mfx.Checkpoint:
        if isinstance(eff.index, bool) or not isinstance(eff.index, int) or eff.index < 0:
            raise InvalidEffect(f"{t.__name__}(index={eff.index!r}): index must be an int >= 0")
    elif t is mfx.Monitor or t is mfx.Demonitor:
        if not _addr_ok(eff.target) or isinstance(eff.target, str):
            raise InvalidEffect(f"{eff!r}: target must be (name, node) or (\"node\", node_name)")
    elif t is mfx.LogRead:
        if not _fun_ok(eff.fun) or not all(isinstance(i, int) for i in eff.indexes):
            raise InvalidEffect(f"{eff!r}: fun must be 'module:function' and indexes ints")
    elif t is mfx.ModCall:
        if not _fun_ok(eff.fun) or not isinstance(eff.args, (tuple, list)):
            raise InvalidEffect(f"{eff!r}: fun must be 'module:function' and args a tuple")
    else:
        raise InvalidEffect(f"{eff!r} is not a machine effect (see raft_otp.core.machine)")


def check_effects(effects: Any) -> None:
    if effects is None:
        return
    if not isinstance(effects, (list, tuple)):
        raise InvalidEffect(f"effects must be a list, got {type(effects).__name__}")
    for eff in effects:
        check_effect(eff)


def check_apply_result(result: Any) -> None:
    if type(result) is not tuple or not 2 <= len(result) <= 3:
        raise InvalidEffect(f"apply must return (state, reply) or (state, reply, effects), "
                            f"got {_short(result)}")
    if len(result) == 3:
        check_effects(result[2])


def failed(state: ServerState, what: str, index: int | None, exc: Exception,
           effects: list[Effect]) -> MachineError:
    """Record a failure of the machine's ``what`` (apply, tick, ...); the error value."""
    state.machine_errors += 1
    err = MachineError(type(exc).__qualname__, str(exc), index)
    if not state.applying_recovery:  # a replay reports nothing new
        effects.append(MachineFailed(what, index, err.type_name, err.message, exc))
    return err


def callback(state: ServerState, what: str, fun: Callable[..., Any], args: tuple[Any, ...],
             effects: list[Effect]) -> list[Any] | None:
    """``fun(*args)`` for ``tick``/``state_enter``/``snapshot_installed``: its effects,
    or None after a failure (reported, or raised with ``on_machine_error="crash"``)."""
    try:
        out = fun(*args)
        check_effects(out)
        return out
    except Exception as exc:
        if state.cfg.on_machine_error == "crash":
            raise
        failed(state, what, None, exc, effects)
        return None


def query_reply(state: ServerState, to: Any, fun: Callable[[Any], Any], leader: Any,
                effects: list[Effect]) -> None:
    """Answer a query with ``fun(machine state)``, or with a QueryError if it raised."""
    try:
        value = fun(state.machine_state)
    except Exception as exc:
        err = QueryError(type(exc).__qualname__, str(exc))
        effects.append(MachineFailed("query", None, err.type_name, err.message, exc))
        effects.append(ReplyError(to, err, leader))  # type: ignore[arg-type]
        return
    effects.append(Reply(to, value, leader))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
