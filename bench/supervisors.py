"""Benchmark part ``supervisors``: what supervision costs.

- crash -> replacement serving: time from a crashing ``tell`` to the restarted
  actor answering an ``ask`` (median, p99), against a bare pykka
  stop + start + ask done by hand (the floor of any restart);
- a supervised actor's message cost against a bare pykka actor's (ask round
  trip, tell throughput), measured in the same run;
- an OS-process child: SIGKILL -> replacement running, against a bare
  kill + wait + Popen (with and without PR_SET_PDEATHSIG, whose preexec_fn
  forces fork instead of vfork);
- a timer: send_after + cancel against threading.Timer create + cancel.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
from typing import Any

import pykka

from bench.common import Figure, median, now, percentile, time_per_op
from supervisors import ChildSpec, Supervisor, SupervisorEvent, TimerService
from supervisors.testing import Probe


class _Bare(pykka.ThreadingActor):
    def on_receive(self, message):
        return message


def _quiet() -> None:
    for name in ("pykka", "supervisors"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _started_refs(sup: Supervisor) -> queue.SimpleQueue[Any]:
    """A queue that receives the ref of every child the supervisor starts."""
    started: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def on_event(ev: SupervisorEvent) -> None:
        if ev.kind == "started":
            started.put(ev.ref)
    sup.subscribe(on_event)
    return started


def _crash_to_serving(n: int) -> list[float]:
    sup = Supervisor([ChildSpec.actor("w", Probe, "w")], intensity=10 * n, period=3600.0).start()
    started = _started_refs(sup)
    samples = []
    try:
        ref = sup.child_ref("w")
        for _ in range(n):
            t0 = now()
            ref.tell("crash")
            ref = started.get(timeout=10)
            ref.ask("ping")
            samples.append(now() - t0)
    finally:
        sup.stop()
    return samples


def _manual_restart(n: int) -> list[float]:
    samples = []
    ref = Probe.start("w")
    for _ in range(n):
        t0 = now()
        ref.stop()
        ref = Probe.start("w")
        ref.ask("ping")
        samples.append(now() - t0)
    ref.stop()
    return samples


def _ask_and_tell(ref: pykka.ActorRef, n_ask: int, n_tell: int) -> tuple[float, float]:
    """(seconds per ask round trip, tells per second) of one round."""
    ask = time_per_op(lambda: ref.ask("ping"), n_ask, repeat=1)
    t0 = now()
    for _ in range(n_tell):
        ref.tell(1)
    ref.ask("ping")  # FIFO: every tell has been handled
    return ask, n_tell / (now() - t0)


def _message_cost(n_ask: int, n_tell: int, rounds: int) -> tuple[float, float, float, float]:
    """Best of interleaved rounds, supervised vs bare, so machine noise hits both."""
    sup = Supervisor([ChildSpec.actor("w", _Bare)]).start()
    bare = _Bare.start()
    s_ask = b_ask = float("inf")
    s_tell = b_tell = 0.0
    try:
        for _ in range(rounds):
            a, t = _ask_and_tell(sup.child_ref("w"), n_ask, n_tell)
            s_ask, s_tell = min(s_ask, a), max(s_tell, t)
            a, t = _ask_and_tell(bare, n_ask, n_tell)
            b_ask, b_tell = min(b_ask, a), max(b_tell, t)
    finally:
        sup.stop()
        bare.stop()
    return s_ask, s_tell, b_ask, b_tell


def _process_restart(n: int, die_with_parent: bool = True) -> tuple[list[float], list[float]]:
    spec = ChildSpec.process("p", ["sleep", "600"], die_with_parent=die_with_parent)
    sup = Supervisor([spec], intensity=10 * n, period=3600.0).start()
    started = _started_refs(sup)
    sup_samples, bare = [], []
    try:
        proc = sup.child_ref("p")
        for _ in range(n):
            t0 = now()
            os.kill(proc.pid, signal.SIGKILL)
            proc = started.get(timeout=10)
            sup_samples.append(now() - t0)
    finally:
        sup.stop()
    p = subprocess.Popen(["sleep", "600"])
    for _ in range(n):  # the floor: kill, reap, start again, all by hand
        t0 = now()
        p.kill()
        p.wait()
        p = subprocess.Popen(["sleep", "600"])
        bare.append(now() - t0)
    p.kill()
    p.wait()
    return sup_samples, bare


def _timers(n: int) -> tuple[float, float]:
    svc = TimerService()
    noop = lambda _m: None  # noqa: E731

    def ours() -> None:
        svc.cancel(svc.send_after(noop, None, 60.0))

    def theirs() -> None:
        t = threading.Timer(60.0, noop, (None,))
        t.start()
        t.cancel()
    ours_s = time_per_op(ours, n)
    theirs_s = time_per_op(theirs, max(100, n // 20))
    svc.stop()
    return ours_s, theirs_s


def run(quick: bool = False) -> list[Figure]:
    _quiet()
    n_crash = 50 if quick else 400
    n_ask, n_tell = (2000, 20000) if quick else (10000, 50000)
    crash = _crash_to_serving(n_crash)
    manual = _manual_restart(n_crash)

    s_ask, s_tell, b_ask, b_tell = _message_cost(n_ask, n_tell, 3 if quick else 7)

    p_sup, p_bare = _process_restart(10 if quick else 40)
    p_fast, p_bare2 = _process_restart(10 if quick else 40, die_with_parent=False)
    t_ours, t_theirs = _timers(20000 if quick else 200000)
    ms, us = 1e3, 1e6
    return [
        Figure("crash_to_serving_median", median(crash) * ms, "ms",
               "bare pykka stop+start+ask (median)", median(manual) * ms, higher_is_better=False),
        Figure("crash_to_serving_p99", percentile(crash, 99) * ms, "ms",
               "bare pykka stop+start+ask (p99)", percentile(manual, 99) * ms,
               higher_is_better=False),
        Figure("supervised_ask_roundtrip", s_ask * us, "us", "bare pykka actor ask",
               b_ask * us, higher_is_better=False),
        Figure("supervised_tell_throughput", s_tell, "msgs/s", "bare pykka actor tell",
               b_tell),
        Figure("os_process_kill_to_restarted_median", median(p_sup) * ms, "ms",
               "bare kill+wait+Popen (median)", median(p_bare) * ms, higher_is_better=False),
        Figure("os_process_kill_to_restarted_median.no_pdeathsig", median(p_fast) * ms, "ms",
               "bare kill+wait+Popen (median)", median(p_bare2) * ms, higher_is_better=False),
        Figure("send_after_plus_cancel", t_ours * us, "us", "threading.Timer start+cancel",
               t_theirs * us, higher_is_better=False),
    ]
