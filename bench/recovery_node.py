"""Recovery of whole nodes: a restart with 1,000,000 entries; a 100 MB snapshot install.

Both on 4 node processes on loopback (``python -m raft_otp.system``), this
process a client node.

* **Restart with N entries.**  A 3-member counter cluster (no snapshots: the
  counter releases no cursor, so the log keeps every entry) receives N pipelined
  commands.  A follower node is stopped (SIGTERM) and started again; measured:
  spawn to ``READY`` (the node recovered its WAL and segments and started its
  servers), and spawn until its server has applied index N again (it replays
  its log into the machine; the commit index comes from the leader).  Peer,
  same run: the same node restarted while it held only the cluster's first
  entries.  The fill runs with WAL sync ``none`` (fast); recovery reads the same
  files either way.
* **Failover.**  A 3-member counter cluster; the leader's node is SIGKILLed and
  the time until a command sent through another member succeeds is measured
  (3 kills, the node restarted after each; median reported).  Limit: the
  longest election timeout of a follower whose leader's node is gone (the
  ``connection_lost`` class: 6 broadcast times).
* **Install a snapshot of S MB on a new member.**  A key-value cluster of 3
  holds ``S`` keys of 1 MB (a snapshot is taken after them), a 4th member is
  started on the 4th node and added; measured: ``add_member`` until the new
  member has applied the leader's index (it receives the snapshot in chunks,
  writes and syncs it, loads it).  Peer, same run: sending the same bytes in
  1 MB frames over a bare pyzmq PUSH/PULL pair between two processes and
  writing + fsyncing them to a file (the transfer floor).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from bench._nodes import COUNTER as _COUNTER, bench_nodes

# The counter releases no cursor here (the built-in default is every 1000 commands):
# the restart measured is the replay of every entry, with no snapshot.
COUNTER = (_COUNTER[0], {"release_cursor_every": 0})
from bench.cluster import FRAME
from bench.common import Figure

KV = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": 0})
MB = 1 << 20


def _fill(leader: Any, n: int, window: int = 8000) -> Any:
    """Pipeline ``n`` incr commands (following a moved leader); returns the leader."""
    import raft_otp
    from raft_otp.node.mailbox import Mailbox
    mbox = Mailbox()
    sent = applied = 0
    try:
        while applied < n:
            while sent < n and sent - applied < window:
                k = min(FRAME, n - sent, window - (sent - applied))
                raft_otp.pipeline_commands(leader, [(["incr"], 0)] * k, mbox)
                sent += k
            for m in [mbox.get(30), *mbox.drain()]:
                if isinstance(m, raft_otp.Rejected):
                    sent -= len(m.correlations)
                    leader = m.leader or leader
                else:
                    applied += len(m.replies)
        return leader
    finally:
        mbox.close()


def _wait_applied(sid: Any, index: int, timeout: float) -> float:
    """Seconds until ``sid`` reports last_applied >= index (polled every 10 ms)."""
    import raft_otp
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        try:
            if raft_otp.member_overview(sid, timeout=2.0)["last_applied"] >= index:
                return time.perf_counter() - t0
        except Exception:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{sid} did not apply index {index} in {timeout} s")


def _restart(h: Any, i: int, sid: Any, index: int) -> tuple[float, float]:
    """(spawn -> READY, spawn -> applied ``index``) of node ``i``."""
    h.stop(i)
    t0 = time.perf_counter()
    h.start(i, timeout=600)
    ready = time.perf_counter() - t0
    applied = ready + _wait_applied(sid, index, 600)
    return ready, applied


def restart_figures(h: Any, entries: int) -> list[Figure]:
    import raft_otp
    ids = [h[i].sid("rec") for i in range(3)]
    started, _ = raft_otp.start_cluster("default", "rec", COUNTER, ids, timeout=30)
    if len(started) != 3:
        raise RuntimeError("cluster did not start")
    leader = raft_otp.ping(ids[0]) or ids[0]
    leader = _fill(leader, 1000)
    victim = next(i for i in range(3) if ids[i] != leader)
    idx = raft_otp.member_overview(leader)["commit_index"]
    base_ready, base_applied = _restart(h, victim, ids[victim], idx)
    t0 = time.perf_counter()
    leader = _fill(raft_otp.ping(ids[0]) or ids[0], entries)
    fill_s = time.perf_counter() - t0
    leader = raft_otp.ping(ids[0]) or leader
    idx = raft_otp.member_overview(leader)["commit_index"]
    victim = next(i for i in range(3) if ids[i] != leader)
    _wait_applied(ids[victim], idx, 120)
    ready, applied = _restart(h, victim, ids[victim], idx)
    n = f"{entries:,}"
    return [
        Figure(f"recovery: node restart holding {n} entries, spawn to READY", round(ready, 2), "s",
               "same node restarted holding 1,000 entries", round(base_ready, 2), higher_is_better=False),
        Figure(f"recovery: node restart holding {n} entries, spawn to all applied", round(applied, 2), "s",
               "same node restarted holding 1,000 entries", round(base_applied, 2), higher_is_better=False),
        Figure(f"recovery: replay rate of that restart ({n} entries, fill took {fill_s:.0f} s)",
               round(entries / applied), "entries/s", "fill rate (pipelined, sync none)",
               round(entries / fill_s)),
    ]


_PEER = r"""
import os, sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.PULL)
port = s.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
n = int(sys.argv[2])
for _ in range(n):
    os.write(fd, s.recv(copy=False).buffer)
os.fsync(fd)
os.close(fd)
print("done", flush=True)
"""


def zmq_transfer_s(mb: int, path: str) -> float:
    """Seconds to push ``mb`` 1 MB frames to another process that writes + fsyncs them."""
    import zmq
    p = subprocess.Popen([sys.executable, "-c", _PEER, path, str(mb)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        port = int(p.stdout.readline())
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.PUSH)
        s.connect(f"tcp://127.0.0.1:{port}")
        chunk = os.urandom(MB)
        t0 = time.perf_counter()
        for _ in range(mb):
            s.send(chunk, copy=False)
        if p.stdout.readline().strip() != "done":
            raise RuntimeError("zmq transfer peer failed")
        dt = time.perf_counter() - t0
        s.close(0)
        return dt
    finally:
        p.wait(10)
        if os.path.exists(path):
            os.unlink(path)


def snapshot_figures(h: Any, mb: int) -> list[Figure]:
    import raft_otp
    ids = [h[i].sid("snap") for i in range(3)]
    kv = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": mb})
    started, _ = raft_otp.start_cluster("default", "snap", kv, ids, timeout=30)
    if len(started) != 3:
        raise RuntimeError("snapshot cluster did not start")
    leader = raft_otp.ping(ids[0]) or ids[0]
    value_bytes = MB - 1024  # each command stays within max_command_bytes (1 MiB) with its framing
    for k in range(mb):  # distinct values: no compression can help
        _, leader = raft_otp.process_command(leader, ["put", f"k{k}", os.urandom(value_bytes)], timeout=60)
    idx = raft_otp.member_overview(leader)["commit_index"]
    deadline = time.monotonic() + 60  # until the leader's snapshot covers the data
    while True:
        snap = (raft_otp.member_overview(leader)["log"] or {}).get("snapshot_index") or 0
        if snap >= mb or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    new = h[3].sid("snap")
    raft_otp.start_server("default", "snap", new, kv, ids + [new], timeout=30)
    t0 = time.perf_counter()
    raft_otp.add_member(leader, new, timeout=60)
    dt = time.perf_counter() - t0 + _wait_applied(new, idx, 600)
    keys = raft_otp.member_overview(new)["machine_overview"]["keys"]
    if keys != mb:
        raise RuntimeError(f"new member has {keys} keys, expected {mb}")
    floor = zmq_transfer_s(mb, os.path.join(h.base_dir, "zmq_transfer.bin"))
    return [Figure(f"recovery: install a {mb} MB snapshot on a new member (add_member to applied, "
                   f"snapshot at {snap}/{idx})", round(dt, 4), "s",
                   f"bare pyzmq {mb} x 1 MB to another process + write + fsync", round(floor, 4),
                   higher_is_better=False)]


def failover_figures(h: Any, kills: int = 3) -> list[Figure]:
    import signal
    import statistics

    import raft_otp
    from raft_otp.system.config import SystemConfig
    ids = [h[i].sid("fo") for i in range(3)]
    started, _ = raft_otp.start_cluster("default", "fo", COUNTER, ids, timeout=30)
    if len(started) != 3:
        raise RuntimeError("cluster did not start")
    times = []
    for _ in range(kills):
        leader = raft_otp.process_command(ids[0], ["incr"], timeout=30)[1]
        li = ids.index(leader)
        other = ids[(li + 1) % 3]
        t0 = time.perf_counter()
        os.kill(h[li].pid, signal.SIGKILL)
        while True:
            try:
                raft_otp.process_command(other, ["incr"], timeout=0.5)
                break
            except raft_otp.RaftError:
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("no new leader within 60 s") from None
                time.sleep(0.005)
        times.append(time.perf_counter() - t0)
        h.kill(li)  # reap it and wait until this client node saw it down
        h.start(li, timeout=60)
    limit_s = 6 * SystemConfig().broadcast_time_ms / 1000.0
    return [Figure(f"recovery: failover, leader node SIGKILLed until a command succeeds "
                   f"(median of {kills})", round(statistics.median(times), 3), "s",
                   "longest election timeout after the leader's node is gone", limit_s,
                   higher_is_better=False)]


def measure(entries: int, snapshot_mb: int) -> list[Figure]:
    figs: list[Figure] = []
    with bench_nodes("raft_otp_bench_recovery_node_", 4, wal_sync_method="none",
                     extra_args=["--min-snapshot-interval", "1"]) as h:
        figs += failover_figures(h)
        figs += restart_figures(h, entries)
        figs += snapshot_figures(h, snapshot_mb)
    return figs


def run(quick: bool = False) -> list[Figure]:
    if quick:
        return measure(100_000, 20)
    return measure(1_000_000, 100)


if __name__ == "__main__":
    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name:90s} {f.value:>10} {f.unit:9s} | {f.peer}: {f.peer_value}  ratio {f.ratio:.2f}")
