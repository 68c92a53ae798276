"""The server actor's seams: the pure core, the log's meta store, the node transport.

Every call the server actor makes into another layer goes through this module,
so the actor reads as "events in, effects out" and the joints are in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from raft_otp.core import events as ev
from raft_otp.core.types import ServerId

log = logging.getLogger("raft_otp.server")


# ---- core ---------------------------------------------------------------------------

def init(*, server_id: ServerId, uid: str, cluster_name: str, initial_members: list[ServerId],
         machine: Any, log: Any, config: Any, rng: Any) -> tuple[Any, list[Any]]:
    """Build the core state from the log's durable meta and snapshot; return (state, effects)."""
    from raft_otp.core import server as core_server
    from raft_otp.core.config import ServerConfig, ServerMeta

    cfg = ServerConfig(
        id=server_id, cluster_name=cluster_name, initial_members=tuple(initial_members),
        max_append_entries_rpc_batch_size=config.max_append_entries_rpc_batch_size,
        max_pipeline_count=config.max_pipeline_count)
    meta = load_meta(log)
    return core_server.init(cfg, log, machine, ServerMeta(*meta), rng)


def handle(state: Any, event: Any) -> tuple[Any, list[Any]]:
    from raft_otp.core.server import handle as core_handle
    return core_handle(state, event)


def view(state: Any) -> dict[str, Any]:
    """The few core facts the actor reports (never mutated here)."""
    mo = None
    try:
        mo = state.machine.overview(state.machine_state)
    except Exception:
        pass
    return {"role": state.role, "term": state.term, "leader": state.leader_id,
            "commit_index": state.commit_index, "last_applied": state.last_applied,
            "voted_for": state.voted_for, "machine_overview": mo}


def release_cursor(state: Any, effect: Any) -> None:
    log.warning("machine effect %r reached the server actor; the core should handle it", effect)


# ---- meta (term, voted_for, last_applied) ---------------------------------------------

def load_meta(server_log: Any) -> tuple[int, ServerId | None, int]:
    m = server_log.read_meta()
    term, voted_for, last_applied = m
    if voted_for is not None and not isinstance(voted_for, ServerId):
        voted_for = ServerId(voted_for[0], voted_for[1])
    return term, voted_for, last_applied


def persist_meta(server_log: Any, term: int, voted_for: ServerId | None) -> None:
    server_log.persist_meta(term, voted_for)


def persist_last_applied(server_log: Any, index: int) -> None:
    server_log.persist_last_applied(index)


# ---- node transport ---------------------------------------------------------------

def send(to: Any, message: Any) -> None:
    """Location-transparent send to ``(name, node)``; failures are dropped (Raft retries)."""
    from raft_otp import node as node_mod
    try:
        node_mod.send((to[0], to[1]), message)
    except Exception as exc:  # unknown name, node down, queue full: Raft retries
        log.debug("send to %s failed: %r", to, exc)


def subscribe_node_events(ref: Any) -> Any:
    from raft_otp import node as node_mod
    return node_mod.subscribe_node_events(lambda event: _node_event(ref, event))


def _node_event(ref: Any, event: Any) -> None:
    kind, node = _node_event_fields(event)
    msg = ev.NodeDown(node) if kind == "node_down" else ev.NodeUp(node)
    try:
        ref.tell(msg)
    except Exception:
        pass


def _node_event_fields(event: Any) -> tuple[str, str]:
    if isinstance(event, (tuple, list)):
        return event[0], event[1]
    return getattr(event, "kind"), getattr(event, "node")


def unsubscribe(sub: Any) -> None:
    if sub is None:
        return
    from raft_otp import node as node_mod
    try:
        node_mod.unsubscribe_node_events(sub)
    except Exception:
        pass


def monitor_server(target: ServerId, watcher: Any, local_node: str) -> Any:
    """Monitor a server actor, local or remote; its DOWN reaches ``watcher``."""
    if target.node == local_node:
        from supervisors.monitors import monitor
        from supervisors.registry import whereis
        ref = whereis(target.name)
        if ref is None:
            watcher.tell(ev.LeaderDown(target))
            return None
        return ("local", monitor(ref, watcher))
    from raft_otp import node as node_mod
    return ("remote", node_mod.monitor_remote((target.name, target.node), watcher))


def demonitor(handle: Any) -> None:
    if handle is None:
        return
    kind, mref = handle
    try:
        if kind == "local":
            from supervisors.monitors import demonitor as dm
            dm(mref)
        else:
            from raft_otp import node as node_mod
            node_mod.demonitor_remote(mref)
    except Exception:
        pass


def monitor_wal(ctx: Any, watcher: Any) -> Any:
    """Watch the system's WAL actor: its DOWN becomes ``WalDown``."""
    if not ctx.wal_name:
        return None
    from supervisors.monitors import monitor
    from supervisors.registry import whereis
    ref = whereis(ctx.wal_name)
    if ref is None:
        return None
    return monitor(ref, watcher)


def machine_monitor(actor: Any, effect: Any) -> None:
    log.debug("%s: machine monitor effects are not supported yet (%r)", actor.id, effect)


def translate_foreign(actor: Any, message: Any) -> Any:
    """Messages from other layers (monitor DOWNs, node events) as core events, or None."""
    from supervisors.monitors import Down
    if isinstance(message, Down):
        if actor._wal_mon is not None and message.ref == actor._wal_mon:
            actor._wal_mon = None
            return ev.WalDown()
        return actor.leader_down(message.target, message.reason)
    name = type(message).__name__
    if name in ("RemoteDown", "Down"):
        return actor.leader_down(getattr(message, "target", None), getattr(message, "reason", None))
    return None
