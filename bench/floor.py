"""The floor under a sequential replicated write on this machine:
``python -m bench.floor [--sync datasync|none] [-n 3000]``.

Three processes and no Raft: a "leader" sends each command (msgpack, pyzmq
PUSH) to two "followers", each appends it to a file and ``fdatasync``s it, then
answers (PUSH back); the leader appends and syncs its own copy meanwhile and
counts a command done at the first answer (a majority with itself).  The p50 of
that loop is what the disk, ZeroMQ and three Python processes cost before any of
raft_otp's work: ``docs/benchmarks.md`` ("Latency, third round") sets our
sequential figure beside it.  Not a part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time

import msgpack
import zmq


def _follower(k: int, port_in: int, port_out: int, path: str, sync: bool) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(f"tcp://127.0.0.1:{port_in}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port_out}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            msg = msgpack.unpackb(pull.recv())
            if msg is None:
                break
            os.write(fd, msgpack.packb(msg[1]))
            if sync:
                os.fdatasync(fd)
            push.send(msgpack.packb([k, msg[0]]))
    finally:
        os.close(fd)
        ctx.destroy(linger=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    p.add_argument("--sync", default="datasync", choices=["datasync", "none"])
    p.add_argument("-n", type=int, default=3000)
    a = p.parse_args(argv)
    sync = a.sync == "datasync"
    d = tempfile.mkdtemp(prefix="raft_otp_floor_")
    ctx = zmq.Context()
    back = ctx.socket(zmq.PULL)
    back_port = back.bind_to_random_port("tcp://127.0.0.1")
    pushes, procs = [], []
    try:
        for k in range(2):
            s = ctx.socket(zmq.PUSH)
            port = s.bind_to_random_port("tcp://127.0.0.1")
            pushes.append(s)
            pr = mp.Process(target=_follower, args=(k, port, back_port, os.path.join(d, f"f{k}"), sync),
                            daemon=True)
            pr.start()
            procs.append(pr)
        fd = os.open(os.path.join(d, "leader"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for s in pushes:  # both connected and answering before timing
            s.send(msgpack.packb([-1, ["warm"]]))
        for _ in pushes:
            back.recv()
        lat = []
        for i in range(a.n):
            t = time.perf_counter()
            body = msgpack.packb([i, ["incr"]])
            for s in pushes:
                s.send(body)
            os.write(fd, body)
            if sync:
                os.fdatasync(fd)
            back.recv()  # the first answer: a majority with the leader's own copy
            lat.append(time.perf_counter() - t)
            back.recv()
        os.close(fd)
        for s in pushes:
            s.send(msgpack.packb(None))
        for pr in procs:
            pr.join(10)
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
        ctx.destroy(linger=0)
        shutil.rmtree(d, ignore_errors=True)
    lat.sort()
    print(f"floor ({a.sync}): p50 {lat[len(lat) // 2] * 1e3:.3f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.3f} ms over {a.n} sequential writes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
