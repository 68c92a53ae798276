"""``raft-otp backup`` and ``raft-otp restore``: a cluster's machine state to a file and
back into a new cluster (``raft_otp.system.backup`` says how and why it is consistent).

Both run from a temporary client node, as the cluster commands do.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from raft_otp.console.common import ConsoleError, client_node

__all__ = ["cmd_backup", "cmd_restore"]


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def cmd_backup(args: Any, cookie: str) -> int:
    """Back up ``--cluster``'s state through ``--node``'s server to ``--out``."""
    from raft_otp import ServerId
    from raft_otp.console.cluster_cmds import find_server
    from raft_otp.errors import RaftError
    from raft_otp.system.backup import backup

    sname, _sv = find_server(args.node, args.cluster, cookie, args.timeout, args.system)
    with client_node(cookie, args.client_host):
        try:
            info = backup(ServerId(sname, args.node), args.out, timeout=max(args.timeout, 10.0))
        except (RaftError, OSError) as exc:
            raise ConsoleError(_describe(exc)) from None
    out = {"file": args.out, **info.as_dict()}
    if args.json:
        sys.stdout.write(json.dumps(out, sort_keys=True, default=str) + "\n")
    else:
        print(f"cluster {info.cluster} backed up to {args.out}: index {info.index}, term "
              f"{info.term}, machine {info.machine}, {info.body_bytes} bytes of state, sha256 "
              f"{info.body_sha256[:16]}…")
    return 0


def cmd_restore(args: Any, cookie: str) -> int:
    """Start cluster ``--cluster`` on ``--members`` from the backup ``--in``."""
    from raft_otp import ServerId
    from raft_otp.console.cluster_cmds import parse_json
    from raft_otp.errors import RaftError
    from raft_otp.system.backup import read_backup, restore

    members = [m for part in args.members for m in part.split(",") if m]
    if not members:
        raise ConsoleError("restore needs --members NODE [NODE ...]")
    try:
        info, _state = read_backup(args.input)  # a damaged file: refused before any node
    except (RaftError, OSError) as exc:
        raise ConsoleError(_describe(exc)) from None
    config = parse_json(args.machine_config, "--machine-config") if args.machine_config else None
    ids = [ServerId(args.server_name or args.cluster, m) for m in members]
    with client_node(cookie, args.client_host):
        try:
            started, not_started = restore(args.input, args.cluster, ids, system=args.system,
                                           machine_config=config, timeout=max(args.timeout, 10.0))
        except RaftError as exc:
            raise ConsoleError(_describe(exc)) from None
    out = {"cluster": args.cluster, "from": info.as_dict(), "started": [list(s) for s in started],
           "not_started": [list(s) for s in not_started]}
    if args.json:
        sys.stdout.write(json.dumps(out, sort_keys=True, default=str) + "\n")
    else:
        print(f"cluster {args.cluster} restored from {args.input} (cluster {info.cluster} at "
              f"index {info.index}) on {len(started)} member(s)")
    if not_started:
        raise ConsoleError(f"not started on: {', '.join(f'{s[0]}@{s[1]}' for s in not_started)}")
    return 0
