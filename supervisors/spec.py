"""Child specifications (OTP's ``child_spec()``).

A :class:`ChildSpec` says how to start a child (``start``), when to restart it
(``restart``), how long it may take to stop (``shutdown``) and what it is
(``type``).  ``start`` is a callable returning a started pykka ``ActorRef``, a
:class:`~supervisors.supervisor.Supervisor` (started or not), an
:class:`~supervisors.osproc.OsProcess`, or a :class:`ProcessSpec` (started for
you).  The class methods :meth:`ChildSpec.actor`, :meth:`ChildSpec.process`
and :meth:`ChildSpec.supervisor` cover the usual cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Literal, Mapping, Sequence, Type

import pykka

from . import _watch

__all__ = ["ChildSpec", "ProcessSpec", "Restart", "Shutdown", "ChildType", "Strategy",
           "DEFAULT_WORKER_SHUTDOWN_S"]

Restart = Literal["permanent", "transient", "temporary"]
ChildType = Literal["worker", "supervisor"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
Shutdown = float | Literal["brutal_kill", "infinity"]

DEFAULT_WORKER_SHUTDOWN_S = 5.0  # OTP: 5000 ms for workers, infinity for supervisors
_RESTARTS = ("permanent", "transient", "temporary")
_TYPES = ("worker", "supervisor")
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")


@dataclass(frozen=True)
class ProcessSpec:
    """An OS process to run: a command (``cmd``) or a Python ``target`` run in a
    fresh interpreter (multiprocessing ``spawn``; target and args must pickle)."""

    cmd: Sequence[str] | None = None
    target: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stdout: Any = None  # passed to Popen for commands (None: inherit)
    stderr: Any = None
    die_with_parent: bool = True  # PR_SET_PDEATHSIG; costs a fork instead of a vfork (~2 ms)

    def __post_init__(self) -> None:
        if (self.cmd is None) == (self.target is None):
            raise ValueError("ProcessSpec needs exactly one of cmd or target")

    def with_extra_args(self, extra: tuple[Any, ...]) -> ProcessSpec:
        """A copy with ``extra`` appended to the command line or target args."""
        if not extra:
            return self
        if self.cmd is not None:
            return replace(self, cmd=[*self.cmd, *map(str, extra)])
        return replace(self, args=(*self.args, *extra))

    def __call__(self, *extra: Any) -> Any:
        from .osproc import OsProcess
        return OsProcess.start(self.with_extra_args(extra))


@dataclass(frozen=True)
class _ActorStarter:
    """Starts ``actor_class(*args, *extra, **kwargs)`` with its exit watch installed."""

    actor_class: type[pykka.Actor]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    def __call__(self, *extra: Any) -> pykka.ActorRef[Any]:
        return _watch.start_actor(self.actor_class, *self.args, *extra, **self.kwargs)


@dataclass(frozen=True)
class _SupervisorStarter:
    """Builds a (not yet started) nested Supervisor."""

    id: Hashable
    strategy: str
    children: tuple[ChildSpec, ...]
    intensity: int
    period: float
    threadless: bool = False

    def __call__(self, *extra: Any) -> Any:
        from .supervisor import Supervisor
        return Supervisor(list(self.children), strategy=self.strategy,  # type: ignore[arg-type]
                          intensity=self.intensity, period=self.period, id=self.id,
                          threadless=self.threadless)


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    ``shutdown`` None means OTP's default: 5 s for a worker, ``'infinity'`` for a
    supervisor.  ``name``, when set, is registered (see
    :mod:`supervisors.registry`) after every (re)start of an actor child.
    ``args`` are extra positional arguments handed to ``start``.
    """

    id: Hashable
    start: Callable[..., Any]
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"
    name: str | None = None
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.restart not in _RESTARTS:
            raise ValueError(f"restart must be one of {_RESTARTS}, not {self.restart!r}")
        if self.type not in _TYPES:
            raise ValueError(f"type must be one of {_TYPES}, not {self.type!r}")
        if not callable(self.start):
            raise TypeError("start must be callable")
        if self.shutdown is None:
            default = "infinity" if self.type == "supervisor" else DEFAULT_WORKER_SHUTDOWN_S
            object.__setattr__(self, "shutdown", default)
        sd = self.shutdown
        if isinstance(sd, str):
            if sd not in ("brutal_kill", "infinity"):
                raise ValueError(
                    f"shutdown must be seconds, 'brutal_kill' or 'infinity', not {sd!r}")
        elif not isinstance(sd, (int, float)) or sd < 0:
            raise ValueError(f"shutdown must be >= 0 seconds, not {sd!r}")

    @classmethod
    def actor(cls, id: Hashable, actor_class: Type[pykka.Actor], *args: Any,
              name: str | None = None, restart: Restart = "permanent",
              shutdown: Shutdown | None = None, **kwargs: Any) -> ChildSpec:
        """A pykka actor child: ``actor_class.start(*args, **kwargs)``."""
        return cls(id=id, start=_ActorStarter(actor_class, args, dict(kwargs)), restart=restart,
                   shutdown=shutdown, type="worker", name=name)

    @classmethod
    def process(cls, id: Hashable, cmd: Sequence[str] | None = None, *,
                target: Callable[..., Any] | None = None, args: tuple[Any, ...] = (),
                kwargs: Mapping[str, Any] | None = None, restart: Restart = "permanent",
                shutdown: Shutdown | None = None, env: Mapping[str, str] | None = None,
                cwd: str | None = None, stdout: Any = None, stderr: Any = None,
                die_with_parent: bool = True) -> ChildSpec:
        """An OS-process child: a command, or a Python target in its own process."""
        pspec = ProcessSpec(cmd=list(cmd) if cmd is not None else None, target=target,
                            args=tuple(args), kwargs=dict(kwargs or {}), env=env, cwd=cwd,
                            stdout=stdout, stderr=stderr, die_with_parent=die_with_parent)
        return cls(id=id, start=pspec, restart=restart, shutdown=shutdown, type="worker")

    @classmethod
    def supervisor(cls, id: Hashable, strategy: Strategy = "one_for_one",
                   children: Sequence[ChildSpec] = (), *, intensity: int = 1,
                   period: float = 5.0, restart: Restart = "permanent",
                   shutdown: Shutdown | None = None, threadless: bool = False) -> ChildSpec:
        """A nested supervisor child (``threadless``: no control thread of its own;
        see :class:`~supervisors.supervisor.Supervisor`)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        starter = _SupervisorStarter(id, strategy, tuple(children), intensity, period, threadless)
        return cls(id=id, start=starter,
                   restart=restart, shutdown=shutdown, type="supervisor")
