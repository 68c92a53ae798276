"""``cluster start|delete|add-member|remove-member|transfer-leadership``, ``command``, ``query``.

These run the public API from a temporary client node (``raft-otp-cli-PID@host:PORT``,
a free port) rather than through new admin request kinds: the API already follows
leader redirects, waits out elections, validates machines and runs the membership
protocol, and it speaks the cluster's own wire protocol, so the console needs no
second path into the servers.  The admin endpoint is still asked first, to resolve
a cluster's server on a node and to turn an unreachable node or a wrong cookie
into one clear line.  The cost: the nodes must be able to reach the CLI's
endpoint (``--client-host``, default 127.0.0.1).

Each operation reports what it really did.  ``remove-member`` says the removal
committed even when deleting the removed server afterwards failed (its node is
down); ``delete`` names every member it could not delete, with the reason;
``add-member`` deletes the server it started when the addition was refused.  A
command that did not do everything it was asked exits 1 with one line on stderr
saying what was done and what was not; with ``--json`` stdout still carries what
was done.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from raft_otp.console.common import ConsoleError, admin, check_node_name, client_node
from raft_otp.errors import RaftError

__all__ = ["MACHINES", "machine_path", "parse_words", "find_server", "describe", "cmd_cluster",
           "cmd_command", "cmd_query"]

MACHINES = {
    "kv": "raft_otp.machines.kv:KeyValue",
    "counter": "raft_otp.machines.counter:Counter",
    "lock": "raft_otp.machines.lock:Lock",
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


def describe(exc: BaseException) -> str:
    """``Class: message`` on one line (how every console error names its cause)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _api_error(exc: RaftError) -> ConsoleError:
    return ConsoleError(describe(exc))


@dataclass(slots=True)
class _Outcome:
    """What a cluster operation did: ``out`` (the --json document), ``text`` (the
    human line) and, when it did not do everything asked, ``failure`` (one line on
    stderr, exit status 1; with --json, stdout still reports what was done)."""

    out: dict[str, Any]
    text: str
    failure: str | None = None


def cmd_cluster(args: Any, cookie: str) -> int:
    if args.cluster_op == "start":
        return _cluster_start(args, cookie)
    sname, sv = find_server(args.node, args.name, cookie, args.timeout, args.system)
    op = {"delete": _cluster_delete, "add-member": _add_member,
          "remove-member": _remove_member, "transfer-leadership": _transfer_leadership}.get(
        args.cluster_op)
    if op is None:  # argparse keeps this unreachable
        raise ConsoleError(f"unknown cluster operation {args.cluster_op!r}")
    with client_node(cookie, args.client_host):
        try:
            done = op(args, cookie, sname, sv)
        except RaftError as exc:
            raise _api_error(exc) from None
    done.out = {"cluster": args.name, "op": args.cluster_op, **done.out}
    if args.json:
        _print(done.out)
    elif done.failure is None:
        print(done.text)
    if done.failure is not None:
        raise ConsoleError(done.failure)
    return 0


def _cluster_start(args: Any, cookie: str) -> int:
    import raft_otp
    from raft_otp import ServerId

    members = _node_list(args.members)
    if not members:
        raise ConsoleError("cluster start needs --members NODE [NODE ...]")
    for m in members:
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
    out = {"cluster": args.name, "started": [list(s) for s in started],
           "not_started": [list(s) for s in not_started],
           "leader": list(leader) if leader else None}
    if args.json:
        _print(out)
    else:
        print(f"cluster {args.name} started on {len(started)} member(s), leader {_sid(leader)}")
        if not_started:
            print("not started: " + ", ".join(_sid(s) for s in not_started))
    return 0


def _node_list(values: list[str] | None) -> list[str]:
    """``--members a b,c`` -> [a, b, c], each checked to be name@host:port."""
    nodes = [m for v in values or [] for m in v.split(",") if m]
    for m in nodes:
        check_node_name(m)
    return nodes


def _member_ids(sv: dict[str, Any]) -> list[Any]:
    from raft_otp import ServerId
    return [ServerId(*m) for m, _kind in sv.get("members") or []]


def _cluster_delete(args: Any, cookie: str, sname: str, sv: dict[str, Any]) -> _Outcome:
    import raft_otp
    from raft_otp import ServerId

    if args.members:
        ids = [ServerId(sname, m) for m in _node_list(args.members)]
    else:
        ids = _member_ids(sv)
    if not ids:  # a stopped or unresponsive server: its status carries no member list
        raise ConsoleError(
            f"the server {sname} of cluster {args.name} on {args.node} is "
            f"{sv.get('role', 'not running')}: its member list is unknown here; use --node "
            "of a node where a member runs, or name the member nodes with --members")
    done, failed = raft_otp.delete_cluster(args.system, ids, args.timeout)
    out = {"deleted": [list(s) for s in done],
           "failed": [{"server": list(s), "error": describe(e)} for s, e in failed.items()]}
    text = f"cluster {args.name}: deleted {len(done)} member(s): {', '.join(map(_sid, done))}"
    failure = None
    if failed:
        failure = (f"cluster {args.name}: deleted {len(done)} of {len(ids)} member(s); not "
                   "deleted: " + "; ".join(f"{_sid(s)} ({describe(e)})" for s, e in failed.items())
                   + f" - once a node is back, `raft-otp cluster delete {args.name} --node "
                   "NODE` deletes what is left")
    return _Outcome(out, text, failure)


def _add_member(args: Any, cookie: str, sname: str, sv: dict[str, Any]) -> _Outcome:
    """Start a server on the new node, then add it (the API checks that it runs); if
    the change was surely not made, the server started for it is deleted again."""
    import raft_otp
    from raft_otp import ServerId
    from raft_otp.errors import Timeout

    check_node_name(args.member)
    admin(args.member, ["ping"], cookie, args.timeout)
    members = _member_ids(sv)
    here = ServerId(sname, args.node)
    new = ServerId(sname, args.member)
    if new in members:
        raise ConsoleError(f"{_sid(new)} is already a member of {args.name}")
    if not sv.get("machine") or not members:
        raise ConsoleError(f"the server {sname} of cluster {args.name} on {args.node} is "
                           f"{sv.get('role', 'not running')}: use --node of a running member")
    config = parse_json(args.machine_config, "--machine-config")
    raft_otp.start_server(args.system, args.name, new, (sv.get("machine"), config),
                          members + [new], args.timeout)
    try:
        leader = raft_otp.add_member(here, new, args.kind, args.timeout)
    except Timeout as exc:
        raise ConsoleError(f"{describe(exc)}; {_sid(new)} was started and may or may not have "
                           "been added (see `raft-otp status`)") from None
    except RaftError as exc:  # refused or not delivered: nothing was committed
        try:
            raft_otp.force_delete_server(args.system, new, args.timeout)
            undo = f"the server started for it on {args.member} was deleted again"
        except RaftError as undo_exc:
            undo = (f"the server started for it on {args.member} could not be deleted "
                    f"({describe(undo_exc)})")
        raise ConsoleError(f"{describe(exc)}; {_sid(new)} was not added, {undo}") from None
    out = {"added": list(new), "kind": args.kind, "leader": list(leader)}
    return _Outcome(out, f"cluster {args.name}: added {_sid(new)} as {args.kind}; "
                         f"leader {_sid(leader)}")


def _remove_member(args: Any, cookie: str, sname: str, sv: dict[str, Any]) -> _Outcome:
    """Remove NODE's member (committed through the leader), then delete its server
    and data on its node unless --keep-data.  The removal and the deletion are
    reported apart: a deletion that fails (its node is down) does not hide that
    the removal committed."""
    import raft_otp
    from raft_otp import ServerId

    check_node_name(args.member)
    members = _member_ids(sv)
    here = ServerId(sname, args.node)
    old = ServerId(sname, args.member)
    if old not in members:
        raise ConsoleError(f"{_sid(old)} is not a member of {args.name}")
    via = here if old != here else next((m for m in members if m != old), here)
    leader = raft_otp.remove_member(via, old, args.timeout)
    out: dict[str, Any] = {"removed": list(old), "leader": list(leader), "data_deleted": False}
    was_leader = "; it was the leader, the others elect a new one" if leader == old else ""
    removed = f"cluster {args.name}: removed {_sid(old)} (committed by leader {_sid(leader)})"
    if args.keep_data:
        return _Outcome(out, removed + was_leader)
    try:
        raft_otp.force_delete_server(args.system, old, args.timeout)
    except RaftError as exc:
        out["data_error"] = describe(exc)
        return _Outcome(out, removed + was_leader,
                        f"{removed}, but its server and data on {args.member} were not deleted: "
                        f"{describe(exc)}")
    out["data_deleted"] = True
    return _Outcome(out, f"{removed} and deleted its data{was_leader}")


def _transfer_leadership(args: Any, cookie: str, sname: str, sv: dict[str, Any]) -> _Outcome:
    import raft_otp
    from raft_otp import ServerId

    check_node_name(args.target)
    target = ServerId(sname, args.target)
    if target not in _member_ids(sv):
        raise ConsoleError(f"{_sid(target)} is not a member of {args.name}")
    result = raft_otp.transfer_leadership(ServerId(sname, args.node), target, args.timeout)
    text = (f"cluster {args.name}: leadership transferred to {_sid(target)}" if result == "ok"
            else f"cluster {args.name}: {_sid(target)} is already the leader")
    return _Outcome({"target": list(target), "result": result}, text)


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
