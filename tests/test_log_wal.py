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

    def gated(items):
        gate.wait(10)
        return orig(items)

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


def test_inline_write_when_idle_then_workers_again(tmp_path):
    """submit(inline=True) on an idle WAL writes and syncs on the caller's thread; busy: queued."""
    import time

    mt = MemTables()
    wal = Wal(WalConfig(str(tmp_path), "datasync"), mt)
    wal.start()
    end = time.monotonic() + 5
    while not wal._idle and time.monotonic() < end:  # a worker parked: the WAL is idle
        time.sleep(0.001)
    a = Sink()
    me = threading.get_ident()
    seen = []
    a_call = a.__call__
    notify = lambda ev: (seen.append(threading.get_ident()), a_call(ev))  # noqa: E731
    assert wal.submit(b"a", notify, 1, 1, E(1, 3), True, inline=True)
    assert [e.index for e in a.events] == [3] and seen == [me]  # done before submit returned
    wal.submit(b"a", notify, 2, 4, E(4, 5), False)  # not inline: a worker reports it
    a.wait(lambda ev: ev[-1].index == 5)
    assert seen[-1] != me
    assert wal.overview()["entries"] == 5 and wal.overview()["syncs"] >= 2
    wal.stop()


def test_write_through_only_when_idle_and_contiguous(tmp_path):
    """write_through writes and syncs on the caller's thread and answers with the event
    (no notify); it declines a writer's first batch, a gap, and a busy WAL, and what it
    wrote is read back by recovery like any batch."""
    import time

    mt = MemTables()
    wal = Wal(WalConfig(str(tmp_path), "datasync"), mt)
    wal.start()
    end = time.monotonic() + 5
    while not wal._idle and time.monotonic() < end:
        time.sleep(0.001)
    a = Sink()
    assert wal.write_through(b"a", 1, 1, E(1, 3)) is None  # unknown writer: must truncate first
    assert wal.submit(b"a", a, 1, 1, E(1, 3), True, inline=True)
    syncs = wal.overview()["syncs"]
    ev = wal.write_through(b"a", 2, 4, E(4, 6))
    assert isinstance(ev, WalWritten) and (ev.uid, ev.seq, ev.index, ev.term) == ("a", 2, 6, 1)
    assert wal.overview()["syncs"] == syncs + 1 and wal.overview()["entries"] == 6
    assert wal.write_through(b"a", 3, 8, E(8, 9)) is None  # gap: 7 missing
    assert wal.write_through(b"a", 3, 7, []) is None
    wal._inline = True  # another thread holds the WAL: decline, do not wait
    assert wal.write_through(b"a", 3, 7, E(7, 7)) is None
    wal._inline = False
    assert len(a.events) == 1  # only the submit notified
    wal.stop()
    mt2 = MemTables()
    wal2 = Wal(WalConfig(str(tmp_path), "datasync"), mt2)
    wal2.start()
    assert [e[0] for e in mt2.store("a").mem.slice(1, 10)] == [1, 2, 3, 4, 5, 6]
    wal2.stop()
