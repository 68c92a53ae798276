"""OTP-style supervision for pykka actors and OS processes.

A library of its own (it never imports raft_otp): supervisors with the four
OTP strategies, restart intensity and escalation; child specs for actors,
nested supervisors and OS processes; Erlang monitors and links; a shared timer
service; a registry of names that survives restarts; a snapshot of every tree.

Actors: any pykka actor can be supervised; :class:`ThreadingActor` is pykka's
with exit watching built in, and ``ScheduledActor`` (:mod:`supervisors.scheduler`)
owns no thread: a bounded pool per process runs it in slices.  Both are reached
as attributes (``supervisors.ThreadingActor``) and from their modules; ``__all__``
below is the pinned original API.
"""

import logging

from . import registry
from ._watch import ThreadingActor, kill
from .scheduler import ScheduledActor, Scheduler, default_scheduler
from .introspect import tree_snapshot
from .monitors import Down, Exit, LinkedExit, MonitorRef, demonitor, link, monitor, unlink
from .osproc import OsProcess
from .spec import ChildSpec, ProcessSpec
from .supervisor import (AlreadyPresent, AlreadyRunning, ChildInfo, NotFound, NotRunning,
                         RestartIntensityExceeded, StartError, StillRunning, Supervisor,
                         SupervisorError, SupervisorEvent)
from .timers import TimerRef, TimerService, cancel_timer, send_after, stop_timer_service

logging.getLogger("supervisors").addHandler(logging.NullHandler())

__all__ = [
    "Supervisor", "ChildSpec", "ProcessSpec", "OsProcess", "ChildInfo", "SupervisorEvent",
    "SupervisorError", "StartError", "NotFound", "AlreadyPresent", "AlreadyRunning",
    "StillRunning", "NotRunning", "RestartIntensityExceeded",
    "monitor", "demonitor", "link", "unlink", "Down", "Exit", "LinkedExit", "MonitorRef",
    "send_after", "cancel_timer", "stop_timer_service", "TimerRef", "TimerService",
    "registry", "tree_snapshot", "kill",
]
