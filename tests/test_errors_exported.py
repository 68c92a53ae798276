"""Goal: every exception a caller of raft_otp can meet is a class of ``raft_otp.errors``;
exception classes defined elsewhere are internal ones that never reach a caller."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import raft_otp
import raft_otp.errors

# Defined outside raft_otp.errors on purpose: each is caught inside the library.
INTERNAL = {
    "raft_otp.console.common.ConsoleError": "the CLI prints it as one line and exits non-zero",
    "raft_otp.core.machine_calls.InvalidEffect": "becomes the command's MachineError",
    "raft_otp.log.wal.WalCrashed": "crashes the WAL actor on purpose; its supervisor restarts it",
    "raft_otp.node.envelope.BadFrame": "a refused frame, counted by the transport",
    "raft_otp.testing.checks.Violation": "the simulator's invariant failure (testing only)",
    "raft_otp.testing.powercut.PowerOff": "the power-cut harness stops its own workload (testing only)",
}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(raft_otp.__path__, "raft_otp."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_raft_error_lives_in_raft_otp_errors() -> None:
    classes = _exception_classes()
    stray = {name for name, cls in classes.items()
             if issubclass(cls, raft_otp.errors.RaftError) and cls.__module__ != "raft_otp.errors"}
    assert not stray, f"define these in raft_otp.errors: {sorted(stray)}"
    others = {name for name, cls in classes.items() if cls.__module__ != "raft_otp.errors"}
    assert others == set(INTERNAL), (
        "an exception class outside raft_otp.errors must be internal (caught inside the library) "
        f"and listed here with why: {sorted(others ^ set(INTERNAL))}")


def test_the_issue_17_errors_are_exported() -> None:
    for name in ("MachineError", "QueryError", "DataDirLocked", "AlreadyStarted", "CommandTooLarge",
                 "ConfigError", "WireTypeError", "RemoteError"):
        cls = getattr(raft_otp.errors, name)
        assert issubclass(cls, raft_otp.errors.RaftError), name
