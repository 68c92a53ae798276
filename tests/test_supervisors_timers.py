"""Goal: send_after delivers once after the delay from one shared thread; cancel works."""

from __future__ import annotations

import queue
import threading
import time

import pykka

from supervisors import TimerService, cancel_timer, send_after
from supervisors.timers import timer_service


def test_send_after_to_a_callable_fires_after_the_delay_in_order():
    got = queue.Queue()
    t0 = time.monotonic()
    send_after(lambda m: got.put((m, time.monotonic() - t0)), "late", 0.15)
    send_after(lambda m: got.put((m, time.monotonic() - t0)), "early", 0.05)
    (m1, d1), (m2, d2) = got.get(timeout=5), got.get(timeout=5)
    assert (m1, m2) == ("early", "late")
    assert d1 >= 0.05 and d2 >= 0.15


def test_send_after_to_an_actor_tells_it():
    out = queue.Queue()

    class Sink(pykka.ThreadingActor):
        def on_receive(self, message):
            out.put(message)

    ref = Sink.start()
    try:
        send_after(ref, {"tick": 1}, 0.01)
        assert out.get(timeout=5) == {"tick": 1}
    finally:
        ref.stop()
    send_after(ref, "to the dead", 0.0)  # dropped quietly
    fired = threading.Event()
    send_after(lambda _: fired.set(), None, 0.0)
    assert fired.wait(5) and timer_service().is_running()


def test_cancel_before_and_after_firing():
    got = []
    fired = threading.Event()
    tref = send_after(got.append, "cancelled", 0.05)
    assert cancel_timer(tref) is True
    assert cancel_timer(tref) is False
    done = send_after(lambda m: fired.set(), "sentinel", 0.1)  # due after the cancelled one
    assert fired.wait(5)
    assert got == []
    assert cancel_timer(done) is False


def test_one_thread_serves_thousands_of_timers():
    svc = TimerService()
    n = 5000
    count = [0]
    all_done = threading.Event()
    lock = threading.Lock()

    def hit(_):
        with lock:
            count[0] += 1
            if count[0] == n // 2:
                all_done.set()

    before = threading.active_count()
    refs = [svc.send_after(hit, i, 0.3 + 0.001 * (i % 50)) for i in range(n)]
    assert all(svc.cancel(r) for r in refs[1::2])
    assert threading.active_count() <= before + 1
    assert all_done.wait(10)
    assert svc.pending_count() == 0
    assert count[0] == n // 2
    svc.stop()
    assert not svc.is_running()


def test_stop_drops_pending_and_restarts_lazily():
    svc = TimerService()
    got = []
    svc.send_after(got.append, "dropped", 30)
    svc.stop()
    assert not svc.is_running() and svc.pending_count() == 0
    fired = threading.Event()
    svc.send_after(lambda _: fired.set(), None, 0.0)
    assert fired.wait(5) and svc.is_running()
    svc.stop()
    assert got == []


def test_a_failing_callback_does_not_kill_the_timer_thread():
    svc = TimerService()
    fired = threading.Event()
    svc.send_after(lambda _: 1 / 0, None, 0.0)
    svc.send_after(lambda _: fired.set(), None, 0.01)
    assert fired.wait(5)
    svc.stop()
