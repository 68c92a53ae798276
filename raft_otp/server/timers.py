"""One-shot timers posting a message to an actor (Erlang ``erlang:send_after``).

Thin wrapper over ``supervisors.timers`` (one shared heap thread per process),
so a server actor can hold ``None`` for "no timer" and cancel blindly.  Idle
servers hold no timer at all.
"""

from __future__ import annotations

from typing import Any

from supervisors import timers as _t


def send_after(target: Any, message: Any, delay_s: float) -> Any:
    """Post ``message`` to ``target`` (ActorRef or callable) after ``delay_s``."""
    return _t.send_after(target, message, delay_s)


def cancel(timer: Any) -> None:
    if timer is not None:
        _t.cancel_timer(timer)
