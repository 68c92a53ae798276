"""Goal: --log-format json gives one JSON object per line (server and term where known, a
traceback inside its record), the text format keeps a record on one line too, only real
levels are accepted, and node processes log an election at INFO once per event."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from typing import Any

import pytest

import raft_otp
from raft_otp import ServerId
from raft_otp.errors import BadArgument
from raft_otp.system.harness import running_nodes
from raft_otp.system.logging_setup import (JsonFormatter, OneLineFormatter, check_format,
                                           check_level)

KV = ("raft_otp.machines.kv:KeyValue", {})


def _record(msg: str, *args: Any, exc: bool = False, name: str = "raft_otp.server") -> Any:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_json_record_is_one_object_with_server_term_and_traceback() -> None:
    rec = _record("%s term %d: crashed", "kv1/n1@127.0.0.1:7001", 4, exc=True)
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "ERROR" and doc["logger"] == "raft_otp.server"
    assert doc["message"] == "kv1/n1@127.0.0.1:7001 term 4: crashed"
    assert doc["server"] == "kv1/n1@127.0.0.1:7001" and doc["term"] == 4
    assert "ValueError: boom\nsecond line" in doc["exc"] and "Traceback" in doc["exc"]
    assert doc["time"].endswith("Z")


def test_json_extra_fields_win_and_plain_lines_have_none() -> None:
    rec = _record("plain", name="raft_otp.wal")
    doc = json.loads(JsonFormatter().format(rec))
    assert "server" not in doc and "term" not in doc
    rec.server, rec.term = "s/n@h:1", 9
    doc = json.loads(JsonFormatter().format(rec))
    assert (doc["server"], doc["term"]) == ("s/n@h:1", 9)


def test_text_record_stays_on_one_line() -> None:
    line = OneLineFormatter().format(_record("two\nlines", exc=True))
    assert "\n" not in line
    assert "two\\nlines" in line and "ValueError: boom\\nsecond line" in line


@pytest.mark.parametrize("good", ["debug", "INFO", "Warning", "ERROR", "critical"])
def test_real_levels_pass(good: str) -> None:
    assert check_level(good) == good.upper()


@pytest.mark.parametrize("bad", ["verbose", "WARN", "", "10", None])
def test_other_levels_are_refused(bad: Any) -> None:
    with pytest.raises(BadArgument, match="log level must be one of DEBUG, INFO"):
        check_level(bad)
    with pytest.raises(BadArgument):
        check_format("xml")


@pytest.mark.parametrize("argv", [["--log-level", "verbose"], ["--log-format", "xml"]])
def test_node_flags_refuse_bad_values(tmp_path: Any, argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "raft_otp.system", "--data-dir", str(tmp_path),
                        "--node", "n1@127.0.0.1:1", *argv], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and argv[0] in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was touched


def test_setup_replaces_its_own_handler() -> None:
    from raft_otp.system.logging_setup import setup
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        out = io.StringIO()
        setup("INFO", "text", out)
        setup("INFO", "json", out)
        logging.getLogger("raft_otp.test").info("hello")
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["message"] == "hello"
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(level)


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_nodes_log_json_and_the_election_at_info(tmp_path: Any) -> None:
    with running_nodes(str(tmp_path), 3, log_level="INFO",
                       extra_args=["--log-format", "json"]) as h:
        ids = [ServerId("kv1", np.name) for np in h.nodes]
        started, _ = raft_otp.start_cluster("default", "kv1", KV, ids, timeout=20)
        assert len(started) == 3
        raft_otp.process_command(ids[0], ["put", "a", 1])  # the leader logged its win before
        leader = raft_otp.ping(ids[0])
        assert leader is not None
        names = [np.name.split("@")[0] for np in h.nodes]
        nodes = [np.name for np in h.nodes]
    docs = []
    for n in names:
        with open(tmp_path / f"{n}.log", encoding="utf-8") as f:
            for line in f:
                docs.append(json.loads(line))  # every line is one JSON object
    assert docs and all({"time", "level", "logger", "message"} <= d.keys() for d in docs)
    won = [d for d in docs if "won the election" in d["message"]]
    assert won, [d["message"] for d in docs]
    last = max(won, key=lambda d: d["term"])
    assert last["level"] == "INFO" and last["server"] == f"kv1/{leader.node}"
    assert last["term"] >= 1
    events = [(d["server"], d["term"], d["message"]) for d in docs if "election" in d["message"]]
    assert len(events) == len(set(events)), events  # once per event
    started_lines = [d for d in docs if d["message"].endswith("started (term 0, role follower)")]
    assert len(started_lines) == 3
    for np_name in {f"kv1/{n}" for n in nodes} - {f"kv1/{leader.node}"}:  # each follower
        learnt = [d for d in docs if d.get("server") == np_name
                  and d["message"].endswith(f"kv1/{leader.node}")]
        assert learnt and all(d["level"] == "INFO" for d in learnt), np_name


def test_a_supervisor_restart_is_one_info_line() -> None:
    import threading

    from supervisors import ChildSpec, Supervisor
    from supervisors.testing import Probe, stop_all_roots

    lines: list[logging.LogRecord] = []
    seen = threading.Event()

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "restarted" in record.getMessage():
                lines.append(record)
                seen.set()

    logger = logging.getLogger("supervisors")
    handler, level = _Catch(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        import queue
        q: queue.Queue[Any] = queue.Queue()
        sup = Supervisor([ChildSpec.actor(t, Probe, t, q) for t in ("a", "b", "c")],
                         strategy="rest_for_one", intensity=3, id="sup1").start()
        {c.id: c.ref for c in sup.which_children()}["b"].tell("crash")
        assert seen.wait(10)
        assert len(lines) == 1 and lines[0].levelno == logging.INFO
        assert lines[0].getMessage() == ("supervisor 'sup1': restarted 'b', 'c' "
                                         "(rest_for_one; restarts of 'b': 1)")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        assert stop_all_roots() == []


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_snapshots_and_membership_are_logged_at_info_once(tmp_path: Any) -> None:
    """A snapshot taken (each member), a member added, the snapshot installed on it: one
    INFO line each, in JSON, on the node where it happened."""
    import time

    kv = ("raft_otp.machines.kv:KeyValue", {"release_cursor_every": 10})
    with running_nodes(str(tmp_path), 3, log_level="INFO",
                       extra_args=["--log-format", "json", "--min-snapshot-interval", "8"]) as h:
        ids = [ServerId("kv2", np.name) for np in h.nodes]
        started, _ = raft_otp.start_cluster("default", "kv2", kv, ids[:2], timeout=20)
        assert len(started) == 2
        for i in range(40):
            raft_otp.process_command(ids[0], ["put", f"k{i}", i])
        deadline = time.monotonic() + 10  # the snapshot is written in the background
        while raft_otp.member_overview(ids[0])["log"]["snapshot_index"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        raft_otp.start_server("default", "kv2", ids[2], kv, ids)
        raft_otp.add_member(ids[0], ids[2])
        raft_otp.process_command(ids[0], ["put", "after", 1])
        deadline = time.monotonic() + 10
        while raft_otp.key_metrics(ids[2])["snapshots_installed"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        names = [np.name.split("@")[0] for np in h.nodes]
    docs = {n: [json.loads(x) for x in open(tmp_path / f"{n}.log", encoding="utf-8")]
            for n in names}
    for n in names[:2]:
        taken = [d for d in docs[n] if "snapshot taken at index" in d["message"]]
        assert taken and all(d["level"] == "INFO" for d in taken)
        assert len({d["message"] for d in taken}) == len(taken)  # once each
    installed = [d for d in docs[names[2]] if "installed a snapshot" in d["message"]]
    assert len(installed) == 1 and installed[0]["level"] == "INFO"
    assert installed[0]["server"].startswith("kv2/")
    members = [d for n in names for d in docs[n] if "members now" in d["message"]]
    assert members and all(d["level"] == "INFO" for d in members)
    assert any(ids[2].node in d["message"] for d in members)
    assert len({(d["server"], d["message"]) for d in members}) == len(members)
