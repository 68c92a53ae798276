"""Goal: the core stays pure — no module of raft_otp.core imports I/O, threads, clocks or global randomness."""

from __future__ import annotations

import ast
import pathlib

import raft_otp.core

FORBIDDEN = {"zmq", "pykka", "threading", "time", "random", "os", "socket", "asyncio", "subprocess",
             "multiprocessing", "logging", "datetime", "selectors", "signal", "io", "pathlib", "shutil"}
ALLOWED_FROM_RANDOM = set()  # `import random` is allowed only for typing random.Random (see below)
CORE = pathlib.Path(raft_otp.core.__file__).parent


def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def test_core_modules_import_nothing_impure() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for name, line in _imports(path):
            top = name.split(".")[0]
            if top == "random" and path.name in ("server.py", "state.py") and name == "random":
                continue  # only for the type random.Random of the injected generator
            if top in FORBIDDEN or (top == "raft_otp" and not name.startswith(("raft_otp.core", "raft_otp.errors"))):
                offenders.append(f"{path.name}:{line} imports {name}")
    assert not offenders, offenders


def test_random_is_only_used_as_a_type() -> None:
    for name in ("server.py", "state.py"):
        text = (CORE / name).read_text()
        uses = [line for line in text.splitlines() if "random." in line and "random.Random" not in line]
        assert not uses, (name, uses)
