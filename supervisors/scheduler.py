"""The node scheduler: pykka actors that own no thread, run by a bounded pool.

Thousands of actors (Raft servers) per process cannot each own a thread.  A
:class:`ScheduledActor` keeps its mailbox, handles one message at a time, is
supervised and watched like any actor, but is run in slices (at most a budget
of messages each) by the pool threads of a :class:`Scheduler`; a busy actor goes
back to the tail of the run queue after each slice, so it cannot starve others.

- :class:`Scheduler` (``threads``, ``slice_budget``, ``name``, ``inline``): the pool.
- :func:`default_scheduler` / :func:`configure_default`: the process-wide pool
  (``$SUPERVISORS_SCHED_THREADS`` threads, 4 by default; ``$SUPERVISORS_SCHED_INLINE=0``
  turns inline runs off), started on first use.
- :func:`mark_inline_thread`: a delivering thread (I/O, notifier) may run an idle
  actor's slice at once for the message types the actor lists in
  ``INLINE_TYPES``; the policy lives in one place, ``ScheduledInbox.put``.
- :class:`CallbackFuture`: the asks' future; ``add_done_callback`` answers a
  caller without a waiting thread.  :class:`Envelope`: put one holding a
  CallbackFuture in any actor's inbox to call it without ``ask``'s future type.

Only pykka's documented hooks for actor types are used (``_create_actor_inbox``,
``_create_future``, ``_start_actor_loop``) and its protected loop pieces.
"""

from __future__ import annotations

from ._future import CallbackFuture
from ._pool import (INLINE_ENV, THREADS_ENV, Runnable, Scheduler, configure_default, current_scheduler,
                    default_scheduler, in_inline_slice, is_inline_thread, mark_inline_thread,
                    peek_default)
from ._scheduled import SLOW_SLICE_S, ScheduledActor, ScheduledInbox
from ._watch import Envelope

__all__ = ["Scheduler", "ScheduledActor", "ScheduledInbox", "CallbackFuture", "Envelope", "Runnable",
           "default_scheduler", "configure_default", "peek_default", "current_scheduler",
           "mark_inline_thread", "is_inline_thread", "in_inline_slice", "SLOW_SLICE_S",
           "THREADS_ENV", "INLINE_ENV"]
