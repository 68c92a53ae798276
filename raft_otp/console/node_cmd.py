"""``raft-otp start``: one node with its default system, in the foreground.

Wraps :func:`raft_otp.system.node_main.run_node`.  SIGTERM and Ctrl-C stop it
in order (servers, then the log tree: the WAL syncs and closes, then the
transport); starting again on the same data dir recovers every server.

The data dir remembers its node name (file ``NODE``): Raft members are
addressed as ``server@node``, so a restart under another name would orphan
them.  ``--node`` may be left out on a restart; a different one is refused.

The data dir has one owner: ``start`` checks the config, then locks the data
dir (``raft_otp.system.datadir_lock``) before it writes anything there; a
second ``start`` on it fails at once, naming the pid that holds it.

``--config FILE`` holds the system keys and the node's own
(:class:`raft_otp.system.config.NodeConfig`: node, cookie_file, log_level,
log_format, metrics_port, key_file, allowed_keys) at its top level; a flag given
on the command line wins over the file.  Every key is checked, and a key the
file may not set (``data_dir``) is refused, before anything is touched.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

from raft_otp.console.common import (DATA_DIR_COOKIE, ConsoleError, check_node_name,
                                     default_cookie_file, ensure_cookie_file, read_cookie_file)
from raft_otp.errors import ConfigError, NodeHalted, RaftError

if TYPE_CHECKING:
    from raft_otp.node.security import Security
    from raft_otp.system.config import NodeConfig

__all__ = ["DEFAULT_NODE", "NODE_FILE", "node_for", "cookie_file_for", "load_config", "cmd_start"]

DEFAULT_NODE = "n1@127.0.0.1:7001"
NODE_FILE = "NODE"


def node_for(data_dir: str, requested: str | None) -> str:
    """The node name for ``data_dir``: the one it was first started with, else ``requested``."""
    path = os.path.join(data_dir, NODE_FILE)
    stored = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            stored = f.readline().strip() or None
    if stored and requested and stored != requested:
        raise ConsoleError(f"data dir {data_dir} belongs to node {stored}; start it as that node "
                           "(or use another data dir)")
    node = requested or stored or DEFAULT_NODE
    check_node_name(node)
    if stored is None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(node + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return node


def _forget_node(data_dir: str) -> None:
    try:
        os.unlink(os.path.join(data_dir, NODE_FILE))
    except OSError:
        pass


def cookie_file_for(data_dir: str, cookie_file: str | None) -> str:
    """``--cookie-file``, else ``DATA_DIR/cookie`` if present, else ``~/.raft_otp_cookie``
    (created 0600 when absent, as Erlang does with ``~/.erlang.cookie``)."""
    if cookie_file:
        read_cookie_file(cookie_file)
        return cookie_file
    in_dir = os.path.join(data_dir, DATA_DIR_COOKIE)
    if os.path.exists(in_dir):
        return in_dir
    return ensure_cookie_file(default_cookie_file())


def load_config(path: str | None) -> dict[str, Any]:
    """A config file, parsed: TOML (``.toml``) or JSON; its keys are those of
    ``SystemConfig`` and ``NodeConfig`` (``raft_otp.system.config.split_config_file``)."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConsoleError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        if path.endswith(".toml"):
            import tomllib
            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw)
    except ValueError as exc:
        raise ConsoleError(f"config {path} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConsoleError(f"config {path} must be a table/object of system settings")
    return data


def cmd_start(args: Any) -> int:
    from raft_otp.system import datadir_lock

    data_dir = os.path.abspath(args.data_dir)
    cfg = _config(args, data_dir)  # touches nothing: a bad setting leaves no trace
    try:
        lock = datadir_lock.acquire(data_dir)
    except OSError as exc:
        raise ConsoleError(f"cannot create data dir {data_dir}: {exc.strerror or exc}") from None
    except RaftError as exc:  # DataDirLocked: another node runs there
        raise ConsoleError(str(exc)) from None
    try:
        return _start_locked(args, data_dir, cfg, lock)
    finally:
        lock.release()


# flag (argparse dest) -> NodeConfig field it overrides
_NODE_FLAGS = {"node": "node", "cookie_file": "cookie_file", "log_level": "log_level",
               "log_format": "log_format", "metrics_port": "metrics_port"}


def _with_flags(args: Any, node_cfg: "NodeConfig") -> "NodeConfig":
    """The file's node settings with each flag given on the command line over them."""
    given = {field: getattr(args, dest) for dest, field in _NODE_FLAGS.items()
             if getattr(args, dest, None) is not None}
    return dataclasses.replace(node_cfg, **given)


def _config(args: Any, data_dir: str) -> Any:
    """The system config (returned) and the node's (``args.node_config``), from
    ``--config`` and the flags, every key checked; ``ConsoleError`` naming the bad one."""
    from raft_otp.system.config import SystemConfig, split_config_file
    where = f"config {args.config}" if args.config else "config"
    try:
        node_cfg, settings = split_config_file(load_config(args.config), args.config)
        node_cfg = _with_flags(args, node_cfg)
        settings.setdefault("name", args.system)
        if getattr(args, "transport_security", None):
            settings["transport_security"] = args.transport_security
        cfg = SystemConfig.from_any(settings).replace(data_dir=data_dir)
        _check_node_keys(node_cfg, cfg.transport_security)
    except RaftError as exc:  # ConfigError: names the key, what it expects, what it got
        raise ConsoleError(f"bad {where}: {exc}") from None
    if node_cfg.node:
        try:
            check_node_name(node_cfg.node)
        except ConsoleError as exc:
            raise ConsoleError(f"bad {where}: config key 'node': {exc}") from None
    args.node_config = node_cfg
    return cfg


def _check_node_keys(node_cfg: "NodeConfig", mode: str) -> None:
    """Key files are curve's: set with ``mac`` they are refused, not ignored."""
    if mode != "curve":
        for key in ("key_file", "allowed_keys"):
            if getattr(node_cfg, key) is not None:
                raise ConfigError(f"config key {key!r} is used only with transport_security "
                                  f"= 'curve'; this node runs {mode!r}")


def _security(node_cfg: "NodeConfig", cfg: Any, data_dir: str) -> "Security":
    """The node's transport security: the config's mode, its key files (default: in the
    data dir)."""
    from raft_otp.node.security import Security
    default = Security.for_data_dir(cfg.transport_security, data_dir)
    if cfg.transport_security != "curve":
        return default
    return Security("curve", node_cfg.key_file or default.key_file,
                    node_cfg.allowed_keys or default.allowed_keys)


def _print_curve_key(node: str, sec: "Security") -> None:
    """Make the node's key (0600) if absent and print the line other nodes and clients
    put in their allowed_keys files."""
    from raft_otp.node import security
    assert sec.key_file is not None  # curve: checked by Security
    try:
        public = security.ensure_key_file(sec.key_file)
    except RaftError as exc:
        raise ConsoleError(str(exc)) from None
    except OSError as exc:  # e.g. key_file in a directory that does not exist
        raise ConsoleError(f"cannot create the node's key file {sec.key_file}: "
                           f"{exc.strerror or exc}") from None
    allowed = sec.allowed_keys
    print(f"raft-otp node {node}: transport_security curve; its allowed_keys line: "
          f"{node} {public.decode()} (this node accepts the keys in {allowed})", flush=True)


def _start_locked(args: Any, data_dir: str, cfg: Any, lock: Any) -> int:
    from raft_otp.system.node_main import run_node

    ns = args.node_config
    cookie_file = cookie_file_for(data_dir, ns.cookie_file)
    fresh = not os.path.exists(os.path.join(data_dir, NODE_FILE))
    node = node_for(data_dir, ns.node)  # recorded only once everything else checked out
    from raft_otp.system.logging_setup import setup as setup_logging
    setup_logging(ns.log_level, ns.log_format)
    print(f"raft-otp node {node}: data dir {data_dir}, cookie file {cookie_file}", flush=True)
    sec = _security(ns, cfg, data_dir)
    if sec.mode == "curve":
        _print_curve_key(node, sec)
    try:
        rc = run_node(data_dir, node, None, cfg, cookie_file=cookie_file, announce=True,
                      dir_lock=lock, metrics_port=ns.metrics_port, transport_security=sec)
    except Exception as exc:  # bind failure, bad data, ...: one line, never a traceback
        if fresh and not isinstance(exc, NodeHalted):
            # it never ran as this node: do not bind the data dir to the name (a node
            # whose root supervisor gave up did run: its members are addressed by it)
            _forget_node(data_dir)
        raise ConsoleError(f"node {node} failed: {exc}") from None
    print(f"raft-otp node {node}: stopped cleanly", flush=True)
    return rc
