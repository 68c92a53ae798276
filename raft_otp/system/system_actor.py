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
That supervisor is threadless (run by the supervisors' pool) where the
supervisors library offers it.

The start path is kept short because 10,000 servers per node start through it.
The system actor is a scheduled actor on a small pool of its own; the start
requests that reach it together (one slice, ``START_BATCH`` at most) are one
batch: each is checked as if alone (the batch's earlier servers count as
existing), then the batch's server directories are made, their records
appended to the directory journal with one ``fdatasync``, the directories
synced (one sync each and one of their parent: the log's own ``makedirs``
would sync a parent for each of the four levels, ~1-3 ms each on ext4), and
only then are the servers started: a server's record is durable before it
runs and before its start is answered.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import pykka
from supervisors import ChildSpec, registry
from supervisors.scheduler import ScheduledActor, Scheduler
from supervisors.supervisor import AlreadyPresent, NotFound

from raft_otp.core.types import ServerId
from raft_otp.log import fileio
from raft_otp.errors import AlreadyStarted, BadArgument, RaftError
from raft_otp.server.context import SystemContext
from raft_otp.server.proc import server_actor_class
from raft_otp.system.directory import ServerRecord
from raft_otp.system.names import check_cluster_name, check_server_name
from raft_otp.system.resolve import machine_spec

log = logging.getLogger("raft_otp.system")


def actor_name(system: str) -> str:
    return f"raft_otp.system.{system}"


# A per-server supervisor that costs no thread, once the supervisors library has it.
_THREADLESS = ({"threadless": True}
               if "threadless" in inspect.signature(ChildSpec.supervisor).parameters else {})

# The directories ``LogSystem.open_server_log`` makes for server ``uid`` under its
# servers dir (the server's own, then SegmentSet's and SnapshotStore's).  Made here
# first; the log's makedirs then finds them and syncs nothing.  A name drifting from
# the log's costs only speed: the log makes and syncs what is missing.
_SERVER_SUBDIRS = ("segments", "snapshots", "checkpoints")


def make_server_dirs(servers_dir: str, uids: list[str]) -> list[str]:
    """Make the directories of the servers ``uids``, not yet durable: the server
    directories created (for :func:`sync_server_dirs`)."""
    made = []
    for uid in uids:
        sdir = os.path.join(servers_dir, uid)
        if not os.path.isdir(sdir):
            made.append(sdir)
        for sub in _SERVER_SUBDIRS:
            os.makedirs(os.path.join(sdir, sub), exist_ok=True)
    return made


def sync_server_dirs(servers_dir: str, made: list[str]) -> None:
    """Make the server directories ``made`` (and their subdirectories) durable: one
    sync of each and one of ``servers_dir``.  ext4 commits everything created so far
    with the first sync (or with an earlier fdatasync that grew a file), so the
    others find nothing left to commit."""
    for sdir in made:
        fileio.OS.fsync_dir(sdir)
    if made:
        fileio.OS.fsync_dir(servers_dir)


START_BATCH = 128
"""At most this many start requests share one directory sync (the system actor's slice)."""

SYSTEM_SCHEDULER = Scheduler(threads=2, slice_budget=START_BATCH, name="raft_otp.system", inline=False)
"""The system actors' own small pool: their handlers block (directory syncs, supervisor
calls, a node's recovery in ``on_start``) and must not hold the servers' pool threads."""


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
    """``op``: "stop" | "restart" | "delete" | "is_running" | "counts" (``name`` unused)."""

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


class SystemActor(ScheduledActor):
    """Starts/stops the servers of one system; recovers them all on start.

    A scheduled actor on the system actors' pool (``SYSTEM_SCHEDULER``): the start
    requests of one slice (``START_BATCH`` at most) are started as one batch, with
    one directory sync and one round of directory syncs for them all."""

    scheduler = SYSTEM_SCHEDULER
    slice_budget = START_BATCH

    def __init__(self, ctx: SystemContext, system: Any) -> None:
        SYSTEM_SCHEDULER.start()  # idempotent; its threads live as long as the process
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
            [ChildSpec.actor("server", server_actor_class(self.ctx.config), self.ctx, rec, name=rec.name,
                             restart="transient")],
            intensity=2, period=5.0, restart="temporary", **_THREADLESS)
        try:
            self._server_sup().start_child(spec)
        except AlreadyPresent:
            raise AlreadyStarted(f"server {rec.name!r} is already running") from None

    def _servers_dir(self) -> str | None:
        """Where the log keeps its server directories, if this system's servers' directories
        are made here (production file layer only: under a test's layer the log makes them)."""
        ls = self.ctx.log_system
        if getattr(ls, "io", None) is fileio.OS:
            return getattr(ls, "servers_dir", None)
        return None

    def _remove_data(self, uid: str) -> None:
        try:
            self.ctx.log_system.delete_server(uid)
        except Exception:
            log.exception("system %s: could not remove the data of %s", self.ctx.config.name, uid)

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
            case ServerOpReq(op="counts"):
                return self.counts()
            case SystemOverviewReq():
                return self.overview()
        raise BadArgument(f"system actor: unknown request {message!r}")

    def handle_slice(self, envelopes: list[Any]) -> None:
        """Runs of start requests are started as batches; everything else, in order, one
        at a time."""
        batch: list[Any] = []
        for envelope in envelopes:
            if self.actor_stopped.is_set():
                return
            if isinstance(envelope.message, StartServerReq):
                batch.append(envelope)
                continue
            self._start_batch(batch)
            batch = []
            self.handle_envelope(envelope)
        self._start_batch(batch)

    def _start_batch(self, envelopes: list[Any]) -> None:
        if len(envelopes) == 1:
            self.handle_envelope(envelopes[0])
            return
        outcomes = self.start_servers([e.message for e in envelopes])
        for envelope, outcome in zip(envelopes, outcomes):
            if envelope.reply_to is None:
                if isinstance(outcome, BaseException):
                    log.warning("system %s: start of %s (a tell) failed: %r",
                                self.ctx.config.name, envelope.message.name, outcome)
            elif isinstance(outcome, BaseException):
                envelope.reply_to.set_exception((type(outcome), outcome, outcome.__traceback__))
            else:
                envelope.reply_to.set(outcome)

    # ---- operations (each returns plain data or raises a RaftError) ------------------
    def start_server(self, req: StartServerReq) -> str:
        outcome = self.start_servers([req])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def start_servers(self, reqs: list[StartServerReq]) -> list[str | Exception]:
        """Start a server for each request; each outcome is its uid or why it was refused
        or failed (nothing of it left behind).  The records are durable before any
        server starts, with one directory sync for them all."""
        outcomes: list[str | Exception] = []
        new: dict[str, ServerRecord] = {}  # name -> record, of this batch
        for req in reqs:
            try:
                rec = self._new_record(req, new)
            except Exception as exc:
                outcomes.append(exc)
                continue
            new[rec.name] = rec
            outcomes.append(rec.uid)
        if not new:
            return outcomes
        recs = list(new.values())
        servers_dir = self._servers_dir()
        # the directories first: the records' sync then commits them too, and their own
        # syncs after it find nothing left to commit (one journal commit per batch)
        made = make_server_dirs(servers_dir, [r.uid for r in recs]) if servers_dir else []
        try:
            self.ctx.directory.put_many(recs)
            if servers_dir:
                sync_server_dirs(servers_dir, made)
        except Exception as exc:  # leave nothing behind: no record, no files
            for rec in recs:
                self.ctx.directory.remove(rec.uid)
                self._remove_data(rec.uid)
            return [exc if isinstance(o, str) else o for o in outcomes]
        failed: dict[str, Exception] = {}
        for rec in recs:
            try:
                self._start(rec)
            except Exception as exc:  # leave nothing behind: no record, no files
                self.ctx.directory.remove(rec.uid)
                self._remove_data(rec.uid)
                failed[rec.uid] = exc
        return [failed.get(o, o) if isinstance(o, str) else o for o in outcomes]

    def _new_record(self, req: StartServerReq, new: dict[str, ServerRecord]) -> ServerRecord:
        """The record of a new server for ``req``, after every check (``new``: the records
        of the same batch, as if already in the directory)."""
        check_server_name(req.name)
        check_cluster_name(req.cluster_name)
        members = _members(req.members)
        spec = machine_spec((req.machine_path, req.machine_config))
        existing = self.ctx.directory.by_name(req.name) or new.get(req.name)
        if existing is not None:
            state = "running" if self._running(req.name) else "not running: restart_server starts it"
            raise AlreadyStarted(f"server {req.name!r} of cluster {existing.cluster_name!r} already "
                                 f"exists on {self.ctx.node_name} ({state})")
        if self._running(req.name):
            raise AlreadyStarted(f"the name {req.name!r} is already registered on {self.ctx.node_name}")
        self._check_cluster_name_free(req.cluster_name, members,
                                      [r.name for r in new.values() if r.cluster_name == req.cluster_name])
        uid = f"{req.name}_{uuid.uuid4().hex[:12]}"
        return ServerRecord(uid, req.name, req.cluster_name, spec, members)

    def _check_cluster_name_free(self, cluster_name: str, members: tuple[ServerId, ...],
                                 starting: Sequence[str] = ()) -> None:
        """AlreadyStarted if a local server of ``cluster_name`` (or one of ``starting``,
        being started with it) is not among ``members``: that is another cluster of the
        same name (a second ``start_cluster``)."""
        from raft_otp.node.runtime import node
        here = {node(), self.ctx.node_name}
        ours = {m.name for m in members if m.node in here}
        others = [r.name for r in self.ctx.directory.by_cluster(cluster_name) if r.name not in ours]
        others += [name for name in starting if name not in ours]
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

    def counts(self, wait_s: float = 5.0) -> dict[str, Any]:
        """How many servers the directory holds, how many are to run (not stopped),
        run, and know a leader (each running server is pinged; one not answering
        within ``wait_s`` in all counts as not knowing one), and the names of up to
        5 running servers that know none.  Cheap enough for 10,000 servers, unlike
        ``overview``."""
        from raft_otp.server.messages import ReplySlot, StateQuery
        records = list(self.ctx.directory)
        to_run = [r for r in records if not r.stopped]
        slots = []
        for rec in to_run:
            ref = registry.whereis(rec.name)
            if ref is None:
                continue
            slot = ReplySlot()
            try:
                ref.tell(StateQuery(slot, "ping"))
            except pykka.ActorDeadError:
                continue
            slots.append((rec.name, slot))
        deadline = time.monotonic() + wait_s
        leaderless = [name for name, slot in slots if not (slot.wait(deadline - time.monotonic())
                                                           and slot.value.ok and slot.value.leader is not None)]
        return {"records": len(records), "to_run": len(to_run), "running": len(slots),
                "leader_known": len(slots) - len(leaderless), "leaderless": leaderless[:5]}

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
