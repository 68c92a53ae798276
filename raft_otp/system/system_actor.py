"""The system actor: a system's registered front door on its node (RA: ``ra_server_sup_sup``
API + ``ra_system_recover``).

Registered as ``raft_otp.system.<name>``, it starts, stops, restarts and
deletes the servers of its system, on behalf of local callers and of other
nodes (``start_cluster`` of a remote member arrives here through the
transport).  On start it brings back every server in the system's directory:
a restarted node recovers its servers by itself.

``start_server`` refuses, before it writes anything: a name that breaks the rule
of ``raft_otp.system.names`` (BadArgument), a server name that exists on this
node, and a cluster name that a *different* cluster uses on this node, that is,
a local server of that cluster name that is not among the new server's members
(AlreadyStarted, naming the servers).  A remote caller may not use our API, so
these checks are made here as well as in ``raft_otp.api``.

Each server runs under its own per-server supervisor (one_for_one, 2 restarts
in 5 s as RA), a *temporary* child of the system's server supervisor: a server
whose restarts are exhausted stays down and does not take its system with it.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pykka
from supervisors import ChildSpec, registry
from supervisors.supervisor import AlreadyPresent, NotFound

from raft_otp.core.types import ServerId
from raft_otp.errors import AlreadyStarted, BadArgument, RaftError
from raft_otp.server.context import SystemContext
from raft_otp.server.proc import ServerActor
from raft_otp.system.directory import ServerRecord
from raft_otp.system.names import check_cluster_name, check_server_name
from raft_otp.system.resolve import machine_spec

log = logging.getLogger("raft_otp.system")


def actor_name(system: str) -> str:
    return f"raft_otp.system.{system}"


# ---- requests (wire codes 56..59, see raft_otp.server.wire) -------------------------

@dataclass(frozen=True, slots=True)
class StartServerReq:
    name: str
    cluster_name: str
    machine_path: str
    machine_config: Any
    members: list[Any]


@dataclass(frozen=True, slots=True)
class ServerOpReq:
    """``op``: "stop" | "restart" | "delete" | "is_running"."""

    op: str
    name: str


@dataclass(frozen=True, slots=True)
class SystemOverviewReq:
    pass


def _members(raw: Any) -> tuple[ServerId, ...]:
    """The members of a StartServerReq as ServerIds (BadArgument if malformed).  Their
    names are not checked against the name rule: the other members were checked
    when they were started, or predate the rule."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise BadArgument(f"members must be a non-empty list of [name, node], got {raw!r:.200}")
    out = []
    for m in raw:
        if not (isinstance(m, (list, tuple)) and len(m) == 2 and all(isinstance(p, str) for p in m)):
            raise BadArgument(f"a member must be [name, node], got {m!r:.200}")
        out.append(ServerId(m[0], m[1]))
    return tuple(out)


class SystemActor(pykka.ThreadingActor):
    """Starts/stops the servers of one system; recovers them all on start."""

    def __init__(self, ctx: SystemContext, system: Any) -> None:
        super().__init__()
        self.ctx = ctx
        self.system = system  # raft_otp.system.runtime.System (its .sup is set before start)

    # ---- helpers -------------------------------------------------------------------
    def _server_sup(self) -> Any:
        sup = self.system.servers_sup
        if sup is None:
            raise RaftError("server supervisor is not running")
        return sup

    def _start(self, rec: ServerRecord) -> None:
        spec = ChildSpec.supervisor(
            rec.name, "one_for_one",
            [ChildSpec.actor("server", ServerActor, self.ctx, rec, name=rec.name,
                             restart="transient")],
            intensity=2, period=5.0, restart="temporary")
        try:
            self._server_sup().start_child(spec)
        except AlreadyPresent:
            raise AlreadyStarted(f"server {rec.name!r} is already running") from None

    def _running(self, name: str) -> bool:
        return registry.whereis(name) is not None

    # ---- lifecycle ------------------------------------------------------------------
    def on_start(self) -> None:
        recovered = 0
        for rec in self.ctx.directory:
            if rec.stopped:
                log.info("system %s: server %s was stopped: not started (restart_server starts it)",
                         self.ctx.config.name, rec.name)
                continue
            try:
                self._start(rec)
                recovered += 1
            except Exception:
                log.exception("system %s: could not recover server %s", self.ctx.config.name, rec.name)
        if recovered:
            log.info("system %s: recovered %d servers", self.ctx.config.name, recovered)

    def on_receive(self, message: Any) -> Any:
        match message:
            case StartServerReq():
                return self.start_server(message)
            case ServerOpReq(op="stop"):
                return self.stop_server(message.name)
            case ServerOpReq(op="restart"):
                return self.restart_server(message.name)
            case ServerOpReq(op="delete"):
                return self.delete_server(message.name)
            case ServerOpReq(op="is_running"):
                return self._running(message.name)
            case SystemOverviewReq():
                return self.overview()
        raise BadArgument(f"system actor: unknown request {message!r}")

    # ---- operations (each returns plain data or raises a RaftError) ------------------
    def start_server(self, req: StartServerReq) -> str:
        check_server_name(req.name)
        check_cluster_name(req.cluster_name)
        members = _members(req.members)
        spec = machine_spec((req.machine_path, req.machine_config))
        existing = self.ctx.directory.by_name(req.name)
        if existing is not None:
            state = "running" if self._running(req.name) else "not running: restart_server starts it"
            raise AlreadyStarted(f"server {req.name!r} of cluster {existing.cluster_name!r} already "
                                 f"exists on {self.ctx.node_name} ({state})")
        if self._running(req.name):
            raise AlreadyStarted(f"the name {req.name!r} is already registered on {self.ctx.node_name}")
        self._check_cluster_name_free(req.cluster_name, members)
        uid = f"{req.name}_{uuid.uuid4().hex[:12]}"
        rec = ServerRecord(uid, req.name, req.cluster_name, spec, members)
        self.ctx.directory.put(rec)
        try:
            self._start(rec)
        except Exception:  # leave nothing behind: no record, no files
            self.ctx.directory.remove(uid)
            try:
                self.ctx.log_system.delete_server(uid)
            except Exception:
                log.exception("system %s: could not remove the data of %s", self.ctx.config.name, uid)
            raise
        return uid

    def _check_cluster_name_free(self, cluster_name: str, members: tuple[ServerId, ...]) -> None:
        """AlreadyStarted if a local server of ``cluster_name`` is not among ``members``:
        that is another cluster of the same name (a second ``start_cluster``)."""
        from raft_otp.node.runtime import node
        here = {node(), self.ctx.node_name}
        ours = {m.name for m in members if m.node in here}
        others = [r.name for r in self.ctx.directory.by_cluster(cluster_name) if r.name not in ours]
        if others:
            raise AlreadyStarted(
                f"cluster {cluster_name!r} already exists on {self.ctx.node_name} with server(s) "
                f"{', '.join(others)}, not among the members given {[tuple(m) for m in members]}")

    def stop_server(self, name: str) -> str:
        rec = self.ctx.directory.by_name(name)
        if rec is not None and not rec.stopped:
            self.ctx.directory.put(dataclasses.replace(rec, stopped=True))  # stays stopped on restart
        try:
            self._server_sup().terminate_child(name)
        except NotFound:
            if rec is None:
                raise BadArgument(f"no server {name!r} on {self.ctx.node_name}") from None
        return "ok"

    def restart_server(self, name: str) -> str:
        rec = self.ctx.directory.by_name(name)
        if rec is None:
            raise BadArgument(f"no server {name!r} on {self.ctx.node_name}")
        if self._running(name):
            raise AlreadyStarted(f"server {name!r} is already running")
        try:
            self._server_sup().terminate_child(name)  # drop a leftover stopped entry
        except NotFound:
            pass
        if rec.stopped:
            rec = dataclasses.replace(rec, stopped=False)
            self.ctx.directory.put(rec)
        self._start(rec)
        return "ok"

    def delete_server(self, name: str) -> str:
        rec = self.ctx.directory.by_name(name)
        try:
            self._server_sup().terminate_child(name)
        except NotFound:
            pass
        if rec is None:
            return "ok"
        self.ctx.directory.remove(rec.uid)
        self.ctx.log_system.delete_server(rec.uid)
        return "ok"

    def overview(self) -> dict[str, Any]:
        from raft_otp.server.messages import ReplySlot, StateQuery
        servers: dict[str, Any] = {}
        slots = []
        for rec in self.ctx.directory:
            ref = registry.whereis(rec.name)
            if ref is None:
                servers[rec.name] = {"uid": rec.uid, "cluster": rec.cluster_name, "role": "stopped"}
                continue
            slot = ReplySlot()
            try:
                ref.tell(StateQuery(slot, "overview"))
                slots.append((rec, slot))
            except pykka.ActorDeadError:
                servers[rec.name] = {"uid": rec.uid, "cluster": rec.cluster_name, "role": "stopped"}
        for rec, slot in slots:
            if slot.wait(2.0) and slot.value.ok:
                servers[rec.name] = slot.value.value
            else:
                servers[rec.name] = {"uid": rec.uid, "cluster": rec.cluster_name, "role": "unresponsive"}
        log_ov = getattr(self.ctx.log_system, "overview", None)
        return {"name": self.ctx.config.name, "data_dir": self.ctx.config.data_dir,
                "node": self.ctx.node_name, "servers": servers,
                "log": log_ov() if callable(log_ov) else None}
