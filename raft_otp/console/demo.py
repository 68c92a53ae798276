"""``raft-otp demo``: a local 3-node key-value cluster survives the SIGKILL of its leader.

The demo process is a root supervisor (one_for_one) whose children are the
three node processes (``python -m raft_otp.system``, supervisors' OS-process
children), and a client node that uses the public API.  It writes, reads back,
SIGKILLs the leader's process, shows the new leader, keeps writing, waits for
the supervisor to restart the dead node (which recovers from its WAL and
catches up), reads every acknowledged write back with ``consistent_query``,
shows the trees, and stops everything with SIGTERM (children in reverse order).

The data dir (default ``./raft_otp_demo_data``) is reset at every run; a
directory without the demo's marker file is never deleted, nor one whose node
data dirs another live process holds (a demo still running there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from rich.rule import Rule

from raft_otp.console import render
from raft_otp.console.common import ConsoleError, ensure_cookie_file, free_port, read_cookie_file

__all__ = ["MARKER", "prepare_data_dir", "cmd_demo"]

MARKER = ".raft_otp_demo"
CLUSTER = "demo"
KV: tuple[str, dict[str, Any]] = ("raft_otp.machines.kv:KeyValue", {})
STATE = "raft_otp.system.queries:state"


def prepare_data_dir(path: str) -> str:
    """Reset ``path`` for a demo run; refuse to touch a directory that is not the demo's."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConsoleError(f"demo data dir {path} exists and is not a directory")
        if os.listdir(path) and not os.path.exists(os.path.join(path, MARKER)):
            raise ConsoleError(f"{path} exists and is not a raft-otp demo dir; "
                               "refusing to reset it (pass --data-dir)")
        locks = _lock_node_dirs(path)
        try:
            shutil.rmtree(path)
        finally:
            for lock in locks:
                lock.release()
    os.makedirs(path)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("created by raft-otp demo; deleted and recreated at every run\n")
    return path


def _lock_node_dirs(path: str) -> list[Any]:
    """Lock every data dir under ``path`` (those with a LOCK file), so none is deleted
    while a node runs in it; ConsoleError naming the first one in use."""
    from raft_otp.errors import DataDirLocked
    from raft_otp.system import datadir_lock
    locks: list[Any] = []
    try:
        for root, _dirs, files in os.walk(path):
            if datadir_lock.LOCK_FILE in files:
                locks.append(datadir_lock.acquire(root))
    except DataDirLocked as exc:
        for lock in locks:
            lock.release()
        raise ConsoleError(f"{exc}: a demo still runs there; stop it first, or pass another "
                           "--data-dir") from None
    return locks


def _wait(what: str, fn: Callable[[], Any], timeout: float, pause: float = 0.02) -> Any:
    """Poll ``fn`` until it returns a truthy value (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as exc:  # the condition is not met yet
            last = exc
        time.sleep(pause)
    raise ConsoleError(f"demo: timed out waiting for {what}" + (f" ({last})" if last else ""))


class _Demo:
    def __init__(self, data_dir: str, writes: int, log_level: str = "WARNING") -> None:
        self.dir = data_dir
        self.log_level = log_level
        self.writes = writes
        self.c = render.console()
        self.cookie_file = ensure_cookie_file(os.path.join(data_dir, "cookie"))
        self.cookie = read_cookie_file(self.cookie_file)
        self.names = [f"n{i}@127.0.0.1:{free_port()}" for i in (1, 2, 3)]
        self.sup: Any = None
        self.pids_seen: set[int] = set()
        self.exits: list[tuple[str, str]] = []
        self.acked: dict[str, int] = {}
        self.t0 = time.monotonic()

    def say(self, step: str, text: str) -> None:
        self.c.print(f"[bold cyan]{step}[/] {text}")

    def note(self, text: str) -> None:
        self.c.print(f"   {text}", highlight=False)

    # ---- supervised node processes ------------------------------------------------
    def child_specs(self) -> list[Any]:
        from supervisors import ChildSpec
        self._log = open(os.path.join(self.dir, "nodes.log"), "a")
        specs = []
        for name in self.names:
            short = name.split("@")[0]
            cmd = [sys.executable, "-m", "raft_otp.system",
                   "--data-dir", os.path.join(self.dir, short), "--node", name,
                   "--cookie-file", self.cookie_file, "--log-level", self.log_level]
            specs.append(ChildSpec.process(short, cmd, stdout=subprocess.DEVNULL, stderr=self._log,
                                           shutdown=20.0))
        return specs

    def on_event(self, ev: Any) -> None:
        """Supervisor events (its control thread): how each node process ended."""
        if ev.kind in ("exited", "terminated"):
            rc = getattr(ev.ref, "returncode", None)
            reason = ev.reason if ev.kind == "exited" else (
                "exit status 0" if rc == 0
                else getattr(ev.ref, "reason", None) or f"exit status {rc}")
            self.exits.append((str(ev.child_id), str(reason)))

    def children(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.sup.tree()["children"]}

    def ping(self, name: str) -> bool:
        from raft_otp.node.admin import admin_call
        return admin_call(name, ["ping"], self.cookie, 1.0)[0] == "pong"

    # ---- writes and reads -------------------------------------------------------------
    def put_many(self, prefix: str, via: list[Any]) -> float:
        import raft_otp
        t = time.monotonic()
        for i in range(self.writes):
            key, value = f"{prefix}{i:02d}", i
            for attempt in range(20):
                try:
                    reply, _ = raft_otp.process_command(via[attempt % len(via)],
                                                        ["put", key, value], 5.0)
                except raft_otp.RaftError:  # not acknowledged: outcome unknown, retry the same put
                    continue
                if reply == ["ok"]:
                    self.acked[key] = value
                    break
            else:
                raise ConsoleError(f"demo: put {key} was never acknowledged")
        return time.monotonic() - t

    def leader_of(self, ids: list[Any], min_term: int = 0) -> Any:
        """``(leader, term)`` if one of ``ids`` leads in ``min_term`` or later, else None."""
        import raft_otp
        for sid in ids:
            try:
                ov = raft_otp.member_overview(sid, 0.5)
            except raft_otp.RaftError:  # its node is down or restarting
                continue
            if ov.get("role") == "leader" and int(ov.get("term") or 0) >= min_term:
                return sid, ov.get("term")
        return None

    # ---- the story ----------------------------------------------------------------
    def run(self) -> None:
        import raft_otp
        import supervisors
        from raft_otp.node import runtime as node_rt
        from raft_otp.console.admin_cmds import fetch_tree, status_view

        c = self.c
        c.print(Rule("[bold]raft-otp demo: a replicated key-value store that loses no write"))
        self.note(f"data dir {self.dir} (reset at every run); node logs in nodes.log there")

        self.say("1.", "Starting 3 node processes under a root supervisor in this process "
                 f"(pid {os.getpid()})")
        t = time.monotonic()
        sup = supervisors.Supervisor(self.child_specs(), strategy="one_for_one", intensity=3,
                                     period=30.0, id="nodes")
        sup.subscribe(self.on_event)
        self.sup = sup.start()
        for name in self.names:
            _wait(f"node {name} (see {self.dir}/nodes.log)", lambda: self.ping(name), 30.0)
        for cid, ch in self.children().items():
            self.pids_seen.add(ch["pid"])
            self.note(f"{self.names[int(cid[1:]) - 1]}  pid {ch['pid']}  ready")
        self.note(f"all 3 up in {time.monotonic() - t:.1f} s")
        client = self.client = f"demo@127.0.0.1:{free_port()}"
        node_rt.start_node(client, self.cookie)

        ids = [raft_otp.ServerId(CLUSTER, n) for n in self.names]
        self.say("2.", f"Creating the key-value cluster {CLUSTER!r}: one server on each node")
        t = time.monotonic()
        started, not_started = raft_otp.start_cluster("default", CLUSTER, KV, ids, timeout=30.0)
        if len(started) != 3:
            raise ConsoleError(
                f"demo: the cluster did not start after {time.monotonic() - t:.1f} s "
                f"(started {[str(s) for s in started]}, not started {[str(s) for s in not_started]}); "
                f"node logs in {self.dir}/nodes.log")
        leader, term = _wait("a leader", lambda: self.leader_of(ids), 10.0)
        self.note(f"leader {leader.name}@{leader.node} (term {term})")

        self.say("3.", f"Writing {self.writes} keys; each put returns once a majority has it "
                 "in its fsync'd WAL")
        took = self.put_many("a", ids)
        self.note(f"{len(self.acked)} puts acknowledged in {took:.2f} s")
        state, _ = raft_otp.consistent_query(ids[0], STATE, 5.0)
        same = sum(state.get(k) == v for k, v in self.acked.items())
        self.note(f"consistent_query reads back {same}/{len(self.acked)}")

        victim = self.names.index(leader.node)
        vid = f"n{victim + 1}"
        old_pid = self.children()[vid]["pid"]
        self.say("4.", f"Killing the leader's process {vid} (pid {old_pid}) with SIGKILL")
        t = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        survivors = [s for s in ids if s != leader]
        # The next leader has a higher term.  Usually a survivor wins; when the supervisor
        # restarts the killed node before the survivors' election timers fire, the restarted
        # server (whose log is complete) may win the election itself.  Both are correct Raft.
        new_leader, new_term = _wait("a new leader",
                                     lambda: self.leader_of(ids, min_term=term + 1), 20.0)
        how = ("a survivor took over" if new_leader != leader else
               f"the supervisor had already restarted {vid}, and its recovered server "
               "won the election")
        self.note(f"new leader {new_leader.name}@{new_leader.node} (term {new_term}) "
                  f"after {time.monotonic() - t:.2f} s: {how}")
        took = self.put_many("b", [new_leader] + survivors)
        self.note(f"{self.writes} more puts acknowledged by the new leader in {took:.2f} s")

        self.say("5.", f"The supervisor restarts {vid}; it recovers from its WAL and catches up")
        ch = _wait(f"the restart of {vid}",
                   lambda: (lambda x: x if x["restarts"] >= 1 and x["status"] == "running"
                            and x.get("pid") != old_pid else None)(self.children()[vid]), 20.0)
        self.pids_seen.add(ch["pid"])
        _wait(f"node {leader.node}", lambda: self.ping(leader.node), 30.0)
        _wait(f"{vid} to catch up",
              lambda: raft_otp.local_query(leader, STATE, 1.0)[0] == self.acked, 20.0)
        crash = next((r for cid, r in self.exits if cid == vid), "?")
        self.note(f"the supervisor saw {vid} exit ({crash}) and restarted it as pid {ch['pid']} "
                  f"(restarts {ch['restarts']})")
        self.note(f"{vid} recovered its server from its data dir and caught up: all "
                  f"{len(self.acked)} keys")

        self.say("6.", "Reading every acknowledged write back with consistent_query")
        state, by = raft_otp.consistent_query(ids[victim], STATE, 10.0)
        by = by or new_leader
        lost = sorted(k for k, v in self.acked.items() if state.get(k) != v)
        if lost:
            raise ConsoleError(f"demo: acknowledged writes lost: {lost}")
        self.note(f"[bold green]{len(self.acked)}/{len(self.acked)} acknowledged writes present: "
                  f"no write lost[/] (answered by leader {by.name}@{by.node})")

        self.say("7.", "The cluster, and the actor trees")
        c.print(render.render_status(status_view(new_leader.node, self.cookie, 5.0)))
        own = supervisors.tree_snapshot()
        own["roots"] = [r for r in own["roots"] if r.get("id") == "nodes"]
        c.print(render.render_tree(own, f"{client} (this demo process)"))
        c.print(render.render_tree(fetch_tree(new_leader.node, self.cookie, 5.0), new_leader.node))

    def keep_running(self) -> None:
        """Leave the cluster up for the user to observe, until Ctrl-C (or SIGTERM)."""
        import threading
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        cf = os.path.relpath(self.cookie_file)
        self.say("*", "The cluster keeps running (--keep-running). In another terminal, try:")
        self.note(f"raft-otp tree --node {self.client} --cookie-file {cf} --watch")
        self.note(f"raft-otp status --node {self.names[0]} --cookie-file {cf}")
        self.note(f"raft-otp kill --node {self.names[0]} log/wal --cookie-file {cf}")
        self.note(f"raft-otp command --node {self.names[1]} --cluster {CLUSTER} put k 1 "
                  f"--cookie-file {cf}")
        self.note("Ctrl-C here stops everything.")
        if not sys.stdout.isatty():  # a machine-readable line for scripts and tests
            print(f"KEEP-RUNNING {self.client} {self.cookie_file}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        """Stop every node process in order; a second Ctrl-C does not cut this short."""
        import threading
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self._stop()
            finally:
                signal.signal(signal.SIGINT, previous)
        else:
            self._stop()

    def _stop(self) -> None:
        from raft_otp.node import runtime as node_rt
        if self.sup is not None:
            self.say("8.", "Stopping: SIGTERM to each node in reverse start order "
                     "(servers stop, WAL syncs)")
            t = time.monotonic()
            try:
                running = [c for c in self.children().values() if c.get("pid")]
            except Exception:  # the supervisor is already gone
                running = []
            self.pids_seen.update(c["pid"] for c in running)
            first = len(self.exits)
            self.sup.stop(60.0)
            ends = ", ".join(f"{cid} {reason}" for cid, reason in self.exits[first:])
            if ends:
                self.note(f"in order: {ends}")
            left = [p for p in self.pids_seen if _alive(p)]
            if left:
                raise ConsoleError(f"demo: processes left behind: {left}")
            self.note(f"{len(running)} node processes stopped in {time.monotonic() - t:.1f} s; "
                      "none left behind")
        node_rt.stop_node()
        if getattr(self, "_log", None) is not None:
            self._log.close()


def _alive(pid: int) -> bool:
    try:
        import psutil  # type: ignore[import-untyped]
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def cmd_demo(args: Any) -> int:
    data_dir = prepare_data_dir(args.data_dir)
    if args.writes < 1:
        raise ConsoleError("--writes must be >= 1")
    demo = _Demo(data_dir, args.writes, args.log_level)
    ok = False
    try:
        demo.run()
        if args.keep_running:
            demo.keep_running()
        ok = True
    finally:
        try:
            demo.stop()
        except ConsoleError:
            if ok:
                raise
    demo.c.print(Rule(f"[bold green]demo done in {time.monotonic() - demo.t0:.1f} s"))
    return 0
