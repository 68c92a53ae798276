"""Goal: a full disk raises the system's disk alarm instead of a restart storm: the
leader refuses commands with DiskFull within a second, queries are still answered,
and when space is back the system resumes by itself, with every acknowledged command
on every member and nothing half-written (ENOSPC injected through the FileIO seam;
and a real small tmpfs under a node process's data dir where the machine allows it)."""

from __future__ import annotations

import errno
import os
import queue
import subprocess
import time
import uuid

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.core.log_api import Written
from raft_otp.errors import DiskFull, RaftError
from raft_otp.log.disk_alarm import DiskAlarm
from raft_otp.log.fileio import OS
from raft_otp.log.system import LogConfig, LogSystem

KV = ("raft_otp.machines.kv:KeyValue", {})
STATE = "raft_otp.system.queries:state"


class FullDisk:
    """The os file layer, except that while ``full`` every write fails with ENOSPC."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0

    def __getattr__(self, name: str):
        return getattr(OS, name)

    def _check(self) -> None:
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected)")

    def write(self, fd, data):
        self._check()
        return OS.write(fd, data)

    def writev(self, fd, bufs):
        self._check()
        return OS.writev(fd, bufs)

    def pwrite(self, fd, data, offset):
        self._check()
        return OS.pwrite(fd, data, offset)


def E(lo, hi, term=1):
    return [(i, term, f"v{i}".encode()) for i in range(lo, hi + 1)]


# ---- the log layer ---------------------------------------------------------------------

def test_enospc_blocks_the_wal_raises_the_alarm_and_resumes_when_space_is_back(tmp_path):
    io = FullDisk()
    d = str(tmp_path / "sys")
    ls = LogSystem(d, LogConfig(disk_free_limit_bytes=0, disk_check_period_s=0.1), file_io=io).start()
    q: queue.Queue[object] = queue.Queue()
    sl = ls.open_server_log("s1", q.put)
    reported: list[int] = []

    def pump(index: int) -> None:  # a server step: flush, then handle events
        sl.flush()
        while sl.last_written()[0] < index:
            reported.extend(r.index for r in sl.handle_event(q.get(timeout=10)) if isinstance(r, Written))
            sl.flush()

    try:
        sl.append(E(1, 5))
        pump(5)
        wal = ls.mem_tables.wal
        io.full = True
        sl.append(E(6, 9))
        sl.flush()
        assert ls.disk_alarm.wait(True, 1.0), "ENOSPC raises the alarm at once"
        assert wal.overview()["state"] == "blocked" and "wal" in ls.disk_alarm.overview()["reasons"]
        assert sl.last_written()[0] == 5 and max(reported) == 5, "nothing unconfirmed reported written"
        assert ls.wal_ref.is_alive() and ls.mem_tables.wal is wal
        io.full = False
        pump(9)  # the next alarm check reopens; the writer resends 6..9
        assert ls.disk_alarm.wait(False, 5.0)
        sl.append(E(10, 12))
        pump(12)
        assert ls.wal_ref.is_alive() and ls.mem_tables.wal is wal, "no crash, no restart"
        assert wal.overview()["write_failures"] >= 1 and wal.overview()["resumes"] >= 1
    finally:
        ls.stop()
    ls2 = LogSystem(d, LogConfig(disk_free_limit_bytes=0)).start()
    try:
        assert ls2.open_server_log("s1", lambda e: None).fetch(1, 100) == E(1, 12)
        assert ls2.mem_tables.recovery_damage == [], "no half-written record was left behind"
    finally:
        ls2.stop()


def test_free_space_below_the_limit_raises_and_clears_the_alarm(tmp_path):
    free = [10_000]
    alarm = DiskAlarm(str(tmp_path), free_limit_bytes=5_000, check_period_s=0.05,
                      free=lambda _p: free[0]).start()
    try:
        assert not alarm.active
        free[0] = 4_000
        assert alarm.wait(True, 1.0) and "free_space" in alarm.overview()["reasons"]
        free[0] = 6_000
        assert alarm.wait(False, 1.0)
        assert alarm.overview()["raised"] == 1 and alarm.overview()["cleared"] == 1
    finally:
        alarm.stop()


# ---- a system: 3 members in this process, the leader's disk fills ------------------------------

def _put_until_refused(leader: ServerId, acked: dict[str, int], budget_s: float) -> float:
    """Put keys until the leader refuses with DiskFull; returns how long that took."""
    t0 = time.monotonic()
    k = len(acked)
    while time.monotonic() - t0 < budget_s:
        key = f"k{k}"
        try:  # the put that meets the full disk stays pending (its leader cannot apply it yet)
            raft_otp.process_command(leader, ["put", key, k], timeout=0.3)
            acked[key] = k
        except DiskFull:
            return time.monotonic() - t0
        except RaftError:
            pass  # outcome unknown: not counted as acknowledged
        k += 1
    raise AssertionError(f"no DiskFull within {budget_s} s")


def test_a_full_disk_at_the_leader_refuses_commands_serves_queries_and_resumes(tmp_path):
    tag = uuid.uuid4().hex[:6]
    disks = [FullDisk() for _ in range(3)]
    systems = []
    ids = [ServerId(f"da{k}_{tag}", raft_otp.node_name()) for k in range(3)]
    try:
        for k in range(3):
            systems.append(raft_otp.start_system({
                "name": f"da{k}_{tag}", "data_dir": str(tmp_path / f"s{k}"), "disk_free_limit_bytes": 0,
                "wal_max_size_bytes": 64 * 1024,  # rollovers: the segment writer meets the full disk too
                "log_options": {"file_io": disks[k], "disk_check_period_s": 0.2}}))
        for k in range(3):
            raft_otp.start_server(systems[k], f"da_{tag}", ids[k], KV, ids, 10)
        acked: dict[str, int] = {}
        for i in range(200):
            raft_otp.process_command(ids[0], ["put", f"k{i}", i], timeout=10)
            acked[f"k{i}"] = i
        _r, leader = raft_otp.members(ids[0], timeout=5)
        li = ids.index(leader)
        disks[li].full = True
        took = _put_until_refused(leader, acked, budget_s=5.0)
        assert took < 1.0, f"DiskFull after {took:.2f} s"
        t0 = time.monotonic()
        with pytest.raises(DiskFull):
            raft_otp.process_command(leader, ["put", "refused", 1], timeout=5)
        assert time.monotonic() - t0 < 1.0
        alarm = systems[li].ctx.log_system.disk_alarm
        assert alarm.active
        assert raft_otp.key_metrics(leader)["disk_alarm"] == 1
        # queries keep working (a consistent query at this leader would wait for the
        # entry it appended as the disk filled: it applies only what it has written)
        t0 = time.monotonic()
        state, _ = raft_otp.leader_query(leader, STATE, timeout=5)
        assert {k: state[k] for k in acked} == acked
        for i in ids:
            assert raft_otp.local_query(i, STATE, timeout=5)[0]["k0"] == 0
        assert time.monotonic() - t0 < 1.0
        disks[li].full = False
        assert alarm.wait(False, 5.0), "space is back: the alarm clears by itself"
        deadline = time.monotonic() + 5
        while True:  # commands are accepted again, without a restart
            try:
                raft_otp.process_command(leader, ["put", "after", 1], timeout=2)
                acked["after"] = 1
                break
            except RaftError:
                assert time.monotonic() < deadline
        for s in systems:
            restarts = [n.get("restarts", 0) for n in _walk(s.tree())]
            assert not any(restarts), f"a restart in {s.name}: {s.tree()}"
        # every acknowledged command on every member, members equal
        final = raft_otp.consistent_query(leader, STATE, timeout=5)[0]
        deadline = time.monotonic() + 10
        while True:
            states = [raft_otp.local_query(i, STATE, timeout=5)[0] for i in ids]
            if all(st == final for st in states):
                break
            assert time.monotonic() < deadline, "members did not converge"
            time.sleep(0.05)
        assert {k: final[k] for k in acked} == acked
    finally:
        for s in systems:
            raft_otp.stop_system(s)


def _walk(n):
    yield n
    for c in n.get("children") or []:
        yield from _walk(c)


# ---- node processes, one node's data dir on a real small tmpfs ----------------------------------

def _text(renderable) -> str:
    import io

    from rich.console import Console
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.timeout(180)
def test_a_real_full_tmpfs_under_a_node_process(tmp_path):
    from raft_otp.console import admin_cmds, render
    from raft_otp.node import runtime as node_rt
    from raft_otp.system.harness import NodeProcs
    from raft_otp.testing import nemesis_disk

    why = nemesis_disk.available()
    if why is not None:
        pytest.skip(why)
    h = NodeProcs(str(tmp_path), 3)
    disks = nemesis_disk.TmpfsDisks(96)  # default disk_free_limit_bytes: 50 MB
    try:
        disks.setup([h[0].data_dir])
        h.start()
        h.join_as_client()
        h.wait_connected()
        ids = [h[i].sid("df") for i in range(3)]
        _s, not_started = raft_otp.start_cluster("default", "df", KV, ids, timeout=20)
        assert not_started == []
        acked: dict[str, int] = {}
        for i in range(50):
            raft_otp.process_command(ids[1], ["put", f"k{i}", i], timeout=10)
            acked[f"k{i}"] = i
        _r, leader = raft_otp.members(ids[1], timeout=5)
        if leader != ids[0]:
            raft_otp.transfer_leadership(leader, ids[0], timeout=10)
        leader = ids[0]
        pid = h[0].proc.pid
        nemesis_disk.fill(h[0].data_dir)
        took = _put_until_refused(leader, acked, budget_s=5.0)
        assert took < 1.0, f"DiskFull after {took:.2f} s"
        assert raft_otp.key_metrics(leader)["disk_alarm"] == 1
        status = _text(render.render_status(admin_cmds.status_view(h[0].name, h.cookie, 5)))
        assert "DISK ALARM" in status and "DiskFull" in status, status
        tree = _text(render.render_tree(admin_cmds.fetch_tree(h[0].name, h.cookie, 5), h[0].name))
        assert "DISK ALARM" in tree, tree
        t0 = time.monotonic()
        state, _ = raft_otp.leader_query(leader, STATE, timeout=5)
        assert {k: state[k] for k in acked} == acked
        for i in ids:
            assert raft_otp.local_query(i, STATE, timeout=5)[0]["k0"] == 0
        assert time.monotonic() - t0 < 1.0, "queries are answered"
        nemesis_disk.free(h[0].data_dir)
        deadline = time.monotonic() + 10
        while True:  # resumes by itself: the alarm clears at its next check
            try:
                raft_otp.process_command(leader, ["put", "after", 1], timeout=1)
                acked["after"] = 1
                break
            except RaftError:
                assert time.monotonic() < deadline, "commands not accepted 10 s after space was back"
        assert raft_otp.key_metrics(leader)["disk_alarm"] == 0
        assert h[0].proc.pid == pid and h[0].proc.poll() is None, "the node process was not restarted"
        restarts = [n.get("restarts", 0) for r in h.admin(0, ["tree"])["roots"] for n in _walk(r)]
        assert not any(restarts), "an actor was restarted"
        final = raft_otp.consistent_query(leader, STATE, timeout=5)[0]
        assert {k: final[k] for k in acked} == acked
        deadline = time.monotonic() + 10
        while [raft_otp.local_query(i, STATE, timeout=5)[0] for i in ids] != [final] * 3:
            assert time.monotonic() < deadline, "members did not converge"
            time.sleep(0.05)
    finally:
        try:
            h.close()
            node_rt.stop_node()
        finally:
            assert disks.close() == []


def test_a_snapshot_chunk_meeting_a_full_disk_gives_the_transfer_up_without_a_crash(tmp_path):
    """The follower side of a snapshot transfer: ENOSPC on a chunk is DiskFull for the
    core (the transfer is given up unanswered, the sender retries it from chunk 1), the
    alarm goes on, and clears once space is back; the retried transfer installs."""
    from raft_otp.core.log_api import SnapshotMeta
    from raft_otp.log.snapshot import SnapshotStore

    meta = SnapshotMeta(10, 2, {"members": [["a", "n1", "voter"]], "sessions": []}, 1)
    src = SnapshotStore(str(tmp_path / "src"))
    import msgpack
    src.write(meta, msgpack.packb({"k": "v" * 5000}))
    with open(src.current_path(), "rb") as f:
        raw = f.read()
    io = FullDisk()
    ls = LogSystem(str(tmp_path / "sys"), LogConfig(disk_free_limit_bytes=0, disk_check_period_s=0.05),
                   file_io=io).start()
    try:
        sl = ls.open_server_log("s1", lambda e: None)
        sl.begin_snapshot_accept(meta)
        sl.accept_snapshot_chunk(raw[:1000])
        io.full = True
        with pytest.raises(DiskFull):
            sl.accept_snapshot_chunk(raw[1000:2000])
        assert ls.disk_alarm.active and "snapshot" in ls.disk_alarm.overview()["reasons"]
        sl.abort_snapshot_accept()
        io.full = False
        assert ls.disk_alarm.wait(False, 2.0)
        sl.begin_snapshot_accept(meta)  # the sender's retry
        for i in range(0, len(raw), 1000):
            sl.accept_snapshot_chunk(raw[i : i + 1000])
        got_meta, state = sl.complete_snapshot_accept()
        assert got_meta.index == 10 and state == {"k": "v" * 5000}
    finally:
        ls.stop()
