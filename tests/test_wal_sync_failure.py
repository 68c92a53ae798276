"""Goal: after a failed fsync/fdatasync the WAL never trusts that file again (PostgreSQL's
fsyncgate): it never syncs it again, moves to a new file and has the writers resend what
was not confirmed; nothing acknowledged is lost at a power cut after it, and nothing
unconfirmed is ever reported written."""

from __future__ import annotations

import queue
import threading

from raft_otp.core.log_api import Written
from raft_otp.log.system import LogConfig, LogSystem
from raft_otp.testing.powercut_fs import PowerCutFS, SyncPoint


def E(lo, hi, term=1):
    return [(i, term, f"v{i}".encode()) for i in range(lo, hi + 1)]


class Writer:
    """One server log driven by hand: its events are pumped on this thread."""

    def __init__(self, ls: LogSystem, uid: str) -> None:
        self.q: queue.Queue[object] = queue.Queue()
        self.log = ls.open_server_log(uid, self.q.put)
        self.reported: list[int] = []  # every Written index reported, in order

    def pump(self, index: int, timeout: float = 10.0) -> None:
        """Handle events until ``index`` is written, flushing as a server step does."""
        self.log.flush()
        while self.log.last_written()[0] < index:
            for r in self.log.handle_event(self.q.get(timeout=timeout)):
                if isinstance(r, Written):
                    self.reported.append(r.index)
            self.log.flush()


def test_a_failed_sync_abandons_the_file_and_nothing_unconfirmed_is_reported(tmp_path):
    fs = PowerCutFS(seed=7)
    d = str(tmp_path / "sys")
    ls = LogSystem(d, LogConfig(wal_workers=2), file_io=fs).start()
    wal0 = ls.mem_tables.wal
    w = Writer(ls, "s1")
    w.log.append(E(1, 5))
    w.pump(5)
    first_file = wal0.path
    after_failure: list[SyncPoint] = []
    failed = threading.Event()

    def fail_once(p: SyncPoint) -> bool:
        if failed.is_set():
            if wal0.counters["sync_failures"]:  # issued once the WAL knew (a sync already in
                after_failure.append(p)  # flight then may end after it: its success is not believed)
            return False
        if p.kind == "file" and p.path == first_file:
            failed.set()
            return True
        return False

    fs.fail_syncs(fail_once)
    w.log.append(E(6, 9))  # its sync fails: the writes are dropped from the disk's queue
    w.log.flush()
    assert failed.wait(10)
    w.pump(9)  # written again into a new file, then reported
    wal = ls.mem_tables.wal
    assert wal is wal0 and ls.wal_ref.is_alive(), "the WAL moved on without a crash or restart"
    assert wal.path != first_file
    ov = wal.overview()
    assert ov["sync_failures"] == 1 and ov["abandoned_files"] == 1 and ov["resumes"] == 1
    assert ov["state"] == "writing"
    assert not [p for p in after_failure if p.path == first_file], "the failed file was synced again"
    w.log.append(E(10, 12))
    w.pump(12)
    # 6..9 became durable again: resent into the new file, or (if the segment writer
    # flushed the abandoned file's mem-table entries first) in synced segments
    lo = w.log.overview()
    assert lo["resends"] >= 1 or lo["segment_flushes"] >= 1, lo
    # power cut: everything reported written must be there after the reboot
    fs.fail_syncs(None)
    fs.cut_now()
    ls.stop()
    fs.power_on()
    ls2 = LogSystem(d, LogConfig(), file_io=fs).start()
    try:
        got = ls2.open_server_log("s1", lambda e: None).fetch(1, 100)
        assert max(w.reported) == 12
        assert got[: max(w.reported)] == E(1, 12)
    finally:
        ls2.stop()


def test_a_sync_failing_on_every_file_is_retried_by_the_alarm_check_not_in_a_loop(tmp_path):
    """A disk whose syncs keep failing: the WAL does not spin through new files; it
    raises the alarm, waits for the next check, and resumes when syncs work again."""
    fs = PowerCutFS(seed=3)
    d = str(tmp_path / "sys")
    ls = LogSystem(d, LogConfig(disk_check_period_s=0.2), file_io=fs).start()
    try:
        w = Writer(ls, "s1")
        w.log.append(E(1, 3))
        w.pump(3)
        fs.fail_syncs(lambda p: p.kind == "file" and p.path.endswith(".wal"))
        w.log.append(E(4, 6))
        w.log.flush()
        assert ls.disk_alarm.wait(True, 5), "a WAL that cannot sync raises the disk alarm"
        files = ls.mem_tables.wal.overview()["files"]
        assert files <= 4, f"{files} WAL files opened: a loop of new files"
        assert w.log.last_written()[0] == 3
        fs.fail_syncs(None)
        w.pump(6)
        assert ls.disk_alarm.wait(False, 5)
        assert ls.wal_ref.is_alive()
    finally:
        ls.stop()
