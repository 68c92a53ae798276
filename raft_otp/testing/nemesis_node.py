"""Entry point of a node process under the fault harness.

``python -m raft_otp.testing.nemesis_node --data-dir D --node n1@127.0.0.1:P ...``
takes exactly the arguments of ``python -m raft_otp.system`` and runs the same
node.  Mutations need nothing here: ``RAFT_OTP_MUTATION=<flag>[,<flag>...]``
(fields of ``raft_otp.core.config.Mutations``) is honoured by the system layer
itself (``SystemConfig.mutations``, ``--mutation``), which passes the flags into
every server's ``ServerConfig`` and logs a loud WARNING at node start.

The one addition: the node exits when the harness that started it is gone (its
parent process changes), so a killed harness leaves no node behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time

MUTATION_ENV = "RAFT_OTP_MUTATION"  # read by raft_otp.system.node_main


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="nemesis-parent-watch").start()
    from raft_otp.system.node_main import main as node_main
    return node_main(argv)


if __name__ == "__main__":
    sys.exit(main())
