"""The node entry point: transport + default system + recovery, until SIGTERM/SIGINT.

``run_node`` is what the console, the tests, the benchmarks and the fault
harness start in each node process::

    python -m raft_otp.system --data-dir D --node n1@127.0.0.1:7001 --cookie-file F

Startup order: the data dir's lock (``raft_otp.system.datadir_lock``: a second
node on the same data dir stops here, before it binds a port), node transport,
wire types, the default system in ``data_dir`` (its system actor recovers every
server in the directory), the admin status provider; then ``READY <node>`` on
stdout.  Shutdown order on a signal: every system (servers first, then the log
tree: the WAL syncs and closes, then the lock is released), then the transport.

``main`` reports an expected failure (a bad setting, a locked data dir, a
corrupt file) as one line on stderr and exit status 1 (2 for bad arguments).

When the root supervisor gives up (``runtime.on_root_gave_up``), nothing is left
to serve: the node logs why, closes what remains (transport, data dir lock) and
``run_node`` raises ``NodeHalted``, so the process exits with status 1 within
about a second, as an Erlang VM halts when its top supervisor dies; the
supervisor above it (systemd, Kubernetes, ``raft-otp``'s own) restarts it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, NoReturn

from raft_otp.errors import BadArgument, ConfigError, NodeHalted, RaftError
from raft_otp.system import datadir_lock
from raft_otp.system.config import SystemConfig

if TYPE_CHECKING:
    from raft_otp.core.rules import Rules
    from raft_otp.node.security import Security

log = logging.getLogger("raft_otp.system")


def status() -> dict[str, Any]:
    """What the admin endpoint's ``status`` request returns for the system layer."""
    from raft_otp.system import runtime
    out: dict[str, Any] = {}
    for s in runtime.systems():
        try:
            from raft_otp.node import runtime as node_rt
            from raft_otp.system.system_actor import SystemOverviewReq
            ov = node_rt.call(s.actor_name, SystemOverviewReq(), 10.0)
        except Exception as exc:  # status must answer even when a system is unwell
            ov = {"error": repr(exc)}
        servers = ov.get("servers", {}) if isinstance(ov, dict) else {}
        clusters: dict[str, Any] = {}
        for name, sv in servers.items():
            clusters.setdefault(sv.get("cluster", "?"), []).append(name)
        out[s.name] = {"data_dir": s.data_dir, "clusters": clusters, **ov}
    return out


DEFAULT_DETECTION_MS = 1000


def node_config(detection_ms: int = DEFAULT_DETECTION_MS) -> Any:
    """Transport settings of a raft_otp node: heartbeats every 100 ms, node_down after
    ``detection_ms`` of silence.  The node layer's own default (500 ms) gives false
    node_down verdicts when a 2-core host is saturated (1,000 clusters starting),
    which start election storms; 1 s plus the node_down election timeout (1-2 s)
    stays within two election timeouts."""
    from raft_otp.node.transport import NodeConfig
    return NodeConfig(heartbeat_interval_ms=100.0, down_after_missed=max(2, detection_ms // 100))


def run_node(data_dir: str, node_name: str, cookie: str | None,
             config: SystemConfig | dict[str, Any] | None = None, *,
             cookie_file: str | None = None, stop_event: threading.Event | None = None,
             announce: bool = True, detection_ms: int = DEFAULT_DETECTION_MS,
             dir_lock: datadir_lock.DataDirLock | None = None,
             metrics_port: int | None = None,
             transport_security: Security | None = None,
             rules: Rules | None = None) -> int:
    """Run a node until SIGTERM/SIGINT (or ``stop_event``); returns an exit code.

    ``rules`` is for testing only: broken Raft rules for every server of the node's
    system (``raft_otp.testing.nemesis_node`` passes them; see ``start_system``).

    ``transport_security`` (key files included) defaults to the config's mode with the
    key files in the data dir (``Security.for_data_dir``).

    ``metrics_port`` (0: a free one) serves Prometheus ``/metrics`` on the node's host
    (``raft_otp.system.metrics_http``); with ``announce`` the node prints
    ``METRICS host:port`` before ``READY``.

    Locks the data dir first (``DataDirLocked`` if another owner holds it), unless
    the caller passes the lock it took (``dir_lock``); either way the lock is
    released when this returns or raises."""
    cfg = SystemConfig.from_any(config) if config is not None else SystemConfig()
    if not (data_dir or cfg.data_dir):
        raise ConfigError("a node needs a data dir")
    cfg = cfg.replace(data_dir=os.path.abspath(data_dir or cfg.data_dir))
    lock = dir_lock if dir_lock is not None else datadir_lock.acquire(cfg.data_dir)
    try:
        return _run_locked(cfg, lock, node_name, cookie, cookie_file, stop_event, announce,
                           detection_ms, metrics_port, transport_security, rules)
    finally:
        lock.release()  # the system released it already unless it failed to start


def _run_locked(cfg: SystemConfig, lock: datadir_lock.DataDirLock, node_name: str,
                cookie: str | None, cookie_file: str | None, stop_event: threading.Event | None,
                announce: bool, detection_ms: int, metrics_port: int | None = None,
                transport_security: Security | None = None, rules: Rules | None = None) -> int:
    from raft_otp.node import runtime as node_rt
    from raft_otp.system import runtime

    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: Any) -> None:
            stop.set()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    gave_up: list[Any] = []

    def root_gave_up(reason: Any) -> None:
        gave_up.append(reason)
        stop.set()

    unwatch = runtime.on_root_gave_up(root_gave_up)
    from raft_otp.node.security import Security
    node_rt.start_node(node_name, cookie, cookie_file=cookie_file, config=node_config(detection_ms),
                       transport_security=transport_security or Security.for_data_dir(
                           cfg.transport_security, cfg.data_dir))
    metrics = None
    try:
        system = runtime.start_system(cfg, dir_lock=lock, rules=rules)
        node_rt.set_status_provider(status)
        n = len(system.ctx.directory)
        log.info("node %s: system %s up in %s with %d servers", node_name, cfg.name, cfg.data_dir, n)
        if metrics_port is not None:
            from raft_otp.system.metrics_http import serve
            metrics = serve(metrics_port, _node_host(node_name))
            if announce:
                print(f"METRICS {metrics.host}:{metrics.port}", flush=True)
        if announce:
            print(f"READY {node_name} {n}", flush=True)
        while not stop.wait(0.5):
            pass
        if gave_up:
            log.critical("node %s: its root supervisor gave up (%s); the node stops and exits "
                         "non-zero", node_name, gave_up[0])
            if threading.current_thread() is threading.main_thread():  # the process is ours
                _exit_if_stuck(HALT_CLEANUP_S)
        else:
            log.info("node %s: shutting down", node_name)
    finally:
        unwatch()
        if metrics is not None:
            metrics.close()
        node_rt.set_status_provider(None)
        runtime.stop_all()
        node_rt.stop_node()
    if gave_up:
        raise NodeHalted(f"node {node_name}: root supervisor gave up: {gave_up[0]}")
    return 0


def _node_host(node_name: str) -> str:
    """The host of ``name@host:port``: the metrics endpoint listens where the node does."""
    return node_name.rpartition("@")[2].rpartition(":")[0] or "127.0.0.1"


HALT_CLEANUP_S = 10.0
HALT_EXIT_STATUS = 1


def _exit_if_stuck(delay_s: float) -> None:
    """After the root gave up, what is left (the transport, the data dir lock) is closed
    in order; should that hang, the process still exits non-zero after ``delay_s``."""
    def watchdog() -> None:
        log.critical("node shutdown after the root supervisor gave up took over %.0f s; exiting",
                     delay_s)
        logging.shutdown()
        os._exit(HALT_EXIT_STATUS)
    t = threading.Timer(delay_s, watchdog)
    t.daemon = True
    t.start()


def _level_arg(text: str) -> str:
    from raft_otp.system.logging_setup import check_level
    try:
        return check_level(text)
    except BadArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port_arg(text: str) -> int:
    from raft_otp.system.metrics_http import check_port
    try:
        return check_port(int(text), "--metrics-port")
    except (ValueError, BadArgument):
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535 (0: any free port), "
                                         f"got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def main(argv: list[str] | None = None, *, rules: Rules | None = None) -> int:
    """The command line of a node.  ``rules`` (testing only, not an option) goes to
    ``run_node``: ``raft_otp.testing.nemesis_node`` starts mutated nodes this way."""
    p = _Parser(prog="python -m raft_otp.system", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--node", required=True, help="name@host:port")
    p.add_argument("--cookie-file")
    p.add_argument("--cookie")
    p.add_argument("--system", default="default")
    p.add_argument("--wal-sync-method", default="datasync", choices=["datasync", "fsync", "none"])
    p.add_argument("--broadcast-time-ms", type=int, default=100)
    p.add_argument("--min-snapshot-interval", type=int, default=4096)
    p.add_argument("--detection-ms", type=int, default=DEFAULT_DETECTION_MS,
                   help="silence after which a peer node is declared down")
    p.add_argument("--switch-interval-ms", type=float, default=None,
                   help="sys.setswitchinterval for this node (Python's default: 5 ms)")
    p.add_argument("--log-level", default="WARNING", type=_level_arg,
                   help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default WARNING)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one JSON object per line (raft_otp.system.logging_setup)")
    p.add_argument("--metrics-port", type=_port_arg, default=None, metavar="PORT",
                   help="serve Prometheus /metrics on the node's host at PORT (0: a free "
                   "port, printed as 'METRICS host:port')")
    p.add_argument("--transport-security", default="mac", choices=["mac", "curve"],
                   help="curve: keys in DATA_DIR/node.key and DATA_DIR/allowed_keys")
    a = p.parse_args(argv)
    from raft_otp.system.logging_setup import setup as setup_logging
    setup_logging(a.log_level, a.log_format)
    if a.switch_interval_ms is not None:
        sys.setswitchinterval(a.switch_interval_ms / 1000.0)
    try:
        cfg = SystemConfig(name=a.system, data_dir=a.data_dir, wal_sync_method=a.wal_sync_method,
                           broadcast_time_ms=a.broadcast_time_ms,
                           min_snapshot_interval=a.min_snapshot_interval,
                           transport_security=a.transport_security)
    except BadArgument as exc:  # ConfigError: names the key, what it expects, what it got
        p.error(str(exc))
    try:
        return run_node(a.data_dir, a.node, a.cookie, cfg, cookie_file=a.cookie_file,
                        detection_ms=a.detection_ms, metrics_port=a.metrics_port, rules=rules)
    except RaftError as exc:  # a locked data dir, a corrupt file, ...: one line, no traceback
        sys.stderr.write(f"{p.prog}: error: {exc}\n")
        return 1
