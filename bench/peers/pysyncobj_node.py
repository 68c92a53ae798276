"""One PySyncObj node process for the side-by-side benchmark (bench-only).

Driven over stdin/stdout by ``bench.peers.pysyncobj_bench``: one JSON request a
line, one JSON answer a line.  The load runs inside the leader's own process
(PySyncObj has no client protocol: callers live in a node), which spares it the
client hop that raft_otp's clients pay.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from pysyncobj import SyncObj, SyncObjConf, replicated


class Counter(SyncObj):
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._value = 0

    @replicated
    def incr(self) -> int:
        self._value += 1
        return self._value


def _pipelined(obj: Counter, total: int, in_flight: int) -> dict:
    sem = threading.Semaphore(in_flight)
    done = threading.Event()
    left = [total]
    lock = threading.Lock()
    errors = [0]

    def callback(result, err) -> None:
        if err != 0:  # FAIL_REASON.SUCCESS == 0
            errors[0] += 1
        sem.release()
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    t0 = time.perf_counter()
    for _ in range(total):
        sem.acquire()
        obj.incr(callback=callback)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    return {"ops": total - left[0], "errors": errors[0], "seconds": elapsed}


def _sequential(obj: Counter, total: int) -> dict:
    lat = []
    for _ in range(total):
        t0 = time.perf_counter()
        obj.incr(sync=True, timeout=10)
        lat.append(time.perf_counter() - t0)
    return {"latencies_s": lat}


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
        elif op == "pipelined":
            out = _pipelined(obj, req["total"], req["in_flight"])
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
