"""Errors, exit reasons and the small value types of the supervisor API.

A shallow tree: :class:`SupervisorError` for API misuse or refusal, and
:class:`RestartIntensityExceeded` as the exit reason of a supervisor that gave up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["SupervisorError", "StartError", "NotFound", "AlreadyPresent", "AlreadyRunning",
           "StillRunning", "NotRunning", "RestartIntensityExceeded", "ChildInfo",
           "SupervisorEvent", "SchedulerError"]


class SupervisorError(Exception):
    """Base of the errors raised by the supervisor API."""


class StartError(SupervisorError):
    """A child (or the supervisor itself) failed to start."""


class NotFound(SupervisorError):
    """No child with that id or ref."""


class AlreadyPresent(SupervisorError):
    """A child spec with that id already exists."""


class AlreadyRunning(SupervisorError):
    """The child is running (restart_child needs a stopped one)."""


class StillRunning(SupervisorError):
    """The child is running (delete_child needs a stopped one)."""


class NotRunning(SupervisorError):
    """The supervisor is not running."""


class SchedulerError(SupervisorError):
    """The node scheduler cannot do what was asked (reconfigure a running pool, a
    bad ``SUPERVISORS_SCHED_THREADS``)."""


class RestartIntensityExceeded(Exception):
    """Exit reason of a supervisor that saw too many restarts."""


class ChildInfo(NamedTuple):
    """One row of :meth:`Supervisor.which_children`."""

    id: Any
    ref: Any  # None when not running
    type: str
    status: str


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    """Sent to subscribers: kind is 'started', 'exited' or 'terminated'."""

    kind: str
    supervisor: Any
    child_id: Any
    ref: Any
    reason: Any = None
