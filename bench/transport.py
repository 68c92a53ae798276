"""Transport benchmark: raft_otp.node between two node processes vs a bare pyzmq loop.

Figures (each beside its peer measured in the same run):

* one-way messages/s: this process (a node) ``send``s small messages to a child
  node process, where a registered counter (``sink``: decode, registry lookup,
  ``tell`` in the I/O thread) or the ``echo`` pykka actor (plus the actor's thread
  hop) counts them; peer: a bare pyzmq DEALER sending one 64-byte message per
  ``send`` to a ROUTER in a child process that counts them.
* call round trip p50 / p99: sequential ``call(("echo", node), i)``; peer: a
  bare DEALER/ROUTER ping-pong.
* node_down detection: time from SIGKILL of a peer node to the node_down event
  here; peer: the configured detection time (heartbeat interval x missed).

Run: ``python -m bench --only transport`` (``--quick`` for a short run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from bench.common import Figure, percentile

ROOT = Path(__file__).resolve().parent.parent


def _bare_server(port: int) -> None:
    """Child process: ROUTER that counts messages or echoes pings (the pyzmq peer)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"tcp://127.0.0.1:{port}")
    print("READY", flush=True)
    count, target = 0, -1
    while True:
        ident, msg = sock.recv_multipart()
        if msg == b"ping":
            sock.send_multipart([ident, b"pong"])
        elif msg.startswith(b"n:"):
            count, target = 0, int(msg[2:])
        elif msg == b"stop":
            return
        else:
            count += 1
            if count == target:
                sock.send_multipart([ident, b"done"])


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, cwd=ROOT,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith(b"READY"):
        p.kill()
        raise RuntimeError(f"child did not start: {line!r}")
    return p


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _bare(n_msgs: int, n_rtt: int) -> tuple[float, list[float]]:
    from raft_otp.node.testing import free_port

    port = free_port()
    child = _spawn(["-c", f"from bench.transport import _bare_server; _bare_server({port})"])
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        payload = b"x" * 64
        for _ in range(100):
            sock.send(b"ping")
            sock.recv()
        sock.send(b"n:%d" % n_msgs)
        t0 = time.perf_counter()
        send = sock.send
        for _ in range(n_msgs):
            send(payload)
        assert sock.recv() == b"done"
        rate = n_msgs / (time.perf_counter() - t0)
        rtts = []
        for _ in range(n_rtt):
            t = time.perf_counter()
            sock.send(b"ping")
            sock.recv()
            rtts.append(time.perf_counter() - t)
        sock.send(b"stop")
        return rate, rtts
    finally:
        sock.close(0)
        _stop(child)


def _ours(n_msgs: int, n_rtt: int) -> tuple[list[float], list[float]]:
    from raft_otp.node import runtime
    from raft_otp.node.mailbox import Mailbox
    from raft_otp.node.testing import NodeProcess, free_port

    with tempfile.TemporaryDirectory() as d:
        cookie = Path(d, "cookie")
        cookie.write_text("bench-cookie\n")
        peer = NodeProcess("bench-peer", str(cookie))
        peer.start()
        started_here = not runtime.is_started()
        if started_here:
            runtime.start_node(f"bench@127.0.0.1:{free_port()}", "bench-cookie")
        try:
            dest = ("echo", peer.name)
            for i in range(100):
                runtime.call(dest, i)
            rates = []
            for target in (("sink", peer.name), dest):
                with Mailbox() as mb:
                    msg = ["count", list(mb.address), n_msgs]
                    send = runtime.send
                    # The send queue is bounded (drops beyond it, as Erlang's would not):
                    # on a loaded host the sender outruns the I/O thread, so pace it at
                    # half the bound instead of losing messages the sink waits for.
                    link = runtime._node.transport.link(peer.name)  # type: ignore[union-attr]
                    high = link.max_queued // 2
                    t0 = time.perf_counter()
                    for k in range(n_msgs):
                        send(target, msg)
                        if not k & 1023:
                            while len(link.queue) > high:
                                time.sleep(0.0005)
                    reply = mb.get(120)
                    rates.append(n_msgs / (time.perf_counter() - t0))
                    assert reply == ["counted", n_msgs], reply
            rtts = []
            call = runtime.call
            for i in range(n_rtt):
                t = time.perf_counter()
                call(dest, i)
                rtts.append(time.perf_counter() - t)
            return rates, rtts
        finally:
            if started_here:
                runtime.stop_node()
            peer.stop()


def _detection_ms() -> tuple[float, float]:
    """(measured ms from SIGKILL of a peer node to node_down here, configured detection ms)."""
    from raft_otp.node import runtime
    from raft_otp.node.mailbox import Mailbox
    from raft_otp.node.testing import NodeProcess, free_port

    with tempfile.TemporaryDirectory() as d:
        cookie = Path(d, "cookie")
        cookie.write_text("bench-cookie\n")
        peer = NodeProcess("bench-victim", str(cookie))
        peer.start()
        started_here = not runtime.is_started()
        if started_here:
            runtime.start_node(f"bench@127.0.0.1:{free_port()}", "bench-cookie")
        cfg = runtime._node.config if runtime._node is not None else None
        configured = cfg.detection_time_ms if cfg is not None else float("nan")
        try:
            runtime.call(("echo", peer.name), "hello")
            with Mailbox() as events:
                token = runtime.subscribe_node_events(events)
                t0 = time.perf_counter()
                peer.kill()
                while events.get(10).kind != "node_down":
                    pass
                runtime.unsubscribe_node_events(token)
                return (time.perf_counter() - t0) * 1000, configured
        finally:
            if started_here:
                runtime.stop_node()
            peer.stop()


def run(quick: bool = False) -> list[Figure]:
    n_msgs, n_rtt = (30_000, 1_000) if quick else (300_000, 10_000)
    bare_rate, bare_rtts = _bare(n_msgs, n_rtt)
    (sink_rate, actor_rate), rtts = _ours(n_msgs, n_rtt)
    detected_ms, configured_ms = _detection_ms()
    us = 1e6
    return [
        Figure("transport one-way send, node to node (registered sink)", sink_rate, "msg/s",
               "bare pyzmq one-way (1 msg per send)", bare_rate, True),
        Figure("transport one-way send to a remote pykka actor", actor_rate, "msg/s",
               "bare pyzmq one-way (1 msg per send)", bare_rate, True),
        Figure("transport call round trip p50", percentile(rtts, 50) * us, "us",
               "bare pyzmq ping-pong p50", percentile(bare_rtts, 50) * us, False),
        Figure("transport call round trip p99", percentile(rtts, 99) * us, "us",
               "bare pyzmq ping-pong p99", percentile(bare_rtts, 99) * us, False),
        Figure("transport node_down after SIGKILL of a peer", detected_ms, "ms",
               "configured detection time (interval x missed)", configured_ms, False),
    ]


if __name__ == "__main__":
    for f in run(quick="--quick" in sys.argv):
        print(f"{f.name}: {f.value:.1f} {f.unit}  |  {f.peer}: {f.peer_value:.1f}  ratio {f.ratio:.2f}")
