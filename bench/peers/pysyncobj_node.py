"""One PySyncObj node process for the side-by-side benchmark (bench-only).

Driven over stdin/stdout by ``bench.peers.pysyncobj_bench``: one JSON request a
line, one JSON answer a line.  The load runs inside the leader's own process
(PySyncObj has no client protocol: callers live in a node), which spares it the
client hop that raft_otp's clients pay.

Requests: ``status``; ``window`` (keep ``in_flight`` asynchronous ``incr`` calls
outstanding for ``seconds``); ``sequential`` (``total`` synchronous calls, one at
a time); ``quit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated


class Counter(SyncObj):
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._value = 0

    @replicated
    def incr(self) -> int:
        self._value += 1
        return self._value


def _window(obj: Counter, in_flight: int, seconds: float) -> dict:
    """Up to ``in_flight`` outstanding calls for ``seconds``, then wait for all."""
    sem = threading.Semaphore(in_flight)
    lock = threading.Lock()
    done = [0, 0]  # ok, errors

    def callback(result, err) -> None:
        with lock:
            done[0 if err == 0 else 1] += 1  # FAIL_REASON.SUCCESS == 0
        sem.release()

    t0 = time.perf_counter()
    deadline = t0 + seconds
    issued = 0
    while time.perf_counter() < deadline:
        for _ in range(64):
            sem.acquire()
            obj.incr(callback=callback)
            issued += 1
    for _ in range(in_flight):  # every outstanding call has called back
        if not sem.acquire(timeout=60):
            break
    elapsed = time.perf_counter() - t0
    return {"ops": done[0], "errors": done[1], "issued": issued, "seconds": elapsed}


def _sequential(obj: Counter, total: int) -> dict:
    """``total`` synchronous calls one at a time; a call PySyncObj fails (a leader
    change discards it) is counted, not timed, and does not end the run."""
    lat = []
    errors = 0
    for _ in range(total):
        t0 = time.perf_counter()
        try:
            obj.incr(sync=True, timeout=10)
        except SyncObjException:
            errors += 1
            continue
        lat.append(time.perf_counter() - t0)
    return {"latencies_s": lat, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--self", dest="self_addr", required=True)
    ap.add_argument("--partners", default="")
    ap.add_argument("--journal", default=None)
    ap.add_argument("--no-batch", action="store_true")
    args = ap.parse_args()
    conf = SyncObjConf(
        journalFile=args.journal,
        appendEntriesUseBatch=not args.no_batch,
        dynamicMembershipChange=False,
    )
    partners = [p for p in args.partners.split(",") if p]
    obj = Counter(args.self_addr, partners, conf)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "status":
            out = {"leader": obj._isLeader(), "ready": obj.isReady()}
        elif op == "window":
            out = _window(obj, req["in_flight"], req["seconds"])
        elif op == "sequential":
            out = _sequential(obj, req["total"])
        elif op == "quit":
            break
        else:
            out = {"error": f"unknown op {op}"}
        print(json.dumps(out), flush=True)
    obj.destroy()


if __name__ == "__main__":
    main()
