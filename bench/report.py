"""The headline table from ``bench/results/latest.json``: ``python -m bench.report``.

Prints markdown: each target of issues 8 and 18 with our figure, its peer, the ratio
(>1 means raft_otp wins) and whether the target is met in that run.  Used for
the README's benchmark table and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LATEST = Path(__file__).resolve().parent / "results" / "latest.json"

# (label, part, figure name prefix, needed ratio or None)
HEADLINES: list[tuple[str, str, str, float | None]] = [
    ("3-node pipelined cmd/s, we datasync, PySyncObj journal (no sync)", "cluster",
     "versus: pipelined cmd/s, raft_otp datasync", 2.0),
    ("3-node pipelined cmd/s, we datasync, PySyncObj memory (no sync)", "cluster",
     "versus: pipelined cmd/s, raft_otp datasync vs PySyncObj's fastest", 2.0),
    ("3-node pipelined cmd/s, both without sync", "cluster", "versus: pipelined cmd/s, raft_otp none", None),
    ("CPU per command (all processes), we datasync", "cluster",
     "versus: CPU per command, raft_otp datasync", None),
    ("sequential p50, we datasync, callers in the leaders' processes, PySyncObj's faster sync call "
     "(no sync, batching off)", "cluster", "versus: sequential p50 target", 1.0),
    ("sequential p50, we datasync, callers in the leaders' processes, PySyncObj with its journal "
     "(the issue's pairing of durability settings)", "cluster",
     "versus: sequential process_command p50, raft_otp datasync, caller", 1.0),
    ("sequential p50, we datasync in the leader, interleaved rounds with PySyncObj's journal call "
     "(medians)", "cluster", "versus: sequential p50 interleaved, raft_otp datasync in its leader, "
     "vs PySyncObj journal", 1.0),
    ("the same, interleaved with PySyncObj in memory", "cluster",
     "versus: sequential p50 interleaved, raft_otp datasync in its leader, vs PySyncObj memory", 1.0),
    ("CPU per sequential command in those rounds (our 3 processes vs PySyncObj's 3, journal)", "cluster",
     "versus: CPU per sequential command interleaved, raft_otp datasync in its leader (3 processes), "
     "vs PySyncObj journal", None),
    ("sequential p50, we datasync, our caller on a client node (2 more hops)", "cluster",
     "versus: sequential process_command p50, raft_otp datasync", None),
    ("sequential p99, we datasync", "cluster", "versus: sequential process_command p99, raft_otp datasync", None),
    ("sequential p50, both without sync", "cluster", "versus: sequential process_command p50, raft_otp none", None),
    ("sequential p50, both without sync, callers in the leaders' processes", "cluster",
     "versus: sequential process_command p50, raft_otp none, caller", None),
    ("in-flight 1 cmd/s, we datasync", "cluster", "versus: in-flight 1 cmd/s, raft_otp datasync", None),
    ("in-flight 64 cmd/s, we datasync", "cluster", "versus: in-flight 64 cmd/s, raft_otp datasync", None),
    ("3-node pipelined cmd/s, transport_security curve vs mac (encryption costs at most 20 %)",
     "cluster", "cluster: 3 nodes pipelined commands/s, transport_security curve", 0.8),
    ("sequential p50 from a client node, transport_security curve vs mac", "cluster",
     "cluster: sequential process_command p50, transport_security curve", None),
    ("WAL 1 writer x 100 B vs same writers' write+fdatasync", "wal", "wal.entries_per_s.1w.100B", 0.7),
    ("WAL 10 writers x 100 B", "wal", "wal.entries_per_s.10w.100B", 0.7),
    ("WAL 100 writers x 100 B", "wal", "wal.entries_per_s.100w.100B", 0.7),
    ("WAL 1 writer x 1 KiB", "wal", "wal.entries_per_s.1w.1024B", 0.7),
    ("WAL 10 writers x 1 KiB", "wal", "wal.entries_per_s.10w.1024B", 0.7),
    ("WAL 100 writers x 1 KiB", "wal", "wal.entries_per_s.100w.1024B", 0.7),
    ("transport msgs/s node to node vs bare pyzmq", "transport", "transport one-way send, node to node", None),
    ("transport round trip p50 vs bare pyzmq", "transport", "transport call round trip p50", None),
    ("1 cluster aggregate cmd/s", "clusters", "clusters: 1 cluster(s) aggregate", None),
    ("10 clusters aggregate cmd/s (vs 1 cluster)", "clusters", "clusters: 10 clusters aggregate", None),
    ("100 clusters aggregate cmd/s (vs 1 cluster)", "clusters", "clusters: 100 clusters aggregate", None),
    ("1,000 clusters aggregate cmd/s (vs 1 cluster)", "clusters", "clusters: 1000 clusters aggregate", None),
    # issue 18's scale figures (``--clusters N``: the largest N in the results); the
    # peer of each is the limit, so ratio >= 1 is within it
    ("N clusters: start, until each has a leader", "clusters", "clusters *: start", 1.0),
    ("N idle clusters: CPU of the busiest node (% of one core)", "clusters", "clusters *: idle CPU per node", 1.0),
    ("N clusters: Python threads of the largest node", "clusters", "clusters *: threads per node", 1.0),
    ("N clusters: RSS of the largest node (vs no clusters)", "clusters", "clusters *: RSS per node", None),
    ("N clusters: node restart, spawn until its servers run with a leader", "clusters",
     "clusters *: node restart", 1.0),
    ("sequential p50 beside a cluster whose apply sleeps 100 ms (vs it idle; at most 1.2x)", "isolation",
     "isolation: sequential p50 beside a 100 ms apply", 1 / 1.2),
    ("node restart holding 1M entries, spawn to all applied", "recovery",
     "recovery: node restart holding 1,000,000 entries, spawn to all applied", None),
    ("100 MB snapshot installed on a new member", "recovery", "recovery: install a 100 MB snapshot", None),
    ("failover: leader node SIGKILLed until a command succeeds", "recovery", "recovery: failover", None),
]


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _count(name: str) -> int:
    """N of a figure named ``clusters N: ...``."""
    return int(name.split(":", 1)[0].split()[-1])


def _find(figs: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The figures named ``prefix``, else starting with it; for ``clusters *: what`` the
    one of the largest N."""
    if "*" in prefix:
        head, tail = prefix.split("*", 1)
        hits = [f for f in figs if f["name"].startswith(head) and f["name"].endswith(tail)
                and f["name"][len(head):len(f["name"]) - len(tail)].isdigit()]
        return sorted(hits, key=lambda f: -_count(f["name"]))
    return ([f for f in figs if f["name"] == prefix]  # an exact name first, then a prefix
            or [f for f in figs if f["name"].startswith(prefix)])


def table(latest: dict[str, Any]) -> str:
    parts = latest.get("parts", {})
    out = ["| figure | raft_otp | peer | peer value | ratio (>1: we win) | target |",
           "|---|---|---|---|---|---|"]
    for label, part, prefix, need in HEADLINES:
        figs = parts.get(part, {}).get("figures", [])
        found = _find(figs, prefix)
        if not found:
            continue
        f = found[0]
        label = label.replace("N ", f"{_count(f['name']):,} ", 1) if label.startswith("N ") else label
        ratio = f["ratio"]
        if need is None:
            target = ""
        else:
            target = (f"met (>= {need:.3g}x)" if ratio is not None and ratio >= need
                      else f"NOT met (>= {need:.3g}x)")
        out.append(f"| {label} | {_fmt(f['value'])} {f['unit']} | {f['peer']} | {_fmt(f['peer_value'])} | "
                   f"{_fmt(ratio)}{'x' if ratio is not None else ''} | {target} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else LATEST
    latest = json.loads(path.read_text())
    m = latest["meta"]
    print(f"{m['time']}, {m['cpus']} CPUs, Python {m['python']}{' (quick)' if m['quick'] else ''}\n")
    print(table(latest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
