"""Log recovery speed and meta-store election cost.

* ``recovery.wal_entries_per_s``: WAL files written by 100 servers (100 B
  entries), system stopped, then ``LogSystem.start()`` + ``open_server_log`` for
  every server (scan, verify CRCs, rebuild mem tables).  Peer: reading the same
  files' bytes (the I/O floor).
* ``meta.term_vote_stores_per_s``: 1,000 servers each durably storing a new
  term and vote at once (as after a node restart with 1,000 clusters), 50
  threads.  Peer: the same 1,000 records each written + fdatasync'd one by one.
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import tempfile
import threading
import time

from bench.common import Figure
from raft_otp.log import LogConfig, LogSystem
from raft_otp.log.meta import MetaStore


def _fill(d: str, servers: int, entries: int, size: int) -> None:
    ls = LogSystem(d, LogConfig(wal_sync_method="none", wal_max_size_bytes=1 << 40)).start()
    q: queue.SimpleQueue[object] = queue.SimpleQueue()
    logs = [ls.open_server_log(f"s{k}", q.put) for k in range(servers)]
    p = b"r" * size
    per = entries // servers
    for start in range(1, per + 1, 32):
        for sl in logs:
            sl.append([(i, 1, p) for i in range(start, min(start + 32, per + 1))])
            sl.flush()  # to the WAL now, as a server's step does
    wal = ls.mem_tables.wal
    assert wal is not None
    while wal.overview()["queued_writes"]:
        time.sleep(0.01)
    ls.stop()


def bench_recovery(entries: int) -> tuple[float, float]:
    d = tempfile.mkdtemp(prefix="bench-rec-")
    try:
        _fill(d, 100, entries, 100)
        files = glob.glob(os.path.join(d, "wal", "*.wal"))
        t0 = time.perf_counter()
        for f in files:
            with open(f, "rb") as fh:
                fh.read()
        raw_dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        ls = LogSystem(d).start()
        n = 0
        for k in range(100):
            sl = ls.open_server_log(f"s{k}", lambda e: None)
            n += sl.last_index_term()[0]
        dt = time.perf_counter() - t0
        ls.stop()
        return n / dt, n / raw_dt
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_meta(servers: int = 1000, threads: int = 50) -> tuple[float, float]:
    d = tempfile.mkdtemp(prefix="bench-meta-")
    try:
        m = MetaStore(d)
        per = servers // threads

        def worker(t: int) -> None:
            for k in range(per):
                m.store_term_vote(f"s{t}-{k}", 2, ["x", "node"])

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.perf_counter() - t0
        m.close()
        fd = os.open(os.path.join(d, "raw"), os.O_WRONLY | os.O_CREAT, 0o644)
        rec = b"x" * 40
        t0 = time.perf_counter()
        for _ in range(servers):
            os.write(fd, rec)
            os.fdatasync(fd)
        raw_dt = time.perf_counter() - t0
        os.close(fd)
        return servers / dt, servers / raw_dt
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(quick: bool = False) -> list[Figure]:
    entries = 200_000 if quick else 1_000_000
    rec, raw = bench_recovery(entries)
    mv, mraw = bench_meta()
    return [
        Figure("recovery.wal_entries_per_s", rec, "entries/s", "reading the same WAL bytes", raw),
        Figure("meta.term_vote_stores_per_s.1000_servers", mv, "stores/s",
               "1,000 sequential write+fdatasync", mraw),
    ]


if __name__ == "__main__":
    import sys

    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:45s} {f.value:12.0f} {f.unit:10s} peer {f.peer_value:12.0f} ({f.peer})  ratio {f.ratio:.2f}")
