"""Goal: the WAL engine batches writers, reports one event per writer per batch, rejects gaps, rolls over."""

from __future__ import annotations

import os
import threading

import pytest

from raft_otp.log.events import ResendRequest, WalWritten
from raft_otp.log.memtable import MemTables
from raft_otp.log.wal import Wal, WalConfig, wal_files


class Sink:
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, ev):
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def wait(self, pred, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.events), timeout), self.events


def E(lo, hi, term=1):
    return [(i, term, b"x" * 10) for i in range(lo, hi + 1)]


@pytest.mark.parametrize("method", ["datasync", "fsync", "none"])
def test_batches_and_one_event_per_writer(tmp_path, method):
    mt = MemTables()
    wal = Wal(WalConfig(str(tmp_path), method), mt)
    gate = threading.Event()
    orig = wal._write_batch

    def gated(items, resend):
        gate.wait(10)
        return orig(items, resend)

    wal._write_batch = gated
    wal.start()
    a, b = Sink(), Sink()
    wal.submit(b"a", a, 1, 1, E(1, 3), True)  # maybe taken alone while the gate is shut
    for k in range(2, 6):
        wal.submit(b"a", a, k, 3 * k - 2, E(3 * k - 2, 3 * k), False)
        wal.submit(b"b", b, k - 1, 1 if k == 2 else 3 * k - 5, E(1 if k == 2 else 3 * k - 5, 3 * k - 3), k == 2)
    gate.set()
    a.wait(lambda ev: ev and ev[-1].index == 15)
    b.wait(lambda ev: ev and ev[-1].index == 12)
    assert len(b.events) == 1 and isinstance(b.events[0], WalWritten) and b.events[0].seq == 4
    assert len(a.events) == wal.overview()["batches"] <= 2
    wal.stop()
    with pytest.raises(ValueError):
        Wal(WalConfig(str(tmp_path), "sometimes"), mt)


def test_gap_and_unknown_writer_are_refused(tmp_path):
    wal = Wal(WalConfig(str(tmp_path)), MemTables())
    wal.start()
    s = Sink()
    wal.submit(b"a", s, 1, 5, E(5, 6), False)  # unknown writer, not truncating
    s.wait(lambda ev: any(isinstance(e, ResendRequest) for e in ev))
    wal.submit(b"a", s, 2, 1, E(1, 2), True)
    wal.submit(b"a", s, 3, 4, E(4, 4), False)  # gap (3 missing)
    s.wait(lambda ev: sum(isinstance(e, ResendRequest) for e in ev) == 2 or
           (sum(isinstance(e, ResendRequest) for e in ev) == 1 and any(isinstance(e, WalWritten) for e in ev)))
    written = [e for e in s.events if isinstance(e, WalWritten)]
    assert written and max(e.index for e in written) == 2
    assert wal.overview()["dropped_gaps"] == 2
    wal.stop()


def test_rollover_hands_file_to_segment_writer(tmp_path):
    mt = MemTables()
    wal = Wal(WalConfig(str(tmp_path), max_size_bytes=300), mt)
    wal.start()
    s = Sink()
    wal.submit(b"a", s, 1, 1, E(1, 20), True)
    s.wait(lambda ev: ev)
    wal.submit(b"a", s, 2, 21, E(21, 22), False)
    s.wait(lambda ev: len(ev) == 2)
    assert [r for p, r in mt.pending_flushes] == [{"a": (1, 20)}]
    assert [n for n, _p in wal_files(str(tmp_path))] == [1, 2]
    assert os.path.exists(mt.pending_flushes[0][0])
    wal.stop()


def _wait_parked(wal, workers):
    import time

    end = time.monotonic() + 5
    while wal._idle < workers and time.monotonic() < end:  # every worker parked: idle
        time.sleep(0.001)
    assert wal._idle == workers


def test_a_submit_to_an_idle_wal_is_written_at_once_by_a_wal_thread(tmp_path):
    """Group commit, idle case: the submit returns without writing; a parked worker
    writes, syncs and notifies from its own thread at once (no gathering delay); the
    submitting thread never syncs."""
    import time

    wal = Wal(WalConfig(str(tmp_path), "datasync"), MemTables())
    wal.start()
    _wait_parked(wal, wal.config.workers)
    sync_threads = set()
    real_sync = wal._sync_fd

    def spy_sync(fd):
        sync_threads.add(threading.current_thread().name)
        return real_sync(fd)

    wal._sync_fd = spy_sync
    a = Sink()
    seen = []
    notify = lambda ev: (seen.append(threading.current_thread().name), a(ev))  # noqa: E731
    for k in range(1, 4):
        t0 = time.monotonic()
        assert wal.submit(b"a", notify, k, 3 * k - 2, E(3 * k - 2, 3 * k), k == 1)
        a.wait(lambda ev: ev and ev[-1].index == 3 * k)
        assert time.monotonic() - t0 < 2.0
    assert wal.overview()["batches"] == 3  # each lone submit went out alone, at once
    me = threading.current_thread().name
    assert me not in seen and all(n.startswith(f"wal-{wal.generation}-") for n in seen), seen
    assert sync_threads and me not in sync_threads
    wal.stop()


@pytest.mark.parametrize("workers", [1, 4])
def test_submits_during_a_batch_gather_into_the_next_one(tmp_path, workers):
    """Group commit, busy case: while a batch is being written (and, with one worker,
    synced), submits from several writers gather and go out as one next batch."""
    wal = Wal(WalConfig(str(tmp_path), "datasync", workers=workers), MemTables())
    hold = threading.Event()
    inside = threading.Event()
    if workers == 1:  # hold the one worker in its sync
        real = wal._sync_fd

        def held(fd):
            inside.set()
            hold.wait(10)
            return real(fd)

        wal._sync_fd = held
    else:  # hold the writing turn
        real = wal._write_batch

        def held(items, resend):
            inside.set()
            hold.wait(10)
            return real(items, resend)

        wal._write_batch = held
    wal.start()
    _wait_parked(wal, workers)
    sinks = [Sink() for _ in range(5)]
    wal.submit(b"w0", sinks[0], 1, 1, E(1, 2), True)
    assert inside.wait(10)
    for k in range(1, 5):
        wal.submit(b"w%d" % k, sinks[k], 1, 1, E(1, k), True)
    assert wal.overview()["queued_writes"] == 4
    hold.set()
    for k, sink in enumerate(sinks):
        sink.wait(lambda ev, k=k: ev and ev[-1].index == (k or 2))
    ov = wal.overview()
    assert ov["batches"] == 2 and ov["writes"] == 5, ov
    wal.stop()


def test_the_wal_notifies_from_threads_marked_inline(tmp_path):
    """Each WAL worker marks itself an inline thread for the scheduler (which may then
    run a notified idle server's step on it); the submitting thread stays unmarked."""
    from supervisors.scheduler import is_inline_thread

    wal = Wal(WalConfig(str(tmp_path), "datasync", workers=3), MemTables())
    wal.start()
    a = Sink()
    marked = []
    notify = lambda ev: (marked.append(is_inline_thread()), a(ev))  # noqa: E731
    for k in range(1, 6):
        wal.submit(b"a", notify, k, k, E(k, k), k == 1)
        a.wait(lambda ev, k=k: ev and ev[-1].index == k)
    assert marked and all(marked) and not is_inline_thread()
    wal.stop()
