"""Goal: OS-process children restart when killed, stop by SIGTERM then SIGKILL, never orphan."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from supervisors import ChildSpec, Supervisor, monitor
from supervisors.testing import Recorder, sleeper, stop_all_roots

pytestmark = pytest.mark.processes


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []


def gone(pid: int, timeout: float = 10.0) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


def test_command_child_killed_with_sigkill_is_restarted():
    sup = Supervisor([ChildSpec.process("p", ["sleep", "60"])], intensity=3).start()
    rec = Recorder(sup)
    old = sup.child_ref("p")
    os.kill(old.pid, signal.SIGKILL)
    assert rec.wait("exited", "p").reason == "killed by SIGKILL"
    new = rec.wait("started", "p").ref
    assert new.pid != old.pid and psutil.pid_exists(new.pid)
    assert sup.tree()["children"][0]["restarts"] == 1
    sup.stop(10)
    assert gone(new.pid)


def test_nonzero_exit_is_a_crash_and_zero_exit_is_normal_for_transient():
    sup = Supervisor([ChildSpec.process("f", [sys.executable, "-c", "raise SystemExit(3)"],
                                        restart="transient"),
                      ChildSpec.process("ok", ["true"], restart="transient")],
                     intensity=100)
    rec = Recorder(sup)  # subscribed before start: 'ok' may exit at once
    sup.start()
    assert rec.wait("exited", "f").reason == "exit status 3"
    rec.wait("started", "f")  # restarted
    # 'ok' exited 0: its exit is normal and it stays stopped
    assert rec.wait("exited", "ok").reason == "normal"
    sup.terminate_child("f")
    kids = {k.id: k for k in sup.which_children()}
    assert kids["ok"].status == "stopped" and kids["ok"].ref is None


def wait_ready(fifo_fd: int, timeout: float = 10.0) -> bytes:
    """Block until the first child writes to the FIFO ``fifo_fd`` (opened
    O_RDONLY|O_NONBLOCK before it started); TimeoutError if it does not in ``timeout``
    s.  One use per FIFO: after that writer closes, the FIFO reads EOF at once."""
    readable, _, _ = select.select([fifo_fd], [], [], timeout)
    if not readable:
        raise TimeoutError(f"no child signalled ready within {timeout} s")
    return os.read(fifo_fd, 64)


def test_python_target_child_is_restarted_after_sigkill(tmp_path):
    # A Python target's pid is known as soon as it is forked, but its command line is
    # the interpreter's only once the exec is done (mid-exec /proc/<pid>/cmdline reads
    # empty): read it after the target itself says it runs (sleeper writes the FIFO).
    ready = str(tmp_path / "ready")
    os.mkfifo(ready)
    fifo = os.open(ready, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists: the child's open won't block
    try:
        sup = Supervisor([ChildSpec.process("py", target=sleeper, args=(60.0, ready))],
                         intensity=3).start()
        rec = Recorder(sup)
        old = sup.child_ref("py")
        assert wait_ready(fifo) == b"ready"
        cmdline = psutil.Process(old.pid).cmdline()
        assert cmdline[0] == sys.executable and "spawn_main" in " ".join(cmdline), cmdline
        os.kill(old.pid, signal.SIGKILL)
        assert rec.wait("exited", "py").reason == "killed by SIGKILL"
        new = rec.wait("started", "py").ref
        assert new.pid != old.pid
        sup.stop(10)
        assert gone(new.pid)
    finally:
        os.close(fifo)


def test_shutdown_sends_sigterm_then_sigkill_after_the_timeout():
    code = ("import signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    sup = Supervisor([ChildSpec.process("stubborn", [sys.executable, "-c", code], shutdown=0.3,
                                        stdout=subprocess.PIPE),
                      ChildSpec.process("polite", ["sleep", "60"])]).start()
    stubborn, polite = sup.child_ref("stubborn"), sup.child_ref("polite")
    assert stubborn._popen.stdout.readline().strip() == b"ready"
    reasons = {}
    monitor(stubborn, lambda d: reasons.__setitem__("stubborn", d.reason))
    monitor(polite, lambda d: reasons.__setitem__("polite", d.reason))
    assert sup.stop(10)
    assert reasons == {"stubborn": "killed by SIGKILL", "polite": "killed by SIGTERM"}
    stubborn._popen.stdout.close()


PARENT = textwrap.dedent("""
    import sys, time
    from supervisors import ChildSpec, Supervisor
    from supervisors.testing import sleeper
    sup = Supervisor([ChildSpec.process("cmd", ["sleep", "60"]),
                      ChildSpec.process("py", target=sleeper, args=(60.0,))]).start()
    print(sup.child_ref("cmd").pid, sup.child_ref("py").pid, flush=True)
    time.sleep(60)
""")


def test_children_die_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        line = parent.stdout.readline()
        pids = [int(x) for x in line.split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        parent.kill()
        parent.wait(10)
        assert all(gone(p) for p in pids)
    finally:
        parent.kill()
        parent.wait(10)
        parent.stdout.close()


def test_python_target_gets_args_env_and_cwd(tmp_path):
    from supervisors.testing import write_env

    sup = Supervisor([ChildSpec.process("w", target=write_env, args=("GREETING", "out.txt"),
                                        env={"GREETING": "hello"}, cwd=str(tmp_path),
                                        restart="transient")])
    rec = Recorder(sup)
    sup.start()
    assert rec.wait("exited", "w").reason == "normal"
    assert (tmp_path / "out.txt").read_text() == "hello"


def test_sofo_process_template_appends_args_and_die_with_parent_can_be_off():
    sup = Supervisor([ChildSpec.process("s", ["sleep"], die_with_parent=False)],
                     strategy="simple_one_for_one").start()
    p = sup.start_child(60)
    assert psutil.Process(p.pid).cmdline() == ["sleep", "60"]
    sup.terminate_child(p)
    assert p.returncode == -signal.SIGTERM and sup.which_children() == []
