"""Goal: the public API is pinned and the library stays independent of raft_otp."""

from __future__ import annotations

import subprocess
import sys

import supervisors


def test_public_api_is_pinned():
    assert sorted(supervisors.__all__) == sorted([
        "Supervisor", "ChildSpec", "ProcessSpec", "OsProcess", "ChildInfo", "SupervisorEvent",
        "SupervisorError", "StartError", "NotFound", "AlreadyPresent", "AlreadyRunning",
        "StillRunning", "NotRunning", "RestartIntensityExceeded",
        "monitor", "demonitor", "link", "unlink", "Down", "Exit", "LinkedExit", "MonitorRef",
        "send_after", "cancel_timer", "stop_timer_service", "TimerRef", "TimerService",
        "registry", "tree_snapshot", "kill",
    ])
    assert all(hasattr(supervisors, name) for name in supervisors.__all__)


def test_never_imports_raft_otp():
    code = ("import sys, supervisors, supervisors.testing; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'raft_otp']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_child_spec_validation():
    import pytest

    with pytest.raises(ValueError):
        supervisors.ChildSpec(id="x", start=lambda: None, restart="sometimes")  # type: ignore
    with pytest.raises(ValueError):
        supervisors.ChildSpec(id="x", start=lambda: None, shutdown=-1)
    with pytest.raises(ValueError):
        supervisors.ProcessSpec()
    with pytest.raises(ValueError):
        supervisors.Supervisor([], strategy="one_for_some")  # type: ignore[arg-type]
    sup_spec = supervisors.ChildSpec.supervisor("s")
    assert sup_spec.shutdown == "infinity" and sup_spec.type == "supervisor"
    assert supervisors.ChildSpec(id="w", start=lambda: None).shutdown == 5.0
