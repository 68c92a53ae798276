"""Per-layer CPU of a sequential command: ``python -m bench.layers [--sync datasync|none] [-n 3000]``.

Runs the setup of ``bench.pairs`` (a 3-member counter cluster led from this
process, two node processes as followers, ``n`` sequential ``process_command``
calls after a warm-up) with the hot path's functions wrapped in every process
to add up the CPU of the calling thread (``time.thread_time_ns``) per call.
Prints, per process and thread, each layer's calls per command, CPU per call
and CPU per command.

Why CPU per layer and not latency: on this 2-core VM a run's p50 moves by
+/-20 % within minutes, so a change of 10-30 us is invisible in latency pairs,
while each layer's CPU per call repeats within a few percent between the two
followers of one run.  Read the figures as inclusive (a layer contains the
layers it calls: ``on_frame`` > ``on_messages`` > ``srv._handle`` >
``core.handle`` > ``follower.append_entries`` > ``log.write``; ``wal._sync_fd``
runs on the WAL's thread); a wrapped call adds about 1 us.
``wal._sync_fd``'s CPU is the kernel's share of ``fdatasync``, not its wait.

The node processes get the wrappers from a ``sitecustomize`` module put first
on ``PYTHONPATH``; each dumps its totals to a JSON file twice a second, and the
figures are the difference of two dumps (after the warm-up, after the run).
Not a part of ``python -m bench``: it explains a figure, it is not one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: (module, attribute path, label) of every wrapped function, in call order.
LAYERS: list[tuple[str, str, str]] = [
    ("raft_otp.node.transport", "Transport._drain_router", "transport.drain_router"),
    ("raft_otp.node.transport", "Transport._on_frame", "transport.on_frame"),
    ("raft_otp.node.envelope", "unseal", "envelope.unseal"),
    ("raft_otp.node.envelope", "parse_any", "envelope.parse_any"),
    ("raft_otp.node.runtime", "_Node.on_messages", "runtime.on_messages"),
    ("raft_otp.server.proc", "ServerActor.handle_slice", "srv.step"),
    ("raft_otp.server.proc", "ServerActor._commands", "srv._commands"),
    ("raft_otp.server.proc", "ServerActor._handle", "srv._handle"),
    ("raft_otp.server._core", "handle", "core.handle"),
    ("raft_otp.core.leader", "append_commands", "leader.append_commands"),
    ("raft_otp.core.leader", "append_entries_reply", "leader.append_entries_reply"),
    ("raft_otp.core.leader", "evaluate_commit", "leader.evaluate_commit"),
    ("raft_otp.core.follower", "append_entries", "follower.append_entries"),
    ("raft_otp.log.server_log", "ServerLog.write", "log.write"),
    ("raft_otp.log.server_log", "ServerLog.flush", "log.flush"),
    ("raft_otp.log.wal", "Wal._sync_fd", "wal._sync_fd"),
    ("raft_otp.core.apply", "apply_committed", "apply_committed"),
    ("raft_otp.server.executor", "Executor.execute", "executor.execute"),
    ("raft_otp.node.transport", "Transport.enqueue", "transport.enqueue"),
    ("raft_otp.node.transport", "Transport._try_send", "transport._try_send"),
    ("raft_otp.server.messages", "ReplySlot.wait", "slot.wait"),
]

ENV = "RAFT_OTP_LAYERS_OUT"

_SITE = f'''import os
if os.environ.get("{ENV}"):
    try:
        from bench.layers import install
        install(os.environ["{ENV}"])
    except Exception as exc:  # never keep a node from starting
        import sys
        print(f"bench.layers: not installed: {{exc!r}}", file=sys.stderr)
'''

_totals: dict[str, list[int]] = {}  # "label @thread" -> [calls, ns]


def _thread_kind(name: str) -> str:
    """A short kind for a thread's name (``sched-2`` -> ``pool``)."""
    for prefix, kind in (("raft_otp.node io", "io"), ("sched-", "pool"), ("wal-", "wal"),
                         ("MainThread", "main")):
        if name.startswith(prefix):
            return kind
    return re.sub(r"\d+", "", name)


def _wrap(owner: Any, attr: str, label: str) -> None:
    fn = getattr(owner, attr)
    now = time.thread_time_ns
    current = threading.current_thread
    totals = _totals

    def timed(*args: Any, **kwargs: Any) -> Any:
        c0 = now()
        try:
            return fn(*args, **kwargs)
        finally:
            key = f"{label} @{_thread_kind(current().name)}"
            slot = totals.get(key)
            if slot is None:
                slot = totals[key] = [0, 0]
            slot[0] += 1
            slot[1] += now() - c0
    timed.__wrapped__ = fn  # type: ignore[attr-defined]
    setattr(owner, attr, timed)


def install(out_dir: str | None = None) -> None:
    """Wrap every function of LAYERS in this process; with ``out_dir``, dump the
    totals to ``out_dir/<pid>.json`` twice a second from a daemon thread."""
    import importlib
    for module, path, label in LAYERS:
        owner: Any = importlib.import_module(module)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        _wrap(owner, attr, label)
        if not outer:  # a module function: rebind it where it was imported by name
            wrapped = getattr(owner, attr)
            original = wrapped.__wrapped__
            for mod in list(sys.modules.values()):
                name = getattr(mod, "__name__", "")
                # not in the module that defines it: its own calls are not the layer's
                if name.startswith("raft_otp.") and name != original.__module__ \
                        and getattr(mod, attr, None) is original:
                    setattr(mod, attr, wrapped)
    if out_dir is not None:
        path = os.path.join(out_dir, f"{os.getpid()}.json")

        def dump() -> None:
            while True:
                time.sleep(0.5)
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({k: list(v) for k, v in list(_totals.items())}, f)
                os.replace(tmp, path)
        threading.Thread(target=dump, name="bench.layers dump", daemon=True).start()


def _snapshot(out_dir: str, pids: dict[int, str]) -> dict[str, dict[str, list[int]]]:
    snap = {}
    for pid, who in pids.items():
        if pid == os.getpid():
            snap[who] = {k: list(v) for k, v in _totals.items()}
            continue
        try:
            with open(os.path.join(out_dir, f"{pid}.json")) as f:
                snap[who] = json.load(f)
        except (OSError, ValueError):
            snap[who] = {}
    return snap


def _run(n: int, sync: str, out_dir: str) -> tuple[float, dict[str, dict[str, list[int]]]]:
    import raft_otp
    from bench.pairs import local_leader_cluster

    with local_leader_cluster(sync, "layers") as (leader, h):
        pids = {os.getpid(): "leader (this process)", h[0].pid: "follower 1", h[1].pid: "follower 2"}
        time.sleep(1.2)  # a fresh dump from every node
        before = _snapshot(out_dir, pids)  # type: ignore[arg-type]
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            raft_otp.process_command(leader, ["incr"])
            lat.append(time.perf_counter() - t)
        time.sleep(1.2)
        after = _snapshot(out_dir, pids)  # type: ignore[arg-type]
    lat.sort()
    diff = {who: {k: [v[0] - before[who].get(k, [0, 0])[0], v[1] - before[who].get(k, [0, 0])[1]]
                  for k, v in after[who].items()} for who in after}
    return lat[n // 2], diff


def report(n: int, sync: str, p50: float, diff: dict[str, dict[str, list[int]]]) -> str:
    order = {label: k for k, (_m, _p, label) in enumerate(LAYERS)}
    lines = [f"{n} sequential commands, WAL {sync}, p50 {p50 * 1e3:.3f} ms (wrapped: add ~1 us per call)"]
    for who, rows in diff.items():
        lines.append(f"{who}:")
        lines.append(f"    {'layer @thread':48s} {'calls/cmd':>9s} {'us/call':>8s} {'us/cmd':>8s}")
        keyed = sorted(rows.items(), key=lambda kv: (kv[0].split(" @")[1], order.get(kv[0].split(" @")[0], 99)))
        for key, (calls, ns) in keyed:
            if calls <= 0 or calls < n * 0.02:
                continue
            lines.append(f"    {key:48s} {calls / n:9.2f} {ns / calls / 1e3:8.1f} {ns / n / 1e3:8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__.split("\n")[0])
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    p.add_argument("-n", type=int, default=3000, help="sequential commands (>= 100)")
    a = p.parse_args(argv)
    if a.n < 100:
        p.error("-n must be >= 100")
    site = tempfile.mkdtemp(prefix="raft_otp_layers_site_")
    out_dir = tempfile.mkdtemp(prefix="raft_otp_layers_out_")
    try:
        Path(site, "sitecustomize.py").write_text(_SITE)
        root = str(Path(__file__).resolve().parent.parent)
        os.environ["PYTHONPATH"] = os.pathsep.join([site, root, os.environ.get("PYTHONPATH", "")])
        os.environ[ENV] = out_dir
        install()  # this process (the leader) too, without the dump thread
        p50, diff = _run(a.n, a.sync, out_dir)
        print(report(a.n, a.sync, p50, diff))
    finally:
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
