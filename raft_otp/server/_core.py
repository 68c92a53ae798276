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
         machine: Any, machine_config: Any, log: Any, meta: tuple[Any, ...], config: Any,
         rng: Any, rules: Any = None) -> tuple[Any, list[Any]]:
    """Build the core state from the durable meta, snapshot and log; return (state, effects).
    ``rules``: the system's Raft rules (``SystemContext.rules``); None: the correct ones."""
    from raft_otp.core.config import ServerConfig, ServerMeta
    from raft_otp.core.server import init_server

    cfg = ServerConfig(
        id=server_id, cluster_name=cluster_name, initial_members=tuple(initial_members),
        machine_config=machine_config,
        max_append_entries_rpc_batch_size=config.max_append_entries_rpc_batch_size,
        max_pipeline_count=config.max_pipeline_count,
        commit_notify_delay_ms=getattr(config, "commit_notify_delay_ms", 5),
        max_command_bytes=getattr(config, "max_command_bytes", 1_048_576),
        on_machine_error=getattr(config, "on_machine_error", "reply"),
        tick_ms=getattr(config, "tick_ms", 1000),
        rules=_rules(rules))
    term, voted_for, last_applied, vote_unproven, data_lost, durable_commit = meta
    if voted_for is not None and not isinstance(voted_for, ServerId):
        voted_for = ServerId(voted_for[0], voted_for[1])
    state, effects = init_server(cfg, log, machine, ServerMeta(term, voted_for, last_applied, vote_unproven,
                                                               durable_commit, data_lost), rng)
    if state.data_lost is not None:
        _log_fence(server_id, "lost log it had (its log ends at %d, below the durable commit index %d, "
                   "or the log layer reported a loss): it will not vote until it has caught up from a "
                   "leader of a term after %d", state.log.last_index_term()[0], durable_commit, state.data_lost)
    if state.vote_unproven:
        _log_fence(server_id, "cannot prove its last vote (damaged meta): it will not vote until every "
                   "other voter has told it its term")
    return state, effects


def _log_fence(server_id: ServerId, fmt: str, *args: Any) -> None:
    log.warning("%s: " + fmt, server_id, *args)


def _rules(rules: Any) -> Any:
    """The Raft rules a server applies: the correct ones unless the system was started
    with others (``start_system(cfg, rules=...)``, testing only)."""
    from raft_otp.core.rules import RAFT_RULES
    return RAFT_RULES if rules is None else rules


from raft_otp.core.server import handle  # noqa: E402  (the hot path: no wrapper)


def view(state: Any) -> dict[str, Any]:
    """The few core facts the actor reports (never mutated here)."""
    mo = None
    try:
        mo = state.machine.overview(state.machine_state)
    except Exception:
        pass
    return {"role": state.role, "term": state.term, "leader": state.leader_id,
            "commit_index": state.commit_index, "last_applied": state.last_applied,
            "voted_for": state.voted_for, "machine_overview": mo,
            "vote_unproven": state.vote_unproven, "data_lost": state.data_lost}


# ---- meta (term, voted_for, last_applied): the system's meta store, keyed by uid ----------

def load_meta(meta_store: Any, uid: str) -> tuple[Any, ...]:
    """(term, voted_for, last_applied, vote_unproven, data_lost, durable_commit)."""
    return tuple(meta_store.get(uid)) + tuple(meta_store.get_fences(uid))


def persist_meta(meta_store: Any, uid: str, term: int, voted_for: ServerId | None,
                 vote_unproven: bool = False, data_lost: int | None = None) -> None:
    meta_store.store_term_vote(uid, term, list(voted_for) if voted_for is not None else None,
                               vote_unproven, data_lost)


def persist_last_applied(meta_store: Any, uid: str, index: int, durable_commit: int = 0,
                         sync: bool = False) -> None:
    meta_store.store_last_applied(uid, index, durable_commit)
    if sync:
        meta_store.flush()  # synced on return


# ---- node transport ---------------------------------------------------------------

def send(to: Any, message: Any) -> None:
    """Location-transparent send to ``(name, node)``; failures are dropped (Raft retries)."""
    try:
        _node_send((to[0], to[1]), message)
    except Exception as exc:  # unknown name, node down, queue full: Raft retries
        log.debug("send to %s failed: %r", to, exc)


def send_same(name: str, nodes: list[str], message: Any) -> None:
    """One message to the server ``name`` on each of ``nodes`` (encoded once)."""
    try:
        _node_send_same(name, nodes, message)
    except Exception as exc:  # as send: Raft retries
        log.debug("send to %s on %s failed: %r", name, nodes, exc)


def subscribe_node_events(ref: Any) -> Any:
    """node_down/node_up of the failure detector as core events (None without a node)."""
    from raft_otp.node import runtime as node_mod
    if not node_mod.is_started():
        return None

    def on_event(event: Any) -> None:
        msg = ev.NodeDown(event.node) if event.kind == "node_down" else ev.NodeUp(event.node)
        try:
            ref.tell(msg)
        except Exception:
            pass
    return node_mod.subscribe_node_events(on_event)


def node_is_up(node: str) -> bool:
    """Whether the failure detector hears ``node`` now (True without a node transport)."""
    from raft_otp.node import runtime as node_mod
    if not node_mod.is_started():
        return True
    return node in node_mod.nodes()


def connect_nodes(nodes: Any) -> None:
    """Open links to the nodes of our cluster's members (errors are ignored: a bad
    name is refused when something is sent to it)."""
    from raft_otp.node import runtime as node_mod
    for node in nodes:
        try:
            node_mod.connect(node)
        except Exception as exc:
            log.debug("connect to %s failed: %r", node, exc)


def node_known_down(node: str) -> bool:
    """Whether the failure detector knows ``node`` down (a node never contacted is
    not; False without a node transport)."""
    from raft_otp.node import runtime as node_mod
    return node_mod.node_known_down(node)


def unsubscribe(sub: Any) -> None:
    if sub is not None:
        from raft_otp.node import runtime as node_mod
        node_mod.unsubscribe_node_events(sub)


def monitor_server(target: ServerId, watcher: Any, local_node: str) -> Any:
    """Monitor a server actor, local or remote; its ``supervisors.Down`` reaches ``watcher``."""
    from raft_otp.node import runtime as node_mod
    try:
        return node_mod.monitor_remote((target.name, target.node), watcher)
    except Exception as exc:  # no node started and a remote target: treat as down
        log.debug("cannot monitor %s: %r", target, exc)
        watcher.tell(ev.LeaderDown(target))
        return None


def demonitor(handle: Any) -> None:
    if handle is not None:
        from raft_otp.node import runtime as node_mod
        try:
            node_mod.demonitor_remote(handle)
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


def machine_monitor(target: Any, watcher: Any) -> Any:
    """Monitor a machine's ``(name, node)`` target for the leader: one
    ``supervisors.Down`` reaches ``watcher`` (reason ``'noproc'`` when there is no
    such actor, ``'noconnection'`` when its node is unreachable)."""
    from raft_otp.node import runtime as node_mod
    return node_mod.monitor_remote((target[0], target[1]), watcher)


def down_reason(reason: Any) -> Any:
    """A DOWN reason as a plain, msgpack-able value for the ``["down", ...]`` command."""
    if reason is None or isinstance(reason, (str, int, float, bool)):
        return reason
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return repr(reason)


from raft_otp.node.runtime import send as _node_send  # noqa: E402  (the hot path: no import per call)
from raft_otp.node.runtime import send_same as _node_send_same  # noqa: E402
