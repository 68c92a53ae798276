"""Start and stop systems: one supervision tree per system in its data dir (RA ``ra_system``).

::

    raft_otp (one_for_one)                       root of every system on this node
    └── system:<name> (one_for_all, 1 in 5 s)
        ├── log (rest_for_one, 5 in 5 s)         meta store, segment writer, WAL (raft_otp.log)
        ├── servers (one_for_one)                 one temporary per-server supervisor each
        │   └── <server name> (one_for_one, 2 in 5 s) → server actor (transient)
        └── system actor (registered raft_otp.system.<name>): start/stop/recover servers

Mem tables are owned by the system's log object, outside the log supervisor,
so they survive its restarts (as in RA).  Several systems per node are
isolated: each has its own data dir, WAL, directory and registered names.

A data dir has one owner (``raft_otp.system.datadir_lock``): a system holds
the lock of its data dir from before it touches anything there until
``stop_system`` has closed its log; a second opener gets ``DataDirLocked``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable

from supervisors import ChildSpec, Supervisor
from supervisors.supervisor import NotFound

from raft_otp import protocol
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.errors import BadArgument, SystemNotRunning
from raft_otp.server.context import SystemContext
from raft_otp.system import _log, datadir_lock
from raft_otp.system.config import SystemConfig
from raft_otp.system.directory import Directory
from raft_otp.system.system_actor import SystemActor, actor_name

log = logging.getLogger("raft_otp.system")

_lock = threading.RLock()
_systems: dict[str, "System"] = {}
_root: Supervisor | None = None


class System:
    """Handle of a running system (what ``start_in``/``start_system`` return)."""

    def __init__(self, config: SystemConfig, ctx: SystemContext, infra: Any,
                 dir_lock: datadir_lock.DataDirLock) -> None:
        self.config = config
        self.name = config.name
        self.ctx = ctx
        self.infra = infra
        self.dir_lock = dir_lock                    # released by _close, after the log
        self.sup: Supervisor | None = None          # set by its factory at every (re)start
        self.servers_sup: Supervisor | None = None

    @property
    def data_dir(self) -> str:
        return self.config.data_dir

    @property
    def actor_name(self) -> str:
        return actor_name(self.name)

    def tree(self) -> dict[str, Any]:
        if self.sup is None:
            raise SystemNotRunning(self.name)
        return self.sup.tree()

    def is_alive(self) -> bool:
        return self.sup is not None and self.sup.is_alive()

    def __repr__(self) -> str:
        return f"System({self.name!r}, {self.data_dir!r})"


_root_watchers: list[Callable[[Any], None]] = []


def _root_sup() -> Supervisor:
    global _root
    if _root is None or not _root.is_alive():
        _root = Supervisor([], strategy="one_for_one", intensity=1, period=5.0, id="raft_otp").start()
        _root.add_listener(_root_exited)
    return _root


def _root_exited(reason: Any) -> None:
    """Exit listener of the root supervisor (its control thread): a root that stopped for
    any reason but ``stop_all``'s shutdown has given up (more restarts of a system than
    its intensity allows); the watchers hear of it."""
    if isinstance(reason, str) and reason in ("normal", "shutdown"):
        return
    for fn in list(_root_watchers):
        try:
            fn(reason)
        except Exception:
            log.exception("root supervisor watcher %r failed", fn)


def on_root_gave_up(fn: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``fn(reason)`` when this process's root supervisor gives up; returns an undo.

    The node entry point exits the process non-zero then (``node_main``), as an Erlang
    VM halts when its top supervisor dies; a process that embeds raft_otp decides for
    itself (its systems are gone: ``get_system`` raises ``SystemNotRunning``)."""
    _root_watchers.append(fn)

    def undo() -> None:
        try:
            _root_watchers.remove(fn)
        except ValueError:
            pass
    return undo


def start_system(config: SystemConfig | dict[str, Any], *,
                 dir_lock: datadir_lock.DataDirLock | None = None,
                 rules: Rules | None = None) -> System:
    """Start a named system in ``config.data_dir``; calling it again for the same
    name and dir returns the running system.

    ``rules`` is for testing only: the Raft rules every server of the system applies
    (default: the correct ones, ``raft_otp.core.rules.RAFT_RULES``).  Broken ones come
    from ``raft_otp.testing.mutations.rules_for``; the system then logs a WARNING.

    The data dir is locked first (``DataDirLocked`` if another system, in this
    process or another, holds it), before anything in it is touched.  A caller
    that took the lock itself (the node entry point) passes it as ``dir_lock``;
    the system owns it once started, and the caller keeps it if this raises.
    """
    cfg = SystemConfig.from_any(config)
    if not cfg.data_dir:
        raise BadArgument("a system needs a data_dir")
    cfg = cfg.replace(data_dir=os.path.abspath(cfg.data_dir))
    if dir_lock is not None and (not dir_lock.held or dir_lock.data_dir != cfg.data_dir):
        raise BadArgument(f"dir_lock {dir_lock!r} is not a held lock of {cfg.data_dir}")
    rules = _checked_rules(rules, cfg.name)
    protocol.install()
    with _lock:
        old = _systems.get(cfg.name)
        if old is not None and old.is_alive():
            if old.data_dir != cfg.data_dir:
                raise BadArgument(f"system {cfg.name!r} already runs in {old.data_dir}")
            return old
        for dead in [s for s in _systems.values()
                     if not s.is_alive() and (s.name == cfg.name or s.data_dir == cfg.data_dir)]:
            # its tree gave up (the root's intensity): its log is stopped; free its dir
            del _systems[dead.name]
            _stop_tree(dead.name)
            _close(dead)
        lock = dir_lock if dir_lock is not None else datadir_lock.acquire(cfg.data_dir)
        try:
            system = _open(cfg, lock, rules)
        except BaseException:
            if dir_lock is None:
                lock.release()
            raise
        _systems[cfg.name] = system
        log.info("system %s started in %s", cfg.name, cfg.data_dir)
        return system


def _checked_rules(rules: Rules | None, system: str) -> Rules:
    """``start_system``'s ``rules``: the correct ones by default; any other is loud."""
    if rules is None or rules is RAFT_RULES:
        return RAFT_RULES
    if not isinstance(rules, Rules):
        raise BadArgument(f"rules must be a raft_otp.core.rules.Rules, got {type(rules).__name__}")
    log.warning("!!! system %s: its servers apply %r, not Raft's rules -- deliberately "
                "broken Raft (testing only) !!!", system, rules)
    return rules


def _open(cfg: SystemConfig, lock: datadir_lock.DataDirLock, rules: Rules = RAFT_RULES) -> System:
    """Build and start the system's tree in its (locked) data dir; undone if it fails."""
    from raft_otp.node.runtime import call, node
    from raft_otp.system.system_actor import ServerOpReq
    directory = Directory(cfg.data_dir)
    infra = _log.make(cfg)
    ctx = SystemContext(cfg, node(), infra.log_system, directory, infra.wal_name, rules=rules)
    system = System(cfg, ctx, infra, lock)

    def make_servers_sup() -> Supervisor:
        sup = Supervisor([], strategy="one_for_one", intensity=10, period=5.0, id="servers")
        system.servers_sup = sup
        return sup

    def make_system_sup() -> Supervisor:
        sup = Supervisor([
            ChildSpec.supervisor("log", "rest_for_one", infra.child_specs,
                                 intensity=5, period=5.0),
            ChildSpec(id="servers", start=make_servers_sup, type="supervisor"),
            ChildSpec.actor("system_actor", SystemActor, ctx, system,
                            name=actor_name(cfg.name)),
        ], strategy="one_for_all", intensity=1, period=5.0, id=f"system:{cfg.name}")
        system.sup = sup
        return sup

    spec = ChildSpec(id=spec_id(cfg.name), start=make_system_sup, type="supervisor",
                     restart="transient")
    root = _root_sup()
    try:
        root.delete_child(spec.id)
    except Exception:
        pass
    try:
        root.start_child(spec)
        # wait until the system actor has recovered every server in the directory
        call(actor_name(cfg.name), ServerOpReq("is_running", ""), 300.0)
    except BaseException:
        _stop_tree(cfg.name)
        infra.close()
        raise
    return system


def spec_id(name: str) -> str:
    return f"system:{name}"


def _stop_tree(name: str) -> None:
    root = _root_sup()
    try:
        root.terminate_child(spec_id(name))
        root.delete_child(spec_id(name))
    except NotFound:
        pass


def _close(system: System) -> None:
    """After its tree stopped: close the system's log, then give up its data dir."""
    try:
        close = getattr(system.infra, "close", None)
        if close is not None:
            close()
    finally:
        system.dir_lock.release()


def start_in(data_dir: str, name: str = "default", **options: Any) -> System:
    """Start (or return) the system ``name`` in ``data_dir``; ``options`` are
    ``SystemConfig`` fields (an unknown or ill-typed one raises ``ConfigError``)."""
    return start_system({**options, "name": name, "data_dir": data_dir})


def stop_system(system: "System | str", timeout: float = 30.0) -> None:
    """Stop every server of the system, then its log (WAL synced), then release its
    data dir; the data stays on disk."""
    name = system.name if isinstance(system, System) else system
    with _lock:
        sysobj = _systems.pop(name, None)
        if sysobj is None:
            raise SystemNotRunning(f"system {name!r} is not running")
        _stop_tree(name)
        _close(sysobj)
    log.info("system %s stopped", name)


def get_system(system: "System | str") -> System:
    name = system.name if isinstance(system, System) else system
    s = _systems.get(name)
    if s is None or not s.is_alive():
        raise SystemNotRunning(f"system {name!r} is not running on this node")
    return s


def systems() -> list[System]:
    return [s for s in _systems.values() if s.is_alive()]


def stop_all(timeout: float = 30.0) -> None:
    """Stop every system (node shutdown), then the root supervisor."""
    global _root
    for s in list(_systems.values()):
        try:
            stop_system(s, timeout)
        except SystemNotRunning:
            pass
    with _lock:
        if _root is not None:
            _root.stop()
            _root = None


def _register_system_wire() -> None:
    """Kept for callers: the system actor's requests (codes 70..72) are in the one table
    of ``raft_otp.protocol.messages``."""
    protocol.install()
