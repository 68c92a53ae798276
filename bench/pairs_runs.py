"""One run of ``bench.pairs`` in one tree: ``python /path/to/bench/pairs_runs.py MODE ...``.

``bench.pairs`` runs this file by its path with the tree under test as the
working directory and ``PYTHONPATH``, so ``raft_otp`` (here and in the node
processes) is that tree's while the measuring code is the same file on both
sides of a pair.  It therefore imports nothing from ``bench`` and uses only the
API that the oldest commit compared (46f3e21) has as well.  Prints one JSON
object, the run's figures.  Modes:

* ``leader``: a 3-member counter cluster whose leader is in this process (a
  node and a system started here) and whose followers are two node processes;
  ``n`` sequential ``process_command`` calls after a warm-up.  Figures: p50,
  p99, CPU per command of each process.
* ``client``: a counter cluster on three node processes; this process is a
  port-less client node (``raft_otp.connect``) and makes ``n`` sequential
  ``Client.process_command`` calls after a warm-up.  Same figures.
* ``pipelined``: a counter cluster on three node processes; this process is a
  client node that keeps ``window`` commands in flight, sent with
  ``pipeline_commands`` in frames of ``frame``, counting ``Applied``
  notifications for ``seconds`` (the loop of ``bench.cluster``'s pipelined
  figure; ``bench.pairs`` passes that module's frame and window).  Figures:
  commands/s, CPU per command of each process.

Every run's JSON also names the ``raft_otp`` package directory it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

COUNTER: tuple[str, dict[str, Any]] = ("raft_otp.machines.counter:Counter", {})
WARMUP_COMMANDS = 250
MODES = ("leader", "client", "pipelined")


@contextmanager
def local_leader_cluster(sync: str, name: str = "pairs") -> Iterator[tuple[Any, Any]]:
    """A 3-member counter cluster whose leader is a member in this process (a node and
    a system started here) and whose followers are two node processes; yields
    (the leader's id, the NodeProcs) after a warm-up of 250 commands, and stops all."""
    import raft_otp
    from raft_otp.core.types import ServerId
    from raft_otp.node import runtime as node_rt
    from raft_otp.system import runtime as sysrt
    from raft_otp.system.harness import NodeProcs, free_port
    from raft_otp.system.node_main import node_config

    base = tempfile.mkdtemp(prefix=f"raft_otp_{name}_")
    h = NodeProcs(base, 2, wal_sync_method=sync)
    try:
        h.start()
        me = f"n0@127.0.0.1:{free_port()}"
        node_rt.start_node(me, h.cookie, config=node_config())
        sysrt.start_system({"name": "default", "data_dir": os.path.join(base, "n0"),
                            "wal_sync_method": sync})
        ids = [ServerId(name, me), h[0].sid(name), h[1].sid(name)]
        started, _ = raft_otp.start_cluster("default", name, COUNTER, ids, timeout=20)
        if len(started) != 3:
            raise RuntimeError(f"cluster did not start: {started}")
        for _ in range(20):  # the leader must be the member in this process
            leader = raft_otp.ping(ids[0])
            if leader == ids[0]:
                break
            raft_otp.transfer_leadership(leader or ids[0], ids[0])
            time.sleep(0.3)
        else:
            raise RuntimeError("could not make the local member the leader")
        for _ in range(WARMUP_COMMANDS):
            raft_otp.process_command(ids[0], ["incr"])
        yield ids[0], h
    finally:
        sysrt.stop_all()
        node_rt.stop_node()
        h.close()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def node_cluster(sync: str, name: str = "pairs") -> Iterator[Any]:
    """Three node processes (this process joins none of them), removed on exit."""
    from raft_otp.system.harness import NodeProcs

    base = tempfile.mkdtemp(prefix=f"raft_otp_{name}_")
    h = NodeProcs(base, 3, wal_sync_method=sync)
    try:
        h.start()
        yield h
    finally:
        h.close()
        shutil.rmtree(base, ignore_errors=True)


def _cpu_s(procs: list[Any]) -> list[float]:
    return [sum(p.cpu_times()[:2]) for p in procs]


def _sequential(call: Any, n: int, procs: list[Any]) -> dict[str, object]:
    """``n`` timed calls of ``call()``: p50, p99 (ms) and CPU per call of each process (us)."""
    c0 = _cpu_s(procs)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t)
    c1 = _cpu_s(procs)
    lat.sort()
    return {"p50_ms": lat[n // 2] * 1e3, "p99_ms": lat[int(n * 0.99)] * 1e3,
            "cpu_us": [round((b - a) / n * 1e6) for a, b in zip(c0, c1)]}


def run_leader(n: int, sync: str) -> dict[str, object]:
    """Sequential commands with the caller in the leader's process (mode ``leader``)."""
    import psutil

    import raft_otp

    with local_leader_cluster(sync) as (leader, h):
        procs = [psutil.Process()] + [psutil.Process(p.pid) for p in h.nodes]
        return _sequential(lambda: raft_otp.process_command(leader, ["incr"]), n, procs)


def run_client(n: int, sync: str) -> dict[str, object]:
    """Sequential commands from a port-less client node (mode ``client``)."""
    import psutil

    import raft_otp

    with node_cluster(sync) as h:
        with raft_otp.connect([np.name for np in h.nodes], cookie_file=h.cookie_file,
                              transport_security=h.security, timeout=20) as c:
            started, _ = c.start_cluster("pairs", COUNTER, timeout=20)
            if len(started) != 3:
                raise RuntimeError(f"cluster did not start: {started}")
            for _ in range(WARMUP_COMMANDS):
                c.process_command("pairs", ["incr"])
            procs = [psutil.Process()] + [psutil.Process(p.pid) for p in h.nodes]
            return _sequential(lambda: c.process_command("pairs", ["incr"]), n, procs)


def run_pipelined(seconds: float, sync: str, frame: int, window: int) -> dict[str, object]:
    """Pipelined commands/s from a client node, ``window`` in flight (mode ``pipelined``)."""
    import psutil

    import raft_otp
    from raft_otp.node import runtime as node_rt
    from raft_otp.node.mailbox import Mailbox

    with node_cluster(sync) as h:
        try:
            h.join_as_client("bench")
            h.wait_connected()
            ids = [h[i].sid("pairs") for i in range(3)]
            started, _ = raft_otp.start_cluster("default", "pairs", COUNTER, ids, timeout=20)
            if len(started) != 3:
                raise RuntimeError(f"cluster did not start: {started}")
            # follows redirects to the leader
            _, leader = raft_otp.process_command(ids[0], ["incr"])
            procs = [psutil.Process()] + [psutil.Process(p.pid) for p in h.nodes]
            mbox = Mailbox()
            try:
                return _pipeline(leader, mbox, seconds, frame, window, procs)
            finally:
                mbox.close()
        finally:
            if node_rt.is_started():
                node_rt.stop_node()


def _pipeline(leader: Any, mbox: Any, seconds: float, frame: int, window: int,
              procs: list[Any]) -> dict[str, object]:
    """Keep ``window`` commands in flight for ``seconds``, then wait for the last ones:
    commands applied per second and CPU per command of each process."""
    import raft_otp

    raft_otp.pipeline_commands(leader, [(["incr"], -1)] * frame, mbox)  # warm up
    got = 0
    while got < frame:
        got += len(mbox.get(10).replies)
    sent = applied = corr = 0
    c0 = _cpu_s(procs)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        if time.perf_counter() < deadline:
            while sent - applied < window:
                frame_cmds = [(["incr"], corr + i) for i in range(frame)]
                raft_otp.pipeline_commands(leader, frame_cmds, mbox)
                corr += frame
                sent += frame
        elif applied >= sent:
            break
        m = mbox.get(10)
        if isinstance(m, raft_otp.Rejected):
            raise RuntimeError(f"commands rejected: leader moved to {m.leader}")
        applied += len(m.replies)
        for m in mbox.drain():
            applied += len(m.replies)
    elapsed = time.perf_counter() - t0
    c1 = _cpu_s(procs)
    return {"rate": applied / elapsed, "applied": applied,
            "cpu_us": [round((b - a) / applied * 1e6, 1) for a, b in zip(c0, c1)]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pairs_runs.py", description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument("-n", type=int, default=2000, help="sequential commands (leader, client)")
    p.add_argument("--seconds", type=float, default=6.0, help="pipelined load time")
    p.add_argument("--frame", type=int, default=200, help="commands per pipeline_commands frame")
    p.add_argument("--window", type=int, default=8000, help="commands in flight")
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    a = p.parse_args(argv)
    # the tree under test (the working directory) first; not this file's bench/ directory,
    # whose module names (profile, wal, ...) would shadow others
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [os.getcwd()] + [x for x in sys.path if os.path.abspath(x or ".") != here]
    if a.mode == "leader":
        out = run_leader(a.n, a.sync)
    elif a.mode == "client":
        out = run_client(a.n, a.sync)
    else:
        out = run_pipelined(a.seconds, a.sync, a.frame, a.window)
    import raft_otp
    out["raft_otp"] = os.path.dirname(os.path.abspath(raft_otp.__file__))  # which tree ran
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
