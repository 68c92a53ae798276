"""Concurrent key-value clients for the fault harness, and the history they record.

Each client is a thread of the harness process (a client node) that runs one
operation at a time against the cluster, as a Jepsen client process does:

- ``put`` / ``cas`` / ``delete`` / ``get`` on a few shared register keys, through
  ``process_command`` (so through the log); half of the reads go through
  ``consistent_query`` instead (the leader's read path with its heartbeat round);
- ``put`` on a key of its own that is written once (``u/<client>/<n>``): every
  acknowledged one must still be readable at the end.

Every value written is unique, so a read names the write it saw.  An operation
is recorded with its invocation and completion times (seconds since the start
of the run, one monotonic clock) and its outcome: ``ok`` true with the reply,
false when the API proves it was not delivered (``NotLeader``,
``ServerNotFound``, ``NodeDown``), null when the outcome is unknown (``Timeout``
or anything unexpected).  Unknown operations stay open in the history.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from typing import Any, Callable

import raft_otp
from raft_otp.core.types import ServerId
from raft_otp.errors import DiskFull, NodeDown, NotLeader, RaftError, ServerNotFound, Timeout

__all__ = ["History", "Client", "REGISTER_KEYS", "GET_QUERY", "STATE_QUERY"]

log = logging.getLogger("raft_otp.nemesis")

REGISTER_KEYS = ("r0", "r1", "r2")
GET_QUERY = "raft_otp.system.queries:get"
STATE_QUERY = "raft_otp.system.queries:state"
# DiskFull: refused by the leader's disk alarm before the log (a resend whose earlier
# attempt may be in the log is a Timeout instead), so the checker holds it to that
_NOT_DELIVERED = (NotLeader, ServerNotFound, NodeDown, DiskFull)


class History:
    """The operations of a run, appended by many threads, one JSON object a line."""

    def __init__(self, path: str, t0: float) -> None:
        self.path = path
        self.t0 = t0
        self._lock = threading.Lock()
        self._fh = open(path, "w", encoding="utf-8")
        self.ops: list[dict[str, Any]] = []

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def record(self, op: dict[str, Any]) -> None:
        with self._lock:
            self.ops.append(op)
            self._fh.write(json.dumps(op, default=list) + "\n")

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def normalise(f: str, reply: Any) -> Any:
    """The machine's reply as the history's ``result`` (see raft_otp.machines.kv)."""
    if f == "get":
        if reply == ["not_found"]:
            return None
        if isinstance(reply, list) and len(reply) == 2 and reply[0] == "ok":
            return reply[1]
        raise ValueError(f"unexpected get reply {reply!r}")
    if f == "cas":
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[0], bool):
            return reply[0]
        raise ValueError(f"unexpected cas reply {reply!r}")
    if reply != ["ok"]:
        raise ValueError(f"unexpected {f} reply {reply!r}")
    return None


def run_op(history: History, client: str, op: dict[str, Any],
           call: Callable[[], Any], via: str) -> dict[str, Any]:
    """Invoke ``call`` and record ``op`` with its outcome."""
    op = dict(op, client=client, via=via, invoke=history.now())
    try:
        reply = call()
    except _NOT_DELIVERED as exc:
        op.update(ok=False, result=None, complete=history.now(), error=type(exc).__name__)
    except Timeout as exc:
        op.update(ok=None, result=None, complete=None, error=f"Timeout: {exc}"[:200])
    except Exception as exc:  # unexpected: the outcome is unknown, keep it open
        op.update(ok=None, result=None, complete=None, error=f"{type(exc).__name__}: {exc}"[:200])
    else:
        try:
            op.update(ok=True, result=normalise(op["f"], reply) if via == "command" else reply,
                      complete=history.now())
        except ValueError as exc:
            op.update(ok=None, result=None, complete=None, error=str(exc))
    history.record(op)
    return op


REFUSED_BACKOFF_S = 0.05
"""Pause after an operation refused because the target's node is down (calls to a
node known down fail at once with NodeDown; a client bound to it would otherwise
fill the history with thousands of refusals per second)."""


class Client(threading.Thread):
    """One client: a loop of operations until ``stop`` is set."""

    def __init__(self, number: int, history: History, members: Callable[[], list[ServerId]],
                 stop: threading.Event, rng: random.Random, values: Callable[[], int], *,
                 op_timeout_s: float = 3.0, think_s: float = 0.004) -> None:
        super().__init__(name=f"nemesis-client-{number}", daemon=True)
        self.number = number
        self.cname = f"c{number}"
        self.history = history
        self.members = members
        self.stop = stop
        self.rng = rng
        self.values = values
        self.op_timeout_s = op_timeout_s
        self.think_s = think_s
        self.leader: ServerId | None = None
        self.last_seen: dict[str, Any] = {}
        self.unique = itertools.count()

    def target(self) -> ServerId:
        """Half the time the client's home node (as a Jepsen client is bound to one
        node, so some clients stay on the wrong side of a partition), else the last
        leader it heard of."""
        members = self.members()
        if self.leader is not None and self.leader in members and self.rng.random() < 0.5:
            return self.leader
        return members[self.number % len(members)]

    def command(self, cmd: list[Any]) -> Callable[[], Any]:
        def call() -> Any:
            reply, leader = raft_otp.process_command(self.target(), cmd, timeout=self.op_timeout_s)
            self.leader = leader
            return reply
        return call

    def query(self, key: str) -> Callable[[], Any]:
        def call() -> Any:
            value, leader = raft_otp.consistent_query(self.target(), (GET_QUERY, [key]),
                                                      timeout=self.op_timeout_s)
            if leader is not None:
                self.leader = leader
            return value
        return call

    def one(self) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.1:
            key = f"u/{self.cname}/{next(self.unique)}"
            v = self.values()
            return run_op(self.history, self.cname, {"key": key, "f": "put", "value": v},
                          self.command(["put", key, v]), "command")
        key = rng.choice(REGISTER_KEYS)
        r = rng.random()
        if r < 0.3:
            v = self.values()
            op = run_op(self.history, self.cname, {"key": key, "f": "put", "value": v},
                        self.command(["put", key, v]), "command")
        elif r < 0.5:
            op = run_op(self.history, self.cname, {"key": key, "f": "get", "value": None},
                        self.command(["get", key]), "command")
        elif r < 0.7:
            op = run_op(self.history, self.cname, {"key": key, "f": "get", "value": None},
                        self.query(key), "consistent_query")
        elif r < 0.95:
            expect = self.last_seen.get(key)
            v = self.values()
            op = run_op(self.history, self.cname,
                        {"key": key, "f": "cas", "value": v, "expect": expect},
                        self.command(["cas", key, expect, v]), "command")
        else:
            op = run_op(self.history, self.cname, {"key": key, "f": "delete", "value": None},
                        self.command(["delete", key]), "command")
        if op["ok"]:
            if op["f"] == "get":
                self.last_seen[key] = op["result"]
            elif op["f"] == "put" or (op["f"] == "cas" and op["result"]):
                self.last_seen[key] = op["value"]
            elif op["f"] == "delete":
                self.last_seen[key] = None
        if op["ok"] is not True:
            self.leader = None
        if op["ok"] is False and op.get("error") in ("NodeDown", "ServerNotFound"):
            self.stop.wait(REFUSED_BACKOFF_S)  # its node is down: do not spin on it
        return op

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.one()
            except Exception:  # a harness bug must not silently end the client
                log.exception("client %s crashed on an operation", self.cname)
                time.sleep(0.1)
            if self.think_s:
                self.stop.wait(self.rng.uniform(0, self.think_s))


def final_reads(history: History, members: list[ServerId], deadline: float
                ) -> dict[str, Any] | None:
    """After healing: read every key (recorded in the history) and return the state.

    Register keys are read with ``get`` commands; the whole state once with a
    consistent query, recorded as one read per written-once key at that interval.
    None when the cluster did not answer before ``deadline``.
    """
    state: dict[str, Any] | None = None
    for key in REGISTER_KEYS:
        while time.monotonic() < deadline:
            target = members[0]
            op = run_op(history, "final", {"key": key, "f": "get", "value": None},
                        lambda: raft_otp.process_command(target, ["get", key], timeout=5.0)[0],
                        "command")
            if op["ok"]:
                break
            members = members[1:] + members[:1]
            time.sleep(0.2)
    while time.monotonic() < deadline:
        invoke = history.now()
        try:
            state, _ = raft_otp.consistent_query(members[0], STATE_QUERY, timeout=5.0)
        except RaftError:
            members = members[1:] + members[:1]
            time.sleep(0.2)
            continue
        complete = history.now()
        unique_keys = sorted({op["key"] for op in history.ops if op["key"].startswith("u/")})
        for key in unique_keys:
            history.record({"key": key, "f": "get", "value": None, "client": "final",
                            "via": "consistent_query", "invoke": invoke, "complete": complete,
                            "ok": True, "result": state.get(key)})
        break
    return state


def lost_writes(ops: list[dict[str, Any]], state: dict[str, Any]) -> list[dict[str, Any]]:
    """Acknowledged writes to written-once keys that the final state does not hold."""
    return [op for op in ops
            if op["f"] == "put" and op["ok"] is True and op["key"].startswith("u/")
            and state.get(op["key"]) != op["value"]]
