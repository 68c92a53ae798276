"""Profile the hot path: ``python -m bench.profile [--sync datasync] [--load pipelined|sequential]``.

Starts the 3-node cluster of ``bench.versus`` (this process is the client
node), attaches ``py-spy record --nonblocking`` to each node process and to this
client, runs the load, and prints per process the functions with the most
samples, by self time and inclusive (on-CPU samples only: py-spy drops idle
threads; ZeroMQ's C threads are not seen).  Raw collapsed stacks are kept in
``--out`` (flamegraph.pl / speedscope input).  Not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.versus import raft_cluster, sequential, window_rate

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def summarize(raw: Path, top: int = 25) -> str:
    self_n: collections.Counter[str] = collections.Counter()
    incl_n: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        self_n[frames[-1]] += k
        for f in set(frames):
            incl_n[f] += k
    out = [f"== {raw.name}: {total} samples"]
    out.append("-- self")
    out += [f"{n / max(1, total) * 100:5.1f}%  {f}" for f, n in self_n.most_common(top)]
    out.append("-- inclusive")
    out += [f"{n / max(1, total) * 100:5.1f}%  {f}" for f, n in incl_n.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    ap.add_argument("--sync", default="datasync", choices=["datasync", "none", "fsync"])
    ap.add_argument("--load", default="pipelined", choices=["pipelined", "sequential"])
    ap.add_argument("--window", type=int, default=8000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--gil", action="store_true", help="only samples holding the GIL (Python CPU)")
    ap.add_argument("--out", default=None, help="directory for raw stacks (default: a temp dir)")
    a = ap.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="raft_otp_profile_"))
    out.mkdir(parents=True, exist_ok=True)
    with raft_cluster(a.sync) as (leader, procs, _h):
        spies = []
        names = [f"node{i + 1}" for i in range(len(procs) - 1)] + ["client"]
        for name, p in zip(names, procs):
            raw = out / f"{name}-{a.load}-{a.sync}.txt"
            spies.append((raw, subprocess.Popen(
                [PY_SPY, "record", "--nonblocking", "-r", str(a.rate), "-d", str(int(a.seconds) + 1),
                 "-f", "raw", "-o", str(raw), "--pid", str(p.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(0.5)
        if a.load == "pipelined":
            rate, cpu_us = window_rate(leader, a.window, a.seconds, procs)
            print(f"pipelined window {a.window}: {rate:,.0f} cmd/s, {cpu_us:.1f} us CPU/cmd (profiled)")
        else:
            lat = []
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < a.seconds:
                lat += sequential(leader, 50)
            lat.sort()
            print(f"sequential: p50 {lat[len(lat) // 2] * 1e3:.3f} ms over {len(lat)} (profiled)")
        for _, sp in spies:
            sp.wait(60)
    for raw, _ in spies:
        if raw.exists():
            print(summarize(raw, a.top))
    print(f"raw stacks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
