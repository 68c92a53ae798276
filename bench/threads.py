"""Per-thread CPU and context switches of a sequential command:
``python -m bench.threads [--sync datasync|none] [-n 2000]``.

Starts 3 node processes (with their threads named for the kernel, so
``/proc/<pid>/task/<tid>/comm`` tells them apart) plus this process as the client
node, runs ``n`` sequential ``process_command`` calls, and prints for every
process and thread its user+system CPU and context switches per command (from
``/proc``), with the p50 latency of the run.  This is how the "Latency, second
round" figures of ``docs/benchmarks.md`` were taken.  Not a part of
``python -m bench``: it reports a breakdown, not a figure against a peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

_NAMER = '''import ctypes, threading
_libc = ctypes.CDLL(None)
_orig = threading.Thread._bootstrap_inner
def _inner(self):
    try:
        _libc.prctl(15, self.name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass
    return _orig(self)
threading.Thread._bootstrap_inner = _inner
'''


def _threads(pid: int) -> dict[str, tuple[str, int, int]]:
    """tid -> (name, context switches, CPU ticks) of a process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            ctx = sum(int(ln.split()[1]) for ln in open(f"/proc/{pid}/task/{tid}/status")
                      if "ctxt_switches" in ln)
            st = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            out[tid] = (name, ctx, int(st[11]) + int(st[12]))
        except OSError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.split("\n")[0])
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    p.add_argument("-n", type=int, default=2000)
    a = p.parse_args(argv)
    namer = tempfile.mkdtemp(prefix="raft_otp_thread_names_")
    with open(os.path.join(namer, "sitecustomize.py"), "w") as f:
        f.write(_NAMER)
    os.environ["PYTHONPATH"] = namer + os.pathsep + os.environ.get("PYTHONPATH", "")

    try:
        return _run(a)
    finally:
        shutil.rmtree(namer, ignore_errors=True)


def _run(a: argparse.Namespace) -> int:
    import raft_otp
    from bench._nodes import bench_nodes, node_procs, start_counter
    tick = os.sysconf("SC_CLK_TCK")
    with bench_nodes("raft_otp_bench_threads_", 3, wal_sync_method=a.sync) as h:
        ids = start_counter(h, "threads")
        leader = raft_otp.ping(ids[0]) or ids[0]
        for _ in range(100):
            raft_otp.process_command(leader, ["incr"])
        procs = node_procs(h)
        names = [np.name for np in h.nodes] + ["client (this process)"]
        before = [_threads(pr.pid) for pr in procs]
        lat = []
        for _ in range(a.n):
            t = time.perf_counter()
            raft_otp.process_command(leader, ["incr"])
            lat.append(time.perf_counter() - t)
        after = [_threads(pr.pid) for pr in procs]
    lat.sort()
    print(f"{a.n} sequential commands, WAL {a.sync}, p50 {lat[len(lat) // 2] * 1e3:.3f} ms; "
          f"leader {leader.node}")
    for name, b, c in zip(names, before, after):
        rows: list[Any] = []
        for tid, (tname, ctx, cpu) in c.items():
            if tid in b:
                dctx = (ctx - b[tid][1]) / a.n
                dcpu = (cpu - b[tid][2]) / tick / a.n * 1e6
                if dctx > 0.05 or dcpu > 1:
                    rows.append((tname, dctx, dcpu))
        print(f"{name}: {sum(r[1] for r in rows):.1f} context switches and "
              f"{sum(r[2] for r in rows):.0f} us CPU per command")
        for tname, dctx, dcpu in sorted(rows, key=lambda r: -r[2]):
            print(f"    {tname:18s} {dctx:6.1f} ctx/cmd {dcpu:7.0f} us/cmd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
