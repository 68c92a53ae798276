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
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert f"data dir {data_dir}" in out.replace("\n", " ")
        for needle in ("with SIGKILL", "new leader", "20/20 acknowledged writes present: no write lost",
                       "(restarts 1)", "killed by SIGKILL", "n1 exit status 0", "os process", "WalActor", "none left behind", "demo done"):
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
