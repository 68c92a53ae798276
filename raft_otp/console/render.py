"""Rendering with rich: the supervision tree (observer_cli's process view) and the
status tables (rabbitmq-diagnostics' quorum status).  Pure functions of plain data,
so the same code serves ``tree``, ``tree --watch``, ``status`` and the demo.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

__all__ = ["alarm_text", "console", "disk_alarms", "short_machine", "server_index", "merge_raft", "walk",
           "render_tree", "render_status", "fmt_bytes"]

_STATUS_STYLE = {"running": "green", "restarting": "yellow", "stopping": "yellow",
                 "stopped": "red", "new": "dim"}
_ROLE_STYLE = {"leader": "bold green", "follower": "cyan", "candidate": "yellow",
               "pre_vote": "yellow", "unreachable": "red", "unknown": "red"}


def fmt_bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def console() -> Console:
    """A rich Console; piped output gets $COLUMNS (default 160) rather than rich's 80."""
    import os
    import sys
    if sys.stdout.isatty():
        return Console()
    cols = os.environ.get("COLUMNS", "")
    return Console(width=int(cols) if cols.isdigit() and int(cols) > 20 else 160)


def short_machine(path: Any) -> str:
    from raft_otp.console.cluster_cmds import MACHINES
    for short, full in MACHINES.items():
        if path == full:
            return short
    return str(path or "-")


def server_index(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Registered server name -> its status entry (with its system), over every system."""
    out: dict[str, dict[str, Any]] = {}
    for sys_name, sys in (status.get("system") or {}).items():
        for name, sv in (sys.get("servers") or {}).items():
            if isinstance(sv, dict):
                out[name] = {**sv, "system": sys_name}
    return out


def _raft_summary(sv: dict[str, Any]) -> dict[str, Any]:
    log = sv.get("log") or {}
    leader = sv.get("leader")
    return {
        "system": sv.get("system"),
        "cluster": sv.get("cluster"),
        "role": sv.get("role"),
        "term": sv.get("term"),
        "leader": list(leader) if leader else None,
        "commit_index": sv.get("commit_index"),
        "last_applied": sv.get("last_applied"),
        "snapshot_index": log.get("snapshot_index"),
        "machine": sv.get("machine"),
    }


def walk(node: dict[str, Any],
         path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every tree entry with its id path from the root, depth first."""
    here = path + (str(node.get("id")),)
    yield here, node
    for c in node.get("children") or []:
        yield from walk(c, here)


def merge_raft(tree: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    """Label each server actor (matched by registered name) with its Raft status, in place."""
    servers = server_index(status or {})
    alarms = disk_alarms(status or {})
    for root in tree.get("roots") or []:
        for _path, n in walk(root):
            name = n.get("name")
            if n.get("impl") == "actor" and name in servers:
                n["raft"] = _raft_summary(servers[name])
            sid = str(n.get("id"))
            if sid.startswith("system:") and alarms.get(sid[len("system:"):]):
                n["disk_alarm"] = alarms[sid[len("system:"):]]
    return tree


def disk_alarms(status: dict[str, Any]) -> dict[str, str]:
    """System name -> why its disk alarm is on (systems whose alarm is off are left out)."""
    out: dict[str, str] = {}
    for sys_name, sys in (status.get("system") or {}).items():
        alarm = ((sys or {}).get("log") or {}).get("disk_alarm") or {}
        if alarm.get("active"):
            out[sys_name] = alarm_text(alarm)
    return out


def alarm_text(alarm: dict[str, Any]) -> str:
    """One line for an active disk alarm (``raft_otp.log.disk_alarm.DiskAlarm.overview``)."""
    reasons = "; ".join(f"{k}: {v}" for k, v in sorted((alarm.get("reasons") or {}).items()))
    free = alarm.get("free_bytes")
    return (f"{reasons} (free {fmt_bytes(free) if free is not None else '?'}, limit "
            f"{fmt_bytes(alarm.get('disk_free_limit_bytes'))}); commands refused with DiskFull")


def _styled_status(status: Any) -> Text:
    return Text(str(status), style=_STATUS_STYLE.get(str(status), "red"))


def _label(n: dict[str, Any]) -> Text:
    impl = n.get("impl")
    t = Text()
    t.append(str(n.get("id")), style="bold")
    if impl == "supervisor" or n.get("kind") == "supervisor":
        t.append(f"  supervisor {n.get('strategy', '')}", style="magenta")
    elif impl == "process":
        t.append("  os process", style="blue")
        t.append(f" pid {n.get('pid')}")
    elif impl == "actor":
        t.append(f"  {n.get('class', 'actor')}", style="blue")
    raft = n.get("raft")
    if n.get("disk_alarm"):
        t.append(f"  DISK ALARM: {n['disk_alarm']}", style="bold red")
    if n.get("name") and impl == "actor" and not (raft and raft.get("cluster") == n["name"]):
        t.append(f" as {n['name']}", style="dim")  # a server named as its cluster: said below
    t.append("  ")
    t.append_text(_styled_status(n.get("status")))
    restarts = n.get("restarts") or 0
    t.append(f"  restarts {restarts}", style="yellow bold" if restarts else "dim")
    if raft:
        role = str(raft.get("role"))
        t.append("  [")
        t.append(f"{raft.get('cluster')}: ", style="bold")
        t.append(role, style=_ROLE_STYLE.get(role, ""))
        t.append(f", term {raft.get('term')}, commit {raft.get('commit_index')}]")
    if impl == "actor":
        t.append(f"  mailbox {n.get('mailbox')}  thread {n.get('thread')}", style="dim")
    elif impl == "process":
        cpu = n.get("cpu_percent")
        t.append(f"  cpu {cpu:.1f}%" if isinstance(cpu, (int, float)) else "  cpu ?", style="dim")
        t.append(f"  rss {fmt_bytes(n.get('rss_bytes'))}", style="dim")
    return t


def _add(parent: Tree, n: dict[str, Any]) -> None:
    branch = parent.add(_label(n))
    for c in n.get("children") or []:
        _add(branch, c)


def render_tree(snapshot: dict[str, Any], node: str, *, error: str | None = None,
                footer: str | None = None) -> RenderableType:
    """The whole supervision tree of ``node`` (``snapshot`` from ``merge_raft``)."""
    title = Text()
    title.append(f"node {node}", style="bold cyan")
    if snapshot.get("pid") is not None:
        title.append(f"  pid {snapshot.get('pid')}", style="dim")
    root = Tree(title, guide_style="dim")
    tr = snapshot.get("transport")
    if isinstance(tr, dict):
        up = [n for n in tr.get("nodes_up") or [] if not str(n).startswith("raft-otp-cli-")]
        t = Text()
        t.append("transport", style="bold")
        t.append("  ZeroMQ I/O thread (node runtime)", style="blue")
        t.append(f"  nodes up {len(up)}  msgs out {tr.get('sent_msgs')} in {tr.get('recv_msgs')}")
        if tr.get("direct_sends") is not None:  # lone messages that skipped a thread hand-off
            t.append(f"  direct: sent {tr.get('direct_sends')} run {tr.get('direct_deliveries', 0)}",
                     style="dim")
        bad = sum(int(tr.get(k) or 0)
                  for k in ("bad_frames", "refused", "send_errors", "dropped_queue_full"))
        t.append(f"  refused/bad/dropped {bad}", style="yellow bold" if bad else "dim")
        root.add(t)
    for r in snapshot.get("roots") or []:
        _add(root, r)
    parts: list[RenderableType] = [root]
    if error:
        parts.append(Text(error, style="bold red"))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def _idx(v: Any) -> str:
    return "-" if v is None else str(v)


def render_status(view: dict[str, Any]) -> RenderableType:
    """``status`` (see :func:`raft_otp.console.admin_cmds.status_view`) as tables."""
    parts: list[RenderableType] = []
    head = Text()
    head.append(f"node {view['node']}", style="bold cyan")
    peers = view.get("connected") or []
    head.append(f"  connected to {len(peers)} node(s)", style="dim")
    parts.append(head)
    for sys_name, sys in (view.get("systems") or {}).items():
        wal = sys.get("wal") or {}
        line = Text()
        line.append(f"system {sys_name}", style="bold")
        line.append(f"  data dir {sys.get('data_dir')}")
        if wal:
            line.append(f"  WAL: {wal.get('entries', 0)} entries, {wal.get('batches', 0)} batches, "
                        f"{wal.get('syncs', 0)} {wal.get('sync_method')} syncs", style="dim")
        parts.append(line)
        alarm = sys.get("disk_alarm") or {}
        if alarm.get("active"):
            parts.append(Text(f"  DISK ALARM: {alarm_text(alarm)}", style="bold red"))
        if sys.get("error"):
            parts.append(Text(f"  error: {sys['error']}", style="red"))
        clusters = sys.get("clusters") or {}
        if not clusters:
            parts.append(Text("  no clusters", style="dim"))
            continue
        for cname, c in sorted(clusters.items()):
            leader = c.get("leader")
            title = (f"cluster [bold]{cname}[/]  machine {short_machine(c.get('machine'))}  leader "
                     + ((leader[1] if leader[0] == cname else f"{leader[0]}@{leader[1]}")
                        if leader else "[red]none[/]"))
            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD,
                          header_style="bold", expand=False, pad_edge=False)
            for col in ("member", "role", "term", "last", "commit", "applied", "snap", "cmds",
                        "elect", "machine"):
                table.add_column(col, justify="left" if col in ("member", "role", "machine")
                                 else "right", no_wrap=True)
            for m in c.get("members") or []:
                role = str(m.get("role"))
                member = (str(m.get("node")) if m.get("server") == cname
                          else f"{m.get('server')}@{m.get('node')}")
                if not m.get("voter", True):
                    member += f" ({m.get('membership')})"
                metrics = m.get("metrics") or {}
                table.add_row(
                    member, Text(role, style=_ROLE_STYLE.get(role, "")),
                    _idx(m.get("term")), _idx(m.get("last_index")), _idx(m.get("commit_index")),
                    _idx(m.get("last_applied")), _idx(m.get("snapshot_index")),
                    _idx(metrics.get("commands")), _idx(metrics.get("elections")),
                    _fmt_overview(m.get("machine_overview")))
            parts.append(table)
    parts.append(Text(f"as of {time.strftime('%H:%M:%S')}", style="dim"))
    return Group(*parts)


def _fmt_overview(ov: Any) -> str:
    if isinstance(ov, dict):
        return " ".join(f"{k}={v}" for k, v in ov.items())
    return "-" if ov is None else str(ov)
