"""A machine's own effects on a real node (RA ``ra_server_proc``'s machine effect handling).

``send_msg``, ``mod_call``, ``log_read``, timers and monitors returned by a
machine's ``apply``/``state_enter``/``tick``.  Timers and monitors come back to the
server as replicated commands (``["timeout", name]``, ``["down", target,
reason]``): this component only arms and watches, and hands those commands to
``submit``.  Monitors are leader-only (RA's rule): dropped when the server stops
leading; a new leader re-establishes them from ``state_enter``.

An effect that fails here (a ``LogRead`` function that raises, an invalid effect
it returned) is logged and counted, never a crash of the server.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable

from raft_otp.core import events as ev
from raft_otp.core import machine as mfx
from raft_otp.core.machine_calls import check_effects
from raft_otp.server import _core, timers
from raft_otp.system.resolve import resolve_query

log = logging.getLogger("raft_otp.server")

__all__ = ["MachineEffectsRunner", "MachineTimerFired", "MachineDown"]


class MachineTimerFired:
    """A machine timer's message to its server."""

    __slots__ = ("name", "gen")

    def __init__(self, name: Any, gen: int) -> None:
        self.name = name
        self.gen = gen


class MachineDown:
    """A machine monitor's target was down when watched: fired from the mailbox,
    never from inside effect execution."""

    __slots__ = ("key", "reason")

    def __init__(self, key: Any, reason: Any) -> None:
        self.key = key
        self.reason = reason


def monitor_key(target: Any) -> tuple[Any, Any] | None:
    """``(name, node)`` / ``("node", node_name)`` (tuple, list or ServerId) as a dict key."""
    if isinstance(target, (tuple, list)) and len(target) == 2 and all(isinstance(x, str) for x in target):
        return (target[0], target[1])
    return None


class MachineEffectsRunner:
    """One server's machine effects: ``owner`` receives timer/monitor messages,
    ``submit(commands)`` replicates what they turn into, ``fetch(i)`` reads the log."""

    def __init__(self, owner: Any, server_id: Any, submit: Callable[[list[Any]], None],
                 fetch: Callable[[int], list[Any]], is_leader: Callable[[], bool],
                 on_error: Callable[[], None]) -> None:
        self.owner = owner
        self.id = server_id
        self.submit = submit
        self.fetch = fetch
        self.is_leader = is_leader
        self.on_error = on_error
        self.rng = random.Random()
        self.timers: dict[Any, tuple[int, Any]] = {}
        self.monitors: dict[Any, tuple[list[Any], Any]] = {}  # key -> (wire target, handle)

    def run(self, effects: tuple[Any, ...]) -> None:
        for me in effects:
            try:
                self._one(me)
            except Exception as exc:
                self.on_error()
                log.warning("%s: machine effect %r failed: %r (the server runs on)",
                            self.id, me, exc, exc_info=True)

    def _one(self, me: Any) -> None:
        match me:
            case mfx.SendMsg():
                to = me.to
                try:
                    if isinstance(to, str):
                        from supervisors.registry import whereis
                        ref = whereis(to)
                        if ref is not None:
                            ref.tell(me.msg)
                    else:
                        _core.send((to[0], to[1]), me.msg)
                except Exception:
                    log.debug("%s: send_msg to %r failed", self.id, to)
            case mfx.Timer():
                cur = self.timers.pop(me.name, None)
                if cur is not None:
                    timers.cancel(cur[1])
                if me.ms is not None:
                    gen = self.rng.getrandbits(31)
                    t = timers.send_after(self.owner, MachineTimerFired(me.name, gen), me.ms / 1000.0)
                    self.timers[me.name] = (gen, t)
            case mfx.ModCall():
                try:
                    resolve_query(me.fun)(*me.args)
                except Exception:
                    log.exception("%s: mod_call %s failed", self.id, me.fun)
            case mfx.LogRead():
                entries = [e for i in me.indexes for e in self.fetch(i)]
                more = resolve_query(me.fun)(entries) or []
                check_effects(more)
                for m in more:
                    self._one(m)
            case mfx.Monitor():
                self._monitor(me.target)
            case mfx.Demonitor():
                key = monitor_key(me.target)
                watched = self.monitors.pop(key, None) if key is not None else None
                if watched is not None and watched[1] is not None:
                    _core.demonitor(watched[1])
            case _:
                log.warning("%s: unknown machine effect %r", self.id, me)

    # ---- timers ---------------------------------------------------------------------
    def timer_fired(self, msg: MachineTimerFired) -> None:
        cur = self.timers.get(msg.name)
        if cur is not None and cur[0] == msg.gen:
            del self.timers[msg.name]
            self.submit([ev.Command(["timeout", msg.name], mode="noreply")])

    # ---- monitors (RA: leader-only; DOWN becomes a replicated command) --------------
    def _monitor(self, target: Any) -> None:
        if not self.is_leader():
            return
        key = monitor_key(target)
        if key is None:
            log.warning("%s: machine monitor of %r: target must be (name, node) or "
                        "(\"node\", node_name)", self.id, target)
            return
        if key in self.monitors:
            return  # already watched (state_enter may re-issue it)
        wire = list(key)
        if key[0] == "node":
            self.monitors[key] = (wire, None)
            if not _core.node_is_up(key[1]):
                self.owner.tell(MachineDown(key, "noconnection"))
            return
        try:
            handle = _core.machine_monitor(key, self.owner)
        except Exception as exc:  # no node started and a remote target: it is unreachable
            log.debug("%s: cannot monitor %r: %r", self.id, target, exc)
            self.monitors[key] = (wire, None)
            self.owner.tell(MachineDown(key, "noconnection"))
            return
        self.monitors[key] = (wire, handle)

    def drop_monitors(self) -> None:
        mons, self.monitors = self.monitors, {}
        for _, handle in mons.values():
            if handle is not None:
                _core.demonitor(handle)

    def down(self, message: Any) -> bool:
        """A DOWN for one of the machine's monitors: submit ``["down", target, reason]``."""
        if not self.monitors:
            return False
        ref = getattr(message, "ref", None)
        if ref is None or not hasattr(message, "reason"):
            return False
        for key, (_, handle) in self.monitors.items():
            if handle is not None and handle == ref:
                self.fire_down(key, _core.down_reason(message.reason))
                return True
        return False

    def node_down(self, node: str) -> None:
        key = ("node", node)
        if key in self.monitors:
            self.fire_down(key, "noconnection")

    def fire_down(self, key: Any, reason: Any) -> None:
        """Monitors fire once (like Erlang's): forget it, then replicate the DOWN."""
        cur = self.monitors.pop(key, None)
        if cur is None or not self.is_leader():
            return
        log.debug("%s: machine monitor %r down (%r)", self.id, key, reason)
        self.submit([ev.Command(["down", cur[0], reason], mode="noreply")])

    def close(self) -> None:
        for _, t in self.timers.values():
            timers.cancel(t)
        self.timers.clear()
        self.drop_monitors()
