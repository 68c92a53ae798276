"""Goal: `raft-otp start --config F` reads the node's keys (node, cookie_file, log_level,
log_format, metrics_port, key_file, allowed_keys) beside the system keys in one file; every key
is type-checked and a bad one is named; keys the file may not set (data_dir, mutations,
log_options.file_io, a [node] table, key files without curve) are refused, not ignored; flags
win over the file; and a full valid file parses to the expected configs and starts a node."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from raft_otp.console.cli import build_parser
from raft_otp.console.common import ConsoleError
from raft_otp.console.node_cmd import _config, _security
from raft_otp.system.config import NodeConfig, SystemConfig


def _parse(tmp_path: Path, text: str, *flags: str, name: str = "node.toml") -> tuple[Any, Any]:
    """(SystemConfig, args) as `raft-otp start --config FILE FLAGS` would make them."""
    cfg = tmp_path / name
    cfg.write_text(text)
    args = build_parser().parse_args(["start", "--data-dir", str(tmp_path / "data"),
                                      "--config", str(cfg), *flags])
    return _config(args, str(tmp_path / "data")), args


def _refused(tmp_path: Path, text: str, *flags: str) -> str:
    with pytest.raises(ConsoleError) as e:
        _parse(tmp_path, text, *flags)
    msg = str(e.value)
    assert msg.startswith(f"bad config {tmp_path / 'node.toml'}: "), msg
    assert not (tmp_path / "data").exists()  # refused before anything was made
    return msg


@pytest.mark.parametrize("text,expected", [
    ('metrics_port = "nine"', "config key 'metrics_port' must be an int; got 'nine' (str)"),
    ("metrics_port = 70000", "config key 'metrics_port' must be an int in 0..65535; got 70000"),
    ("metrics_port = true", "config key 'metrics_port' must be an int; got True (bool)"),
    ('log_level = "loud"', "config key 'log_level' must be one of 'DEBUG', 'INFO', 'WARNING', "
                           "'ERROR', 'CRITICAL'; got 'LOUD' (str)"),
    ("log_level = 3", "config key 'log_level' must be one of 'DEBUG', 'INFO'"),
    ('log_format = "xml"', "config key 'log_format' must be one of 'text', 'json'; got 'xml'"),
    ("node = 7", "config key 'node' must be a str; got 7 (int)"),
    ('node = "n1"', "config key 'node': "),
    ('cookie_file = ""', "config key 'cookie_file' must be a non-empty string; got ''"),
    ("cookie_file = 5", "config key 'cookie_file' must be a str; got 5 (int)"),
    ('transport_security = "curve"\nkey_file = 1',
     "config key 'key_file' must be a str; got 1 (int)"),
    ('transport_security = "curve"\nallowed_keys = ""',
     "config key 'allowed_keys' must be a non-empty string; got ''"),
    ('transport_security = "tls"', "config key 'transport_security' must be one of 'mac', "
                                   "'curve'; got 'tls'"),
    ('wal_max_size_bytes = "abc"', "config key 'wal_max_size_bytes' must be an int; got 'abc'"),
    ('[log_options]\nwal_workers = "4"', "config key 'log_options.wal_workers' must be an int"),
    ("[log_options]\nmeta_sync = 1", "config key 'log_options.meta_sync' must be a bool; got 1"),
])
def test_a_bad_value_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _refused(tmp_path, text + "\n")


@pytest.mark.parametrize("text,expected", [
    ('data_dir = "/var/lib/raft_otp"', "config key 'data_dir' may not be set in a config file: "
                                       "the data dir is given by --data-dir"),
    ('mutations = "reply_before_commit"', "config key 'mutations' may not be set in a config "
                                          "file: safety mutations are for tests only"),
    ('[node]\nname = "n1@127.0.0.1:7001"', "config key 'node' is a table; only log_options is"),
    ('[log_options]\nfile_io = "x"', "config key 'log_options.file_io' may not be set in a "
                                     "config file"),
    ('[log_options]\nwal_sync_method = "none"', "config key 'log_options.wal_sync_method' is a "
                                                "system key: set 'wal_sync_method' itself"),
    ('[log_options]\nwal_workrs = 2', "unknown config key 'log_options.wal_workrs' (did you "
                                      "mean 'wal_workers'?)"),
    ("[log_options]\nextra = 1", "unknown config key 'log_options.extra'"),
    ("metrics_prot = 9100", "unknown config key(s): 'metrics_prot' (did you mean "
                            "'metrics_port'?)"),
    ('key_file = "node.key"', "config key 'key_file' is used only with transport_security = "
                              "'curve'; this node runs 'mac'"),
    ('transport_security = "curve"\nallowed_keys = "a"',
     "config key 'allowed_keys' is used only with transport_security = 'curve'; this node "
     "runs 'mac'"),
])
def test_keys_the_file_may_not_set_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    flags = ("--transport-security", "mac") if "allowed_keys" in text else ()
    assert expected in _refused(tmp_path, text + "\n", *flags)


FULL = """\
# every node key, and system keys with a log option
node = "n7@127.0.0.1:7107"
cookie_file = "secrets/cookie"
log_level = "info"
log_format = "json"
metrics_port = 0
transport_security = "curve"
key_file = "keys/node.key"
allowed_keys = "/etc/raft_otp/allowed_keys"

name = "main"
wal_sync_method = "fsync"
tick_ms = 500
direct_dispatch = false

[log_options]
wal_workers = 2
"""


def test_a_full_valid_file_parses_to_the_expected_configs(tmp_path: Path) -> None:
    cfg, args = _parse(tmp_path, FULL)
    assert args.node_config == NodeConfig(
        node="n7@127.0.0.1:7107", cookie_file=str(tmp_path / "secrets" / "cookie"),
        log_level="INFO", log_format="json", metrics_port=0,
        key_file=str(tmp_path / "keys" / "node.key"),
        allowed_keys="/etc/raft_otp/allowed_keys")
    assert cfg == SystemConfig(name="main", data_dir=str(tmp_path / "data"),
                               wal_sync_method="fsync", tick_ms=500, direct_dispatch=False,
                               transport_security="curve", log_options={"wal_workers": 2})
    sec = _security(args.node_config, cfg, str(tmp_path / "data"))
    assert (sec.mode, sec.key_file, sec.allowed_keys) == \
        ("curve", str(tmp_path / "keys" / "node.key"), "/etc/raft_otp/allowed_keys")


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    cfg, args = _parse(tmp_path, FULL, "--node", "n8@127.0.0.1:7108", "--log-level", "ERROR",
                       "--log-format", "text", "--metrics-port", "9100",
                       "--cookie-file", "/c", "--transport-security", "curve")
    n = args.node_config
    assert (n.node, n.log_level, n.log_format, n.metrics_port, n.cookie_file) == \
        ("n8@127.0.0.1:7108", "ERROR", "text", 9100, "/c")
    assert n.key_file == str(tmp_path / "keys" / "node.key")  # no flag: the file's


def test_no_file_gives_the_defaults(tmp_path: Path) -> None:
    args = build_parser().parse_args(["start", "--data-dir", str(tmp_path / "d")])
    cfg = _config(args, str(tmp_path / "d"))
    assert args.node_config == NodeConfig()
    assert cfg == SystemConfig(data_dir=str(tmp_path / "d"))
    sec = _security(args.node_config, cfg, str(tmp_path / "d"))
    assert sec.mode == "mac"


def test_json_files_work_the_same(tmp_path: Path) -> None:
    data = {"node": "n2@127.0.0.1:7002", "metrics_port": 9200, "tick_ms": 200}
    cfg, args = _parse(tmp_path, json.dumps(data), name="node.json")
    assert args.node_config.metrics_port == 9200 and cfg.tick_ms == 200
    with pytest.raises(ConsoleError, match="config key 'metrics_port' must be an int; got '1'"):
        _parse(tmp_path, json.dumps({"metrics_port": "1"}), name="node.json")


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_a_full_valid_file_starts_a_node(tmp_path: Path) -> None:
    """No --node or --cookie-file flag: the node's name, cookie, logging, metrics port and
    curve key files all come from the file."""
    from raft_otp.console.testing import CliNodes, free_port
    port = free_port()
    allowed = tmp_path / "allowed_keys"  # absent: the node creates it listing itself
    (tmp_path / "secrets").mkdir()
    (tmp_path / "keys").mkdir()
    cookie = tmp_path / "secrets" / "cookie"
    cookie.write_text("a-shared-secret-of-some-length\n")
    cookie.chmod(0o600)
    text = FULL.replace("n7@127.0.0.1:7107", f"n1@127.0.0.1:{port}") \
               .replace("/etc/raft_otp/allowed_keys", str(allowed))
    (tmp_path / "node.toml").write_text(text)
    h = CliNodes(str(tmp_path / "run"), 1)
    nd = h[0]
    try:
        h.start(0, node_arg=False, cookie_arg=False,
                extra=("--config", str(tmp_path / "node.toml")))
        assert nd.lines[0] == (f"raft-otp node n1@127.0.0.1:{port}: data dir {nd.data_dir}, "
                               f"cookie file {cookie}")
        key = tmp_path / "keys" / "node.key"
        assert f"this node accepts the keys in {allowed}" in nd.lines[1]
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert any(ln.startswith("METRICS ") for ln in nd.lines), nd.lines
        assert h.signal_and_wait(0) == 0
    finally:
        h.close()
    assert allowed.read_text().split()[0] == f"n1@127.0.0.1:{port}"
    err = [ln for ln in h.stderr_of(nd).splitlines() if ln.strip()]
    assert err and all(json.loads(ln)["level"] in ("INFO", "WARNING") for ln in err), err[:3]
    with open(os.path.join(nd.data_dir, "NODE")) as f:
        assert f.read().strip() == f"n1@127.0.0.1:{port}"


@pytest.mark.processes
def test_a_key_file_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    from raft_otp.console.testing import CliNodes
    (tmp_path / "node.toml").write_text('transport_security = "curve"\n'
                                        'key_file = "no/such/dir/node.key"\n')
    h = CliNodes(str(tmp_path / "run"), 1)
    r = h.run("start", "--data-dir", h[0].data_dir, "--node", h[0].name,
              "--config", str(tmp_path / "node.toml"))
    assert r.returncode == 1, r
    assert r.stderr.strip().splitlines()[-1] == (
        f"raft-otp: error: cannot create the node's key file "
        f"{tmp_path / 'no/such/dir/node.key'}: No such file or directory")


@pytest.mark.processes
def test_the_cli_prints_a_refused_key_in_one_line(tmp_path: Path) -> None:
    from raft_otp.console.testing import cli_command
    cfg = tmp_path / "node.toml"
    cfg.write_text('data_dir = "/elsewhere"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFT_OTP_")}
    env["HOME"] = str(tmp_path)
    r = subprocess.run([*cli_command(), "start", "--data-dir", str(tmp_path / "d"),
                        "--config", str(cfg)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "config key 'data_dir' may not be set" in lines[0], r.stderr
    assert not (tmp_path / "d").exists()


def test_the_readme_example_file_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml\nnode = ")
    text = readme[start + len("```toml\n"):readme.index("```", start + 7)]
    cfg, args = _parse(tmp_path, text)
    assert args.node_config.log_level == "INFO" and args.node_config.metrics_port == 9101
    assert cfg.transport_security == "curve" and cfg.log_options == {"wal_workers": 4}
