"""A node's Prometheus endpoint: ``/metrics`` in the text format, from ``prometheus_client``.

``raft-otp start --metrics-port P`` (or ``metrics_port`` in its config file) and
``python -m raft_otp.system --metrics-port P`` serve it; port 0 picks a free port,
and the node prints ``METRICS <host>:<port>`` on stdout before ``READY``.

Nothing is counted twice: ``NodeCollector`` is a custom ``prometheus_client``
collector that reads, at scrape time, the counters the node already keeps and that
``key_metrics``, ``status`` and ``tree`` show:

* per server (labels ``system``, ``cluster``, ``server``): every counter of
  ``raft_otp.server.metrics.COUNTERS`` as ``raft_otp_server_<name>_total``, every
  gauge of ``GAUGES`` as ``raft_otp_server_<name>`` (``commit_latency_ms`` as
  ``raft_otp_server_last_commit_latency_seconds``), ``raft_otp_server_is_leader``, and
  the histograms ``raft_otp_server_commit_seconds`` and
  ``raft_otp_server_apply_seconds`` (observed by the server actor: one ``bisect``
  and two additions per observation);
* per system (label ``system``): the WAL (``raft_otp_wal_*``), the segment writer
  (``raft_otp_segment_writer_*``), the meta store (``raft_otp_meta_*``) and the
  disk alarm, from the system actor's overview (the same request ``status`` makes);
* the transport (``raft_otp_transport_*``), from ``transport_stats``;
* the supervisors (``raft_otp_supervisor_restarts_total``, label ``path``: the tree
  path of ids, as ``raft-otp tree`` and ``kill`` name it), from
  ``supervisors.tree_snapshot``;
* the process (``process_*``: CPU seconds, resident memory, open fds) and Python
  (``python_info``, ``python_gc_*``), from ``prometheus_client``'s own collectors.

A system that does not answer within ``SCRAPE_TIMEOUT_S`` is left out of that scrape
(and ``raft_otp_scrape_errors_total`` counts it); the scrape itself never raises.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from prometheus_client import (CollectorRegistry, GCCollector, PlatformCollector,
                               ProcessCollector, start_http_server)
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

from raft_otp.errors import BadArgument
from raft_otp.server import metrics as server_metrics

__all__ = ["NodeCollector", "MetricsServer", "serve", "check_port", "SCRAPE_TIMEOUT_S"]

log = logging.getLogger("raft_otp.metrics")

SCRAPE_TIMEOUT_S = 5.0
SERVER_LABELS = ["system", "cluster", "server"]

WAL_COUNTERS = ("writes", "entries", "batches", "bytes", "syncs", "write_failures",
                "sync_failures", "abandoned_files", "resumes", "dropped_gaps")
WAL_GAUGES = {"files": "WAL files", "file_size": "size of the current WAL file (bytes)",
              "queued_writes": "writes waiting for the WAL"}
SEGMENT_WRITER_COUNTERS = ("wal_files_flushed", "entries_flushed", "segments_written",
                           "segments_deleted")
META_COUNTERS = ("syncs", "records", "compactions")
TRANSPORT_GAUGES = {"pending_calls": "calls waiting for a reply",
                    "nodes_up": "peer nodes the failure detector sees up"}


def check_port(port: Any, what: str = "metrics_port") -> int:
    """``port`` as an int in 0..65535 (0: a free port), else ``BadArgument`` naming ``what``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise BadArgument(f"{what} must be a port number 0..65535 (0: any free port), "
                          f"got {port!r}")
    return port


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None


class NodeCollector(Collector):
    """Reads the node's live counters at each scrape (see the module docstring)."""

    def __init__(self) -> None:
        self.scrape_errors = 0

    def collect(self) -> Iterator[Metric]:
        statuses = self._system_statuses()
        yield from self._servers(statuses)
        yield from self._log_layer(statuses)
        yield from self._transport()
        yield from self._supervisors()
        yield CounterMetricFamily("raft_otp_scrape_errors", "parts of a scrape that failed "
                                  "(a system that did not answer in time, ...)",
                                  value=self.scrape_errors)

    # ---- sources -------------------------------------------------------------------
    def _system_statuses(self) -> dict[str, dict[str, Any]]:
        from raft_otp.node import runtime as node_rt
        from raft_otp.system import runtime
        from raft_otp.system.system_actor import SystemOverviewReq
        out: dict[str, dict[str, Any]] = {}
        for s in runtime.systems():
            try:
                ov = node_rt.call(s.actor_name, SystemOverviewReq(), SCRAPE_TIMEOUT_S)
            except Exception as exc:  # a scrape must answer even when a system is unwell
                self.scrape_errors += 1
                log.warning("metrics: system %s did not give its overview: %r", s.name, exc)
                continue
            if isinstance(ov, dict):
                out[s.name] = ov
        return out

    # ---- families ------------------------------------------------------------------
    def _servers(self, statuses: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        counters = {k: CounterMetricFamily(f"raft_otp_server_{k}", d, labels=SERVER_LABELS)
                    for k, d in server_metrics.COUNTERS.items()}
        gauges = {k: GaugeMetricFamily(f"raft_otp_server_{k}", d, labels=SERVER_LABELS)
                  for k, d in server_metrics.GAUGES.items() if k != "commit_latency_ms"}
        last_commit = GaugeMetricFamily(
            "raft_otp_server_last_commit_latency_seconds",
            "leader: time from the last committed batch's arrival to its commit",
            labels=SERVER_LABELS)
        leader = GaugeMetricFamily("raft_otp_server_is_leader", "1 on the cluster's leader",
                                   labels=SERVER_LABELS)
        for sys_name, ov in statuses.items():
            for name, sv in sorted((ov.get("servers") or {}).items()):
                labels = [sys_name, str(sv.get("cluster", "?")), name]
                m = sv.get("metrics")
                if not isinstance(m, dict):  # stopped or unresponsive
                    continue
                for k, fam in counters.items():
                    if (v := _num(m.get(k))) is not None:
                        fam.add_metric(labels, v)
                for k, gfam in gauges.items():
                    if (v := _num(m.get(k))) is not None:
                        gfam.add_metric(labels, v)
                if (v := _num(m.get("commit_latency_ms"))) is not None:
                    last_commit.add_metric(labels, v / 1000.0)
                leader.add_metric(labels, 1.0 if sv.get("role") == "leader" else 0.0)
        yield from counters.values()
        yield from gauges.values()
        yield last_commit
        yield leader
        yield from self._histograms()

    def _histograms(self) -> Iterator[Metric]:
        fams = {k: HistogramMetricFamily(f"raft_otp_server_{k}_seconds", d, labels=SERVER_LABELS)
                for k, d in server_metrics.HISTOGRAMS.items()}
        for (system, cluster, server), m in sorted(server_metrics.live(), key=lambda x: x[0]):
            for k, hist in (("commit", m.commit_s), ("apply", m.apply_s)):
                buckets, total = hist.cumulative()
                fams[k].add_metric([system, cluster, server], buckets, total)
        yield from fams.values()

    def _log_layer(self, statuses: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        fams: dict[str, Metric] = {}

        def add(kind: str, name: str, doc: str, sys_name: str, value: Any) -> None:
            if (v := _num(value)) is None:
                return
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fam = fams.get(name)
            if fam is None:
                fam = fams[name] = cls(name, doc, labels=["system"])
            fam.add_metric([sys_name], v)  # type: ignore[attr-defined]

        for sys_name, ov in statuses.items():
            lg = ov.get("log") or {}
            wal = lg.get("wal") or {}
            for k in WAL_COUNTERS:
                add("counter", f"raft_otp_wal_{k}", f"WAL {k.replace('_', ' ')}", sys_name, wal.get(k))
            add("counter", "raft_otp_wal_sync_seconds", "time spent in WAL syncs", sys_name,
                wal.get("sync_time_s"))
            for k, doc in WAL_GAUGES.items():
                unit = "_bytes" if k == "file_size" else ""
                add("gauge", f"raft_otp_wal_{k}{unit}", doc, sys_name, wal.get(k))
            sw = lg.get("segment_writer") or {}
            for k in SEGMENT_WRITER_COUNTERS:
                add("counter", f"raft_otp_segment_writer_{k}",
                    f"segment writer {k.replace('_', ' ')}", sys_name, sw.get(k))
            meta = lg.get("meta") or {}
            for k in META_COUNTERS:
                add("counter", f"raft_otp_meta_{k}", f"meta store {k}", sys_name, meta.get(k))
            add("gauge", "raft_otp_mem_table_entries", "entries held in mem tables", sys_name,
                lg.get("mem_table_entries"))
            alarm = lg.get("disk_alarm")
            if isinstance(alarm, dict):
                add("gauge", "raft_otp_disk_alarm_active", "1 while the disk alarm is raised",
                    sys_name, alarm.get("active"))
                add("gauge", "raft_otp_disk_free_bytes", "free bytes on the data dir's disk",
                    sys_name, alarm.get("free_bytes"))
        yield from fams.values()

    def _transport(self) -> Iterator[Metric]:
        from raft_otp.node import runtime as node_rt
        st = node_rt.transport_stats()
        node = str(st.get("node"))
        for k, v in sorted(st.items()):
            if k in TRANSPORT_GAUGES or k == "io_thread_alive" or (n := _num(v)) is None:
                continue
            fam = CounterMetricFamily(f"raft_otp_transport_{k}", f"transport {k.replace('_', ' ')}",
                                      labels=["node"])
            fam.add_metric([node], n)
            yield fam
        up = st.get("nodes_up")
        gauges = {"pending_calls": st.get("pending_calls"),
                  "nodes_up": len(up) if isinstance(up, (list, tuple, set)) else None,
                  "io_thread_alive": st.get("io_thread_alive")}
        docs = {**TRANSPORT_GAUGES, "io_thread_alive": "1 while the transport's I/O thread runs"}
        for k, v in gauges.items():
            if (n := _num(v)) is not None:
                g = GaugeMetricFamily(f"raft_otp_transport_{k}", docs[k], labels=["node"])
                g.add_metric([node], n)
                yield g

    def _supervisors(self) -> Iterator[Metric]:
        import supervisors
        restarts = CounterMetricFamily(
            "raft_otp_supervisor_restarts",
            "restarts of each child (an actor or a supervisor) by its supervisor",
            labels=["path", "kind"])
        running = GaugeMetricFamily("raft_otp_supervisor_child_running",
                                    "1 while the child's status is running",
                                    labels=["path", "kind"])
        try:
            roots = supervisors.tree_snapshot().get("roots") or []
        except Exception as exc:
            self.scrape_errors += 1
            log.warning("metrics: no supervision tree: %r", exc)
            roots = []
        for path, entry in _walk(roots, ()):
            labels = ["/".join(path), str(entry.get("kind"))]
            restarts.add_metric(labels, float(entry.get("restarts") or 0))
            running.add_metric(labels, 1.0 if entry.get("status") == "running" else 0.0)
        yield restarts
        yield running


def _walk(entries: Iterable[dict[str, Any]],
          prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for e in entries:
        path = (*prefix, str(e.get("id")))
        yield path, e
        yield from _walk(e.get("children") or [], path)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def serve(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics`` for this node on ``host:port`` (0: a free port) in a daemon
    thread.  ``BadArgument`` for a bad port or one that cannot be bound."""
    check_port(port)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector())
    # prometheus_client's standard process_* (CPU, RSS, fds), python_info and python_gc_*
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise BadArgument(f"metrics_port {port}: cannot listen on {host}:{port}: "
                          f"{exc.strerror or exc}") from None
    bound = int(server.server_port)
    log.info("metrics: serving http://%s:%d/metrics", host, bound)
    return MetricsServer(host, bound, server, thread)
