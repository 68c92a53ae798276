"""raft_otp against PySyncObj: the same counter workload, 3 node processes on loopback.

Both sides run a replicated counter (``incr``) on 3 OS processes of this machine,
measured one after the other in the same run.  Durability stated per figure:

* raft_otp ``datasync``: the WAL fdatasyncs every batch before an entry counts
  as written (on a quorum) -- an acknowledged command survives a power cut;
  raft_otp ``none``: the WAL writes but never syncs.
* PySyncObj ``journal``: its ``journalFile`` is an mmap that is never synced
  (survives a process crash, not a power cut); ``memory``: no journal at all.
  PySyncObj never syncs, so every comparison with raft_otp ``datasync`` is
  "we sync, it does not".

The load: raft_otp's client is a 4th process (a client node) sending
``pipeline_commands`` frames to the leader and counting ``Applied``
notifications; PySyncObj has no client protocol, so its load runs inside the
leader process (it pays no client hop).  PySyncObj batches commands per tick
(``appendEntriesUseBatch``, its default) or wakes per command (batching off, its
low-latency setting); the sweep runs both and compares with its better one.

Figures (ratios >1 mean raft_otp wins):

* pipelined commands/s (raft_otp window 8000 in frames of 200, best of 3 runs;
  PySyncObj best of in-flight 2000 and 8000, each with and without batching)
  and CPU per command (user+system of every process of the side, client included);
* sequential ``process_command`` p50/p99 against PySyncObj's synchronous call
  with batching off, two ways: from the client node (a 4th process: two more
  network hops than PySyncObj's call), and like for like, from the leader's own
  process (the bench process then hosts the leader member of a second cluster,
  as an application embedding its node does; the followers are two of the node
  processes);
* the same in-leader sequential p50 in interleaved rounds (both clusters up,
  5 rounds of 400 calls alternating between the sides; medians, and how many
  rounds raft_otp won) against PySyncObj's journal and memory calls, so that the
  machine's drift between the two phases above does not decide the ratio;
* throughput against concurrency (in-flight 1, 8, 64, 512), also plotted to
  ``bench/results/throughput_vs_concurrency.png``.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import psutil

from bench._nodes import COUNTER, bench_nodes, cpu_s, node_procs, start_counter
from bench.cluster import FRAME, _pipelined
from bench.common import Figure, percentile
from bench.peers.pysyncobj_bench import pysyncobj_cluster

PLOT = Path(__file__).resolve().parent / "results" / "throughput_vs_concurrency.png"
WINDOWS = [1, 8, 64, 512]
PSO_BIG_WINDOWS = [2000, 8000]
PIPELINED = 8000  # the plot's last point: the pipelined figures (raft_otp window 8000, PySyncObj best big window)


# ---- raft_otp side ----------------------------------------------------------------------

@contextmanager
def raft_cluster(sync: str) -> Iterator[tuple[Any, list[psutil.Process], Any]]:
    """3 node processes (``wal_sync_method=sync``) + this process as client node;
    yields (leader id, [node processes + this one], the NodeProcs)."""
    import raft_otp

    with bench_nodes(f"raft_otp_bench_versus_{sync}_", 3, wal_sync_method=sync) as h:
        ids = start_counter(h, "versus")
        leader = raft_otp.ping(ids[0]) or ids[0]
        for _ in range(50):
            raft_otp.process_command(leader, ["incr"])
        yield leader, node_procs(h), h


def window_rate(leader: Any, window: int, seconds: float, procs: list[psutil.Process]) -> tuple[float, float]:
    """(commands/s, CPU us per command) keeping ``window`` pipelined commands in
    flight: whenever notifications free slots, refill them in one frame."""
    import raft_otp
    from raft_otp.node.mailbox import Mailbox
    mbox = Mailbox()
    sent = applied = corr = 0
    try:
        cpu0 = cpu_s(procs)
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            if time.perf_counter() < deadline:
                free = window - (sent - applied)
                while free > 0:
                    k = min(free, FRAME)
                    raft_otp.pipeline_commands(leader, [(["incr"], corr + i) for i in range(k)], mbox)
                    corr += k
                    sent += k
                    free -= k
            elif applied >= sent:
                break
            for m in [mbox.get(10), *mbox.drain()]:
                if isinstance(m, raft_otp.Rejected):  # leader moved (a saturated host): follow it
                    sent -= len(m.correlations)
                    leader = m.leader or leader
                    continue
                applied += len(m.replies)
        elapsed = time.perf_counter() - t0
        return applied / elapsed, (cpu_s(procs) - cpu0) / max(1, applied) * 1e6
    finally:
        mbox.close()


def sequential(leader: Any, n: int) -> list[float]:
    import raft_otp
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        raft_otp.process_command(leader, ["incr"])
        lat.append(time.perf_counter() - t)
    return lat


@contextmanager
def leader_here(h: Any, sync: str, name: str = "versus_here") -> Iterator[Any]:
    """A counter cluster led by a member in this process (a system started in the
    client node) with two node processes of ``h`` as followers; yields its id."""
    import raft_otp
    from raft_otp.node import runtime as node_rt
    from raft_otp.system import runtime as sysrt

    data_dir = os.path.join(h.base_dir, "here")
    sysrt.start_system({"name": "default", "data_dir": data_dir, "wal_sync_method": sync})
    try:
        here = raft_otp.ServerId(name, node_rt.node())
        ids = [here, h[0].sid(name), h[1].sid(name)]
        started, _ = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=20)
        if len(started) != 3:
            raise RuntimeError(f"cluster {name} did not start")
        for _ in range(20):
            if raft_otp.ping(here) == here:
                break
            raft_otp.transfer_leadership(raft_otp.ping(here) or here, here)
            time.sleep(0.3)
        else:
            raise RuntimeError("could not make the local member the leader")
        for _ in range(50):
            raft_otp.process_command(here, ["incr"])
        yield here
    finally:
        sysrt.stop_all()


def measure_raft(sync: str, seconds: float, seq_n: int, windows: list[int]) -> dict[str, Any]:
    with raft_cluster(sync) as (leader, procs, h):
        # best of 3 (PySyncObj gets the best of its 2 big windows x 2 batching settings)
        rate, cpu_us = max((_pipelined(leader, seconds * 0.6, procs) for _ in range(3)), key=lambda r: r[0])
        sweep = {w: window_rate(leader, w, seconds / 2, procs)[0] for w in windows}
        sweep[PIPELINED] = rate
        lat = sequential(leader, seq_n)
        with leader_here(h, sync) as here:
            lat_here = sequential(here, seq_n)
    return {"rate": rate, "cpu_us": cpu_us, "sweep": sweep, "lat": lat, "lat_here": lat_here}


# ---- PySyncObj side ---------------------------------------------------------------------

def measure_pso(journal: bool, seconds: float, seq_n: int, windows: list[int],
                big_windows: list[int]) -> dict[str, Any]:
    """Both batching settings: sweep, best big-window rate, sequential (batching off)."""
    out: dict[str, Any] = {"sweep": {}, "rate": 0.0, "cpu_us": 0.0, "errors": 0, "seq_errors": 0}
    for batch in (True, False):
        with pysyncobj_cluster(journal, no_batch=not batch) as c:
            out["sweep"][batch] = sweep = {w: c.window(w, seconds / 2)["rate"] for w in windows}
            sweep[PIPELINED] = 0.0
            for w in big_windows:
                r = c.window(w, seconds)
                sweep[PIPELINED] = max(sweep[PIPELINED], r["rate"])
                out["errors"] += r["errors"]
                if r["rate"] > out["rate"]:
                    out.update(rate=r["rate"], cpu_us=r["cpu_us_per_cmd"],
                               best=f"in-flight {w}, batching {'on' if batch else 'off'}")
            if not batch:
                out["lat"] = c.sequential(seq_n)
                out["seq_errors"] = c.sequential_errors
    return out


# ---- sequential, interleaved ------------------------------------------------------------

def interleaved_sequential(rounds: int, n: int) -> dict[str, dict[str, Any]]:
    """The sequential target, measured in alternation: our cluster (``datasync``, the
    caller in the leader's process) stays up while each PySyncObj setting (journal,
    then memory; batching off) runs beside it, and ``rounds`` times ``n`` sequential
    calls go to one side then the other.  Returns, per PySyncObj setting, each
    side's p50 per round in ms (``ours``, ``theirs``), each side's CPU per command
    per round in us over its 3 processes (``ours_cpu_us``, ``theirs_cpu_us``) and
    PySyncObj's failed calls (``failed``).

    The machine's speed drifts by tens of percent within minutes (other jobs share
    its 2 cores); the separate phases above measure the two sides minutes apart,
    these rounds a second apart, so drift falls on both alike."""
    out: dict[str, dict[str, Any]] = {}
    with raft_cluster("datasync") as (_leader, procs, h), leader_here(h, "datasync") as here:
        # the processes of the cluster led here: this one and the two followers
        mine = [procs[-1], procs[0], procs[1]]  # node_procs order: h's nodes, then this one
        for journal in (True, False):
            with pysyncobj_cluster(journal, no_batch=True) as c:
                c.sequential(50)  # warm-up
                errors0 = c.sequential_errors
                side = out["journal" if journal else "memory"] = {"ours": [], "theirs": [],
                                                                  "ours_cpu_us": [], "theirs_cpu_us": []}
                for _ in range(rounds):
                    cpu0 = cpu_s(mine)
                    side["ours"].append(percentile(sequential(here, n), 50) * 1e3)
                    side["ours_cpu_us"].append((cpu_s(mine) - cpu0) / n * 1e6)
                    cpu0 = c.cpu_s()
                    side["theirs"].append(percentile(c.sequential(n), 50) * 1e3)
                    side["theirs_cpu_us"].append((c.cpu_s() - cpu0) / n * 1e6)
                side["failed"] = c.sequential_errors - errors0
    return out


# ---- figures and plot -------------------------------------------------------------------

def _plot(path: Path, windows: list[int], lines: dict[str, dict[int, float]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = [*windows, PIPELINED]
    for label, pts in lines.items():
        style = "-o" if label.startswith("raft_otp") else "--s"
        ax.plot(xs, [max(pts.get(w, 0.0), 0.1) for w in xs], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [*(str(w) for w in windows), f"{PIPELINED}*"])
    ax.set_xlabel("commands in flight (* raft_otp 8000; PySyncObj best of 2000/8000)")
    ax.set_ylabel("commands/s (3 nodes, counter)")
    ax.set_title(f"Throughput vs concurrency: 3 node processes on loopback, {os.cpu_count()} CPUs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


PAIRS = [("datasync", True, "journal, no sync"), ("none", False, "memory")]
"""(raft_otp WAL sync method, PySyncObj journal?, label) compared side by side."""


def measure(seconds: float = 4.0, seq_n: int = 1000, windows: list[int] | None = None,
            big_windows: list[int] | None = None, plot: Path | None = PLOT,
            pairs: list[tuple[str, bool, str]] | None = None,
            rounds: int = 5, round_n: int = 400) -> list[Figure]:
    windows = windows or WINDOWS
    big_windows = big_windows or PSO_BIG_WINDOWS
    pairs = pairs or PAIRS
    ours = {s: measure_raft(s, seconds, seq_n, windows) for s, _, _ in pairs}
    pso = {j: measure_pso(j, seconds, seq_n, windows, big_windows) for _, j, _ in pairs}
    inter = interleaved_sequential(rounds, round_n) if rounds > 0 else None
    figs: list[Figure] = []
    for sync, journal, label in pairs:
        o, p = ours[sync], pso[journal]
        figs.append(Figure(f"versus: pipelined cmd/s, raft_otp {sync}", round(o["rate"]), "cmd/s",
                           f"PySyncObj {label} ({p.get('best', '?')})", round(p["rate"])))
        figs.append(Figure(f"versus: CPU per command, raft_otp {sync} (3 nodes + client)",
                           round(o["cpu_us"], 1), "us/cmd", f"PySyncObj {label} (3 nodes, load in leader)",
                           round(p["cpu_us"], 1), higher_is_better=False))
        failed = f" ({p['seq_errors']} calls failed, left out)" if p["seq_errors"] else ""
        for q in (50, 99):
            figs.append(Figure(f"versus: sequential process_command p{q}, raft_otp {sync}",
                               round(percentile(o["lat"], q) * 1e3, 3), "ms",
                               f"PySyncObj {label}, sync call, batching off" + failed,
                               round(percentile(p["lat"], q) * 1e3, 3), higher_is_better=False))
            figs.append(Figure(f"versus: sequential process_command p{q}, raft_otp {sync}, "
                               "caller in the leader's process",
                               round(percentile(o["lat_here"], q) * 1e3, 3), "ms",
                               f"PySyncObj {label}, sync call in its leader, batching off" + failed,
                               round(percentile(p["lat"], q) * 1e3, 3), higher_is_better=False))
        for w in windows:
            best = max(p["sweep"][True][w], p["sweep"][False][w])
            figs.append(Figure(f"versus: in-flight {w} cmd/s, raft_otp {sync}", round(o["sweep"][w], 1),
                               "cmd/s", f"PySyncObj {label}, better of batching on/off", round(best, 1)))
    if "datasync" in ours and False in pso:  # the target: we sync, it neither syncs nor journals
        p = pso[False]
        figs.insert(1, Figure("versus: pipelined cmd/s, raft_otp datasync vs PySyncObj's fastest setting",
                              round(ours["datasync"]["rate"]), "cmd/s",
                              f"PySyncObj memory, no journal ({p.get('best', '?')})", round(p["rate"])))
    if inter is not None:
        for name, side in inter.items():
            mine, theirs = side["ours"], side["theirs"]
            wins = sum(a <= b for a, b in zip(mine, theirs))
            figs.append(Figure(f"versus: sequential p50 interleaved, raft_otp datasync in its leader, "
                               f"vs PySyncObj {name}", round(statistics.median(mine), 3), "ms",
                               f"PySyncObj {name} (no sync), sync call in its leader, batching off; medians "
                               f"of {rounds} alternating rounds of {round_n}, ours faster in {wins}"
                               + (f"; PySyncObj failed {side['failed']} calls (left out)" if side["failed"] else ""),
                               round(statistics.median(theirs), 3), higher_is_better=False))
            figs.append(Figure(f"versus: CPU per sequential command interleaved, raft_otp datasync in its "
                               f"leader (3 processes), vs PySyncObj {name}",
                               round(statistics.median(side["ours_cpu_us"])), "us/cmd",
                               f"PySyncObj {name}, 3 processes, the same rounds",
                               round(statistics.median(side["theirs_cpu_us"])), higher_is_better=False))
    if "datasync" in ours and len(pso) == 2:  # the latency target, like for like: callers in the leaders
        p50 = {j: percentile(pso[j]["lat"], 50) for j in pso}
        best = min(p50, key=lambda j: p50[j])
        figs.insert(0, Figure("versus: sequential p50 target: raft_otp datasync, caller in the leader's process, "
                              "vs PySyncObj's faster sync call",
                              round(percentile(ours["datasync"]["lat_here"], 50) * 1e3, 3), "ms",
                              f"PySyncObj {'journal' if best else 'memory'} (no sync), sync call in its leader, "
                              "batching off", round(p50[best] * 1e3, 3), higher_is_better=False))
    if plot is not None:
        lines = {}
        for sync, _, _ in pairs:
            lines[f"raft_otp, WAL {'datasync' if sync == 'datasync' else 'no sync'}"] = ours[sync]["sweep"]
        for _, journal, _ in pairs:
            what = "journal (mmap, no sync)" if journal else "memory"
            lines[f"PySyncObj {what}, batching"] = pso[journal]["sweep"][True]
            lines[f"PySyncObj {what}, no batching"] = pso[journal]["sweep"][False]
        _plot(plot, [w for w in windows if w < PIPELINED], lines)
    return figs


def run(quick: bool = False) -> list[Figure]:
    if quick:
        return measure(seconds=1.5, seq_n=200, big_windows=[4000], rounds=2, round_n=100)
    return measure()


if __name__ == "__main__":
    import sys
    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:60s} {f.value:>10} {f.unit:7s} | {f.peer}: {f.peer_value}  ratio {f.ratio:.2f}")
