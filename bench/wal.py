"""WAL throughput: entries/s and MB/s with 1, 10, 100 concurrent writers, 100 B and 1 KiB payloads.

Each writer is a thread that submits batches of ``BATCH`` entries straight to a
running :class:`raft_otp.log.Wal` (the same call a ServerLog makes) and keeps
at most ``WINDOW`` batches unconfirmed; the notify callback counts confirmed
batches.  Sync method: datasync.

``wal.server_log_path...``: the same with 100 pykka actors, each appending
through its own ServerLog (mem table; one WAL submit per message handled, at
its ``flush``, as a server step) and hearing back through ``tell`` +
``handle_event``: what a server actor pays.

Peers, measured in the same run on the same disk:

* ``raw-threads`` (the peer of the >= 70 % target): the same writers doing the
  same batches themselves, each ``os.write`` + ``os.fdatasync`` on one shared
  file (the kernel overlaps and merges their syncs).  WAL and this peer run
  interleaved ``reps`` times; the round with the median ratio is reported.
* ``raw-same-syncs``: one thread doing ``os.write`` of the payloads
  concatenated + ``os.fdatasync`` with exactly as many entries per sync as the
  WAL achieved, one sync at a time (no headers, checksums, threads or
  notifications; the WAL's overlapping syncs can beat it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from typing import Any

import pykka

from bench.common import Figure
from raft_otp.core.log_api import Written
from raft_otp.log import LogConfig, LogSystem
from raft_otp.log.memtable import MemTables
from raft_otp.log.wal import Wal, WalConfig

BATCH = 32
WINDOW = 4


class _Writer:
    def __init__(self, wal: Wal, k: int, payload: bytes, stop_at: list[float]) -> None:
        self.wal = wal
        self.uid = f"w{k:03d}".encode()
        self.payload = payload
        self.stop_at = stop_at
        self.cond = threading.Condition()
        self.acked = 0
        self.sent = 0
        self.acked_entries = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def notify(self, ev: Any) -> None:
        with self.cond:
            if ev.seq > self.acked:  # two WAL workers: a later batch may be confirmed first
                self.acked = ev.seq
                self.acked_entries = ev.index
                self.cond.notify()

    def run(self) -> None:
        idx = 1
        seq = 0
        p = self.payload
        wal = self.wal
        cond = self.cond
        while time.perf_counter() < self.stop_at[0]:
            with cond:
                while seq - self.acked >= WINDOW:
                    cond.wait(1.0)
            ents = [(i, 1, p) for i in range(idx, idx + BATCH)]
            seq += 1
            wal.submit(self.uid, self.notify, seq, idx, ents, seq == 1)
            idx += BATCH
        with cond:
            while self.acked < seq:
                if not cond.wait(10.0):
                    break


def run_wal(n_writers: int, payload_size: int, seconds: float) -> dict[str, float]:
    d = tempfile.mkdtemp(prefix="bench-wal-")
    try:
        wal = Wal(WalConfig(os.path.join(d, "wal"), "datasync", max_size_bytes=1 << 40), MemTables())
        wal.start()
        payload = os.urandom(payload_size)
        stop_at = [float("inf")]
        writers = [_Writer(wal, k, payload, stop_at) for k in range(n_writers)]
        t0 = time.perf_counter()
        stop_at[0] = t0 + seconds
        for w in writers:
            w.thread.start()
        for w in writers:
            w.thread.join(30)
        dt = time.perf_counter() - t0
        c = wal.overview()
        wal.stop()
        entries = sum(w.acked_entries for w in writers)
        return {"entries_s": entries / dt, "mb_s": c["bytes"] / dt / 1e6,
                "payload_mb_s": entries * payload_size / dt / 1e6,
                "per_sync": c["entries"] / max(c["syncs"], 1), "syncs": c["syncs"], "entries": entries}
    finally:
        shutil.rmtree(d, ignore_errors=True)


class _ServerActor(pykka.ThreadingActor):
    """A server stand-in: its ServerLog notifies it by ``tell``; it appends a batch per confirmed batch."""

    def __init__(self, ls: LogSystem, uid: str, payload: bytes, end: list[float], done: threading.Event,
                 left: list[int], lock: threading.Lock) -> None:
        super().__init__()
        self.ls, self.uid, self.payload, self.end = ls, uid, payload, end
        self.done, self.left, self.lock = done, left, lock
        self.written = 0
        self.finished = False

    def on_start(self) -> None:
        self.log = self.ls.open_server_log(self.uid, self.actor_ref.tell)

    def _append(self) -> None:
        last = self.log.last_index_term()[0]
        p = self.payload
        self.log.append([(i, 1, p) for i in range(last + 1, last + 1 + BATCH)])

    def on_receive(self, message: Any) -> Any:
        if message == "go":
            for _ in range(WINDOW):
                self._append()
                self.log.flush()  # WINDOW batches in flight, as the writer threads keep
            return None
        for r in self.log.handle_event(message):
            if isinstance(r, Written):
                self.written = r.index
        if self.finished:
            return None
        if time.perf_counter() < self.end[0]:
            while self.log.last_index_term()[0] - self.written < WINDOW * BATCH:
                self._append()
            self.log.flush()  # the step's one flush
        elif self.written >= self.log.last_index_term()[0]:
            self.finished = True
            with self.lock:
                self.left[0] -= 1
                if self.left[0] == 0:
                    self.done.set()
        return None


def run_server_logs(n_writers: int, payload_size: int, seconds: float) -> dict[str, float]:
    """The full path: pykka actors each with a ServerLog (mem table, WAL, notify by tell)."""
    d = tempfile.mkdtemp(prefix="bench-sl-")
    ls = LogSystem(d, LogConfig(wal_max_size_bytes=1 << 40, wal_max_entries=1 << 40)).start()
    try:
        end = [float("inf")]
        done = threading.Event()
        left = [n_writers]
        lock = threading.Lock()
        p = os.urandom(payload_size)
        refs = [_ServerActor.start(ls, f"s{k}", p, end, done, left, lock) for k in range(n_writers)]
        t0 = time.perf_counter()
        end[0] = t0 + seconds
        for r in refs:
            r.tell("go")
        done.wait(60)
        dt = time.perf_counter() - t0
        n = sum(r.proxy().written.get() for r in refs)
        for r in refs:
            r.stop()
        return {"entries_s": n / dt, "mb_s": n * payload_size / dt / 1e6}
    finally:
        ls.stop()
        shutil.rmtree(d, ignore_errors=True)


def run_raw(per_sync: int, payload_size: int, seconds: float) -> dict[str, float]:
    d = tempfile.mkdtemp(prefix="bench-raw-")
    try:
        fd = os.open(os.path.join(d, "raw"), os.O_WRONLY | os.O_CREAT, 0o644)
        payload = os.urandom(payload_size)
        per_sync = max(1, int(round(per_sync)))
        batch = [payload] * per_sync
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            os.write(fd, b"".join(batch))
            os.fdatasync(fd)
            n += per_sync
        dt = time.perf_counter() - t0
        os.close(fd)
        return {"entries_s": n / dt, "mb_s": n * payload_size / dt / 1e6}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_raw_threads(n_writers: int, payload_size: int, seconds: float) -> dict[str, float]:
    """The same writers doing the same batches themselves: write + fdatasync each batch on one shared file."""
    d = tempfile.mkdtemp(prefix="bench-rawt-")
    try:
        fd = os.open(os.path.join(d, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        payload = os.urandom(payload_size)
        counts = [0] * n_writers
        end = [float("inf")]

        def writer(k: int) -> None:
            n = 0
            while time.perf_counter() < end[0]:
                ents = [(i, 1, payload) for i in range(n, n + BATCH)]
                os.write(fd, b"".join([e[2] for e in ents]))
                os.fdatasync(fd)
                n += BATCH
            counts[k] = n

        ts = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(n_writers)]
        t0 = time.perf_counter()
        end[0] = t0 + seconds
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        dt = time.perf_counter() - t0
        os.close(fd)
        n = sum(counts)
        return {"entries_s": n / dt, "mb_s": n * payload_size / dt / 1e6}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _paired(fns: list[Any], n: int) -> list[dict[str, float]]:
    """Run the measurements interleaved ``n`` times; keep the round whose ratio of the
    first two is the median (paired runs resist the shared disk's drift)."""
    rounds = [[fn() for fn in fns] for _ in range(n)]
    rounds.sort(key=lambda r: r[0]["entries_s"] / max(r[1]["entries_s"], 1e-9))
    return rounds[len(rounds) // 2]


def run(quick: bool = False) -> list[Figure]:
    """Each configuration runs WAL and peers interleaved ``reps`` times (the median round is kept)."""
    secs = 0.5 if quick else 1.5
    reps = 1 if quick else 3
    figs: list[Figure] = []
    for size in (100, 1024):
        for nw in (1, 10, 100):
            w, rawt = _paired([lambda: run_wal(nw, size, secs), lambda: run_raw_threads(nw, size, secs)], reps)
            raw = run_raw(w["per_sync"], size, secs)
            tag = f"{nw}w.{size}B"
            figs.append(Figure(f"wal.entries_per_s.{tag}", w["entries_s"], "entries/s",
                               f"{nw} writers each write+fdatasync their {BATCH}-entry batches",
                               rawt["entries_s"]))
            figs.append(Figure(f"wal.payload_MB_per_s.{tag}", w["payload_mb_s"], "MB/s",
                               f"{nw} writers each write+fdatasync their batches", rawt["mb_s"]))
            if nw == 100:
                sl, rawt2 = _paired([lambda: run_server_logs(nw, size, secs),
                                     lambda: run_raw_threads(nw, size, secs)], reps)
                figs.append(Figure(f"wal.server_log_path.entries_per_s.{tag}", sl["entries_s"], "entries/s",
                                   f"{nw} writers each write+fdatasync their batches", rawt2["entries_s"]))
            figs.append(Figure(f"wal.entries_per_s.{tag}.vs_same_syncs", w["entries_s"], "entries/s",
                               f"1 thread write+fdatasync, same {w['per_sync']:.0f} entries/sync (no encoding)",
                               raw["entries_s"]))
    return figs


if __name__ == "__main__":
    import sys

    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:55s} {f.value:12.0f} {f.unit:10s} peer {f.peer_value:12.0f} ({f.peer})  ratio {f.ratio:.2f}")
