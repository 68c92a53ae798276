"""Goal: `raft-otp demo` tells its story (leader SIGKILLed, new leader, no write lost), exits 0,
leaves no process behind, and runs twice in a row on its default data dir."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import psutil
import pytest

from raft_otp.console.testing import cli_command

pytestmark = pytest.mark.processes


def _processes_using(path: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(path in part for part in p.info["cmdline"] or []):
                out.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def test_demo_twice_in_a_row(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFT_OTP_")}
    env.update(HOME=str(tmp_path / "home"), COLUMNS="160")
    data_dir = str(tmp_path / "raft_otp_demo_data")
    for run in range(2):
        r = subprocess.run([*cli_command(), "demo", "--writes", "10"], cwd=str(tmp_path), env=env,
                           capture_output=True, text=True, timeout=90)
        log = os.path.join(data_dir, "nodes.log")
        tail = open(log).read()[-4000:] if os.path.exists(log) else "(no nodes.log)"
        assert r.returncode == 0, r.stdout + r.stderr + "\n--- nodes.log tail ---\n" + tail
        out = r.stdout
        assert f"data dir {data_dir}" in out.replace("\n", " ")
        for needle in ("with SIGKILL", "new leader",
                       "20/20 acknowledged writes present: no write lost", "(restarts 1)",
                       "killed by SIGKILL", "n1 exit status 0", "os process", "WalActor",
                       "none left behind", "demo done"):
            assert needle in out, (run, needle, out)
        assert "Traceback" not in r.stderr
        assert _processes_using(data_dir) == []
    assert os.path.exists(os.path.join(data_dir, ".raft_otp_demo"))


def test_demo_refuses_a_foreign_dir(tmp_path: Any) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    r = subprocess.run([*cli_command(), "demo", "--data-dir", str(foreign)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "refusing to reset" in r.stderr and len(r.stderr.splitlines()) == 1
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_demo_keep_running_shows_os_process_children(tmp_path: Any) -> None:
    import json
    import signal
    import threading
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFT_OTP_")}
    env.update(HOME=str(tmp_path / "home"), COLUMNS="160")
    data_dir = str(tmp_path / "d")
    demo = subprocess.Popen([*cli_command(), "demo", "--writes", "3", "--keep-running",
                             "--data-dir", data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("KEEP-RUNNING"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "".join(lines)
        _, node, cookie_file = next(x for x in lines if x.startswith("KEEP-RUNNING")).split()
        r = subprocess.run([*cli_command(), "tree", "--node", node, "--cookie-file", cookie_file,
                            "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        roots = json.loads(r.stdout)["roots"]
        nodes_sup = next(x for x in roots if x["id"] == "nodes")
        procs = nodes_sup["children"]
        assert [p["id"] for p in procs] == ["n1", "n2", "n3"]
        for p in procs:
            assert p["impl"] == "process" and p["pid"] > 0 and p["rss_bytes"] > 0
            assert p["cpu_percent"] is not None and p["status"] == "running"
        assert sum(p["restarts"] for p in procs) == 1  # the killed leader
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(60) == 0
        reader.join(10)
        assert "none left behind" in "".join(lines)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
    assert _processes_using(data_dir) == []
