"""Goal: a writer process SIGKILLed mid-stream loses nothing it was told was written, and no overwritten entry reappears.

The child (this file run as a script) writes through a real LogSystem (tiny WAL
files and segments so rollover, segment flushes and WAL deletion happen during
the run) and prints every operation *before* submitting it, and every
``WalWritten`` as it arrives.  The parent kills it with SIGKILL after a random
number of written events, recovers the data dir in-process and checks that each
server's recovered log equals the model log after some operation ``j`` with
``j >= seq of the last delivered written event`` (ops are durable in order).
Then the next round's child recovers the same dir and continues.
"""

from __future__ import annotations

import os
import queue
import random
import select
import signal
import subprocess
import sys
import time

import pytest

UIDS = ["s1", "s2", "s3"]


def payload(idx: int, term: int) -> bytes:
    return b"%d.%d." % (idx, term) + b"p" * 40


# ---------------------------------------------------------------------- child
def child(data_dir: str, seed: int) -> None:
    from raft_otp.log import LogConfig, LogSystem, WalWritten

    rng = random.Random(seed)
    cfg = LogConfig(wal_max_size_bytes=48_000, segment_max_entries=64)
    ls = LogSystem(data_dir, cfg).start()
    q: queue.Queue[object] = queue.Queue()
    logs = {u: ls.open_server_log(u, q.put) for u in UIDS}

    def out(line: str) -> None:
        os.write(1, (line + "\n").encode())

    for u, sl in logs.items():
        out(f"R {u} {sl.last_index_term()[0]}")
    while True:
        u = rng.choice(UIDS)
        sl = logs[u]
        last, term = sl.last_index_term()
        n = rng.randint(1, 20)
        if last > 5 and rng.random() < 0.15:
            first = rng.randint(max(sl.first_index(), last - 30), last)
            term += 1
            ents = [(i, term, payload(i, term)) for i in range(first, first + n)]
            out(f"O {u} {sl._seq + 1} {first} {first + n - 1} {term}")
            sl.write(ents)
            sl.flush()  # as the server's step does
        else:
            term = max(term, 1)
            ents = [(i, term, payload(i, term)) for i in range(last + 1, last + 1 + n)]
            out(f"O {u} {sl._seq + 1} {last + 1} {last + n} {term}")
            sl.append(ents)
            sl.flush()
        while True:
            try:
                ev = q.get_nowait()
            except queue.Empty:
                break
            if isinstance(ev, WalWritten):
                out(f"W {ev.uid} {ev.seq} {ev.index} {ev.term}")
            logs_u = logs.get(getattr(ev, "uid", ""), None)
            for sl2 in ([logs_u] if logs_u else logs.values()):
                sl2.handle_event(ev)
        if rng.random() < 0.3:
            time.sleep(0.0005)


# ---------------------------------------------------------------------- parent
def recover(data_dir: str) -> dict[str, list[tuple[int, int, bytes]]]:
    from raft_otp.log import LogSystem

    ls = LogSystem(data_dir).start()
    try:
        got = {}
        for u in UIDS:
            sl = ls.open_server_log(u, lambda ev: None)
            last, _t = sl.last_index_term()
            got[u] = sl.fetch(1, last)
        return got
    finally:
        ls.stop()


def run_round(data_dir: str, seed: int, base: dict[str, list[tuple[int, int, bytes]]],
              kill_after: int) -> tuple[dict[str, list], int]:
    proc = subprocess.Popen([sys.executable, __file__, "child", data_dir, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    buf = b""
    written = 0
    deadline = time.monotonic() + 30
    try:
        while written < kill_after:
            if time.monotonic() > deadline:
                raise AssertionError("child too slow: " + proc.stderr.read1(4000).decode())  # type: ignore[union-attr]
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                raise AssertionError("child exited: " + proc.stderr.read().decode())  # type: ignore[union-attr]
            buf += chunk
            *done, buf = buf.split(b"\n")
            for ln in done:
                s = ln.decode()
                lines.append(s)
                written += s.startswith("W ")
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # type: ignore[union-attr]
        buf += rest
        lines.extend(x.decode() for x in buf.split(b"\n")[:-1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # model: per uid, log states after each op seq
    models = {u: {0: list(base[u])} for u in UIDS}
    cur = {u: list(base[u]) for u in UIDS}
    last_w = {u: 0 for u in UIDS}
    for s in lines:
        p = s.split()
        if p[0] == "R":
            assert int(p[2]) == (base[p[1]][-1][0] if base[p[1]] else 0), s
        elif p[0] == "O":
            u, seq, a, b, t = p[1], int(p[2]), int(p[3]), int(p[4]), int(p[5])
            log_ = cur[u]
            del log_[a - 1 :]
            log_.extend((i, t, payload(i, t)) for i in range(a, b + 1))
            models[u][seq] = list(log_)
        elif p[0] == "W":
            last_w[p[1]] = max(last_w[p[1]], int(p[2]))
    got = recover(data_dir)
    for u in UIDS:
        ok = [seq for seq, m in models[u].items() if seq >= last_w[u] and m == got[u]]
        assert ok, (f"{u}: recovered log (last {got[u][-1][:2] if got[u] else None}) matches no model state "
                    f"at or after seq {last_w[u]} (ops up to {max(models[u])})")
    return got, written


@pytest.mark.processes
def test_sigkill_mid_stream_keeps_written_and_never_resurrects(tmp_path):
    rng = random.Random(7)
    base: dict[str, list] = {u: [] for u in UIDS}
    total = 0
    for rnd in range(3):
        base, w = run_round(str(tmp_path), 100 + rnd, base, rng.randint(40, 250))
        total += w
    assert total >= 120
    assert all(len(v) > 0 for v in base.values())
    # rollover happened: segments exist
    assert any(os.listdir(tmp_path / "servers" / u / "segments") for u in UIDS)


@pytest.mark.slow
@pytest.mark.processes
def test_sigkill_many_rounds(tmp_path):
    rng = random.Random(11)
    base: dict[str, list] = {u: [] for u in UIDS}
    for rnd in range(15):
        base, _w = run_round(str(tmp_path), 1000 + rnd, base, rng.randint(10, 800))


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == "child":
    child(sys.argv[2], int(sys.argv[3]))
