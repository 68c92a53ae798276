"""Goal: every node of a 3-node cluster serves Prometheus /metrics (prometheus_client's
parser reads it) with the per-server counters, gauges and commit/apply histograms under
system/cluster/server labels, the WAL, segment writer, transport and supervisor
restarts; a bad --metrics-port is refused at once."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import BadArgument
from raft_otp.server.metrics import COUNTERS, GAUGES, LatencyHistogram
from raft_otp.system.harness import NodeProc, running_nodes
from raft_otp.system.metrics_http import check_port

KV = ("raft_otp.machines.kv:KeyValue", {})


def _scrape(np: NodeProc) -> dict[str, Any]:
    line = next(x for x in np.lines if x.startswith("METRICS "))
    with urllib.request.urlopen(f"http://{line.split()[1]}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(fam: Any, sample_name: str, **labels: str) -> float:
    hits = [s.value for s in fam.samples
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (sample_name, labels, fam.samples)
    return float(hits[0])


def _wait_applied(ids: list[ServerId], index: int, timeout_s: float = 10.0) -> None:
    """Until every member applied ``index`` (followers learn the commit index with the
    leader's next append_entries or heartbeat)."""
    deadline = time.monotonic() + timeout_s
    while any(raft_otp.key_metrics(i)["last_applied"] < index for i in ids):
        assert time.monotonic() < deadline, [raft_otp.key_metrics(i) for i in ids]
        time.sleep(0.05)


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_scrape_three_nodes(tmp_path: Any) -> None:
    with running_nodes(str(tmp_path), 3, extra_args=["--metrics-port", "0"]) as h:
        ids = [ServerId("kv1", np.name) for np in h.nodes]
        started, _ = raft_otp.start_cluster("default", "kv1", KV, ids, timeout=20)
        assert len(started) == 3
        for i in range(5):
            raft_otp.process_command(ids[0], ["put", f"k{i}", i])
        leader = raft_otp.ping(ids[0])
        _wait_applied(ids, raft_otp.key_metrics(leader)["commit_index"])
        scrapes = [_scrape(np) for np in h.nodes]
        # a crashed WAL is restarted by its supervisor: the next scrapes count it
        h.admin(0, ["kill", "raft_otp.wal.default"])
        deadline = time.monotonic() + 10
        while _value(_scrape(h[0])["raft_otp_supervisor_restarts"],
                     "raft_otp_supervisor_restarts_total",
                     path="raft_otp/system:default/log/wal") != 1:
            assert time.monotonic() < deadline, "the WAL's restart never showed in /metrics"
            time.sleep(0.05)
    srv = {"system": "default", "cluster": "kv1", "server": "kv1"}
    leaders = 0.0
    for np, fams in zip(h.nodes, scrapes):
        for k in COUNTERS:
            assert fams[f"raft_otp_server_{k}"].type == "counter"
            _value(fams[f"raft_otp_server_{k}"], f"raft_otp_server_{k}_total", **srv)
        for k in set(GAUGES) - {"commit_latency_ms"}:
            assert fams[f"raft_otp_server_{k}"].type == "gauge"
        assert _value(fams["raft_otp_server_last_applied"], "raft_otp_server_last_applied",
                      **srv) >= 6  # the election's entry and the 5 puts
        assert _value(fams["raft_otp_server_last_index"], "raft_otp_server_last_index", **srv) >= 6
        leaders += _value(fams["raft_otp_server_is_leader"], "raft_otp_server_is_leader", **srv)
        for h_name in ("commit", "apply"):
            fam = fams[f"raft_otp_server_{h_name}_seconds"]
            assert fam.type == "histogram"
            _value(fam, f"raft_otp_server_{h_name}_seconds_bucket", le="+Inf", **srv)
        assert _value(fams["raft_otp_server_apply_seconds"], "raft_otp_server_apply_seconds_count",
                      **srv) >= 1
        commits = _value(fams["raft_otp_server_commit_seconds"],
                         "raft_otp_server_commit_seconds_count", **srv)
        assert commits >= 5 if np.name == leader.node else commits == 0
        assert _value(fams["raft_otp_wal_entries"], "raft_otp_wal_entries_total",
                      system="default") >= 6
        assert "raft_otp_wal_sync_seconds" in fams
        assert _value(fams["process_resident_memory_bytes"], "process_resident_memory_bytes") > 0
        assert "raft_otp_segment_writer_segments_written" in fams
        assert _value(fams["raft_otp_transport_sent_msgs"], "raft_otp_transport_sent_msgs_total",
                      node=np.name) > 0
        restarts = fams["raft_otp_supervisor_restarts"]
        assert _value(restarts, "raft_otp_supervisor_restarts_total",
                      path="raft_otp/system:default/log/wal") == 0
        assert _value(restarts, "raft_otp_supervisor_restarts_total",
                      path="raft_otp/system:default/servers/kv1/server") == 0
    assert leaders == 1


def test_histogram_buckets_are_cumulative() -> None:
    h = LatencyHistogram()
    for s in (0.0002, 0.003, 0.003, 30.0):
        h.observe(s)
    buckets, total = h.cumulative()
    assert buckets[-1] == ("+Inf", 4)
    assert dict(buckets)["0.00025"] == 1 and dict(buckets)["0.005"] == 3
    assert dict(buckets)["10.0"] == 3
    assert total == pytest.approx(30.0062)


@pytest.mark.parametrize("bad", [-1, 65536, "80", True, 1.5])
def test_bad_port_is_refused(bad: Any) -> None:
    with pytest.raises(BadArgument, match="metrics_port"):
        check_port(bad)


def test_bad_metrics_port_flag_exits_2(tmp_path: Any) -> None:
    r = subprocess.run([sys.executable, "-m", "raft_otp.system", "--data-dir", str(tmp_path),
                        "--node", "n1@127.0.0.1:1", "--metrics-port", "http"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--metrics-port" in r.stderr, r.stderr
    assert "\n" not in r.stderr.strip()


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_raft_otp_start_serves_metrics_from_its_config(tmp_path: Any) -> None:
    """`raft-otp start --config F` with metrics_port and log_format in F: the node serves
    /metrics and logs JSON; a flag overrides the file; bad node keys name the key."""
    import json

    from raft_otp.console.testing import CliNodes
    cfg = tmp_path / "node.toml"
    cfg.write_text('metrics_port = 0\nlog_format = "json"\nlog_level = "INFO"\n')
    h = CliNodes(str(tmp_path), 1)
    try:
        h.start(0, extra=("--config", str(cfg)))
        fams = _scrape(h[0])  # type: ignore[arg-type]
        assert "raft_otp_wal_writes" in fams and "raft_otp_supervisor_restarts" in fams
        assert h.signal_and_wait(0) == 0
    finally:
        h.close()
    err = [ln for ln in (tmp_path / "n1.err").read_text().splitlines() if ln.strip()]
    assert err and all(json.loads(ln)["level"] for ln in err)
    bad = tmp_path / "bad.toml"
    bad.write_text('metrics_port = "nine"\n')
    r = h.run("start", "--data-dir", str(tmp_path / "n9"), "--config", str(bad))
    assert r.returncode == 1 and "metrics_port" in r.stderr, r.stderr
    r = h.run("start", "--data-dir", str(tmp_path / "n9"), "--log-level", "loud")
    assert r.returncode == 2 and "--log-level" in r.stderr, r.stderr


def test_a_system_that_does_not_answer_is_left_out_and_counted(monkeypatch: Any) -> None:
    """The scrape never raises: a system whose overview fails is left out of it and
    raft_otp_scrape_errors_total counts it; the rest is still exposed."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from raft_otp.node import runtime as node_rt
    from raft_otp.system import runtime
    from raft_otp.system.metrics_http import NodeCollector

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise TimeoutError("no answer")

    monkeypatch.setattr(runtime, "systems", lambda: [SimpleNamespace(name="s1", actor_name="x")])
    monkeypatch.setattr(node_rt, "call", refuse)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(NodeCollector())
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    assert _value(fams["raft_otp_scrape_errors"], "raft_otp_scrape_errors_total") == 1
    assert fams["raft_otp_server_commands"].samples == []
    assert "raft_otp_supervisor_restarts" in fams
