"""OS-process children: a command (``subprocess.Popen``) or a Python target in
a fresh interpreter (multiprocessing ``spawn``; never ``fork`` from our
threaded process).

Each process has one waiter thread blocked in ``Popen.wait`` / ``Process.join``
(the process sentinel): the exit is seen the instant it happens.  Children are
asked to die with their parent (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so
no process outlives a crashed parent.  PDEATHSIG fires when the *thread* that
started the child exits; supervisors start children from their own long-lived
control thread, which outlives its children.

Started means spawned: a command child has exec'd when ``start`` returns (Popen
waits for the exec), a Python target's process only forked (multiprocessing
returns before its exec; mid-exec ``/proc/<pid>/cmdline`` reads empty).  A
caller that needs the target running waits for a sign from the target itself.

Exit reasons: ``'normal'`` (status 0), ``'exit status N'``, ``'killed by SIGKILL'``.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from .spec import ProcessSpec

__all__ = ["OsProcess", "exit_reason"]

logger = logging.getLogger("supervisors")
_ids = itertools.count(1)
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.prctl
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved before any fork: the preexec_fn only calls it


def die_with_parent(parent_pid: int) -> None:
    """In a child: get SIGKILL when the parent dies; exit now if it already did."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _target_main(parent_pid: int | None, target: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], env: dict[str, str] | None, cwd: str | None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    target(*args, **kwargs)


def exit_reason(returncode: int) -> str:
    """Erlang-style reason for a process exit status."""
    if returncode == 0:
        return "normal"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class OsProcess:
    """A running OS process with exit listeners (monitorable like an actor)."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.pid: int | None = None
        self.returncode: int | None = None
        self.started_at = 0.0
        self.exited = threading.Event()
        self.reason: Any = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._mp: Any = None
        self._listeners: dict[int, Callable[[Any], None]] = {}
        self._lock = threading.Lock()
        self._shutting_down = False
        self._waiter: threading.Thread | None = None

    @classmethod
    def start(cls, spec: ProcessSpec) -> OsProcess:
        """Start the process and its waiter thread."""
        p = cls(spec)
        p._start()
        return p

    def _start(self) -> None:
        spec = self.spec
        parent = os.getpid()
        env = dict(spec.env) if spec.env is not None else None
        if spec.cmd is not None:
            self._popen = subprocess.Popen(list(spec.cmd), env=env, cwd=spec.cwd,
                                           stdout=spec.stdout, stderr=spec.stderr,
                                           preexec_fn=((lambda: die_with_parent(parent))
                                                       if spec.die_with_parent else None))
            self.pid = self._popen.pid
        else:
            ctx = multiprocessing.get_context("spawn")
            self._mp = ctx.Process(target=_target_main, daemon=False,
                                   args=(parent if spec.die_with_parent else None, spec.target, tuple(spec.args), dict(spec.kwargs),
                                         env, spec.cwd))
            self._mp.start()
            self.pid = self._mp.pid
        self.started_at = time.time()
        self._waiter = threading.Thread(target=self._wait, name=f"supervisors-proc-{self.pid}",
                                        daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        if self._popen is not None:
            rc = self._popen.wait()
        else:
            self._mp.join()
            rc = self._mp.exitcode
            self._mp.close()
        self.returncode = rc
        if self.reason is None:
            self.reason = exit_reason(rc)
        with self._lock:
            self.exited.set()
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for fn in listeners:
            try:
                fn(self.reason)
            except Exception:
                logger.exception("exit listener of pid %s failed", self.pid)

    # --- listeners (same protocol as an actor's watch) ---
    def add_listener(self, fn: Callable[[Any], None]) -> int | None:
        with self._lock:
            if self.exited.is_set():
                return None
            lid = next(_ids)
            self._listeners[lid] = fn
            return lid

    def remove_listener(self, lid: int) -> None:
        with self._lock:
            self._listeners.pop(lid, None)

    @property
    def final_reason(self) -> Any:
        return self.reason if self.reason is not None else "noproc"

    def is_alive(self) -> bool:
        return self.pid is not None and not self.exited.is_set()

    def signal(self, sig: int) -> None:
        """Send ``sig`` unless it already exited."""
        if self.pid is not None and not self.exited.is_set():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def join_waiter(self, timeout: float | None = None) -> None:
        """Wait for the waiter thread to finish (after the exit was reported)."""
        t = self._waiter
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self, timeout: float | None = 5.0) -> bool:
        """SIGTERM, wait ``timeout`` (None: forever), then SIGKILL. True if it exited."""
        self._shutting_down = True
        self.signal(signal.SIGTERM)
        if not self.exited.wait(timeout):
            logger.warning("pid %s ignored SIGTERM for %.1f s; sending SIGKILL", self.pid, timeout)
            self.kill()
        return self.exited.wait(5.0)

    def __repr__(self) -> str:
        spec = self.spec
        what = spec.cmd if spec.cmd is not None else getattr(spec.target, "__name__", "?")
        return f"<OsProcess pid={self.pid} {what!r}>"
