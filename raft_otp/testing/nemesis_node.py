"""Entry point of a node process under the fault harness.

``python -m raft_otp.testing.nemesis_node --data-dir D --node n1@127.0.0.1:P ...``
takes exactly the arguments of ``python -m raft_otp.system`` and runs the same
node, with two additions for fault testing:

- ``RAFT_OTP_MUTATION=<flag>[,<flag>...]`` (fields of ``raft_otp.core.config.Mutations``)
  switches that safety rule off in every server of the node, so the harness can
  show that it detects the bug.  The system layer has no hook for this yet, so
  the flag is applied here by wrapping ``raft_otp.core.server.init_server``
  (the server actor looks it up at each server start);
- the node exits when the harness that started it is gone (its parent process
  changes), so a killed harness leaves no node behind.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from typing import Any

MUTATION_ENV = "RAFT_OTP_MUTATION"


def install_mutation(name: str) -> None:
    """Make every server started in this process run with mutation ``name`` on
    (several flags: comma-separated)."""
    from raft_otp.core import server as core_server
    from raft_otp.core.config import Mutations

    flags = {f.name for f in dataclasses.fields(Mutations)}
    names = [n.strip() for n in name.split(",") if n.strip()]
    bad = [n for n in names if n not in flags]
    if bad or not names:
        raise SystemExit(f"unknown mutation {bad or name!r}; known: {sorted(flags)}")
    mutations = Mutations(**{n: True for n in names})
    original = core_server.init_server
    if getattr(original, "_nemesis_mutation", None) == name:
        return

    def init_server(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        return original(dataclasses.replace(cfg, mutations=mutations), *args, **kwargs)

    init_server._nemesis_mutation = name  # type: ignore[attr-defined]
    core_server.init_server = init_server  # type: ignore[assignment]
    print(f"nemesis_node: mutation {name} installed", file=sys.stderr, flush=True)


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    name = os.environ.get(MUTATION_ENV)
    if name:
        install_mutation(name)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="nemesis-parent-watch").start()
    from raft_otp.system.node_main import main as node_main
    return node_main(argv)


if __name__ == "__main__":
    sys.exit(main())
