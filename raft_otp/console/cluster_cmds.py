"""``cluster start|delete|add-member|remove-member|transfer-leadership``, ``command``, ``query``.

These run the public API from a temporary client node (``raft-otp-cli-PID@host:PORT``,
a free port) rather than through new admin request kinds: the API already follows
leader redirects, waits out elections, validates machines and runs the membership
protocol, and it speaks the cluster's own wire protocol, so the console needs no
second path into the servers.  The admin endpoint is still asked first, to resolve
a cluster's server on a node and to turn an unreachable node or a wrong cookie
into one clear line.  The cost: the nodes must be able to reach the CLI's
endpoint (``--client-host``, default 127.0.0.1).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from raft_otp.console.common import ConsoleError, admin, check_node_name, client_node
from raft_otp.errors import RaftError

__all__ = ["MACHINES", "machine_path", "parse_words", "find_server", "cmd_cluster",
           "cmd_command", "cmd_query"]

MACHINES = {
    "kv": "raft_otp.machines.kv:KeyValue",
    "counter": "raft_otp.machines.counter:Counter",
}
QUERIES = "raft_otp.system.queries"


def machine_path(name: str) -> str:
    if name in MACHINES:
        return MACHINES[name]
    if ":" in name:
        return name
    raise ConsoleError(f"unknown machine {name!r}: use {', '.join(MACHINES)} or module:Class")


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ConsoleError(f"{what} is not valid JSON: {text!r}") from None


def parse_words(words: list[str]) -> Any:
    """``put a 1`` -> ``["put", "a", 1]``: each word is JSON if it parses, else a string.
    A single word that is a JSON list is taken as the whole command."""
    if not words:
        raise ConsoleError("no command given (e.g. `put k 1`, `get k`, `incr`)")
    vals = []
    for w in words:
        try:
            vals.append(json.loads(w))
        except ValueError:
            vals.append(w)
    if len(vals) == 1 and isinstance(vals[0], list):
        return vals[0]
    return vals


def _print(data: Any) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True, default=str) + "\n")


def _sid(pair: Any) -> str:
    return f"{pair[0]}@{pair[1]}" if pair else "-"


def find_server(node: str, cluster: str, cookie: str, timeout: float,
                system: str) -> tuple[str, dict[str, Any]]:
    """The server of ``cluster`` on ``node`` (its registered name and status entry)."""
    st = admin(node, ["status"], cookie, timeout)
    sysinfo = (st.get("system") or {}).get(system)
    if sysinfo is None:
        raise ConsoleError(f"no system {system!r} on node {node}")
    servers = sysinfo.get("servers") or {}
    for name, sv in sorted(servers.items()):
        if sv.get("cluster") == cluster:
            return name, sv
    known = sorted({sv.get("cluster") for sv in servers.values()})
    raise ConsoleError(f"no cluster {cluster!r} on node {node} (clusters there: "
                       f"{', '.join(map(str, known)) or 'none'})")


def _api_error(exc: RaftError) -> ConsoleError:
    return ConsoleError(f"{type(exc).__name__}: {exc}")


def cmd_cluster(args: Any, cookie: str) -> int:
    import raft_otp
    from raft_otp import ServerId

    op = args.cluster_op
    if op == "start":
        members = [m for m in args.members for m in m.split(",") if m]
        if not members:
            raise ConsoleError("cluster start needs --members NODE [NODE ...]")
        for m in members:
            check_node_name(m)
            st = admin(m, ["status"], cookie, args.timeout)
            servers = ((st.get("system") or {}).get(args.system) or {}).get("servers") or {}
            if (st.get("system") or {}).get(args.system) is None:
                raise ConsoleError(f"no system {args.system!r} on node {m}")
            if any(sv.get("cluster") == args.name for sv in servers.values()):
                raise ConsoleError(f"cluster {args.name!r} already exists on node {m}")
        config = parse_json(args.machine_config, "--machine-config")
        sname = args.server_name or args.name
        ids = [ServerId(sname, m) for m in members]
        with client_node(cookie, args.client_host):
            try:
                started, not_started = raft_otp.start_cluster(
                    args.system, args.name, (machine_path(args.machine), config), ids,
                    timeout=args.timeout)
                leader = raft_otp.members(started[0], timeout=args.timeout)[1] if started else None
            except RaftError as exc:
                raise _api_error(exc) from None
        if not started:
            raise ConsoleError(f"cluster {args.name} not started: no leader was elected within "
                               f"{args.timeout:g} s (is the name already used, or a member down?)")
        started_out = {"cluster": args.name, "started": [list(s) for s in started],
               "not_started": [list(s) for s in not_started],
               "leader": list(leader) if leader else None}
        if args.json:
            _print(started_out)
        else:
            print(f"cluster {args.name} started on {len(started)} member(s), leader {_sid(leader)}")
            if not_started:
                print("not started: " + ", ".join(_sid(s) for s in not_started))
        return 0

    sname, sv = find_server(args.node, args.name, cookie, args.timeout, args.system)
    here = ServerId(sname, args.node)
    members = [ServerId(*m) for m, _kind in sv.get("members") or []]
    out: dict[str, Any] = {"cluster": args.name, "op": op}
    with client_node(cookie, args.client_host):
        try:
            if op == "delete":
                done, failed = raft_otp.delete_cluster(args.system, members or [here], args.timeout)
                out.update(deleted=[list(s) for s in done], failed=[list(s) for s in failed])
                text = f"cluster {args.name}: deleted {len(done)} member(s)" + (
                    f"; failed: {', '.join(_sid(s) for s in failed)}" if failed else "")
            elif op == "add-member":
                check_node_name(args.member)
                admin(args.member, ["ping"], cookie, args.timeout)
                new = ServerId(sname, args.member)
                if new in members:
                    raise ConsoleError(f"{_sid(new)} is already a member of {args.name}")
                config = parse_json(args.machine_config, "--machine-config")
                raft_otp.start_server(args.system, args.name, new, (sv.get("machine"), config),
                                      members + [new], args.timeout)
                leader = raft_otp.add_member(here, new, args.kind, args.timeout)
                out.update(added=list(new), kind=args.kind, leader=list(leader))
                text = (f"cluster {args.name}: added {_sid(new)} as {args.kind}; "
                        f"leader {_sid(leader)}")
            elif op == "remove-member":
                check_node_name(args.member)
                old = ServerId(sname, args.member)
                if old not in members:
                    raise ConsoleError(f"{_sid(old)} is not a member of {args.name}")
                via = here if old != here else next((m for m in members if m != old), here)
                leader = raft_otp.remove_member(via, old, args.timeout)
                out.update(removed=list(old), leader=list(leader), data_deleted=not args.keep_data)
                if not args.keep_data:
                    raft_otp.force_delete_server(args.system, old, args.timeout)
                text = (f"cluster {args.name}: removed {_sid(old)}"
                        + ("" if args.keep_data else " and deleted its data")
                        + f"; leader {_sid(leader)}")
            elif op == "transfer-leadership":
                check_node_name(args.target)
                target = ServerId(sname, args.target)
                if target not in members:
                    raise ConsoleError(f"{_sid(target)} is not a member of {args.name}")
                result = raft_otp.transfer_leadership(here, target, args.timeout)
                out.update(target=list(target), result=result)
                text = (f"cluster {args.name}: leadership transferred to {_sid(target)}"
                        if result == "ok" else
                        f"cluster {args.name}: {_sid(target)} is already the leader")
            else:  # argparse keeps this unreachable
                raise ConsoleError(f"unknown cluster operation {op!r}")
        except RaftError as exc:
            raise _api_error(exc) from None
    if args.json:
        _print(out)
    else:
        print(text)
    return 0


def cmd_command(args: Any, cookie: str) -> int:
    import raft_otp
    from raft_otp import ServerId

    command = parse_words(args.words)
    sname, _sv = find_server(args.node, args.cluster, cookie, args.timeout, args.system)
    with client_node(cookie, args.client_host):
        try:
            reply, leader = raft_otp.process_command(ServerId(sname, args.node), command,
                                                     args.timeout)
        except RaftError as exc:
            raise _api_error(exc) from None
    if args.json:
        _print({"command": command, "reply": reply, "leader": list(leader)})
    else:
        print(f"{json.dumps(reply, default=str)}   (leader {_sid(leader)})")
    return 0


def cmd_query(args: Any, cookie: str) -> int:
    import raft_otp
    from raft_otp import ServerId

    sname, _sv = find_server(args.node, args.cluster, cookie, args.timeout, args.system)
    if args.key is not None:
        key = args.key
        query: Any = (f"{QUERIES}:get", [key])
    else:
        query = f"{QUERIES}:state"
    fn = {"consistent": raft_otp.consistent_query, "leader": raft_otp.leader_query,
          "local": raft_otp.local_query}[args.kind]
    with client_node(cookie, args.client_host):
        try:
            result, leader = fn(ServerId(sname, args.node), query, args.timeout)
        except RaftError as exc:
            raise _api_error(exc) from None
    if args.json:
        _print({"kind": args.kind, "key": args.key, "result": result,
                "leader": list(leader) if leader else None})
    else:
        print(json.dumps(result, sort_keys=True, default=str))
    return 0
