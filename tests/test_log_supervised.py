"""Goal: under a rest_for_one supervisor a crashed WAL is restarted and servers resend what it had not confirmed."""

from __future__ import annotations

import queue
import threading

from supervisors import ChildSpec, Supervisor

from raft_otp.log import LogConfig, LogSystem, SegmentWriterActor, WalActor


def E(lo, hi, term=1):
    return [(i, term, b"%d" % i) for i in range(lo, hi + 1)]


def test_wal_crash_restart_and_resend(tmp_path):
    ls = LogSystem(str(tmp_path), LogConfig())
    ls.open_meta()
    sup = Supervisor([
        ChildSpec.actor("segment_writer", SegmentWriterActor, ls.mem_tables, ls.servers_dir, ls.make_segment_set),
        ChildSpec.actor("wal", WalActor, ls.wal_config(), ls.mem_tables),
    ], strategy="rest_for_one", intensity=5, period=5).start()
    try:
        q: queue.Queue[object] = queue.Queue()
        sl = ls.open_server_log("s1", q.put)

        def pump(index):  # a server step: flush, then handle events
            sl.flush()
            while sl.last_written()[0] < index:
                sl.handle_event(q.get(timeout=10))
                sl.flush()

        sl.append(E(1, 5))
        pump(5)
        old = ls.mem_tables.wal
        hit = threading.Event()

        def boom(items, resend):  # a bug in the WAL (an OSError no longer crashes it: test_wal_sync_failure)
            hit.set()
            raise RuntimeError("WAL bug")

        old._write_batch = boom
        sl.append(E(6, 9))  # lost with the crashed WAL
        sl.flush()
        assert hit.wait(10)
        pump(9)  # WalUp from the restarted WAL -> resend -> written
        assert ls.mem_tables.wal is not old and ls.mem_tables.wal is not None
        assert sl.overview()["resends"] >= 1
        sl.append(E(10, 12))
        pump(12)
        assert sl.fetch(1, 12) == E(1, 12)
    finally:
        sup.stop(30)
        ls.stop()
    ls2 = LogSystem(str(tmp_path)).start()
    try:
        assert ls2.open_server_log("s1", lambda e: None).fetch(1, 100) == E(1, 12)
    finally:
        ls2.stop()
