"""Entry point of a node process under the fault harness and the process tests.

``python -m raft_otp.testing.nemesis_node --data-dir D --node n1@127.0.0.1:P ...
[--mutation NAME[,NAME...]]`` takes the arguments of ``python -m raft_otp.system``
and runs the same node, with two additions for testing:

- ``--mutation``: the node's system applies these broken Raft rules
  (``raft_otp.testing.mutations``), handed to it through ``run_node(rules=...)``;
  the production entry point has no such option.  The system logs a loud WARNING.
- the node exits when the harness that started it is gone (its parent process
  changes), so a killed harness leaves no node behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(3)


def split_mutation(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the ``--mutation`` value, the other arguments for the node's own parser)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--mutation", default=None)
    known, rest = p.parse_known_args(argv)
    return known.mutation, rest


def main(argv: list[str] | None = None) -> int:
    from raft_otp.errors import BadArgument
    from raft_otp.system.node_main import main as node_main
    from raft_otp.testing.mutations import rules_for

    mutation, rest = split_mutation(sys.argv[1:] if argv is None else argv)
    try:
        rules = rules_for(mutation)
    except BadArgument as exc:
        sys.stderr.write(f"python -m raft_otp.testing.nemesis_node: error: --mutation: {exc}\n")
        return 2
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="nemesis-parent-watch").start()
    return node_main(rest, rules=rules)


if __name__ == "__main__":
    sys.exit(main())
