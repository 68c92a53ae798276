"""``raft-otp``: the command line (argparse).  Every failure is one line on stderr
and a non-zero exit status (1: the command failed, or did not do all it was asked,
2: bad arguments); set ``RAFT_OTP_DEBUG=1`` to see the traceback of an unexpected
error.  An error of the API is printed as its class and message
(``raft-otp: error: MachineError: ...``).  A command that did part of its work
(``cluster delete`` with a member's node down, ``cluster remove-member`` whose
removal committed but whose data could not be deleted) says on that line what was
done and what was not, and with ``--json`` still prints what was done on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn, Sequence

from raft_otp.console.common import ConsoleError, check_node_name, client_cookie

__all__ = ["main", "build_parser"]

PROG = "raft-otp"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _node_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--node", "-n", required=required, metavar="NAME@HOST:PORT",
                   help="the node to ask, e.g. n1@127.0.0.1:7001")


def _client_args(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument("--cookie-file", help="the shared secret (default: $RAFT_OTP_COOKIE_FILE, "
                   "$RAFT_OTP_COOKIE, ~/.raft_otp_cookie)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    _security_args(p)
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transport-security", choices=["mac", "curve"],
                   default=os.environ.get("RAFT_OTP_TRANSPORT_SECURITY") or "mac",
                   help="the nodes' transport_security (default: $RAFT_OTP_TRANSPORT_SECURITY, "
                   "else mac)")
    p.add_argument("--key-file", default=os.environ.get("RAFT_OTP_KEY_FILE"),
                   help="curve: this client's secret key, created 0600 if absent (default: "
                   "$RAFT_OTP_KEY_FILE, else ~/.raft_otp_key); its public key must be in "
                   "the nodes' allowed_keys files")
    p.add_argument("--allowed-keys", default=os.environ.get("RAFT_OTP_ALLOWED_KEYS"),
                   help="curve: the 'NODE PUBLIC_KEY' file giving the nodes' keys (default: "
                   "$RAFT_OTP_ALLOWED_KEYS, else ~/.raft_otp_allowed_keys)")


def _set_client_security(args: Any) -> None:
    """The client's transport security, for every node and admin client it starts."""
    from raft_otp.node import security
    if args.transport_security != "curve":
        security.set_default(security.Security("mac"))
        return
    home = os.path.expanduser("~")
    security.set_default(security.Security(
        "curve", args.key_file or os.path.join(home, ".raft_otp_key"),
        args.allowed_keys or os.path.join(home, ".raft_otp_allowed_keys")))


def _api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default="default", help="system name (default: default)")
    p.add_argument("--client-host", default="127.0.0.1",
                   help="a label in this CLI's client node name (it binds no port: the "
                        "nodes answer over the connections it opens); default 127.0.0.1")


def _log_level(text: str) -> str:
    from raft_otp.errors import BadArgument
    from raft_otp.system.logging_setup import check_level
    try:
        return check_level(text)
    except BadArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _metrics_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535 (0: any free port), "
                                         f"got {text!r}")
    return port


def _version() -> str:
    """``raft_otp.__version__``, whose one source is ``raft_otp/_version.py``."""
    from raft_otp._version import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run raft_otp nodes, watch their supervision trees, "
                "administer clusters.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("start", help="run a node with its default system in the foreground")
    s.add_argument("--data-dir", required=True, help="the node's data directory")
    s.add_argument("--node", "-n", metavar="NAME@HOST:PORT",
                   help="node name (default: the config's node, else the data dir's, else "
                   "n1@127.0.0.1:7001)")
    s.add_argument("--cookie-file", help="shared secret (default: the config's cookie_file, "
                   "else DATA_DIR/cookie if present, else ~/.raft_otp_cookie, created 0600 "
                   "if absent)")
    s.add_argument("--config", metavar="FILE",
                   help="config file (.toml or .json): system keys (SystemConfig) and the "
                   "node's (node, cookie_file, log_level, log_format, metrics_port, key_file, "
                   "allowed_keys); a flag wins over the file")
    s.add_argument("--system", default="default", help="system name (default: default)")
    s.add_argument("--transport-security", choices=["mac", "curve"],
                   help="overrides the config's transport_security (curve: keys in "
                   "DATA_DIR/node.key and DATA_DIR/allowed_keys)")
    s.add_argument("--log-level", type=_log_level, default=None,
                   help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: the config's "
                   "log_level, else WARNING)")
    s.add_argument("--log-format", choices=["text", "json"], default=None,
                   help="json: one JSON object per line on stderr (default: the config's "
                   "log_format, else text; both keep a record on one line)")
    s.add_argument("--metrics-port", type=_metrics_port, default=None, metavar="PORT",
                   help="serve Prometheus /metrics on the node's host at PORT, 0 for a free "
                   "one (default: the config's metrics_port, else none)")

    d = sub.add_parser("demo",
                       help="a supervised local 3-node cluster; kill its leader; lose nothing")
    d.add_argument("--data-dir", default=os.path.join(".", "raft_otp_demo_data"),
                   help="demo data dir, reset at every run (default ./raft_otp_demo_data)")
    d.add_argument("--writes", type=int, default=20,
                   help="writes before and after the kill (default 20)")
    d.add_argument("--log-level", default="WARNING", help="node processes' log level (nodes.log)")
    d.add_argument("--keep-running", action="store_true",
                   help="leave the cluster up to observe with tree/status/kill until Ctrl-C")

    t = sub.add_parser("tree", help="the supervision tree of a running node")
    _node_arg(t)
    _client_args(t)
    t.add_argument("--watch", "-w", action="store_true",
                   help="redraw live until Ctrl-C (with --json: one JSON document per line)")
    t.add_argument("--interval", type=float, default=1.0,
                   help="--watch refresh in seconds (default 1)")

    st = sub.add_parser("status",
                        help="systems and clusters of a node: members, roles, terms, indexes")
    _node_arg(st)
    _client_args(st)
    st.add_argument("--local", action="store_true", help="do not ask the other members' nodes")
    st.add_argument("--watch", "-w", action="store_true", help="redraw live until Ctrl-C")
    st.add_argument("--interval", type=float, default=1.0,
                    help="--watch refresh in seconds (default 1)")

    k = sub.add_parser("kill", help="crash one actor on purpose (its supervisor restarts it)")
    _node_arg(k)
    k.add_argument("path", help="registered name (e.g. raft_otp.wal.default, a server name) or "
                   "tree path of ids (e.g. log/wal, servers/kv1/server)")
    _client_args(k)
    k.add_argument("--no-wait", action="store_true", help="do not wait for the restart")
    k.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for the restart (default 10)")

    c = sub.add_parser("cluster",
                       help="start, delete, change membership or leadership of a cluster")
    csub = c.add_subparsers(dest="cluster_op", required=True, metavar="OP", parser_class=_Parser)
    cs = csub.add_parser("start", help="start a new cluster with one server on each member node")
    cs.add_argument("name", help="the new cluster's name")
    cs.add_argument("--members", "-m", nargs="+", required=True, metavar="NODE",
                    help="member nodes (space or comma separated)")
    cs.add_argument("--machine", default="kv", help="kv, counter or module:Class (default kv)")
    cs.add_argument("--machine-config", default="{}", help="JSON machine config (default {})")
    cs.add_argument("--server-name", help="server name on each node (default: the cluster name)")
    for name, helptext in (("delete", "delete every member and its data"),
                           ("add-member", "start a server on NODE and add it to the cluster"),
                           ("remove-member", "remove NODE's server from the cluster"),
                           ("transfer-leadership", "make NODE's server the leader")):
        cp = csub.add_parser(name, help=helptext)
        cp.add_argument("name", help="cluster name")
        _node_arg(cp)
        if name in ("add-member", "remove-member"):
            cp.add_argument("member", metavar="NODE", help="the member's node")
        if name == "transfer-leadership":
            cp.add_argument("target", metavar="NODE", help="the new leader's node")
        if name == "add-member":
            cp.add_argument("--kind", default="voter", choices=["voter", "promotable", "non_voter"],
                            help="voter, promotable (a non-voter promoted once caught up) "
                            "or non_voter (default voter)")
            cp.add_argument("--machine-config", default="{}",
                            help="JSON machine config (default {})")
        if name == "remove-member":
            cp.add_argument("--keep-data", action="store_true", help="stop nothing, delete nothing")
        if name == "delete":
            cp.add_argument("--members", "-m", nargs="+", metavar="NODE",
                            help="delete the cluster's server on these nodes (default: every "
                            "member known to --node's server)")
    for cp in csub.choices.values():
        _client_args(cp)
        _api_args(cp)

    cm = sub.add_parser("command", help="replicate one command, e.g. `put k 1`, `incr`")
    _node_arg(cm)
    cm.add_argument("--cluster", "-c", required=True, help="the cluster to send it to")
    cm.add_argument("words", nargs="+", metavar="WORD",
                    help="the command; each word is JSON if it parses "
                    "(put k 1 -> [\"put\",\"k\",1])")
    _client_args(cm)
    _api_args(cm)

    sub.add_parser("version", help="print raft_otp's version (also raft-otp --version)")

    q = sub.add_parser("query", help="read a cluster's state (consistent by default)")
    _node_arg(q)
    q.add_argument("--cluster", "-c", required=True, help="the cluster to read")
    q.add_argument("--key", "-k", help="one key of a kv cluster (default: the whole state)")
    q.add_argument("--kind", default="consistent", choices=["consistent", "leader", "local"],
                   help="consistent (the leader, after a heartbeat round confirms it leads), "
                   "leader (the leader's state, no round) or local (--node's member, may be "
                   "stale); default consistent")
    _client_args(q)
    _api_args(q)

    b = sub.add_parser("backup", help="write a cluster's machine state, consistent at one "
                       "committed index, to a checksummed file")
    _node_arg(b)
    b.add_argument("--cluster", "-c", required=True, help="the cluster to back up")
    b.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="the backup file (written to a temporary file, synced, renamed)")
    _client_args(b)
    _api_args(b)

    r = sub.add_parser("restore", help="start a new cluster from a backup file")
    r.add_argument("--in", "-i", dest="input", required=True, metavar="FILE",
                   help="the backup file (a damaged one is refused: CorruptFile)")
    r.add_argument("--cluster", "-c", required=True, help="the new cluster's name")
    r.add_argument("--members", "-m", nargs="+", required=True, metavar="NODE",
                   help="member nodes (space or comma separated)")
    r.add_argument("--server-name", help="server name on each node (default: the cluster name)")
    r.add_argument("--machine-config", default=None,
                   help="JSON machine config (default: the one the backup recorded, else {})")
    _client_args(r)
    _api_args(r)
    for name, parser in sub.choices.items():
        _describe(name, parser)
    for name, parser in csub.choices.items():
        _describe(f"cluster {name}", parser)
    return p


# Each subcommand's one-line description and its examples (shown by `raft-otp CMD --help`;
# tests/test_cli_help.py checks that every subcommand has them and that each example parses).
COMMAND_DOCS: dict[str, tuple[str, tuple[str, ...]]] = {
    "start": ("Run a node with its default system in the foreground until SIGTERM or Ctrl-C.",
              ("raft-otp start --data-dir /var/lib/raft_otp/n1 --node n1@10.0.0.1:7001",
               "raft-otp start --data-dir /var/lib/raft_otp/n1 --config node.toml")),
    "demo": ("Start a supervised local 3-node cluster, kill its leader and show nothing "
             "acknowledged was lost.",
             ("raft-otp demo", "raft-otp demo --writes 100 --keep-running")),
    "tree": ("Show the live supervision tree of a running node.",
             ("raft-otp tree --node n1@127.0.0.1:7001",
              "raft-otp tree --node n1@127.0.0.1:7001 --watch")),
    "status": ("Show a node's systems and clusters: members, roles, terms and indexes.",
               ("raft-otp status --node n1@127.0.0.1:7001",
                "raft-otp status --node n1@127.0.0.1:7001 --json --local")),
    "kill": ("Crash one actor on purpose and wait for its supervisor to restart it (a drill).",
             ("raft-otp kill --node n1@127.0.0.1:7001 log/wal",
              "raft-otp kill --node n1@127.0.0.1:7001 raft_otp.wal.default --no-wait")),
    "cluster": ("Administer a cluster: start, delete, change its membership or leadership.",
                ("raft-otp cluster start shop -m n1@127.0.0.1:7001 n2@127.0.0.1:7002 "
                 "n3@127.0.0.1:7003",
                 "raft-otp cluster add-member shop --node n1@127.0.0.1:7001 "
                 "n4@127.0.0.1:7004")),
    "cluster start": ("Start a new cluster with one server on each member node.",
                      ("raft-otp cluster start shop -m n1@127.0.0.1:7001 n2@127.0.0.1:7002 "
                       "n3@127.0.0.1:7003",
                       "raft-otp cluster start locks --machine raft_otp.machines.lock:Lock "
                       "-m n1@127.0.0.1:7001,n2@127.0.0.1:7002,n3@127.0.0.1:7003")),
    "cluster delete": ("Delete every member of a cluster and its data.",
                       ("raft-otp cluster delete shop --node n1@127.0.0.1:7001",)),
    "cluster add-member": ("Start a server on a node and add it to the cluster (the node is "
                           "asked first: a typo adds no phantom voter).",
                           ("raft-otp cluster add-member shop --node n1@127.0.0.1:7001 "
                            "n4@127.0.0.1:7004",
                            "raft-otp cluster add-member shop --node n1@127.0.0.1:7001 "
                            "n4@127.0.0.1:7004 --kind promotable")),
    "cluster remove-member": ("Remove a node's server from the cluster, then stop it and "
                              "delete its data.",
                              ("raft-otp cluster remove-member shop --node n1@127.0.0.1:7001 "
                               "n4@127.0.0.1:7004",)),
    "cluster transfer-leadership": ("Make a node's server the cluster's leader.",
                                    ("raft-otp cluster transfer-leadership shop --node "
                                     "n1@127.0.0.1:7001 n2@127.0.0.1:7002",)),
    "command": ("Replicate one command through the cluster's leader and print its reply.",
                ("raft-otp command --node n1@127.0.0.1:7001 --cluster shop put apples 3",
                 "raft-otp command --node n1@127.0.0.1:7001 -c counter incr")),
    "query": ("Read a cluster's state (consistent by default) or one key of a kv cluster.",
              ("raft-otp query --node n1@127.0.0.1:7001 --cluster shop --key apples",
               "raft-otp query --node n2@127.0.0.1:7002 -c shop --kind local")),
    "version": ("Print the installed raft_otp version.", ("raft-otp version",)),
    "backup": ("Write a cluster's machine state, consistent at one committed index, to a "
               "checksummed file.",
               ("raft-otp backup --node n1@127.0.0.1:7001 --cluster shop --out shop.bak",)),
    "restore": ("Start a new cluster from a backup file.",
                ("raft-otp restore --in shop.bak --cluster shop2 -m n1@127.0.0.1:7001 "
                 "n2@127.0.0.1:7002 n3@127.0.0.1:7003",)),
}


def _describe(name: str, parser: argparse.ArgumentParser) -> None:
    """Give ``raft-otp NAME --help`` its description and examples (from ``COMMAND_DOCS``)."""
    doc = COMMAND_DOCS.get(name)
    if doc is None:
        return  # tests/test_cli_help.py fails on a subcommand without docs
    description, examples = doc
    parser.description = description
    parser.epilog = "example" + ("s" if len(examples) > 1 else "") + ":\n" + \
        "\n".join(f"  {e}" for e in examples)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _run(args: Any) -> int:
    if args.cmd == "start":
        from raft_otp.console.node_cmd import cmd_start
        return cmd_start(args)
    if args.cmd == "demo":
        from raft_otp.console.demo import cmd_demo
        return cmd_demo(args)
    if args.cmd == "version":
        print(f"{PROG} {_version()}")
        return 0
    if getattr(args, "node", None):
        check_node_name(args.node)
    cookie = client_cookie(args.cookie_file)
    _set_client_security(args)
    if args.cmd in ("backup", "restore"):
        from raft_otp.console import backup_cmds
        return {"backup": backup_cmds.cmd_backup,
                "restore": backup_cmds.cmd_restore}[args.cmd](args, cookie)
    if args.cmd in ("tree", "status", "kill"):
        from raft_otp.console import admin_cmds
        return {"tree": admin_cmds.cmd_tree, "status": admin_cmds.cmd_status,
                "kill": admin_cmds.cmd_kill}[args.cmd](args, cookie)
    from raft_otp.console import cluster_cmds
    return {"cluster": cluster_cmds.cmd_cluster, "command": cluster_cmds.cmd_command,
            "query": cluster_cmds.cmd_query}[args.cmd](args, cookie)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for opt in ("timeout", "interval"):
        if getattr(args, opt, 1.0) <= 0:
            sys.stderr.write(f"{PROG}: error: --{opt} must be > 0\n")
            return 2
    try:
        return _run(args)
    except ConsoleError as exc:
        _error_line(str(exc))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for the user, unless asked
        if os.environ.get("RAFT_OTP_DEBUG"):
            raise
        _error_line(f"{type(exc).__name__}: {exc}")
        return 1


def _error_line(message: str) -> None:
    """One line, whatever the message holds (a machine's exception may span several)."""
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")


if __name__ == "__main__":
    sys.exit(main())
