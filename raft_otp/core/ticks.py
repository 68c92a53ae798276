"""When a leader ticks: the tick timer's policy, decided in the core.

Only leaders tick (followers learn of a dead leader from monitors and the node
failure detector), so 10,000 idle clusters cost one timer per leader.  An idle
leader ticks less and less often: after a tick that did nothing (no effect, no
new log entry, no machine ``tick`` callback to run) the interval doubles, up to
``16 * tick_ms``; any tick that did something, and any client command, brings it
back to ``tick_ms``.  The executor only arms what ``StartTickTimer`` says.
"""

from __future__ import annotations

from raft_otp.core.effects import CancelTickTimer, Effect, StartTickTimer
from raft_otp.core.events import Commands, Event, Tick
from raft_otp.core.state import ServerState

MAX_BACKOFF = 16
"""An idle leader's tick interval grows up to this many times ``tick_ms``."""


def after_event(state: ServerState, event: Event, effects: list[Effect]) -> None:
    """Append the tick timer's effect, if any, for ``event`` just handled."""
    if state.role != "leader":
        if state.tick_armed:
            state.tick_armed = False
            state.tick_ms = state.cfg.tick_ms
            effects.append(CancelTickTimer())
        return
    base = state.cfg.tick_ms
    t = type(event)
    if t is Tick:
        state.tick_armed = False  # it fired
        last = state.log.last_index_term()[0]
        busy = bool(effects) or last != state.tick_last_index or state.machine_ticks
        state.tick_ms = base if busy else min(state.tick_ms * 2, base * MAX_BACKOFF)
        state.tick_last_index = last
    elif t is Commands and state.tick_ms != base:
        state.tick_ms = base  # busy again: tick at the normal rate from now
        state.tick_armed = False
    if not state.tick_armed:
        state.tick_armed = True
        effects.append(StartTickTimer(state.tick_ms))
