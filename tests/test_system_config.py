"""Goal: every SystemConfig field is checked when the config is made, by every way a user
gives it (SystemConfig, the API's dict and keywords, `raft-otp start --config`, the node
entry's flags): a ConfigError (a BadArgument) names the key, what it expects and what it
got, before anything is created; the CLIs print it as one line, never a traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import pytest

import raft_otp
from raft_otp.errors import BadArgument, ConfigError
from raft_otp.system.config import SystemConfig
from raft_otp.system.node_main import main as node_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = [f.name for f in dataclasses.fields(SystemConfig)]


class Alien:
    """A value of a type no config field takes."""

    def __repr__(self) -> str:
        return "<alien>"


def test_defaults_are_valid_and_config_error_is_a_bad_argument() -> None:
    c = SystemConfig()
    assert c.max_command_bytes == 1_048_576 and c.on_machine_error == "reply"
    assert issubclass(ConfigError, BadArgument)


@pytest.mark.parametrize("key", FIELDS)
def test_every_field_refuses_a_value_of_the_wrong_type(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        SystemConfig(**{key: Alien()})
    assert repr(key) in str(e.value) and "<alien>" in str(e.value)


@pytest.mark.parametrize("key,value,expects", [
    ("wal_max_size_bytes", "abc", "an int"),
    ("wal_max_size_bytes", True, "an int"),          # a bool is not a size
    ("wal_max_size_bytes", 1.5, "an int"),
    ("wal_max_size_bytes", 0, "an int >= 1"),
    ("tick_ms", -5, "an int >= 1"),
    ("commit_notify_delay_ms", -1, "an int >= 0"),
    ("min_snapshot_interval", -1, "an int >= 0"),
    ("max_command_bytes", 0, "an int >= 1"),
    ("max_command_bytes", "1MiB", "an int"),
    ("on_machine_error", "ignore", "one of 'reply', 'crash'"),
    ("on_machine_error", None, "one of 'reply', 'crash'"),
    ("wal_sync_method", "sometimes", "one of 'datasync', 'fsync', 'none'"),
    ("direct_dispatch", 1, "a bool"),
    ("direct_dispatch", "yes", "a bool"),
    ("name", "", "a non-empty string"),
    ("name", 7, "a str"),
    ("data_dir", b"/tmp", "a str"),
    ("log_options", [], "a dict"),
    ("log_options", {1: "x"}, "a dict[str, Any]"),
])
def test_the_error_names_key_expected_type_and_value(key: str, value: Any, expects: str) -> None:
    with pytest.raises(ConfigError) as e:
        SystemConfig(**{key: value})
    msg = str(e.value)
    assert f"config key {key!r} must be {expects}; got {value!r} ({type(value).__name__})" == msg


@pytest.mark.parametrize("key,good", [
    ("max_command_bytes", 1), ("on_machine_error", "crash"), ("commit_notify_delay_ms", 0),
    ("min_snapshot_interval", 0), ("direct_dispatch", False), ("wal_sync_method", "none"),
    ("log_options", {"wal_workers": 2, "meta_sync": False}),
])
def test_good_values_pass(key: str, good: Any) -> None:
    assert getattr(SystemConfig(**{key: good}), key) == good


def test_log_options_that_are_log_config_fields_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"'log_options.wal_workers' must be an int; got '4'"):
        SystemConfig(log_options={"wal_workers": "4"})
    with pytest.raises(ConfigError, match=r"'log_options.meta_sync' must be a bool; got 1"):
        SystemConfig(log_options={"meta_sync": 1})


def test_log_options_refuse_unknown_keys_and_system_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'log_options.wal_workrs' "
                       r"\(did you mean 'wal_workers'\?\); log_options takes .*wal_workers"):
        SystemConfig(log_options={"wal_workrs": 2})
    with pytest.raises(ConfigError, match=r"'log_options.wal_sync_method' is a system key: "
                       r"set 'wal_sync_method' itself"):
        SystemConfig(log_options={"wal_sync_method": "none"})
    with pytest.raises(ConfigError, match=r"unknown config key 'log_options.extra'"):
        SystemConfig(log_options={"extra": {}})


def test_mutations_are_not_a_config_key() -> None:
    """Broken Raft rules come only from start_system(rules=...) in tests (test_system_mutations)."""
    with pytest.raises(ConfigError, match="unknown system config key.*'mutations'"):
        SystemConfig.from_any({"mutations": "no_such_flag"})


def test_unknown_keys_are_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as e:
        SystemConfig.from_any({"wal_max_size": 1, "bogus": 2})
    assert str(e.value) == ("unknown system config key(s): 'bogus', "
                            "'wal_max_size' (did you mean 'wal_max_size_bytes'?)")
    with pytest.raises(ConfigError, match="'tick'"):
        SystemConfig().replace(tick=5)
    with pytest.raises(ConfigError, match="'tick_ms' must be an int"):
        SystemConfig().replace(tick_ms="5")
    with pytest.raises(ConfigError, match="must be a SystemConfig or dict"):
        SystemConfig.from_any([("tick_ms", 5)])  # type: ignore[arg-type]


def test_api_refuses_before_anything_is_created(tmp_path: Any) -> None:
    d = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"'wal_max_size_bytes' must be an int; got 'abc'"):
        raft_otp.start_in(str(d), name="cfg1", wal_max_size_bytes="abc")
    with pytest.raises(ConfigError, match="'wal_max_sise_bytes'"):
        raft_otp.start_in(str(d), name="cfg1", wal_max_sise_bytes=1)
    with pytest.raises(ConfigError, match="'on_machine_error' must be one of"):
        raft_otp.start_system({"name": "cfg1", "data_dir": str(d), "on_machine_error": "log"})
    assert not d.exists()
    with pytest.raises(raft_otp.SystemNotRunning):
        raft_otp.overview("cfg1")


def _cli(*args: str, env_home: str) -> subprocess.CompletedProcess[str]:
    from raft_otp.console.testing import cli_command
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFT_OTP_")}
    env.update(HOME=env_home, PYTHONPATH=REPO)
    return subprocess.run([*cli_command(), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _one_line(r: subprocess.CompletedProcess[str], rc: int, *needles: str) -> None:
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.processes
@pytest.mark.parametrize("name,text,needles", [
    ("bad.toml", 'wal_max_size_bytes = "abc"\n',
     ("bad config", "bad.toml", "'wal_max_size_bytes' must be an int; got 'abc' (str)")),
    ("bad.json", json.dumps({"max_command_bytes": -1}),
     ("'max_command_bytes' must be an int >= 1; got -1",)),
    ("bad2.toml", 'on_machine_error = "ignore"\n[log_options]\nwal_workers = 2\n',
     ("'on_machine_error' must be one of 'reply', 'crash'; got 'ignore'",)),
    ("typo.toml", "tick = 100\n", ("unknown config key(s): 'tick' (did you mean 'tick_ms'?)",)),
    ("broken.toml", "tick_ms = \n", ("does not parse",)),
])
def test_raft_otp_start_reports_a_bad_config_file_in_one_line(
        tmp_path: Any, name: str, text: str, needles: tuple[str, ...]) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    d = tmp_path / "data"
    r = _cli("start", "--data-dir", str(d), "--config", str(cfg), env_home=str(tmp_path))
    _one_line(r, 1, "raft-otp: error:", *needles)
    assert not d.exists()  # refused before the data dir was made


@pytest.mark.processes
def test_node_entry_point_reports_a_bad_flag_in_one_line(tmp_path: Any) -> None:
    d = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "raft_otp.system", "--data-dir", str(d),
                        "--node", "n1@127.0.0.1:1", "--broadcast-time-ms", "0"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": REPO})
    _one_line(r, 2, "python -m raft_otp.system: error:",
              "'broadcast_time_ms' must be an int >= 1; got 0")
    assert not d.exists()


def test_node_entry_point_exits_2_on_a_bad_value(capsys: Any, tmp_path: Any) -> None:
    with pytest.raises(SystemExit) as e:
        node_main(["--data-dir", str(tmp_path / "d"), "--node", "n@127.0.0.1:1",
                   "--min-snapshot-interval", "-3"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m raft_otp.system: error: config key 'min_snapshot_interval' "
                   "must be an int >= 0; got -3 (int)"]
