"""Goal: ServerLog honours the Log protocol over the real WAL: written events, overwrites, recovery, WAL restarts."""

from __future__ import annotations

import os
import queue

import pykka
import pytest

from raft_otp.core.log_api import SnapshotMeta, SnapshotWritten, Written
from raft_otp.errors import BadArgument
from raft_otp.log import LogConfig, LogSystem


class Srv:
    """A server stand-in: its notify queue feeds handle_event; like a server step,
    it flushes the log after making entries and after each event."""

    def __init__(self, ls: LogSystem, uid: str, **kw):
        self.q: queue.Queue[object] = queue.Queue()
        self.log = ls.open_server_log(uid, self.q.put, **kw)
        self.results: list = []

    def pump(self, until, timeout=10.0):
        import time

        end = time.monotonic() + timeout
        self.log.flush()
        while not until():
            ev = self.q.get(timeout=max(0.01, end - time.monotonic()))
            self.results.extend(self.log.handle_event(ev))
            self.log.flush()
        return self.results

    def written(self, index, term=None):
        self.pump(lambda: self.log.last_written()[0] >= index)
        if term is not None:
            assert self.log.last_written() == (index, term)


def E(lo, hi, term=1):
    return [(i, term, b"%d.%d" % (i, term)) for i in range(lo, hi + 1)]


@pytest.fixture
def system(tmp_path):
    made = []

    def make(**cfg):
        ls = LogSystem(str(tmp_path), LogConfig(**cfg)).start()
        made.append(ls)
        return ls

    yield make
    for ls in made:
        ls.stop()


def test_append_written_fetch_and_recover(system):
    ls = system()
    s = Srv(ls, "s1")
    assert s.log.fetch_term(0) == 0 and s.log.last_index_term() == (0, 0)
    s.log.append(E(1, 10))
    s.log.append(E(11, 12, 2))
    s.written(12, 2)
    assert all(isinstance(r, Written) for r in s.results)
    assert s.log.fetch(1, 100) == E(1, 10) + E(11, 12, 2)
    assert s.log.fetch_term(11) == 2 and s.log.fetch_term(13) is None
    with pytest.raises(BadArgument):
        s.log.append(E(20, 21))
    ls.stop()
    ls2 = system()
    s2 = Srv(ls2, "s1")
    assert s2.log.last_index_term() == (12, 2) and s2.log.last_written() == (12, 2)
    assert s2.log.fetch(1, 12) == E(1, 10) + E(11, 12, 2)


def test_overwrite_before_written_is_clipped_and_never_recovered(system):
    ls = system()
    s = Srv(ls, "s1")
    s.log.append(E(1, 10))
    s.log.write(E(5, 7, 2))  # before the first written event arrives
    s.written(7, 2)
    assert max(r.index for r in s.results) == 7
    assert s.log.fetch(1, 10) == E(1, 4) + E(5, 7, 2)
    s.log.set_last_index(6)
    assert s.log.last_index_term() == (6, 2) and s.log.last_written()[0] == 6
    s.log.write(E(7, 7, 3))
    s.written(7, 3)
    ls.stop()
    s2 = Srv(system(), "s1")
    assert s2.log.fetch(1, 100) == E(1, 4) + E(5, 6, 2) + E(7, 7, 3)


def test_overwrite_below_mem_table_shadows_segments(system):
    ls = system(wal_max_size_bytes=500, segment_max_entries=16)
    s = Srv(ls, "s1")
    for i in range(1, 200, 10):
        s.log.append(E(i, i + 9))
        s.written(i + 9)
    ls.sync_segment_writer()
    assert ls.overview()["segment_writer"]["entries_flushed"] > 0
    s.log.write(E(50, 55, 2))
    s.written(55, 2)
    assert s.log.fetch(45, 60) == E(45, 49) + E(50, 55, 2)
    for _ in range(5):  # more traffic: roll and flush the overwrite too
        lst = s.log.last_index_term()[0]
        s.log.append(E(lst + 1, lst + 20, 2))
        s.written(lst + 20, 2)
    ls.sync_segment_writer()
    expect = E(1, 49) + E(50, 155, 2)
    assert s.log.fetch(1, 155) == expect
    ls.stop()
    s2 = Srv(system(wal_max_size_bytes=500, segment_max_entries=16), "s1")
    assert s2.log.fetch(1, 1000) == expect


def test_wal_restart_resends_unwritten(system):
    ls = system()
    s = Srv(ls, "s1")
    s.log.append(E(1, 5))
    s.written(5)
    ls.wal_ref.stop()
    s.log.append(E(6, 9))  # WAL down: kept in the mem table only
    s.log.flush()
    assert s.log.overview()["wal_unavailable"] == 1
    ls.start_wal()  # WalUp -> resend
    s.written(9)
    assert s.log.overview()["resends"] >= 1
    s.log.append(E(10, 10))
    s.written(10)
    ls.stop()
    s2 = Srv(system(), "s1")
    assert s2.log.fetch(1, 100) == E(1, 10)


def test_writer_thread_crash_crashes_the_actor(system):
    ls = system()
    wal = ls.mem_tables.wal

    def boom(items, resend):  # a WAL bug (ENOSPC no longer crashes it: tests/test_disk_alarm.py)
        raise RuntimeError("WAL bug")

    wal._write_batch = boom
    s = Srv(ls, "s1")
    s.log.append(E(1, 3))
    ref = ls.wal_ref
    ref.actor_stopped.wait(10)
    assert not ref.is_alive()
    assert ls.mem_tables.wal is None
    ls.start_wal()  # what the supervisor does
    s.written(3)


def test_restarted_server_resends_what_it_had_queued(system):
    ls = system()
    s = Srv(ls, "s1")
    ls.wal_ref.stop()
    s.log.append(E(1, 4))  # never reached a WAL
    s.log.close()
    ls.start_wal()
    s2 = Srv(ls, "s1")  # server actor restarted in the same process
    assert s2.log.last_index_term() == (4, 1)
    s2.written(4)


def test_mem_table_bound_forces_rollover(system):
    ls = system(wal_max_entries=50)
    s = Srv(ls, "s1")
    for i in range(1, 300, 10):
        s.log.append(E(i, i + 9))
        s.written(i + 9)
    ls.sync_segment_writer()
    s.pump(lambda: ls.mem_tables.entry_count() <= 60)
    assert ls.overview()["wal"]["files"] >= 5
    assert s.log.fetch(1, 300) == E(1, 300)


def test_delete_server(system, tmp_path):
    ls = system()
    s = Srv(ls, "gone")
    s.log.append(E(1, 3))
    s.written(3)
    ls.delete_server("gone")
    assert not os.path.exists(tmp_path / "servers" / "gone")
    ls.stop()
    ls2 = system()
    s2 = Srv(ls2, "gone")
    ls2.sync_segment_writer()
    assert s2.log.last_index_term() == (0, 0) and s2.log.fetch(1, 10) == []


def test_snapshot_release_cursor_truncates_and_transfers(system):
    ls = system(wal_max_size_bytes=500, segment_max_entries=16, min_snapshot_interval=50)
    s = Srv(ls, "s1")
    for i in range(1, 300, 10):
        s.log.append(E(i, i + 9))
        s.written(i + 9)
    ls.sync_segment_writer()
    segs_before = len(os.listdir(os.path.join(ls.servers_dir, "s1", "segments")))
    meta = SnapshotMeta(200, 1, ["s1"], 0)
    s.log.update_release_cursor(meta, {"count": 200})
    s.pump(lambda: any(isinstance(r, SnapshotWritten) for r in s.results))
    ls.sync_segment_writer()
    assert s.log.first_index() == 201 and s.log.snapshot_meta() == meta
    assert s.log.fetch(1, 300) == E(201, 300)
    assert s.log.fetch_term(200) == 1
    assert len(os.listdir(os.path.join(ls.servers_dir, "s1", "segments"))) < segs_before
    assert s.log.recover_snapshot() == (meta, {"count": 200})
    # send it to another server in small chunks
    got = s.log.snapshot_chunks(100)
    assert got is not None
    m, chunks = got
    f = Srv(ls, "f1")
    f.log.append(E(1, 5, 1))
    f.written(5)
    f.log.begin_snapshot_accept(m)
    for c in chunks:
        f.log.accept_snapshot_chunk(c)
    assert f.log.complete_snapshot_accept() == (meta, {"count": 200})
    assert f.log.last_index_term() == (200, 1) and f.log.fetch(1, 300) == []
    f.log.append(E(201, 202))
    f.written(202)
    ls.stop()
    ls2 = system(wal_max_size_bytes=3000, segment_max_entries=16)
    f2 = Srv(ls2, "f1")
    assert f2.log.snapshot_meta() == meta and f2.log.fetch(1, 300) == E(201, 202)
    s2 = Srv(ls2, "s1")
    assert s2.log.first_index() == 201 and s2.log.fetch(1, 400) == E(201, 300)


def test_checkpoint_then_promote(system):
    ls = system(min_checkpoint_interval=10)
    s = Srv(ls, "s1")
    s.log.append(E(1, 40))
    s.written(40)
    s.log.checkpoint(SnapshotMeta(20, 1, [], 0), [1, 2])
    s.pump(lambda: s.log.overview()["checkpoints"] == 1)
    assert s.log.snapshot_meta() is None and s.log.first_index() == 1
    s.log.promote_checkpoint(30)
    s.pump(lambda: any(isinstance(r, SnapshotWritten) for r in s.results))
    assert s.log.snapshot_meta().index == 20 and s.log.first_index() == 21
    assert s.log.recover_snapshot()[1] == [1, 2]


def test_actors_are_plain_pykka_actors(system):
    ls = system()
    assert isinstance(ls.wal_ref, pykka.ActorRef)
    ov = ls.overview()
    assert {"wal", "segment_writer", "meta", "servers"} <= set(ov)


def test_stale_and_superseded_written_events_are_ignored(system):
    from raft_otp.log import WalWritten

    ls = system()
    ls.wal_ref.stop()  # no real WAL events: we deliver them by hand
    s = Srv(ls, "s1")
    s.log.append(E(1, 10))  # seq 1
    s.log.write(E(5, 6, 2))  # seq 2, overwrites 5..10
    assert s.log.handle_event(WalWritten("s1", 2, 6, 2)) == [Written(6, 2)]
    assert s.log.handle_event(WalWritten("s1", 1, 10, 1)) == []  # older: covered, and stale
    assert s.log.last_written() == (6, 2)
    s.log.append(E(7, 8, 2))  # seq 3
    s.log.write(E(8, 8, 3))  # seq 4
    assert s.log.handle_event(WalWritten("s1", 3, 8, 2)) == [Written(7, 2)]  # clipped below the overwrite
    assert s.log.handle_event(WalWritten("s1", 4, 8, 3)) == [Written(8, 3)]


def test_appends_and_writes_reach_the_wal_at_flush_in_order(system):
    """Appends and writes go to the mem table at once and to the WAL as one batch at
    flush (the server's step flushes after its effects); an overwrite keeps the WAL's
    order: what is pending goes first, then the overwrite, at once."""
    import time

    ls = system()
    s = Srv(ls, "s1")
    s.log.append(E(1, 3))  # the first write truncates: submitted at once
    s.written(3)
    wal_writes = ls.mem_tables.wal.overview()["writes"]
    s.log.append(E(4, 6))
    s.log.write(E(7, 8))
    assert s.log.last_index_term() == (8, 1) and s.log.fetch(4, 8) == E(4, 8)  # readable at once
    time.sleep(0.2)
    while not s.q.empty():
        s.results.extend(s.log.handle_event(s.q.get()))
    assert s.log.last_written()[0] == 3  # nothing submitted before flush
    assert ls.mem_tables.wal.overview()["writes"] == wal_writes
    s.log.flush()
    s.log.flush()  # nothing pending: no second submit
    s.written(8, 1)
    assert ls.mem_tables.wal.overview()["writes"] == wal_writes + 1  # one writer batch for 4..8
    s.log.append(E(9, 10))
    s.log.write(E(10, 10, 2))  # an overwrite submits what is pending first, then itself
    s.written(10, 2)
    s.log.append(E(11, 12, 2))
    s.log.set_last_index(11)  # flushes first, then cuts
    s.written(11, 2)
    assert s.log.last_index_term() == (11, 2)
    s.log.append(E(12, 13, 2))
    s.log.close()  # closing flushes
    s.written(13, 2)
    ls.stop()
    s2 = Srv(system(), "s1")
    assert s2.log.fetch(1, 13) == E(1, 9) + E(10, 13, 2)


def test_written_is_reported_from_a_wal_thread_never_inside_the_call(system):
    """Durability is always an event: neither write, append nor flush makes anything
    durable on the caller's thread (no sync runs there); a WAL thread reports it."""
    import threading

    ls = system()
    wal = ls.mem_tables.wal
    sync_threads: set[str] = set()
    real_sync = wal._sync_fd

    def spy_sync(fd):
        sync_threads.add(threading.current_thread().name)
        return real_sync(fd)

    wal._sync_fd = spy_sync
    notify_threads: list[str] = []
    q: "queue.Queue[object]" = queue.Queue()

    def notify(ev):
        notify_threads.append(threading.current_thread().name)
        q.put(ev)

    log = ls.open_server_log("s1", notify)
    hi = 0
    for n in (2, 3, 1, 4):
        before = log.last_written()
        log.write(E(hi + 1, hi + n)) if hi % 2 else log.append(E(hi + 1, hi + n))
        log.flush()
        assert log.last_written() == before  # never inside the call
        hi += n
        while log.last_written()[0] < hi:
            log.handle_event(q.get(timeout=10))
    me = threading.current_thread().name
    assert notify_threads and me not in notify_threads
    assert all(t.startswith(f"wal-{wal.generation}-") for t in notify_threads), notify_threads
    assert sync_threads and all(t.startswith("wal-") for t in sync_threads), sync_threads
    assert log.fetch(1, hi) == E(1, hi)


