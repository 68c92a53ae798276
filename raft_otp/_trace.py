"""Hop-by-hop latency trace of a command (``RAFT_OTP_TRACE=1``; off by default).

Every call site is guarded by ``if _trace.ON:`` (one attribute read when off).
On, each event is one ``os.write`` (~3 us) of ``<ns> <pid> <where> <thread> <what>``
to ``$RAFT_OTP_TRACE_DIR/<pid>.trace`` (default ``/tmp/raft_otp_trace``); the
environment is inherited by node processes started by the harness.  The clock
is ``perf_counter_ns`` (CLOCK_MONOTONIC, common to all processes of a machine),
so the files of the client and the nodes merge into one timeline::

    RAFT_OTP_TRACE=1 python my_sequential_load.py
    python -m raft_otp._trace [DIR] [--from K] [--count N]   # timelines of commands K..K+N

Marks: ``api`` (process_command start/done), ``tx`` (queued for a peer / sent on
ZeroMQ), ``io`` (I/O thread woke), ``rx`` (frame received and decoded), ``srv``
(the server actor: message received, core event handled, effects carried out),
``wal`` (submitted, taken by a worker, written, synced).
"""

from __future__ import annotations

import os
import sys
import threading
import time

ON = os.environ.get("RAFT_OTP_TRACE") == "1"
_fd = -1


def _open() -> int:
    global _fd
    d = os.environ.get("RAFT_OTP_TRACE_DIR", "/tmp/raft_otp_trace")
    os.makedirs(d, exist_ok=True)
    _fd = os.open(os.path.join(d, f"{os.getpid()}.trace"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _fd


def mark(where: str, what: str) -> None:
    t = time.perf_counter_ns()
    fd = _fd if _fd >= 0 else _open()
    name = threading.current_thread().name.replace(" ", "_")[:20]
    os.write(fd, f"{t} {os.getpid()} {where} {name} {what}\n".encode())


def timelines(dir_: str) -> list[list[list[str]]]:
    """Merged events split per ``process_command`` (start to done, all processes)."""
    rows = []
    for f in os.listdir(dir_):
        if f.endswith(".trace"):
            with open(os.path.join(dir_, f)) as fh:
                rows += [ln.rstrip("\n").split(" ", 4) for ln in fh if ln.count(" ") >= 4]
    rows.sort(key=lambda r: int(r[0]))
    out: list[list[list[str]]] = []
    cur: list[list[str]] | None = None
    for r in rows:
        if r[2] == "api" and r[4] == "process_command":
            cur = [r]
            out.append(cur)
        elif cur is not None and (not cur[-1][4].startswith("process_command done")):
            if not r[4].endswith("returned 0"):  # idle heartbeat wake-ups
                cur.append(r)
    return out


def main(argv: list[str]) -> None:
    opts: dict[str, str] = {}
    args: list[str] = []
    it = iter(argv)
    for a in it:
        if a.startswith("--"):
            opts[a] = next(it, "")
        else:
            args.append(a)
    dir_ = args[0] if args else os.environ.get("RAFT_OTP_TRACE_DIR", "/tmp/raft_otp_trace")
    tl = timelines(dir_)
    k = int(opts.get("--from", len(tl) // 2))
    for c in tl[k:k + int(opts.get("--count", 1))]:
        t0 = prev = int(c[0][0])
        for r in c:
            t = int(r[0])
            print(f"{(t - t0) / 1000:8.1f} +{(t - prev) / 1000:6.1f} us  {r[1]:>7} {r[3]:20} {r[2]:4} {r[4]}")
            prev = t
        print("-" * 40)


if __name__ == "__main__":
    main(sys.argv[1:])
