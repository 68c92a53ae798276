"""Goal: the inline policy runs an idle actor's slice on a marked delivering thread only when
it may (tell, INLINE_TYPES, idle, not slow), never beside a pool slice, and backs off slow actors."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import pytest

from supervisors import _scheduled
from supervisors.scheduler import ScheduledActor, Scheduler, in_inline_slice, mark_inline_thread

T = 10.0


@dataclass(frozen=True)
class Fast:
    v: Any


@dataclass(frozen=True)
class Slow:
    v: Any


class Recorder(ScheduledActor):
    """Records (value, thread name) per message and how many threads were ever inside."""

    INLINE_TYPES = frozenset({Fast, Slow})

    def __init__(self, peer: Any = None) -> None:
        super().__init__()
        self.peer = peer
        self.seen: list[tuple[Any, str]] = []
        self.inline_flags: list[bool] = []
        self.inside = 0
        self.max_inside = 0

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        time.sleep(0)  # give up the GIL here: a second thread in the actor would show
        try:
            v = message.v if isinstance(message, (Fast, Slow)) else message
            if isinstance(message, Slow):
                time.sleep(_scheduled.SLOW_SLICE_S * 1.5)  # the slow work being measured
            if isinstance(v, tuple) and v[0] == "block":
                v[2].set()
                v[1].wait(T)
            if v == "chain":
                self.peer.tell(Fast("from-chain"))
                self.actor_ref.tell(Fast("to-self"))
            self.seen.append((v, threading.current_thread().name))
            self.inline_flags.append(in_inline_slice())
            return v
        finally:
            self.inside -= 1


@pytest.fixture
def sched():
    s = Scheduler(threads=2, slice_budget=8, name="isched").start()
    yield s
    mark_inline_thread(False)
    pykka.ActorRegistry.stop_all()
    assert s.stop(T)


def hosted(sched: Scheduler) -> type:
    return type("Hosted", (Recorder,), {"scheduler": sched})


def wait_until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + T
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def idle(ref: Any) -> Callable[[], bool]:
    return lambda: ref.actor_inbox.state == "idle"


def seen(ref: Any) -> list[tuple[Any, str]]:
    return ref.proxy().seen.get(timeout=T)


def test_runs_on_the_marked_thread_only_when_it_may(sched):
    me = threading.current_thread().name
    ref = hosted(sched).start()
    wait_until(idle(ref))
    mark_inline_thread()
    ref.tell(Fast(1))  # idle, tell, inline type, marked thread: handled before tell returns
    actor = ref.proxy()
    assert actor.seen.get(timeout=T) == [(1, me)]
    wait_until(idle(ref))
    ref.tell("plain")  # not an inline type
    wait_until(lambda: len(seen(ref)) == 2)
    wait_until(idle(ref))
    assert ref.ask(Fast("ask"), timeout=T) == "ask"  # an ask: never inline
    wait_until(idle(ref))
    other = threading.Thread(target=ref.tell, args=(Fast("unmarked"),))
    other.start()
    other.join(T)
    wait_until(lambda: len(seen(ref)) == 4)
    wait_until(idle(ref))
    release, entered = threading.Event(), threading.Event()
    ref.tell(("block", release, entered))  # busy on the pool ...
    assert entered.wait(T)
    ref.tell(Fast("busy"))  # ... so this one is queued, not run here
    assert ("busy", me) not in seen_now(ref)
    release.set()
    wait_until(lambda: any(v == "busy" for v, _ in seen(ref)))
    by_value = dict(seen(ref))
    for v in ("plain", "ask", "unmarked", "busy"):
        assert by_value[v].startswith("isched-"), (v, by_value[v])
    assert ref.proxy().sched_stats.get(timeout=T)["inline_slices"] == 1
    assert sched.stats()["inline_slices"] == 1
    assert ref.proxy().inline_flags.get(timeout=T) == [True, False, False, False, False, False]


def seen_now(ref: Any) -> list[tuple[Any, str]]:
    """What the actor has handled so far, read without a message (it may be busy)."""
    from supervisors._watch import actor_of
    return list(actor_of(ref).seen)  # type: ignore[union-attr]


def test_a_scheduler_without_inline_runs_everything_on_the_pool():
    s = Scheduler(threads=1, name="noinline", inline=False).start()
    try:
        ref = hosted(s).start()
        wait_until(idle(ref))
        mark_inline_thread()
        ref.tell(Fast(1))
        wait_until(lambda: len(seen(ref)) == 1)
        assert seen(ref)[0][1].startswith("noinline-")
        assert s.stats()["inline_slices"] == 0
    finally:
        mark_inline_thread(False)
        pykka.ActorRegistry.stop_all()
        s.stop(T)


def test_no_nested_inline_and_what_is_left_goes_to_the_pool(sched):
    me = threading.current_thread().name
    peer = hosted(sched).start()
    ref = hosted(sched).start(peer)
    wait_until(idle(ref))
    wait_until(idle(peer))
    mark_inline_thread()
    ref.tell(Fast("chain"))
    mark_inline_thread(False)
    assert seen_now(ref)[0] == ("chain", me)  # inline, done when tell returned
    wait_until(lambda: len(seen(ref)) == 2 and len(seen(peer)) == 1)
    assert seen(ref)[1][1].startswith("isched-")  # its own follow-up: the pool
    assert seen(peer)[0][1].startswith("isched-")  # a tell from inside an inline slice: the pool


def test_inline_deliveries_never_run_beside_a_pool_slice(sched):
    ref = hosted(sched).start()
    marked, unmarked, rounds, burst = 4, 2, 25, 16
    senders = marked + unmarked
    go = threading.Barrier(senders + 1)  # each round starts with the actor idle, all at once
    done = threading.Barrier(senders + 1)

    def send(k: int, mark: bool) -> None:
        mark_inline_thread(mark)
        for r in range(rounds):
            go.wait(T)
            for i in range(burst):
                msg = Fast((k, r * burst + i))
                ref.ask(msg, timeout=T) if i == burst - 1 and k % 2 else ref.tell(msg)
            done.wait(T)

    threads = [threading.Thread(target=send, args=(k, k < marked)) for k in range(senders)]
    for t in threads:
        t.start()
    for r in range(rounds):
        wait_until(idle(ref))
        go.wait(T)
        done.wait(T)
        wait_until(lambda: len(seen(ref)) == (r + 1) * senders * burst)
    for t in threads:
        t.join(T)
    got = seen(ref)
    for k in range(senders):  # each sender's messages, all handled, in its order
        assert [v[1] for v, _ in got if v[0] == k] == list(range(rounds * burst))
    assert ref.proxy().max_inside.get(timeout=T) == 1
    stats = ref.proxy().sched_stats.get(timeout=T)
    assert stats["inline_slices"] > 0 and stats["slices"] > 0, stats  # both paths raced


def test_a_slow_inline_slice_sends_the_actor_to_the_pool_for_a_while(sched, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="supervisors.scheduler")
    now = [1000.0]
    monkeypatch.setattr(_scheduled, "_monotonic", lambda: now[0])
    me = threading.current_thread().name
    ref = hosted(sched).start()
    mark_inline_thread()

    def deliver(msg: Any) -> str:
        wait_until(idle(ref))
        before = len(seen(ref))
        wait_until(idle(ref))
        ref.tell(msg)
        wait_until(lambda: len(seen(ref)) == before + 1)
        return seen(ref)[-1][1]

    assert deliver(Slow("slow-1")) == me  # inline, and too slow
    assert ref.proxy().sched_stats.get(timeout=T)["slow_slices"] == 1
    assert deliver(Fast("refused")).startswith("isched-")
    now[0] += 1.01  # the 1 s backoff is over
    assert deliver(Fast("back")) == me
    assert deliver(Slow("slow-2")) == me  # slow again within twice the period: 2 s
    now[0] += 1.5
    assert deliver(Fast("still-off")).startswith("isched-")
    now[0] += 0.6
    assert deliver(Fast("on-again")) == me
    now[0] += 100  # quiet for long: the next slow one starts again at 1 s
    assert deliver(Slow("slow-3")) == me
    now[0] += 1.01
    assert deliver(Fast("after-1s")) == me
    lines = [r.getMessage() for r in caplog.records if "inline slice took" in r.getMessage()]
    assert len(lines) == 3 and lines[1].endswith("for 2 s") and lines[2].endswith("for 1 s")
    assert ref.proxy().sched_stats.get(timeout=T)["slow_slices"] == 3
