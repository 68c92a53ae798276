"""``tree``, ``status`` and ``kill``: observation and drills through the admin endpoint.

Each is one or a few signed admin requests (``["tree"]``, ``["status"]``,
``["kill", name]``) to the node; nothing here needs the CLI to be a node.
``status`` also asks every other member's node, so a cluster is shown whole.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from raft_otp.console import render
from raft_otp.console.common import ConsoleError, admin

__all__ = ["fetch_tree", "status_view", "resolve_path", "cmd_tree", "cmd_status", "cmd_kill"]


def _dump(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fetch_tree(node: str, cookie: str, timeout: float) -> dict[str, Any]:
    """The node's supervision tree with Raft status merged into its server actors."""
    tree = admin(node, ["tree"], cookie, timeout)
    try:
        status = admin(node, ["status"], cookie, timeout)
    except ConsoleError:
        status = None  # the tree alone is still worth showing
    tree = render.merge_raft(tree, status)
    tree["node"] = node
    transport = (status or {}).get("transport")
    if isinstance(transport, dict):  # the node runtime is not under a supervisor: shown apart
        tree["transport"] = {k: transport.get(k) for k in (
            "nodes_up", "sent_msgs", "recv_msgs", "sent_batches", "recv_batches", "bad_frames",
            "refused", "send_errors", "dropped_queue_full", "pending_calls")}
    return tree


# ---- status ------------------------------------------------------------------------

def _member_row(name: str, node: str, kind: str, sv: dict[str, Any] | None,
                error: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"server": name, "node": node, "membership": kind,
                           "voter": kind == "voter"}
    if sv is None:
        role = "not asked" if error == "not asked" else "unreachable" if error else "unknown"
        row.update(role=role, error=error)
        return row
    log = sv.get("log") or {}
    row.update(role=sv.get("role"), term=sv.get("term"), commit_index=sv.get("commit_index"),
               last_applied=sv.get("last_applied"), snapshot_index=log.get("snapshot_index"),
               last_index=log.get("last_index"), last_written_index=log.get("last_written_index"),
               machine_overview=sv.get("machine_overview"),
               leader=list(sv["leader"]) if sv.get("leader") else None)
    metrics = sv.get("metrics") or {}
    row["metrics"] = {k: metrics.get(k) for k in ("commands", "elections", "commit_latency_ms")
                      if k in metrics}
    return row


def status_view(node: str, cookie: str, timeout: float, *, peers: bool = True) -> dict[str, Any]:
    """Systems and clusters as seen from ``node``; other members' rows come from their nodes."""
    st = admin(node, ["status"], cookie, timeout)
    cache: dict[str, tuple[dict[str, Any] | None, str | None]] = {node: (st, None)}

    def node_status(n: str) -> tuple[dict[str, Any] | None, str | None]:
        if n not in cache:
            if not peers:
                cache[n] = (None, "not asked")
            else:
                try:
                    cache[n] = (admin(n, ["status"], cookie, min(timeout, 2.0)), None)
                except ConsoleError as exc:
                    cache[n] = (None, str(exc))
        return cache[n]

    connected = [n for n in st.get("nodes") or [] if not n.startswith("raft-otp-cli-")]
    view: dict[str, Any] = {"node": st.get("node", node), "connected": connected,
                            "systems": {}}
    for sys_name, sysinfo in (st.get("system") or {}).items():
        out: dict[str, Any] = {"data_dir": sysinfo.get("data_dir"),
                               "wal": (sysinfo.get("log") or {}).get("wal") or {},
                               "disk_alarm": (sysinfo.get("log") or {}).get("disk_alarm") or {},
                               "clusters": {}}
        if sysinfo.get("error"):
            out["error"] = sysinfo["error"]
        for _name, sv in sorted((sysinfo.get("servers") or {}).items()):
            cname = sv.get("cluster", "?")
            if cname in out["clusters"]:
                continue
            rows = []
            for (m_name, m_node), kind in sv.get("members") or []:
                other, err = node_status(m_node)
                m_sv = None
                if other is not None:
                    other_sys = (other.get("system") or {}).get(sys_name) or {}
                    m_sv = (other_sys.get("servers") or {}).get(m_name)
                    if m_sv is None:
                        err = f"no server {m_name} in system {sys_name} on {m_node}"
                rows.append(_member_row(m_name, m_node, kind, m_sv, err))
            leaders = [[r["server"], r["node"]] for r in rows if r.get("role") == "leader"]
            hint = list(sv["leader"]) if sv.get("leader") else None
            out["clusters"][cname] = {"machine": sv.get("machine"),
                                      "leader": leaders[0] if leaders else hint, "members": rows}
        view["systems"][sys_name] = out
    return view


# ---- kill --------------------------------------------------------------------------

def resolve_path(tree: dict[str, Any], path: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Find one tree entry by registered name or by a slash path of ids (a suffix will do)."""
    entries = [(p, n) for r in tree.get("roots") or [] for p, n in render.walk(r)]
    by_name = [(p, n) for p, n in entries if n.get("name") == path]
    if len(by_name) == 1:
        return by_name[0]
    want = tuple(s for s in path.strip("/").split("/") if s)
    if not want:
        raise ConsoleError("empty actor path")
    hits = [(p, n) for p, n in entries if p[-len(want):] == want]
    if not hits:
        raise ConsoleError(f"no actor {path!r} in the tree (see `raft-otp tree`)")
    if len(hits) > 1:
        raise ConsoleError(f"{path!r} is ambiguous: " + ", ".join("/".join(p) for p, _ in hits))
    return hits[0]


def _find(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    for r in tree.get("roots") or []:
        for p, n in render.walk(r):
            if p == path:
                return n
    return None


def kill(node: str, path: str, cookie: str, timeout: float, *,
         wait_s: float = 10.0) -> dict[str, Any]:
    """Crash the actor at ``path``; wait (up to ``wait_s``) until its supervisor restarted it."""
    tree = admin(node, ["tree"], cookie, timeout)
    full, entry = resolve_path(tree, path)
    if entry.get("impl") != "actor":
        raise ConsoleError(f"{'/'.join(full)} is a {entry.get('impl') or entry.get('kind')}; "
                           "only actors can be killed")
    name = entry.get("name")
    before = int(entry.get("restarts") or 0)
    if name:
        admin(node, ["kill", name], cookie, timeout)
    else:  # an unnamed actor: by its urn (nodes older than ["kill_urn", urn] refuse it)
        try:
            admin(node, ["kill_urn", entry.get("urn")], cookie, timeout)
        except ConsoleError as exc:
            if "unknown admin request" not in str(exc):
                raise
            raise ConsoleError(f"{'/'.join(full)} has no registered name; this node's admin "
                               "endpoint kills registered actors only") from None
    out: dict[str, Any] = {"node": node, "path": "/".join(full), "name": name or entry.get("urn"),
                           "restarts_before": before, "restarts": before, "status": None,
                           "restarted": False, "thread_before": entry.get("thread")}
    deadline = time.monotonic() + wait_s
    while wait_s > 0 and time.monotonic() < deadline:
        now = _find(admin(node, ["tree"], cookie, timeout), full)
        if now is not None:
            out.update(restarts=int(now.get("restarts") or 0), status=now.get("status"),
                       thread=now.get("thread"))
            if out["restarts"] > before and now.get("status") == "running":
                out["restarted"] = True
                break
        else:
            out["status"] = "gone"
        time.sleep(0.05)
    return out


# ---- commands ---------------------------------------------------------------------

def cmd_tree(args: Any, cookie: str) -> int:
    def fetch() -> dict[str, Any]:
        return fetch_tree(args.node, cookie, args.timeout)

    def draw(data: dict[str, Any], error: str | None, footer: str) -> Any:
        return render.render_tree(data, args.node, error=error, footer=footer)

    if args.watch:
        return _watch(args, fetch, draw, {"roots": []})
    tree = fetch()
    if args.json:
        _dump(tree)
    else:
        render.console().print(render.render_tree(tree, args.node))
    return 0


def cmd_status(args: Any, cookie: str) -> int:
    def fetch() -> dict[str, Any]:
        return status_view(args.node, cookie, args.timeout, peers=not args.local)

    def draw(data: dict[str, Any], error: str | None, footer: str) -> Any:
        from rich.console import Group
        from rich.text import Text
        parts: list[Any] = [render.render_status(data)] if data else []
        if error:
            parts.append(Text(error, style="bold red"))
        parts.append(Text(footer, style="dim"))
        return Group(*parts)

    if args.watch:
        return _watch(args, fetch, draw, {})
    view = fetch()
    if args.json:
        _dump(view)
    else:
        render.console().print(render.render_status(view))
    return 0


def _watch(args: Any, fetch: Any, draw: Any, empty: dict[str, Any]) -> int:
    """Redraw ``draw(fetch())`` every ``--interval`` until Ctrl-C (rich Live); with ``--json``,
    one JSON document per line instead.  A failed fetch is shown, and the watch goes on."""
    from rich.live import Live
    last = empty
    every = f"every {args.interval:g} s; Ctrl-C to quit"
    try:
        if args.json:
            while True:
                try:
                    doc: Any = fetch()
                except ConsoleError as exc:
                    doc = {"error": str(exc), "time": time.time()}
                sys.stdout.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
                sys.stdout.flush()
                time.sleep(args.interval)
        with Live(draw(last, None, "connecting..."), console=render.console(), auto_refresh=False,
                  vertical_overflow="ellipsis") as live:
            while True:
                error = None
                try:
                    last = fetch()
                except ConsoleError as exc:
                    error = str(exc)
                live.update(draw(last, error, f"updated {time.strftime('%H:%M:%S')}, {every}"),
                            refresh=True)
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def cmd_kill(args: Any, cookie: str) -> int:
    wait_s = 0.0 if args.no_wait else args.wait
    out = kill(args.node, args.path, cookie, args.timeout, wait_s=wait_s)
    if args.json:
        _dump(out)
        return 0
    c = render.console()
    by_urn = str(out["name"]).startswith("urn:")
    what = f"actor {out['name']}" if by_urn else f"registered as {out['name']}"
    c.print(f"killed [bold]{out['path']}[/] ({what}) on {args.node}")
    if args.no_wait:
        return 0
    if out["restarted"]:
        c.print(f"its supervisor restarted it: restarts {out['restarts_before']} -> "
                f"{out['restarts']}, "
                f"status {out['status']}, thread {out.get('thread')}")
        return 0
    raise ConsoleError(f"{out['path']} was not restarted within {args.wait:g} s "
                       f"(status {out['status']}, restarts {out['restarts']})")
